// Package soak is xenclone's chaos soak: the real controller and several node agents on
// simulated Xen hosts run against a real kube-apiserver and etcd while clones and pools are
// created, reset and deleted, the processes are killed and restarted at random, the API server
// is restarted, hosts are cut off from it (their agents run on and must fence), two hosts' clocks
// are minutes off (one ahead, one behind: liveness is judged on the controller's clock) and host
// faults are injected. At the end the faults stop, everything converges
// and the invariants a platform team relies on are checked and printed as a table: nothing
// leaked, nothing foreign touched, no template byte changed, no finalizer stuck, no identity
// duplicated, no clone's domain ever running on two hosts at once.
//
// The package has only tests. `go test ./hostagent/soak` runs the short version (CI, under
// three minutes); `make soak SOAKFLAGS="-soak.duration=15m"` (hack/soak.sh) runs a long one.
package soak
