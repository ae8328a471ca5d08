package lvm

import "fmt"

// Attr is a decoded lv_attr string, e.g. "swi-a-s---" (a classic snapshot) or "twi-aotzD-" (a
// thin pool out of data space). Positions and letters follow lvs(8) NOTES and
// lv_attr_dup_with_info_and_seg_status in lvm2's lib/metadata/lv.c. Letters lvm may add later
// are kept as they are; the helper methods only answer for the documented ones.
type Attr struct {
	Type       VolumeType // 1: what the LV is
	Permission Permission // 2
	Allocation byte       // 3: allocation policy (a c i l n; capital = locked)
	FixedMinor bool       // 4
	State      State      // 5: kernel state; 'X' when lvm cannot ask the kernel (activation off)
	Open       OpenState  // 6
	Target     Target     // 7: kernel target type
	Zeroing    bool       // 8: thin pool zeroes newly provisioned blocks
	Health     Health     // 9
	// SkipActivation (10, 'k'): lvm skips the LV on plain `-ay`; thin snapshots get it by
	// default, so they must be activated with -K (see Client.Activate).
	SkipActivation bool
}

// VolumeType is lv_attr position 1.
type VolumeType byte

const (
	TypePlain           VolumeType = '-' // linear/striped LV, no special role
	TypeOrigin          VolumeType = 'o' // origin of classic snapshots, or an external origin of thin LVs
	TypeMergingOrigin   VolumeType = 'O'
	TypeSnapshot        VolumeType = 's' // classic (COW) snapshot
	TypeMergingSnapshot VolumeType = 'S'
	TypeThin            VolumeType = 'V' // thin LV (also a thin snapshot)
	TypeThinPool        VolumeType = 't'
	TypeThinPoolData    VolumeType = 'T'
	TypeMetadata        VolumeType = 'e' // pool/raid metadata or pool metadata spare
	TypeVirtual         VolumeType = 'v'
	TypePVMove          VolumeType = 'p'
	TypeCache           VolumeType = 'C'
	TypeMirror          VolumeType = 'm'
	TypeRAID            VolumeType = 'r'
)

// Permission is lv_attr position 2.
type Permission byte

const (
	PermWrite Permission = 'w'
	PermRead  Permission = 'r'
	// PermReadActivation: active read-only although the metadata says writable.
	PermReadActivation Permission = 'R'
)

// State is lv_attr position 5.
type State byte

const (
	StateInactive                 State = '-'
	StateActive                   State = 'a'
	StateHistorical               State = 'h'
	StateSuspended                State = 's'
	StateInvalidSnapshot          State = 'I' // COW full: the snapshot is dead, reads/writes fail
	StateInvalidSuspendedSnapshot State = 'S'
	StateMergeFailed              State = 'm'
	StateSuspendedMergeFailed     State = 'M'
	StateMappedNoTable            State = 'd'
	StateMappedInactiveTable      State = 'i'
	StateThinPoolCheckNeeded      State = 'c'
	StateSuspendedPoolCheckNeeded State = 'C'
	StateUnknown                  State = 'X' // activation disabled or kernel status unavailable
)

// OpenState is lv_attr position 6.
type OpenState byte

const (
	NotOpen     OpenState = '-'
	Open        OpenState = 'o'
	OpenUnknown OpenState = 'X'
)

// Target is lv_attr position 7.
type Target byte

const (
	TargetNone     Target = '-'
	TargetSnapshot Target = 's' // classic snapshot or its origin
	TargetThin     Target = 't' // thin pool or thin LV
	TargetCache    Target = 'C'
	TargetMirror   Target = 'm'
	TargetRAID     Target = 'r'
	TargetUnknown  Target = 'u'
	TargetVirtual  Target = 'v'
)

// Health is lv_attr position 9.
type Health byte

const (
	HealthOK               Health = '-'
	HealthPartial          Health = 'p' // a PV is missing
	HealthUnknown          Health = 'X'
	HealthRefreshNeeded    Health = 'r' // raid
	HealthMismatches       Health = 'm' // raid
	HealthWriteMostly      Health = 'w' // raid
	HealthReshaping        Health = 's' // raid
	HealthRemoveAfterShape Health = 'R' // raid
	HealthFailed           Health = 'F' // thin pool (or its thin LVs): no I/O possible
	HealthOutOfData        Health = 'D' // thin pool out of data space
	HealthMetadataReadOnly Health = 'M' // thin pool metadata read-only; needs lvconvert --repair
	HealthError            Health = 'E' // writecache error
)

// attrLen is the number of lv_attr positions lvm2 prints (lvs(8)).
const attrLen = 10

// ParseAttr decodes an lv_attr string. It needs the 10 documented positions; longer strings
// (a future lvm adding positions) are accepted and the extra letters ignored.
func ParseAttr(s string) (Attr, error) {
	if len(s) < attrLen {
		return Attr{}, fmt.Errorf("lv_attr %q: want %d characters, got %d", s, attrLen, len(s))
	}
	return Attr{
		Type:           VolumeType(s[0]),
		Permission:     Permission(s[1]),
		Allocation:     s[2],
		FixedMinor:     s[3] == 'm',
		State:          State(s[4]),
		Open:           OpenState(s[5]),
		Target:         Target(s[6]),
		Zeroing:        s[7] == 'z',
		Health:         Health(s[8]),
		SkipActivation: s[9] == 'k',
	}, nil
}

// String renders the attr back in lvm's 10-letter form.
func (a Attr) String() string {
	b := []byte{byte(a.Type), byte(a.Permission), a.Allocation, '-', byte(a.State), byte(a.Open),
		byte(a.Target), '-', byte(a.Health), '-'}
	if a.FixedMinor {
		b[3] = 'm'
	}
	if a.Zeroing {
		b[7] = 'z'
	}
	if a.SkipActivation {
		b[9] = 'k'
	}
	return string(b)
}

// IsClassicSnapshot reports a COW snapshot (merging or not).
func (a Attr) IsClassicSnapshot() bool {
	return a.Type == TypeSnapshot || a.Type == TypeMergingSnapshot
}

// IsOrigin reports an LV other LVs depend on: the origin of classic snapshots or the
// external origin of thin LVs. Removing it would remove or break them.
func (a Attr) IsOrigin() bool { return a.Type == TypeOrigin || a.Type == TypeMergingOrigin }

// IsThin reports a thin LV (a thin snapshot is one too).
func (a Attr) IsThin() bool { return a.Type == TypeThin }

// IsThinPool reports a thin pool.
func (a Attr) IsThinPool() bool { return a.Type == TypeThinPool }

// Invalid reports a classic snapshot whose COW area overflowed: the kernel dropped it.
func (a Attr) Invalid() bool {
	return a.State == StateInvalidSnapshot || a.State == StateInvalidSuspendedSnapshot
}

// ReadOnly reports read-only metadata permission (lvchange -pr).
func (a Attr) ReadOnly() bool { return a.Permission == PermRead }
