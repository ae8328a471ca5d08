package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func TestReservations(t *testing.T) {
	r := newReservations()
	a := types.NamespacedName{Namespace: "ns", Name: "a"}
	r.reserveBinding(a, "uid-a", Binding{Host: "h1", MemoryMiB: 512}, "placed on h1", 1, testNow)
	if b, ok := r.bindingFor("uid-a"); !ok || b.Host != "h1" || b.message != "placed on h1" {
		t.Fatalf("bindingFor = %+v, %v", b, ok)
	}
	r.reserveInterfaces(a, "uid-a", []vmv1alpha1.InterfaceStatus{{MAC: "00:16:3e:00:00:01"}})
	r.reserveMAC(a, "uid-a", "00:16:3e:00:00:01")

	notBound := func(types.UID) bool { return false }
	now := time.Now()
	if got := r.pendingBindings(notBound, now); len(got) != 1 || got["uid-a"].Host != "h1" {
		t.Fatalf("pending = %v, want a's binding", got)
	}
	if owner := r.macOwner("00:16:3e:00:00:01", "uid-b"); owner != "ns/a" {
		t.Errorf("MAC owner for another clone = %q, want ns/a", owner)
	}
	if owner := r.macOwner("00:16:3e:00:00:01", "uid-a"); owner != "" {
		t.Errorf("a's own MAC reported taken by %q", owner)
	}
	// The ledger counts a: its binding is counted there, not twice.
	if got := r.pendingBindings(func(u types.UID) bool { return u == "uid-a" }, now); len(got) != 0 {
		t.Errorf("bound clone still pending: %v", got)
	}
	// A stale cache still showing a on another host does not drop the new binding.
	r.observed(a, "uid-a", "h0", nil)
	if _, ok := r.bindingFor("uid-a"); !ok {
		t.Fatal("binding dropped on a stale observation")
	}
	r.observed(a, "uid-a", "h1", []string{"00:16:3e:00:00:01"})
	if len(r.byName) != 0 {
		t.Errorf("name kept with nothing reserved: %v", r.byName)
	}
	if got := r.interfacesFor("uid-a"); got != nil {
		t.Errorf("observed interfaces kept: %v", got)
	}
	if _, ok := r.bindingFor("uid-a"); ok {
		t.Error("observed binding still returned as a decision the cache does not show")
	}
	// The cache shows a bound, but the ledger (fed by event handlers just after the cache)
	// may not count it yet: placement keeps counting it until the ledger does.
	if got := r.pendingBindings(notBound, now); len(got) != 1 || got["uid-a"].Host != "h1" {
		t.Errorf("confirmed binding not counted while the ledger lags: %v", got)
	}
	if got := r.pendingBindings(func(u types.UID) bool { return u == "uid-a" }, now); len(got) != 0 {
		t.Errorf("confirmed binding counted twice once the ledger has it: %v", got)
	}
	if got := r.pendingBindings(notBound, now); len(got) != 0 {
		t.Errorf("confirmed binding kept after the ledger counted it: %v", got)
	}
	if owner := r.macOwner("00:16:3e:00:00:01", "uid-b"); owner != "" {
		t.Errorf("observed MAC kept reserved by %q (the cache index answers now)", owner)
	}

	b := types.NamespacedName{Namespace: "ns", Name: "b"}
	r.reserveBinding(b, "uid-b", Binding{Host: "h2"}, "", 1, testNow)
	r.reserveMAC(b, "uid-b", "00:16:3e:00:00:02")
	r.forget(b)
	if got := r.pendingBindings(notBound, now); len(got) != 0 {
		t.Errorf("forgotten binding kept: %v", got)
	}
	if owner := r.macOwner("00:16:3e:00:00:02", "uid-c"); owner != "" {
		t.Errorf("forgotten MAC kept by %q", owner)
	}
}
