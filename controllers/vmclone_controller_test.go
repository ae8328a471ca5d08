package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hack/testenv"
)

func condition(c *vmv1alpha1.VMClone, typ string) metav1.Condition {
	if cond := meta.FindStatusCondition(c.Status.Conditions, typ); cond != nil {
		return *cond
	}
	return metav1.Condition{}
}

func TestCloneBindsToLiveHostWithTemplate(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	newHost(t, 65536, nil)                 // lacks the template
	newHost(t, 65536, []string{tmpl.Name}) // its agent stops renewing: lost a grace later
	fakeClock.Step(DefaultHeartbeatGrace + time.Second)
	good := newHost(t, 2048, []string{tmpl.Name})

	c := newClone(t, ns, tmpl.Name)
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(c.Status.NodeName).To(Equal(good.Name))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	// Binding is one status write: the agents select on status.nodeName, no label follows.
	g.Expect(c.Labels).To(BeEmpty(), "xenclone writes no labels")
	g.Expect(c.Status.BindingGeneration).To(Equal(int64(1)))
	var onGood vmv1alpha1.VMCloneList
	g.Expect(k8sClient.List(context.Background(), &onGood, client.InNamespace(ns),
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector(vmv1alpha1.NodeNameField, good.Name)})).To(Succeed())
	g.Expect(onGood.Items).To(HaveLen(1), "the API server selects clones on status.nodeName")

	g.Expect(c.Status.UUID).To(Equal(string(c.UID)))
	g.Expect(c.Status.Hostname).To(Equal(c.Name))
	g.Expect(c.Status.Interfaces).To(HaveLen(1))
	g.Expect(c.Status.Interfaces[0].MAC).To(MatchRegexp(`^00:16:3e(:[0-9a-f]{2}){3}$`))
	// No agent has reported: the phase is the API server's default, written by nobody.
	g.Expect(c.Status.Phase).To(Equal(vmv1alpha1.PhasePending))
	g.Expect(c.Status.Timestamps.Scheduled).NotTo(BeNil())
	sched := condition(c, vmv1alpha1.ConditionScheduled)
	g.Expect(sched.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(sched.Reason).To(Equal(ReasonScheduled))
	g.Expect(sched.ObservedGeneration).To(Equal(c.Generation))
	ready := condition(c, vmv1alpha1.ConditionReady)
	g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(ready.Reason).To(Equal(ReasonWaitingForHost))
	// The user's spec is untouched (GitOps sees no drift).
	g.Expect(c.Spec.Placement).To(BeNil())
	g.Expect(c.Spec.NICs).To(BeEmpty())
	// Every status field the controller wrote is owned by its field manager.
	g.Expect(managersOf(c)).To(ContainElement(FieldManager))
}

func managersOf(o client.Object) []string {
	var ms []string
	for _, f := range o.GetManagedFields() {
		ms = append(ms, f.Manager+"/"+f.Subresource)
		ms = append(ms, f.Manager)
	}
	return ms
}

func TestUnschedulableSaysWhyAndRetriesWhenCapacityChanges(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	small := newHost(t, 200, []string{tmpl.Name})
	c := newClone(t, ns, tmpl.Name)

	g.Eventually(func(g Gomega) {
		get(g, c)
		s := condition(c, vmv1alpha1.ConditionScheduled)
		g.Expect(s.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(s.Reason).To(Equal(ReasonUnschedulable))
		g.Expect(s.Message).To(ContainSubstring("1 has 200 MiB free < 512 MiB"))
		g.Expect(c.Status.Phase).To(Equal(vmv1alpha1.PhasePending))
		g.Expect(condition(c, vmv1alpha1.ConditionReady).Reason).To(Equal(ReasonUnschedulable))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(eventsFor(g, ns, c.Name)).To(ContainElement(ReasonUnschedulable))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// The agent reports memory freed: the pending clone is placed without being touched.
	get(g, small)
	reportHost(t, small, func(st *vmv1alpha1.XenHostStatus) { st.Memory.FreeMiB = 4096 })
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(c.Status.NodeName).To(Equal(small.Name))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

func eventsFor(g Gomega, ns, name string) []string {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

func TestTemplateAndNamespaceRules(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	other := newNamespace(t)
	tmpl := newTemplate(t, "512Mi", func(tm *vmv1alpha1.VMTemplate) { tm.Spec.AllowedNamespaces = []string{other} })
	newHost(t, 8192, []string{tmpl.Name})

	missing := newClone(t, ns, "no-such-template")
	refused := newClone(t, ns, tmpl.Name)
	allowed := newClone(t, other, tmpl.Name)
	g.Eventually(func(g Gomega) {
		get(g, missing)
		get(g, refused)
		get(g, allowed)
		g.Expect(condition(missing, vmv1alpha1.ConditionScheduled).Reason).To(Equal(ReasonTemplateNotFound))
		g.Expect(condition(refused, vmv1alpha1.ConditionScheduled).Reason).To(Equal(ReasonNamespaceNotAllowed))
		g.Expect(condition(refused, vmv1alpha1.ConditionScheduled).Message).To(ContainSubstring("spec.allowedNamespaces"))
		g.Expect(allowed.Status.NodeName).NotTo(BeEmpty())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(missing.Status.NodeName).To(BeEmpty())
	g.Expect(refused.Status.NodeName).To(BeEmpty())

	// namespaceSelector: labelling the namespace admits its waiting clone.
	bySel := newTemplate(t, "512Mi", func(tm *vmv1alpha1.VMTemplate) {
		tm.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"xenclone.dev/team": "qa"}}
	})
	newHost(t, 8192, []string{bySel.Name})
	waiting := newClone(t, ns, bySel.Name)
	g.Eventually(func(g Gomega) {
		get(g, waiting)
		g.Expect(condition(waiting, vmv1alpha1.ConditionScheduled).Reason).To(Equal(ReasonNamespaceNotAllowed))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	nsObj := &corev1.Namespace{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
	nsObj.Labels["xenclone.dev/team"] = "qa"
	g.Expect(k8sClient.Update(context.Background(), nsObj)).To(Succeed())
	g.Eventually(func(g Gomega) {
		get(g, waiting)
		g.Expect(waiting.Status.NodeName).NotTo(BeEmpty())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestBurstOf200NeverOvercommits creates 200 clones at once against four hosts with room for
// 60 of them and checks, once the controller settles, that no host got more than fits, that
// every host is full, that the rest say why, and that no MAC or UUID repeats.
func TestBurstOf200NeverOvercommits(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	capacity := map[string]int{}
	for _, spec := range []struct {
		free int64
		opts []hostOpt
		fits int
	}{
		{free: 8192, fits: 16},
		{free: 4096 + 1024, opts: []hostOpt{reserved("1Gi")}, fits: 8},
		{free: 65536, opts: []hostOpt{maxClones(20)}, fits: 20},
		{free: 65536, opts: []hostOpt{vgFree(16 << 30)}, fits: 16},
	} {
		h := newHost(t, spec.free, []string{tmpl.Name}, spec.opts...)
		capacity[h.Name] = spec.fits
	}

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &vmv1alpha1.VMClone{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("burst-%03d", i)},
				Spec:       vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: tmpl.Name}},
			}
			if err := k8sClient.Create(ctx, c); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var list vmv1alpha1.VMCloneList
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(200))
		for _, c := range list.Items {
			s := condition(&c, vmv1alpha1.ConditionScheduled)
			g.Expect(s.Status).NotTo(BeEmpty(), "%s not decided yet", c.Name)
		}
	}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	perHost := map[string]int{}
	macs := map[string]string{}
	uuids := map[string]string{}
	unschedulable := 0
	for _, c := range list.Items {
		if c.Status.NodeName == "" {
			unschedulable++
			g.Expect(condition(&c, vmv1alpha1.ConditionScheduled).Message).To(ContainSubstring("0/"))
		} else {
			perHost[c.Status.NodeName]++
		}
		for _, i := range c.Status.Interfaces {
			g.Expect(macs).NotTo(HaveKey(i.MAC), "MAC %s shared by %s and %s", i.MAC, macs[i.MAC], c.Name)
			macs[i.MAC] = c.Name
		}
		g.Expect(c.Status.UUID).NotTo(BeEmpty())
		g.Expect(uuids).NotTo(HaveKey(c.Status.UUID))
		uuids[c.Status.UUID] = c.Name
	}
	for h, fits := range capacity {
		g.Expect(perHost[h]).To(Equal(fits), "host %s: %d clones, room for %d (all: %v)", h, perHost[h], fits, perHost)
	}
	g.Expect(unschedulable).To(Equal(200 - 60))
	g.Expect(macs).To(HaveLen(200))
	t.Logf("placed %v, %d unschedulable, %d distinct MACs", perHost, unschedulable, len(macs))
}

func TestLifetimeDelete(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	// Creation timestamps come from the API server's real clock: start the controller's
	// clock there so the lifetime is not already over.
	fakeClock.SetTime(time.Now())
	c := newClone(t, ns, tmpl.Name, func(c *vmv1alpha1.VMClone) {
		c.Spec.Lifetime = &vmv1alpha1.Lifetime{ExpireAfter: metav1.Duration{Duration: time.Hour}}
	})
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(c.Status.ExpiresAt).NotTo(BeNil())
		g.Expect(c.Status.ExpiresAt.Time).To(BeTemporally("==", c.CreationTimestamp.Add(time.Hour)))
		g.Expect(condition(c, vmv1alpha1.ConditionExpired).Status).To(Equal(metav1.ConditionFalse))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// A clone that never found its template expires all the same.
	orphan := newClone(t, ns, "no-such-template", func(c *vmv1alpha1.VMClone) {
		c.Spec.Lifetime = &vmv1alpha1.Lifetime{ExpireAfter: metav1.Duration{Duration: time.Hour}}
	})
	g.Eventually(func(g Gomega) {
		get(g, orphan)
		g.Expect(orphan.Status.ExpiresAt).NotTo(BeNil())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Move the controller's clock past the expiry and wake the clones (in production the
	// reconcile requeued for the exact expiry time does this).
	fakeClock.Step(2 * time.Hour)
	for _, x := range []*vmv1alpha1.VMClone{c, orphan} {
		poke(t, x)
		g.Eventually(func() bool {
			err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(x), &vmv1alpha1.VMClone{})
			return err != nil && client.IgnoreNotFound(err) == nil
		}).WithTimeout(eventually).WithPolling(poll).Should(BeTrue(), "expired clone %s not deleted", x.Name)
	}
	g.Eventually(func(g Gomega) {
		g.Expect(eventsFor(g, ns, c.Name)).To(ContainElement(ReasonLifetimeEnded))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

func TestLifetimeStop(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	fakeClock.SetTime(time.Now())
	c := newClone(t, ns, tmpl.Name, func(c *vmv1alpha1.VMClone) {
		c.Spec.Lifetime = &vmv1alpha1.Lifetime{ExpireAfter: metav1.Duration{Duration: 30 * time.Minute}, OnExpiry: vmv1alpha1.ExpiryStop}
	})
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(c.Status.ExpiresAt).NotTo(BeNil())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	fakeClock.Step(time.Hour)
	poke(t, c)
	g.Eventually(func(g Gomega) {
		get(g, c)
		e := condition(c, vmv1alpha1.ConditionExpired)
		g.Expect(e.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(e.Reason).To(Equal(ReasonLifetimeEnded))
		g.Expect(e.Message).To(ContainSubstring("onExpiry: Stop"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	// Stopping never rewrites the user's spec: the agent honours the Expired condition.
	g.Expect(c.Spec.RunStrategy).To(Equal(vmv1alpha1.RunStrategyAlways))
	g.Expect(c.DeletionTimestamp).To(BeNil())
	g.Eventually(func(g Gomega) {
		g.Expect(eventsFor(g, ns, c.Name)).To(ContainElement(ReasonLifetimeEnded))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// poke changes an annotation so the controller reconciles the clone now.
func poke(t *testing.T, c *vmv1alpha1.VMClone) {
	t.Helper()
	patch := client.RawPatch("application/merge-patch+json",
		fmt.Appendf(nil, `{"metadata":{"annotations":{"test.xenclone.dev/poke":"%d"}}}`, time.Now().UnixNano()))
	// NotFound is fine: something else already woke the clone and it expired.
	if err := k8sClient.Patch(context.Background(), c, patch); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
}

// TestOneWriterPerStatusField plays the host agent with its own field manager: it reports the
// host's state; the controller derives Ready from it and never writes a field the agent writes
// (the managed fields of the two managers are disjoint), and a report of an earlier binding
// counts for nothing.
func TestOneWriterPerStatusField(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	h := newHost(t, 8192, []string{tmpl.Name})
	c := newClone(t, ns, tmpl.Name)
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(c.Status.NodeName).To(Equal(h.Name))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	mac := c.Status.Interfaces[0].MAC

	running := func(st string) map[string]any {
		now := metav1.Now().UTC().Format(time.RFC3339)
		cond := func(typ, st string) map[string]any {
			return map[string]any{"type": typ, "status": st, "reason": "Done", "message": "ok", "lastTransitionTime": now}
		}
		return map[string]any{"phase": string(vmv1alpha1.PhaseRunning), "message": "domain up",
			"domain": map[string]any{"name": "xc-" + c.Name, "id": int64(7), "state": "-b----"},
			"conditions": []any{cond(vmv1alpha1.ConditionVolumeReady, "True"), cond(vmv1alpha1.ConditionGuestPrepared, "True"),
				cond(vmv1alpha1.ConditionDomainRunning, st)}}
	}
	agentReport(g, c, running("True"))
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(condition(c, vmv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(condition(c, vmv1alpha1.ConditionReady).Reason).To(Equal(ReasonRunning))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(c.Status.Phase).To(Equal(vmv1alpha1.PhaseRunning))
	g.Expect(c.Status.NodeName).To(Equal(h.Name))
	g.Expect(c.Status.Interfaces[0].MAC).To(Equal(mac))

	// Every status field has one manager: what the controller applies and what the agent
	// applies never overlap (server-side apply would list a field under both if both set it).
	owned := map[string]map[string]bool{}
	for _, mf := range c.ManagedFields {
		if mf.Subresource != "status" || mf.FieldsV1 == nil {
			continue
		}
		var tree map[string]any
		g.Expect(json.Unmarshal(mf.FieldsV1.Raw, &tree)).To(Succeed())
		if owned[mf.Manager] == nil {
			owned[mf.Manager] = map[string]bool{}
		}
		collectLeaves(tree, "", owned[mf.Manager])
	}
	g.Expect(owned).To(HaveKey(FieldManager))
	g.Expect(owned).To(HaveKey("xenclone-hostagent"))
	for f := range owned[FieldManager] {
		g.Expect(owned["xenclone-hostagent"]).NotTo(HaveKey(f), "status field %s has two writers", f)
	}
	g.Expect(owned["xenclone-hostagent"]).To(HaveKey(".f:status.f:phase"))
	g.Expect(owned[FieldManager]).To(HaveKey(".f:status.f:nodeName"))

	// The domain stops: Ready follows the agent's report.
	agentReport(g, c, running("False"))
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(condition(c, vmv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// A report that describes another binding (a host the clone has left) is not believed.
	agentReport(g, c, running("True"))
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": vmv1alpha1.GroupVersion.String(), "kind": "VMClone",
		"metadata": map[string]any{"namespace": c.Namespace, "name": c.Name},
		"status":   map[string]any{"observedBindingGeneration": c.Status.BindingGeneration + 5},
	}}
	g.Expect(k8sClient.Status().Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner("test-old-host"), client.ForceOwnership)).To(Succeed())
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(condition(c, vmv1alpha1.ConditionReady).Reason).To(Equal(ReasonWaitingForHost))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// collectLeaves adds the paths of a managedFields tree's leaves to out.
func collectLeaves(tree map[string]any, prefix string, out map[string]bool) {
	for k, v := range tree {
		if k == "." {
			continue
		}
		sub, ok := v.(map[string]any)
		if !ok || len(sub) == 0 {
			out[prefix+"."+k] = true
			continue
		}
		if strings.HasPrefix(k, "k:") {
			// A list item (a condition by type): its fields are the item's.
			out[prefix+"."+k] = true
			continue
		}
		collectLeaves(sub, prefix+"."+k, out)
	}
}

// TestNodeLossMarksClonesUnknown: a stale heartbeat turns the host's clones' Ready Unknown
// with reason NodeLost and an event; a renewed heartbeat brings them back.
func TestNodeLossMarksClonesUnknown(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	h := newHost(t, 8192, []string{tmpl.Name})
	c := newClone(t, ns, tmpl.Name)
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(c.Status.NodeName).To(Equal(h.Name))
		g.Expect(condition(c, vmv1alpha1.ConditionReady).Reason).To(Equal(ReasonWaitingForHost))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// The agent stops renewing; two minutes pass on the controller's clock.
	fakeClock.Step(2 * time.Minute)
	touchLease(t, h.Name)
	g.Eventually(func(g Gomega) {
		get(g, c)
		r := condition(c, vmv1alpha1.ConditionReady)
		g.Expect(r.Status).To(Equal(metav1.ConditionUnknown))
		g.Expect(r.Reason).To(Equal(ReasonNodeLost))
		g.Expect(r.Message).To(ContainSubstring(h.Name))
		g.Expect(eventsFor(g, ns, c.Name)).To(ContainElement(ReasonNodeLost))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	// Binding is kept: the clone's disk is on that host.
	g.Expect(c.Status.NodeName).To(Equal(h.Name))

	renewLease(t, h.Name, fakeClock.Now())
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(condition(c, vmv1alpha1.ConditionReady).Reason).To(Equal(ReasonWaitingForHost))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

func TestPinnedMACConflict(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	newHost(t, 8192, []string{tmpl.Name})
	first := newClone(t, ns, tmpl.Name, func(c *vmv1alpha1.VMClone) { c.Spec.NICs = []vmv1alpha1.NIC{{MAC: "00:16:3e:12:34:56"}} })
	g.Eventually(func(g Gomega) {
		get(g, first)
		g.Expect(first.Status.Interfaces).To(HaveLen(1))
		g.Expect(first.Status.Interfaces[0].MAC).To(Equal("00:16:3e:12:34:56"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	second := newClone(t, ns, tmpl.Name, func(c *vmv1alpha1.VMClone) { c.Spec.NICs = []vmv1alpha1.NIC{{MAC: "00:16:3e:12:34:56"}} })
	g.Eventually(func(g Gomega) {
		get(g, second)
		s := condition(second, vmv1alpha1.ConditionScheduled)
		g.Expect(s.Reason).To(Equal(ReasonMACConflict))
		g.Expect(s.Message).To(ContainSubstring(first.Name))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(second.Status.NodeName).To(BeEmpty())
}

func runtimeToUnstructured(obj any) (map[string]any, error) {
	return runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
}

// TestNodeLossReschedulesOptedInClones: after the reschedule delay, a clone that opted in
// moves to a live host with the same identity; one that did not stays bound, Unknown.
func TestNodeLossReschedulesOptedInClones(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	lost := newHost(t, 8192, []string{tmpl.Name})
	disposable := newClone(t, ns, tmpl.Name, func(c *vmv1alpha1.VMClone) {
		c.Spec.Placement = &vmv1alpha1.Placement{OnNodeLost: vmv1alpha1.NodeLostReschedule}
	})
	pet := newClone(t, ns, tmpl.Name)
	g.Eventually(func(g Gomega) {
		get(g, disposable)
		get(g, pet)
		g.Expect(disposable.Status.NodeName).To(Equal(lost.Name))
		g.Expect(pet.Status.NodeName).To(Equal(lost.Name))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	markRunning(g, disposable)
	uuid, mac := disposable.Status.UUID, disposable.Status.Interfaces[0].MAC

	spare := newHost(t, 8192, []string{tmpl.Name})
	// The lost host's agent stops renewing, for longer than grace + the reschedule delay (which
	// covers its fence-after + margin) on the controller's clock; the spare's keeps renewing.
	fakeClock.Step(DefaultHeartbeatGrace + DefaultNodeLostRescheduleAfter + time.Minute)
	renewLease(t, spare.Name, fakeClock.Now())
	touchLease(t, lost.Name)

	g.Eventually(func(g Gomega) {
		get(g, disposable)
		g.Expect(disposable.Status.NodeName).To(Equal(spare.Name))
		g.Expect(disposable.Status.BindingGeneration).To(Equal(int64(2)))
		// The lost host's report stays until the new host's agent replaces it, but it is
		// marked as binding 1's and counts for nothing: no controller write removes it.
		g.Expect(disposable.Status.ObservedBindingGeneration).To(Equal(int64(1)))
		g.Expect(disposable.HostReportCurrent()).To(BeFalse())
		g.Expect(condition(disposable, vmv1alpha1.ConditionReady).Reason).To(Equal(ReasonWaitingForHost))
		g.Expect(eventsFor(g, ns, disposable.Name)).To(ContainElement(ReasonRescheduled))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(disposable.Status.UUID).To(Equal(uuid))
	g.Expect(disposable.Status.Interfaces).To(HaveLen(1))
	g.Expect(disposable.Status.Interfaces[0].MAC).To(Equal(mac), "identity kept across the move")

	get(g, pet)
	g.Expect(pet.Status.NodeName).To(Equal(lost.Name))
	g.Expect(condition(pet, vmv1alpha1.ConditionReady).Reason).To(Equal(ReasonNodeLost))
}

// TestNodeLossReschedulePausedWhileMostHostsLost: with most hosts lost at once (what an API
// server outage or a partition of the control plane looks like), opted-in clones stay where
// they are and say why; once enough hosts report again, the clone on the one really lost host
// moves.
func TestNodeLossReschedulePausedWhileMostHostsLost(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	lost := newHost(t, 8192, []string{tmpl.Name})
	// The deprecated annotation still works.
	disposable := newClone(t, ns, tmpl.Name, func(c *vmv1alpha1.VMClone) {
		c.Annotations = map[string]string{OnNodeLostAnnotation: OnNodeLostReschedule}
	})
	g.Eventually(func(g Gomega) {
		get(g, disposable)
		g.Expect(disposable.Status.NodeName).To(Equal(lost.Name))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	markRunning(g, disposable)

	alsoSilent := newHost(t, 8192, []string{tmpl.Name})
	reporting := newHost(t, 8192, []string{tmpl.Name}) // the only host still reporting
	// Two agents stop renewing, for longer than grace + the reschedule delay.
	fakeClock.Step(DefaultHeartbeatGrace + DefaultNodeLostRescheduleAfter + time.Minute)
	renewLease(t, reporting.Name, fakeClock.Now())
	touchLease(t, alsoSilent.Name)
	touchLease(t, lost.Name)

	g.Eventually(func(g Gomega) {
		get(g, disposable)
		g.Expect(eventsFor(g, ns, disposable.Name)).To(ContainElement(ReasonReschedulePaused))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Consistently(func(g Gomega) {
		get(g, disposable)
		g.Expect(disposable.Status.NodeName).To(Equal(lost.Name), "2 of 3 hosts lost: nothing moves")
		g.Expect(eventsFor(g, ns, disposable.Name)).NotTo(ContainElement(ReasonRescheduled))
	}).WithTimeout(3 * time.Second).WithPolling(poll).Should(Succeed())

	// The second host reports again: 1 of 3 lost is a host failure, and the clone moves (the
	// poke stands in for the paused clone's requeue a grace later).
	renewLease(t, alsoSilent.Name, fakeClock.Now())
	poke(t, disposable)
	g.Eventually(func(g Gomega) {
		get(g, disposable)
		g.Expect(disposable.Status.NodeName).NotTo(BeEmpty())
		g.Expect(disposable.Status.NodeName).NotTo(Equal(lost.Name))
		g.Expect(eventsFor(g, ns, disposable.Name)).To(ContainElement(ReasonRescheduled))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestLostHostIsNotReady: a XenHost whose agent stopped renewing its heartbeat shows Ready
// Unknown (HeartbeatLost) — the agent, which writes Ready, cannot — and its agent's next report
// after it returns takes Ready back.
func TestLostHostIsNotReady(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ctx := context.Background()
	h := newHost(t, 8192, nil)
	ready := func(g Gomega) metav1.Condition {
		var xh vmv1alpha1.XenHost
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: h.Name}, &xh)).To(Succeed())
		c := meta.FindStatusCondition(xh.Status.Conditions, vmv1alpha1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		return *c
	}
	// As the agent reports it.
	agentReady := func() {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": vmv1alpha1.GroupVersion.String(), "kind": "XenHost", "metadata": map[string]any{"name": h.Name},
			"status": map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": "True", "reason": "HostToolsAnswer",
				"message": "xl info answers", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}}},
		}}
		g.Expect(k8sClient.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
			client.FieldOwner("xenclone-hostagent"), client.ForceOwnership)).To(Succeed())
	}
	agentReady()
	g.Consistently(func(g Gomega) {
		g.Expect(ready(g).Status).To(Equal(metav1.ConditionTrue))
	}).WithTimeout(time.Second).WithPolling(poll).Should(Succeed())

	fakeClock.Step(time.Hour) // without a renewal
	touchLease(t, h.Name)
	g.Eventually(func(g Gomega) {
		c := ready(g)
		g.Expect(c.Status).To(Equal(metav1.ConditionUnknown))
		g.Expect(c.Reason).To(Equal(ReasonHeartbeatLost))
		g.Expect(c.Message).To(ContainSubstring("no heartbeat from the hostagent on " + h.Name))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	renewLease(t, h.Name, fakeClock.Now())
	agentReady()
	g.Consistently(func(g Gomega) {
		g.Expect(ready(g).Status).To(Equal(metav1.ConditionTrue), "the agent's report holds once it is back")
	}).WithTimeout(2 * time.Second).WithPolling(poll).Should(Succeed())
}

// A XenHost change wakes only the pending clones it can help: those waiting for capacity whose
// selectors admit the host, and only when something placement reads changed.
func TestPendingClonesForHostWakesOnlyWhoItCanHelp(t *testing.T) {
	nowhere := testTemplate("512Mi")
	nowhere.Name = "nowhere"
	nowhere.Spec.HostSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"no-such": "host"}}
	anywhere := testTemplate("512Mi")
	pending := func(name, tmpl, reason string) *vmv1alpha1.VMClone {
		c := testClone(name)
		c.Spec.TemplateRef.Name = tmpl
		if reason != "" {
			c.Status.Conditions = []metav1.Condition{{Type: vmv1alpha1.ConditionScheduled, Status: metav1.ConditionFalse, Reason: reason}}
		}
		return c
	}
	pinned := pending("pinned-elsewhere", anywhere.Name, ReasonUnschedulable)
	pinned.Spec.Placement = &vmv1alpha1.Placement{NodeName: "xen-99"}
	bound := pending("bound", anywhere.Name, ReasonUnschedulable)
	bound.Status.NodeName = "xen-02"
	objs := []client.Object{nowhere, anywhere, pinned, bound,
		pending("waits-capacity", anywhere.Name, ReasonUnschedulable),
		pending("waits-namespace", anywhere.Name, ReasonNamespaceNotAllowed),
		pending("not-reconciled-yet", anywhere.Name, ""),
		pending("no-host-matches", nowhere.Name, ReasonUnschedulable),
		pending("template-missing", "gone", ReasonTemplateNotFound),
	}
	c := fake.NewClientBuilder().WithScheme(testenv.Scheme()).WithObjects(objs...).
		WithIndex(&vmv1alpha1.VMClone{}, indexCloneNode, func(o client.Object) []string {
			if n := o.(*vmv1alpha1.VMClone).Status.NodeName; n != "" {
				return []string{n}
			}
			return []string{unboundNode}
		}).Build()
	r := &VMCloneReconciler{Client: c}
	names := func(reqs []reconcile.Request) []string {
		var out []string
		for _, q := range reqs {
			out = append(out, q.Name)
		}
		sort.Strings(out)
		return out
	}
	ctx := context.Background()
	old := testHost("xen-01", 200)
	grown := old.DeepCopy()
	grown.Status.Memory.FreeMiB = 4096
	if got := names(r.pendingClonesForHost(ctx, &old, grown)); !reflect.DeepEqual(got, []string{"waits-capacity"}) {
		t.Errorf("capacity grew: woke %v, want [waits-capacity]", got)
	}
	if got := names(r.pendingClonesForHost(ctx, nil, grown)); !reflect.DeepEqual(got, []string{"waits-capacity"}) {
		t.Errorf("host created: woke %v, want [waits-capacity]", got)
	}
	condOnly := old.DeepCopy()
	condOnly.Status.Conditions = []metav1.Condition{{Type: vmv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Reporting"}}
	condOnly.Status.AgentVersion = "v2"
	if got := r.pendingClonesForHost(ctx, &old, condOnly); len(got) != 0 {
		t.Errorf("condition-only write woke %v", names(got))
	}
	// The label that admits the host for the nowhere template: its clone may fit now.
	labelled := old.DeepCopy()
	labelled.Labels["no-such"] = "host"
	if got := names(r.pendingClonesForHost(ctx, &old, labelled)); !reflect.DeepEqual(got, []string{"no-host-matches", "waits-capacity"}) {
		t.Errorf("label added: woke %v, want [no-host-matches waits-capacity]", got)
	}
}

// TestDomainNameGoesToOneOfClonesCreatedAtOnce: clones created together under one
// spec.domainName, with no holder yet, are placed by concurrent workers; the first binding
// holds the name before the cache shows it (the domain-name index has only bound clones and
// those refused a name), so exactly one is bound and the others are refused.
func TestDomainNameGoesToOneOfClonesCreatedAtOnce(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	newHost(t, 65536, []string{tmpl.Name})
	name := vmv1alpha1.DomainName(uniq("burst"))

	clones := make([]*vmv1alpha1.VMClone, 8)
	var wg sync.WaitGroup
	errs := make(chan error, len(clones))
	for i := range clones {
		clones[i] = &vmv1alpha1.VMClone{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uniq("vm")},
			Spec:       vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: tmpl.Name}, DomainName: name},
		}
		wg.Add(1)
		go func(c *vmv1alpha1.VMClone) {
			defer wg.Done()
			errs <- k8sClient.Create(context.Background(), c)
		}(clones[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	decided := func(g Gomega) (bound, refused int) {
		for _, c := range clones {
			get(g, c)
			s := condition(c, vmv1alpha1.ConditionScheduled)
			switch {
			case c.Status.NodeName != "":
				bound++
			case s.Status == metav1.ConditionFalse && s.Reason == ReasonDomainNameTaken:
				refused++
			}
		}
		return bound, refused
	}
	g.Eventually(func(g Gomega) {
		bound, refused := decided(g)
		g.Expect([]int{bound, refused}).To(Equal([]int{1, len(clones) - 1}), "bound, refused")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Consistently(func(g Gomega) {
		bound, _ := decided(g)
		g.Expect(bound).To(Equal(1))
	}).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}

// TestDomainNameTakenUntilTheHolderIsGone: a spec.domainName another bound clone has (here in
// another namespace) is refused before binding, with a condition naming both clones; of several
// clones applied at once under one name exactly one is bound; deleting the holder lets the next
// one in without waiting for a periodic retry.
func TestDomainNameTakenUntilTheHolderIsGone(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	nsA, nsB := newNamespace(t), newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	newHost(t, 65536, []string{tmpl.Name})
	name := vmv1alpha1.DomainName(uniq("shared"))
	withName := func(c *vmv1alpha1.VMClone) { c.Spec.DomainName = name }

	holder := newClone(t, nsA, tmpl.Name, withName)
	g.Eventually(func(g Gomega) {
		get(g, holder)
		g.Expect(holder.Status.NodeName).NotTo(BeEmpty())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Applied together: the name goes to one of them at most, whatever the workers' order.
	var rivals []*vmv1alpha1.VMClone
	for range 4 {
		rivals = append(rivals, newClone(t, nsB, tmpl.Name, withName))
	}
	for _, c := range rivals {
		g.Eventually(func(g Gomega) {
			get(g, c)
			s := condition(c, vmv1alpha1.ConditionScheduled)
			g.Expect(s.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(s.Reason).To(Equal(ReasonDomainNameTaken))
			g.Expect(s.Message).To(ContainSubstring(nsA + "/" + holder.Name))
			g.Expect(s.Message).To(ContainSubstring(nsB + "/" + c.Name))
			g.Expect(s.Message).To(ContainSubstring("another spec.domainName"))
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
		g.Expect(c.Status.NodeName).To(BeEmpty())
	}

	g.Expect(k8sClient.Delete(context.Background(), holder)).To(Succeed())
	bound := func() []string {
		var out []string
		for _, c := range rivals {
			got := &vmv1alpha1.VMClone{}
			if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(c), got); err == nil && got.Status.NodeName != "" {
				out = append(out, got.Name)
			}
		}
		return out
	}
	// Well within the 5-minute backstop retry: the deletion itself wakes the waiting clones.
	g.Eventually(bound).WithTimeout(eventually).WithPolling(poll).Should(HaveLen(1), "the freed name goes to exactly one clone")
	g.Consistently(bound).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(HaveLen(1))
}
