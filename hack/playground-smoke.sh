#!/usr/bin/env bash
# A new user's first hour, scripted: `make run` in the background, then the commands of
# README.md, docs/user-guide.md, docs/troubleshooting.md and docs/gitops.md word for word (the
# `doc` helper below) against it — samples, waits, reset, run strategies, pools and scaling,
# placement, cordoning, Argo CD health checks, the cluster install — with checks of what they
# did; then delete everything, check the simulated hosts are clean, shut the playground down
# with a signal, and let hack/docscheck check that every documented command ran (or is
# allowlisted with a reason). CI runs it after `make test`.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

dir="$(mktemp -d /tmp/xenclone-smoke.XXXXXX)"
log="$dir/run.log"
trace="$dir/trace" # the documented commands that ran, NUL-separated, for hack/docscheck
# The user's second shell: a checkout's config/ (a link to this one) and the playground's
# .playground/ folder, so `export KUBECONFIG=$PWD/.playground/kubeconfig` and
# `kubectl apply -f config/samples/...` work as printed without touching this checkout's own
# .playground (a playground you may be running).
work="$dir/work"
mkdir -p "$work"
ln -s "$repo/config" "$work/config"
t0=$(date +%s)
step() { echo "smoke: [$(($(date +%s) - t0))s] $*"; }
fail() {
  echo "smoke: FAIL: $*" >&2
  echo "--- playground log (tail) ---" >&2
  tail -n 60 "$log" >&2 || true
  exit 1
}
trap 'fail "line $LINENO: $BASH_COMMAND"' ERR
exec 3>&1 # doc echoes the commands here, also when its output is captured

# doc runs a command exactly as the docs print it: one single-quoted argument, or a heredoc
# ending in a line CMD for commands with single quotes or several lines. WORD=value arguments
# before it fill in the docs' placeholders (NAME, HOST). hack/docscheck reads these calls and
# the trace.
doc() {
  local c w run
  local -a subs=()
  while [ $# -gt 0 ] && [[ "$1" =~ ^[A-Z][A-Z_]*=[^[:space:]]*$ ]]; do
    subs+=("$1")
    shift
  done
  if [ $# -gt 0 ]; then c="$1"; else c="$(cat)"; fi
  run="$c"
  for w in ${subs[@]+"${subs[@]}"}; do run="${run//${w%%=*}/${w#*=}}"; done
  printf '+ [%ss] %s\n' "$(($(date +%s) - t0))" "$run" >&3
  eval "$run" || {
    local rc=$?
    echo "smoke: documented command failed (exit $rc): $run" >&2
    return "$rc"
  }
  printf '%s\0' "$c" >>"$trace"
}
# doc_fails runs a documented command that must fail (the docs say what it prints then), and
# prints what it printed, stderr included.
doc_fails() {
  printf '+ [%ss] %s\n' "$(($(date +%s) - t0))" "$1" >&3
  if eval "$1" 2>&1; then
    echo "smoke: documented command succeeded, the docs say it fails: $1" >&2
    return 1
  fi
  printf '%s\0' "$1" >>"$trace"
}
# doc_bg starts a documented command in the background, in its own process group (signalled
# as Ctrl-C would be); its pid is the group id.
doc_bg() {
  printf '+ %s &\n' "$1" >&3
  setsid bash -c "$1" >"$log" 2>&1 &
  pid=$!
  printf '%s\0' "$1" >>"$trace"
}
cleanup() {
  if [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    sleep 2
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

# The playground's flags, through make's environment so the command stays `make run`: its own
# folder, and no fixed metrics/probe ports (CI machines run other things).
export RUNFLAGS="--dir=$work/.playground --hosts=3 --metrics-bind-address=0 --health-probe-bind-address=0"
step "make run (the first run builds the control plane)"
doc_bg 'make run'
for _ in $(seq 1 1200); do
  grep -q "playground is up" "$log" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || fail "make run exited early"
  sleep 1
done
grep -q "playground is up" "$log" || fail "playground not up after 20 minutes"
go build -o "$dir/xenclone" . # for xlsim below (the binary make run built; cached)
# What make run prints to type next is the README's walkthrough.
mapfile -t hints < <(sed -n 's/^  \(kubectl .*\)$/\1/p' "$log")
[ "${#hints[@]}" -ge 5 ] || fail "make run printed no kubectl commands to type next"
for h in "${hints[@]}"; do grep -qF -- "$h" README.md || fail "make run suggests '$h', which README.md does not print"; done
domains() { for h in "$work"/.playground/hosts/*/xl; do XLSIM_STATE_DIR="$h" "$dir/xenclone" xlsim xl list | tail -n +3; done | wc -l; }

cd "$work"
step "README / user guide 1: first clone"
doc 'export KUBECONFIG=$PWD/.playground/kubeconfig'
[ "$KUBECONFIG" = "$work/.playground/kubeconfig" ] || fail "KUBECONFIG=$KUBECONFIG"
doc 'kubectl get xenhosts,vmtemplates'
step "a template with a source: every host imports it"
doc 'kubectl apply -f .playground/vmtemplate-imported.yaml'
doc 'kubectl get vmtemplates -o wide'
doc 'kubectl wait --for=condition=Imported vmtemplate/debian12-imported --timeout=120s'
doc 'kubectl describe vmtemplate debian12-imported' | grep -q 'Phase: *Succeeded' || fail "describe vmtemplate shows no Succeeded import"
[ "$(kubectl get vmtemplate debian12-imported -o jsonpath='{.status.readyHosts}')" = 3 ] || fail "the imported template is not ready on all 3 hosts"
kubectl wait --for=condition=Ready vmtemplate/debian12 --timeout=60s
out=$(doc 'kubectl get vmt')
echo "$out"
grep -Eq '^debian12 +vg0 +debian12-template +Classic +3 ' <<<"$out" || fail "debian12 should be ready on 3 hosts"
out=$(doc 'kubectl describe vmt debian12')
for h in xen-01 xen-02 xen-03; do grep -q "$h" <<<"$out" || fail "kubectl describe vmt lists no $h"; done
# The playground created the sample template as kubectl apply does: re-applying it is a no-op
# without the missing last-applied-configuration warning.
out=$(doc 'kubectl apply -f config/samples/vm_v1alpha1_vmtemplate.yaml' 2>&1)
echo "$out"
[[ "$out" != *Warning* && "$out" != *warning* ]] || fail "kubectl apply of the sample template warned: $out"
[ "$out" = "vmtemplate.vm.xenclone.dev/debian12 unchanged" ] || fail "re-applying the sample template changed it: $out"
doc 'kubectl apply -f config/samples/vm_v1alpha1_vmclone.yaml'
doc 'kubectl wait --for=condition=Ready vmclone/web-1 --timeout=60s'
doc 'kubectl get vmclones -o wide'
doc 'kubectl describe vmclone web-1'
# The user guide's way to find a clone's domain: the default name ends in a hash of the UID.
out=$(doc <<'CMD'
kubectl get vmclone web-1 -o jsonpath='{.status.nodeName} {.status.domain.name}{"\n"}'
CMD
)
echo "$out" | grep -Eq '^[^ ]+ xc-default-web-1-[0-9a-f]{10}$' || fail "web-1's domain name is not xc-default-web-1-<hash>: $out"
# The README's next step; the pool fills while the sections below run (section 8 checks it).
doc 'kubectl apply -f config/samples/vm_v1alpha1_vmclonepool.yaml'

step "the docs' YAML examples of xenclone and core kinds pass the API server's validation"
# Server-side dry run: defaults, schema and CEL rules, nothing stored. (Argo CD and Flux
# objects in gitops.md are skipped: their CRDs are not installed here.)
mkdir -p "$dir/yaml"
for f in "$repo"/README.md "$repo"/docs/*.md; do
  [ "$f" = "$repo/docs/host-lab.md" ] && continue
  awk -v out="$dir/yaml/$(basename "$f" .md)" '/^```yaml/ { f = 1; n = out "-" NR ".yaml"; next } /^```/ { f = 0 } f { print > n }' "$f"
done
checked=0
for y in "$dir"/yaml/*.yaml; do
  [ -e "$y" ] || continue
  grep -Eq '^apiVersion: (vm\.xenclone\.dev/|v1$)' "$y" || continue
  kubectl apply --dry-run=server -f "$y" >/dev/null || fail "the API server rejects the example at $(basename "$y")"
  checked=$((checked + 1))
done
[ "$checked" -ge 8 ] || fail "only $checked YAML examples found in the docs"
echo "smoke: $checked YAML examples accepted"

step "user guide 2: hosts and heartbeats"
doc 'kubectl get xenhosts'
doc 'kubectl -n xenclone-system get leases'
n=$(kubectl -n xenclone-system get leases -o name | grep -c '/xen-0') || true
[ "$n" -eq 3 ] || fail "want a heartbeat Lease per simulated host, got $n"
out=$(doc 'kubectl get xenhosts -o custom-columns=HOST:.metadata.name,AGENT:.status.agentVersion')
echo "$out"
n=$(awk 'NR > 1 && $2 != "" && $2 != "<none>"' <<<"$out" | wc -l)
[ "$n" -eq 3 ] || fail "want each simulated host's agent version in its XenHost, got $n rows with one"

step "user guide 10 / troubleshooting: reading a clone"
doc 'kubectl get events --field-selector involvedObject.name=web-1 --sort-by=.lastTimestamp'
out=$(doc NAME=web-1 <<'CMD'
kubectl get vmclone NAME -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'
CMD
)
echo "$out"
grep -q '^Ready=True Running: ' <<<"$out" || fail "no Ready=True line in the conditions"
doc NAME=web-1 'kubectl describe vmclone NAME'
out=$(doc NAME=web-1 'kubectl get events --field-selector involvedObject.name=NAME --sort-by=.lastTimestamp')
echo "$out"
grep -q Started <<<"$out" || fail "no Started event for web-1"

step "user guide 6: reset"
uuid=$(kubectl get vmclone web-1 -o jsonpath='{.status.uuid}')
doc <<'CMD'
kubectl patch vmclone web-1 --type merge -p '{"spec":{"resetRequests":1}}'
CMD
doc 'kubectl wait --for=condition=Ready vmclone/web-1 --timeout=120s'
out=$(doc <<'CMD'
kubectl get vmclone web-1 -o jsonpath='{.status.observedResetRequests}{"\n"}'
CMD
)
echo "$out"
[ "$out" = 1 ] || fail "observedResetRequests=$out after the documented wait, want 1"
[ "$(kubectl get vmclone web-1 -o jsonpath='{.status.uuid}')" = "$uuid" ] || fail "the reset changed the clone's UUID"
out=$(kubectl get events --field-selector involvedObject.name=web-1)
grep -q 'from a fresh disk: Classic snapshot' <<<"$out" || fail "no Started event naming the fresh snapshot after the reset"

step "README / user guide 4: log in to your VM (addresses, readiness, the kubectl plugin)"
out=$(doc 'kubectl get vmclones -o wide')
echo "$out"
grep -Eq '^web-1 +Running .* 10\.[0-9]+\.[0-9]+\.[0-9]+ ' <<<"$out" || fail "kubectl get vmclones -o wide shows no IP for web-1"
doc 'kubectl wait --for=condition=GuestReady vmclone/web-1 --timeout=60s'
out=$(doc <<'CMD'
kubectl get vmclone web-1 -o jsonpath='{.status.guest.ip}{"\n"}'
CMD
)
mac=$(kubectl get vmclone web-1 -o jsonpath='{.status.interfaces[0].mac}')
IFS=: read -r _ _ _ m4 m5 m6 <<<"$mac"
[ "$out" = "10.$((16#$m4)).$((16#$m5)).$((16#$m6))" ] || fail "web-1's address $out is not the simulated guest agent's for MAC $mac"
[ "$(kubectl get vmclone web-1 -o jsonpath='{.status.guest.interfaces[0].source}')" = GuestAgent ] || fail "web-1's address does not come from its guest agent"
cd "$repo"
doc 'make build && export PATH=$PWD/bin:$PATH'
cd "$work"
command -v kubectl-xenclone >/dev/null || fail "make build did not put kubectl-xenclone on PATH"
out=$(doc_fails 'kubectl xenclone console web-1')
echo "$out"
grep -q '^error: no hostagent pod on node xen-0[1-3] in namespace xenclone-system: .*playground' <<<"$out" || fail "kubectl xenclone console did not say why in one line: $out"
[ "$(grep -c . <<<"$out")" -eq 1 ] || fail "kubectl xenclone console printed more than its error line: $out"
out=$(doc 'kubectl xenclone reset web-1')
echo "$out"
grep -q 'reset 2 requested' <<<"$out" || fail "kubectl xenclone reset did not request reset 2: $out"
doc 'kubectl wait --for=condition=Ready vmclone/web-1 --timeout=120s'
[ "$(kubectl get vmclone web-1 -o jsonpath='{.status.observedResetRequests}')" = 2 ] || fail "the plugin's reset was not carried out"

step "user guide 5: run strategies"
doc <<'CMD'
kubectl apply -f - <<'EOF'
apiVersion: vm.xenclone.dev/v1alpha1
kind: VMClone
metadata:
  name: lab-1
spec:
  templateRef:
    name: debian12
  runStrategy: Halted
EOF
CMD
doc 'kubectl wait --for=condition=Ready vmclone/lab-1'
out=$(doc 'kubectl get vmclone lab-1')
echo "$out"
# A Halted clone is Ready only once the agent reports its domain off: the phase says Stopped.
grep -q ' Stopped ' <<<"$out" || { echo "smoke: FAIL: lab-1 is Ready but its phase is not Stopped"; exit 1; }
doc <<'CMD'
kubectl patch vmclone lab-1 --type merge -p '{"spec":{"runStrategy":"Always"}}'
CMD
doc <<'CMD'
kubectl wait --for=jsonpath='{.status.phase}'=Running vmclone/lab-1
CMD
kubectl patch vmclone lab-1 --type merge -p '{"spec":{"runStrategy":"Halted"}}'
doc <<'CMD'
kubectl wait --for=jsonpath='{.status.phase}'=Stopped vmclone/lab-1
CMD

step "README / user guide 8: pools"
doc 'kubectl wait --for=condition=Ready vmclonepool/ci-runners --timeout=90s'
doc 'kubectl get vmclonepools'
doc 'kubectl get vmclones -l vm.xenclone.dev/pool=ci-runners'
doc 'kubectl scale vmclonepool/ci-runners --replicas=10'
kubectl wait --for=condition=Ready vmclonepool/ci-runners --timeout=90s
doc 'kubectl wait --for=condition=Ready vmclonepool/ci-runners --timeout=300s'
n=$(kubectl get vmclones -l vm.xenclone.dev/pool=ci-runners --no-headers | wc -l)
[ "$n" -eq 10 ] || fail "want 10 pool members after scaling, got $n"
doc 'kubectl scale vmclonepool/ci-runners --replicas=2'
for _ in $(seq 1 120); do
  n=$(kubectl get vmclones -l vm.xenclone.dev/pool=ci-runners --no-headers | wc -l)
  [ "$n" -eq 2 ] && break
  sleep 1
done
[ "$n" -eq 2 ] || fail "want 2 pool members after scaling down, got $n"
kubectl get vmclone ci-runners-0 ci-runners-1 >/dev/null || fail "scaling down should delete the highest indexes"

step "README / user guide 8: claims"
doc 'kubectl apply -f config/samples/vm_v1alpha1_vmclaim.yaml'
doc 'kubectl wait --for=condition=Ready vmclaim/job-42 --timeout=60s'
out=$(doc 'kubectl get vmclaim job-42')
echo "$out"
grep -qw Warm <<<"$out" || fail "job-42 did not get a warm member: $out"
member=$(kubectl get vmclaim job-42 -o jsonpath='{.status.cloneName}')
[ "$(kubectl get vmclone "$member" -o jsonpath='{.metadata.labels.vm\.xenclone\.dev/claim}')" = job-42 ] ||
  fail "member $member does not carry the claim label"
# The member left the pool, which makes a new one: two unclaimed members again.
for _ in $(seq 1 60); do
  n=$(kubectl get vmclones -l 'vm.xenclone.dev/pool=ci-runners,!vm.xenclone.dev/claim' --no-headers | wc -l)
  [ "$n" -eq 2 ] && break
  sleep 1
done
[ "$n" -eq 2 ] || fail "the pool did not refill after the claim: $n unclaimed members"
out=$(doc 'kubectl get vmclonepools')
grep -E '^ci-runners ' <<<"$out" | awk '{exit !($7 == 1)}' || fail "the pool's CLAIMED column is not 1: $out"
doc 'kubectl delete vmclaim job-42'
kubectl wait --for=delete "vmclone/$member" --timeout=60s || fail "the claim's VM was not deleted with it"

step "user guide 8: a paused pool and claim-time data"
doc 'kubectl apply -f config/samples/vm_v1alpha1_vmclonepool_paused.yaml'
doc <<'CMD'
kubectl wait --for=jsonpath='{.status.phase}'=Paused vmclone/sandboxes-0 --timeout=120s
CMD
for i in 1 2; do
  kubectl wait --for=jsonpath='{.status.phase}'=Paused "vmclone/sandboxes-$i" --timeout=120s || fail "sandboxes-$i did not pause"
done
out=$(doc 'kubectl get vmclones -l vm.xenclone.dev/pool=sandboxes')
echo "$out"
[ "$(grep -cw Paused <<<"$out")" -eq 3 ] || fail "want 3 Paused members of sandboxes: $out"
doc 'kubectl apply -f config/samples/vm_v1alpha1_vmclaim_paused.yaml'
doc 'kubectl wait --for=condition=Ready vmclaim/sandbox-alice --timeout=60s'
out=$(doc 'kubectl get vmclaim sandbox-alice')
echo "$out"
grep -qw Warm <<<"$out" || fail "sandbox-alice did not get a warm member: $out"
member=$(kubectl get vmclaim sandbox-alice -o jsonpath='{.status.cloneName}')
[ "$(kubectl get vmclone "$member" -o jsonpath='{.status.phase}')" = Running ] || fail "claimed member $member is not Running again"
[ "$(kubectl get vmclone "$member" -o jsonpath='{.status.conditions[?(@.type=="GuestDataDelivered")].status}')" = True ] ||
  fail "the claim's data was not delivered to $member"
doc 'kubectl delete -f config/samples/vm_v1alpha1_vmclaim_paused.yaml'
kubectl wait --for=delete "vmclone/$member" --timeout=60s || fail "sandbox-alice's VM was not deleted with it"
doc 'kubectl delete -f config/samples/vm_v1alpha1_vmclonepool_paused.yaml'
kubectl wait --for=delete vmclonepool/sandboxes --timeout=120s || fail "the sandboxes pool is still there"

step "user guide 9: placement and cordoning"
# The guide's pinned clone, first pinned to a host that does not exist: it waits, then the
# documented patch fixes the pin and it is placed.
kubectl apply -f - <<'EOF'
apiVersion: vm.xenclone.dev/v1alpha1
kind: VMClone
metadata:
  name: pinned
spec:
  templateRef:
    name: debian12
  placement:
    nodeName: xen-09
EOF
kubectl wait --for=condition=Scheduled=false vmclone/pinned --timeout=30s
doc <<'CMD'
kubectl patch vmclone pinned --type merge -p '{"spec":{"placement":{"nodeName":"xen-02"}}}'
CMD
kubectl wait --for=condition=Ready vmclone/pinned --timeout=60s
[ "$(kubectl get vmclone pinned -o jsonpath='{.status.nodeName}')" = xen-02 ] || fail "pinned clone not on xen-02"
doc <<'CMD'
kubectl patch xenhost xen-01 --type merge -p '{"spec":{"unschedulable":true}}'
CMD
out=$(kubectl get xh xen-01 --no-headers)
grep -qw true <<<"$out" || fail "CORDONED does not show true for xen-01: $out"
kubectl patch xenhost xen-01 --type merge -p '{"spec":{"unschedulable":false}}'

step "explain and the API reference's kinds"
out=$(kubectl explain vmclone.spec)
grep -q templateRef <<<"$out" || fail "kubectl explain vmclone.spec has no templateRef"
out=$(kubectl explain vmtemplate.spec.snapshot)
grep -q cowSize <<<"$out" || fail "kubectl explain vmtemplate.spec.snapshot has no cowSize"

step "gitops: Argo CD health checks"
# Stand-in for an installed Argo CD: its namespace and (empty) argocd-cm; the documented patch
# merges the health checks in. The Lua scripts themselves are tested in ./hostagent (make test).
kubectl create namespace argocd
kubectl -n argocd create configmap argocd-cm
doc 'kubectl -n argocd patch configmap argocd-cm --type merge --patch-file config/argocd/argocd-cm-patch.yaml'
for k in VMClone VMClonePool VMClaim VMTemplate; do
  out=$(kubectl -n argocd get configmap argocd-cm -o "jsonpath={.data.resource\.customizations\.health\.vm\.xenclone\.dev_$k}")
  grep -q 'hs.status' <<<"$out" || fail "argocd-cm has no health check for $k"
done

step "deleting: clones, pool, hosts clean"
doc 'kubectl delete vmclone web-1'
doc 'kubectl wait --for=delete vmclone/web-1 --timeout=120s'
doc 'kubectl delete -f config/samples/vm_v1alpha1_vmclonepool.yaml'
kubectl delete vmclone lab-1 pinned --wait=true
kubectl wait --for=delete vmclones --all --timeout=120s || true
n=$(kubectl get vmclones --no-headers 2>/dev/null | wc -l)
[ "$n" -eq 0 ] || fail "clones left after delete: $n"
kubectl get vmclonepool ci-runners 2>/dev/null && fail "the pool is still there"
left=$(domains)
[ "$left" -eq 0 ] || fail "domains left on the simulated hosts: $left"
for h in "$work"/.playground/hosts/*; do
  [ -z "$(ls -A "$h/domains" 2>/dev/null)" ] || fail "domain configs left in $h/domains"
  [ -z "$(ls -A "$h/seed" 2>/dev/null)" ] || fail "seeds left in $h/seed"
  [ -z "$(find "$h/import-data" -type f 2>/dev/null)" ] || fail "import data left in $h/import-data"
done
doc 'kubectl delete vmtemplate debian12-imported'
kubectl wait --for=delete vmtemplate/debian12-imported --timeout=60s

step "README / user guide 2: the cluster install, against the playground's API server"
# This proves the kustomization builds and the API server accepts every object, and that
# make deploy puts IMG into the manager; nothing runs them here (the playground has no nodes).
doc 'kubectl apply -k config/default'
(cd "$repo" && doc 'make deploy IMG=ghcr.io/xenclone/xenclone:v0.1.0')
img=$(kubectl -n xenclone-system get deployment xenclone-manager -o jsonpath='{.spec.template.spec.containers[0].image}')
[ "$img" = ghcr.io/xenclone/xenclone:v0.1.0 ] || fail "make deploy IMG=... left the manager's image at $img"
kubectl -n xenclone-system get daemonset xenclone-hostagent >/dev/null
doc 'kubectl apply -k config/admission'
kubectl get validatingadmissionpolicybinding -o name | grep -q . || fail "kubectl apply -k config/admission made no policy binding"

step "stopping the playground (SIGTERM, as Ctrl-C)"
cd "$repo"
kill -TERM -- "-$pid"
# Every process of the playground's group (make, go run, xenclone, kube-apiserver, etcd) must
# be gone: the group id is $pid (setsid).
for _ in $(seq 1 60); do pgrep -g "$pid" >/dev/null || break; sleep 1; done
if pgrep -g "$pid" >/dev/null; then fail "processes left running 60 s after SIGTERM: $(pgrep -ag "$pid")"; fi
grep -q "stopping control plane" "$log" || fail "the playground did not shut its control plane down"

step "every documented command ran or is allowlisted (hack/docscheck)"
DOCSCHECK_TRACE="$trace" go test -count=1 -v -run 'TestSmokeRanEveryDocCommand|TestDocCommandsRunOrAllowed' ./hack/docscheck ||
  fail "hack/docscheck: see above"
step "ok: the README's and user guide's walkthrough ran as printed, hosts clean, clean shutdown"
