package hostagent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hack/testenv"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/sim"
)

// replaceAgent restarts node's agent with edit applied to its options and the given API
// config, and puts the suite's usual agent back when the test ends.
func replaceAgent(t *testing.T, node string, net *sim.Network, edit func(*hostagent.Options)) {
	t.Helper()
	testenv.Need(t)
	h := hosts[node]
	cfg := restCfg
	if net != nil {
		cfg = net.Config(restCfg)
	}
	killAgent(node)
	if err := startAgentWith(context.Background(), node, h.AgentHost(), cfg, edit); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if net != nil {
			net.Restore()
		}
		killAgent(node)
		if err := startAgent(context.Background(), node, h.AgentHost()); err != nil {
			t.Errorf("restore agent: %v", err)
		}
	})
}

// labelHost sets label=true on node's XenHost until the test ends.
func labelHost(t *testing.T, node, label string) {
	t.Helper()
	patch := func(v any) {
		p, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{label: v}}})
		h := &vmv1alpha1.XenHost{ObjectMeta: metav1.ObjectMeta{Name: node}}
		// The agent creates its XenHost at its first report.
		NewWithT(t).Eventually(func() error {
			return k8sClient.Patch(context.Background(), h, client.RawPatch(types.MergePatchType, p))
		}, timeout, 100*time.Millisecond).Should(Succeed(), "label XenHost %s", node)
	}
	patch("true")
	t.Cleanup(func() { patch(nil) })
}

// eventsOf lists the events about a clone with the given reason.
func eventsOf(g Gomega, c *vmv1alpha1.VMClone, reason string) []eventsv1.Event {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(c.Namespace))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == c.Name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

func running(t *testing.T, node string, c *vmv1alpha1.VMClone) bool {
	t.Helper()
	d, found, err := hosts[node].Xen.Lookup(context.Background(), vmv1alpha1.DomainNameOf(c))
	if err != nil {
		t.Fatal(err)
	}
	return found && !d.State.Dying && !d.State.Shutdown
}

// movingAndStaying starts two Running clones on node from template tpl-<name>: "moving" with
// onNodeLost: Reschedule, "staying" without.
func movingAndStaying(t *testing.T, node, name string) (moving, staying *vmv1alpha1.VMClone) {
	t.Helper()
	template(t, "tpl-"+name)
	ns := newNamespace(t)
	// Reschedule cannot be pinned with nodeName: select the host by a label instead.
	label := "test.xenclone.dev/" + name
	labelHost(t, node, label)
	moving = clone(t, ns, "moving", "tpl-"+name, func(c *vmv1alpha1.VMClone) {
		c.Spec.Placement = &vmv1alpha1.Placement{OnNodeLost: vmv1alpha1.NodeLostReschedule,
			HostSelector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "true"}}}
	})
	staying = clone(t, ns, "staying", "tpl-"+name, func(c *vmv1alpha1.VMClone) {
		c.Spec.Placement = &vmv1alpha1.Placement{NodeName: node}
	})
	return waitPhase(t, moving, vmv1alpha1.PhaseRunning), waitPhase(t, staying, vmv1alpha1.PhaseRunning)
}

// TestAgentFencesRescheduleClonesWhenCutOff: an agent cut off from the API server (its process
// runs on) destroys, once it has not renewed its heartbeat for fence-after, the domain of its
// clone with onNodeLost: Reschedule, which the controller may then start elsewhere; a clone
// that did not opt in keeps running. The fenced clone is not started again while cut off (its
// runStrategy Always would, from the cache); once the network is back and a live read shows it
// still bound here, it runs again, and its DomainRunning condition and an event said Fenced.
func TestAgentFencesRescheduleClonesWhenCutOff(t *testing.T) {
	g := NewWithT(t)
	const node = "xen-b"
	const fenceAfter = 30 * time.Second
	net := &sim.Network{}
	fenceClock := clocktesting.NewFakeClock(time.Now())
	replaceAgent(t, node, net, func(o *hostagent.Options) {
		o.FenceAfter = fenceAfter
		hostagent.SetFenceClock(o, fenceClock)
	})
	moving, staying := movingAndStaying(t, node, "fence")
	before := moving.Status.BindingGeneration

	net.Cut()
	// Just short of fence-after since the last renewal that got through: nothing happens.
	fenceClock.Step(fenceAfter - 2*time.Second)
	g.Consistently(func() bool { return running(t, node, moving) }, 2*time.Second, 100*time.Millisecond).Should(BeTrue())
	first, _ := domainOf(t, moving)
	fenceClock.Step(2 * time.Second)
	g.Eventually(func() bool {
		d, found := domainOf(t, moving)
		return !found || d.ID != first.ID
	}, 10*time.Second, 100*time.Millisecond).Should(BeTrue(), "fence-after without a renewal: the Reschedule clone's domain is destroyed")
	g.Expect(running(t, node, staying)).To(BeTrue(), "a clone that did not opt in keeps running")
	g.Consistently(func() bool { return running(t, node, moving) }, 3*time.Second, 100*time.Millisecond).Should(BeFalse(),
		"no restart while fenced")
	g.Expect(running(t, node, staying)).To(BeTrue())

	net.Restore()
	g.Eventually(func() bool { return running(t, node, moving) }, timeout, 200*time.Millisecond).Should(BeTrue(),
		"renewals succeed again and the clone is still bound here: it runs again")
	g.Eventually(func(g Gomega) {
		got := get(g, moving)
		g.Expect(got.Status.NodeName).To(Equal(node))
		g.Expect(got.Status.BindingGeneration).To(Equal(before))
		cond := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionDomainRunning)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Reason).To(Equal(hostagent.ReasonStarted))
		evs := eventsOf(g, got, vmv1alpha1.ReasonFenced)
		g.Expect(evs).NotTo(BeEmpty(), "the fence is told once the API server answers")
		g.Expect(evs[0].Note).To(And(ContainSubstring("fence-after 30s"), ContainSubstring("still bound here")))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(eventsOf(g, staying, vmv1alpha1.ReasonFenced)).To(BeEmpty())
}

// TestAgentRestartedWhileCutOffFences: an agent restarted while its host is cut off never
// syncs its cache, so only the fence journal it kept on the host tells it what to fence. It
// destroys the Reschedule clone's domain fence-after after the last renewal before the restart
// (not a fresh fence-after from its start: by then the controller may have moved the clone),
// leaves the other clone running, and once the network is back and a live read shows the clone
// still bound here, starts it again. Without the journal nothing is fenced at all.
func TestAgentRestartedWhileCutOffFences(t *testing.T) {
	g := NewWithT(t)
	const node = "xen-b"
	const fenceAfter = 30 * time.Second
	net := &sim.Network{}
	fenceClock := clocktesting.NewFakeClock(time.Now())
	journal := filepath.Join(filepath.Dir(hosts[node].AgentHost().ConfigDir), "fence-journal.json")
	edit := func(o *hostagent.Options) {
		o.FenceAfter = fenceAfter
		hostagent.SetFenceClock(o, fenceClock)
	}
	replaceAgent(t, node, net, edit)
	// The journal holds the fake clock's times: the suite's next agent must not read them.
	t.Cleanup(func() { _ = os.Remove(journal) })
	moving, staying := movingAndStaying(t, node, "journal")
	g.Eventually(func() (string, error) {
		b, err := os.ReadFile(journal)
		return string(b), err
	}, timeout, 100*time.Millisecond).Should(And(ContainSubstring(string(moving.UID)), Not(ContainSubstring(string(staying.UID)))),
		"a renewal after the binding writes the Reschedule clone, and only it, to the journal")
	first, _ := domainOf(t, moving)

	net.Cut()
	killAgent(node)
	g.Expect(startAgentWith(context.Background(), node, hosts[node].AgentHost(), net.Config(restCfg), edit)).To(Succeed())
	fenceClock.Step(fenceAfter / 2)
	g.Consistently(func() bool { return running(t, node, moving) }, 2*time.Second, 100*time.Millisecond).Should(BeTrue(),
		"half a fence-after since the last renewal: nothing yet")
	fenceClock.Step(fenceAfter / 2)
	g.Eventually(func() bool {
		d, found := domainOf(t, moving)
		return !found || d.ID != first.ID
	}, 10*time.Second, 100*time.Millisecond).Should(BeTrue(), "fence-after since the last renewal before the restart: destroyed from the journal")
	g.Expect(running(t, node, staying)).To(BeTrue(), "a clone that did not opt in keeps running")
	g.Consistently(func() bool { return running(t, node, moving) }, 2*time.Second, 100*time.Millisecond).Should(BeFalse())

	net.Restore()
	g.Eventually(func() bool { return running(t, node, moving) }, timeout, 200*time.Millisecond).Should(BeTrue(),
		"the API server answers and the clone is still bound here: it runs again")
	g.Eventually(func(g Gomega) {
		got := get(g, moving)
		g.Expect(got.Status.NodeName).To(Equal(node))
		evs := eventsOf(g, got, vmv1alpha1.ReasonFenced)
		g.Expect(evs).NotTo(BeEmpty(), "the fence is told once the API server answers")
		g.Expect(evs[0].Note).To(ContainSubstring("still bound here"))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(running(t, node, staying)).To(BeTrue())
}

// TestReboundCopyDestroyedAtOnce: a clone running here that gets bound to another host (as a
// reschedule does) has its domain here destroyed within seconds — not after the orphan grace
// period — with a Warning event naming both hosts; its disk stays for orphan collection. The
// same when the agent was down while the clone moved: at its start, before anything else.
func TestReboundCopyDestroyedAtOnce(t *testing.T) {
	const node, other = "xen-b", "xen-a"
	replaceAgent(t, node, nil, func(o *hostagent.Options) { o.OrphanGrace = 10 * time.Minute })
	template(t, "tpl-rebound")

	rebind := func(g Gomega, c *vmv1alpha1.VMClone) {
		patch := fmt.Sprintf(`{"status":{"nodeName":%q,"bindingGeneration":%d}}`, other, c.Status.BindingGeneration+1)
		g.Expect(k8sClient.Status().Patch(context.Background(), c, client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
	}
	check := func(t *testing.T, c *vmv1alpha1.VMClone) {
		g := NewWithT(t)
		g.Eventually(func() bool { return running(t, node, c) }, 10*time.Second, 100*time.Millisecond).Should(BeFalse(),
			"the copy on the old host is destroyed within seconds, not after the 10-minute orphan grace")
		g.Eventually(func(g Gomega) {
			evs := eventsOf(g, c, vmv1alpha1.ReasonDuplicateStopped)
			g.Expect(evs).NotTo(BeEmpty())
			g.Expect(evs[0].Type).To(Equal("Warning"))
			g.Expect(evs[0].Note).To(And(ContainSubstring("on "+node), ContainSubstring("bound to host "+other)))
		}, timeout, 200*time.Millisecond).Should(Succeed())
		g.Expect(ownedLVs(t, node, string(c.UID))).NotTo(BeEmpty(), "the old disk keeps the orphan grace")
	}

	t.Run("while the agent runs", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		c := clone(t, ns, "rebound", "tpl-rebound", func(c *vmv1alpha1.VMClone) {
			c.Spec.Placement = &vmv1alpha1.Placement{NodeName: node}
		})
		c = waitPhase(t, c, vmv1alpha1.PhaseRunning)
		rebind(g, c)
		check(t, c)
	})
	t.Run("while the agent was down", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		c := clone(t, ns, "rebound", "tpl-rebound", func(c *vmv1alpha1.VMClone) {
			c.Spec.Placement = &vmv1alpha1.Placement{NodeName: node}
		})
		c = waitPhase(t, c, vmv1alpha1.PhaseRunning)
		killAgent(node)
		rebind(g, c)
		g.Expect(running(t, node, c)).To(BeTrue())
		g.Expect(startAgentWith(context.Background(), node, hosts[node].AgentHost(), restCfg,
			func(o *hostagent.Options) { o.OrphanGrace = 10 * time.Minute })).To(Succeed())
		check(t, c)
	})
}
