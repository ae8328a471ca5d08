package hostagent_test

import (
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func kstatusOf(g Gomega, c *vmv1alpha1.VMClone) status.Status {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(get(g, c))
	g.Expect(err).NotTo(HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

// TestKStatus: Flux, kpt and kubectl-based tooling read health through kstatus. A clone being
// provisioned is InProgress, a Ready one Current (also when halted by design), a failed one
// Failed — computed by the kstatus library on objects from the real API server.
func TestKStatus(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	template(t, "tpl-kstatus")
	h := hosts["xen-a"]

	// Hold the guest preparation so the clone is seen mid-provisioning.
	inPrepare, release := make(chan struct{}), make(chan struct{})
	h.Guest.BeforePrepare(func() { close(inPrepare); <-release })
	c := clone(t, ns, "kst", "tpl-kstatus", func(c *vmv1alpha1.VMClone) {
		c.Spec.Placement = &vmv1alpha1.Placement{NodeName: "xen-a"}
	})
	<-inPrepare
	g.Eventually(func(g Gomega) { g.Expect(kstatusOf(g, c)).To(Equal(status.InProgressStatus)) }, timeout).Should(Succeed())
	close(release)

	got := waitPhase(t, c, vmv1alpha1.PhaseRunning)
	g.Eventually(func(g Gomega) { g.Expect(kstatusOf(g, c)).To(Equal(status.CurrentStatus)) }, timeout).Should(Succeed())

	halted := clone(t, ns, "kst-halted", "tpl-kstatus", func(c *vmv1alpha1.VMClone) { c.Spec.RunStrategy = vmv1alpha1.RunStrategyHalted })
	waitPhase(t, halted, vmv1alpha1.PhaseStopped)
	g.Eventually(func(g Gomega) { g.Expect(kstatusOf(g, halted)).To(Equal(status.CurrentStatus)) }, timeout).Should(Succeed())

	// The kernel invalidates a full classic snapshot: the clone fails.
	lv := ownedLVs(t, "xen-a", string(got.UID))[0]
	h.Storage.SetUsage("vg0", lv.Name, 100)
	waitPhase(t, c, vmv1alpha1.PhaseFailed)
	g.Eventually(func(g Gomega) { g.Expect(kstatusOf(g, c)).To(Equal(status.FailedStatus)) }, timeout).Should(Succeed())
}
