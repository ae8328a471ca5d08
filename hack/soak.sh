#!/usr/bin/env bash
# Chaos soak (package hostagent/soak): the real controller and node agents on simulated Xen
# hosts against a real kube-apiserver + etcd, with processes killed, the API server restarted
# and host faults injected; ends with the invariant table.
#
#   hack/soak.sh                                  # long run: 15 minutes of chaos
#   hack/soak.sh -soak.duration=1h -soak.hosts=5  # flags of the soak test
#   SOAK_REPORT=/tmp/soak.txt hack/soak.sh ...    # also write the table there
#
# `go test ./hostagent/soak` (make test, CI) runs the short version instead.
# Needs KUBEBUILDER_ASSETS (make soak sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"
command -v "$GO" >/dev/null 2>&1 || GO=/usr/local/go/bin/go
: "${KUBEBUILDER_ASSETS:?set KUBEBUILDER_ASSETS (run through make soak)}"

args=("$@")
duration=15m
for a in "${args[@]}"; do
  case "$a" in
    -soak.duration=*|--soak.duration=*) duration="${a#*=}" ;;
  esac
done
[[ " ${args[*]} " == *"soak.duration"* ]] || args+=("-soak.duration=$duration")

# go test's own bound: generous, the soak's own deadline is -soak.duration plus converging.
timeout="${SOAK_TIMEOUT:-3h}"
exec "$GO" test -count=1 -v -run '^TestChaosSoak$' -timeout "$timeout" ./hostagent/soak -args "${args[@]}"
