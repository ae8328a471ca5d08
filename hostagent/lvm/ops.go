package lvm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/xenclone/xenclone/hostagent/command"
)

// CreateLinear creates a plain (thick) LV of size bytes owned by owner. Used for full-copy
// volumes and by tests; an existing plain LV with the same name and our owner tag is
// returned as success.
func (c *Client) CreateLinear(ctx context.Context, ref Ref, size uint64, owner Owner) (LV, error) {
	op := "create volume " + ref.String()
	if size == 0 {
		return LV{}, refusal(op, ErrInvalidArgument, "size 0")
	}
	return c.create(ctx, op, ref, owner, func(lv LV) error {
		// An origin is still our plain LV: someone took a snapshot of it since.
		if lv.Attr.Type != TypePlain && lv.Attr.Type != TypeOrigin || lv.Origin != "" {
			return fmt.Errorf("it is a %q volume with origin %q, not a plain volume", lv.Attr, lv.Origin)
		}
		return nil
	}, "-n", ref.Name, "-L", bytesArg(size), ref.VG)
}

// CreateClassicSnapshot creates a COW snapshot `name` of origin with a COW area of cowSize
// bytes (`lvcreate -s -L`). The COW area must be watched and extended before it fills (see
// SnapshotPolicy): a full one is invalidated by the kernel and the clone's disk is lost.
// Keep the origin read-only (SetOriginReadOnly) while it has snapshots: every origin write
// is copied into every snapshot.
func (c *Client) CreateClassicSnapshot(ctx context.Context, origin Ref, name string, cowSize uint64, owner Owner) (LV, error) {
	want := Ref{VG: origin.VG, Name: name}
	op := fmt.Sprintf("create classic snapshot %s of %s", want, origin)
	if cowSize == 0 {
		return LV{}, refusal(op, ErrInvalidArgument, "COW size 0")
	}
	if err := origin.Validate(); err != nil {
		return LV{}, &Error{Op: op, Kind: ErrInvalidArgument, Err: err}
	}
	return c.create(ctx, op, want, owner, func(lv LV) error {
		if !lv.Attr.IsClassicSnapshot() || lv.Origin != origin.Name {
			return fmt.Errorf("it is a %q volume with origin %q, not a classic snapshot of %s", lv.Attr, lv.Origin, origin.Name)
		}
		return nil
	}, "-s", "-n", name, "-L", bytesArg(cowSize), origin.String())
}

// CreateThinSnapshot creates a thin snapshot `name` of the thin LV origin (no size: blocks
// come from the origin's pool). lvm flags thin snapshots to be skipped at activation ('k'),
// so activate them with Activate.
func (c *Client) CreateThinSnapshot(ctx context.Context, origin Ref, name string, owner Owner) (LV, error) {
	want := Ref{VG: origin.VG, Name: name}
	op := fmt.Sprintf("create thin snapshot %s of %s", want, origin)
	if err := origin.Validate(); err != nil {
		return LV{}, &Error{Op: op, Kind: ErrInvalidArgument, Err: err}
	}
	return c.create(ctx, op, want, owner, func(lv LV) error {
		if !lv.Attr.IsThin() || lv.Origin != origin.Name {
			return fmt.Errorf("it is a %q volume with origin %q, not a thin snapshot of %s", lv.Attr, lv.Origin, origin.Name)
		}
		return nil
	}, "-s", "-n", name, origin.String())
}

// CreateThinSnapshotOfExternalOrigin creates a thin LV `name` in thinPool whose unwritten
// blocks are read from the thick LV origin (`lvcreate -s --thinpool`): the original recipe's
// thick template, without a fixed COW size per clone. One external origin serves many thin
// snapshots. The pool must be in the origin's VG. lvm refuses a writable origin
// (ErrInvalidArgument: SetOriginReadOnly first) and, for the FIRST such snapshot, an active
// one (ErrInUse: Deactivate it first); once it is an external origin (attr 'o') it may stay
// active (validate_thin_external_origin, lib/metadata/thin_manip.c).
func (c *Client) CreateThinSnapshotOfExternalOrigin(ctx context.Context, origin Ref, thinPool, name string, owner Owner) (LV, error) {
	want := Ref{VG: origin.VG, Name: name}
	op := fmt.Sprintf("create thin snapshot %s of external origin %s in pool %s", want, origin, thinPool)
	if err := origin.Validate(); err != nil {
		return LV{}, &Error{Op: op, Kind: ErrInvalidArgument, Err: err}
	}
	if err := ValidateLVName(thinPool); err != nil {
		return LV{}, &Error{Op: op, Kind: ErrInvalidArgument, Err: fmt.Errorf("thin pool: %w", err)}
	}
	return c.create(ctx, op, want, owner, func(lv LV) error {
		if !lv.Attr.IsThin() || lv.Origin != origin.Name || lv.Pool != thinPool {
			return fmt.Errorf("it is a %q volume with origin %q in pool %q, not a thin snapshot of %s in %s",
				lv.Attr, lv.Origin, lv.Pool, origin.Name, thinPool)
		}
		return nil
	}, "-s", "--thinpool", thinPool, "-n", name, origin.String())
}

// create runs lvcreate with our owner tags and makes it idempotent: if the name is taken,
// the existing LV is success when it carries owner's tag and is what we asked for (same(lv)
// == nil), and ErrConflict otherwise. The tags are set by the creating call itself, so no
// LV of ours exists untagged, even if the agent dies right after.
func (c *Client) create(ctx context.Context, op string, want Ref, owner Owner, same func(LV) error, args ...string) (LV, error) {
	if err := want.Validate(); err != nil {
		return LV{}, &Error{Op: op, Kind: ErrInvalidArgument, Err: err}
	}
	if err := owner.Validate(); err != nil {
		return LV{}, &Error{Op: op, Kind: ErrInvalidArgument, Err: err}
	}
	argv := []string{"--yes"}
	for _, t := range owner.Tags() {
		argv = append(argv, "--addtag", t)
	}
	argv = append(argv, args...)
	_, err := c.run(ctx, op, "", "lvcreate", argv...)
	if err != nil && !errors.Is(err, ErrNameExists) {
		return LV{}, err
	}
	lv, lerr := c.LookupLV(ctx, want)
	if lerr != nil {
		if err != nil {
			return LV{}, err // name taken but gone again: report the create failure
		}
		return LV{}, fmt.Errorf("%s: created, but reading it back failed: %w", op, lerr)
	}
	if err == nil {
		logger(ctx).V(1).Info("created logical volume", "lv", want.String(), "attr", lv.Attr.String(), "owner", owner.UID)
		return lv, nil
	}
	if !lv.OwnedBy(owner.UID) {
		return LV{}, refusal(op, ErrConflict, fmt.Sprintf("%s exists and is not ours (%s); tags: %s",
			want, ownerDesc(lv), strings.Join(lv.Tags, ",")))
	}
	if err := same(lv); err != nil {
		return LV{}, refusal(op, ErrConflict, fmt.Sprintf("%s exists with our owner tag but %v", want, err))
	}
	return lv, nil
}

func ownerDesc(lv LV) string {
	if uid := lv.OwnerUID(); uid != "" {
		return "owner UID " + uid
	}
	return "no xenclone owner tag"
}

// Activate activates the LV, ignoring the activation-skip flag thin snapshots carry
// (`lvchange -ay -K`). Activating an active LV is a no-op in lvm. It needs no owner: it
// changes no metadata, and an external origin's or pool's sub-LVs come along anyway.
func (c *Client) Activate(ctx context.Context, ref Ref) error {
	op := "activate " + ref.String()
	if err := ref.Validate(); err != nil {
		return &Error{Op: op, Kind: ErrInvalidArgument, Err: err}
	}
	_, err := c.run(ctx, op, "", "lvchange", "--yes", "-ay", "-K", ref.String())
	return err
}

// Deactivate deactivates the LV (`lvchange -an`); lvm refuses an open one (ErrInUse). Like
// Activate it changes no metadata and needs no owner: its use is to make a template inactive
// before it first becomes an external origin.
func (c *Client) Deactivate(ctx context.Context, ref Ref) error {
	op := "deactivate " + ref.String()
	if err := ref.Validate(); err != nil {
		return &Error{Op: op, Kind: ErrInvalidArgument, Err: err}
	}
	_, err := c.run(ctx, op, "", "lvchange", "--yes", "-an", ref.String())
	return err
}

// SetOriginReadOnly sets the origin's permission to read-only (`lvchange -pr`): origin
// writes are multiplied by the number of classic snapshots and would change every clone's
// base, and an external origin must be read-only. The template is not ours: the same call adds
// MadeReadOnlyTag, the record that the flag is ours to revert (RestoreOriginWritable). An
// origin already read-only is left as it is, untagged. Idempotent.
func (c *Client) SetOriginReadOnly(ctx context.Context, ref Ref) error {
	op := "set origin read-only " + ref.String()
	lv, err := c.LookupLV(ctx, ref)
	if err != nil {
		return err
	}
	if lv.Attr.ReadOnly() {
		return nil
	}
	_, err = c.run(ctx, op, "", "lvchange", "--yes", "-pr", "--addtag", MadeReadOnlyTag, ref.String())
	// real (exit 5): `Logical volume "vg/lv" is already read only.` — lost a race, same result.
	if err != nil && strings.Contains(command.Stderr(err), "is already read only") {
		return nil
	}
	if err == nil {
		logger(ctx).V(1).Info("set origin read-only", "lv", ref.String())
	}
	return err
}

// RestoreOriginWritable reverts SetOriginReadOnly (`lvchange -prw --deltag`) on an LV that
// carries MadeReadOnlyTag; any other LV is left alone (ErrNotOwned), whoever made it read-only.
func (c *Client) RestoreOriginWritable(ctx context.Context, ref Ref) error {
	op := "restore origin writable " + ref.String()
	lv, err := c.LookupLV(ctx, ref)
	if err != nil {
		return err
	}
	if !lv.HasTag(MadeReadOnlyTag) {
		return &Error{Op: op, Kind: ErrNotOwned, Err: fmt.Errorf("%s does not carry %s: its read-only flag was not set by xenclone", ref, MadeReadOnlyTag)}
	}
	args := []string{"--yes", "--deltag", MadeReadOnlyTag}
	if lv.Attr.ReadOnly() {
		args = append(args, "-prw")
	}
	_, err = c.run(ctx, op, "", "lvchange", append(args, ref.String())...)
	if err == nil {
		logger(ctx).V(1).Info("restored origin writable", "lv", ref.String())
	}
	return err
}

// ExtendSnapshot grows the COW area of our classic snapshot by `by` bytes (rounded up to
// whole extents by lvm). Not idempotent by nature: callers decide from a fresh report (see
// SnapshotPolicy), or use ExtendSnapshotTo.
func (c *Client) ExtendSnapshot(ctx context.Context, ref Ref, owner Owner, by uint64) error {
	op := fmt.Sprintf("extend snapshot %s by %d bytes", ref, by)
	if by == 0 {
		return nil
	}
	if _, err := c.ownedSnapshot(ctx, op, ref, owner); err != nil {
		return err
	}
	return c.extend(ctx, op, ref, "+"+bytesArg(by))
}

// ExtendSnapshotTo grows the COW area of our classic snapshot to at least size bytes; a
// snapshot already that large is left alone, so it is idempotent.
func (c *Client) ExtendSnapshotTo(ctx context.Context, ref Ref, owner Owner, size uint64) error {
	op := fmt.Sprintf("extend snapshot %s to %d bytes", ref, size)
	lv, err := c.ownedSnapshot(ctx, op, ref, owner)
	if err != nil {
		return err
	}
	if lv.Size >= size {
		return nil
	}
	return c.extend(ctx, op, ref, bytesArg(size))
}

func (c *Client) extend(ctx context.Context, op string, ref Ref, sizeArg string) error {
	_, err := c.run(ctx, op, "", "lvextend", "--yes", "-L", sizeArg, ref.String())
	if err == nil {
		logger(ctx).V(1).Info("extended snapshot", "lv", ref.String(), "size", sizeArg)
	}
	return err
}

// ownedSnapshot looks the LV up and refuses it unless it is our classic snapshot: extending
// a thin LV or a plain LV would change the size of a guest's disk.
func (c *Client) ownedSnapshot(ctx context.Context, op string, ref Ref, owner Owner) (LV, error) {
	lv, err := c.LookupLV(ctx, ref)
	if err != nil {
		return LV{}, err
	}
	if !lv.OwnedBy(owner.UID) {
		return LV{}, refusal(op, ErrNotOwned, fmt.Sprintf("%s has %s, want %s", ref, ownerDesc(lv), owner.OwnerTag()))
	}
	if !lv.Attr.IsClassicSnapshot() {
		return LV{}, refusal(op, ErrInvalidArgument, fmt.Sprintf("%s is a %q volume, not a classic snapshot", ref, lv.Attr))
	}
	return lv, nil
}

// Remove removes our LV. A missing LV is success (idempotent). It refuses an LV without
// owner's tag (ErrNotOwned) and an origin (ErrInUse): lvremove --yes of a classic origin
// would silently take all its snapshots with it, whoever owns them.
func (c *Client) Remove(ctx context.Context, ref Ref, owner Owner) error {
	op := "remove " + ref.String()
	lv, err := c.LookupLV(ctx, ref)
	if errors.Is(err, ErrLVNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !lv.OwnedBy(owner.UID) {
		return refusal(op, ErrNotOwned, fmt.Sprintf("%s has %s, want %s", ref, ownerDesc(lv), owner.OwnerTag()))
	}
	if lv.Attr.IsOrigin() {
		return refusal(op, ErrInUse, fmt.Sprintf("%s is the origin of snapshots or thin LVs; remove them first", ref))
	}
	_, err = c.run(ctx, op, "", "lvremove", "--yes", ref.String())
	if errors.Is(err, ErrLVNotFound) {
		return nil // removed meanwhile
	}
	if err == nil {
		logger(ctx).V(1).Info("removed logical volume", "lv", ref.String(), "owner", owner.UID)
	}
	return err
}

// AddTag adds tag to our LV (`lvchange --addtag`); an LV that already has it is left alone.
// It refuses an LV without owner's tag: the tags of volumes we do not own are not ours to
// change either.
func (c *Client) AddTag(ctx context.Context, ref Ref, owner Owner, tag string) error {
	op := fmt.Sprintf("tag %s with %s", ref, tag)
	if err := ValidateTag(tag); err != nil {
		return &Error{Op: op, Kind: ErrInvalidArgument, Err: err}
	}
	lv, err := c.LookupLV(ctx, ref)
	if err != nil {
		return err
	}
	if !lv.OwnedBy(owner.UID) {
		return refusal(op, ErrNotOwned, fmt.Sprintf("%s has %s, want %s", ref, ownerDesc(lv), owner.OwnerTag()))
	}
	if lv.HasTag(tag) {
		return nil
	}
	_, err = c.run(ctx, op, "", "lvchange", "--yes", "--addtag", tag, ref.String())
	return err
}
