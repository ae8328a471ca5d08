package hostagent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/lvm"
)

// warningReasons lists the reasons of the Warning events about a clone.
func warningReasons(g Gomega, c *vmv1alpha1.VMClone) []string {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(c.Namespace))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == c.Name && e.Type == corev1.EventTypeWarning {
			out = append(out, e.Reason)
		}
	}
	return out
}

// TestLostVolumeIsNeverReplaced: once the agent has made a clone's disk, a disk that vanishes
// (an lvremove by hand, a VG that is gone) fails the clone with VolumeLost, says so in a
// Warning event, stops a domain still running off it, and is never replaced by a fresh
// snapshot on the agent's own — also when the agent restarted meanwhile and has only the
// stored status to go by. A reset gives a fresh disk.
func TestLostVolumeIsNeverReplaced(t *testing.T) {
	const node = "xen-a"
	h := hosts[node]
	template(t, "tpl-lost")
	h.Storage.AddVG("vglost", 8<<30)
	if err := h.Storage.AddOrigin("vglost", "debian12", 4<<30); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Storage.LoseVG("vglost") })
	template(t, "tpl-lost-vg", func(tpl *vmv1alpha1.VMTemplate) { tpl.Spec.Origin.VolumeGroup = "vglost" })

	for _, tc := range []struct {
		name, template, vg string
		restart            bool
		lose               func(lv string) error
	}{
		{name: "lv removed", template: "tpl-lost", vg: "vg0", lose: func(lv string) error { return h.Storage.LoseLV("vg0", lv) }},
		{name: "lv removed while the agent is down", template: "tpl-lost", vg: "vg0", restart: true,
			lose: func(lv string) error { return h.Storage.LoseLV("vg0", lv) }},
		{name: "volume group gone", template: "tpl-lost-vg", vg: "vglost", lose: func(string) error { h.Storage.LoseVG("vglost"); return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			c := waitPhase(t, clone(t, ns, "lost", tc.template, func(c *vmv1alpha1.VMClone) {
				c.Spec.Placement = &vmv1alpha1.Placement{NodeName: node}
			}), vmv1alpha1.PhaseRunning)
			lvs := ownedLVsIn(t, node, tc.vg, string(c.UID))
			g.Expect(lvs).To(HaveLen(1))
			lost := lvs[0]

			if tc.restart {
				killAgent(node)
			}
			g.Expect(tc.lose(lost.Name)).To(Succeed())
			if tc.restart {
				g.Expect(startAgent(context.Background(), node, h.AgentHost())).To(Succeed())
			}

			got := waitPhase(t, c, vmv1alpha1.PhaseFailed)
			cond := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionVolumeReady)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Reason).To(Equal(hostagent.ReasonVolumeLost))
			for _, want := range []string{tc.vg + "/" + lost.Name, node, "spec.resetRequests",
				fmt.Sprintf("kubectl -n %s patch vmclone lost", ns)} {
				g.Expect(cond.Message).To(ContainSubstring(want))
			}
			g.Eventually(func(g Gomega) {
				cur := get(g, c)
				ready := meta.FindStatusCondition(cur.Status.Conditions, vmv1alpha1.ConditionReady)
				g.Expect(ready).NotTo(BeNil())
				g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
				g.Expect(warningReasons(g, c)).To(ContainElement(hostagent.ReasonVolumeLost))
				_, found := domainOf(t, cur)
				g.Expect(found).To(BeFalse(), "a domain running off a vanished disk is stopped")
			}, timeout, 100*time.Millisecond).Should(Succeed())
			g.Consistently(func(g Gomega) {
				g.Expect(get(g, c).Status.Phase).To(Equal(vmv1alpha1.PhaseFailed))
				if tc.vg == "vg0" {
					g.Expect(ownedLVsIn(t, node, tc.vg, string(c.UID))).To(BeEmpty(), "no fresh snapshot on the agent's own")
				}
			}, 3*time.Second, 200*time.Millisecond).Should(Succeed())

			if tc.vg != "vg0" {
				return // a reset needs the VG back; nothing more to see
			}
			patch := client.MergeFrom(got.DeepCopy())
			got.Spec.ResetRequests = 1
			g.Expect(k8sClient.Patch(context.Background(), got, patch)).To(Succeed())
			g.Eventually(func(g Gomega) {
				cur := get(g, c)
				g.Expect(cur.Status.ObservedResetRequests).To(BeEquivalentTo(1))
				g.Expect(cur.Status.Phase).To(Equal(vmv1alpha1.PhaseRunning), "message: %s", cur.Status.Message)
			}, timeout, 100*time.Millisecond).Should(Succeed())
			fresh := ownedLVsIn(t, node, tc.vg, string(c.UID))
			g.Expect(fresh).To(HaveLen(1))
			g.Expect(fresh[0].UUID).NotTo(Equal(lost.UUID))
		})
	}
}

// ownedLVsIn lists the LVs of vg on node that carry uid's owner tag.
func ownedLVsIn(t *testing.T, node, vg, uid string) []lvm.LV {
	t.Helper()
	rep, err := hosts[node].Storage.Report(context.Background(), vg)
	if err != nil {
		t.Fatal(err)
	}
	var out []lvm.LV
	for _, lv := range rep.LVs {
		if lv.OwnedBy(uid) {
			out = append(out, lv)
		}
	}
	return out
}

// TestResetRestartsOnceClone: a reset gives a runStrategy Once clone a fresh run on its fresh
// disk, whether its guest was still running or had powered off for good; Ready goes False
// during the reset and True again once the new domain runs, so `kubectl wait
// --for=condition=Ready` after a reset returns.
func TestResetRestartsOnceClone(t *testing.T) {
	template(t, "tpl-once-reset")
	for _, poweredOff := range []bool{true, false} {
		t.Run(fmt.Sprintf("powered off %v", poweredOff), func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			c := waitPhase(t, clone(t, ns, "once", "tpl-once-reset", func(c *vmv1alpha1.VMClone) {
				c.Spec.RunStrategy = vmv1alpha1.RunStrategyOnce
			}), vmv1alpha1.PhaseRunning)
			if poweredOff {
				g.Expect(hosts[c.Status.NodeName].XL(context.Background(), "sim-guest", vmv1alpha1.DomainNameOf(c), "poweroff")).To(Succeed())
				waitPhase(t, c, vmv1alpha1.PhaseStopped)
			}
			var before metav1.Condition
			g.Eventually(func(g Gomega) {
				cur := get(g, c)
				ready := meta.FindStatusCondition(cur.Status.Conditions, vmv1alpha1.ConditionReady)
				g.Expect(ready).NotTo(BeNil())
				if !poweredOff {
					g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), "%+v", ready)
				} else {
					// A Once clone whose guest is off for good is not Ready (nothing runs).
					g.Expect(ready.Reason).To(Equal(hostagent.ReasonGuestPoweredOff), "%+v", ready)
				}
				before = *ready
			}, timeout, 100*time.Millisecond).Should(Succeed())
			oldLV := ownedLVs(t, c.Status.NodeName, string(c.UID))[0]
			// Transition times have whole seconds: let one pass, so a Ready that went False
			// and back shows a new one.
			time.Sleep(1100 * time.Millisecond)

			cur := get(g, c)
			patch := client.MergeFrom(cur.DeepCopy())
			cur.Spec.ResetRequests = 1
			g.Expect(k8sClient.Patch(context.Background(), cur, patch)).To(Succeed())
			g.Eventually(func(g Gomega) {
				cur := get(g, c)
				g.Expect(cur.Status.ObservedResetRequests).To(BeEquivalentTo(1))
				g.Expect(cur.Status.Phase).To(Equal(vmv1alpha1.PhaseRunning), "message: %s; conditions: %+v", cur.Status.Message, cur.Status.Conditions)
				ready := meta.FindStatusCondition(cur.Status.Conditions, vmv1alpha1.ConditionReady)
				g.Expect(ready).NotTo(BeNil())
				g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))
				// A new transition time on a True Ready: it was False in between.
				g.Expect(ready.LastTransitionTime.Time).To(BeTemporally(">", before.LastTransitionTime.Time), "Ready never went False during the reset")
				g.Expect(cur.Status.Timestamps.Started.Time).To(BeTemporally(">", before.LastTransitionTime.Time), "the run is the new one")
				_, found := domainOf(t, cur)
				g.Expect(found).To(BeTrue())
			}, timeout, 100*time.Millisecond).Should(Succeed())
			lvs := ownedLVs(t, c.Status.NodeName, string(c.UID))
			g.Expect(lvs).To(HaveLen(1))
			g.Expect(lvs[0].UUID).NotTo(Equal(oldLV.UUID), "the new run is on a fresh disk")
		})
	}
}
