package main

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func TestSplitClaimWrites(t *testing.T) {
	p := Phase{
		APIServerRequestsByResource: RequestCounts{
			"POST vmclaims.vm.xenclone.dev":         4, // the bench's creates
			"PATCH vmclaims.vm.xenclone.dev":        4, // finalizers
			"APPLY vmclaims.vm.xenclone.dev/status": 5,
			"PATCH vmclones.vm.xenclone.dev":        6, // 4 handovers, 2 conflicts
			"APPLY vmclones.vm.xenclone.dev/status": 9, // agents 6, controller 3
			"POST vmclones.vm.xenclone.dev":         4, // the refill
			"POST events.events.k8s.io":             8,
			"LIST vmclones.vm.xenclone.dev":         3, // not a write
		},
		BenchRequestsByResource: RequestCounts{"POST vmclaims.vm.xenclone.dev": 4},
		AgentRequestsByResource: RequestCounts{"APPLY vmclones.vm.xenclone.dev/status": 6},
	}
	cw := splitClaimWrites(p, 4)
	want := RequestCounts{"PATCH vmclaims.vm.xenclone.dev": 4, "APPLY vmclaims.vm.xenclone.dev/status": 5, "PATCH vmclones.vm.xenclone.dev": 6}
	if len(cw.Writes) != len(want) {
		t.Fatalf("claim writes %v, want %v", cw.Writes, want)
	}
	for k, v := range want {
		if cw.Writes[k] != v {
			t.Errorf("%s = %d, want %d", k, cw.Writes[k], v)
		}
	}
	if cw.PerClaim != 15.0/4 {
		t.Errorf("per claim %.2f, want 3.75", cw.PerClaim)
	}
	if cw.RefillWrites["POST vmclones.vm.xenclone.dev"] != 4 || cw.RefillWrites["APPLY vmclones.vm.xenclone.dev/status"] != 9 || len(cw.RefillWrites) != 2 {
		t.Errorf("refill writes %v", cw.RefillWrites)
	}
}

func TestPoolWatchRefill(t *testing.T) {
	w := newPoolWatch(3)
	pool := func(ready int32) *vmv1alpha1.VMClonePool {
		return &vmv1alpha1.VMClonePool{ObjectMeta: metav1.ObjectMeta{Name: claimPoolName}, Status: vmv1alpha1.VMClonePoolStatus{ReadyReplicas: ready}}
	}
	w.see(pool(3)) // full before the claims: not a refill
	w.arm()
	w.see(pool(3)) // the first claims not seen yet: still not a refill
	select {
	case <-w.onRefill:
		t.Fatal("refill before the pool dropped")
	default:
	}
	w.see(pool(1))
	w.see(pool(2))
	w.see(pool(3))
	select {
	case <-w.onRefill:
	case <-time.After(time.Second):
		t.Fatal("no refill at 3 of 3")
	}
	w.see(pool(0))
	w.see(pool(3)) // a second refill does not close the channel twice
	if w.min != 0 || w.refilled.IsZero() {
		t.Errorf("min %d refilled %v", w.min, w.refilled)
	}
}
