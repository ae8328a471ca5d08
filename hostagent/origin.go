package hostagent

import (
	"fmt"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/lvm"
)

// OriginRefusal says why the LV a VMTemplate names must not become a template origin on this
// host, or "" when it may. The template is not ours: a typo (vg0/root for vg0/golden) must not
// make a live LV read-only on every host of the fleet. The host reporter publishes the answer
// (placement skips a refusing host) and ensureVolume asks again right before it protects the
// origin for the first snapshot, so both sides decide by this one function.
func OriginRefusal(lv lvm.LV) string {
	switch {
	case lv.Managed():
		return fmt.Sprintf("%s is a clone's disk (tag %s), not a template: name the template's own LV", lv.Ref(), lvm.ManagedTag)
	case lv.HasTag(lvm.NotTemplateTag):
		return fmt.Sprintf("%s carries tag %s: an administrator marked it as no template's origin; name another LV, or remove the tag (lvchange --deltag %s %s)",
			lv.Ref(), lvm.NotTemplateTag, lvm.NotTemplateTag, lv.Ref())
	case lv.Attr.IsThinPool(), lv.Attr.IsClassicSnapshot():
		return fmt.Sprintf("%s is a %s, which cannot be a template's origin", lv.Ref(), lvKind(lv))
	case !lv.Attr.ReadOnly() && lv.Attr.Open == lvm.Open:
		// Writable and open: mounted, a running domain's disk (blkback holds it) or used by a
		// process. Making it read-only would break that user. Once read-only (by us, before the
		// first clone, or by an administrator) an open origin is fine: snapshots read it.
		return fmt.Sprintf("%s is writable and open (mounted, a running domain's disk or held by a process): a template's origin must be unused; stop its user and the agent protects it for the first clone, or make it read-only yourself (lvchange -pr %s)",
			lv.Ref(), lv.Ref())
	}
	return ""
}

func lvKind(lv lvm.LV) string {
	if lv.Attr.IsThinPool() {
		return "thin pool"
	}
	return "classic snapshot"
}

// TemplateOriginRefusal is OriginRefusal for the LV of tmpl's origin name: a template with a
// source uses only the origin xenclone imported for it, from that image, and nothing else of
// that name.
func TemplateOriginRefusal(tmpl *vmv1alpha1.VMTemplate, lv lvm.LV) string {
	if src := tmpl.Spec.Source; src != nil {
		switch {
		case !lv.ImportedFor(string(tmpl.UID)):
			return fmt.Sprintf("%s exists but xenclone did not import it for this template (spec.source); it is left untouched: rename or remove it, or name another spec.origin.logicalVolume", lv.Ref())
		case lv.ImageChecksum() != src.Checksum:
			return fmt.Sprintf("%s was imported from an image with checksum %s, not spec.source.checksum", lv.Ref(), lv.ImageChecksum())
		}
	}
	return OriginRefusal(lv)
}
