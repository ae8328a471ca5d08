package lvm

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Tags of a template origin this package imported from a VMTemplate's spec.source. They are
// not the clone tags (no ManagedTag): an imported origin is not a clone's disk, so the clone
// orphan collector and OriginRefusal leave it alone.
//
//	xenclone.imported                 constant: `lvs @xenclone.imported` lists every import
//	xenclone.template-uid=<uid>       the VMTemplate's UID: the ownership check
//	xenclone.template=<name>          for people reading `lvs -o+tags`
//	xenclone.importing                set until the data is verified: such an LV is never
//	                                  given the origin's name
//	xenclone.image=<algo>:<hex>       the verified digest, set by the commit
const (
	ImportedTag          = TagPrefix + "imported"
	TemplateUIDTagPrefix = TagPrefix + "template-uid="
	TemplateTagPrefix    = TagPrefix + "template="
	ImportingTag         = TagPrefix + "importing"
	ImageTagPrefix       = TagPrefix + "image="
)

// TemplateOwner is the VMTemplate an imported origin belongs to. Only UID decides ownership.
type TemplateOwner struct {
	UID  string
	Name string
}

// Tags are the tags an import volume of this owner carries from its creation.
func (o TemplateOwner) Tags() []string {
	return []string{ImportedTag, TemplateUIDTagPrefix + o.UID, TemplateTagPrefix + o.Name}
}

// Validate checks the owner's tags against lvm's character set.
func (o TemplateOwner) Validate() error {
	if o.UID == "" {
		return fmt.Errorf("template %s: empty UID", o.Name)
	}
	for _, t := range o.Tags() {
		if err := ValidateTag(t); err != nil {
			return err
		}
	}
	return nil
}

// ImportedFor reports whether the LV is an import of the template with that UID.
func (l LV) ImportedFor(uid string) bool {
	return uid != "" && l.HasTag(ImportedTag) && l.HasTag(TemplateUIDTagPrefix+uid)
}

// ImportTemplateUID is the template UID of an imported LV, or "".
func (l LV) ImportTemplateUID() string {
	if !l.HasTag(ImportedTag) {
		return ""
	}
	for _, t := range l.Tags {
		if uid, ok := strings.CutPrefix(t, TemplateUIDTagPrefix); ok {
			return uid
		}
	}
	return ""
}

// ImageChecksum is the digest a committed import was verified against, or "".
func (l LV) ImageChecksum() string {
	for _, t := range l.Tags {
		if c, ok := strings.CutPrefix(t, ImageTagPrefix); ok {
			return c
		}
	}
	return ""
}

// CreateImportVolume creates the plain LV an import is written into, tagged as owner's and as
// still importing by the same lvcreate. An existing import volume of owner's that is still
// importing is returned as is (a restarted agent starts its write again); any other LV of that
// name is ErrConflict.
func (c *Client) CreateImportVolume(ctx context.Context, ref Ref, size uint64, owner TemplateOwner) (LV, error) {
	op := "create import volume " + ref.String()
	if err := ref.Validate(); err != nil {
		return LV{}, &Error{Op: op, Kind: ErrInvalidArgument, Err: err}
	}
	if err := owner.Validate(); err != nil {
		return LV{}, &Error{Op: op, Kind: ErrInvalidArgument, Err: err}
	}
	if size == 0 {
		return LV{}, refusal(op, ErrInvalidArgument, "size 0")
	}
	argv := []string{"--yes"}
	for _, t := range append(owner.Tags(), ImportingTag) {
		argv = append(argv, "--addtag", t)
	}
	argv = append(argv, "-n", ref.Name, "-L", bytesArg(size), ref.VG)
	_, err := c.run(ctx, op, "", "lvcreate", argv...)
	if err != nil && !errors.Is(err, ErrNameExists) {
		return LV{}, err
	}
	lv, lerr := c.LookupLV(ctx, ref)
	if lerr != nil {
		if err != nil {
			return LV{}, err
		}
		return LV{}, fmt.Errorf("%s: created, but reading it back failed: %w", op, lerr)
	}
	if err != nil && !(lv.ImportedFor(owner.UID) && lv.HasTag(ImportingTag)) {
		return LV{}, refusal(op, ErrConflict, fmt.Sprintf("%s exists and is not an unfinished import of template %s; tags: %s",
			ref, owner.Name, strings.Join(lv.Tags, ",")))
	}
	return lv, nil
}

// CommitImport makes the verified import volume tmp the template's origin: one lvchange makes
// it read-only, drops ImportingTag and records the digest, then lvrename gives it the origin's
// name — so an LV of the origin's name is always a finished, read-only import. Idempotent: a
// commit that was cut off after the lvchange only renames.
func (c *Client) CommitImport(ctx context.Context, tmp Ref, origin string, owner TemplateOwner, checksum string) error {
	op := fmt.Sprintf("commit import %s as %s/%s", tmp, tmp.VG, origin)
	want := Ref{VG: tmp.VG, Name: origin}
	if err := want.Validate(); err != nil {
		return &Error{Op: op, Kind: ErrInvalidArgument, Err: err}
	}
	imageTag := ImageTagPrefix + checksum
	if err := ValidateTag(imageTag); err != nil {
		return &Error{Op: op, Kind: ErrInvalidArgument, Err: err}
	}
	lv, err := c.LookupLV(ctx, tmp)
	if errors.Is(err, ErrLVNotFound) {
		// Renamed already?
		done, lerr := c.LookupLV(ctx, want)
		if lerr == nil && done.ImportedFor(owner.UID) && done.ImageChecksum() == checksum {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	if err := notImportOf(op, lv, owner); err != nil {
		return err
	}
	if lv.HasTag(ImportingTag) || !lv.Attr.ReadOnly() || !lv.HasTag(imageTag) {
		args := []string{"--yes", "--deltag", ImportingTag, "--addtag", imageTag}
		if !lv.Attr.ReadOnly() {
			args = append(args, "-pr")
		}
		if _, err := c.run(ctx, op, "", "lvchange", append(args, tmp.String())...); err != nil {
			return err
		}
	}
	if _, err := c.run(ctx, op, "", "lvrename", tmp.VG, tmp.Name, origin); err != nil {
		return err
	}
	logger(ctx).V(1).Info("committed import", "lv", want.String(), "template", owner.Name, "checksum", checksum)
	return nil
}

// RemoveImport removes an LV imported for owner (a failed attempt's volume, or the origin of a
// deleted template). A missing LV is success. It refuses any LV that is not owner's import
// (ErrNotOwned) and an origin that still has snapshots or thin LVs (ErrInUse).
func (c *Client) RemoveImport(ctx context.Context, ref Ref, owner TemplateOwner) error {
	op := "remove import " + ref.String()
	lv, err := c.LookupLV(ctx, ref)
	if errors.Is(err, ErrLVNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := notImportOf(op, lv, owner); err != nil {
		return err
	}
	if lv.Attr.IsOrigin() {
		return refusal(op, ErrInUse, fmt.Sprintf("%s is the origin of snapshots or thin LVs; remove them first", ref))
	}
	_, err = c.run(ctx, op, "", "lvremove", "--yes", ref.String())
	if errors.Is(err, ErrLVNotFound) {
		return nil
	}
	if err == nil {
		logger(ctx).V(1).Info("removed import", "lv", ref.String(), "template", owner.Name)
	}
	return err
}

// DeactivateImport deactivates an imported origin (`lvchange -an`): lvm makes a thick LV the
// external origin of a thin pool's first thin snapshot only while it is inactive, and once it
// is one it may be active again. It refuses an LV that is not owner's import.
func (c *Client) DeactivateImport(ctx context.Context, ref Ref, owner TemplateOwner) error {
	op := "deactivate import " + ref.String()
	lv, err := c.LookupLV(ctx, ref)
	if err != nil {
		return err
	}
	if err := notImportOf(op, lv, owner); err != nil {
		return err
	}
	_, err = c.run(ctx, op, "", "lvchange", "--yes", "-an", ref.String())
	return err
}

// notImportOf refuses (ErrNotOwned) an LV that is not owner's import: the tags of volumes we
// did not import for this template are not ours to change.
func notImportOf(op string, lv LV, owner TemplateOwner) error {
	if lv.ImportedFor(owner.UID) {
		return nil
	}
	return refusal(op, ErrNotOwned, fmt.Sprintf("%s is not an import of template %s (uid %s); tags: %s",
		lv.Ref(), owner.Name, owner.UID, strings.Join(lv.Tags, ",")))
}
