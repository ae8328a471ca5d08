package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func TestTemplatePresenceAndDeletionGuard(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")

	// No host has it yet: Ready False says what to do.
	g.Eventually(func(g Gomega) {
		get(g, tmpl)
		r := meta.FindStatusCondition(tmpl.Status.Conditions, vmv1alpha1.ConditionReady)
		g.Expect(r).NotTo(BeNil())
		g.Expect(r.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(r.Reason).To(Equal(ReasonNoHostHasOrigin))
		g.Expect(r.Message).To(ContainSubstring("create the logical volume"))
		g.Expect(tmpl.Finalizers).To(ContainElement(vmv1alpha1.TemplateFinalizer))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	h1 := newHost(t, 8192, []string{tmpl.Name})
	h2 := newHost(t, 8192, []string{tmpl.Name})
	g.Eventually(func(g Gomega) {
		get(g, tmpl)
		g.Expect(tmpl.Status.ReadyHosts).To(BeEquivalentTo(2))
		r := meta.FindStatusCondition(tmpl.Status.Conditions, vmv1alpha1.ConditionReady)
		g.Expect(r.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(r.Message).To(And(ContainSubstring(h1.Name), ContainSubstring(h2.Name)))
		var present []string
		for _, h := range tmpl.Status.Hosts {
			if h.Present {
				present = append(present, h.NodeName)
			}
		}
		g.Expect(present).To(ContainElements(h1.Name, h2.Name))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	c := newClone(t, ns, tmpl.Name)
	g.Eventually(func(g Gomega) {
		get(g, tmpl)
		g.Expect(tmpl.Status.Clones).To(BeEquivalentTo(1))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Deleting the template is refused while the clone exists, and the condition names it.
	g.Expect(k8sClient.Delete(ctx, tmpl)).To(Succeed())
	g.Eventually(func(g Gomega) {
		get(g, tmpl)
		g.Expect(tmpl.DeletionTimestamp).NotTo(BeNil())
		u := meta.FindStatusCondition(tmpl.Status.Conditions, vmv1alpha1.ConditionTemplateInUse)
		g.Expect(u).NotTo(BeNil())
		g.Expect(u.Reason).To(Equal(ReasonDeletionBlocked))
		g.Expect(u.Message).To(ContainSubstring(ns + "/" + c.Name))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(eventsForCluster(g, tmpl.Name)).To(ContainElement(ReasonDeletionBlocked))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// A new clone of a template being deleted is not scheduled.
	late := newClone(t, ns, tmpl.Name)
	g.Eventually(func(g Gomega) {
		get(g, late)
		g.Expect(condition(late, vmv1alpha1.ConditionScheduled).Reason).To(Equal(ReasonTemplateDeleting))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Once the clones are gone the finalizer is released.
	g.Expect(k8sClient.Delete(ctx, c)).To(Succeed())
	g.Expect(k8sClient.Delete(ctx, late)).To(Succeed())
	g.Eventually(func() bool {
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(tmpl), &vmv1alpha1.VMTemplate{})
		return err != nil && client.IgnoreNotFound(err) == nil
	}).WithTimeout(eventually).WithPolling(poll).Should(BeTrue())
}

// eventsForCluster lists event reasons about a cluster-scoped object (recorded in "default").
func eventsForCluster(g Gomega, name string) []string {
	return eventsFor(g, metav1.NamespaceDefault, name)
}
