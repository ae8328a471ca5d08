package lvm

import (
	"os"
	"path/filepath"
	"testing"
)

// The real-lab fixtures are lvm2's own output on a device-mapper kernel: captured by
// `make lab-fixtures` (hack/lab/e2e TestCaptureFixtures) in the QEMU host lab's dom0, with this
// package's field lists. See testdata/real-lab/README.md.

func readLab(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "real-lab", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func labLVs(t *testing.T, name string) map[string]LV {
	t.Helper()
	lvs, err := ParseLVReport(readLab(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	out := map[string]LV{}
	for _, lv := range lvs {
		if lv.VG != "vg0" || lv.UUID == "" || lv.Created.IsZero() {
			t.Errorf("%s: %s: vg %q uuid %q created %v", name, lv.Name, lv.VG, lv.UUID, lv.Created)
		}
		out[lv.Name] = lv
	}
	return out
}

func TestLabClassicSnapshotInUse(t *testing.T) {
	lvs := labLVs(t, "lvs-classic-snapshot-in-use.json")
	snap, tmpl := lvs["clone-a"], lvs["tmpl"]
	if !snap.Attr.IsClassicSnapshot() || snap.Attr.State != StateActive || snap.Attr.Open != Open || snap.Attr.Invalid() {
		t.Errorf("clone-a attr %s: want an active, open, valid classic snapshot", snap.Attr)
	}
	if snap.Origin != "tmpl" || snap.Size != 16<<20 || snap.OriginSize != 64<<20 || !snap.Active {
		t.Errorf("clone-a: origin %q size %d origin size %d active %v", snap.Origin, snap.Size, snap.OriginSize, snap.Active)
	}
	if !snap.DataPercent.Valid || snap.DataPercent.Value <= 0 || snap.DataPercent != snap.SnapPercent {
		t.Errorf("clone-a: data %v snap %v: want the same valid COW usage", snap.DataPercent, snap.SnapPercent)
	}
	if !snap.Managed() || !snap.OwnedBy("0b9e7d0c-3f4a-4f7e-9a51-2c8d6e1f0a11") {
		t.Errorf("clone-a tags %v: want managed and owned", snap.Tags)
	}
	if !tmpl.Attr.IsOrigin() || !tmpl.Attr.ReadOnly() || tmpl.DataPercent.Valid || tmpl.Managed() {
		t.Errorf("tmpl attr %s data %v tags %v: want a read-only, untagged origin without usage", tmpl.Attr, tmpl.DataPercent, tmpl.Tags)
	}
}

func TestLabInvalidSnapshot(t *testing.T) {
	lvs := labLVs(t, "lvs-invalid-snapshot.json")
	full := lvs["full"]
	if !full.Attr.IsClassicSnapshot() || !full.Attr.Invalid() {
		t.Errorf("full attr %s: want an invalid classic snapshot", full.Attr)
	}
	if !full.DataPercent.Valid || full.DataPercent.Value != 100 {
		t.Errorf("full: data %v, want 100%%", full.DataPercent)
	}
	if a := lvs["clone-a"].Attr; a.Invalid() || a.Open != NotOpen {
		t.Errorf("clone-a attr %s: want valid and closed", a)
	}
}

func TestLabThinPool(t *testing.T) {
	lvs := labLVs(t, "lvs-thin-pool.json")
	pool, tmpl, snap := lvs["pool"], lvs["thintmpl"], lvs["thin-a"]
	if !pool.Attr.IsThinPool() || pool.Attr.Health != HealthOK || !pool.DataPercent.Valid || !pool.MetadataPercent.Valid ||
		pool.DataPercent.Value <= 0 || pool.MetadataPercent.Value <= 0 {
		t.Errorf("pool attr %s data %v metadata %v: want a healthy pool with data and metadata usage", pool.Attr, pool.DataPercent, pool.MetadataPercent)
	}
	if !tmpl.Attr.IsThin() || !tmpl.Attr.ReadOnly() || tmpl.Pool != "pool" {
		t.Errorf("thintmpl attr %s pool %q: want a read-only thin LV in pool", tmpl.Attr, tmpl.Pool)
	}
	if !snap.Attr.IsThin() || snap.Origin != "thintmpl" || snap.Pool != "pool" || snap.Attr.Open != Open || !snap.Attr.SkipActivation || !snap.Active {
		t.Errorf("thin-a attr %s origin %q pool %q active %v: want an open, active thin snapshot of thintmpl with the skip flag", snap.Attr, snap.Origin, snap.Pool, snap.Active)
	}
	if !snap.Managed() {
		t.Errorf("thin-a tags %v", snap.Tags)
	}
}

func TestLabThinSnapshotInactive(t *testing.T) {
	lvs := labLVs(t, "lvs-thin-snapshot-inactive.json")
	snap, ok := lvs["thin-b"]
	if !ok || len(lvs) != 1 {
		t.Fatalf("want thin-b only, got %v", lvs)
	}
	if !snap.Attr.IsThin() || snap.Attr.State != StateInactive || !snap.Attr.SkipActivation || snap.Active || snap.DataPercent.Valid {
		t.Errorf("thin-b attr %s active %v data %v: want an inactive thin snapshot with the skip flag and no usage", snap.Attr, snap.Active, snap.DataPercent)
	}
}

func TestLabExternalOrigin(t *testing.T) {
	lvs := labLVs(t, "lvs-external-origin.json")
	tmpl, ext := lvs["tmpl2"], lvs["ext-a"]
	if !tmpl.Attr.IsOrigin() || !tmpl.Attr.ReadOnly() {
		t.Errorf("tmpl attr %s: want a read-only origin", tmpl.Attr)
	}
	if !ext.Attr.IsThin() || ext.Origin != "tmpl2" || ext.Pool != "pool" {
		t.Errorf("ext-a attr %s origin %q pool %q: want a thin snapshot of the thick tmpl2 in pool", ext.Attr, ext.Origin, ext.Pool)
	}
}

func TestLabVGAndFullReport(t *testing.T) {
	vgs, err := ParseVGReport(readLab(t, "vgs.json"))
	if err != nil || len(vgs) != 1 {
		t.Fatalf("vgs: %v %v", vgs, err)
	}
	vg := vgs[0]
	if vg.Name != "vg0" || vg.Size == 0 || vg.Free >= vg.Size || vg.ExtentSize != 4<<20 || vg.MetadataSize == 0 ||
		vg.MetadataFree == 0 || vg.LVCount != 2 {
		t.Errorf("vg0: %+v", vg)
	}
	if p := vg.MetadataUsedPercent(); p <= 0 || p >= 100 {
		t.Errorf("vg0 metadata used %.2f%%", p)
	}
	reps, err := ParseFullReport(readLab(t, "fullreport.json"))
	if err != nil || len(reps) != 1 {
		t.Fatalf("fullreport: %v %v", reps, err)
	}
	if reps[0].VG.Name != "vg0" || len(reps[0].LVs) < 5 {
		t.Errorf("fullreport: vg %q with %d LVs", reps[0].VG.Name, len(reps[0].LVs))
	}
	for _, name := range []string{"tmpl", "clone-a", "pool", "thintmpl", "thin-a", "thin-b", "tmpl2", "ext-a"} {
		if _, ok := reps[0].LV(name); !ok {
			t.Errorf("fullreport: no LV %s", name)
		}
	}
}
