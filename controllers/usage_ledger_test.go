package controllers

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// The ledger must end up with exactly what a full scan of the same clones gives (the old
// placementInput), through binds, phase changes, moves, deletes and tombstones.
func TestUsageLedgerMatchesFullScan(t *testing.T) {
	tmpl := testTemplate("512Mi")
	templates := func(name string) *vmv1alpha1.VMTemplate {
		if name == tmpl.Name {
			return tmpl
		}
		return nil
	}
	l := newUsageLedger()
	h := l.handler()
	live := map[string]*vmv1alpha1.VMClone{}
	set := func(c *vmv1alpha1.VMClone) {
		if old, ok := live[c.Name]; ok {
			h.OnUpdate(old, c)
		} else {
			h.OnAdd(c, false)
		}
		live[c.Name] = c
	}
	bound := func(name, host string, phase vmv1alpha1.VMClonePhase, volumeReady bool) *vmv1alpha1.VMClone {
		c := testClone(name)
		c.Status.NodeName, c.Status.Phase = host, phase
		if volumeReady {
			c.Status.Conditions = []metav1.Condition{{Type: vmv1alpha1.ConditionVolumeReady, Status: metav1.ConditionTrue}}
		}
		return c
	}
	check := func(step string) {
		t.Helper()
		want := map[string]HostUsage{}
		for _, c := range live {
			if c.Status.NodeName == "" {
				continue
			}
			b := bindingOf(c, tmpl)
			u := want[b.Host]
			u.Clones++
			if b.MemoryInFlight {
				u.InFlightMemMiB += b.MemoryMiB
			}
			if b.StorageInFlight {
				u.InFlightCOWBytes += b.COWBytes
			}
			want[b.Host] = u
		}
		got := l.usage(templates, "")
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: ledger %v, full scan %v", step, got, want)
		}
		for name, c := range live {
			if c.Status.NodeName != "" && !l.boundTo(c.UID, c.Status.NodeName) {
				t.Fatalf("%s: %s not counted on %s", step, name, c.Status.NodeName)
			}
			if l.boundTo(c.UID, "elsewhere") || l.boundTo(c.UID, "") {
				t.Fatalf("%s: %s counted on a host it is not bound to", step, name)
			}
		}
	}

	set(testClone("pending"))
	check("unbound clone counts nowhere")
	set(bound("a", "h1", vmv1alpha1.PhaseScheduled, false))
	set(bound("b", "h1", vmv1alpha1.PhaseRunning, true))
	set(bound("c", "h2", vmv1alpha1.PhaseProvisioning, false))
	check("three bound")
	// Placing a clone the ledger still counts (just moved off its host) leaves it out.
	if u := l.usage(templates, live["a"].UID)["h1"]; u.Clones != 1 || u.InFlightMemMiB != 0 {
		t.Fatalf("usage without a on h1 = %+v, want only b (running: nothing in flight)", u)
	}
	set(bound("a", "h1", vmv1alpha1.PhaseStarting, true))
	check("a's volume ready: its COW no longer in flight")
	set(bound("a", "h1", vmv1alpha1.PhaseRunning, true))
	check("a runs: nothing in flight")
	set(bound("c", "h3", vmv1alpha1.PhaseScheduled, false))
	check("c rescheduled to h3")
	h.OnDelete(live["b"])
	delete(live, "b")
	check("b deleted")
	h.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "ns/c", Obj: live["c"]})
	delete(live, "c")
	check("c deleted, seen as a tombstone")
	set(bound("pending", "h2", vmv1alpha1.PhaseScheduled, false))
	// Two events between two placements fold into the last one.
	set(bound("pending", "h2", vmv1alpha1.PhaseFailed, false))
	check("events coalesced")
	h.OnDelete(live["a"])
	h.OnDelete(live["pending"])
	live = map[string]*vmv1alpha1.VMClone{}
	check("all gone")
	if len(l.hosts) != 0 || len(l.applied) != 0 {
		t.Errorf("empty fleet leaves hosts %v, applied %v", l.hosts, l.applied)
	}
}

// BenchmarkLedgerUsage is what placement now pays for the fleet's usage: the clones changed
// since the previous placement (here 10) plus a copy per host. Compare BenchmarkBindingsOf,
// the full scan it replaces (plus the cache List's copy of every clone, not measured there).
func BenchmarkLedgerUsage(b *testing.B) {
	tmpl := testTemplate("512Mi")
	templates := func(string) *vmv1alpha1.VMTemplate { return tmpl }
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("clones=%d", n), func(b *testing.B) {
			l := newUsageLedger()
			h := l.handler()
			clones := make([]*vmv1alpha1.VMClone, n)
			for i := range clones {
				c := testClone(fmt.Sprintf("c%d", i))
				c.Status.NodeName = fmt.Sprintf("h%d", i%20)
				c.Status.Phase = vmv1alpha1.PhaseRunning
				clones[i] = c
				h.OnAdd(c, false)
			}
			l.usage(templates, "")
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				for j := 0; j < 10; j++ {
					h.OnUpdate(clones[i%n], clones[i%n])
					i++
				}
				if u := l.usage(templates, ""); len(u) != 20 {
					b.Fatal(len(u))
				}
			}
		})
	}
}
