// Package e2e is the host lab's end-to-end test: the controller runs in the test process against
// envtest, the node agent runs inside a real Xen 4.17 dom0 booted under QEMU (TCG), on real LVM.
// The tests carry the build tag "lab" and run through `hack/lab/lab.sh test` (make test-e2e),
// which builds the lab images first; `go test ./...` compiles none of them.
package e2e
