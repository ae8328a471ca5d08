package controllers

import (
	"fmt"
	"testing"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// BenchmarkPlace scores every host for one clone, with the fleet's existing bindings: the
// bench's 20 hosts with 1,000 and 10,000 clones, and DESIGN §2's 500 hosts × 200 clones.
func BenchmarkPlace(b *testing.B) {
	for _, tc := range []struct{ hosts, bindings int }{{20, 1000}, {20, 10000}, {500, 100000}} {
		b.Run(fmt.Sprintf("hosts=%d/bindings=%d", tc.hosts, tc.bindings), func(b *testing.B) {
			in := benchPlacementInput(tc.hosts, tc.bindings)
			b.ReportAllocs()
			for b.Loop() {
				if res := Place(in); res.Host == "" {
					b.Fatal(res.Message)
				}
			}
		})
	}
}

// BenchmarkBindingsOf is the per-placement scan the clone reconciler does before Place: every
// clone in the cache turned into a Binding (placementInput), so its cost grows with the fleet.
func BenchmarkBindingsOf(b *testing.B) {
	tmpl := testTemplate("512Mi")
	for _, n := range []int{1000, 10000} {
		clones := make([]vmv1alpha1.VMClone, n)
		for i := range clones {
			clones[i] = *testClone(fmt.Sprintf("c%d", i))
			clones[i].Status.NodeName = fmt.Sprintf("h%d", i%20)
			clones[i].Status.Phase = vmv1alpha1.PhaseRunning
		}
		b.Run(fmt.Sprintf("clones=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out := make([]Binding, 0, len(clones))
				for i := range clones {
					out = append(out, bindingOf(&clones[i], tmpl))
				}
				if len(out) != n {
					b.Fatal(len(out))
				}
			}
		})
	}
}

func benchPlacementInput(hosts, bindings int) PlacementInput {
	names := make([]string, hosts)
	in := PlacementInput{
		Clone: testClone("new"), Template: testTemplate("512Mi"), Now: testNow,
		DefaultStrategy: vmv1alpha1.PlacementSpread,
	}
	for i := range names {
		names[i] = fmt.Sprintf("h%d", i)
		h := testHost(names[i], 1<<30)
		h.Status.Memory.TotalMiB = 1 << 31
		h.Status.VolumeGroups[0].FreeBytes = 1 << 50
		in.Hosts = append(in.Hosts, h)
	}
	in.Heartbeats = freshHeartbeats(names...)
	for i := 0; i < bindings; i++ {
		in.Bindings = append(in.Bindings, Binding{Clone: fmt.Sprintf("ns/c%d", i), Host: names[i%hosts], MemoryMiB: 512, COWBytes: 1 << 30})
	}
	return in
}
