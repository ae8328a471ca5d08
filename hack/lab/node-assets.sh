#!/usr/bin/env bash
# Builds what makes the lab's dom0 a real Kubernetes node (issue 20) and prints the folder that
# holds it: the kubelet (k8s.io/kubernetes, built by hack/envtest-assets.sh beside
# kube-apiserver), containerd, its runc shim and ctr (github.com/containerd/containerd/v2, from
# the Go module proxy), and Debian's runc (bookworm, the release dom0 runs: runc needs cgo and
# libseccomp, which dom0 has).
#
# Why containerd from the Go proxy and not Debian's: bookworm's containerd is 1.6, and the
# kubelet's SIG Node supports containerd 1.x only up to Kubernetes 1.35.
#
# Idempotent: cached outside the clone under $XENCLONE_CACHE/lab/node-<versions>, reused.
# Progress goes to stderr; stdout is only the folder. Knobs: CONTAINERD_VERSION, RUNC_VERSION.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export PATH=/usr/local/go/bin:$PATH:/usr/sbin:/sbin

CONTAINERD_VERSION=${CONTAINERD_VERSION:-2.4.2}
RUNC_VERSION=${RUNC_VERSION:-1.1.5+ds1-1+deb12u1}
CACHE_ROOT=${XENCLONE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xenclone}
OUT=$CACHE_ROOT/lab/node-containerd-$CONTAINERD_VERSION-runc-${RUNC_VERSION//[:+~]/_}
log() { echo "node-assets: $*" >&2; }

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9

assets=$("$ROOT/hack/envtest-assets.sh" kubelet)
ln -sf "$assets/kubelet" "$OUT/kubelet"

if [[ ! -f $OUT/.containerd-done ]]; then
	src=$CACHE_ROOT/lab/src/containerd-$CONTAINERD_VERSION
	mkdir -p "$src"
	log "building containerd v$CONTAINERD_VERSION from the Go module proxy (first time: ~2-3 min on 2 cores)"
	(
		cd "$src"
		cat >go.mod <<-MOD
		module xenclone.dev/lab/containerd

		require github.com/containerd/containerd/v2 v$CONTAINERD_VERSION
		MOD
		cat >main.go <<-'GO'
		// Package main only anchors the module; the binaries are built from containerd.
		package main

		import _ "github.com/containerd/containerd/v2/cmd/containerd"

		func main() {}
		GO
		# hcsshim (Windows only, never built here) requires cosesign1go v1.6.0, whose go.mod the
		# checksum database does not answer for (404): skip the lookup for that one module.
		export GONOSUMDB=github.com/Microsoft/cosesign1go GOFLAGS=-mod=mod
		go mod tidy >&2
		for c in containerd containerd-shim-runc-v2 ctr; do
			CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$OUT/$c.tmp" "github.com/containerd/containerd/v2/cmd/$c" >&2
			mv "$OUT/$c.tmp" "$OUT/$c"
		done
	)
	touch "$OUT/.containerd-done"
fi

if [[ ! -x $OUT/runc ]]; then
	log "downloading Debian's runc $RUNC_VERSION"
	d=$(mktemp -d)
	trap 'rm -rf "$d"' EXIT
	if ! (cd "$d" && apt-get download -q "runc=$RUNC_VERSION" >/dev/null 2>&1); then
		[[ $(id -u) == 0 ]] && apt-get update -qq >/dev/null 2>&1 || true
		(cd "$d" && apt-get download -q "runc=$RUNC_VERSION" >/dev/null) ||
			{ log "cannot download runc=$RUNC_VERSION; set RUNC_VERSION to one 'apt-cache policy runc' lists"; exit 1; }
	fi
	dpkg-deb -x "$d"/runc_*.deb "$d/root"
	install -m755 "$d/root/usr/sbin/runc" "$OUT/runc"
fi
echo "$OUT"
