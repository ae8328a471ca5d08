package hostagent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/lvm"
)

func originOn(g Gomega, node, name string) lvm.LV {
	rep, err := hosts[node].Storage.Report(context.Background(), "vg0")
	g.Expect(err).NotTo(HaveOccurred())
	lv, ok := rep.LV(name)
	g.Expect(ok).To(BeTrue(), "LV vg0/%s on %s", name, node)
	return lv
}

func reportedTemplate(g Gomega, node, tpl string) *vmv1alpha1.HostTemplateStatus {
	var h vmv1alpha1.XenHost
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Name: node}, &h)).To(Succeed())
	for i := range h.Status.Templates {
		if h.Status.Templates[i].Name == tpl {
			return &h.Status.Templates[i]
		}
	}
	return nil
}

func origin(lv string) func(*vmv1alpha1.VMTemplate) {
	return func(t *vmv1alpha1.VMTemplate) { t.Spec.Origin.LogicalVolume = vmv1alpha1.LVName(lv) }
}

// TestTemplateNamingAnUnfitLVChangesNothing: a VMTemplate that names a live LV (a typo for the
// golden image), a clone's disk or an LV an administrator excluded is refused on the host, the
// LV keeps its permission, and no clone of it is placed there.
func TestTemplateNamingAnUnfitLVChangesNothing(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	for _, node := range []string{"xen-a", "xen-b"} {
		st := hosts[node].Storage
		g.Expect(st.AddOrigin("vg0", "live-root", 1<<30)).To(Succeed())
		st.SetOpen("vg0", "live-root", true) // mounted in dom0
		g.Expect(st.AddLV("vg0", "excluded", "-wi-a-----", 1<<30, lvm.NotTemplateTag)).To(Succeed())
		g.Expect(st.AddLV("vg0", "someones-clone", "-wi-a-----", 1<<30, lvm.ManagedTag)).To(Succeed())
	}
	for tpl, lv := range map[string]string{"tpl-typo": "live-root", "tpl-excluded": "excluded", "tpl-clone-disk": "someones-clone"} {
		template(t, tpl, origin(lv))
		g.Eventually(func(g Gomega) {
			ht := reportedTemplate(g, "xen-a", tpl)
			g.Expect(ht).NotTo(BeNil())
			g.Expect(ht.Refused).To(ContainSubstring("vg0/" + lv))
		}, timeout).Should(Succeed())
	}
	g.Expect(reportedTemplate(g, "xen-a", "tpl-typo").Refused).To(ContainSubstring("writable and open"))
	g.Expect(reportedTemplate(g, "xen-a", "tpl-excluded").Refused).To(ContainSubstring(lvm.NotTemplateTag))
	g.Expect(reportedTemplate(g, "xen-a", "tpl-clone-disk").Refused).To(ContainSubstring("a clone's disk"))

	c := clone(t, ns, "on-typo", "tpl-typo")
	g.Eventually(func(g Gomega) {
		got := get(g, c)
		cond := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionScheduled)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(cond.Message).To(ContainSubstring("refuse the LV of template tpl-typo"))
	}, timeout).Should(Succeed())
	g.Eventually(func(g Gomega) {
		var tpl vmv1alpha1.VMTemplate
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Name: "tpl-typo"}, &tpl)).To(Succeed())
		g.Expect(tpl.Status.ReadyHosts).To(BeZero())
		g.Expect(tpl.Status.Hosts).To(ContainElement(HaveField("Message", ContainSubstring("writable and open"))))
	}, timeout).Should(Succeed())

	// Several report rounds later, nothing on either host was write-protected.
	time.Sleep(3 * time.Second)
	for _, node := range []string{"xen-a", "xen-b"} {
		for _, lv := range []string{"live-root", "excluded", "someones-clone"} {
			got := originOn(g, node, lv)
			g.Expect(got.Attr.ReadOnly()).To(BeFalse(), "%s on %s was made read-only", lv, node)
			g.Expect(got.Tags).NotTo(ContainElement(lvm.MadeReadOnlyTag))
		}
	}
	g.Expect(k8sClient.Delete(context.Background(), c)).To(Succeed())
}

// TestOriginProtectedForItsFirstCloneAndReleasedAfter: a template's origin stays writable until
// a clone is taken from it on that host, is then read-only and tagged, and is made writable
// again once the template is gone and no snapshot of it remains. An origin an administrator
// made read-only stays so.
func TestOriginProtectedForItsFirstCloneAndReleasedAfter(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	for _, node := range []string{"xen-a", "xen-b"} {
		g.Expect(hosts[node].Storage.AddOrigin("vg0", "golden-rel", 4<<30)).To(Succeed())
		g.Expect(hosts[node].Storage.AddLV("vg0", "golden-admin", "-ri-a-----", 4<<30)).To(Succeed())
	}
	tpl := template(t, "tpl-release", origin("golden-rel"))
	admin := template(t, "tpl-admin-ro", origin("golden-admin"))
	g.Eventually(func(g Gomega) {
		ht := reportedTemplate(g, "xen-b", "tpl-release")
		g.Expect(ht).NotTo(BeNil())
		g.Expect(ht.Refused).To(BeEmpty())
	}, timeout).Should(Succeed())
	time.Sleep(2 * time.Second) // a couple of report rounds
	for _, node := range []string{"xen-a", "xen-b"} {
		g.Expect(originOn(g, node, "golden-rel").Attr.ReadOnly()).To(BeFalse(), "declaring a template must not write-protect its LV on %s", node)
	}

	pin := func(c *vmv1alpha1.VMClone) { c.Spec.Placement = &vmv1alpha1.Placement{NodeName: "xen-a"} }
	c := clone(t, ns, "from-golden", "tpl-release", pin)
	ca := clone(t, ns, "from-admin", "tpl-admin-ro", pin)
	waitPhase(t, c, vmv1alpha1.PhaseRunning)
	waitPhase(t, ca, vmv1alpha1.PhaseRunning)
	got := originOn(g, "xen-a", "golden-rel")
	g.Expect(got.Attr.ReadOnly()).To(BeTrue())
	g.Expect(got.Tags).To(ContainElement(lvm.MadeReadOnlyTag))
	g.Expect(originOn(g, "xen-b", "golden-rel").Attr.ReadOnly()).To(BeFalse(), "no clone on xen-b: its origin is untouched")

	for _, obj := range []client.Object{c, ca, tpl, admin} {
		g.Expect(k8sClient.Delete(context.Background(), obj)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		lv := originOn(g, "xen-a", "golden-rel")
		g.Expect(lv.Attr.ReadOnly()).To(BeFalse())
		g.Expect(lv.Tags).NotTo(ContainElement(lvm.MadeReadOnlyTag))
	}, timeout).Should(Succeed())
	time.Sleep(2 * time.Second)
	g.Expect(originOn(g, "xen-a", "golden-admin").Attr.ReadOnly()).To(BeTrue(), "an administrator's read-only flag must never be reverted")
}

func TestOriginRefusal(t *testing.T) {
	attr := func(s string) lvm.Attr {
		a, err := lvm.ParseAttr(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, tc := range []struct {
		name string
		lv   lvm.LV
		want string
	}{
		{"plain inactive", lvm.LV{VG: "vg0", Name: "g", Attr: attr("-wi-------")}, ""},
		{"plain active, closed", lvm.LV{VG: "vg0", Name: "g", Attr: attr("-wi-a-----")}, ""},
		{"read-only and open (snapshots read it)", lvm.LV{VG: "vg0", Name: "g", Attr: attr("ori-aos---")}, ""},
		{"writable and open", lvm.LV{VG: "vg0", Name: "g", Attr: attr("-wi-ao----")}, "writable and open"},
		{"a clone's disk", lvm.LV{VG: "vg0", Name: "g", Attr: attr("swi-a-s---"), Tags: []string{lvm.ManagedTag}}, "a clone's disk"},
		{"excluded", lvm.LV{VG: "vg0", Name: "g", Attr: attr("-wi-a-----"), Tags: []string{lvm.NotTemplateTag}}, lvm.NotTemplateTag},
		{"thin pool", lvm.LV{VG: "vg0", Name: "g", Attr: attr("twi-aotz--")}, "thin pool"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hostagent.OriginRefusal(tc.lv)
			if (tc.want == "") != (got == "") || (tc.want != "" && !strings.Contains(got, tc.want)) {
				t.Errorf("OriginRefusal = %q, want %q", got, tc.want)
			}
		})
	}
}
