package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/xenclone/xenclone/hostagent/atomicfile"
	"github.com/xenclone/xenclone/hostagent/command"
	"github.com/xenclone/xenclone/hostagent/guest/disk"
	"github.com/xenclone/xenclone/hostagent/guest/inroot"
	"github.com/xenclone/xenclone/hostagent/guest/scrub"
)

// btrfsMu serializes Btrfs preparations: clones of one template share the filesystem's fsid,
// and a kernel without temp-fsid support may otherwise mount another clone's device.
var btrfsMu sync.Mutex

// record is what was attached for a clone, kept on disk so a sweep after a crash knows
// exactly which loop device and mount are ours.
type record struct {
	ID         string    `json:"id"`
	Device     string    `json:"device"`
	DeviceReal string    `json:"deviceReal,omitempty"` // symlinks resolved, as losetup lists it
	Offset     int64     `json:"offset"`
	SizeLimit  int64     `json:"sizeLimit"`
	Filesystem string    `json:"filesystem"`
	MountPoint string    `json:"mountPoint"`
	Loop       string    `json:"loop,omitempty"`
	Started    time.Time `json:"started"`
}

func (r record) matches(l Loop) bool {
	if r.Loop != "" && l.Name != r.Loop {
		return false
	}
	return l.Offset == r.Offset && l.SizeLimit == r.SizeLimit &&
		(l.BackFile == r.Device || (r.DeviceReal != "" && l.BackFile == r.DeviceReal))
}

// Prepare attaches the clone's root filesystem from device (a block device or an image file,
// host path), runs spec.Operations on it and detaches it again. Unmount and detach happen on
// every path; their failures are logged and joined into the returned error, because a disk
// still attached must not be booted. Prepare is idempotent before the clone's first boot
// (every operation converges) but must never run on a disk a domain has used: the caller
// records success (e.g. the GuestPrepared condition and an LV tag) and does not call it again
// for the same snapshot.
func (p *Preparer) Prepare(ctx context.Context, device string, spec PrepareSpec) (rep Report, err error) {
	start := time.Now()
	if err := validID(spec.ID); err != nil {
		return rep, err
	}
	params := scrub.Params{Hostname: spec.Hostname}
	if err := scrub.Validate(spec.Operations, params); err != nil {
		return rep, err
	}
	log := logr.FromContextOrDiscard(ctx).WithValues("clone", spec.ID, "device", device)
	ctx = logr.NewContext(ctx, log)

	unlock, err := p.lock(spec.ID)
	if err != nil {
		return rep, err
	}
	defer unlock()

	dev, size, err := p.openDevice(device)
	if err != nil {
		return rep, err
	}
	// Held open (exclusively, for a block device) until the end: no domain can claim the
	// disk while it is being edited.
	defer dev.Close()

	layout, err := disk.Inspect(dev, size)
	if err != nil {
		return rep, fmt.Errorf("read the layout of %s: %w", device, err)
	}
	cands, err := layout.Candidates(disk.Hint{Partition: spec.RootPartition, Filesystem: disk.Content(spec.RootFilesystem)})
	if err != nil {
		return rep, fmt.Errorf("find the root filesystem on %s: %w", device, err)
	}
	if err := p.ensurePrivateMntDir(ctx); err != nil {
		return rep, err
	}
	for _, c := range cands {
		rep = Report{Scheme: layout.Table.Scheme, Partition: c.Number, Offset: c.Start, Size: c.Size, Filesystem: c.Filesystem}
		isRoot, err := p.prepareCandidate(ctx, device, c, spec, params, &rep)
		rep.Took = time.Since(start)
		if err != nil {
			return rep, err
		}
		if isRoot {
			log.V(1).Info("prepared guest", "partition", c.Number, "filesystem", c.Filesystem, "took", rep.Took)
			return rep, nil
		}
		log.V(1).Info("not the root filesystem (no /etc)", "partition", c.Number, "filesystem", c.Filesystem)
	}
	rep = Report{Scheme: layout.Table.Scheme}
	if layout.HasLVM() {
		return rep, fmt.Errorf("%s: %w", device, ErrLVMUnsupported)
	}
	return rep, fmt.Errorf("%s: none of the %d filesystems found has an /etc directory: set the template's guest.rootPartition", device, len(cands))
}

// prepareCandidate attaches one candidate and, if it holds the guest's /, scrubs it. The
// deferred detach runs on every return.
func (p *Preparer) prepareCandidate(ctx context.Context, device string, c disk.Candidate, spec PrepareSpec,
	params scrub.Params, rep *Report) (isRoot bool, err error) {
	log := logr.FromContextOrDiscard(ctx)
	if c.Filesystem == disk.ContentBtrfs {
		btrfsMu.Lock()
		defer btrfsMu.Unlock()
	}
	rec, err := p.attach(ctx, device, c, spec.ID)
	defer func() {
		if rec == nil {
			return
		}
		if derr := p.detach(ctx, rec); derr != nil {
			log.Error(derr, "detach after preparation failed: the clone's disk is still attached", "loop", rec.Loop)
			err = errors.Join(err, derr)
		}
	}()
	if err != nil {
		return false, err
	}
	mnt, err := inroot.Open(p.local(rec.MountPoint))
	if err != nil {
		return false, err
	}
	defer mnt.Close()
	if err := p.checkMounted(mnt, rec); err != nil {
		return false, err
	}
	root, sub, err := guestRoot(mnt, c.Filesystem)
	if err != nil || root == nil {
		return false, err
	}
	if root != mnt {
		defer root.Close()
	}
	rep.Subvolume = sub
	rep.Results, err = scrub.Run(ctx, root, spec.Operations, params)
	return true, err
}

// guestRoot finds the guest's / in the mounted filesystem: the top level, or for Btrfs a
// conventional root subvolume (Ubuntu "@", Fedora "root").
func guestRoot(mnt *inroot.Root, fs disk.Content) (*inroot.Root, string, error) {
	subs := []string{""}
	if fs == disk.ContentBtrfs {
		subs = append(subs, "@", "root", "@root")
	}
	for _, s := range subs {
		ok, err := mnt.IsDir(filepath.Join("/", s, "etc"))
		if err != nil {
			return nil, "", err
		}
		if !ok {
			continue
		}
		if s == "" {
			return mnt, "", nil
		}
		r, err := mnt.Sub(s)
		return r, s, err
	}
	return nil, "", nil
}

// checkMounted proves the mount point is a mount of its own (a different mount id than its
// parent), so a mount that silently did not happen can never let the scrub edit the state
// directory itself.
func (p *Preparer) checkMounted(mnt *inroot.Root, rec *record) error {
	var self, parent unix.Statx_t
	if err := unix.Statx(mnt.Fd(), "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &self); err != nil {
		return fmt.Errorf("statx %s: %w", rec.MountPoint, err)
	}
	if err := unix.Statx(unix.AT_FDCWD, p.local(filepath.Dir(rec.MountPoint)), 0, unix.STATX_MNT_ID, &parent); err != nil {
		return fmt.Errorf("statx %s: %w", filepath.Dir(rec.MountPoint), err)
	}
	if self.Mnt_id == parent.Mnt_id {
		return fmt.Errorf("%s is not a mount point after mounting %s: refusing to edit it", rec.MountPoint, rec.Loop)
	}
	return nil
}

// openDevice opens the clone's disk for reading its layout. A block device is opened with
// O_EXCL, which fails while it is mounted or claimed by another holder such as Xen's block
// backend; the claim also keeps a domain from starting on it until Prepare returns.
func (p *Preparer) openDevice(device string) (*os.File, int64, error) {
	path := p.local(device)
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, fmt.Errorf("clone disk: %w", err)
	}
	flags := os.O_RDONLY
	block := st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
	switch {
	case block:
		flags |= unix.O_EXCL
	case st.Mode().IsRegular():
	default:
		return nil, 0, fmt.Errorf("clone disk %s is neither a block device nor a regular file", device)
	}
	f, err := os.OpenFile(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return nil, 0, fmt.Errorf("clone disk %s is in use (mounted, or attached to a running domain): %w", device, ErrBusy)
		}
		return nil, 0, fmt.Errorf("open clone disk: %w", err)
	}
	size := st.Size()
	if block {
		s, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
		if err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("size of %s: %w", device, err)
		}
		size = int64(s)
	}
	return f, size, nil
}

// lock takes the clone's flock without waiting: a held lock is reported as ErrBusy, since a
// reconcile must not block a worker.
func (p *Preparer) lock(id string) (func(), error) {
	dir := p.local(p.attachDir())
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", p.attachDir(), err)
	}
	f, err := os.OpenFile(filepath.Join(dir, id+".lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock for %s: %w", id, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("clone %s is being prepared already: %w", id, ErrBusy)
		}
		return nil, fmt.Errorf("lock %s: %w", id, err)
	}
	return func() { f.Close() }, nil
}

func (p *Preparer) recordPath(id string) string { return filepath.Join(p.attachDir(), id+".json") }

func (p *Preparer) writeRecord(r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.local(p.attachDir()), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", p.attachDir(), err)
	}
	if err := atomicfile.Write(p.local(p.recordPath(r.ID)), b, 0o600); err != nil {
		return fmt.Errorf("attach record: %w", err)
	}
	return nil
}

// attach loop-attaches the candidate's byte range and mounts it. The record is written
// before losetup runs, so a crash at any point leaves evidence for the sweep. On failure it
// undoes what it did and returns a nil record.
func (p *Preparer) attach(ctx context.Context, device string, c disk.Candidate, id string) (rec *record, err error) {
	log := logr.FromContextOrDiscard(ctx)
	rec = &record{
		ID: id, Device: device, Offset: c.Start, SizeLimit: c.Size,
		Filesystem: string(c.Filesystem), MountPoint: p.mountPoint(id), Started: time.Now().UTC(),
	}
	if real, err := filepath.EvalSymlinks(p.local(device)); err == nil {
		if p.HostRoot != "" {
			real = "/" + strings.TrimPrefix(strings.TrimPrefix(real, p.HostRoot), "/")
		}
		if real != device {
			rec.DeviceReal = real
		}
	}
	// A previous run of this clone may have crashed: clear its leftovers first.
	if err := p.teardownRecord(ctx, id); err != nil {
		return nil, fmt.Errorf("clear a previous attachment of %s: %w", id, err)
	}
	if err := p.writeRecord(rec); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if derr := p.detach(ctx, rec); derr != nil {
				log.Error(derr, "cleanup after a failed attach", "loop", rec.Loop)
				err = errors.Join(err, derr)
			}
			rec = nil
		}
	}()
	out, err := p.Runner.Run(ctx, "losetup", "--find", "--show",
		"--offset", strconv.FormatInt(c.Start, 10), "--sizelimit", strconv.FormatInt(c.Size, 10), device)
	if err != nil {
		return rec, fmt.Errorf("attach partition %d of %s: %w", c.Number, device, err)
	}
	rec.Loop = strings.TrimSpace(string(out))
	if !strings.HasPrefix(rec.Loop, "/dev/loop") {
		return rec, fmt.Errorf("losetup printed %q, not a loop device", rec.Loop)
	}
	if err := p.writeRecord(rec); err != nil {
		return rec, err
	}
	if err := os.MkdirAll(p.local(rec.MountPoint), 0o700); err != nil {
		return rec, fmt.Errorf("create mount point: %w", err)
	}
	opts := "nodev,nosuid,noexec"
	if c.Filesystem == disk.ContentXFS {
		opts += ",nouuid" // every clone of a template carries the template's XFS UUID
	}
	if _, err := p.Runner.Run(ctx, "mount", "-t", string(c.Filesystem), "-o", opts, rec.Loop, rec.MountPoint); err != nil {
		return rec, fmt.Errorf("mount partition %d of %s (%s): %w", c.Number, device, c.Filesystem, err)
	}
	// The kernel must have mounted our loop device and nothing else: Btrfs, for one, picks
	// devices by filesystem id, which every clone of a template shares.
	mounts, err := p.mounts(ctx)
	if err != nil {
		return rec, err
	}
	var sources []string
	for _, m := range mounts {
		if m.Target == rec.MountPoint {
			// findmnt shows a Btrfs subvolume as "/dev/loop3[/@/.snapshots/1/snapshot]".
			src, _, _ := strings.Cut(m.Source, "[")
			sources = append(sources, src)
		}
	}
	if len(sources) != 1 || sources[0] != rec.Loop {
		return rec, fmt.Errorf("after mounting %s at %s the mount table shows %v there: refusing to edit it", rec.Loop, rec.MountPoint, sources)
	}
	log.V(1).Info("attached", "loop", rec.Loop, "offset", c.Start, "size", c.Size, "filesystem", c.Filesystem)
	return rec, nil
}

// cleanupCtx outlives the caller's cancellation: teardown must run even when the reconcile
// was cancelled, but not forever.
func (p *Preparer) cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	d := p.CleanupTimeout
	if d == 0 {
		d = 2 * time.Minute
	}
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// detach unmounts, detaches the loop device, removes the mount point and the record. Each
// step runs even if an earlier one failed; all failures are returned.
func (p *Preparer) detach(ctx context.Context, rec *record) error {
	ctx, cancel := p.cleanupCtx(ctx)
	defer cancel()
	var errs []error
	mounts, err := p.mounts(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, m := range mounts {
		if m.Target == rec.MountPoint {
			if err := p.umount(ctx, m.Target); err != nil {
				errs = append(errs, err)
			}
		}
	}
	loops, err := p.loops(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, l := range loops {
		if !rec.matches(l) {
			continue
		}
		if _, err := p.Runner.Run(ctx, "losetup", "--detach", l.Name); err != nil {
			errs = append(errs, fmt.Errorf("detach %s: %w", l.Name, err))
		}
	}
	if err := os.Remove(p.local(rec.MountPoint)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove mount point: %w", err))
	}
	if len(errs) == 0 {
		if err := os.Remove(p.local(p.recordPath(rec.ID))); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove attach record: %w", err))
		}
	}
	return errors.Join(errs...)
}

// umount unmounts target, retrying briefly while it is busy (udev or a scanner may hold it for
// a moment). It never unmounts lazily: a busy mount is reported, not hidden.
func (p *Preparer) umount(ctx context.Context, target string) error {
	var err error
	for i := 0; i < 5; i++ {
		if _, err = p.Runner.Run(ctx, "umount", target); err == nil {
			return nil
		}
		if !strings.Contains(command.Stderr(err), "busy") {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("unmount %s: %w", target, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("unmount %s: %w", target, err)
}

// teardownRecord removes what a clone's record says is attached (after a crash).
func (p *Preparer) teardownRecord(ctx context.Context, id string) error {
	b, err := os.ReadFile(p.local(p.recordPath(id)))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil || rec.ID != id || rec.MountPoint != p.mountPoint(id) {
		// A record we cannot trust names nothing we may touch; drop it.
		return os.Remove(p.local(p.recordPath(id)))
	}
	logr.FromContextOrDiscard(ctx).Info("removing a stale attachment", "clone", id, "loop", rec.Loop, "device", rec.Device)
	return p.detach(ctx, &rec)
}

// ensurePrivateMntDir makes StateDir/mnt a bind mount of itself with private propagation
// (once), so the guests mounted below it never propagate into other mount namespaces.
func (p *Preparer) ensurePrivateMntDir(ctx context.Context) error {
	p.mntMu.Lock() // two first preparations must not stack two bind mounts
	defer p.mntMu.Unlock()
	dir := p.mntDir()
	if err := os.MkdirAll(p.local(dir), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	mounts, err := p.mounts(ctx)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if m.Target == dir {
			return nil
		}
	}
	if _, err := p.Runner.Run(ctx, "mount", "--bind", dir, dir); err != nil {
		return fmt.Errorf("make %s a mount point: %w", dir, err)
	}
	if _, err := p.Runner.Run(ctx, "mount", "--make-private", dir); err != nil {
		return fmt.Errorf("make %s private: %w", dir, err)
	}
	return nil
}

// Sweep removes what a crashed agent left: for every attach record not held by a running
// preparation, its mount and loop device; then any other mount below StateDir/mnt (only the
// agent mounts there) and empty mount point directories. Loop devices without a record are
// never touched: nothing proves they are ours. Run it at start-up, before reconciling.
func (p *Preparer) Sweep(ctx context.Context) error {
	log := logr.FromContextOrDiscard(ctx)
	var errs []error
	ents, err := os.ReadDir(p.local(p.attachDir()))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", p.attachDir(), err)
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || validID(id) != nil {
			continue
		}
		unlock, err := p.lock(id)
		if errors.Is(err, ErrBusy) {
			continue // a preparation in progress owns it
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := p.teardownRecord(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("sweep %s: %w", id, err))
		}
		unlock()
	}
	mounts, err := p.mounts(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	prefix := p.mntDir() + "/"
	// Deepest first, in case something was mounted inside a guest mount.
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		if !strings.HasPrefix(m.Target, prefix) {
			continue
		}
		id := strings.SplitN(strings.TrimPrefix(m.Target, prefix), "/", 2)[0]
		if unlock, err := p.lock(id); err == nil {
			log.Info("unmounting a stale guest mount", "target", m.Target, "source", m.Source)
			if err := p.umount(ctx, m.Target); err != nil {
				errs = append(errs, err)
			}
			unlock()
		}
	}
	dirs, _ := os.ReadDir(p.local(p.mntDir()))
	for _, d := range dirs {
		if _, err := os.Stat(p.local(p.recordPath(d.Name()))); err == nil {
			continue
		}
		_ = os.Remove(p.local(filepath.Join(p.mntDir(), d.Name()))) // only succeeds when empty and unmounted
	}
	return errors.Join(errs...)
}
