#!/usr/bin/env bash
# A new user's first minutes, scripted: `make run` in the background, apply the samples, wait for
# a clone and a 3-member pool to be Ready with plain kubectl, delete them, check the simulated
# hosts are clean, and shut the playground down with a signal. CI runs it after `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="$(mktemp -d /tmp/xenclone-smoke.XXXXXX)"
log="$dir/run.log"
step() { echo "smoke: $*"; }
fail() { echo "smoke: FAIL: $*" >&2; echo "--- playground log (tail) ---" >&2; tail -n 60 "$log" >&2 || true; exit 1; }

# setsid: the playground gets its own process group, which we signal as Ctrl-C would.
setsid make run RUNFLAGS="--dir=$dir --hosts=3 --metrics-bind-address=0 --health-probe-bind-address=0" >"$log" 2>&1 &
pid=$!
cleanup() {
  if kill -0 "$pid" 2>/dev/null; then kill -TERM -- "-$pid" 2>/dev/null || true; sleep 2; kill -KILL -- "-$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

step "waiting for the playground (first run builds the control plane)"
for _ in $(seq 1 1200); do
  grep -q "playground is up" "$log" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || fail "make run exited early"
  sleep 1
done
grep -q "playground is up" "$log" || fail "playground not up after 20 minutes"
export KUBECONFIG="$dir/kubeconfig"

k() { echo "+ kubectl $*"; kubectl "$@"; }
k get xenhosts,vmtemplates
k wait --for=condition=Ready vmtemplate/debian12 --timeout=60s
k apply -f config/samples/vm_v1alpha1_vmclone.yaml
k apply -f config/samples/vm_v1alpha1_vmclonepool.yaml
k scale vmclonepool/ci-runners --replicas=3
k wait --for=condition=Ready vmclone/web-1 --timeout=120s || fail "clone web-1 not Ready"
k wait --for=condition=Ready vmclonepool/ci-runners --timeout=120s || fail "pool not Ready"
# The sample pool starts at 5; scaling to 3 deletes members 3 and 4 (their domains shut down).
k wait --for=delete vmclone/ci-runners-3 vmclone/ci-runners-4 --timeout=120s 2>/dev/null || true
k get vmclones -o wide
n=$(kubectl get vmclones --no-headers | wc -l)
[ "$n" -eq 4 ] || fail "want 4 clones (1 + 3 pool members), got $n"
running=$(for h in "$dir"/hosts/*/xl; do XLSIM_STATE_DIR="$h" go run . xlsim xl list | tail -n +3; done | wc -l)
[ "$running" -eq 4 ] || fail "want 4 domains on the simulated hosts, got $running"

k delete -f config/samples/vm_v1alpha1_vmclonepool.yaml --wait=true
k delete -f config/samples/vm_v1alpha1_vmclone.yaml --wait=true
k wait --for=delete vmclones --all --timeout=120s || true
n=$(kubectl get vmclones --no-headers 2>/dev/null | wc -l)
[ "$n" -eq 0 ] || fail "clones left after delete: $n"
left=$(for h in "$dir"/hosts/*/xl; do XLSIM_STATE_DIR="$h" go run . xlsim xl list | tail -n +3; done | wc -l)
[ "$left" -eq 0 ] || fail "domains left on the simulated hosts: $left"
for h in "$dir"/hosts/*; do
  [ -z "$(ls -A "$h/domains" 2>/dev/null)" ] || fail "domain configs left in $h/domains"
  [ -z "$(ls -A "$h/seed" 2>/dev/null)" ] || fail "seeds left in $h/seed"
done

step "stopping the playground (SIGTERM, as Ctrl-C)"
kill -TERM -- "-$pid"
# Every process of the playground's group (make, go run, xenclone, kube-apiserver, etcd) must
# be gone: the group id is $pid (setsid).
for _ in $(seq 1 60); do pgrep -g "$pid" >/dev/null || break; sleep 1; done
if pgrep -g "$pid" >/dev/null; then fail "processes left running 60 s after SIGTERM: $(pgrep -ag "$pid")"; fi
grep -q "stopping control plane" "$log" || fail "the playground did not shut its control plane down"
step "ok: 1 clone + 3 pool members Ready, deleted, hosts clean, clean shutdown"
