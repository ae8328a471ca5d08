package main

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/hostnet"
	"github.com/xenclone/xenclone/hostagent/lvm"
	"github.com/xenclone/xenclone/hostagent/xen"
)

const zapErrorLevel = zapcore.ErrorLevel

// OpSum is how often a host operation ran and how long it took in total.
type OpSum struct {
	Count   int64   `json:"count"`
	Seconds float64 `json:"seconds"`
}

// opStats sums host operations by name across every host, and per host.
type opStats struct {
	mu     sync.Mutex
	ops    map[string]OpSum
	byHost map[string]map[string]OpSum
}

// hostOps is one host's view of an opStats: what it observes is summed for all hosts and for
// that host.
type hostOps struct {
	s    *opStats
	name string
}

func (s *opStats) host(name string) hostOps { return hostOps{s: s, name: name} }

func (h hostOps) observe(op string, start time.Time) {
	d := time.Since(start).Seconds()
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops == nil {
		s.ops, s.byHost = map[string]OpSum{}, map[string]map[string]OpSum{}
	}
	add := func(m map[string]OpSum) {
		o := m[op]
		o.Count++
		o.Seconds += d
		m[op] = o
	}
	add(s.ops)
	if s.byHost[h.name] == nil {
		s.byHost[h.name] = map[string]OpSum{}
	}
	add(s.byHost[h.name])
}

func (s *opStats) snapshotByHost() map[string]map[string]OpSum {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[string]OpSum{}
	for h, ops := range s.byHost {
		out[h] = map[string]OpSum{}
		for k, v := range ops {
			out[h][k] = v
		}
	}
	return out
}

func (s *opStats) snapshot() map[string]OpSum {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]OpSum{}
	for k, v := range s.ops {
		out[k] = v
	}
	return out
}

func subOps(a, b map[string]OpSum) map[string]OpSum {
	out := map[string]OpSum{}
	for k, v := range a {
		d := OpSum{Count: v.Count - b[k].Count, Seconds: v.Seconds - b[k].Seconds}
		if d.Count != 0 {
			out[k] = d
		}
	}
	return out
}

// timedHost wraps a host boundary so every operation is counted and timed.
func timedHost(h hostagent.Host, s hostOps) hostagent.Host {
	t := hostagent.Host{
		Storage: timedStorage{h.Storage, s}, Guest: timedGuest{h.Guest, s},
		Hypervisor: timedHypervisor{h.Hypervisor, s}, ConfigDir: h.ConfigDir,
	}
	if h.Control != nil {
		// Without it the agent treats the host as one that cannot pause (a Paused pool never
		// settles) and has nowhere to write claim-time data.
		t.Control = timedControl{h.Control, s}
	}
	if h.Guests != nil {
		t.Guests = timedGuests{h.Guests, s}
	}
	return t
}

// timedGuests counts the reads of guest information; the two watches are long-lived
// processes, one per host, and not counted per clone.
type timedGuests struct {
	g  hostagent.GuestSource
	st hostOps
}

func (t timedGuests) WatchDomains(ctx context.Context, onPath func(string)) error {
	return t.g.WatchDomains(ctx, onPath)
}

func (t timedGuests) ReadGuest(ctx context.Context, domid int) (xen.GuestReport, string, error) {
	defer t.st.observe("xenstore-ls", time.Now())
	return t.g.ReadGuest(ctx, domid)
}

func (t timedGuests) Neighbors(ctx context.Context) ([]hostnet.Neighbor, error) {
	defer t.st.observe("ip neigh show", time.Now())
	return t.g.Neighbors(ctx)
}

func (t timedGuests) WatchNeighbors(ctx context.Context, onEvent func(hostnet.Event)) error {
	return t.g.WatchNeighbors(ctx, onEvent)
}

type timedControl struct {
	c  hostagent.DomainControl
	st hostOps
}

func (t timedControl) Pause(ctx context.Context, name string) error {
	defer t.st.observe("xl pause", time.Now())
	return t.c.Pause(ctx, name)
}

func (t timedControl) Unpause(ctx context.Context, name string) error {
	defer t.st.observe("xl unpause", time.Now())
	return t.c.Unpause(ctx, name)
}

func (t timedControl) SetMemory(ctx context.Context, name string, mib int64) error {
	defer t.st.observe("xl mem-set", time.Now())
	return t.c.SetMemory(ctx, name, mib)
}

func (t timedControl) WriteXenstore(ctx context.Context, domid int, entries []xen.XenstoreEntry) error {
	defer t.st.observe("xenstore-write", time.Now())
	return t.c.WriteXenstore(ctx, domid, entries)
}

type timedStorage struct {
	s  hostagent.Storage
	st hostOps
}

func (t timedStorage) Report(ctx context.Context, vg string) (lvm.Report, error) {
	defer t.st.observe("lvm report", time.Now())
	return t.s.Report(ctx, vg)
}

func (t timedStorage) CreateSnapshot(ctx context.Context, req hostagent.SnapshotRequest) (lvm.LV, error) {
	defer t.st.observe("lvm create snapshot", time.Now())
	return t.s.CreateSnapshot(ctx, req)
}

func (t timedStorage) AddTag(ctx context.Context, ref lvm.Ref, owner lvm.Owner, tag string) error {
	defer t.st.observe("lvm add tag", time.Now())
	return t.s.AddTag(ctx, ref, owner, tag)
}

func (t timedStorage) ExtendSnapshot(ctx context.Context, ref lvm.Ref, owner lvm.Owner, by uint64) error {
	defer t.st.observe("lvm extend", time.Now())
	return t.s.ExtendSnapshot(ctx, ref, owner, by)
}

func (t timedStorage) Remove(ctx context.Context, ref lvm.Ref, owner lvm.Owner) error {
	defer t.st.observe("lvm remove", time.Now())
	return t.s.Remove(ctx, ref, owner)
}

func (t timedStorage) SetOriginReadOnly(ctx context.Context, ref lvm.Ref) error {
	defer t.st.observe("lvm origin read-only", time.Now())
	return t.s.SetOriginReadOnly(ctx, ref)
}

func (t timedStorage) RestoreOriginWritable(ctx context.Context, ref lvm.Ref) error {
	defer t.st.observe("lvm origin writable", time.Now())
	return t.s.RestoreOriginWritable(ctx, ref)
}

type timedGuest struct {
	g  hostagent.Guest
	st hostOps
}

func (t timedGuest) Prepare(ctx context.Context, device string, req hostagent.PrepareRequest) (hostagent.PrepareReport, error) {
	defer t.st.observe("guest prepare", time.Now())
	return t.g.Prepare(ctx, device, req)
}

func (t timedGuest) BuildSeed(ctx context.Context, req hostagent.SeedRequest) (string, error) {
	defer t.st.observe("guest build seed", time.Now())
	return t.g.BuildSeed(ctx, req)
}

func (t timedGuest) RemoveSeed(ctx context.Context, uid string) error {
	defer t.st.observe("guest remove seed", time.Now())
	return t.g.RemoveSeed(ctx, uid)
}

func (t timedGuest) Seeds(ctx context.Context) ([]string, error) {
	defer t.st.observe("guest list seeds", time.Now())
	return t.g.Seeds(ctx)
}

type timedHypervisor struct {
	h  hostagent.Hypervisor
	st hostOps
}

func (t timedHypervisor) List(ctx context.Context) ([]xen.DomainInfo, error) {
	defer t.st.observe("xl list", time.Now())
	return t.h.List(ctx)
}

func (t timedHypervisor) Lookup(ctx context.Context, name string) (xen.DomainInfo, bool, error) {
	defer t.st.observe("xl list (lookup)", time.Now())
	return t.h.Lookup(ctx, name)
}

func (t timedHypervisor) Create(ctx context.Context, name, cfgPath string, opts xen.CreateOptions) error {
	defer t.st.observe("xl create", time.Now())
	return t.h.Create(ctx, name, cfgPath, opts)
}

func (t timedHypervisor) RequestShutdown(ctx context.Context, name string) error {
	defer t.st.observe("xl shutdown", time.Now())
	return t.h.RequestShutdown(ctx, name)
}

func (t timedHypervisor) Owner(ctx context.Context, name, uuid string) (xen.DomainDetail, error) {
	defer t.st.observe("xl list -l (owner)", time.Now())
	return t.h.Owner(ctx, name, uuid)
}

func (t timedHypervisor) DestroyOwned(ctx context.Context, name, uuid string) error {
	defer t.st.observe("xl destroy", time.Now())
	return t.h.DestroyOwned(ctx, name, uuid)
}

func (t timedHypervisor) Info(ctx context.Context) (xen.HostInfo, error) {
	defer t.st.observe("xl info", time.Now())
	return t.h.Info(ctx)
}
