package hostagent_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func guestReady(g Gomega, c *vmv1alpha1.VMClone) (*vmv1alpha1.VMClone, *metav1.Condition) {
	got := get(g, c)
	return got, meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionGuestReady)
}

// TestGuestAddressesAndReadiness drives the guest side on the simulated host, which behaves as
// the lab's real guest with the same kernel command line: a guest agent's report gives the
// clone its address (source GuestAgent) and, with probe GuestAgent, GuestReady and then Ready;
// a guest without an agent that talks to dom0 gets its address from the neighbour table, and
// with the default probe it is Ready once the domain runs.
func TestGuestAddressesAndReadiness(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	template(t, "tpl-guest-agent", func(tp *vmv1alpha1.VMTemplate) {
		tp.Spec.Domain.Boot = &vmv1alpha1.BootSpec{Kernel: "/boot/vmlinuz", Cmdline: "console=hvc0 xcagent"}
		tp.Spec.Domain.Readiness = &vmv1alpha1.GuestReadiness{Probe: vmv1alpha1.GuestProbeGuestAgent}
		tp.Spec.Domain.VNC = &vmv1alpha1.VNCSpec{Enabled: true}
	})
	template(t, "tpl-guest-net", func(tp *vmv1alpha1.VMTemplate) {
		tp.Spec.Domain.Boot = &vmv1alpha1.BootSpec{Kernel: "/boot/vmlinuz", Cmdline: "console=hvc0 xcnet"}
	})

	withAgent := clone(t, ns, "ga-1", "tpl-guest-agent")
	start := time.Now()
	var seenWaiting bool
	g.Eventually(func(g Gomega) {
		got, cond := guestReady(g, withAgent)
		g.Expect(cond).NotTo(BeNil(), "GuestReady is written once the domain runs")
		if cond.Status == metav1.ConditionFalse {
			g.Expect(cond.Reason).To(Equal(vmv1alpha1.ReasonWaitingForGuest), cond.Message)
			seenWaiting = true
			ready := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionReady)
			g.Expect(ready == nil || ready.Status != metav1.ConditionTrue).To(BeTrue(), "Ready must wait for the guest")
		}
		g.Expect(cond.Status).To(Equal(metav1.ConditionTrue), cond.Message)
		g.Expect(cond.Reason).To(Equal(vmv1alpha1.ReasonGuestUp))
		g.Expect(cond.Message).To(ContainSubstring("1.0.0-xlsim"))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	g.Expect(seenWaiting).To(BeTrue(), "GuestReady was False while the simulated guest booted")

	var got *vmv1alpha1.VMClone
	g.Eventually(func(g Gomega) {
		got = get(g, withAgent)
		ready := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), ready.Message)
		g.Expect(ready.Message).To(ContainSubstring("guest up"))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	mac := got.Status.Interfaces[0].MAC
	g.Expect(got.Status.Guest).NotTo(BeNil())
	g.Expect(got.Status.Guest.IP).To(Equal(simIP(mac)), "the address the simulated guest agent reports")
	g.Expect(got.Status.Guest.Interfaces).To(HaveLen(1))
	g.Expect(got.Status.Guest.Interfaces[0].Source).To(Equal(vmv1alpha1.AddressFromGuestAgent))
	g.Expect(got.Status.Guest.Interfaces[0].MAC).To(Equal(mac))
	g.Expect(got.Status.Guest.OS).To(Equal("xlsim guest"))
	g.Expect(got.Status.Domain.VNCPort).To(BeEquivalentTo(5900+got.Status.Domain.ID), "QEMU's port, from the domain's xenstore")
	t.Logf("apply → GuestReady True in %s", time.Since(start).Round(time.Millisecond))

	noAgent := clone(t, ns, "gn-1", "tpl-guest-net")
	g.Eventually(func(g Gomega) {
		got = get(g, noAgent)
		g.Expect(got.Status.Guest).NotTo(BeNil())
		g.Expect(got.Status.Guest.Interfaces).To(HaveLen(1))
		g.Expect(got.Status.Guest.Interfaces[0].Source).To(Equal(vmv1alpha1.AddressFromNeighborTable))
		g.Expect(got.Status.Guest.IP).To(Equal(simIP(got.Status.Interfaces[0].MAC)))
		cond := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionGuestReady)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(cond.Message).To(ContainSubstring("probe DomainRunning"))
	}, timeout, 50*time.Millisecond).Should(Succeed())

	// Halted: the guest's status and GuestReady go with the domain.
	patchClone(t, noAgent, func(c *vmv1alpha1.VMClone) { c.Spec.RunStrategy = vmv1alpha1.RunStrategyHalted })
	g.Eventually(func(g Gomega) {
		got = get(g, noAgent)
		g.Expect(got.Status.Phase).To(Equal(vmv1alpha1.PhaseStopped))
		g.Expect(got.Status.Guest).To(BeNil())
		g.Expect(meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionGuestReady)).To(BeNil())
	}, timeout, 50*time.Millisecond).Should(Succeed())
}

// simIP is the simulator's address for a guest NIC (xlsim guest.go): 10.<last three bytes>.
func simIP(mac string) string {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return "bad MAC " + mac
	}
	return fmt.Sprintf("10.%d.%d.%d", hw[3], hw[4], hw[5])
}
