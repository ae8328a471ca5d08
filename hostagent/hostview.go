package hostagent

// HostView: one host read per host state.
//
// Every reconcile looks at the host before it acts (lvs, xl list), which is what makes the agent
// safe to kill between any two steps. Done naively that is one full `lvs` report and one
// `xl list` per step per clone, although the host changes only when the agent itself changes it
// (or, rarely, a guest or an administrator does). HostView sits between the agent and its Host
// and is itself a Storage and a Hypervisor, so the reconciler does not know it is there:
//
//   - Report(vg) and the domain list are short-lived shared snapshots: concurrent callers share
//     one in-flight host read (single-flight), and later callers reuse its result until the
//     agent changes that part of the host or MaxAge passes. MaxAge bounds how stale anything
//     changed behind the agent's back can look (COW usage, a guest that shut down, an LV an
//     administrator added), so usage watching still sees fresh values.
//   - The agent's own changes go through the view. A change whose effect is exactly known
//     (a tag added, an LV created or removed, an origin made read-only) is written into the
//     snapshot; anything else drops it. Capacity figures a patch cannot know exactly (VG
//     metadata free, thin-pool data %) keep the age of the read they came from, so MaxAge bounds
//     them like any other change from outside.
//   - Sequence counters keep a read from being stored when a change of ours that cannot be
//     patched ended while it was in flight (it may or may not show that change; patchable ones
//     are patched into it), and keep a caller that just changed the host from joining a read
//     that started before its change. So a reconcile never acts on a snapshot taken before its
//     own change unless that change was patched into it.
//   - Errors are never stored: the next caller asks the host again.
//
// Domains are tracked per name: our xl create/destroy/shutdown of domain X forces the next
// Lookup(X) to a list taken after that change, while lookups of other domains keep using the
// shared list (their state there is no older than MaxAge, as it would be for a change the guest
// made). The domain watcher's poll reads the host unless a list was read within a fifth of its
// interval (ListRecent), and what it reads is published, so lookups right after a poll are free.

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/xenclone/xenclone/hostagent/imageimport"
	"github.com/xenclone/xenclone/hostagent/lvm"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// Default ages a shared host snapshot may reach before a caller reads the host again. They are
// short next to every interval that depends on host state (UsageResync, the orphan grace, the
// shutdown grace) and long next to a reconcile burst, where several clones per second each
// want the same `lvs` report. A VG changes behind the agent's back only through guests writing
// (COW and pool usage, watched once a minute) or an administrator; domains change by
// themselves more often (a guest shutting down), and `xl list` is cheap, so their list is kept
// for less.
const (
	DefaultStorageMaxAge = 5 * time.Second
	DefaultDomainMaxAge  = 2 * time.Second
	// xl info is read for capacity reports only, and the agent's own creates move its free
	// memory (see Create); what changes it behind the agent's back (another toolstack's domain,
	// dom0 ballooning) shows within this.
	DefaultInfoMaxAge = 10 * time.Second
)

// HostViewOptions configure a HostView.
type HostViewOptions struct {
	// StorageMaxAge bounds the age of a VG report served from the snapshot (default
	// DefaultStorageMaxAge).
	StorageMaxAge time.Duration
	// DomainMaxAge bounds the age of the domain list lookups are served from.
	DomainMaxAge time.Duration
	// InfoMaxAge bounds the age of `xl info`.
	InfoMaxAge time.Duration
	Clock      clock.PassiveClock
}

// HostView is a caching Storage and Hypervisor in front of one host's. Everyone in one agent
// must share the one view: a change made around it would not invalidate its snapshots.
type HostView struct {
	storage Storage
	hyp     Hypervisor
	ctl     DomainControl
	opts    HostViewOptions

	mu   sync.Mutex
	vgs  map[string]*vgCell
	info cell[xen.HostInfo]
	doms domainCell
}

var (
	_ Storage    = (*HostView)(nil)
	_ Hypervisor = (*HostView)(nil)
)

// NewHostView wraps h's Storage and Hypervisor.
func NewHostView(h Host, o HostViewOptions) *HostView {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&o.StorageMaxAge, DefaultStorageMaxAge}, {&o.DomainMaxAge, DefaultDomainMaxAge}, {&o.InfoMaxAge, DefaultInfoMaxAge}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return &HostView{storage: h.Storage, hyp: h.Hypervisor, ctl: h.Control, opts: o, vgs: map[string]*vgCell{},
		doms: domainCell{lastChange: map[string]uint64{}}}
}

// Host is h with its Storage and Hypervisor replaced by the view.
func (v *HostView) Host(h Host) Host {
	h.Storage, h.Hypervisor = v, v
	if h.Images != nil {
		h.Images = viewImages{v, h.Images}
	}
	if v.ctl != nil {
		h.Control = v
	}
	return h
}

// Fresh is h behind the view, except that every read asks the host (and publishes what it
// read into the view). It is for the orphan collector, which removes what it finds: it runs
// once a minute, so a real read costs nothing, and what it removes is then judged on the host
// as it is, not as it was up to MaxAge ago. Its changes still go through the view.
func (v *HostView) Fresh(h Host) Host {
	f := freshView{v}
	h.Storage, h.Hypervisor = f, f
	if v.ctl != nil {
		h.Control = v
	}
	return h
}

// cell is one shared snapshot (xl info) with its single-flight read. A change of ours either
// patches it (endChange with a patch) or drops it.
type cell[T any] struct {
	// gen changes at the start and at the end of each change of ours, so a read that saw
	// either can tell; changing counts the changes in progress.
	gen      uint64
	changing int
	val      T
	has      bool
	at       time.Time // when the read that produced val started
	flight   *flight[T]
}

type flight[T any] struct {
	gen   uint64
	clean bool // no change of ours was in progress when the read started
	at    time.Time
	done  chan struct{}
	val   T
	err   error
}

// get serves c: from the snapshot unless fresh is set or it is too old; else by joining the
// read in flight when it started after our last change (and fresh is not set); else by a new
// read that becomes the one others join. v.mu is held on entry and on return.
func getCell[T any](ctx context.Context, v *HostView, c *cell[T], maxAge time.Duration, fresh bool,
	read func(context.Context) (T, error), clone func(T) T) (T, error) {
	for {
		now := v.opts.Clock.Now()
		if !fresh && c.has && now.Sub(c.at) < maxAge {
			return clone(c.val), nil
		}
		f := c.flight
		if fresh || f == nil || f.gen != c.gen {
			f = &flight[T]{gen: c.gen, clean: c.changing == 0, at: now, done: make(chan struct{})}
			c.flight = f
			v.mu.Unlock()
			val, err := read(ctx)
			v.mu.Lock()
			f.val, f.err = val, err
			if c.flight == f {
				c.flight = nil
			}
			// Stored only when no change of ours overlapped the read, and never over a newer one.
			if err == nil && f.clean && c.gen == f.gen && (!c.has || !f.at.Before(c.at)) {
				c.val, c.has, c.at = val, true, f.at
			}
			close(f.done)
			if err != nil {
				var zero T
				return zero, err
			}
			return clone(val), nil
		}
		v.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			v.mu.Lock()
			var zero T
			return zero, ctx.Err()
		}
		v.mu.Lock()
		if f.err != nil && isContextErr(f.err) && ctx.Err() == nil {
			// The leader gave up (its reconcile's context ended); ours still runs: read again.
			continue
		}
		if f.err != nil {
			var zero T
			return zero, f.err
		}
		return clone(f.val), nil
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// beginChange marks a change of ours in progress on c.
func beginChange[T any](c *cell[T]) {
	c.gen++
	c.changing++
}

// endChange ends it: patch, when given, brings the snapshot up to date (it reports false when
// it cannot, and the snapshot is dropped); without one the snapshot is dropped.
func endChange[T any](c *cell[T], patch func(*T) bool) {
	c.gen++
	c.changing--
	if c.has && (patch == nil || !patch(&c.val)) {
		var zero T
		c.val, c.has = zero, false
	}
}

// vgCell is one VG's shared report. Our changes to a VG come in two kinds: those whose effect
// a patch can apply exactly and idempotently (applying it to a report that already shows the
// change leaves it as it is), and the others, which drop the report. A read that overlapped a
// patchable change may or may not show it; patching it afterwards makes it right either way,
// so it can still be stored — which matters in a burst, where some change is nearly always in
// progress on the VG. lvm reports a VG from one metadata version (it takes the VG lock), so a
// report shows each change entirely or not at all.
type vgCell struct {
	// seq counts our changes to the VG that ended; a read or flight remembers seq at its start.
	seq uint64
	// unknownAt is seq after the last change that could not be patched: a read that started
	// before it is never stored.
	unknownAt uint64
	// patches of changes that ended while a read was in flight, in the order they ended.
	patches []vgPatch
	active  map[*vgFlight]struct{}

	rep    lvm.Report
	has    bool
	at     time.Time // when the read behind rep started
	flight *vgFlight
}

type vgPatch struct {
	seq uint64
	fn  func(*lvm.Report) bool
}

type vgFlight struct {
	seq  uint64
	at   time.Time
	done chan struct{}
	rep  lvm.Report
	err  error
}

func (v *HostView) vg(name string) *vgCell {
	c := v.vgs[name]
	if c == nil {
		c = &vgCell{active: map[*vgFlight]struct{}{}}
		v.vgs[name] = c
	}
	return c
}

// report serves a VG's report: from the snapshot unless fresh is set or it is too old; else by
// joining the read in flight if no change of ours ended since it started (and fresh is not
// set); else by a new read that the others then join.
func (v *HostView) report(ctx context.Context, vg string, fresh bool) (lvm.Report, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c := v.vg(vg)
	for {
		now := v.opts.Clock.Now()
		if !fresh && c.has && now.Sub(c.at) < v.opts.StorageMaxAge {
			return cloneReport(c.rep), nil
		}
		f := c.flight
		if fresh || f == nil || f.seq != c.seq {
			return v.readVG(ctx, vg, c, now)
		}
		v.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			v.mu.Lock()
			return lvm.Report{}, ctx.Err()
		}
		v.mu.Lock()
		if f.err != nil && isContextErr(f.err) && ctx.Err() == nil {
			continue // the leader's reconcile gave up; ours did not: read again
		}
		if f.err != nil {
			return lvm.Report{}, f.err
		}
		return cloneReport(f.rep), nil
	}
}

// readVG reads the VG (v.mu held on entry and return, released while reading) and stores the
// result if every change that ended meanwhile could be patched into it.
func (v *HostView) readVG(ctx context.Context, vg string, c *vgCell, now time.Time) (lvm.Report, error) {
	f := &vgFlight{seq: c.seq, at: now, done: make(chan struct{})}
	c.flight = f
	c.active[f] = struct{}{}
	v.mu.Unlock()
	rep, err := v.storage.Report(ctx, vg)
	v.mu.Lock()
	defer close(f.done)
	delete(c.active, f)
	if c.flight == f {
		c.flight = nil
	}
	patched, ok := rep, err == nil && c.unknownAt <= f.seq
	if ok {
		patched = cloneReport(rep)
		for _, p := range c.patches {
			if p.seq > f.seq && !p.fn(&patched) {
				ok = false
				break
			}
		}
	}
	c.prunePatches()
	if !ok {
		// Errors are never stored; neither is a read our changes may have overtaken. It is
		// still a read of the host, good for the callers waiting on it.
		f.rep, f.err = rep, err
		return cloneReport(rep), err
	}
	f.rep = patched
	if !c.has || !f.at.Before(c.at) {
		c.rep, c.has, c.at = cloneReport(patched), true, f.at
	}
	return cloneReport(patched), nil
}

// prunePatches forgets the patches no read in flight still needs.
func (c *vgCell) prunePatches() {
	if len(c.active) == 0 {
		c.patches = nil
		return
	}
	oldest := c.seq
	for f := range c.active {
		oldest = min(oldest, f.seq)
	}
	i := 0
	for i < len(c.patches) && c.patches[i].seq <= oldest {
		i++
	}
	c.patches = c.patches[i:]
}

// Report implements Storage from the VG's shared snapshot.
func (v *HostView) Report(ctx context.Context, vg string) (lvm.Report, error) {
	return v.report(ctx, vg, false)
}

// changeVG runs fn as a change of ours to vg; patch (given fn's error) brings a report up to
// date with it, idempotently, or says it cannot (false); nil means it never can.
func (v *HostView) changeVG(vg string, fn func() error, patch func(error, *lvm.Report) bool) error {
	err := fn()
	v.mu.Lock()
	defer v.mu.Unlock()
	c := v.vg(vg)
	c.seq++
	var p func(*lvm.Report) bool
	if patch != nil {
		p = func(r *lvm.Report) bool { return patch(err, r) }
	}
	if c.has && (p == nil || !p(&c.rep)) {
		c.rep, c.has = lvm.Report{}, false
	}
	if p == nil {
		c.unknownAt = c.seq
	} else if len(c.active) > 0 {
		c.patches = append(c.patches, vgPatch{seq: c.seq, fn: p})
	}
	return err
}

// CreateSnapshot implements Storage. The LV lvm reports back goes into the snapshot; a classic
// snapshot's COW area leaves the VG's free space (thin snapshots allocate nothing at creation).
func (v *HostView) CreateSnapshot(ctx context.Context, req SnapshotRequest) (lvm.LV, error) {
	var lv lvm.LV
	err := v.changeVG(req.VG, func() error {
		var err error
		lv, err = v.storage.CreateSnapshot(ctx, req)
		return err
	}, func(err error, r *lvm.Report) bool {
		if err != nil || lv.Name != req.Name || lv.UUID == "" {
			return false
		}
		return upsertLV(r, lv)
	})
	return lv, err
}

// AddTag implements Storage.
func (v *HostView) AddTag(ctx context.Context, ref lvm.Ref, owner lvm.Owner, tag string) error {
	return v.changeVG(ref.VG, func() error { return v.storage.AddTag(ctx, ref, owner, tag) },
		func(err error, r *lvm.Report) bool {
			i := indexLV(r, ref.Name)
			if err != nil || i < 0 {
				return false
			}
			if !r.LVs[i].HasTag(tag) {
				r.LVs[i].Tags = append(slices.Clone(r.LVs[i].Tags), tag)
			}
			return true
		})
}

// ExtendSnapshot implements Storage. lvm rounds the new size to extents and the usage % moves:
// the snapshot is dropped.
func (v *HostView) ExtendSnapshot(ctx context.Context, ref lvm.Ref, owner lvm.Owner, by uint64) error {
	return v.changeVG(ref.VG, func() error { return v.storage.ExtendSnapshot(ctx, ref, owner, by) }, nil)
}

// Remove implements Storage. A removed LV leaves the snapshot; a classic snapshot's COW area
// returns to the VG. (A thin LV's blocks return to its pool, whose data % then shows higher
// than it is until MaxAge passes: the safe direction.)
func (v *HostView) Remove(ctx context.Context, ref lvm.Ref, owner lvm.Owner) error {
	return v.changeVG(ref.VG, func() error { return v.storage.Remove(ctx, ref, owner) },
		func(err error, r *lvm.Report) bool {
			if err != nil && !errors.Is(err, lvm.ErrLVNotFound) {
				return false
			}
			i := indexLV(r, ref.Name)
			if i < 0 {
				return true // the report already shows it gone
			}
			lv := r.LVs[i]
			r.LVs = slices.Delete(slices.Clone(r.LVs), i, i+1)
			r.VG.LVCount--
			if lv.Attr.IsClassicSnapshot() {
				return addFree(&r.VG, int64(lv.Size))
			}
			return true
		})
}

// SetOriginReadOnly implements Storage.
func (v *HostView) SetOriginReadOnly(ctx context.Context, ref lvm.Ref) error {
	return v.changeVG(ref.VG, func() error { return v.storage.SetOriginReadOnly(ctx, ref) },
		func(err error, r *lvm.Report) bool {
			i := indexLV(r, ref.Name)
			if err != nil || i < 0 {
				return false
			}
			r.LVs = slices.Clone(r.LVs)
			lv := &r.LVs[i]
			if lv.Attr.Permission != lvm.PermRead {
				lv.Attr.Permission = lvm.PermRead
				lv.Tags = append(slices.Clone(lv.Tags), lvm.MadeReadOnlyTag)
			}
			return true
		})
}

// RestoreOriginWritable implements Storage.
func (v *HostView) RestoreOriginWritable(ctx context.Context, ref lvm.Ref) error {
	return v.changeVG(ref.VG, func() error { return v.storage.RestoreOriginWritable(ctx, ref) },
		func(err error, r *lvm.Report) bool {
			i := indexLV(r, ref.Name)
			if err != nil || i < 0 {
				return false
			}
			r.LVs = slices.Clone(r.LVs)
			lv := &r.LVs[i]
			lv.Attr.Permission = lvm.PermWrite
			lv.Tags = slices.DeleteFunc(slices.Clone(lv.Tags), func(t string) bool { return t == lvm.MadeReadOnlyTag })
			return true
		})
}

// upsertLV puts lv into r. CreateSnapshot is idempotent: an LV already in the snapshot is only
// replaced; a new one is counted and, if classic, takes its COW area from the VG.
func upsertLV(r *lvm.Report, lv lvm.LV) bool {
	r.LVs = slices.Clone(r.LVs)
	if i := indexLV(r, lv.Name); i >= 0 {
		r.LVs[i] = lv
		return true
	}
	r.LVs = append(r.LVs, lv)
	slices.SortFunc(r.LVs, func(a, b lvm.LV) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	r.VG.LVCount++
	if lv.Attr.IsClassicSnapshot() {
		return addFree(&r.VG, -int64(lv.Size))
	}
	return true
}

// addFree moves the VG's free space by delta bytes; it reports false (drop the snapshot) when
// the figures do not add up, e.g. an extent size the report did not give.
func addFree(vg *lvm.VG, delta int64) bool {
	free := int64(vg.Free) + delta
	if free < 0 || free > int64(vg.Size) {
		return false
	}
	vg.Free = uint64(free)
	if vg.ExtentSize > 0 {
		vg.FreeCount = vg.Free / vg.ExtentSize
	}
	return true
}

func indexLV(r *lvm.Report, name string) int {
	return slices.IndexFunc(r.LVs, func(lv lvm.LV) bool { return lv.Name == name })
}

// cloneReport copies a report deeply enough that no caller can change the shared snapshot.
func cloneReport(r lvm.Report) lvm.Report {
	out := r
	out.VG.Tags = slices.Clone(r.VG.Tags)
	out.LVs = slices.Clone(r.LVs)
	for i := range out.LVs {
		out.LVs[i].Tags = slices.Clone(out.LVs[i].Tags)
	}
	return out
}

// domainCell is the shared `xl list` with per-domain change tracking.
type domainCell struct {
	// seq counts our domain changes; lastChange[name] is seq after the last change of name.
	// A list whose read started at seq s shows name as it is now iff s >= lastChange[name].
	seq        uint64
	lastChange map[string]uint64
	list       []xen.DomainInfo
	has        bool
	listSeq    uint64
	at         time.Time
	flight     *domFlight
}

type domFlight struct {
	seq  uint64
	at   time.Time
	done chan struct{}
	list []xen.DomainInfo
	err  error
}

// listDomains returns a list read at or after seq `after`: the snapshot if allowed (cached)
// and young enough, else the read in flight if it started late enough, else a new read.
// v.mu is held on entry and on return.
func (v *HostView) listDomains(ctx context.Context, after uint64, cached bool) ([]xen.DomainInfo, error) {
	d := &v.doms
	for {
		now := v.opts.Clock.Now()
		if cached && d.has && d.listSeq >= after && now.Sub(d.at) < v.opts.DomainMaxAge {
			return d.list, nil
		}
		f := d.flight
		if f == nil || f.seq < after {
			f = &domFlight{seq: d.seq, at: now, done: make(chan struct{})}
			d.flight = f
			v.mu.Unlock()
			list, err := v.hyp.List(ctx)
			v.mu.Lock()
			f.list, f.err = list, err
			if d.flight == f {
				d.flight = nil
			}
			if err == nil && (!d.has || f.seq > d.listSeq || f.seq == d.listSeq && !f.at.Before(d.at)) {
				d.list, d.has, d.listSeq, d.at = list, true, f.seq, f.at
				// Changes this list already shows need no tracking any more: every later
				// list starts at a seq at least as high.
				for name, s := range d.lastChange {
					if s <= f.seq {
						delete(d.lastChange, name)
					}
				}
			}
			close(f.done)
			return list, err
		}
		v.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			v.mu.Lock()
			return nil, ctx.Err()
		}
		v.mu.Lock()
		if f.err != nil && isContextErr(f.err) && ctx.Err() == nil {
			continue
		}
		return f.list, f.err
	}
}

// List implements Hypervisor: it always reads the host (or joins a read that started after our
// last domain change), and publishes the result. The domain watcher relies on that.
func (v *HostView) List(ctx context.Context) ([]xen.DomainInfo, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	list, err := v.listDomains(ctx, v.doms.seq, false)
	return slices.Clone(list), err
}

// ListRecent is List, but a list the view read within maxAge (for anyone, and whichever of our
// changes it shows) will do. It is for the domain watcher, which looks for changes guests made
// by themselves: a list a reconcile just read shows those as well as a new one would.
func (v *HostView) ListRecent(ctx context.Context, maxAge time.Duration) ([]xen.DomainInfo, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if d := &v.doms; d.has && v.opts.Clock.Now().Sub(d.at) < maxAge {
		return slices.Clone(d.list), nil
	}
	list, err := v.listDomains(ctx, v.doms.seq, false)
	return slices.Clone(list), err
}

// Lookup implements Hypervisor from the shared list, taken after our last change of name.
// Like xen.Driver.Lookup, a live domain wins over a dying one of the same name.
func (v *HostView) Lookup(ctx context.Context, name string) (xen.DomainInfo, bool, error) {
	v.mu.Lock()
	list, err := v.listDomains(ctx, v.doms.lastChange[name], true)
	v.mu.Unlock()
	if err != nil {
		return xen.DomainInfo{}, false, err
	}
	var best xen.DomainInfo
	found := false
	for _, dom := range list {
		if dom.Name != name {
			continue
		}
		if !found || (best.State.Dying && !dom.State.Dying) {
			best, found = dom, true
		}
	}
	return best, found, nil
}

// changeDomain runs fn as a change of ours to domain name. What xl does to a domain (its new
// domid, how far a shutdown got) is not known without listing, so the change only marks name:
// its next Lookup reads a list taken after it. Memory moves with creation and destruction, so
// those drop xl info too.
func (v *HostView) changeDomain(name string, memory bool, fn func() error) error {
	return v.changeDomainPatched(name, memory, fn, nil)
}

// changeDomainPatched is changeDomain whose effect on xl info, when fn succeeded, patch applies
// (a nil patch, or a failed fn, drops the snapshot).
func (v *HostView) changeDomainPatched(name string, memory bool, fn func() error, patch func(*xen.HostInfo) bool) error {
	if memory {
		v.mu.Lock()
		beginChange(&v.info)
		v.mu.Unlock()
	}
	err := fn()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.doms.seq++
	v.doms.lastChange[name] = v.doms.seq
	if memory {
		if err != nil {
			patch = nil
		}
		endChange(&v.info, patch)
	}
	return err
}

// Create implements Hypervisor. A create that says how much memory the domain starts with
// moves the free memory of the xl info snapshot by that much instead of dropping it: in a burst
// the capacity reports then cost no `xl info` per clone. Xen also takes a little for the
// domain's own structures, which the next real read (at most InfoMaxAge later) shows.
// Destroys and balloon changes still drop it: Xen frees a dead domain's memory only as it
// finishes dying, so the real figure is not known until it is read.
func (v *HostView) Create(ctx context.Context, name, cfgPath string, opts xen.CreateOptions) error {
	var patch func(*xen.HostInfo) bool
	if opts.MemoryMiB > 0 {
		patch = func(i *xen.HostInfo) bool {
			i.FreeMemoryMiB = max(i.FreeMemoryMiB-opts.MemoryMiB, 0)
			return true
		}
	}
	return v.changeDomainPatched(name, true, func() error { return v.hyp.Create(ctx, name, cfgPath, opts) }, patch)
}

// RequestShutdown implements Hypervisor.
func (v *HostView) RequestShutdown(ctx context.Context, name string) error {
	return v.changeDomain(name, false, func() error { return v.hyp.RequestShutdown(ctx, name) })
}

// DestroyOwned implements Hypervisor.
func (v *HostView) DestroyOwned(ctx context.Context, name, uuid string) error {
	return v.changeDomain(name, true, func() error { return v.hyp.DestroyOwned(ctx, name, uuid) })
}

// Pause implements DomainControl: the domain's state changes, so its next Lookup reads xl list.
func (v *HostView) Pause(ctx context.Context, name string) error {
	return v.changeDomain(name, false, func() error { return v.ctl.Pause(ctx, name) })
}

// Unpause implements DomainControl.
func (v *HostView) Unpause(ctx context.Context, name string) error {
	return v.changeDomain(name, false, func() error { return v.ctl.Unpause(ctx, name) })
}

// SetMemory implements DomainControl; the host's free memory moves with it, so xl info goes too.
func (v *HostView) SetMemory(ctx context.Context, name string, mib int64) error {
	return v.changeDomain(name, true, func() error { return v.ctl.SetMemory(ctx, name, mib) })
}

// WriteXenstore implements DomainControl; nothing the view holds changes.
func (v *HostView) WriteXenstore(ctx context.Context, domid int, entries []xen.XenstoreEntry) error {
	return v.ctl.WriteXenstore(ctx, domid, entries)
}

// Owner implements Hypervisor. It is never cached: it decides whether a domain is ours.
func (v *HostView) Owner(ctx context.Context, name, uuid string) (xen.DomainDetail, error) {
	return v.hyp.Owner(ctx, name, uuid)
}

func (v *HostView) hostInfo(ctx context.Context, fresh bool) (xen.HostInfo, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return getCell(ctx, v, &v.info, v.opts.InfoMaxAge, fresh, v.hyp.Info, cloneInfo)
}

// Info implements Hypervisor from a short-lived shared `xl info`.
func (v *HostView) Info(ctx context.Context) (xen.HostInfo, error) { return v.hostInfo(ctx, false) }

func cloneInfo(i xen.HostInfo) xen.HostInfo {
	if i.Fields != nil {
		m := make(map[string]string, len(i.Fields))
		for k, v := range i.Fields {
			m[k] = v
		}
		i.Fields = m
	}
	return i
}

// freshView reads the host on every call (see HostView.Fresh).
type freshView struct{ *HostView }

func (f freshView) Report(ctx context.Context, vg string) (lvm.Report, error) {
	return f.report(ctx, vg, true)
}

func (f freshView) Lookup(ctx context.Context, name string) (xen.DomainInfo, bool, error) {
	list, err := f.List(ctx)
	if err != nil {
		return xen.DomainInfo{}, false, err
	}
	var best xen.DomainInfo
	found := false
	for _, dom := range list {
		if dom.Name == name && (!found || (best.State.Dying && !dom.State.Dying)) {
			best, found = dom, true
		}
	}
	return best, found, nil
}

func (f freshView) Info(ctx context.Context) (xen.HostInfo, error) { return f.hostInfo(ctx, true) }

// viewImages runs import volume changes as changes of ours to their VG: the shared report is
// read again afterwards (imports are rare; no patch is worth it).
type viewImages struct {
	v *HostView
	s ImageStore
}

func (i viewImages) CreateImportVolume(ctx context.Context, ref lvm.Ref, size uint64, owner lvm.TemplateOwner) (lvm.LV, error) {
	var lv lvm.LV
	err := i.v.changeVG(ref.VG, func() error {
		var err error
		lv, err = i.s.CreateImportVolume(ctx, ref, size, owner)
		return err
	}, nil)
	return lv, err
}

func (i viewImages) CommitImport(ctx context.Context, tmp lvm.Ref, origin string, owner lvm.TemplateOwner, checksum string) error {
	return i.v.changeVG(tmp.VG, func() error { return i.s.CommitImport(ctx, tmp, origin, owner, checksum) }, nil)
}

func (i viewImages) RemoveImport(ctx context.Context, ref lvm.Ref, owner lvm.TemplateOwner) error {
	return i.v.changeVG(ref.VG, func() error { return i.s.RemoveImport(ctx, ref, owner) }, nil)
}

func (i viewImages) DeactivateImport(ctx context.Context, ref lvm.Ref, owner lvm.TemplateOwner) error {
	return i.v.changeVG(ref.VG, func() error { return i.s.DeactivateImport(ctx, ref, owner) }, nil)
}

func (i viewImages) ImportTarget(lv lvm.LV) imageimport.Target { return i.s.ImportTarget(lv) }
