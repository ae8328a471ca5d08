package hostagent_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent"
)

func guestDataCond(g Gomega, c *vmv1alpha1.VMClone) *metav1.Condition {
	cond := meta.FindStatusCondition(get(g, c).Status.Conditions, vmv1alpha1.ConditionGuestDataDelivered)
	g.Expect(cond).NotTo(BeNil())
	return cond
}

// xenstoreOf reads what the clone's domain has under data/xenclone/ on its simulated host.
func xenstoreOf(t *testing.T, c *vmv1alpha1.VMClone, key string) (string, bool) {
	t.Helper()
	dom, found := domainOf(t, c)
	if !found {
		t.Fatalf("no domain for %s", c.Name)
	}
	v, ok, err := hosts[c.Status.NodeName].XenstoreRead(context.Background(),
		"/local/domain/"+strconv.Itoa(dom.ID)+"/"+hostagent.GuestDataPath+"/"+key)
	if err != nil {
		t.Fatal(err)
	}
	return v, ok
}

// TestGuestDataReachesAClaimedStandby is a claim's path on one clone: a paused standby gets
// spec.pause removed and spec.guestData set in one update; it runs again and the Secret's keys
// are in its xenstore (ready last, with the version); a change of the Secret is delivered
// again; a domain started anew gets the data again; a bad key is refused with a message
// naming it.
func TestGuestDataReachesAClaimedStandby(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	template(t, "tpl-guestdata")
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "claim-data"},
		StringData: map[string]string{"token": "s3cret\\n", "ssh-key": "ssh-ed25519 AAAA test"}}
	g.Expect(k8sClient.Create(context.Background(), sec)).To(Succeed())
	pauseMem := resource.MustParse("128Mi")
	c := clone(t, ns, "gd-1", "tpl-guestdata", func(c *vmv1alpha1.VMClone) {
		c.Spec.Pause = &vmv1alpha1.PauseSpec{Memory: &pauseMem, After: &metav1.Duration{Duration: time.Second}}
	})
	paused := waitPhase(t, c, vmv1alpha1.PhasePaused)

	g.Expect(k8sClient.Patch(context.Background(), paused, client.RawPatch("application/merge-patch+json",
		[]byte(`{"spec":{"pause":null,"guestData":{"secretRef":{"name":"claim-data"}}}}`)))).To(Succeed())
	g.Eventually(func(g Gomega) {
		cond := guestDataCond(g, c)
		g.Expect(cond.Reason).To(Equal(vmv1alpha1.ReasonGuestDataDelivered), cond.Message)
	}, timeout, 50*time.Millisecond).Should(Succeed())
	running := waitPhase(t, c, vmv1alpha1.PhaseRunning)
	v, _ := xenstoreOf(t, running, "token")
	g.Expect(v).To(Equal(`s3cret\n`), "written raw")
	v, _ = xenstoreOf(t, running, "ssh-key")
	g.Expect(v).To(Equal("ssh-ed25519 AAAA test"))
	ready, _ := xenstoreOf(t, running, "ready")
	g.Expect(sec.ResourceVersion).NotTo(BeEmpty())
	g.Expect(ready).To(Equal(sec.ResourceVersion), "ready carries the Secret's version")

	// The Secret changes: the controller copies it again at the clone's next reconcile (a
	// label change triggers one here), and the agent delivers the new version.
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(sec), sec)).To(Succeed())
	sec.Data["token"] = []byte("rotated")
	g.Expect(k8sClient.Update(context.Background(), sec)).To(Succeed())
	g.Expect(k8sClient.Patch(context.Background(), running, client.RawPatch("application/merge-patch+json",
		[]byte(`{"spec":{"resetRequests":0,"hostname":"gd-one"}}`)))).To(Succeed())
	g.Eventually(func() string { v, _ := xenstoreOf(t, running, "token"); return v }, timeout, 50*time.Millisecond).Should(Equal("rotated"))
	g.Eventually(func() string { v, _ := xenstoreOf(t, running, "ready"); return v }, timeout).Should(Equal(sec.ResourceVersion))

	// The guest crashes and is started again: a new domain, an empty tree, delivered again.
	before, _ := domainOf(t, running)
	g.Expect(hosts[running.Status.NodeName].XL(context.Background(), "sim-guest", vmv1alpha1.DomainNameOf(running), "crash")).To(Succeed())
	g.Eventually(func(g Gomega) {
		d, found := domainOf(t, running)
		g.Expect(found).To(BeTrue())
		g.Expect(d.ID).NotTo(Equal(before.ID))
		v, ok := xenstoreOf(t, running, "token")
		g.Expect(ok).To(BeTrue())
		g.Expect(v).To(Equal("rotated"))
	}, timeout, 50*time.Millisecond).Should(Succeed())

	// A key xenstore cannot take: refused, named, with the fix.
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(sec), sec)).To(Succeed())
	sec.Data["bad.key"] = []byte("x")
	g.Expect(k8sClient.Update(context.Background(), sec)).To(Succeed())
	g.Expect(k8sClient.Patch(context.Background(), running, client.RawPatch("application/merge-patch+json",
		[]byte(`{"spec":{"hostname":"gd-two"}}`)))).To(Succeed())
	g.Eventually(func(g Gomega) {
		cond := guestDataCond(g, c)
		g.Expect(cond.Reason).To(Equal(vmv1alpha1.ReasonGuestDataRejected))
		g.Expect(cond.Message).To(ContainSubstring(`"bad.key"`))
		g.Expect(cond.Message).To(ContainSubstring("letters, digits"))
	}, timeout).Should(Succeed())

	// spec.guestData removed: the condition goes, and so does the controller's copy.
	g.Expect(k8sClient.Patch(context.Background(), running, client.RawPatch("application/merge-patch+json",
		[]byte(`{"spec":{"guestData":null}}`)))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(meta.FindStatusCondition(get(g, c).Status.Conditions, vmv1alpha1.ConditionGuestDataDelivered)).To(BeNil())
		err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: leaseNamespace, Name: vmv1alpha1.GuestDataCopyName(string(running.UID))}, &corev1.Secret{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "copy left: %v", err)
	}, timeout).Should(Succeed())
}

// TestGuestDataMissingSecret: a clone naming a Secret that does not exist reports it.
func TestGuestDataMissingSecret(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	template(t, "tpl-guestdata-missing")
	c := clone(t, ns, "gd-missing", "tpl-guestdata-missing", func(c *vmv1alpha1.VMClone) {
		c.Spec.GuestData = &vmv1alpha1.GuestDataSpec{SecretRef: vmv1alpha1.LocalObjectReference{Name: "nope"}}
	})
	waitPhase(t, c, vmv1alpha1.PhaseRunning)
	g.Eventually(func(g Gomega) {
		cond := guestDataCond(g, c)
		g.Expect(cond.Reason).To(Equal(vmv1alpha1.ReasonGuestDataSecretMissing))
		g.Expect(cond.Message).To(ContainSubstring("nope"))
	}, timeout).Should(Succeed())
}
