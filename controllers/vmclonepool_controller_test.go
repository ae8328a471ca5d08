package controllers

import (
	"context"
	"sort"
	"testing"

	. "github.com/onsi/gomega"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func poolMembers(g Gomega, pool *vmv1alpha1.VMClonePool) map[string]vmv1alpha1.VMClone {
	var list vmv1alpha1.VMCloneList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(pool.Namespace),
		client.MatchingLabels{vmv1alpha1.PoolLabel: pool.Name})).To(Succeed())
	out := map[string]vmv1alpha1.VMClone{}
	for _, c := range list.Items {
		if c.DeletionTimestamp.IsZero() {
			out[c.Name] = c
		}
	}
	return out
}

func names(m map[string]vmv1alpha1.VMClone) []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func TestPoolScaleAndReplace(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	tmpl := newTemplate(t, "256Mi")
	newHost(t, 16384, []string{tmpl.Name})

	pool := &vmv1alpha1.VMClonePool{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci"},
		Spec: vmv1alpha1.VMClonePoolSpec{
			Replicas: ptrTo(int32(3)),
			Template: vmv1alpha1.VMCloneTemplateSpec{
				Metadata: vmv1alpha1.PoolMemberMetadata{Labels: map[string]string{"team": "qa"}},
				Spec:     vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: tmpl.Name}, Hostname: "runner"},
			},
		},
	}
	g.Expect(k8sClient.Create(ctx, pool)).To(Succeed())
	// Runs before the template's cleanup, which could not finish while the pool recreates members.
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, pool) })

	g.Eventually(func(g Gomega) {
		m := poolMembers(g, pool)
		g.Expect(names(m)).To(Equal([]string{"ci-0", "ci-1", "ci-2"}))
		c := m["ci-1"]
		g.Expect(c.Spec.Hostname).To(Equal("runner-1"))
		g.Expect(c.Labels).To(HaveKeyWithValue(vmv1alpha1.PoolIndexLabel, "1"))
		g.Expect(c.Labels).To(HaveKeyWithValue("team", "qa"))
		g.Expect(metav1.IsControlledBy(&c, pool)).To(BeTrue())
		get(g, pool)
		g.Expect(pool.Status.Replicas).To(BeEquivalentTo(3))
		g.Expect(pool.Status.Selector).To(Equal(vmv1alpha1.PoolLabel + "=ci,!" + vmv1alpha1.ClaimLabel))
		r := meta.FindStatusCondition(pool.Status.Conditions, vmv1alpha1.ConditionReady)
		g.Expect(r).NotTo(BeNil())
		g.Expect(r.Reason).To(Equal(ReasonMembersPending))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// kubectl scale goes through the scale subresource, as a patch: the controller writes the
	// pool's status at any moment, and an update carrying the resourceVersion read here would
	// conflict with that write.
	scale := &autoscalingv1.Scale{}
	g.Expect(k8sClient.SubResource("scale").Get(ctx, pool, scale)).To(Succeed())
	g.Expect(scale.Status.Replicas).To(BeEquivalentTo(3))
	g.Expect(k8sClient.SubResource("scale").Patch(ctx, pool, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":1}}`)),
		client.WithSubResourceBody(scale))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(names(poolMembers(g, pool))).To(Equal([]string{"ci-0"}))
		get(g, pool)
		g.Expect(pool.Status.Replicas).To(BeEquivalentTo(1))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Scale up reuses the lowest free indices.
	g.Expect(k8sClient.Patch(ctx, pool, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":2}}`)))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(names(poolMembers(g, pool))).To(Equal([]string{"ci-0", "ci-1"}))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// A deleted member is replaced.
	g.Expect(k8sClient.Delete(ctx, &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci-0"}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		m := poolMembers(g, pool)
		g.Expect(m).To(HaveLen(2))
		g.Expect(m).To(HaveKey("ci-1"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// A member the agent reports Failed is replaced (spec.replaceFailed defaults to true).
	m := poolMembers(g, pool)
	victim := m["ci-1"]
	g.Eventually(func(g Gomega) {
		v := victim
		get(g, &v)
		g.Expect(v.Status.NodeName).NotTo(BeEmpty())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	agentReport(g, &victim, map[string]any{"phase": string(vmv1alpha1.PhaseFailed), "conditions": []any{}})
	g.Eventually(func(g Gomega) {
		m := poolMembers(g, pool)
		g.Expect(m).To(HaveLen(2))
		for _, c := range m {
			// Replaced by a new object (it may reuse the freed index, hence the name).
			g.Expect(c.UID).NotTo(Equal(victim.UID))
			g.Expect(c.Status.Phase).NotTo(Equal(vmv1alpha1.PhaseFailed))
		}
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Ready when every member is Ready (the agent reports them running).
	for _, c := range poolMembers(g, pool) {
		g.Eventually(func(g Gomega) {
			cc := c
			get(g, &cc)
			g.Expect(cc.Status.NodeName).NotTo(BeEmpty())
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
		markRunning(g, &c)
	}
	g.Eventually(func(g Gomega) {
		get(g, pool)
		g.Expect(pool.Status.ReadyReplicas).To(BeEquivalentTo(2))
		g.Expect(meta.IsStatusConditionTrue(pool.Status.Conditions, vmv1alpha1.ConditionReady)).To(BeTrue())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// markRunning plays the agent reporting a clone's domain running.
func markRunning(g Gomega, c *vmv1alpha1.VMClone) {
	agentReport(g, c, map[string]any{"phase": string(vmv1alpha1.PhaseRunning)})
}

// agentReport plays the host agent of the clone's current binding: it applies report (phase,
// conditions...) as its own status, with VolumeReady, GuestPrepared and DomainRunning True
// unless report has conditions.
func agentReport(g Gomega, c *vmv1alpha1.VMClone, report map[string]any) {
	cur := &vmv1alpha1.VMClone{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(c), cur)).To(Succeed())
	g.Expect(cur.Status.BindingGeneration).NotTo(BeZero(), "the agent reports on bound clones only")
	now := metav1.Now().UTC().Format("2006-01-02T15:04:05Z")
	cond := func(typ string) map[string]any {
		return map[string]any{"type": typ, "status": "True", "reason": "Done", "message": "ok", "lastTransitionTime": now}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": vmv1alpha1.GroupVersion.String(), "kind": "VMClone",
		"metadata": map[string]any{"namespace": c.Namespace, "name": c.Name},
		"status":   report,
	}}
	report["observedBindingGeneration"] = cur.Status.BindingGeneration
	if _, ok := report["conditions"]; !ok {
		report["conditions"] = []any{
			cond(vmv1alpha1.ConditionVolumeReady), cond(vmv1alpha1.ConditionGuestPrepared), cond(vmv1alpha1.ConditionDomainRunning),
		}
	}
	g.Expect(k8sClient.Status().Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner("xenclone-hostagent"), client.ForceOwnership)).To(Succeed())
}

// TestPoolFinalizerAddKeepsAFinalizerAddedMeanwhile: the pool controller adds its finalizer to
// the copy it read; another writer added its own finalizer after that read. The add must not
// drop it (a merge patch replaces the whole list).
func TestPoolFinalizerAddKeepsAFinalizerAddedMeanwhile(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	pool := &vmv1alpha1.VMClonePool{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fin", Finalizers: []string{"example.com/before"}},
		Spec: vmv1alpha1.VMClonePoolSpec{
			Replicas: ptrTo(int32(0)),
			Template: vmv1alpha1.VMCloneTemplateSpec{Spec: vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: "none"}}},
		},
	}
	g.Expect(k8sClient.Create(ctx, pool)).To(Succeed())
	read := pool.DeepCopy() // as created: without the controller's finalizer
	t.Cleanup(func() {
		_ = k8sClient.Patch(ctx, pool, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
		_ = k8sClient.Delete(ctx, pool)
	})

	// Another writer adds its finalizer after that read (the running controller may write
	// meanwhile: read again on a conflict).
	g.Eventually(func() error {
		cur := &vmv1alpha1.VMClonePool{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pool), cur); err != nil {
			return err
		}
		patch := client.MergeFromWithOptions(cur.DeepCopy(), client.MergeFromWithOptimisticLock{})
		cur.Finalizers = append(cur.Finalizers, "example.com/added-meanwhile")
		return k8sClient.Patch(ctx, cur, patch)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	r := &VMClonePoolReconciler{Client: k8sClient}
	_, err := r.ensureFinalizer(ctx, read)
	g.Expect(err).NotTo(HaveOccurred())
	got := &vmv1alpha1.VMClonePool{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pool), got)).To(Succeed())
	g.Expect(got.Finalizers).To(ContainElements("example.com/before", "example.com/added-meanwhile"))
}
