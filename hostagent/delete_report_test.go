package hostagent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/lvm"
)

// TestDeleteReportsOnlyWhenSlow: a delete the host finishes within
// hostagent.TerminatingReportAfter writes no status on its way (the object is gone a moment
// later; deletionTimestamp already says it is going). One that takes longer — here a destroyed
// domain that stays dying and holds its disk — is reported Terminating, and finishes with
// nothing left once the domain is gone, the disk removed after it and not before.
func TestDeleteReportsOnlyWhenSlow(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	template(t, "tpl-delete-report")

	fast := waitPhase(t, clone(t, ns, "quick", "tpl-delete-report"), vmv1alpha1.PhaseRunning)
	versions := watchVersions(t, fast)
	start := time.Now()
	g.Expect(k8sClient.Delete(context.Background(), fast)).To(Succeed())
	waitGone(t, fast)
	took := time.Since(start)
	g.Expect(took).To(BeNumerically("<", hostagent.TerminatingReportAfter), "the quick delete was not quick: the assertions below would not mean anything")
	for _, v := range versions() {
		g.Expect(v.Status.Phase).NotTo(Equal(vmv1alpha1.PhaseTerminating), "a %s delete wrote its Terminating report", took)
	}
	g.Expect(ownedLVs(t, fast.Status.NodeName, string(fast.UID))).To(BeEmpty())

	slow := waitPhase(t, clone(t, ns, "lingering", "tpl-delete-report"), vmv1alpha1.PhaseRunning)
	h := hosts[slow.Status.NodeName]
	ctx := context.Background()
	// The destroyed domain stays listed as dying for 8 s; meanwhile lvremove finds its disk
	// still open (lvm's "Logical volume ... in use"), once.
	g.Expect(h.XL(ctx, "sim-knob", "dying_time=8s")).To(Succeed())
	t.Cleanup(func() { _ = h.XL(ctx, "sim-knob", "dying_time=0s") })
	h.Storage.InjectFault("remove", fmt.Errorf("lvremove: Logical volume vg0/x in use: %w", lvm.ErrInUse))
	versions = watchVersions(t, slow)
	start = time.Now()
	g.Expect(k8sClient.Delete(ctx, slow)).To(Succeed())
	var terminating *vmv1alpha1.VMClone
	g.Eventually(func(g Gomega) {
		for _, v := range versions() {
			if v.Status.Phase == vmv1alpha1.PhaseTerminating {
				terminating = v
			}
		}
		g.Expect(terminating).NotTo(BeNil())
	}, timeout, 50*time.Millisecond).Should(Succeed())
	g.Expect(time.Since(start)).To(BeNumerically(">=", hostagent.TerminatingReportAfter-time.Second),
		"reported before the delete had taken TerminatingReportAfter")
	cond := meta.FindStatusCondition(terminating.Status.Conditions, vmv1alpha1.ConditionDomainRunning)
	g.Expect(cond).NotTo(BeNil())
	g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(terminating.Status.Message).To(ContainSubstring("removing the domain and its disk"))

	waitGone(t, slow)
	g.Expect(time.Since(start)).To(BeNumerically(">=", 7*time.Second), "the disk went before its dying domain")
	g.Expect(ownedLVs(t, slow.Status.NodeName, string(slow.UID))).To(BeEmpty())
	_, found := domainOf(t, slow)
	g.Expect(found).To(BeFalse())
}

func waitGone(t *testing.T, c *vmv1alpha1.VMClone) {
	t.Helper()
	NewWithT(t).Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(c), &vmv1alpha1.VMClone{}))
	}, timeout, 50*time.Millisecond).Should(BeTrue())
}
