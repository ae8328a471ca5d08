package v1alpha1_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func TestEffective(t *testing.T) {
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	// Every case starts from a bare clone of a bare template and sets what it is about, so
	// the fields it does not mention show the defaults.
	type (
		clone = vmv1alpha1.VMClone
		tmpl  = vmv1alpha1.VMTemplate
	)
	tests := []struct {
		name  string
		clone func(*clone)
		tmpl  func(*tmpl)
		check func(vmv1alpha1.EffectiveSpec) bool
		want  string
	}{
		{"memory default", nil, nil,
			func(e vmv1alpha1.EffectiveSpec) bool { return e.MemoryMiB == 512 && e.MaxMemoryMiB == 0 }, "512 MiB, no ceiling"},
		{"memory from template, rounded up to MiB", nil,
			func(t *tmpl) { t.Spec.Domain.Memory = q("1000000k") },
			func(e vmv1alpha1.EffectiveSpec) bool { return e.MemoryMiB == 954 }, "954 MiB"},
		{"memory override", func(c *clone) { c.Spec.Resources = &vmv1alpha1.CloneResources{Memory: q("2Gi")} },
			func(t *tmpl) { t.Spec.Domain.Memory = q("1Gi") },
			func(e vmv1alpha1.EffectiveSpec) bool { return e.MemoryMiB == 2048 }, "2048 MiB"},
		{"maxMemory from template", nil,
			func(t *tmpl) { t.Spec.Domain.Memory, t.Spec.Domain.MaxMemory = q("1Gi"), q("2Gi") },
			func(e vmv1alpha1.EffectiveSpec) bool { return e.MemoryMiB == 1024 && e.MaxMemoryMiB == 2048 }, "1024/2048"},
		{"maxMemory override", func(c *clone) { c.Spec.Resources = &vmv1alpha1.CloneResources{MaxMemory: q("4Gi")} },
			func(t *tmpl) { t.Spec.Domain.Memory, t.Spec.Domain.MaxMemory = q("1Gi"), q("2Gi") },
			func(e vmv1alpha1.EffectiveSpec) bool { return e.MemoryMiB == 1024 && e.MaxMemoryMiB == 4096 }, "1024/4096"},
		{"memory override above the template's ceiling raises it",
			func(c *clone) { c.Spec.Resources = &vmv1alpha1.CloneResources{Memory: q("3Gi")} },
			func(t *tmpl) { t.Spec.Domain.Memory, t.Spec.Domain.MaxMemory = q("1Gi"), q("2Gi") },
			func(e vmv1alpha1.EffectiveSpec) bool { return e.MemoryMiB == 3072 && e.MaxMemoryMiB == 3072 }, "3072/3072"},
		{"vcpus default", nil, nil,
			func(e vmv1alpha1.EffectiveSpec) bool { return e.VCPUs == 1 && e.MaxVCPUs == 0 }, "1, no ceiling"},
		{"vcpus from template", nil,
			func(t *tmpl) { t.Spec.Domain.VCPUs, t.Spec.Domain.MaxVCPUs = ptr.To[int32](2), ptr.To[int32](4) },
			func(e vmv1alpha1.EffectiveSpec) bool { return e.VCPUs == 2 && e.MaxVCPUs == 4 }, "2/4"},
		{"vcpus override above the template's ceiling raises it",
			func(c *clone) { c.Spec.Resources = &vmv1alpha1.CloneResources{VCPUs: ptr.To[int32](8)} },
			func(t *tmpl) { t.Spec.Domain.VCPUs, t.Spec.Domain.MaxVCPUs = ptr.To[int32](2), ptr.To[int32](4) },
			func(e vmv1alpha1.EffectiveSpec) bool { return e.VCPUs == 8 && e.MaxVCPUs == 8 }, "8/8"},
		{"no NICs", nil, nil,
			func(e vmv1alpha1.EffectiveSpec) bool { return e.NICs == nil }, "none"},
		{"NICs from template: bridge defaulted, MAC never inherited", nil,
			func(t *tmpl) { t.Spec.Domain.NICs = []vmv1alpha1.NIC{{Bridge: "xenbr1", MAC: "00:16:3e:00:00:01"}, {}} },
			func(e vmv1alpha1.EffectiveSpec) bool {
				return reflect.DeepEqual(e.NICs, []vmv1alpha1.NIC{{Bridge: "xenbr1"}, {Bridge: "xenbr0"}})
			}, "xenbr1, xenbr0 without MACs"},
		{"NICs override: pinned MAC kept",
			func(c *clone) { c.Spec.NICs = []vmv1alpha1.NIC{{MAC: "02:00:00:00:00:01"}} },
			func(t *tmpl) { t.Spec.Domain.NICs = []vmv1alpha1.NIC{{Bridge: "xenbr1"}, {Bridge: "xenbr2"}} },
			func(e vmv1alpha1.EffectiveSpec) bool {
				return reflect.DeepEqual(e.NICs, []vmv1alpha1.NIC{{Bridge: "xenbr0", MAC: "02:00:00:00:00:01"}})
			}, "one NIC on xenbr0 with its MAC"},
		{"hostname derived from the name", func(c *clone) { c.Name = "web.example.com" }, nil,
			func(e vmv1alpha1.EffectiveSpec) bool { return e.Hostname == "web-example-com" }, "web-example-com"},
		{"hostname derived from a long name stays a label",
			func(c *clone) { c.Name = strings.Repeat("a", 62) + ".b" }, nil,
			func(e vmv1alpha1.EffectiveSpec) bool { return e.Hostname == strings.Repeat("a", 62) }, "62 a's, no trailing '-'"},
		{"hostname recorded in status wins over the derived one",
			func(c *clone) { c.Status.Hostname = "recorded" }, nil,
			func(e vmv1alpha1.EffectiveSpec) bool { return e.Hostname == "recorded" }, "recorded"},
		{"hostname override",
			func(c *clone) { c.Spec.Hostname, c.Status.Hostname = "chosen", "recorded" }, nil,
			func(e vmv1alpha1.EffectiveSpec) bool { return e.Hostname == "chosen" }, "chosen"},
		{"snapshot defaults: classic, 1 GiB COW, pool 80/70", nil, nil,
			func(e vmv1alpha1.EffectiveSpec) bool {
				return e.Mode == vmv1alpha1.SnapshotClassic && e.COWBytes == 1<<30 &&
					e.PoolDataPercent == 80 && e.PoolMetadataPercent == 70
			}, "Classic, 1 GiB, 80/70"},
		{"snapshot from template", nil,
			func(t *tmpl) {
				t.Spec.Origin = vmv1alpha1.Origin{VolumeGroup: "vg1", LogicalVolume: "debian12"}
				t.Spec.Snapshot.COWSize = q("2Gi")
			},
			func(e vmv1alpha1.EffectiveSpec) bool {
				return e.VolumeGroup == "vg1" && e.Origin == "debian12" && e.COWBytes == 2<<30
			}, "vg1/debian12, 2 GiB"},
		{"COW override", func(c *clone) { c.Spec.Storage = &vmv1alpha1.CloneStorage{COWSize: q("3Gi")} },
			func(t *tmpl) { t.Spec.Snapshot.COWSize = q("2Gi") },
			func(e vmv1alpha1.EffectiveSpec) bool { return e.COWBytes == 3<<30 }, "3 GiB"},
		{"thin: no COW area even with an override, pool and thresholds from the template",
			func(c *clone) { c.Spec.Storage = &vmv1alpha1.CloneStorage{COWSize: q("3Gi")} },
			func(t *tmpl) {
				t.Spec.Snapshot = vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotThin, ThinPool: "pool0",
					PoolThresholds: &vmv1alpha1.PoolThresholds{DataPercent: 90, MetadataPercent: 50}}
			},
			func(e vmv1alpha1.EffectiveSpec) bool {
				return e.Mode == vmv1alpha1.SnapshotThin && e.COWBytes == 0 && e.ThinPool == "pool0" &&
					e.PoolDataPercent == 90 && e.PoolMetadataPercent == 50
			}, "Thin in pool0, 0 COW, 90/50"},
		{"one pool threshold set, the other defaulted", nil,
			func(t *tmpl) { t.Spec.Snapshot.PoolThresholds = &vmv1alpha1.PoolThresholds{MetadataPercent: 60} },
			func(e vmv1alpha1.EffectiveSpec) bool { return e.PoolDataPercent == 80 && e.PoolMetadataPercent == 60 }, "80/60"},
		{"no pause: holds its start memory", nil, nil,
			func(e vmv1alpha1.EffectiveSpec) bool {
				return !e.Paused && e.PauseMemoryMiB == 0 && e.PauseAfter == 0 && e.HeldMemoryMiB() == 512
			}, "not paused, holds 512"},
		{"pause defaults: 128 MiB after 30s", func(c *clone) { c.Spec.Pause = &vmv1alpha1.PauseSpec{} },
			func(t *tmpl) { t.Spec.Domain.Memory = q("1Gi") },
			func(e vmv1alpha1.EffectiveSpec) bool {
				return e.Paused && e.PauseMemoryMiB == 128 && e.PauseAfter == 30*time.Second && e.HeldMemoryMiB() == 128 && e.MemoryMiB == 1024
			}, "paused at 128 MiB after 30s, start memory 1024"},
		{"pause memory and after set, rounded up to MiB",
			func(c *clone) {
				c.Spec.Pause = &vmv1alpha1.PauseSpec{Memory: q("100000k"), After: &metav1.Duration{Duration: 5 * time.Second}}
			}, nil,
			func(e vmv1alpha1.EffectiveSpec) bool {
				return e.PauseMemoryMiB == 96 && e.PauseAfter == 5*time.Second && e.HeldMemoryMiB() == 96
			}, "96 MiB after 5s"},
		{"pause memory above the start memory is capped at it",
			func(c *clone) { c.Spec.Pause = &vmv1alpha1.PauseSpec{Memory: q("2Gi")} },
			func(t *tmpl) { t.Spec.Domain.Memory = q("256Mi") },
			func(e vmv1alpha1.EffectiveSpec) bool { return e.PauseMemoryMiB == 256 && e.HeldMemoryMiB() == 256 }, "256"},
	}
	for _, tc := range tests {
		c := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-1"}}
		tp := &vmv1alpha1.VMTemplate{ObjectMeta: metav1.ObjectMeta{Name: "debian12"}}
		if tc.clone != nil {
			tc.clone(c)
		}
		if tc.tmpl != nil {
			tc.tmpl(tp)
		}
		cBefore, tBefore := c.DeepCopy(), tp.DeepCopy()
		if e := vmv1alpha1.Effective(c, tp); !tc.check(e) {
			t.Errorf("%s: got %+v, want %s", tc.name, e, tc.want)
		}
		// Both may be informer cache entries: resolving must not write to them.
		if !reflect.DeepEqual(cBefore, c) || !reflect.DeepEqual(tBefore, tp) {
			t.Errorf("%s: Effective changed its inputs", tc.name)
		}
	}
}

// A bound clone may outlive its template and the agent reads pool thresholds without a clone.
func TestEffectiveWithoutTemplateOrClone(t *testing.T) {
	mem := resource.MustParse("1Gi")
	c := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Name: "web-1"},
		Spec: vmv1alpha1.VMCloneSpec{Resources: &vmv1alpha1.CloneResources{Memory: &mem}}}
	if e := vmv1alpha1.Effective(c, nil); e.MemoryMiB != 1024 || e.Hostname != "web-1" || e.NICs != nil {
		t.Errorf("no template: %+v", e)
	}
	if e := vmv1alpha1.Effective(nil, nil); e.MemoryMiB != vmv1alpha1.DefaultMemoryMiB || e.Hostname != "" {
		t.Errorf("neither: %+v", e)
	}
}
