package lvm

import (
	"errors"
	"regexp"

	"github.com/xenclone/xenclone/hostagent/command"
)

// kind is a class of lvm failure. A kind may refine another (an origin that is not found is
// also an LV that is not found), so errors.Is matches both.
type kind struct {
	msg    string
	parent error
}

func (k *kind) Error() string { return k.msg }
func (k *kind) Unwrap() error { return k.parent }

// Failure classes, for errors.Is. Errors from lvm commands keep the *command.Error (argument
// list, exit code, stderr) in their chain, so errors.As and command.Stderr still work.
var (
	// ErrVGNotFound: the volume group does not exist (or none of its PVs is visible).
	ErrVGNotFound error = &kind{msg: "volume group not found"}
	// ErrLVNotFound: the logical volume does not exist.
	ErrLVNotFound error = &kind{msg: "logical volume not found"}
	// ErrOriginNotFound: the origin named for a snapshot does not exist. Also ErrLVNotFound.
	ErrOriginNotFound error = &kind{msg: "snapshot origin not found", parent: ErrLVNotFound}
	// ErrThinPoolNotFound: the thin pool named for a thin LV does not exist. Also ErrLVNotFound.
	ErrThinPoolNotFound error = &kind{msg: "thin pool not found", parent: ErrLVNotFound}
	// ErrInsufficientSpace: not enough free extents in the VG, or the thin pool is above its
	// threshold so lvm refuses new thin volumes.
	ErrInsufficientSpace error = &kind{msg: "insufficient free space"}
	// ErrNameExists: an LV with that name already exists. Create* turn it into success (our
	// LV) or ErrConflict (someone else's); it surfaces only from lvm directly.
	ErrNameExists error = &kind{msg: "logical volume name exists"}
	// ErrLockTimeout: lvm gave up waiting for its VG or global lock (another lvm command,
	// possibly of another tool, holds it). Retry later.
	ErrLockTimeout error = &kind{msg: "lvm lock not acquired"}
	// ErrNoDeviceMapper: the kernel has no device-mapper (or lacks the target needed, e.g.
	// snapshot or thin), so the LV cannot be activated or created.
	ErrNoDeviceMapper error = &kind{msg: "device-mapper not available"}
	// ErrInUse: the LV is open (a running domain, a mount) or other LVs depend on it (a
	// classic origin with snapshots, an external origin of thin LVs).
	ErrInUse error = &kind{msg: "logical volume in use"}
	// ErrInvalidArgument: a name, size or tag lvm would reject (checked before running lvm),
	// or lvm's own command-line parser refused the call (exit code 3).
	ErrInvalidArgument error = &kind{msg: "invalid argument"}
	// ErrNotOwned: the LV exists but does not carry our owner tag, so we refuse to change it.
	ErrNotOwned error = &kind{msg: "logical volume not owned by this clone"}
	// ErrConflict: an LV with the requested name exists but is not the one we would have
	// created (another owner, no owner tag, or another origin/pool/type).
	ErrConflict error = &kind{msg: "logical volume name taken by another volume"}
)

// Error is a failed lvm operation: what we tried (Op), its class (Kind, one of the Err*
// variables, nil when unclassified), and the cause — the *command.Error of the lvm run, or a
// description for refusals we decide ourselves (ErrNotOwned, ErrConflict).
type Error struct {
	Op   string
	Kind error
	Err  error
}

func (e *Error) Error() string {
	switch {
	case e.Kind == nil:
		return e.Op + ": " + e.Err.Error()
	case e.Err == nil:
		return e.Op + ": " + e.Kind.Error()
	default:
		return e.Op + ": " + e.Kind.Error() + ": " + e.Err.Error()
	}
}

// Unwrap exposes both the class and the cause to errors.Is / errors.As.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// refusal builds an *Error for a decision we take ourselves, without running lvm.
func refusal(op string, k error, detail string) error {
	return &Error{Op: op, Kind: k, Err: errors.New(detail)}
}

// stderrClasses maps lvm stderr texts to kinds, first match wins. lvm exits 5 (ECMD_FAILED,
// tools/errors.h) for almost every failure, so the text is what tells failures apart.
// "real" = observed from lvm2 2.03.16 on this project's test machine (loop devices,
// activation=0); "source" = taken from lvmteam/lvm2 at d804677 where the failure could not be
// reproduced here. Order matters: on a host without device-mapper lvm also prints the
// generic device-mapper lines next to a more specific error, so the device-mapper class
// comes last.
var stderrClasses = []struct {
	kind error
	re   *regexp.Regexp
}{
	// real: `/run/lock/lvm/V_vg: flock failed: Resource temporarily unavailable` + `Can't get
	// lock for vg.` (global/wait_for_locks=0 with the lock held); real: `Giving up waiting for
	// lock.` (SIGINT while waiting, lib/misc/lvm-flock.c). lvmlockd variants (source,
	// lib/locking/lvmlockd.c) say "lock failed" / "held by other host".
	{ErrLockTimeout, regexp.MustCompile(`Giving up waiting for lock|flock failed: Resource temporarily unavailable|Can't get lock for|held by other host`)},
	// real: `Volume group "vgnope" not found` (+ `Cannot process volume group vgnope`).
	{ErrVGNotFound, regexp.MustCompile(`Volume group "[^"]*" not found`)},
	// real: `Thin pool volume pool0 not found in Volume group vg.`;
	// source: `Pool %s not found in Volume group %s.` (tools/lvcreate.c).
	{ErrThinPoolNotFound, regexp.MustCompile(`(Thin pool volume|Pool) \S+ not found in Volume group`)},
	// real: `Snapshot origin LV nope not found in Volume group vg.`;
	// source: `Origin volume %s not found in Volume group %s.` (lib/metadata/lv_manip.c),
	// `Couldn't find origin volume '%s'.` (tools/lvcreate.c).
	{ErrOriginNotFound, regexp.MustCompile(`Snapshot origin LV \S+ not found|Origin volume \S+ not found|Couldn't find origin volume`)},
	// real: `Failed to find logical volume "vg/nope"`.
	{ErrLVNotFound, regexp.MustCompile(`Failed to find logical volume`)},
	// real: `Logical Volume "tmpl" already exists in volume group "vg"`;
	// source: `Logical volume %s already exists in Volume group %s.` (tools/lvcreate.c).
	{ErrNameExists, regexp.MustCompile(`(?i)already exists in volume group`)},
	// real: `Volume group "vg" has insufficient free space (12 extents): 25 required.`;
	// real: `Insufficient free space: 100 extents needed, but only 11 available` (lvextend);
	// source: `Insufficient suitable allocatable extents for logical volume …` and
	// `Free space in pool %s is above threshold, new volumes are not allowed.`
	// (lib/metadata/lv_manip.c, lib/metadata/thin_manip.c).
	{ErrInsufficientSpace, regexp.MustCompile(`(?i)insufficient free space|Insufficient suitable|is above threshold, new volumes are not allowed`)},
	// source (lib/activate/activate.c, lib/metadata/lv_manip.c): `Logical volume %s in use.`,
	// `… contains a filesystem in use.`, `… is used by another device.`,
	// `Can't remove logical volume %s under snapshot.`, `Can't remove external origin …`.
	// source (lib/metadata/thin_manip.c): `Cannot use active LV for the external origin.` — the
	// first thin snapshot of a thick template needs the template inactive.
	{ErrInUse, regexp.MustCompile(`Logical volume \S+ in use\.|contains a filesystem in use|is used by another device|under snapshot\.|Can't remove external origin|Cannot use active LV for the external origin`)},
	// source: `Cannot use writable volume vg/tmpl as external origin.` (thin_manip.c; make it
	// read-only first), `Please specify either size or extents with snapshots.` (a thin
	// snapshot of a thick origin without a pool), `Logical volume %s is not a thin pool
	// volume.` (tools/lvcreate.c).
	{ErrInvalidArgument, regexp.MustCompile(`Cannot use \S+ volume \S+ as external origin|Please specify either size or extents with snapshots|is not a thin pool volume`)},
	// real: `Can't create snapshot without using device-mapper kernel driver.` and `Can't create
	// thin-pool without …` (activation=0); real: `/dev/mapper/control: open failed: No such
	// device` + `Failure to communicate with kernel device-mapper driver.` (activation on, no
	// dm module); source: `Required device-mapper target(s) not detected in your kernel.`
	{ErrNoDeviceMapper, regexp.MustCompile(`without using device-mapper kernel driver|Failure to communicate with kernel device-mapper driver|/dev/mapper/control: open failed|device-mapper target\(s\) not detected`)},
}

// classify wraps an error from the runner into an *Error with its kind.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	e := &Error{Op: op, Err: err}
	var cmdErr *command.Error
	if !errors.As(err, &cmdErr) || cmdErr.ExitCode < 0 {
		// Did not run, or was killed (e.g. the context ended while lvm waited for a
		// lock): stderr says nothing reliable; the context error stays in the chain.
		return e
	}
	for _, c := range stderrClasses {
		if c.re.MatchString(cmdErr.Stderr) {
			e.Kind = c.kind
			return e
		}
	}
	if cmdErr.ExitCode == 3 { // EINVALID_CMD_LINE, tools/errors.h; real: `Invalid argument for --addtag: bad tag`
		e.Kind = ErrInvalidArgument
	}
	return e
}
