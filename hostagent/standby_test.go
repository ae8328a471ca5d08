package hostagent_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// TestWarmStandbyPausesAndResumes: a clone with spec.pause runs for pause.after, is ballooned
// down to pause.memory and paused (xl list: the p flag, the smaller memory), and reports
// Paused with Ready True; removing spec.pause unpauses it with its memory back, the same
// domain (no restart); deleting a paused clone destroys its domain without waiting out a
// shutdown grace period the paused guest could never use.
func TestWarmStandbyPausesAndResumes(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	template(t, "tpl-standby")
	pauseMem := resource.MustParse("128Mi")
	c := clone(t, ns, "standby-1", "tpl-standby", func(c *vmv1alpha1.VMClone) {
		c.Spec.Pause = &vmv1alpha1.PauseSpec{Memory: &pauseMem, After: &metav1.Duration{Duration: 2 * time.Second}}
	})

	running := waitPhase(t, c, vmv1alpha1.PhaseRunning)
	dom, found := domainOf(t, running)
	g.Expect(found).To(BeTrue())
	g.Expect(dom.MemoryMiB).To(BeEquivalentTo(512), "a standby boots with its full memory")
	g.Expect(dom.State.Paused).To(BeFalse())

	paused := waitPhase(t, c, vmv1alpha1.PhasePaused)
	dom, _ = domainOf(t, paused)
	g.Expect(dom.State.Paused).To(BeTrue(), "xl list shows the p flag")
	g.Expect(dom.MemoryMiB).To(BeEquivalentTo(128), "ballooned down to spec.pause.memory")
	g.Expect(paused.Status.Timestamps.Started.Add(2 * time.Second).After(time.Now().Add(-time.Minute))).To(BeTrue())
	dr := meta.FindStatusCondition(paused.Status.Conditions, vmv1alpha1.ConditionDomainRunning)
	g.Expect(dr).NotTo(BeNil())
	g.Expect(dr.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(dr.Reason).To(Equal(vmv1alpha1.ReasonPaused))
	g.Expect(dr.Message).To(ContainSubstring("128 MiB"))
	g.Eventually(func(g Gomega) {
		ready := meta.FindStatusCondition(get(g, c).Status.Conditions, vmv1alpha1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(ready.Reason).To(Equal(vmv1alpha1.ReasonPaused))
	}, timeout).Should(Succeed())
	pausedID := dom.ID

	// A claim removes spec.pause: the same domain runs again with its memory back.
	start := time.Now()
	g.Expect(k8sClient.Patch(context.Background(), paused, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"pause":null}}`)))).To(Succeed())
	g.Eventually(func(g Gomega) {
		d, found := domainOf(t, paused)
		g.Expect(found).To(BeTrue())
		g.Expect(d.State.Paused).To(BeFalse())
	}, timeout, 10*time.Millisecond).Should(Succeed())
	t.Logf("spec.pause removed → domain unpaused in %s (simulated host)", time.Since(start).Round(time.Millisecond))
	resumed := waitPhase(t, c, vmv1alpha1.PhaseRunning)
	dom, _ = domainOf(t, resumed)
	g.Expect(dom.ID).To(Equal(pausedID), "resumed, not restarted")
	g.Expect(dom.MemoryMiB).To(BeEquivalentTo(512), "memory restored")
	g.Expect(meta.FindStatusCondition(resumed.Status.Conditions, vmv1alpha1.ConditionDomainRunning).Reason).To(Equal(vmv1alpha1.ReasonStarted))

	// Paused again, then deleted: destroyed at once, not after the 60 s shutdown grace.
	g.Expect(k8sClient.Patch(context.Background(), resumed, client.RawPatch("application/merge-patch+json",
		[]byte(`{"spec":{"pause":{"memory":"128Mi","after":"1s"}}}`)))).To(Succeed())
	paused = waitPhase(t, c, vmv1alpha1.PhasePaused)
	start = time.Now()
	g.Expect(k8sClient.Delete(context.Background(), paused)).To(Succeed())
	g.Eventually(func() bool {
		_, found := domainOf(t, paused)
		return found
	}, 20*time.Second, 50*time.Millisecond).Should(BeFalse(), "a paused domain is destroyed, not asked to shut down")
	t.Logf("paused clone deleted → domain gone in %s", time.Since(start).Round(time.Millisecond))
}
