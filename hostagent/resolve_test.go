package hostagent

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/controllers"
	"github.com/xenclone/xenclone/hostagent/lvm"
	"github.com/xenclone/xenclone/hostagent/xen"
)

func testClone(ns, name, uid string) *vmv1alpha1.VMClone {
	return &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}}
}

// The domain name itself is vmv1alpha1.DomainNameOf (api/v1alpha1/naming_test.go); the agent
// adds the LV name and the legacy domain name it takes up after an upgrade.
func TestNamesAreStableBoundedAndValid(t *testing.T) {
	long := strings.Repeat("a", 200)
	for _, tc := range []struct {
		ns, name, uid string
		wantLegacy    string
	}{
		{"default", "web-1", "1a2b3c4d-0000-4000-8000-000000000000", "xc-default-web-1"},
		{"team-a", "123", "5e6f7a8b-0000-4000-8000-000000000000", "xc-team-a-123"},
		{"ns", long, "9c9c9c9c-0000-4000-8000-000000000000", ""},
		{"ns", long, "8d8d8d8d-0000-4000-8000-000000000000", ""},
	} {
		c := testClone(tc.ns, tc.name, tc.uid)
		d, v := legacyDomainName(c), VolumeName(c)
		if tc.wantLegacy != "" && d != tc.wantLegacy {
			t.Errorf("legacyDomainName(%s/%s) = %q, want %q", tc.ns, tc.name, d, tc.wantLegacy)
		}
		if err := xen.ValidateName(d); err != nil || len(d) > vmv1alpha1.MaxDomainNameLength {
			t.Errorf("legacy domain name %q invalid: %v", d, err)
		}
		if err := xen.ValidateName(vmv1alpha1.DomainNameOf(c)); err != nil {
			t.Errorf("domain name %q invalid for xl: %v", vmv1alpha1.DomainNameOf(c), err)
		}
		if err := lvm.ValidateLVName(v); err != nil || !strings.HasPrefix(v, "xc-") {
			t.Errorf("LV name %q invalid: %v", v, err)
		}
		if legacyDomainName(c) != d || VolumeName(c) != v {
			t.Errorf("names not stable for %s/%s", tc.ns, tc.name)
		}
	}
	// Long names of two clones stay distinct through the UID hash.
	a, b := testClone("ns", long, "9c9c9c9c-0000-4000-8000-000000000000"), testClone("ns", long, "8d8d8d8d-0000-4000-8000-000000000000")
	if VolumeName(a) == VolumeName(b) {
		t.Errorf("long names collide: %s", VolumeName(a))
	}
	pinned := testClone("ns", "x", "1")
	pinned.Spec.DomainName = "my-vm"
	if legacyDomainName(pinned) != "" {
		t.Errorf("spec.domainName never changed, so there is no legacy name: %s", legacyDomainName(pinned))
	}
}

func TestDomainConfigFor(t *testing.T) {
	mem, maxMem := resource.MustParse("512Mi"), resource.MustParse("1Gi")
	tpl := &vmv1alpha1.VMTemplate{Spec: vmv1alpha1.VMTemplateSpec{Domain: vmv1alpha1.DomainSpec{
		Memory: &mem, MaxMemory: &maxMem, VCPUs: ptr.To[int32](1), MaxVCPUs: ptr.To[int32](2),
		Boot: &vmv1alpha1.BootSpec{Bootloader: "pygrub"}, DiskVdev: "xvda",
	}}}
	c := testClone("default", "web-1", "1a2b3c4d-0000-4000-8000-000000000000")
	c.Status.UUID = string(c.UID)
	c.Status.Interfaces = []vmv1alpha1.InterfaceStatus{{Index: 0, MAC: "00:16:3e:00:00:01", Bridge: "xenbr1"}}

	cfg, err := DomainConfigFor(tpl, c, "/dev/vg0/xc-web-1-1a2b3c4d", "/var/lib/xenclone/seed/x/cidata.img")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryMiB != 512 || cfg.MaxMemoryMiB != 1024 || cfg.VCPUs != 1 || cfg.MaxVCPUs != 2 || cfg.Bootloader != "pygrub" {
		t.Errorf("template defaults not applied: %+v", cfg)
	}
	if len(cfg.Disks) != 2 || cfg.Disks[1].Vdev != "xvdb" || !cfg.Disks[1].ReadOnly || cfg.Disks[0].ReadOnly {
		t.Errorf("disks: %+v", cfg.Disks)
	}
	if len(cfg.VIFs) != 1 || cfg.VIFs[0].MAC != "00:16:3e:00:00:01" || cfg.VIFs[0].Bridge != "xenbr1" {
		t.Errorf("vifs: %+v", cfg.VIFs)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("resolved config does not validate: %v", err)
	}

	// Overrides above the template's ceilings raise the ceilings instead of failing in xl.
	big := resource.MustParse("4Gi")
	c.Spec.Resources = &vmv1alpha1.CloneResources{Memory: &big, VCPUs: ptr.To[int32](4)}
	cfg, _ = DomainConfigFor(tpl, c, "/dev/vg0/x", "")
	if cfg.MemoryMiB != 4096 || cfg.MaxMemoryMiB != 4096 || cfg.VCPUs != 4 || cfg.MaxVCPUs != 4 || len(cfg.Disks) != 1 {
		t.Errorf("overrides: %+v", cfg)
	}

	c.Status.UUID = ""
	if _, err := DomainConfigFor(tpl, c, "/dev/vg0/x", ""); err == nil {
		t.Error("a clone without a UUID must not get a config")
	}
}

func TestPolicyFor(t *testing.T) {
	tpl := &vmv1alpha1.VMTemplate{}
	crash := xen.RunState{Shutdown: true, Reason: xen.ReasonCrash}
	poweroff := xen.RunState{Shutdown: true, Reason: xen.ReasonPoweroff}
	reboot := xen.RunState{Shutdown: true, Reason: xen.ReasonReboot}
	for _, tc := range []struct {
		strategy vmv1alpha1.RunStrategy
		state    xen.RunState
		want     xen.Step
	}{
		{vmv1alpha1.RunStrategyAlways, poweroff, xen.StepRestart},
		{vmv1alpha1.RunStrategyAlways, crash, xen.StepRestart},
		{vmv1alpha1.RunStrategyRerunOnFailure, crash, xen.StepRestart},
		{vmv1alpha1.RunStrategyRerunOnFailure, poweroff, xen.StepDestroy},
		{vmv1alpha1.RunStrategyOnce, poweroff, xen.StepDestroy},
		{vmv1alpha1.RunStrategyOnce, crash, xen.StepDestroy},
		{vmv1alpha1.RunStrategyOnce, reboot, xen.StepRestart},
		{vmv1alpha1.RunStrategyHalted, reboot, xen.StepDestroy},
	} {
		if got := xen.DecideStep(tc.state, PolicyFor(tpl, tc.strategy)); got != tc.want {
			t.Errorf("%s after %s: %s, want %s", tc.strategy, tc.state.Reason, got, tc.want)
		}
	}
}

func TestWantRunning(t *testing.T) {
	started := metav1.Now()
	for _, tc := range []struct {
		name string
		mut  func(*vmv1alpha1.VMClone)
		want bool
	}{
		{"always", func(*vmv1alpha1.VMClone) {}, true},
		{"halted", func(c *vmv1alpha1.VMClone) { c.Spec.RunStrategy = vmv1alpha1.RunStrategyHalted }, false},
		{"once, never started", func(c *vmv1alpha1.VMClone) { c.Spec.RunStrategy = vmv1alpha1.RunStrategyOnce }, true},
		{"once, running", func(c *vmv1alpha1.VMClone) {
			c.Spec.RunStrategy = vmv1alpha1.RunStrategyOnce
			c.Status.Timestamps = &vmv1alpha1.CloneTimestamps{Started: &started}
			c.Status.Conditions = []metav1.Condition{{Type: vmv1alpha1.ConditionDomainRunning, Status: metav1.ConditionTrue, Reason: ReasonStarted}}
		}, true},
		{"once, rebooting", func(c *vmv1alpha1.VMClone) {
			c.Spec.RunStrategy = vmv1alpha1.RunStrategyOnce
			c.Status.Timestamps = &vmv1alpha1.CloneTimestamps{Started: &started}
			c.Status.Conditions = []metav1.Condition{{Type: vmv1alpha1.ConditionDomainRunning, Status: metav1.ConditionFalse, Reason: ReasonRestarting}}
		}, true},
		{"once, powered off", func(c *vmv1alpha1.VMClone) {
			c.Spec.RunStrategy = vmv1alpha1.RunStrategyOnce
			c.Status.Timestamps = &vmv1alpha1.CloneTimestamps{Started: &started}
			c.Status.Conditions = []metav1.Condition{{Type: vmv1alpha1.ConditionDomainRunning, Status: metav1.ConditionFalse, Reason: ReasonGuestPoweredOff}}
		}, false},
		{"rerun after poweroff", func(c *vmv1alpha1.VMClone) {
			c.Spec.RunStrategy = vmv1alpha1.RunStrategyRerunOnFailure
			c.Status.Conditions = []metav1.Condition{{Type: vmv1alpha1.ConditionDomainRunning, Status: metav1.ConditionFalse, Reason: ReasonGuestPoweredOff}}
		}, false},
		{"rerun after crash", func(c *vmv1alpha1.VMClone) {
			c.Spec.RunStrategy = vmv1alpha1.RunStrategyRerunOnFailure
			c.Status.Conditions = []metav1.Condition{{Type: vmv1alpha1.ConditionDomainRunning, Status: metav1.ConditionFalse, Reason: ReasonGuestCrashed}}
		}, true},
		{"expired with onExpiry Stop", func(c *vmv1alpha1.VMClone) {
			c.Spec.Lifetime = &vmv1alpha1.Lifetime{OnExpiry: vmv1alpha1.ExpiryStop}
			c.Status.Conditions = []metav1.Condition{{Type: vmv1alpha1.ConditionExpired, Status: metav1.ConditionTrue}}
		}, false},
	} {
		c := testClone("ns", "c", "u")
		tc.mut(c)
		if got := wantRunning(c, c.Status); got != tc.want {
			t.Errorf("%s: wantRunning = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestUsagePolicies(t *testing.T) {
	maxSize := resource.MustParse("8Gi")
	tpl := &vmv1alpha1.VMTemplate{Spec: vmv1alpha1.VMTemplateSpec{Snapshot: vmv1alpha1.SnapshotSpec{
		AutoExtend:     &vmv1alpha1.AutoExtendPolicy{ThresholdPercent: 60, StepPercent: 50, MaxSize: &maxSize},
		PoolThresholds: &vmv1alpha1.PoolThresholds{DataPercent: 90, MetadataPercent: 50},
	}}}
	sp, pp := UsagePolicies(tpl)
	if sp.ThresholdPercent != 60 || sp.StepPercent != 50 || sp.MaxSize != 8<<30 || pp.DataThresholdPercent != 90 || pp.MetadataThresholdPercent != 50 {
		t.Errorf("got %+v %+v", sp, pp)
	}
	if err := sp.Validate(); err != nil {
		t.Error(err)
	}
	sp, pp = UsagePolicies(&vmv1alpha1.VMTemplate{})
	if sp.Validate() != nil || pp.Validate() != nil {
		t.Errorf("defaults invalid: %+v %+v", sp, pp)
	}
}

// Placement reserves what the agent then allocates: memory and COW area must be the same
// figures when the template leaves them to the defaults (placement once counted 128 MiB and
// no COW while the agent started 512 MiB on a 1 GiB snapshot).
func TestPlacementRequestMatchesAgent(t *testing.T) {
	for _, tc := range []struct {
		name string
		tpl  *vmv1alpha1.VMTemplate
		mut  func(*vmv1alpha1.VMClone)
	}{
		{"template without memory or COW size", &vmv1alpha1.VMTemplate{}, func(*vmv1alpha1.VMClone) {}},
		{"clone overrides", &vmv1alpha1.VMTemplate{}, func(c *vmv1alpha1.VMClone) {
			mem, cow := resource.MustParse("1500Mi"), resource.MustParse("3Gi")
			c.Spec.Resources = &vmv1alpha1.CloneResources{Memory: &mem}
			c.Spec.Storage = &vmv1alpha1.CloneStorage{COWSize: &cow}
		}},
		{"thin template", &vmv1alpha1.VMTemplate{Spec: vmv1alpha1.VMTemplateSpec{
			Snapshot: vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotThin}}}, func(*vmv1alpha1.VMClone) {}},
	} {
		c := testClone("default", "web-1", "1a2b3c4d-0000-4000-8000-000000000000")
		c.Status.UUID = string(c.UID)
		tc.mut(c)
		req := controllers.RequestFor(c, tc.tpl)
		cfg, err := DomainConfigFor(tc.tpl, c, "/dev/vg0/x", "")
		if err != nil {
			t.Fatal(err)
		}
		if req.MemoryMiB != cfg.MemoryMiB {
			t.Errorf("%s: placement counts %d MiB, the agent starts the domain with %d MiB", tc.name, req.MemoryMiB, cfg.MemoryMiB)
		}
		if snap := SnapshotFor(tc.tpl, c); req.COWBytes != int64(snap.COWBytes) {
			t.Errorf("%s: placement counts %d bytes of COW, the agent allocates %d", tc.name, req.COWBytes, snap.COWBytes)
		}
	}
}
