package lvm

import (
	"fmt"
	"strings"
)

// Ownership tags. Every LV this package creates carries all three, set by the same lvcreate
// call that creates it, so an LV of ours never exists without them:
//
//	xenclone.managed                    constant: `lvs @xenclone.managed` lists every LV of ours
//	xenclone.owner-uid=<uid>            the owning VMClone's UID: the ownership check
//	xenclone.clone=<namespace>/<name>   for people reading `lvs -o+tags`
//
// lvm allows A-Z a-z 0-9 _ + . - / = ! : # & in tags (lvm(8); validate_tag in lvm2's
// lib/misc/lvm-string.c, no length limit); '=' and '/' were checked against the real lvm2
// here. Kubernetes UIDs, namespaces and names only use [a-z0-9.-], so they fit as they are.
const (
	TagPrefix         = "xenclone."
	ManagedTag        = TagPrefix + "managed"
	OwnerUIDTagPrefix = TagPrefix + "owner-uid="
	CloneTagPrefix    = TagPrefix + "clone="

	// MadeReadOnlyTag marks a template origin this package made read-only, set by the same
	// lvchange that sets the permission: only such an LV is ever made writable again, so a
	// read-only flag an administrator set is never reverted.
	MadeReadOnlyTag = TagPrefix + "made-readonly"
	// NotTemplateTag is set by an administrator on an LV no VMTemplate may use (dom0's root,
	// a database volume): a template naming it is refused on that host.
	NotTemplateTag = TagPrefix + "not-template"
)

// Owner is the object an LV belongs to. Only UID decides ownership; Namespace and Name are
// there for humans.
type Owner struct {
	UID       string
	Namespace string
	Name      string
}

// OwnerTag is the tag that proves ownership by this owner.
func (o Owner) OwnerTag() string { return OwnerUIDTagPrefix + o.UID }

// Tags are the tags an LV created for this owner carries.
func (o Owner) Tags() []string {
	return []string{ManagedTag, o.OwnerTag(), CloneTagPrefix + o.Namespace + "/" + o.Name}
}

// Validate checks that the owner's tags are acceptable to lvm.
func (o Owner) Validate() error {
	if o.UID == "" {
		return fmt.Errorf("owner %s/%s: empty UID", o.Namespace, o.Name)
	}
	for _, t := range o.Tags() {
		if err := ValidateTag(t); err != nil {
			return err
		}
	}
	return nil
}

// OwnedBy reports whether the LV carries the owner tag of uid.
func (l LV) OwnedBy(uid string) bool { return uid != "" && l.HasTag(OwnerUIDTagPrefix+uid) }

// Managed reports whether the LV carries xenclone's constant tag (it was created by some
// xenclone agent, whichever clone owns it).
func (l LV) Managed() bool { return l.HasTag(ManagedTag) }

// OwnerUID returns the UID from the LV's owner tag, or "".
func (l LV) OwnerUID() string {
	for _, t := range l.Tags {
		if uid, ok := strings.CutPrefix(t, OwnerUIDTagPrefix); ok {
			return uid
		}
	}
	return ""
}

// ValidateTag checks a tag against lvm's character set.
func ValidateTag(tag string) error {
	if tag == "" {
		return fmt.Errorf("%w: empty tag", ErrInvalidArgument)
	}
	for _, c := range []byte(tag) {
		if !isAlnum(c) && !strings.ContainsRune("_+.-/=!:#&", rune(c)) {
			return fmt.Errorf("%w: tag %q: character %q not allowed by lvm", ErrInvalidArgument, tag, c)
		}
	}
	return nil
}

// Ref names an LV as lvm takes it: VG/Name.
type Ref struct {
	VG   string
	Name string
}

func (r Ref) String() string { return r.VG + "/" + r.Name }

// Validate checks both names against lvm's rules, so that no name can reach lvm's command
// line as an option or be refused late.
func (r Ref) Validate() error {
	if err := ValidateName(r.VG); err != nil {
		return fmt.Errorf("volume group: %w", err)
	}
	if err := ValidateLVName(r.Name); err != nil {
		return err
	}
	return nil
}

// nameMax is the longest VG or LV name lvm accepts (NAME_LEN 128 including the NUL,
// lib/misc/lvm-string.h).
const nameMax = 127

// ValidateName checks a VG or LV name the way lvm2's _validate_name does: characters
// A-Z a-z 0-9 + _ . -, not starting with '-', not "." or "..", at most 127 bytes.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidArgument)
	case name[0] == '-':
		return fmt.Errorf("%w: name %q starts with '-'", ErrInvalidArgument, name)
	case name == "." || name == "..":
		return fmt.Errorf("%w: name %q", ErrInvalidArgument, name)
	case len(name) > nameMax:
		return fmt.Errorf("%w: name %q longer than %d bytes", ErrInvalidArgument, name, nameMax)
	}
	for _, c := range []byte(name) {
		if !isAlnum(c) && c != '+' && c != '_' && c != '.' && c != '-' {
			return fmt.Errorf("%w: name %q: character %q not allowed by lvm", ErrInvalidArgument, name, c)
		}
	}
	return nil
}

// reservedLVParts are LV name prefixes and infixes lvm keeps for itself
// (apply_lvname_restrictions, lib/misc/lvm-string.c).
var (
	reservedLVPrefixes = []string{"pvmove", "snapshot"}
	reservedLVInfixes  = []string{"_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_wcorig",
		"_mimage", "_mlog", "_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata", "_imeta", "_iorig"}
)

// ValidateLVName is ValidateName plus lvm's reserved LV names.
func ValidateLVName(name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("logical volume: %w", err)
	}
	for _, p := range reservedLVPrefixes {
		if strings.HasPrefix(name, p) {
			return fmt.Errorf("%w: logical volume name %q: prefix %q is reserved by lvm", ErrInvalidArgument, name, p)
		}
	}
	for _, s := range reservedLVInfixes {
		if strings.Contains(name, s) {
			return fmt.Errorf("%w: logical volume name %q: %q is reserved by lvm", ErrInvalidArgument, name, s)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
