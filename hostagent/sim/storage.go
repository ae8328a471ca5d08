// Package sim is a simulated Xen host for tests and the playground: LVM storage kept in memory
// with lvm2's semantics (free extents, ownership tags, classic and thin snapshots, lv_attr
// strings decoded by the real parser), a guest preparer that renders the real cloud-init seed
// files without needing loop devices, and Xen through the xl simulator (package xlsim) driven by
// the real xen.Driver — so the agent runs the same code against it as against a real dom0.
package sim

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/lvm"
)

// StorageLatency is how long each kind of lvm call takes. Defaults follow what Qubes OS
// measured on Xen + LVM thin (0.2–1 s per LVM command, snapshots 1–2 s: research/host-facts
// §2.4); tests set them to zero.
type StorageLatency struct {
	Report, Create, Change, Remove time.Duration
}

// RealisticStorageLatency is the playground's default.
var RealisticStorageLatency = StorageLatency{Report: 150 * time.Millisecond, Create: 900 * time.Millisecond,
	Change: 300 * time.Millisecond, Remove: 400 * time.Millisecond}

// Storage is an in-memory LVM.
type Storage struct {
	Latency StorageLatency
	// DataDir holds the stand-ins for the block devices of volumes being imported (sparse
	// files); os.TempDir() when empty.
	DataDir string

	mu           sync.Mutex
	vgs          map[string]*vg
	faults       map[string][]error
	beforeCreate func(hostagent.SnapshotRequest)
}

// BeforeCreate runs fn at the start of the next CreateSnapshot: a test can make another tool
// win a race for the name.
func (s *Storage) BeforeCreate(fn func(hostagent.SnapshotRequest)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeCreate = fn
}

type vg struct {
	name         string
	size, extent uint64
	mdaSize      uint64
	lvs          map[string]*lv
}

type lv struct {
	name, uuid   string
	attr         []byte
	size         uint64
	origin, pool string
	data, meta   lvm.Percent
	tags         []string
	created      time.Time
}

// NewStorage returns an empty LVM.
func NewStorage() *Storage {
	return &Storage{vgs: map[string]*vg{}, faults: map[string][]error{}}
}

// AddVG creates a volume group of size bytes with 4 MiB extents and lvm's default 1 MiB
// metadata area.
func (s *Storage) AddVG(name string, size uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vgs[name] = &vg{name: name, size: size, extent: 4 << 20, mdaSize: 1 << 20, lvs: map[string]*lv{}}
}

// AddOrigin creates a thick template LV (writable, as a platform team leaves it after install).
func (s *Storage) AddOrigin(vgName, name string, size uint64) error {
	return s.add(vgName, &lv{name: name, attr: []byte("-wi-a-----"), size: size})
}

// AddThinPool creates a thin pool of size bytes.
func (s *Storage) AddThinPool(vgName, name string, size uint64) error {
	return s.add(vgName, &lv{name: name, attr: []byte("twi-aotz--"), size: size,
		data: lvm.Percent{Valid: true}, meta: lvm.Percent{Value: 1.5, Valid: true}})
}

// AddLV creates an LV with the given attr and tags, e.g. one another tool owns.
func (s *Storage) AddLV(vgName, name, attr string, size uint64, tags ...string) error {
	return s.add(vgName, &lv{name: name, attr: []byte(attr), size: size, tags: tags})
}

func (s *Storage) add(vgName string, l *lv) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.vgs[vgName]
	if !ok {
		return fmt.Errorf("volume group %s: %w", vgName, lvm.ErrVGNotFound)
	}
	if _, ok := g.lvs[l.name]; ok {
		return fmt.Errorf("%s/%s: %w", vgName, l.name, lvm.ErrNameExists)
	}
	l.size = roundUp(l.size, g.extent)
	if l.attr[0] != 'V' && g.free() < l.size {
		return fmt.Errorf("%s/%s: %w", vgName, l.name, lvm.ErrInsufficientSpace)
	}
	l.uuid, l.created = newUUID(), time.Now()
	g.lvs[l.name] = l
	return nil
}

// LoseLV removes an LV whoever owns it, as an administrator's `lvremove -f` would: a test can
// take a clone's disk away under it. A classic origin left without snapshots is an origin no
// more, as in Remove.
func (s *Storage) LoseLV(vgName, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.vgs[vgName]
	if !ok {
		return fmt.Errorf("volume group %s: %w", vgName, lvm.ErrVGNotFound)
	}
	l, ok := g.lvs[name]
	if !ok {
		return fmt.Errorf("%s/%s: %w", vgName, name, lvm.ErrLVNotFound)
	}
	delete(g.lvs, name)
	g.unmarkOrigin(l.origin)
	return nil
}

// LoseVG drops a volume group with all its LVs, as a VG that is not assembled after a disk
// failure (or was rebuilt) is gone for lvm.
func (s *Storage) LoseVG(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.vgs, name)
}

// SetUsage sets an LV's data% (COW usage of a classic snapshot, data usage of a pool), as
// guest writes would.
func (s *Storage) SetUsage(vgName, name string, percent float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.vgs[vgName].lvs[name]; l != nil {
		l.data = lvm.Percent{Value: percent, Valid: true}
		if l.attr[0] == 's' && percent >= 100 {
			l.attr[4] = 'I' // the kernel invalidates a full classic snapshot
		}
	}
}

// InjectFault makes the next call of op ("report", "create", "tag", "extend", "remove",
// "protect") fail with err.
func (s *Storage) InjectFault(op string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = append(s.faults[op], err)
}

// LVs lists the names of the LVs in a VG, sorted.
func (s *Storage) LVs(vgName string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if g := s.vgs[vgName]; g != nil {
		for n := range g.lvs {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (s *Storage) begin(ctx context.Context, op string, d time.Duration) error {
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	s.mu.Lock()
	if f := s.faults[op]; len(f) > 0 {
		s.faults[op] = f[1:]
		s.mu.Unlock()
		return f[0]
	}
	return nil
}

// Report implements hostagent.Storage.
func (s *Storage) Report(ctx context.Context, vgName string) (lvm.Report, error) {
	if err := s.begin(ctx, "report", s.Latency.Report); err != nil {
		return lvm.Report{}, err
	}
	defer s.mu.Unlock()
	g, ok := s.vgs[vgName]
	if !ok {
		return lvm.Report{}, fmt.Errorf("report %s: %w", vgName, lvm.ErrVGNotFound)
	}
	rep := lvm.Report{VG: lvm.VG{
		Name: g.name, Size: g.size, Free: g.free(), ExtentSize: g.extent,
		ExtentCount: g.size / g.extent, FreeCount: g.free() / g.extent,
		MetadataSize: g.mdaSize, LVCount: len(g.lvs),
	}}
	// Each LV and tag takes room in the metadata area (~1 KiB per LV here).
	used := uint64(4096 + 1024*len(g.lvs))
	if used < g.mdaSize {
		rep.VG.MetadataFree = g.mdaSize - used
	}
	names := make([]string, 0, len(g.lvs))
	for n := range g.lvs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := g.lvs[n]
		attr, err := lvm.ParseAttr(string(l.attr))
		if err != nil {
			return lvm.Report{}, fmt.Errorf("simulated LV %s has a bad attr: %w", n, err)
		}
		out := lvm.LV{Name: l.name, VG: g.name, UUID: l.uuid, Attr: attr, Size: l.size, Origin: l.origin,
			Pool: l.pool, DataPercent: l.data, MetadataPercent: l.meta, Tags: slices.Clone(l.tags),
			Created: l.created, Active: l.attr[4] == 'a'}
		if attr.IsClassicSnapshot() {
			out.SnapPercent = l.data
		}
		if o := g.lvs[l.origin]; o != nil {
			out.OriginSize = o.size
		}
		rep.LVs = append(rep.LVs, out)
	}
	return rep, nil
}

// CreateSnapshot implements hostagent.Storage with lvcreate's rules: the origin must exist,
// a classic COW area needs free extents, a name in use is ours (success) or a conflict.
func (s *Storage) CreateSnapshot(ctx context.Context, req hostagent.SnapshotRequest) (lvm.LV, error) {
	s.mu.Lock()
	hook := s.beforeCreate
	s.beforeCreate = nil
	s.mu.Unlock()
	if hook != nil {
		hook(req)
	}
	if err := s.begin(ctx, "create", s.Latency.Create); err != nil {
		return lvm.LV{}, err
	}
	g, ok := s.vgs[req.VG]
	if !ok {
		s.mu.Unlock()
		return lvm.LV{}, fmt.Errorf("create snapshot %s/%s: %w", req.VG, req.Name, lvm.ErrVGNotFound)
	}
	err := func() error {
		if l, ok := g.lvs[req.Name]; ok {
			if slices.Contains(l.tags, req.Owner.OwnerTag()) {
				return nil
			}
			return fmt.Errorf("create snapshot %s/%s: %w", req.VG, req.Name, lvm.ErrConflict)
		}
		o, ok := g.lvs[req.Origin]
		if !ok {
			return fmt.Errorf("create snapshot of %s/%s: %w", req.VG, req.Origin, lvm.ErrOriginNotFound)
		}
		l := &lv{name: req.Name, uuid: newUUID(), origin: req.Origin, tags: req.Owner.Tags(), created: time.Now(),
			data: lvm.Percent{Valid: true}}
		thin := req.ThinPool != "" || o.attr[0] == 'V'
		switch {
		case req.Mode == "Classic" && !thin:
			l.size = roundUp(req.COWBytes, g.extent)
			if g.free() < l.size {
				return fmt.Errorf("create snapshot %s/%s of %d bytes (%d free): %w", req.VG, req.Name, l.size, g.free(), lvm.ErrInsufficientSpace)
			}
			l.attr = []byte("swi-a-s---")
			o.attr[0] = 'o'
		default:
			pool := req.ThinPool
			if pool == "" {
				pool = o.pool
			}
			if p, ok := g.lvs[pool]; !ok || p.attr[0] != 't' {
				return fmt.Errorf("create thin snapshot in %s/%s: %w", req.VG, pool, lvm.ErrThinPoolNotFound)
			}
			l.attr, l.size, l.pool = []byte("Vwi-a-tz-k"), o.size, pool
		}
		g.lvs[req.Name] = l
		return nil
	}()
	s.mu.Unlock()
	if err != nil {
		return lvm.LV{}, err
	}
	rep, err := s.Report(ctx, req.VG)
	if err != nil {
		return lvm.LV{}, err
	}
	out, _ := rep.LV(req.Name)
	return out, nil
}

// owned runs fn on an LV we own, with the lock held.
func (s *Storage) owned(ctx context.Context, op string, d time.Duration, ref lvm.Ref, owner lvm.Owner, fn func(*vg, *lv) error) error {
	if err := s.begin(ctx, op, d); err != nil {
		return err
	}
	defer s.mu.Unlock()
	g, ok := s.vgs[ref.VG]
	if !ok {
		return fmt.Errorf("%s %s: %w", op, ref, lvm.ErrVGNotFound)
	}
	l, ok := g.lvs[ref.Name]
	if !ok {
		return fmt.Errorf("%s %s: %w", op, ref, lvm.ErrLVNotFound)
	}
	if !slices.Contains(l.tags, owner.OwnerTag()) {
		return fmt.Errorf("%s %s: %w", op, ref, lvm.ErrNotOwned)
	}
	return fn(g, l)
}

// AddTag implements hostagent.Storage.
func (s *Storage) AddTag(ctx context.Context, ref lvm.Ref, owner lvm.Owner, tag string) error {
	return s.owned(ctx, "tag", s.Latency.Change, ref, owner, func(_ *vg, l *lv) error {
		if !slices.Contains(l.tags, tag) {
			l.tags = append(l.tags, tag)
		}
		return nil
	})
}

// ExtendSnapshot implements hostagent.Storage.
func (s *Storage) ExtendSnapshot(ctx context.Context, ref lvm.Ref, owner lvm.Owner, by uint64) error {
	return s.owned(ctx, "extend", s.Latency.Change, ref, owner, func(g *vg, l *lv) error {
		by = roundUp(by, g.extent)
		if g.free() < by {
			return fmt.Errorf("extend %s by %d: %w", ref, by, lvm.ErrInsufficientSpace)
		}
		if l.data.Valid {
			l.data.Value = l.data.Value * float64(l.size) / float64(l.size+by)
		}
		l.size += by
		return nil
	})
}

// Remove implements hostagent.Storage.
func (s *Storage) Remove(ctx context.Context, ref lvm.Ref, owner lvm.Owner) error {
	return s.owned(ctx, "remove", s.Latency.Remove, ref, owner, func(g *vg, l *lv) error {
		delete(g.lvs, l.name)
		g.unmarkOrigin(l.origin)
		return nil
	})
}

// unmarkOrigin makes a classic origin a plain LV again once its last snapshot is gone.
func (g *vg) unmarkOrigin(name string) {
	if o := g.lvs[name]; o != nil && o.attr[0] == 'o' {
		still := false
		for _, other := range g.lvs {
			still = still || other.origin == o.name && other.attr[0] == 's'
		}
		if !still {
			o.attr[0] = '-'
		}
	}
}

// SetOriginReadOnly implements hostagent.Storage.
func (s *Storage) SetOriginReadOnly(ctx context.Context, ref lvm.Ref) error {
	if err := s.begin(ctx, "protect", s.Latency.Change); err != nil {
		return err
	}
	defer s.mu.Unlock()
	g, ok := s.vgs[ref.VG]
	if !ok {
		return fmt.Errorf("protect %s: %w", ref, lvm.ErrVGNotFound)
	}
	l, ok := g.lvs[ref.Name]
	if !ok {
		return fmt.Errorf("protect %s: %w", ref, lvm.ErrLVNotFound)
	}
	if l.attr[1] != 'r' { // as lvm.Client: an origin already read-only is left untagged
		l.attr[1] = 'r'
		l.tags = append(l.tags, lvm.MadeReadOnlyTag)
	}
	return nil
}

// RestoreOriginWritable implements hostagent.Storage.
func (s *Storage) RestoreOriginWritable(ctx context.Context, ref lvm.Ref) error {
	if err := s.begin(ctx, "unprotect", s.Latency.Change); err != nil {
		return err
	}
	defer s.mu.Unlock()
	g, ok := s.vgs[ref.VG]
	if !ok {
		return fmt.Errorf("unprotect %s: %w", ref, lvm.ErrVGNotFound)
	}
	l, ok := g.lvs[ref.Name]
	if !ok {
		return fmt.Errorf("unprotect %s: %w", ref, lvm.ErrLVNotFound)
	}
	if !slices.Contains(l.tags, lvm.MadeReadOnlyTag) {
		return fmt.Errorf("unprotect %s: not tagged %s: %w", ref, lvm.MadeReadOnlyTag, lvm.ErrNotOwned)
	}
	l.attr[1] = 'w'
	l.tags = slices.DeleteFunc(l.tags, func(t string) bool { return t == lvm.MadeReadOnlyTag })
	return nil
}

// SetOpen marks an LV open or closed, as a mount, a running domain's blkback or any process
// holding the device would (lv_attr position 6).
func (s *Storage) SetOpen(vgName, name string, open bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.vgs[vgName]
	if !ok {
		return
	}
	if l, ok := g.lvs[name]; ok {
		l.attr[5] = byte(lvm.NotOpen)
		if open {
			l.attr[5] = byte(lvm.Open)
		}
	}
}

func (g *vg) free() uint64 {
	used := uint64(0)
	for _, l := range g.lvs {
		if l.attr[0] != 'V' { // thin volumes live in their pool
			used += l.size
		}
	}
	if used > g.size {
		return 0
	}
	return g.size - used
}

func roundUp(n, unit uint64) uint64 { return (n + unit - 1) / unit * unit }

func newUUID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	// lvm prints LV UUIDs as 6-4-4-4-4-4-6.
	u := string(b)
	return u[0:6] + "-" + u[6:10] + "-" + u[10:14] + "-" + u[14:18] + "-" + u[18:22] + "-" + u[22:26] + "-" + u[26:32]
}
