package controllers

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func leaseRenewedAt(at time.Time, annotations map[string]string) *coordinationv1.Lease {
	mt := metav1.NewMicroTime(at)
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "h", Annotations: annotations},
		Spec: coordinationv1.LeaseSpec{RenewTime: &mt}}
}

// TestHeartbeatsOnTheControllersClock: liveness counts from when the controller saw renewTime
// change, on its own clock; the value of renewTime (the agent's clock) never matters.
func TestHeartbeatsOnTheControllersClock(t *testing.T) {
	const grace = 40 * time.Second
	start := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	hb := NewHeartbeats(clk, grace)
	fences := map[string]string{vmv1alpha1.FenceAfterAnnotation: "60s"}
	// The agent's clock is an hour behind the controller's.
	agent := start.Add(-time.Hour)

	// First sight (a controller start): a renewal seen now, however old renewTime is.
	got := hb.Observe("h", leaseRenewedAt(agent, fences))
	if !got.Live || !got.LastRenewalSeen.Equal(start) || !got.StaleAt.Equal(start.Add(grace)) {
		t.Fatalf("first sight: %+v, want live, last renewal seen at %s", got, start)
	}
	if !got.Fences || got.FenceAfter != time.Minute {
		t.Errorf("fence-after 60s: Fences %v FenceAfter %s", got.Fences, got.FenceAfter)
	}
	// The same renewTime again is no renewal: live until exactly one grace after first sight.
	clk.Step(grace - time.Nanosecond)
	if got := hb.Observe("h", leaseRenewedAt(agent, fences)); !got.Live {
		t.Errorf("grace-1ns after the last renewal seen: not live")
	}
	clk.Step(time.Nanosecond)
	if got := hb.Observe("h", leaseRenewedAt(agent, fences)); got.Live || !got.LastRenewalSeen.Equal(start) {
		t.Errorf("exactly grace after the last renewal seen: %+v, want stale since %s", got, start)
	}
	// A renewal — still an hour behind the controller's clock — is live again, from now.
	agent = agent.Add(10 * time.Second)
	renewed := clk.Now()
	if got := hb.Observe("h", leaseRenewedAt(agent, fences)); !got.Live || !got.LastRenewalSeen.Equal(renewed) {
		t.Errorf("renewed an hour behind: %+v, want live since %s", got, renewed)
	}
	// A reader still holding the copy before that renewal is no renewal.
	clk.Step(30 * time.Second)
	if got := hb.Observe("h", leaseRenewedAt(agent.Add(-10*time.Second), fences)); !got.LastRenewalSeen.Equal(renewed) {
		t.Errorf("the previous renewTime again counted as a renewal: last seen %s, want %s", got.LastRenewalSeen, renewed)
	}
	if got := hb.Observe("h", leaseRenewedAt(agent, fences)); !got.LastRenewalSeen.Equal(renewed) {
		t.Errorf("the current renewTime after a stale copy counted as a renewal: last seen %s, want %s", got.LastRenewalSeen, renewed)
	}
	// An agent that jumps an hour ahead and then stops: lost one grace later all the same.
	clk.Step(10 * time.Second)
	ahead := clk.Now().Add(time.Hour)
	hb.Observe("h", leaseRenewedAt(ahead, fences))
	clk.Step(grace)
	if got := hb.Observe("h", leaseRenewedAt(ahead, fences)); got.Live {
		t.Errorf("renewTime an hour ahead but unchanged for a grace: still live")
	}
	// A controller clock that steps back does not make a live host lost.
	clk.SetTime(clk.Now().Add(-time.Hour))
	if got := hb.Observe("h", leaseRenewedAt(ahead.Add(time.Second), fences)); !got.Live {
		t.Errorf("renewal after the controller's clock stepped back: not live")
	}

	// Lease deleted: not live; what the controller knew is kept.
	last := clk.Now()
	clk.Step(time.Second)
	got = hb.Observe("h", nil)
	if got.Live || !got.LeaseMissing || !got.Seen || !got.LastRenewalSeen.Equal(last) || !got.Fences {
		t.Errorf("Lease deleted: %+v, want not live, missing, last renewal seen at %s, still fencing", got, last)
	}
	// Recreated (only a running agent does that), even with the old renewTime: a renewal.
	if got := hb.Observe("h", leaseRenewedAt(ahead.Add(time.Second), fences)); !got.Live || got.LeaseMissing || !got.LastRenewalSeen.Equal(clk.Now()) {
		t.Errorf("Lease recreated: %+v, want live from now", got)
	}

	// Never seen, never renewed, annotations.
	if got := hb.Observe("nobody", nil); got.Live || got.Seen || !got.LeaseMissing {
		t.Errorf("host never seen: %+v", got)
	}
	if got := hb.Observe("blank", &coordinationv1.Lease{}); got.Live || !got.LastRenewalSeen.IsZero() {
		t.Errorf("Lease never renewed: %+v, want not live", got)
	}
	acquired := metav1.NewMicroTime(agent)
	if got := hb.Observe("acquired", &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{AcquireTime: &acquired}}); !got.Live {
		t.Errorf("Lease with only acquireTime: not live")
	}
	for v, wantWhy := range map[string]string{"": "has no", "soon": "not a positive duration", "0s": "not a positive duration", "-1m": "not a positive duration", "90s": ""} {
		ann := map[string]string{vmv1alpha1.FenceAfterAnnotation: v}
		if v == "" {
			ann = nil
		}
		got := hb.Observe("fence-"+v, leaseRenewedAt(agent, ann))
		if wantWhy == "" {
			if !got.Fences || got.FenceAfter != 90*time.Second {
				t.Errorf("fence-after %q: %+v, want fencing after 90s", v, got)
			}
			continue
		}
		if got.Fences || !strings.Contains(got.NotFencingWhy, wantWhy) {
			t.Errorf("fence-after %q: Fences %v, why %q, want not fencing (%s)", v, got.Fences, got.NotFencingWhy, wantWhy)
		}
	}
}

// TestHeartbeatsIgnoreAgentClockSkew: the controller judges hosts by whether their Lease's
// renewTime changes, not by its value. A host whose agent's clock is 10 minutes behind but
// renews stays live (placed on, not NodeLost); one whose clock is 10 minutes ahead and stops
// renewing is lost after one grace of the controller's clock (before, it counted as live for
// 10 minutes more, and the one behind was never live).
func TestHeartbeatsIgnoreAgentClockSkew(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	behind := newHost(t, 8192, []string{tmpl.Name})
	ahead := newHost(t, 8192, []string{tmpl.Name})
	behindClock := fakeClock.Now().Add(-10 * time.Minute)
	aheadClock := fakeClock.Now().Add(10 * time.Minute)
	renew := func() {
		behindClock, aheadClock = behindClock.Add(30*time.Second), aheadClock.Add(30*time.Second)
		renewLease(t, behind.Name, behindClock)
		renewLease(t, ahead.Name, aheadClock)
	}
	renew()
	// Longer than a grace, renewing every 30 s of the controller's clock.
	for range 3 {
		fakeClock.Step(30 * time.Second)
		renew()
	}
	onBehind := newClone(t, ns, tmpl.Name, func(c *vmv1alpha1.VMClone) {
		c.Spec.Placement = &vmv1alpha1.Placement{NodeName: behind.Name}
	})
	onAhead := newClone(t, ns, tmpl.Name, func(c *vmv1alpha1.VMClone) {
		c.Spec.Placement = &vmv1alpha1.Placement{NodeName: ahead.Name}
	})
	for _, c := range []*vmv1alpha1.VMClone{onBehind, onAhead} {
		g.Eventually(func(g Gomega) {
			get(g, c)
			g.Expect(c.Status.NodeName).To(Equal(c.Spec.Placement.NodeName), "placed on its live host: %s", condition(c, vmv1alpha1.ConditionScheduled).Message)
			g.Expect(condition(c, vmv1alpha1.ConditionReady).Reason).To(Equal(ReasonWaitingForHost))
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	}

	// The agent ahead stops renewing; the one behind goes on. One grace later on the
	// controller's clock, the host ahead is lost, whatever its renewTime says.
	fakeClock.Step(30 * time.Second)
	behindClock = behindClock.Add(30 * time.Second)
	renewLease(t, behind.Name, behindClock)
	fakeClock.Step(DefaultHeartbeatGrace - 30*time.Second)
	behindClock = behindClock.Add(DefaultHeartbeatGrace - 30*time.Second)
	renewLease(t, behind.Name, behindClock)
	touchLease(t, ahead.Name)
	g.Eventually(func(g Gomega) {
		get(g, onAhead)
		r := condition(onAhead, vmv1alpha1.ConditionReady)
		g.Expect(r.Status).To(Equal(metav1.ConditionUnknown))
		g.Expect(r.Reason).To(Equal(ReasonNodeLost))
		g.Expect(r.Message).To(ContainSubstring("the last renewal the controller saw"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	poke(t, onBehind)
	g.Consistently(func(g Gomega) {
		get(g, onBehind)
		g.Expect(condition(onBehind, vmv1alpha1.ConditionReady).Reason).To(Equal(ReasonWaitingForHost), "a live host 10 minutes behind is not lost")
	}).WithTimeout(time.Second).WithPolling(poll).Should(Succeed())
}

// TestRescheduleWaitsForFence: a host whose agent fences only after 10 minutes holds its
// rescheduling clone past the normal delay (grace + 5 min) until fence-after + margin, saying
// so; then the clone moves. Before, it moved after the normal delay, possibly while its domain
// still ran on the cut-off host.
func TestRescheduleWaitsForFence(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	lost := newHost(t, 8192, []string{tmpl.Name})
	setFenceAfter(t, lost.Name, "10m")
	c := newClone(t, ns, tmpl.Name, func(c *vmv1alpha1.VMClone) {
		c.Spec.Placement = &vmv1alpha1.Placement{OnNodeLost: vmv1alpha1.NodeLostReschedule}
	})
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(c.Status.NodeName).To(Equal(lost.Name))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	markRunning(g, c)
	spare := newHost(t, 8192, []string{tmpl.Name})
	// The controller saw lost's only renewal (newHost waited for that) with its clock here:
	// nothing has stepped it since, and the fence-after patch is no renewal.
	lastSeen := fakeClock.Now()

	// Past the normal delay, short of fence-after + margin: the clone stays, and says when it moves.
	fakeClock.Step(DefaultHeartbeatGrace + DefaultNodeLostRescheduleAfter + time.Minute)
	renewLease(t, spare.Name, fakeClock.Now())
	touchLease(t, lost.Name)
	moveAt := lastSeen.Add(10*time.Minute + vmv1alpha1.DefaultFenceMargin).UTC().Format(time.RFC3339)
	g.Eventually(func(g Gomega) {
		get(g, c)
		r := condition(c, vmv1alpha1.ConditionReady)
		g.Expect(r.Status).To(Equal(metav1.ConditionUnknown))
		g.Expect(r.Reason).To(Equal(ReasonRescheduleWaitsForFence))
		g.Expect(r.Message).To(ContainSubstring("moves to another host at " + moveAt))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(c.Status.NodeName).To(Equal(lost.Name), "not moved before its host fenced")
	g.Expect(eventsFor(g, ns, c.Name)).NotTo(ContainElement(ReasonRescheduled))

	// Past fence-after + margin: it moves (the poke stands in for its requeue at that time).
	fakeClock.Step(10*time.Minute + vmv1alpha1.DefaultFenceMargin - (DefaultHeartbeatGrace + DefaultNodeLostRescheduleAfter + time.Minute) + time.Second)
	renewLease(t, spare.Name, fakeClock.Now())
	poke(t, c)
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(c.Status.NodeName).To(Equal(spare.Name))
		g.Expect(eventsFor(g, ns, c.Name)).To(ContainElement(ReasonRescheduled))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestRescheduleNeverOffHostThatDoesNotFence: a host whose agent does not declare a
// fence-after (an old agent) never loses its rescheduling clone, however long it is lost; the
// clone says why and what to do. Before, it moved after the reschedule delay.
func TestRescheduleNeverOffHostThatDoesNotFence(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	old := newHost(t, 8192, []string{tmpl.Name})
	setFenceAfter(t, old.Name, "")
	c := newClone(t, ns, tmpl.Name, func(c *vmv1alpha1.VMClone) {
		c.Spec.Placement = &vmv1alpha1.Placement{OnNodeLost: vmv1alpha1.NodeLostReschedule}
	})
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(c.Status.NodeName).To(Equal(old.Name))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	markRunning(g, c)
	spare := newHost(t, 8192, []string{tmpl.Name})

	fakeClock.Step(time.Hour)
	renewLease(t, spare.Name, fakeClock.Now())
	touchLease(t, old.Name)
	g.Eventually(func(g Gomega) {
		get(g, c)
		r := condition(c, vmv1alpha1.ConditionReady)
		g.Expect(r.Status).To(Equal(metav1.ConditionUnknown))
		g.Expect(r.Reason).To(Equal(ReasonHostNotFencing))
		g.Expect(r.Message).To(And(ContainSubstring("does not fence"), ContainSubstring(vmv1alpha1.FenceAfterAnnotation), ContainSubstring("upgrade the hostagent")))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	poke(t, c)
	g.Consistently(func(g Gomega) {
		get(g, c)
		g.Expect(c.Status.NodeName).To(Equal(old.Name), "never moved off a host that does not fence")
	}).WithTimeout(2 * time.Second).WithPolling(poll).Should(Succeed())
	g.Expect(eventsFor(g, ns, c.Name)).NotTo(ContainElement(ReasonRescheduled))
}
