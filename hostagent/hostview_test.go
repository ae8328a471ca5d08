package hostagent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/xenclone/xenclone/hostagent/lvm"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// countingStorage is an in-memory VG that counts its reports; gate, when set, holds each
// report until the test sends on it (after the report has read the state, as lvs would).
type countingStorage struct {
	mu      sync.Mutex
	lvs     map[string]lvm.LV
	free    uint64
	reports atomic.Int64
	started chan struct{} // one send per report that has read the state, if set
	gate    chan struct{}
	failOne error
}

func newCountingStorage() *countingStorage {
	return &countingStorage{lvs: map[string]lvm.LV{
		"tpl": {Name: "tpl", VG: "vg0", UUID: "u-tpl", Size: 10 << 30},
	}, free: 100 << 30}
}

func (s *countingStorage) Report(ctx context.Context, vg string) (lvm.Report, error) {
	s.reports.Add(1)
	s.mu.Lock()
	if err := s.failOne; err != nil {
		s.failOne = nil
		s.mu.Unlock()
		return lvm.Report{}, err
	}
	rep := lvm.Report{VG: lvm.VG{Name: vg, Size: 1 << 40, Free: s.free, ExtentSize: 4 << 20, LVCount: len(s.lvs)}}
	for _, lv := range s.lvs {
		lv.Tags = slices.Clone(lv.Tags)
		rep.LVs = append(rep.LVs, lv)
	}
	s.mu.Unlock()
	slices.SortFunc(rep.LVs, func(a, b lvm.LV) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	if s.started != nil {
		s.started <- struct{}{}
	}
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return lvm.Report{}, ctx.Err()
		}
	}
	return rep, nil
}

func (s *countingStorage) CreateSnapshot(_ context.Context, req SnapshotRequest) (lvm.LV, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lv, ok := s.lvs[req.Name]; ok {
		return lv, nil
	}
	attr, _ := lvm.ParseAttr("swi-a-s---")
	lv := lvm.LV{Name: req.Name, VG: req.VG, UUID: "u-" + req.Name, Attr: attr, Size: req.COWBytes, Origin: req.Origin,
		Tags: req.Owner.Tags()}
	s.lvs[req.Name] = lv
	s.free -= req.COWBytes
	return lv, nil
}

func (s *countingStorage) AddTag(_ context.Context, ref lvm.Ref, _ lvm.Owner, tag string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lv, ok := s.lvs[ref.Name]
	if !ok {
		return lvm.ErrLVNotFound
	}
	lv.Tags = append(slices.Clone(lv.Tags), tag)
	s.lvs[ref.Name] = lv
	return nil
}

func (s *countingStorage) ExtendSnapshot(_ context.Context, ref lvm.Ref, _ lvm.Owner, by uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lv := s.lvs[ref.Name]
	lv.Size += by
	s.lvs[ref.Name] = lv
	s.free -= by
	return nil
}

func (s *countingStorage) Remove(_ context.Context, ref lvm.Ref, _ lvm.Owner) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lv, ok := s.lvs[ref.Name]
	if !ok {
		return fmt.Errorf("remove %s: %w", ref, lvm.ErrLVNotFound)
	}
	delete(s.lvs, ref.Name)
	s.free += lv.Size
	return nil
}

func (s *countingStorage) SetOriginReadOnly(_ context.Context, ref lvm.Ref) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lv := s.lvs[ref.Name]
	lv.Attr.Permission = lvm.PermRead
	s.lvs[ref.Name] = lv
	return nil
}

func (s *countingStorage) RestoreOriginWritable(_ context.Context, ref lvm.Ref) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lv := s.lvs[ref.Name]
	lv.Attr.Permission = lvm.PermWrite
	s.lvs[ref.Name] = lv
	return nil
}

// countingHypervisor is an in-memory domain table that counts xl list and xl info.
type countingHypervisor struct {
	mu      sync.Mutex
	doms    map[string]xen.DomainInfo
	nextID  int
	free    int64
	lists   atomic.Int64
	infos   atomic.Int64
	started chan struct{}
	gate    chan struct{}
	failOne error
	// createErr fails the next Create, after it took the memory (as a create that failed late
	// may have, until its domain is gone).
	createErr error
}

func newCountingHypervisor() *countingHypervisor {
	return &countingHypervisor{doms: map[string]xen.DomainInfo{"Domain-0": {Name: "Domain-0"}}, nextID: 1, free: 60000}
}

func (h *countingHypervisor) List(ctx context.Context) ([]xen.DomainInfo, error) {
	h.lists.Add(1)
	h.mu.Lock()
	if err := h.failOne; err != nil {
		h.failOne = nil
		h.mu.Unlock()
		return nil, err
	}
	var out []xen.DomainInfo
	for _, d := range h.doms {
		out = append(out, d)
	}
	h.mu.Unlock()
	if h.started != nil {
		h.started <- struct{}{}
	}
	if h.gate != nil {
		select {
		case <-h.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}

func (h *countingHypervisor) Lookup(ctx context.Context, name string) (xen.DomainInfo, bool, error) {
	panic("the view serves Lookup from List")
}

func (h *countingHypervisor) Create(_ context.Context, name, _ string, _ xen.CreateOptions) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.doms[name] = xen.DomainInfo{Name: name, ID: h.nextID, MemoryMiB: 1024}
	h.nextID++
	h.free -= 1024
	if err := h.createErr; err != nil {
		h.createErr = nil
		return err
	}
	return nil
}

func (h *countingHypervisor) RequestShutdown(_ context.Context, name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.doms[name]
	d.State.Shutdown = true
	h.doms[name] = d
	return nil
}

func (h *countingHypervisor) Owner(context.Context, string, string) (xen.DomainDetail, error) {
	return xen.DomainDetail{}, nil
}

func (h *countingHypervisor) DestroyOwned(_ context.Context, name, _ string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.doms, name)
	h.free += 1024
	return nil
}

func (h *countingHypervisor) Info(context.Context) (xen.HostInfo, error) {
	h.infos.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	return xen.HostInfo{FreeMemoryMiB: h.free, TotalMemoryMiB: 65536}, nil
}

func newTestView(s Storage, h Hypervisor) (*HostView, *clocktesting.FakePassiveClock) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1_700_000_000, 0))
	return NewHostView(Host{Storage: s, Hypervisor: h}, HostViewOptions{Clock: clk}), clk
}

var testOwner = lvm.Owner{UID: "uid-1"}

func TestHostViewReportSingleFlight(t *testing.T) {
	g := NewWithT(t)
	s := newCountingStorage()
	s.started, s.gate = make(chan struct{}, 1), make(chan struct{})
	v, _ := newTestView(s, newCountingHypervisor())

	const n = 32
	var wg sync.WaitGroup
	reps := make([]lvm.Report, n)
	errs := make([]error, n)
	wg.Add(1)
	go func() { defer wg.Done(); reps[0], errs[0] = v.Report(context.Background(), "vg0") }()
	<-s.started // the first report is on the host
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); reps[i], errs[i] = v.Report(context.Background(), "vg0") }()
	}
	time.Sleep(50 * time.Millisecond) // let them join the read in flight
	close(s.gate)
	wg.Wait()
	g.Expect(s.reports.Load()).To(BeEquivalentTo(1), "concurrent callers share one lvs")
	for i := range n {
		g.Expect(errs[i]).NotTo(HaveOccurred())
		g.Expect(reps[i].LVs).To(HaveLen(1))
	}
	// Each caller has its own copy: changing one does not change the shared snapshot.
	reps[0].LVs[0].Tags = append(reps[0].LVs[0].Tags, "scribble")
	again, err := v.Report(context.Background(), "vg0")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again.LVs[0].Tags).NotTo(ContainElement("scribble"))
}

func TestHostViewReportMaxAge(t *testing.T) {
	g := NewWithT(t)
	s := newCountingStorage()
	v, clk := newTestView(s, newCountingHypervisor())
	ctx := context.Background()
	for range 5 {
		_, err := v.Report(ctx, "vg0")
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(s.reports.Load()).To(BeEquivalentTo(1))

	// A change behind the agent's back (COW usage grew) shows once MaxAge has passed.
	s.mu.Lock()
	s.free = 1
	s.mu.Unlock()
	clk.SetTime(clk.Now().Add(DefaultStorageMaxAge - time.Millisecond))
	rep, _ := v.Report(ctx, "vg0")
	g.Expect(rep.VG.Free).NotTo(BeEquivalentTo(1), "still the snapshot")
	clk.SetTime(clk.Now().Add(time.Millisecond))
	rep, _ = v.Report(ctx, "vg0")
	g.Expect(rep.VG.Free).To(BeEquivalentTo(1))
	g.Expect(s.reports.Load()).To(BeEquivalentTo(2))
}

func TestHostViewErrorsAreNotCached(t *testing.T) {
	g := NewWithT(t)
	s := newCountingStorage()
	s.failOne = fmt.Errorf("report vg0: %w", lvm.ErrVGNotFound)
	h := newCountingHypervisor()
	h.failOne = errors.New("xl list: toolstack busy")
	v, _ := newTestView(s, h)
	ctx := context.Background()

	_, err := v.Report(ctx, "vg0")
	g.Expect(err).To(MatchError(lvm.ErrVGNotFound))
	_, err = v.Report(ctx, "vg0")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.reports.Load()).To(BeEquivalentTo(2))

	_, _, err = v.Lookup(ctx, "Domain-0")
	g.Expect(err).To(HaveOccurred())
	_, found, err := v.Lookup(ctx, "Domain-0")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(found).To(BeTrue())
	g.Expect(h.lists.Load()).To(BeEquivalentTo(2))
}

// TestHostViewOwnChangesAreSeen: after each change of ours the next Report shows it, read
// again or patched; the changes whose effect is exactly known cost no read.
func TestHostViewOwnChangesAreSeen(t *testing.T) {
	g := NewWithT(t)
	s := newCountingStorage()
	v, _ := newTestView(s, newCountingHypervisor())
	ctx := context.Background()
	rep, err := v.Report(ctx, "vg0")
	g.Expect(err).NotTo(HaveOccurred())
	free0 := rep.VG.Free

	lv, err := v.CreateSnapshot(ctx, SnapshotRequest{VG: "vg0", Origin: "tpl", Name: "c1", COWBytes: 1 << 30, Owner: testOwner})
	g.Expect(err).NotTo(HaveOccurred())
	rep, _ = v.Report(ctx, "vg0")
	got, ok := rep.LV("c1")
	g.Expect(ok).To(BeTrue(), "the new LV is in the snapshot")
	g.Expect(got.UUID).To(Equal(lv.UUID))
	g.Expect(rep.VG.LVCount).To(Equal(2))
	g.Expect(rep.VG.Free).To(Equal(free0-1<<30), "a classic COW area leaves the VG")

	g.Expect(v.AddTag(ctx, lv.Ref(), testOwner, PreparedTag)).To(Succeed())
	rep, _ = v.Report(ctx, "vg0")
	got, _ = rep.LV("c1")
	g.Expect(got.HasTag(PreparedTag)).To(BeTrue())

	g.Expect(v.SetOriginReadOnly(ctx, lvm.Ref{VG: "vg0", Name: "tpl"})).To(Succeed())
	rep, _ = v.Report(ctx, "vg0")
	got, _ = rep.LV("tpl")
	g.Expect(got.Attr.ReadOnly()).To(BeTrue())
	g.Expect(s.reports.Load()).To(BeEquivalentTo(1), "patched, not read again")

	// An extension's rounding and usage are not known: read again.
	g.Expect(v.ExtendSnapshot(ctx, lv.Ref(), testOwner, 1<<30)).To(Succeed())
	rep, _ = v.Report(ctx, "vg0")
	got, _ = rep.LV("c1")
	g.Expect(got.Size).To(BeEquivalentTo(2 << 30))
	g.Expect(s.reports.Load()).To(BeEquivalentTo(2))

	g.Expect(v.Remove(ctx, lv.Ref(), testOwner)).To(Succeed())
	rep, _ = v.Report(ctx, "vg0")
	_, ok = rep.LV("c1")
	g.Expect(ok).To(BeFalse())
	g.Expect(rep.VG.Free).To(Equal(free0))
	g.Expect(s.reports.Load()).To(BeEquivalentTo(2))

	// A failed change leaves the host state unknown: read again.
	g.Expect(v.AddTag(ctx, lvm.Ref{VG: "vg0", Name: "gone"}, testOwner, PreparedTag)).NotTo(Succeed())
	_, _ = v.Report(ctx, "vg0")
	g.Expect(s.reports.Load()).To(BeEquivalentTo(3))
}

// TestHostViewReadDuringChangeIsNotStored: a report in flight while the agent changes the VG
// may or may not show the change; it is neither stored nor joined by a caller after the change.
func TestHostViewReadDuringChangeIsNotStored(t *testing.T) {
	g := NewWithT(t)
	s := newCountingStorage()
	s.started, s.gate = make(chan struct{}, 4), make(chan struct{}, 4)
	v, _ := newTestView(s, newCountingHypervisor())
	ctx := context.Background()

	old := make(chan lvm.Report, 1)
	go func() { rep, _ := v.Report(ctx, "vg0"); old <- rep }()
	<-s.started // read the VG before the change

	g.Expect(v.AddTag(ctx, lvm.Ref{VG: "vg0", Name: "tpl"}, testOwner, PreparedTag)).To(Succeed())

	after := make(chan lvm.Report, 1)
	go func() { rep, _ := v.Report(ctx, "vg0"); after <- rep }()
	<-s.started // a second lvs: the caller after the change did not join the first
	g.Expect(s.reports.Load()).To(BeEquivalentTo(2))
	s.gate <- struct{}{}
	s.gate <- struct{}{}
	rep := <-after
	tpl, _ := rep.LV("tpl")
	g.Expect(tpl.HasTag(PreparedTag)).To(BeTrue())
	<-old

	// Whichever finished last, the next caller sees the tag.
	s.started, s.gate = nil, nil
	rep, _ = v.Report(ctx, "vg0")
	tpl, _ = rep.LV("tpl")
	g.Expect(tpl.HasTag(PreparedTag)).To(BeTrue())
}

// TestHostViewReadOverlappingChange: a read that finishes after a change of ours it may have
// missed is patched before it is stored (tag added), or not stored at all when the change
// cannot be patched (an extension).
func TestHostViewReadOverlappingChange(t *testing.T) {
	g := NewWithT(t)
	s := newCountingStorage()
	s.started, s.gate = make(chan struct{}, 4), make(chan struct{}, 4)
	v, _ := newTestView(s, newCountingHypervisor())
	ctx := context.Background()
	lv, err := v.CreateSnapshot(ctx, SnapshotRequest{VG: "vg0", Origin: "tpl", Name: "c1", COWBytes: 1 << 30, Owner: testOwner})
	g.Expect(err).NotTo(HaveOccurred())

	done := make(chan lvm.Report, 1)
	go func() { rep, _ := v.Report(ctx, "vg0"); done <- rep }()
	<-s.started // the VG is read before the tag
	g.Expect(v.AddTag(ctx, lv.Ref(), testOwner, PreparedTag)).To(Succeed())
	s.gate <- struct{}{}
	rep := <-done
	got, _ := rep.LV("c1")
	g.Expect(got.HasTag(PreparedTag)).To(BeTrue(), "the read is patched with the tag it missed")
	rep, _ = v.Report(ctx, "vg0")
	got, _ = rep.LV("c1")
	g.Expect(got.HasTag(PreparedTag)).To(BeTrue())
	g.Expect(s.reports.Load()).To(BeEquivalentTo(1), "the patched read was stored")

	g.Expect(v.ExtendSnapshot(ctx, lv.Ref(), testOwner, 0)).To(Succeed()) // drop the snapshot
	go func() { rep, _ := v.Report(ctx, "vg0"); done <- rep }()
	<-s.started // read before the extension
	g.Expect(v.ExtendSnapshot(ctx, lv.Ref(), testOwner, 1<<30)).To(Succeed())
	s.gate <- struct{}{}
	<-done
	s.started, s.gate = nil, nil
	rep, _ = v.Report(ctx, "vg0")
	got, _ = rep.LV("c1")
	g.Expect(got.Size).To(BeEquivalentTo(2<<30), "the read from before the extension was not kept")
	g.Expect(s.reports.Load()).To(BeEquivalentTo(3))
}

func TestHostViewDomains(t *testing.T) {
	g := NewWithT(t)
	h := newCountingHypervisor()
	h.started, h.gate = make(chan struct{}, 1), make(chan struct{})
	v, clk := newTestView(newCountingStorage(), h)
	ctx := context.Background()

	// Concurrent lookups share one xl list.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, _, _ = v.Lookup(ctx, "Domain-0") }()
	<-h.started
	for i := range 16 {
		wg.Add(1)
		go func() { defer wg.Done(); _, _, _ = v.Lookup(ctx, fmt.Sprintf("d%d", i)) }()
	}
	time.Sleep(50 * time.Millisecond)
	close(h.gate)
	wg.Wait()
	h.started, h.gate = nil, nil
	g.Expect(h.lists.Load()).To(BeEquivalentTo(1))

	// Our own xl create: the next Lookup of that domain lists again and sees it; lookups of
	// other domains keep using the list.
	g.Expect(v.Create(ctx, "d1", "/cfg", xen.CreateOptions{})).To(Succeed())
	_, found, err := v.Lookup(ctx, "d2")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(found).To(BeFalse())
	g.Expect(h.lists.Load()).To(BeEquivalentTo(1))
	d, found, err := v.Lookup(ctx, "d1")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(found).To(BeTrue())
	g.Expect(d.ID).To(Equal(1))
	g.Expect(h.lists.Load()).To(BeEquivalentTo(2))
	_, _, _ = v.Lookup(ctx, "d1")
	g.Expect(h.lists.Load()).To(BeEquivalentTo(2), "that list now serves d1 too")

	// Shutdown and destroy mark the domain as well.
	g.Expect(v.RequestShutdown(ctx, "d1")).To(Succeed())
	d, _, _ = v.Lookup(ctx, "d1")
	g.Expect(d.State.Shutdown).To(BeTrue())
	g.Expect(v.DestroyOwned(ctx, "d1", "uuid")).To(Succeed())
	_, found, _ = v.Lookup(ctx, "d1")
	g.Expect(found).To(BeFalse())
	g.Expect(h.lists.Load()).To(BeEquivalentTo(4))

	// The watcher's List always reads the host, and lookups right after are free.
	_, _ = v.List(ctx)
	_, _ = v.List(ctx)
	g.Expect(h.lists.Load()).To(BeEquivalentTo(6))
	_, _, _ = v.Lookup(ctx, "d7")
	g.Expect(h.lists.Load()).To(BeEquivalentTo(6))

	// A guest that changed by itself shows once MaxAge has passed.
	h.mu.Lock()
	h.doms["d7"] = xen.DomainInfo{Name: "d7", ID: 9}
	h.mu.Unlock()
	clk.SetTime(clk.Now().Add(DefaultDomainMaxAge))
	_, found, _ = v.Lookup(ctx, "d7")
	g.Expect(found).To(BeTrue())
	g.Expect(h.lists.Load()).To(BeEquivalentTo(7))
}

// TestHostViewListDuringCreate: a list in flight while we create domain X may miss X; the
// Lookup of X after the create must not be served from it, nor join it.
func TestHostViewListDuringCreate(t *testing.T) {
	g := NewWithT(t)
	h := newCountingHypervisor()
	h.started, h.gate = make(chan struct{}, 4), make(chan struct{}, 4)
	v, _ := newTestView(newCountingStorage(), h)
	ctx := context.Background()
	done := make(chan struct{})
	go func() { _, _, _ = v.Lookup(ctx, "other"); close(done) }()
	<-h.started // listed before the create
	g.Expect(v.Create(ctx, "x", "/cfg", xen.CreateOptions{})).To(Succeed())
	found := make(chan bool, 1)
	go func() { _, ok, _ := v.Lookup(ctx, "x"); found <- ok }()
	<-h.started // its own list
	h.gate <- struct{}{}
	h.gate <- struct{}{}
	g.Expect(<-found).To(BeTrue())
	<-done
	h.started, h.gate = nil, nil
	_, ok, _ := v.Lookup(ctx, "x")
	g.Expect(ok).To(BeTrue(), "the older list did not replace the newer one")
}

func TestHostViewInfo(t *testing.T) {
	g := NewWithT(t)
	h := newCountingHypervisor()
	v, clk := newTestView(newCountingStorage(), h)
	ctx := context.Background()
	i, _ := v.Info(ctx)
	_, _ = v.Info(ctx)
	g.Expect(h.infos.Load()).To(BeEquivalentTo(1))
	g.Expect(v.Create(ctx, "d1", "/cfg", xen.CreateOptions{})).To(Succeed())
	j, _ := v.Info(ctx)
	g.Expect(h.infos.Load()).To(BeEquivalentTo(2), "memory moved with the create")
	g.Expect(j.FreeMemoryMiB).To(Equal(i.FreeMemoryMiB - 1024))
	g.Expect(v.DestroyOwned(ctx, "d1", "uuid")).To(Succeed())
	_, _ = v.Info(ctx)
	g.Expect(h.infos.Load()).To(BeEquivalentTo(3))
	clk.SetTime(clk.Now().Add(DefaultInfoMaxAge))
	_, _ = v.Info(ctx)
	g.Expect(h.infos.Load()).To(BeEquivalentTo(4))
}

// TestHostViewInfoFollowsOurCreates: a create that says its memory moves the snapshot's free
// memory without an xl info; a failed create, a destroy and the age drop it.
func TestHostViewInfoFollowsOurCreates(t *testing.T) {
	g := NewWithT(t)
	h := newCountingHypervisor()
	v, clk := newTestView(newCountingStorage(), h)
	ctx := context.Background()
	i, _ := v.Info(ctx)
	for n := range 3 {
		g.Expect(v.Create(ctx, fmt.Sprintf("d%d", n), "/cfg", xen.CreateOptions{MemoryMiB: 1024})).To(Succeed())
	}
	j, _ := v.Info(ctx)
	g.Expect(h.infos.Load()).To(BeEquivalentTo(1), "three creates, no xl info")
	g.Expect(j.FreeMemoryMiB).To(Equal(i.FreeMemoryMiB-3*1024), "as the host says")
	g.Expect(j.FreeMemoryMiB).To(Equal(h.free))

	h.createErr = errors.New("xl create failed late")
	g.Expect(v.Create(ctx, "bad", "/cfg", xen.CreateOptions{MemoryMiB: 1024})).NotTo(Succeed())
	k, _ := v.Info(ctx)
	g.Expect(h.infos.Load()).To(BeEquivalentTo(2), "a failed create may have taken any amount: read again")
	g.Expect(k.FreeMemoryMiB).To(Equal(h.free))

	g.Expect(v.DestroyOwned(ctx, "d0", "uuid")).To(Succeed())
	_, _ = v.Info(ctx)
	g.Expect(h.infos.Load()).To(BeEquivalentTo(3), "a destroy drops it")

	clk.SetTime(clk.Now().Add(DefaultInfoMaxAge - time.Millisecond))
	_, _ = v.Info(ctx)
	g.Expect(h.infos.Load()).To(BeEquivalentTo(3))
	clk.SetTime(clk.Now().Add(time.Millisecond))
	_, _ = v.Info(ctx)
	g.Expect(h.infos.Load()).To(BeEquivalentTo(4), "changes behind our back show within InfoMaxAge")
}

// TestHostViewListRecent: the domain watcher's poll uses a list someone read within its bound,
// even one older than our last change, and reads the host otherwise.
func TestHostViewListRecent(t *testing.T) {
	g := NewWithT(t)
	h := newCountingHypervisor()
	v, clk := newTestView(newCountingStorage(), h)
	ctx := context.Background()
	_, _, _ = v.Lookup(ctx, "x")
	g.Expect(v.Create(ctx, "x", "/cfg", xen.CreateOptions{})).To(Succeed())
	list, err := v.ListRecent(ctx, time.Second)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h.lists.Load()).To(BeEquivalentTo(1))
	g.Expect(list).To(HaveLen(1), "the list from before the create")
	clk.SetTime(clk.Now().Add(time.Second))
	list, _ = v.ListRecent(ctx, time.Second)
	g.Expect(h.lists.Load()).To(BeEquivalentTo(2))
	g.Expect(list).To(HaveLen(2))
	_, found, _ := v.Lookup(ctx, "x")
	g.Expect(found).To(BeTrue())
	g.Expect(h.lists.Load()).To(BeEquivalentTo(2), "the poll's list serves the lookups")
}

// TestHostViewFresh: the orphan collector's reads always ask the host, and what they read
// serves the others.
func TestHostViewFresh(t *testing.T) {
	g := NewWithT(t)
	s, h := newCountingStorage(), newCountingHypervisor()
	v, _ := newTestView(s, h)
	ctx := context.Background()
	fresh := v.Fresh(Host{})
	_, _ = v.Report(ctx, "vg0")
	_, _ = fresh.Storage.Report(ctx, "vg0")
	_, _ = fresh.Storage.Report(ctx, "vg0")
	g.Expect(s.reports.Load()).To(BeEquivalentTo(3))
	_, _ = v.Report(ctx, "vg0")
	g.Expect(s.reports.Load()).To(BeEquivalentTo(3))
	_, _, _ = fresh.Hypervisor.Lookup(ctx, "x")
	_, _, _ = fresh.Hypervisor.Lookup(ctx, "x")
	g.Expect(h.lists.Load()).To(BeEquivalentTo(2))
}

// TestHostViewRace: many clones' reconciles at once, each creating, tagging and removing its
// own LV and domain, must each see their own changes at every step. Run with -race.
func TestHostViewRace(t *testing.T) {
	// A long max age: only our own changes keep the view right. A short one: reads overlap
	// changes all the time and are patched, dropped or joined.
	for _, age := range []time.Duration{time.Hour, time.Millisecond} {
		t.Run(age.String(), func(t *testing.T) { raceView(t, age) })
	}
}

func raceView(t *testing.T, age time.Duration) {
	s, h := newCountingStorage(), newCountingHypervisor()
	v := NewHostView(Host{Storage: s, Hypervisor: h}, HostViewOptions{StorageMaxAge: age, DomainMaxAge: age})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				name := fmt.Sprintf("c%d-%d", w, i)
				check := func(step string, ok bool) bool {
					if !ok {
						errs <- fmt.Errorf("%s: %s not seen", name, step)
					}
					return ok
				}
				if _, err := v.Report(ctx, "vg0"); err != nil {
					errs <- err
					return
				}
				lv, err := v.CreateSnapshot(ctx, SnapshotRequest{VG: "vg0", Origin: "tpl", Name: name, COWBytes: 4 << 20, Owner: testOwner})
				if err != nil {
					errs <- err
					return
				}
				rep, _ := v.Report(ctx, "vg0")
				got, ok := rep.LV(name)
				if !check("create", ok) {
					return
				}
				_ = v.AddTag(ctx, lv.Ref(), testOwner, PreparedTag)
				rep, _ = v.Report(ctx, "vg0")
				got, _ = rep.LV(name)
				if !check("tag", got.HasTag(PreparedTag)) {
					return
				}
				_ = v.Create(ctx, name, "/cfg", xen.CreateOptions{})
				_, found, _ := v.Lookup(ctx, name)
				if !check("domain", found) {
					return
				}
				if i%3 == 0 {
					_, _ = v.List(ctx) // the watcher
				}
				_ = v.DestroyOwned(ctx, name, "uuid")
				_, found, _ = v.Lookup(ctx, name)
				if !check("destroy", !found) {
					return
				}
				_ = v.Remove(ctx, lv.Ref(), testOwner)
				rep, _ = v.Report(ctx, "vg0")
				_, ok = rep.LV(name)
				if !check("remove", !ok) {
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rep, _ := v.Report(ctx, "vg0")
	if rep.VG.LVCount != 1 || len(rep.LVs) != 1 {
		t.Errorf("after every clone is gone the view shows %d LVs (count %d)", len(rep.LVs), rep.VG.LVCount)
	}
	t.Logf("%d lvs reports and %d xl lists for 320 clones", s.reports.Load(), h.lists.Load())
}
