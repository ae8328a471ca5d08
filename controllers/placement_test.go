package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const testGrace = 40 * time.Second

// hostOpt tweaks a test XenHost.
type hostOpt func(*vmv1alpha1.XenHost)

func testHost(name string, freeMiB int64, opts ...hostOpt) vmv1alpha1.XenHost {
	h := vmv1alpha1.XenHost{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}},
		Status: vmv1alpha1.XenHostStatus{
			Memory:       vmv1alpha1.HostMemory{TotalMiB: 65536, FreeMiB: freeMiB},
			VolumeGroups: []vmv1alpha1.VolumeGroupStatus{{Name: "vg0", SizeBytes: 1 << 40, FreeBytes: 100 << 30}},
			Templates:    []vmv1alpha1.HostTemplateStatus{{Name: "debian12", ReadOnly: true}},
		},
	}
	for _, o := range opts {
		o(&h)
	}
	return h
}

func withoutTemplate(h *vmv1alpha1.XenHost) { h.Status.Templates = nil }
func cordoned(h *vmv1alpha1.XenHost)        { h.Spec.Unschedulable = true }
func withLabel(k, v string) hostOpt         { return func(h *vmv1alpha1.XenHost) { h.Labels[k] = v } }
func maxClones(n int32) hostOpt             { return func(h *vmv1alpha1.XenHost) { h.Spec.MaxClones = n } }
func vgFree(b int64) hostOpt {
	return func(h *vmv1alpha1.XenHost) { h.Status.VolumeGroups[0].FreeBytes = b }
}
func reserved(q string) hostOpt {
	return func(h *vmv1alpha1.XenHost) { r := resource.MustParse(q); h.Spec.ReservedMemory = &r }
}
func writableTemplate(h *vmv1alpha1.XenHost) { h.Status.Templates[0].ReadOnly = false }
func refusedTemplate(h *vmv1alpha1.XenHost) {
	h.Status.Templates[0].Refused = "vg0/debian12 is writable and open"
}
func thinPoolAt(data, meta string) hostOpt {
	return func(h *vmv1alpha1.XenHost) {
		h.Status.VolumeGroups[0].ThinPools = []vmv1alpha1.ThinPoolStatus{{Name: "pool0", DataPercent: data, MetadataPercent: meta}}
	}
}

func testTemplate(memory string) *vmv1alpha1.VMTemplate {
	m := resource.MustParse(memory)
	cow := resource.MustParse("1Gi")
	return &vmv1alpha1.VMTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "debian12"},
		Spec: vmv1alpha1.VMTemplateSpec{
			Origin:   vmv1alpha1.Origin{VolumeGroup: "vg0", LogicalVolume: "debian12"},
			Snapshot: vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotClassic, COWSize: &cow},
			Domain:   vmv1alpha1.DomainSpec{Memory: &m},
		},
	}
}

func thinTemplate(memory string) *vmv1alpha1.VMTemplate {
	t := testTemplate(memory)
	t.Spec.Snapshot = vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotThin, ThinPool: "pool0"}
	return t
}

func testClone(name string) *vmv1alpha1.VMClone {
	return &vmv1alpha1.VMClone{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
		Spec:       vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: "debian12"}},
	}
}

// freshHeartbeats are hosts whose renewal the controller saw 5 s ago.
func freshHeartbeats(names ...string) map[string]Heartbeat {
	m := map[string]Heartbeat{}
	for _, n := range names {
		m[n] = heartbeatSeen(testNow.Add(-5 * time.Second))
	}
	return m
}

// heartbeatSeen is a host whose last renewal the controller saw at seen (on its clock), with
// an agent that fences after 60 s.
func heartbeatSeen(seen time.Time) Heartbeat {
	return Heartbeat{Seen: true, Live: testNow.Sub(seen) < testGrace, LastRenewalSeen: seen, StaleAt: seen.Add(testGrace),
		FenceAfter: vmv1alpha1.DefaultFenceAfter, Fences: true}
}

func TestPlace(t *testing.T) {
	pinned := testClone("pinned")
	pinned.Spec.Placement = &vmv1alpha1.Placement{NodeName: "h2"}
	selected := testClone("selected")
	selected.Spec.Placement = &vmv1alpha1.Placement{HostSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"zone": "b"}}}
	packed := testClone("packed")
	packed.Spec.Placement = &vmv1alpha1.Placement{Strategy: vmv1alpha1.PlacementPack}
	big := testClone("big")
	bigMem := resource.MustParse("4Gi")
	big.Spec.Resources = &vmv1alpha1.CloneResources{Memory: &bigMem}
	selTmpl := testTemplate("512Mi")
	selTmpl.Spec.HostSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"gpu": "yes"}}

	staleHeartbeats := freshHeartbeats("h1")
	staleHeartbeats["h2"] = heartbeatSeen(testNow.Add(-2 * time.Minute))

	tests := []struct {
		name       string
		clone      *vmv1alpha1.VMClone
		tmpl       *vmv1alpha1.VMTemplate
		hosts      []vmv1alpha1.XenHost
		heartbeats map[string]Heartbeat
		bindings   []Binding
		want       string
		// wantMsg are substrings of the message.
		wantMsg []string
	}{
		{
			name:  "spread picks the host with most free memory",
			clone: testClone("a"), tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 2048), testHost("h2", 8192), testHost("h3", 4096)},
			heartbeats: freshHeartbeats("h1", "h2", "h3"),
			want:       "h2", wantMsg: []string{"placed on h2", "Spread", "3 of 3 hosts fit"},
		},
		{
			name:  "pack picks the fullest host that still fits",
			clone: packed, tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 2048), testHost("h2", 8192), testHost("h3", 600)},
			heartbeats: freshHeartbeats("h1", "h2", "h3"),
			want:       "h3",
		},
		{
			name:  "in-flight bindings count against free memory",
			clone: testClone("a"), tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 4096), testHost("h2", 3072)},
			heartbeats: freshHeartbeats("h1", "h2"),
			bindings: []Binding{
				{Host: "h1", MemoryMiB: 2048, MemoryInFlight: true},
				// running clones are already in the host's free memory: not subtracted again
				{Host: "h2", MemoryMiB: 2048, MemoryInFlight: false},
			},
			want: "h2",
		},
		{
			name:  "reserved memory is kept for dom0",
			clone: testClone("a"), tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 1024, reserved("768Mi"))},
			heartbeats: freshHeartbeats("h1"),
			wantMsg:    []string{"0/1 hosts fit", "1 has 256 MiB free < 512 MiB"},
		},
		{
			name:  "explains per class of host",
			clone: testClone("a"), tmpl: testTemplate("512Mi"),
			hosts: []vmv1alpha1.XenHost{
				testHost("h1", 8192, withoutTemplate), testHost("h2", 8192, withoutTemplate), testHost("h3", 200),
			},
			heartbeats: freshHeartbeats("h1", "h2", "h3"),
			wantMsg:    []string{"0/3 hosts fit: 2 lack template debian12, 1 has 200 MiB free < 512 MiB"},
		},
		{
			name:  "stale and missing heartbeats exclude hosts",
			clone: testClone("a"), tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 200), testHost("h2", 8192), testHost("h3", 8192)},
			heartbeats: staleHeartbeats,
			wantMsg:    []string{"1 has a stale heartbeat (last renewal seen 120s ago)", "1 has no heartbeat Lease", "1 has 200 MiB free"},
		},
		{
			name:  "stale heartbeat moves the clone to a live host",
			clone: testClone("a"), tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 1024), testHost("h2", 8192)},
			heartbeats: staleHeartbeats,
			want:       "h1",
		},
		{
			name:  "cordoned hosts and hosts at maxClones are skipped",
			clone: testClone("a"), tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 8192, cordoned), testHost("h2", 8192, maxClones(1)), testHost("h3", 1024)},
			heartbeats: freshHeartbeats("h1", "h2", "h3"),
			bindings:   []Binding{{Host: "h2", MemoryMiB: 1}},
			want:       "h3",
		},
		{
			name:  "all cordoned or full",
			clone: testClone("a"), tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 8192, cordoned), testHost("h2", 8192, maxClones(1))},
			heartbeats: freshHeartbeats("h1", "h2"),
			bindings:   []Binding{{Host: "h2", MemoryMiB: 1}},
			wantMsg:    []string{"1 is cordoned", "1 is at spec.maxClones"},
		},
		{
			// The agent makes a usable origin read-only right before the first snapshot.
			name:  "template writable but usable",
			clone: testClone("a"), tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 8192, writableTemplate)},
			heartbeats: freshHeartbeats("h1"),
			want:       "h1",
		},
		{
			name:  "template refused by the host",
			clone: testClone("a"), tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 8192, refusedTemplate), testHost("h2", 8192, writableTemplate, refusedTemplate)},
			heartbeats: freshHeartbeats("h1", "h2"),
			wantMsg:    []string{"2 refuse the LV of template debian12 as its origin"},
		},
		{
			name:  "pin honoured even when another host has more room",
			clone: pinned, tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 8192), testHost("h2", 1024)},
			heartbeats: freshHeartbeats("h1", "h2"),
			want:       "h2",
		},
		{
			name:  "pin to a host that does not exist",
			clone: pinned, tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 8192)},
			heartbeats: freshHeartbeats("h1"),
			wantMsg:    []string{"pins host h2, which has no XenHost"},
		},
		{
			name:  "clone host selector",
			clone: selected, tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 8192, withLabel("zone", "a")), testHost("h2", 1024, withLabel("zone", "b"))},
			heartbeats: freshHeartbeats("h1", "h2"),
			want:       "h2",
		},
		{
			name:  "template host selector",
			clone: testClone("a"), tmpl: selTmpl,
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 8192)},
			heartbeats: freshHeartbeats("h1"),
			wantMsg:    []string{"1 does not match the hostSelector"},
		},
		{
			name:  "classic COW needs VG room, in-flight COW counted",
			clone: testClone("a"), tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 8192, vgFree(3<<29)), testHost("h2", 4096, vgFree(512<<20))},
			heartbeats: freshHeartbeats("h1", "h2"),
			bindings:   []Binding{{Host: "h1", COWBytes: 1 << 30, StorageInFlight: true}},
			wantMsg:    []string{"2 have at most 512 MiB free in VG vg0 < 1024 MiB COW"},
		},
		{
			name:  "thin pool under threshold",
			clone: testClone("a"), tmpl: thinTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 8192, thinPoolAt("85.00", "10.00")), testHost("h2", 1024, thinPoolAt("40.00", "10.00"))},
			heartbeats: freshHeartbeats("h1", "h2"),
			want:       "h2",
		},
		{
			name:  "thin pool metadata over threshold",
			clone: testClone("a"), tmpl: thinTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 8192, thinPoolAt("10.00", "75.00"))},
			heartbeats: freshHeartbeats("h1"),
			wantMsg:    []string{"1 has its thin pool at 75%"},
		},
		{
			name:  "clone memory override",
			clone: big, tmpl: testTemplate("512Mi"),
			hosts:      []vmv1alpha1.XenHost{testHost("h1", 2048)},
			heartbeats: freshHeartbeats("h1"),
			wantMsg:    []string{"1 has 2048 MiB free < 4096 MiB"},
		},
		{
			name:  "no hosts at all",
			clone: testClone("a"), tmpl: testTemplate("512Mi"),
			wantMsg: []string{"no XenHost exists yet"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Place(PlacementInput{
				Clone: tt.clone, Template: tt.tmpl, Hosts: tt.hosts, Heartbeats: tt.heartbeats, Bindings: tt.bindings,
				Now: testNow, DefaultStrategy: vmv1alpha1.PlacementSpread,
			})
			if got.Host != tt.want {
				t.Fatalf("host = %q, want %q (message: %s)", got.Host, tt.want, got.Message)
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(got.Message, w) {
					t.Errorf("message %q lacks %q", got.Message, w)
				}
			}
		})
	}
}

// TestPlaceBurstNeverOvercommits places 200 clones one after the other, each seeing the
// previous ones only as in-flight bindings (as the reconciler's reservations present them
// before any host reports new free memory), and checks no host is overcommitted and the
// clones that do not fit say why.
func TestPlaceBurstNeverOvercommits(t *testing.T) {
	hosts := []vmv1alpha1.XenHost{
		testHost("h1", 8192, reserved("1Gi")), // room for 14 × 512 MiB
		testHost("h2", 16384),                 // 32
		testHost("h3", 4096, maxClones(5)),    // 5 by cap
		testHost("h4", 30000, vgFree(20<<30)), // 20 by VG (1 GiB COW each)
		testHost("h5", 65536, withoutTemplate),
	}
	capacity := map[string]int{"h1": 14, "h2": 32, "h3": 5, "h4": 20}
	tmpl := testTemplate("512Mi")
	var bindings []Binding
	placed := map[string]int{}
	unschedulable := 0
	for i := range 200 {
		res := Place(PlacementInput{
			Clone: testClone(fmt.Sprintf("c%d", i)), Template: tmpl, Hosts: hosts,
			Heartbeats: freshHeartbeats("h1", "h2", "h3", "h4", "h5"), Bindings: bindings,
			Now: testNow,
		})
		if res.Host == "" {
			unschedulable++
			if !strings.Contains(res.Message, "0/5 hosts fit") {
				t.Fatalf("clone %d: unhelpful message %q", i, res.Message)
			}
			continue
		}
		placed[res.Host]++
		bindings = append(bindings, Binding{Host: res.Host, MemoryMiB: 512, COWBytes: 1 << 30, MemoryInFlight: true, StorageInFlight: true})
	}
	total := 0
	for h, n := range placed {
		if n > capacity[h] {
			t.Errorf("host %s got %d clones, capacity %d", h, n, capacity[h])
		}
		total += n
	}
	if total != 71 || unschedulable != 129 {
		t.Errorf("placed %d (want 71 = all capacity), unschedulable %d (want 129): %v", total, unschedulable, placed)
	}
}

// BenchmarkPlaceFleet is one placement decision at the design's fleet size: 500 hosts and
// 100,000 bound clones.
func BenchmarkPlaceFleet(b *testing.B) {
	hosts := make([]vmv1alpha1.XenHost, 500)
	heartbeats := map[string]Heartbeat{}
	for i := range hosts {
		hosts[i] = testHost(fmt.Sprintf("h%03d", i), 1<<20)
		heartbeats[hosts[i].Name] = heartbeatSeen(testNow)
	}
	bindings := make([]Binding, 100_000)
	for i := range bindings {
		bindings[i] = Binding{Host: hosts[i%500].Name, MemoryMiB: 512, COWBytes: 1 << 30, MemoryInFlight: i%10 == 0, StorageInFlight: i%10 == 0}
	}
	in := PlacementInput{Clone: testClone("x"), Template: testTemplate("512Mi"), Hosts: hosts, Heartbeats: heartbeats,
		Bindings: bindings, Now: testNow}
	b.ResetTimer()
	for range b.N {
		if Place(in).Host == "" {
			b.Fatal("no host")
		}
	}
}

// A paused standby is counted by what its host reports it holds; once claimed (spec.pause
// removed) and until its host reports it running again, all of its start memory is in flight:
// the host's free memory still shows it ballooned down.
func TestBindingOfPausedStandby(t *testing.T) {
	tmpl := testTemplate("1Gi")
	pause := resource.MustParse("96Mi")
	for _, tc := range []struct {
		name     string
		paused   bool
		phase    vmv1alpha1.VMClonePhase
		inFlight bool
	}{
		{"standby booting", true, vmv1alpha1.PhaseStarting, true},
		{"standby running, not yet paused", true, vmv1alpha1.PhaseRunning, false},
		{"standby paused", true, vmv1alpha1.PhasePaused, false},
		{"claimed, still reported Paused", false, vmv1alpha1.PhasePaused, true},
		{"claimed, running again", false, vmv1alpha1.PhaseRunning, false},
	} {
		c := testClone("m")
		c.Status.NodeName, c.Status.Phase = "h1", tc.phase
		c.Status.Conditions = []metav1.Condition{{Type: vmv1alpha1.ConditionVolumeReady, Status: metav1.ConditionTrue}}
		if tc.paused {
			c.Spec.Pause = &vmv1alpha1.PauseSpec{Memory: &pause}
		}
		b := bindingOf(c, tmpl)
		if b.MemoryInFlight != tc.inFlight || b.MemoryMiB != 1024 || b.StorageInFlight {
			t.Errorf("%s: memory %d MiB in flight %v (want %v), storage in flight %v", tc.name, b.MemoryMiB, b.MemoryInFlight, tc.inFlight, b.StorageInFlight)
		}
	}
}
