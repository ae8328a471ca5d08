package lvm

import (
	"errors"
	"testing"
)

var tmplA = TemplateOwner{UID: "9d2f7c1e-5a0b-4c3d-8e6f-102030405060", Name: "debian12"}

// TestHostImportLifecycle drives an import volume through the real lvm2: created tagged
// "importing", committed (read-only, digest tag, then renamed), refused to anyone else, and
// removed. A foreign LV of the origin's or the temp's name is never taken over.
func TestHostImportLifecycle(t *testing.T) {
	h := newHostVG(t, "")
	ctx := testCtx(t)
	const sum = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

	tmp, err := h.client.CreateImportVolume(ctx, h.ref("golden_xcimport"), 5_000_000, tmplA)
	if err != nil {
		t.Fatal(err)
	}
	if tmp.Size != 2*testExtentSize || !tmp.ImportedFor(tmplA.UID) || !tmp.HasTag(ImportingTag) || tmp.Managed() || tmp.Attr.ReadOnly() {
		t.Fatalf("import volume %+v", tmp)
	}
	// A restarted agent gets its unfinished volume back; a clone owner's LV of that name is a conflict.
	if again, err := h.client.CreateImportVolume(ctx, h.ref("golden_xcimport"), 5_000_000, tmplA); err != nil || again.UUID != tmp.UUID {
		t.Errorf("create again: %+v, %v", again, err)
	}
	if _, err := h.client.CreateLinear(ctx, h.ref("someone"), testExtentSize, ownerA); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.CreateImportVolume(ctx, h.ref("someone"), testExtentSize, tmplA); !errors.Is(err, ErrConflict) {
		t.Errorf("import over a clone's LV: %v, want ErrConflict", err)
	}
	other := TemplateOwner{UID: "11111111-2222-4333-8444-555555555555", Name: "other"}
	if err := h.client.CommitImport(ctx, h.ref("golden_xcimport"), "golden", other, sum); !errors.Is(err, ErrNotOwned) {
		t.Errorf("commit by another template: %v, want ErrNotOwned", err)
	}
	if err := h.client.RemoveImport(ctx, h.ref("someone"), tmplA); !errors.Is(err, ErrNotOwned) {
		t.Errorf("remove a clone's LV as an import: %v, want ErrNotOwned", err)
	}

	for range 2 { // idempotent
		if err := h.client.CommitImport(ctx, h.ref("golden_xcimport"), "golden", tmplA, sum); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	rep, err := h.client.Report(ctx, h.name)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rep.LV("golden_xcimport"); ok {
		t.Error("the import volume kept its temporary name")
	}
	origin, ok := rep.LV("golden")
	if !ok || origin.UUID != tmp.UUID || !origin.Attr.ReadOnly() || origin.HasTag(ImportingTag) ||
		origin.ImageChecksum() != sum || origin.ImportTemplateUID() != tmplA.UID || origin.HasTag(MadeReadOnlyTag) {
		t.Fatalf("origin after commit: %+v (found %v)", origin, ok)
	}

	if err := h.client.DeactivateImport(ctx, h.ref("golden"), tmplA); err != nil {
		t.Errorf("deactivate: %v", err)
	}
	if err := h.client.DeactivateImport(ctx, h.ref("someone"), tmplA); !errors.Is(err, ErrNotOwned) {
		t.Errorf("deactivate a clone's LV as an import: %v, want ErrNotOwned", err)
	}
	if err := h.client.RemoveImport(ctx, h.ref("golden"), other); !errors.Is(err, ErrNotOwned) {
		t.Errorf("remove by another template: %v, want ErrNotOwned", err)
	}
	for range 2 {
		if err := h.client.RemoveImport(ctx, h.ref("golden"), tmplA); err != nil {
			t.Errorf("remove: %v", err)
		}
	}
	if _, err := h.client.LookupLV(ctx, h.ref("golden")); !errors.Is(err, ErrLVNotFound) {
		t.Errorf("origin still there after remove: %v", err)
	}
	if _, err := h.client.LookupLV(ctx, h.ref("someone")); err != nil {
		t.Errorf("the clone's LV was touched: %v", err)
	}
}
