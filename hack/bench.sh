#!/usr/bin/env bash
# make bench: builds the xenclone binary, the xl simulator and the bench program into a temp
# folder, runs the bench from the repository root (it reads config/crd and config/samples) and
# removes the folder. Flags pass through, e.g.
#   make bench BENCHFLAGS="-clones 200 -hosts 5 -scale 2000 -name small"
# Results: markdown tables on stdout, JSON in bench/results/<name>.json. See docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"
command -v "$GO" >/dev/null 2>&1 || GO=/usr/local/go/bin/go
if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  echo "bench: KUBEBUILDER_ASSETS is not set: run 'make bench', which builds kube-apiserver and etcd first" >&2
  exit 1
fi
bin="$(mktemp -d "${TMPDIR:-/tmp}/xenclone-bench-bin.XXXXXX")"
trap 'rm -rf "$bin"' EXIT
echo "bench: building xenclone, the xl simulator and the bench into $bin" >&2
"$GO" build -o "$bin/xenclone" .
"$GO" build -o "$bin/xl" ./hostagent/xen/xlsim/cmd/xl
"$GO" build -o "$bin/bench" ./bench
"$bin/bench" -xenclone "$bin/xenclone" "$@"
