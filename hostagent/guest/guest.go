// Package guest prepares a fresh clone's disk before its first boot: it finds the guest's
// root filesystem by reading the partition table in userspace (package disk), loop-attaches
// exactly that byte range, mounts it privately with an explicit type and
// nodev,nosuid,noexec (nouuid for XFS), runs the template's scrub operations with every path
// resolved inside the guest (packages inroot, scrub), and always unmounts and detaches again,
// errors and cancellation included. It also builds the clone's cloud-init seed image
// (package seed) and, at start-up, sweeps away mounts and loop devices a crashed agent left.
//
// # Host commands and paths
//
// losetup, mount, umount, findmnt, mkfs.vfat, mcopy and genisoimage run through the
// command.Runner, so a prefix such as `nsenter -t 1 -m --` runs them in the host's mount
// namespace. Paths in this API (device, state dir, seed dir) are host paths. The agent process
// itself also opens some of them (to read the partition table, to take per-clone locks, to edit
// files in the mounted guest): it reaches them under Preparer.HostRoot, which is "" when the
// agent shares the host's mount namespace and "/proc/1/root" when it runs in a container with
// host PID and the prefix enters PID 1's mount namespace. Through /proc/1/root the agent sees
// the mounts the host-side mount command made without any mount propagation.
//
// # State on the host (Preparer.StateDir, default /var/lib/xenclone)
//
//	mnt/            a private bind mount of itself, so nothing mounted below propagates
//	mnt/<id>        the mount point of clone <id> while it is being prepared
//	attach/<id>.json  what was attached for <id> (device, offset, size, loop device), written
//	                before losetup runs, removed after detach: the sweep's evidence
//	attach/<id>.lock  flock held for the whole preparation of <id>
//	seed/<id>/cidata.img  the clone's NoCloud seed
//
// Nothing outside these paths is ours. The sweep only unmounts mounts below mnt/ and only
// detaches loop devices matching a record's device, offset and size limit exactly.
package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/command"
	"github.com/xenclone/xenclone/hostagent/guest/disk"
	"github.com/xenclone/xenclone/hostagent/guest/scrub"
	"github.com/xenclone/xenclone/hostagent/guest/seed"
)

// DefaultStateDir is where the agent keeps mount points, attach records and seeds.
const DefaultStateDir = "/var/lib/xenclone"

// ErrLVMUnsupported: the guest keeps its root in LVM inside its disk (see disk).
var ErrLVMUnsupported = disk.ErrLVMUnsupported

// ErrBusy is returned when the clone is already being prepared, or its device is in use
// (mounted, or held by a running domain's block backend).
var ErrBusy = errors.New("busy")

// Preparer attaches, scrubs and detaches clone disks on one host.
type Preparer struct {
	// Runner runs the host tools.
	Runner command.Runner
	// StateDir is a host path; DefaultStateDir when empty.
	StateDir string
	// HostRoot is prepended to host paths the agent process opens itself ("" or
	// "/proc/1/root"; see the package documentation).
	HostRoot string
	// CleanupTimeout bounds unmount and detach after a failure or cancellation; 2 minutes
	// when zero.
	CleanupTimeout time.Duration

	mntMu sync.Mutex
}

// PrepareSpec is one clone's preparation.
type PrepareSpec struct {
	// ID is the clone's UID. It names the mount point, lock and records.
	ID string
	// RootPartition is the template's 1-based root partition number; 0 finds it.
	RootPartition int
	// RootFilesystem is the template's root filesystem type; "" detects it.
	RootFilesystem v1alpha1.FilesystemType
	// Operations are run in order, exactly as given: resolve the template's list with
	// scrub.Resolve first (nil means the defaults). Empty means attach, check and detach only.
	Operations []v1alpha1.ScrubOperation
	// Hostname is required when Operations include hostname.
	Hostname string
}

// Report says what Prepare found and changed.
type Report struct {
	// Scheme is the disk's partitioning; Partition the root's number (0 for a bare
	// filesystem); Offset and Size its byte range.
	Scheme     disk.Scheme  `json:"scheme"`
	Partition  int          `json:"partition"`
	Offset     int64        `json:"offset"`
	Size       int64        `json:"size"`
	Filesystem disk.Content `json:"filesystem"`
	// Subvolume is the Btrfs subvolume holding the guest's / ("" for the top level).
	Subvolume string         `json:"subvolume,omitempty"`
	Results   []scrub.Result `json:"results,omitempty"`
	Took      time.Duration  `json:"took"`
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func validID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("clone id %q must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", id)
	}
	return nil
}

func (p *Preparer) stateDir() string {
	if p.StateDir == "" {
		return DefaultStateDir
	}
	return p.StateDir
}

func (p *Preparer) mntDir() string              { return filepath.Join(p.stateDir(), "mnt") }
func (p *Preparer) attachDir() string           { return filepath.Join(p.stateDir(), "attach") }
func (p *Preparer) mountPoint(id string) string { return filepath.Join(p.mntDir(), id) }

// local is the path at which this process reaches a host path.
func (p *Preparer) local(hostPath string) string {
	if p.HostRoot == "" {
		return hostPath
	}
	return filepath.Join(p.HostRoot, hostPath)
}

// SeedDir is the per-clone directory holding its seed image.
func (p *Preparer) SeedDir(id string) string { return filepath.Join(p.stateDir(), "seed", id) }

// BuildSeed writes the clone's NoCloud seed image into dir (SeedDir(seed.InstanceID) when
// empty), atomically, and returns its host path. Safe to repeat: the image is rebuilt and
// renamed over the old one.
func (p *Preparer) BuildSeed(ctx context.Context, dir string, s seed.Spec) (string, error) {
	if err := validID(s.InstanceID); err != nil {
		return "", err
	}
	if dir == "" {
		dir = p.SeedDir(s.InstanceID)
	}
	path, err := seed.Builder{Runner: p.Runner, HostRoot: p.HostRoot}.Build(ctx, dir, s)
	if err != nil {
		return "", fmt.Errorf("build seed for %s: %w", s.InstanceID, err)
	}
	logr.FromContextOrDiscard(ctx).V(1).Info("built cloud-init seed", "clone", s.InstanceID, "path", path)
	return path, nil
}

// Forget removes what the host keeps for a deleted clone: its seed directory and lock file.
// Call it after the clone's domain is gone and never while Prepare may run for the same id.
func (p *Preparer) Forget(id string) error {
	if err := validID(id); err != nil {
		return err
	}
	if _, err := os.Stat(p.local(p.recordPath(id))); err == nil {
		return fmt.Errorf("clone %s is still attached (attach record present): run Sweep first", id)
	}
	if err := os.RemoveAll(p.local(p.SeedDir(id))); err != nil {
		return fmt.Errorf("remove seed of %s: %w", id, err)
	}
	if err := os.Remove(p.local(filepath.Join(p.attachDir(), id+".lock"))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove lock of %s: %w", id, err)
	}
	return nil
}
