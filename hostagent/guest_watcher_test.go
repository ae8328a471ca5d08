package hostagent

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/hostnet"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// fakeGuests is a GuestSource whose watches the test feeds and whose reads it counts.
type fakeGuests struct {
	mu      sync.Mutex
	reports map[int]xen.GuestReport
	names   map[int]string
	reads   map[int]int
}

func (f *fakeGuests) WatchDomains(ctx context.Context, _ func(string)) error {
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeGuests) ReadGuest(_ context.Context, id int) (xen.GuestReport, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads[id]++
	if _, ok := f.names[id]; !ok {
		return xen.GuestReport{}, "", xen.ErrNoSuchPath
	}
	return f.reports[id], f.names[id], nil
}

func (f *fakeGuests) Neighbors(context.Context) ([]hostnet.Neighbor, error) { return nil, nil }

func (f *fakeGuests) WatchNeighbors(ctx context.Context, _ func(hostnet.Event)) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestInterestingPaths(t *testing.T) {
	for p, want := range map[string]bool{
		"attr/vif/0/ipv4/0": true, "attr/PVAddons/MajorVersion": true, "data/os_name": true, "console/vnc-port": true,
		"attr": false, "data": false, "data/xenclone/ready": false, "device/vif/0/state": false, "memory/target": false,
	} {
		if interesting(p) != want {
			t.Errorf("interesting(%q) = %v", p, !want)
		}
	}
}

// TestGuestWatcherReadsOnChangeWithinBudget: a change to a watched domain's agent keys is read
// after the settle time, once for a burst; a guest that keeps changing its keys is read at
// most readBurst times at once and then once per readRefill; changes to domains that are no
// target are not read.
func TestGuestWatcherReadsOnChangeWithinBudget(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0))
	src := &fakeGuests{reports: map[int]xen.GuestReport{}, names: map[int]string{5: "dom-a"}, reads: map[int]int{}}
	w := newGuestWatcher(src, clk)
	key := types.NamespacedName{Namespace: "ns", Name: "a"}
	// The watch is up before the domain starts: no initial read.
	w.watchSince = clk.Now()
	obs := w.Observe(guestTarget{Key: key, Domain: "dom-a", DomID: 5, Started: clk.Now().Add(time.Second)})
	g.Expect(obs.Known).To(BeFalse())
	ctx := context.Background()
	w.work(ctx)
	g.Expect(src.reads[5]).To(BeZero(), "a domain started under the watch is read only when it changes")

	fire := func(p string) {
		m := domainPath.FindStringSubmatch(p)
		g.Expect(m).NotTo(BeNil())
		w.mu.Lock()
		if _, seen := w.dirty[5]; !seen && interesting(m[2]) {
			w.dirty[5] = clk.Now()
		}
		w.mu.Unlock()
	}
	src.reports[5] = xen.GuestReport{AgentVersion: "1.0.0", NICs: map[int]xen.NICAddresses{0: {IPv4: []netip.Addr{netip.MustParseAddr("192.0.2.10")}}}}
	fire("/local/domain/5/attr/PVAddons/MajorVersion")
	fire("/local/domain/5/attr/vif/0/ipv4/0")
	w.work(ctx)
	g.Expect(src.reads[5]).To(BeZero(), "still settling")
	clk.Step(w.settle)
	w.work(ctx)
	g.Expect(src.reads[5]).To(Equal(1), "one read for the burst")
	g.Expect(w.events).To(HaveLen(1), "the clone is woken")
	<-w.events
	obs = w.Observe(guestTarget{Key: key, Domain: "dom-a", DomID: 5})
	g.Expect(obs.ReportRead).To(BeTrue())
	g.Expect(obs.Report.AgentVersion).To(Equal("1.0.0"))

	// A guest flapping its keys: 4 more reads from the burst budget, then one per refill.
	for i := range 10 {
		src.reports[5] = xen.GuestReport{AgentVersion: "v" + string(rune('a'+i))}
		fire("/local/domain/5/attr/PVAddons/MajorVersion")
		clk.Step(w.settle)
		w.work(ctx)
	}
	g.Expect(src.reads[5]).To(Equal(readBurst), "the burst budget")
	clk.Step(readRefill)
	w.work(ctx)
	g.Expect(src.reads[5]).To(Equal(readBurst+1), "one more after a refill")

	w.mu.Lock()
	w.dirty[9] = clk.Now()
	w.mu.Unlock()
	clk.Step(11 * time.Second)
	w.work(ctx)
	g.Expect(src.reads[9]).To(BeZero(), "not a target")
	w.mu.Lock()
	_, kept := w.dirty[9]
	w.mu.Unlock()
	g.Expect(kept).To(BeFalse(), "a stale change of a stranger is forgotten")

	w.Forget(key)
	g.Expect(w.targets).To(BeEmpty())
}

// TestGuestWatcherNeighbors: the neighbour table's entries for a NIC's MAC on its bridge are
// its addresses; removals (which may name no MAC) and moves take them away.
func TestGuestWatcherNeighbors(t *testing.T) {
	g := NewWithT(t)
	w := newGuestWatcher(&fakeGuests{}, clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0)))
	nics := []vmv1alpha1.InterfaceStatus{{Index: 0, MAC: "00:16:3e:00:00:01", Bridge: "xenbr0"}}
	t0 := guestTarget{Key: types.NamespacedName{Name: "a"}, Domain: "dom-a", DomID: 3, NICs: nics}
	w.Observe(t0)
	ev := func(line string) {
		e, ok := hostnet.ParseEvent(line)
		g.Expect(ok).To(BeTrue(), line)
		w.neighborEvent(e)
	}
	ev("192.0.2.10 dev xenbr0 lladdr 00:16:3e:00:00:01 REACHABLE")
	ev("192.0.2.99 dev xenbr1 lladdr 00:16:3e:00:00:01 REACHABLE") // another bridge: not this NIC
	ev("fe80::216:3eff:fe00:1 dev xenbr0 lladdr 00:16:3e:00:00:01 STALE")
	obs := w.Observe(t0)
	g.Expect(obs.Neighbors[0]).To(Equal([]netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("fe80::216:3eff:fe00:1")}))
	gs := GuestStatusFrom(obs, nics)
	g.Expect(gs.IP).To(Equal("192.0.2.10"))
	g.Expect(gs.Interfaces[0].Source).To(Equal(vmv1alpha1.AddressFromNeighborTable))

	ev("192.0.2.10 dev xenbr0 FAILED")
	ev("192.0.2.50 dev xenbr0 lladdr 00:16:3e:00:00:02 REACHABLE")
	ev("fe80::216:3eff:fe00:1 dev xenbr0 lladdr 00:16:3e:00:00:02 STALE") // moved to another MAC
	obs = w.Observe(t0)
	g.Expect(obs.Neighbors[0]).To(BeEmpty())
	g.Expect(GuestStatusFrom(obs, nics)).To(BeNil())
}

func TestDecideGuestReady(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	agent := guestObservation{Report: xen.GuestReport{AgentVersion: "1.0.0"}}
	withIP := &vmv1alpha1.GuestStatus{IP: "192.0.2.10"}
	for _, tc := range []struct {
		name   string
		probe  vmv1alpha1.GuestProbe
		obs    guestObservation
		g      *vmv1alpha1.GuestStatus
		after  time.Duration
		was    *metav1.Condition
		status metav1.ConditionStatus
		reason string
	}{
		{"default probe: up when running", "", guestObservation{}, nil, 0, nil, metav1.ConditionTrue, ReasonGuestUp},
		{"agent probe, no report yet", vmv1alpha1.GuestProbeGuestAgent, guestObservation{}, nil, time.Minute, nil, metav1.ConditionFalse, ReasonWaitingForGuest},
		{"agent probe, reported", vmv1alpha1.GuestProbeGuestAgent, agent, nil, time.Minute, nil, metav1.ConditionTrue, ReasonGuestUp},
		{"agent probe, silent past the timeout", vmv1alpha1.GuestProbeGuestAgent, guestObservation{}, nil, GuestUpTimeout, nil, metav1.ConditionFalse, ReasonGuestNotResponding},
		{"tcp, no address", vmv1alpha1.GuestProbeTCP, guestObservation{}, nil, time.Minute, nil, metav1.ConditionFalse, ReasonWaitingForGuest},
		{"tcp, not answering", vmv1alpha1.GuestProbeTCP, guestObservation{}, withIP, time.Minute, nil, metav1.ConditionFalse, ReasonWaitingForGuest},
		{"tcp, answered", vmv1alpha1.GuestProbeTCP, guestObservation{TCPUp: true, TCPAddr: "192.0.2.10:22"}, withIP, time.Minute, nil, metav1.ConditionTrue, ReasonGuestUp},
		{"up once, up for the run (a paused standby)", vmv1alpha1.GuestProbeTCP, guestObservation{}, nil, time.Hour,
			&metav1.Condition{Status: metav1.ConditionTrue, Reason: ReasonGuestUp, Message: "port 22 answers"}, metav1.ConditionTrue, ReasonGuestUp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := DecideGuestReady(tc.probe, 22, tc.obs, tc.g, start, start.Add(tc.after), tc.was)
			if d.Status != tc.status || d.Reason != tc.reason {
				t.Fatalf("got %s %s (%s)", d.Status, d.Reason, d.Message)
			}
			if d.Status == metav1.ConditionFalse && d.Reason == ReasonWaitingForGuest && d.Recheck != GuestUpTimeout-tc.after {
				t.Errorf("recheck in %s, want at the timeout", d.Recheck)
			}
		})
	}
	d := DecideGuestReady(vmv1alpha1.GuestProbeGuestAgent, 0, guestObservation{Trouble: "xenstore-watch failed: boom"}, nil, start, start, nil)
	if d.Status != metav1.ConditionFalse || !containsAll(d.Message, "xenstore-watch failed: boom") {
		t.Errorf("trouble must reach the message: %+v", d)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
