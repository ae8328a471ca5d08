package hostagent

import (
	"context"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/hostnet"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// GuestSource is what the host shows of the guests inside its domains: the xenstore keys a guest
// agent writes, and dom0's neighbour table. Both are watched, not polled: one long-lived
// xenstore-watch and one `ip monitor neigh` per host, so a host with a hundred guests that say
// nothing costs nothing. NewGuestSource wires the Xen tools and iproute2; the simulated host
// has the same tools (xlsim).
type GuestSource interface {
	// WatchDomains calls onPath with each xenstore path that changes under /local/domain (and
	// once with "/local/domain" when the watch is set up), until ctx ends or the watch fails.
	WatchDomains(ctx context.Context, onPath func(string)) error
	// ReadGuest reads a domain's tree: what it says of its guest, and the domain's name.
	ReadGuest(ctx context.Context, domid int) (report xen.GuestReport, name string, err error)
	// Neighbors reads the neighbour table.
	Neighbors(ctx context.Context) ([]hostnet.Neighbor, error)
	// WatchNeighbors calls onEvent with each change of the neighbour table.
	WatchNeighbors(ctx context.Context, onEvent func(hostnet.Event)) error
}

// NewGuestSource is the GuestSource of a host's xenstore tools and ip.
func NewGuestSource(store *xen.Xenstore, table *hostnet.Table) GuestSource {
	return guestSource{store: store, table: table}
}

type guestSource struct {
	store *xen.Xenstore
	table *hostnet.Table
}

func (g guestSource) WatchDomains(ctx context.Context, onPath func(string)) error {
	return g.store.WatchPaths(ctx, onPath, "/local/domain")
}

func (g guestSource) ReadGuest(ctx context.Context, domid int) (xen.GuestReport, string, error) {
	tree, err := g.store.ReadTree(ctx, domid)
	if err != nil {
		return xen.GuestReport{}, "", err
	}
	return xen.GuestReportFrom(tree), tree["name"], nil
}

func (g guestSource) Neighbors(ctx context.Context) ([]hostnet.Neighbor, error) {
	return g.table.Neighbors(ctx)
}

func (g guestSource) WatchNeighbors(ctx context.Context, onEvent func(hostnet.Event)) error {
	return g.table.Watch(ctx, onEvent)
}

// guestTarget is a running domain of a clone of this host, as its reconcile last saw it.
type guestTarget struct {
	Key    types.NamespacedName
	Domain string
	DomID  int
	// NICs are the clone's MACs and bridges, by index.
	NICs []vmv1alpha1.InterfaceStatus
	// Probe and Port are the template's readiness (only TCP needs the watcher's help).
	Probe vmv1alpha1.GuestProbe
	Port  int32
	// Started is when the domain started, as the status records it.
	Started time.Time
}

// guestObservation is what the watcher knows of a target's guest.
type guestObservation struct {
	// Report is the domain's last xenstore read (zero until read).
	Report xen.GuestReport
	// Neighbors are the neighbour table's addresses per NIC index.
	Neighbors map[int][]netip.Addr
	// TCPUp: the readiness port answered once, at TCPAddr.
	TCPUp   bool
	TCPAddr string
	// Trouble says why the watcher sees less than it should (a watch that failed), for the
	// GuestReady message.
	Trouble string
	// Known: the domain's tree has been read, or the neighbour table dumped, since the agent
	// started; until then an empty observation says nothing. ReportRead: the tree was.
	Known, ReportRead bool
}

// guestWatcher keeps, per running domain of this host, what its guest published and what the
// neighbour table shows of it, and wakes the domain's clone when that changes, so its next
// report carries it. The guest is not trusted: reads are rate limited per domain (a token
// bucket), and what it writes is parsed strictly (xen.GuestReportFrom).
type guestWatcher struct {
	src    GuestSource
	clock  clock.PassiveClock
	events chan event.GenericEvent
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)

	// settle is how long after a change a domain's tree is read, so the burst of keys a guest
	// agent writes when it starts costs one read and one status write.
	settle time.Duration
	// probeEvery is how often a TCP readiness port that has not answered is dialled.
	probeEvery time.Duration

	mu         sync.Mutex
	targets    map[string]*guestEntry // by domain name
	dirty      map[int]time.Time      // domid -> when a change was seen
	watchSince time.Time              // when the running xenstore watch was set up; zero when none runs
	watchErr   string
	neigh      map[string][]hostnet.Neighbor // MAC -> entries
	neighSince time.Time
	neighErr   string
	kick       chan struct{}
}

type guestEntry struct {
	t       guestTarget
	read    bool
	report  xen.GuestReport
	tcpUp   bool
	tcpAddr string
	probing bool
	lastTCP time.Time
	// tokens is the read budget: readBurst reads, refilled by one every readRefill.
	tokens   float64
	tokensAt time.Time
}

const (
	readBurst  = 5
	readRefill = 10 * time.Second
)

func newGuestWatcher(src GuestSource, clk clock.PassiveClock) *guestWatcher {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &guestWatcher{
		src: src, clock: clk, events: make(chan event.GenericEvent, 256),
		dial:   (&net.Dialer{}).DialContext,
		settle: 500 * time.Millisecond, probeEvery: 2 * time.Second,
		targets: map[string]*guestEntry{}, dirty: map[int]time.Time{}, neigh: map[string][]hostnet.Neighbor{},
		kick: make(chan struct{}, 1),
	}
}

func (w *guestWatcher) NeedLeaderElection() bool { return false }

// Start runs the two watches and the worker until ctx ends.
func (w *guestWatcher) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.runWatch(ctx, "xenstore", w.watchDomains) }()
	go func() { defer wg.Done(); w.runWatch(ctx, "neighbours", w.watchNeighbors) }()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		case <-w.kick:
		}
		w.work(ctx)
	}
}

// runWatch restarts a watch that ended, backing off from 1 s to 1 min.
func (w *guestWatcher) runWatch(ctx context.Context, what string, run func(context.Context) error) {
	backoff := time.Second
	for ctx.Err() == nil {
		began := time.Now()
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		log.FromContext(ctx).Info("guest watch ended; restarting it", "watch", what, "error", errString(err), "after", backoff)
		if time.Since(began) > time.Minute {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

var domainPath = regexp.MustCompile(`^/local/domain/([0-9]+)/(.+)$`)

// interesting says whether a change at rest (a path below /local/domain/<id>/) may change
// the guest's report: the guest agent's keys and the VNC port. The empty attr and data folders
// libxl makes for every new domain, device handshakes and our own guest data do not.
func interesting(rest string) bool {
	switch {
	case strings.HasPrefix(rest, "attr/vif/"), strings.HasPrefix(rest, "attr/PVAddons/"),
		strings.HasPrefix(rest, "data/os_"), rest == "console/vnc-port":
		return true
	}
	return false
}

func (w *guestWatcher) watchDomains(ctx context.Context) error {
	defer func() {
		w.mu.Lock()
		w.watchSince = time.Time{}
		w.mu.Unlock()
	}()
	err := w.src.WatchDomains(ctx, func(p string) {
		now := w.clock.Now()
		if strings.TrimSuffix(p, "/") == "/local/domain" {
			// The watch is set up: from now on every change fires. Whatever changed before is
			// read once.
			w.mu.Lock()
			w.watchSince, w.watchErr = now, ""
			for _, e := range w.targets {
				w.dirty[e.t.DomID] = time.Time{}
			}
			w.mu.Unlock()
			w.poke()
			return
		}
		m := domainPath.FindStringSubmatch(p)
		if m == nil || !interesting(m[2]) {
			return
		}
		id, err := strconv.Atoi(m[1])
		if err != nil || id == 0 {
			return
		}
		w.mu.Lock()
		if _, seen := w.dirty[id]; !seen {
			w.dirty[id] = now
		}
		w.mu.Unlock()
	})
	if err != nil && ctx.Err() == nil {
		w.mu.Lock()
		w.watchErr = err.Error()
		w.mu.Unlock()
	}
	return err
}

func (w *guestWatcher) watchNeighbors(ctx context.Context) error {
	// Subscribe first, then dump: a change between the two is in the stream.
	started := make(chan struct{})
	errc := make(chan error, 1)
	var once sync.Once
	go func() {
		errc <- w.src.WatchNeighbors(ctx, func(ev hostnet.Event) {
			once.Do(func() { close(started) })
			w.neighborEvent(ev)
		})
	}()
	select {
	case <-time.After(200 * time.Millisecond):
	case <-started:
	case err := <-errc:
		w.setNeighErr(err)
		return err
	}
	ns, err := w.src.Neighbors(ctx)
	if err != nil {
		w.setNeighErr(err)
	} else {
		w.mu.Lock()
		w.neigh = map[string][]hostnet.Neighbor{}
		for _, n := range ns {
			w.neigh[n.MAC] = append(w.neigh[n.MAC], n)
		}
		w.neighSince, w.neighErr = w.clock.Now(), ""
		w.wakeNeighborsLocked("")
		w.mu.Unlock()
	}
	err = <-errc
	w.setNeighErr(err)
	return err
}

func (w *guestWatcher) setNeighErr(err error) {
	if err == nil {
		return
	}
	w.mu.Lock()
	w.neighSince, w.neighErr = time.Time{}, err.Error()
	w.mu.Unlock()
}

func (w *guestWatcher) neighborEvent(ev hostnet.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ev.Gone {
		// A removal may not name the MAC (FAILED entries): find the entry by address.
		w.dropNeighborLocked(ev.Addr, ev.Dev, "")
		return
	}
	for _, n := range w.neigh[ev.MAC] {
		if n.Addr == ev.Addr && n.Dev == ev.Dev {
			return // a state change (REACHABLE, STALE) of an entry we have
		}
	}
	// The address may have moved from another MAC.
	w.dropNeighborLocked(ev.Addr, ev.Dev, ev.MAC)
	w.neigh[ev.MAC] = append(w.neigh[ev.MAC], ev.Neighbor)
	w.wakeNeighborsLocked(ev.MAC)
}

// dropNeighborLocked removes the entry of addr on dev from every MAC but keep, waking the
// clones that lose it.
func (w *guestWatcher) dropNeighborLocked(addr netip.Addr, dev, keep string) {
	for mac, list := range w.neigh {
		if mac == keep {
			continue
		}
		for i, n := range list {
			if n.Addr == addr && n.Dev == dev {
				w.neigh[mac] = append(list[:i:i], list[i+1:]...)
				w.wakeNeighborsLocked(mac)
				break
			}
		}
	}
}

// wakeNeighborsLocked wakes the clones with a NIC of that MAC (every one for ""), unless their
// guest agent reports addresses (those win).
func (w *guestWatcher) wakeNeighborsLocked(mac string) {
	for _, e := range w.targets {
		if len(e.report.NICs) > 0 {
			continue
		}
		for _, nic := range e.t.NICs {
			if mac == "" || nic.MAC == mac {
				w.wakeLocked(e.t.Key)
				break
			}
		}
	}
}

func (w *guestWatcher) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *guestWatcher) wakeLocked(key types.NamespacedName) {
	c := &vmv1alpha1.VMClone{}
	c.Namespace, c.Name = key.Namespace, key.Name
	select {
	case w.events <- event.GenericEvent{Object: c}:
	default:
		// A full queue means wakes are pending for many clones; this one's next reconcile
		// (resync or any change) still reads the watcher.
	}
}

// work reads the trees that changed and probes the TCP ports that have not answered.
func (w *guestWatcher) work(ctx context.Context) {
	now := w.clock.Now()
	type read struct {
		id int
		e  *guestEntry
	}
	var reads []read
	var probes []*guestEntry
	w.mu.Lock()
	byID := map[int]*guestEntry{}
	for _, e := range w.targets {
		byID[e.t.DomID] = e
	}
	for id, at := range w.dirty {
		e := byID[id]
		if e == nil {
			// Not (yet) a clone's running domain: forget the change unless it is fresh, as the
			// reconcile that started the domain may not have told us about it yet.
			if !at.IsZero() && now.Sub(at) > 10*time.Second {
				delete(w.dirty, id)
			}
			continue
		}
		if !at.IsZero() && now.Sub(at) < w.settle {
			continue
		}
		if !e.take(now) {
			continue // over its budget: read later
		}
		delete(w.dirty, id)
		reads = append(reads, read{id, e})
	}
	for _, e := range w.targets {
		if e.t.Probe == vmv1alpha1.GuestProbeTCP && !e.tcpUp && !e.probing && now.Sub(e.lastTCP) >= w.probeEvery {
			if addr := w.firstAddrLocked(e); addr.IsValid() {
				e.probing, e.lastTCP = true, now
				probes = append(probes, e)
			}
		}
	}
	w.mu.Unlock()

	for _, r := range reads {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rep, name, err := w.src.ReadGuest(rctx, r.id)
		cancel()
		w.mu.Lock()
		if cur := w.targets[r.e.t.Domain]; cur == r.e && cur.t.DomID == r.id {
			switch {
			case err != nil:
				log.FromContext(ctx).V(1).Info("read guest report", "domid", r.id, "error", err.Error())
			case name != r.e.t.Domain:
				// The domid is another domain's now: the target is stale and its reconcile
				// will say so.
			case !r.e.read || !reflect.DeepEqual(rep, r.e.report):
				r.e.report, r.e.read = rep, true
				w.wakeLocked(r.e.t.Key)
			}
		}
		w.mu.Unlock()
	}
	for _, e := range probes {
		go w.probe(ctx, e)
	}
}

// take spends one read from e's budget.
func (e *guestEntry) take(now time.Time) bool {
	if e.tokensAt.IsZero() {
		e.tokens, e.tokensAt = readBurst, now
	}
	e.tokens = min(readBurst, e.tokens+float64(now.Sub(e.tokensAt))/float64(readRefill))
	e.tokensAt = now
	if e.tokens < 1 {
		return false
	}
	e.tokens--
	return true
}

func (w *guestWatcher) probe(ctx context.Context, e *guestEntry) {
	w.mu.Lock()
	addr, port, key := w.firstAddrLocked(e), e.t.Port, e.t.Key
	w.mu.Unlock()
	target := net.JoinHostPort(addr.String(), strconv.Itoa(int(port)))
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	conn, err := w.dial(dctx, "tcp", target)
	cancel()
	if err == nil {
		_ = conn.Close()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	e.probing = false
	if err == nil && w.targets[e.t.Domain] == e {
		e.tcpUp, e.tcpAddr = true, target
		w.wakeLocked(key)
	}
}

// Observe registers a running domain (or refreshes it) and returns what is known of its guest.
func (w *guestWatcher) Observe(t guestTarget) guestObservation {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.targets[t.Domain]
	if e == nil || e.t.DomID != t.DomID {
		e = &guestEntry{t: t}
		w.targets[t.Domain] = e
		// A domain started after the watch was set up has had every change of its tree fire;
		// one that predates it (an agent restart) is read once.
		if w.watchSince.IsZero() || t.Started.IsZero() || t.Started.Before(w.watchSince) {
			w.dirty[t.DomID] = time.Time{}
			w.poke()
		}
	}
	e.t = t
	return w.observationLocked(e)
}

func (w *guestWatcher) observationLocked(e *guestEntry) guestObservation {
	o := guestObservation{Report: e.report, TCPUp: e.tcpUp, TCPAddr: e.tcpAddr, Known: e.read || !w.neighSince.IsZero(), ReportRead: e.read}
	for _, nic := range e.t.NICs {
		for _, n := range w.neigh[nic.MAC] {
			if nic.Bridge == "" || n.Dev == nic.Bridge {
				if o.Neighbors == nil {
					o.Neighbors = map[int][]netip.Addr{}
				}
				o.Neighbors[int(nic.Index)] = append(o.Neighbors[int(nic.Index)], n.Addr)
			}
		}
	}
	var trouble []string
	if w.watchErr != "" {
		trouble = append(trouble, "xenstore-watch failed: "+w.watchErr)
	}
	if w.neighErr != "" {
		trouble = append(trouble, "ip monitor neigh failed: "+w.neighErr)
	}
	o.Trouble = strings.Join(trouble, "; ")
	return o
}

// firstAddrLocked is where the TCP probe dials: the guest status's first address.
func (w *guestWatcher) firstAddrLocked(e *guestEntry) netip.Addr {
	g := GuestStatusFrom(w.observationLocked(e), e.t.NICs)
	if g == nil || g.IP == "" {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(g.IP)
	return a
}

// Forget drops the domain of a clone whose domain no longer runs (or that is gone).
func (w *guestWatcher) Forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, e := range w.targets {
		if e.t.Key == key {
			delete(w.dirty, e.t.DomID)
			delete(w.targets, name)
		}
	}
}
