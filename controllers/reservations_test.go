package controllers

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/types"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func TestReservations(t *testing.T) {
	r := newReservations()
	a := types.NamespacedName{Namespace: "ns", Name: "a"}
	r.reserveBinding(a, "uid-a", "dom-a", Binding{Host: "h1", MemoryMiB: 512}, "placed on h1", 1, testNow)
	if b, ok := r.bindingFor("uid-a"); !ok || b.Host != "h1" || b.message != "placed on h1" {
		t.Fatalf("bindingFor = %+v, %v", b, ok)
	}
	// The binding holds its domain name for every other clone until the cache shows it.
	if h, ok := r.domainHolder("dom-a", "uid-other"); !ok || h.key != a || h.Host != "h1" {
		t.Errorf("domainHolder(dom-a) for another clone = %+v, %v; want ns/a on h1", h, ok)
	}
	if h, ok := r.domainHolder("dom-a", "uid-a"); ok {
		t.Errorf("a holds its own name against itself: %+v", h)
	}
	if _, ok := r.domainHolder("dom-z", "uid-other"); ok {
		t.Error("a name nobody reserved is held")
	}
	r.reserveInterfaces(a, "uid-a", []vmv1alpha1.InterfaceStatus{{MAC: "00:16:3e:00:00:01"}})
	r.reserveMAC(a, "uid-a", "00:16:3e:00:00:01")

	notBound := func(types.UID, string) bool { return false }
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
	if got := r.pendingBindings(func(u types.UID, h string) bool { return u == "uid-a" && h == "h1" }, now); len(got) != 0 {
		t.Errorf("bound clone still pending: %v", got)
	}
	// The ledger counting a on another host (the one it was moved off) does not count the
	// new binding.
	if got := r.pendingBindings(func(u types.UID, h string) bool { return u == "uid-a" && h == "h0" }, now); len(got) != 1 {
		t.Errorf("binding to h1 dropped while the ledger counts the clone on h0: %v", got)
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
	if _, ok := r.domainHolder("dom-a", "uid-other"); ok {
		t.Error("observed binding still holds its name here (the cache's index answers now)")
	}
	// The cache shows a bound, but the ledger (fed by event handlers just after the cache)
	// may not count it yet: placement keeps counting it until the ledger does.
	if got := r.pendingBindings(notBound, now); len(got) != 1 || got["uid-a"].Host != "h1" {
		t.Errorf("confirmed binding not counted while the ledger lags: %v", got)
	}
	if got := r.pendingBindings(func(u types.UID, h string) bool { return u == "uid-a" && h == "h1" }, now); len(got) != 0 {
		t.Errorf("confirmed binding counted twice once the ledger has it: %v", got)
	}
	if got := r.pendingBindings(notBound, now); len(got) != 0 {
		t.Errorf("confirmed binding kept after the ledger counted it: %v", got)
	}
	if owner := r.macOwner("00:16:3e:00:00:01", "uid-b"); owner != "" {
		t.Errorf("observed MAC kept reserved by %q (the cache index answers now)", owner)
	}

	b := types.NamespacedName{Namespace: "ns", Name: "b"}
	r.reserveBinding(b, "uid-b", "dom-b", Binding{Host: "h2"}, "", 1, testNow)
	r.reserveMAC(b, "uid-b", "00:16:3e:00:00:02")
	r.forget(b)
	if got := r.pendingBindings(notBound, now); len(got) != 0 {
		t.Errorf("forgotten binding kept: %v", got)
	}
	if owner := r.macOwner("00:16:3e:00:00:02", "uid-c"); owner != "" {
		t.Errorf("forgotten MAC kept by %q", owner)
	}
}

// TestMassRescheduleNeverOvercommits moves 30 running clones off a lost host, one placement
// after the other as the reconciler makes them (ledger usage plus pending reservations), while
// the cache lags: it still shows most clones on the lost host, and shows the others on their
// new host only some placements later. The ledger counts a moved clone on the lost host until
// then; its new host must count it from the reservations meanwhile, or every placement of the
// burst sees the new hosts as empty.
func TestMassRescheduleNeverOvercommits(t *testing.T) {
	tmpl := testTemplate("512Mi")
	templates := func(string) *vmv1alpha1.VMTemplate { return tmpl }
	hosts := []vmv1alpha1.XenHost{
		testHost("lost", 65536),
		testHost("h1", 2048), // room for 4 × 512 MiB
		testHost("h2", 3072), // 6
	}
	capacity := map[string]int{"h1": 4, "h2": 6}
	heartbeats := freshHeartbeats("h1", "h2")
	heartbeats["lost"] = heartbeatSeen(testNow.Add(-10 * time.Minute))

	l := newUsageLedger()
	h := l.handler()
	clones := make([]*vmv1alpha1.VMClone, 30)
	for i := range clones {
		c := testClone(fmt.Sprintf("c%d", i))
		c.Status.NodeName, c.Status.Phase = "lost", vmv1alpha1.PhaseRunning
		c.Status.BindingGeneration, c.Status.ObservedBindingGeneration = 1, 1
		c.Status.Conditions = []metav1.Condition{{Type: vmv1alpha1.ConditionVolumeReady, Status: metav1.ConditionTrue}}
		clones[i] = c
		h.OnAdd(c, false)
	}
	l.usage(templates, "")

	r := newReservations()
	placed := map[string]int{}
	var lagging []*vmv1alpha1.VMClone // rebound, not yet seen by the cache
	for i, c := range clones {
		// The cache catches up with every third rebinding, two placements late.
		if i%3 == 0 && len(lagging) >= 2 {
			old := lagging[0]
			lagging = lagging[1:]
			b, _ := r.bindingFor(old.UID)
			moved := old.DeepCopy()
			moved.Status.NodeName, moved.Status.BindingGeneration, moved.Status.Phase = b.Host, 2, vmv1alpha1.PhaseScheduled
			h.OnUpdate(old, moved)
			r.observed(types.NamespacedName{Namespace: moved.Namespace, Name: moved.Name}, moved.UID, b.Host, nil)
		}
		in := PlacementInput{
			Clone: c, Template: tmpl, Hosts: hosts, Heartbeats: heartbeats, Now: testNow,
			Usage: l.usage(templates, c.UID),
		}
		for uid, b := range r.pendingBindings(l.boundTo, testNow) {
			if uid != c.UID {
				in.Bindings = append(in.Bindings, b)
			}
		}
		res := Place(in)
		if res.Host == "" {
			continue
		}
		placed[res.Host]++
		r.reserveBinding(types.NamespacedName{Namespace: c.Namespace, Name: c.Name}, c.UID, string(c.UID), Binding{
			Clone: c.Name, Host: res.Host, MemoryMiB: 512, COWBytes: 1 << 30, MemoryInFlight: true, StorageInFlight: true,
		}, res.Message, 2, testNow)
		lagging = append(lagging, c)
	}
	for host, n := range placed {
		if n > capacity[host] {
			t.Errorf("host %s got %d rescheduled clones, room for %d", host, n, capacity[host])
		}
	}
	if placed["lost"] != 0 {
		t.Errorf("%d clones placed back on the lost host", placed["lost"])
	}
	if placed["h1"]+placed["h2"] != 10 {
		t.Errorf("placed %v, want the 10 that fit", placed)
	}
}
