#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver + etcd) from the Go module proxy and prints
# the folder to use as KUBEBUILDER_ASSETS. Beside them, from the same build: kube-controller-manager
# and kube-scheduler, for the tests that need a DaemonSet or Deployment placed for real
# (hack/testenv's ControlPlane).
#
# Why not setup-envtest: its downloads come from a bucket this project's machines cannot reach,
# while the Go module proxy is reachable. kube-apiserver lives in k8s.io/kubernetes, whose go.mod
# points every k8s.io/<staging> module at ./staging/...; a small helper module replaces each of
# them with its published v0.<minor>.<patch> tag so the command builds like any other module.
#
# Arguments name more commands of k8s.io/kubernetes to build the same way, for the host lab's
# real node: `hack/envtest-assets.sh kubelet` (hack/lab/lab.sh does).
#
# Idempotent: the binaries are cached outside the clone, keyed by version, and reused.
# Progress goes to stderr; stdout is only the assets path, so callers can capture it.
set -euo pipefail

K8S_VERSION="${ENVTEST_K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ENVTEST_ETCD_VERSION:-3.6.16}"
CACHE_ROOT="${XENCLONE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xenclone}"
ASSETS="$CACHE_ROOT/envtest/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}"
GO="${GO:-go}"
command -v "$GO" >/dev/null 2>&1 || GO=/usr/local/go/bin/go

log() { echo "envtest-assets: $*" >&2; }

works() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

mkdir -p "$ASSETS"
# Concurrent callers (make test and make run in two shells) wait for one builder.
exec 9>"$ASSETS/.lock"
flock 9

staging_minor="0.${K8S_VERSION#*.}"   # 1.37.2 -> 0.37.2

# build_k8s CMD builds k8s.io/kubernetes/cmd/CMD (kube-apiserver, kube-controller-manager,
# kube-scheduler) in one helper module, so the three share their dependencies and build cache.
build_k8s() {
  local cmd="$1"
  local src="$CACHE_ROOT/envtest/src/kube-apiserver-$K8S_VERSION"
  mkdir -p "$src"
  log "building $cmd v$K8S_VERSION from the Go module proxy (first time: kube-apiserver ~8-10 min on 2 cores, then ~3-5 min each)"
  (
    cd "$src"
    "$GO" mod download -json "k8s.io/kubernetes@v$K8S_VERSION" >/dev/null
    local kmod
    kmod="$("$GO" env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$K8S_VERSION.mod"
    {
      echo "module xenclone.dev/envtest/kube-apiserver"
      echo
      grep -E '^go [0-9]' "$kmod"
      echo
      echo "require k8s.io/kubernetes v$K8S_VERSION"
      echo
      echo "replace ("
      sed -n '/^replace (/,/^)/p' "$kmod" | grep -E '^\s+k8s\.io/[a-z0-9-]+ => ./staging' |
        awk -v v="v$staging_minor" '{print "\t" $1 " => " $1 " " v}'
      echo ")"
    } >go.mod
    cat >main.go <<'GO'
// Package main only anchors the module; the binaries are built from k8s.io/kubernetes.
package main

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {}
GO
    GOFLAGS=-mod=mod "$GO" mod tidy >&2
    CGO_ENABLED=0 GOFLAGS=-mod=mod "$GO" build -trimpath -ldflags=-s -o "$ASSETS/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" >&2
  )
  mv "$ASSETS/$cmd.tmp" "$ASSETS/$cmd"
}

build_etcd() {
  local src="$CACHE_ROOT/envtest/src/etcd-$ETCD_VERSION"
  mkdir -p "$src"
  log "building etcd v$ETCD_VERSION from the Go module proxy (first time: ~1-2 min)"
  (
    cd "$src"
    cat >go.mod <<MOD
module xenclone.dev/envtest/etcd

require go.etcd.io/etcd/server/v3 v$ETCD_VERSION
MOD
    cat >main.go <<'GO'
// Package main only anchors the module; the binary is built from go.etcd.io/etcd/server/v3.
package main

import _ "go.etcd.io/etcd/server/v3/etcdmain"

func main() {}
GO
    GOFLAGS=-mod=mod "$GO" mod tidy >&2
    CGO_ENABLED=0 GOFLAGS=-mod=mod "$GO" build -trimpath -ldflags=-s -o "$ASSETS/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
  )
  mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
}

works "$ASSETS/etcd" || build_etcd
for cmd in kube-apiserver kube-controller-manager kube-scheduler "$@"; do
  case $cmd in
  kube-apiserver | kube-controller-manager | kube-scheduler | kubelet) ;;
  *) log "unknown command $cmd: the extra commands are kubelet"; exit 2 ;;
  esac
  works "$ASSETS/$cmd" || build_k8s "$cmd"
done
echo "$ASSETS"
