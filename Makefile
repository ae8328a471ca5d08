# xenclone — the two commands a user needs are `make run` and `make test`; both prepare
# everything they use (tools into bin/, the envtest control plane into ~/.cache/xenclone).

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export PATH := $(dir $(GO)):$(PATH)

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
CONTROLLER_TOOLS_VERSION ?= v0.23.0

# Test flags: `make test TESTFLAGS=-v` or `make test PKG=./api/...`.
PKG ?= ./...
TESTFLAGS ?=

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the markers, and docs/api-reference.md from the CRDs.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=false paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac/manager
	$(CONTROLLER_GEN) rbac:roleName=hostagent-role paths="./hostagent/..." output:rbac:artifacts:config=config/rbac/hostagent
	@$(MAKE) --no-print-directory api-docs

.PHONY: api-docs
api-docs: ## Generate docs/api-reference.md from the CRDs in config/crd/bases (make manifests does it too).
	$(GO) run ./hack/apiref -crds config/crd/bases -out docs/api-reference.md

.PHONY: generate
generate: controller-gen ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')

.PHONY: vet
vet: ## go vet.
	$(GO) vet ./...

.PHONY: verify
verify: generate manifests ## Fail if generated files or formatting are not committed.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@git diff --exit-code -- api config docs/api-reference.md || { echo "generated files are stale: run 'make generate manifests' and commit"; exit 1; }

.PHONY: test
test: envtest host-deps vet ## Run every test: unit, host-real (root) and envtest against a real kube-apiserver + etcd.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" $(GO) test $(TESTFLAGS) $(PKG)

.PHONY: bench
bench: envtest host-deps ## Benchmarks: control-plane scale/latency vs the bare host operations, clone cost vs full copy; tables + bench/results/*.json.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" hack/bench.sh $(BENCHFLAGS)

.PHONY: soak
soak: envtest ## Chaos soak: create/reset/delete cycles while controller, agents and API server are killed and host faults injected; prints the invariants.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" hack/soak.sh $(SOAKFLAGS)

.PHONY: fuzz
fuzz: ## Run every go test -fuzz target for FUZZTIME each (default 10s).
	hack/fuzz.sh $(FUZZTIME)

.PHONY: lab
lab: ## Build (cached) and boot the QEMU host lab: real Xen 4.17 dom0 with real LVM.
	hack/lab/lab.sh build

.PHONY: test-e2e
test-e2e: envtest ## End-to-end: the controller here, the host agent in the QEMU lab's dom0 on real Xen + LVM.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" hack/lab/lab.sh test

.PHONY: lab-fixtures
lab-fixtures: ## Capture real lvm/xl outputs from the lab into the parsers' testdata/.
	hack/lab/lab.sh fixtures

##@ Build and run

.PHONY: build
build: ## Build bin/xenclone and the kubectl plugin bin/kubectl-xenclone (docs/kubectl-plugin.md).
	$(GO) build -o $(LOCALBIN)/xenclone .
	$(GO) build -o $(LOCALBIN)/kubectl-xenclone ./cmd/kubectl-xenclone

.PHONY: image
image: ## Build the one image as an OCI archive, bin/xenclone-image.tar, without a container engine (IMG=... names it; docs/image.md).
	IMG=$(IMG) hack/image.sh $(LOCALBIN)/xenclone-image.tar

.PHONY: run
run: envtest ## Start the playground: embedded kube-apiserver + etcd, CRDs, controller (or a real cluster: make run KUBECONFIG=...).
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" $(GO) run . playground $(RUNFLAGS)

IMG ?= ghcr.io/xenclone/xenclone:latest

.PHONY: deploy
deploy: manifests ## Install CRDs, RBAC, the manager and the hostagent DaemonSet into the cluster of $$KUBECONFIG (IMG=... to pick the image).
	kubectl kustomize config/default | sed 's|ghcr.io/xenclone/xenclone:latest|$(IMG)|g' | kubectl apply -f -

.PHONY: undeploy
undeploy: ## Remove what deploy installed (delete your VMClones first: their finalizers need the agents).
	kubectl kustomize config/default | kubectl delete --ignore-not-found -f -

##@ Dependencies

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: envtest
envtest: ## Build (once, cached in ~/.cache/xenclone) kube-apiserver, etcd, kube-controller-manager and kube-scheduler from the Go module proxy.
	@hack/envtest-assets.sh >/dev/null

.PHONY: host-deps
host-deps: ## As root: install the host tools the host-real tests drive (lvm2, fdisk, xfsprogs...).
	@hack/host-deps.sh
