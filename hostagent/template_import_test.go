package hostagent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent"
)

// imageServer serves one raw image on 127.0.0.1 and counts the downloads.
func imageServer(t *testing.T, size int) (url, checksum string, img []byte) {
	t.Helper()
	img = make([]byte, size)
	if _, err := rand.Read(img); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(img)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "image.raw", time.Time{}, bytes.NewReader(img))
	}))
	t.Cleanup(srv.Close)
	// Credentials in the URL must never reach a status or a log.
	u := strings.Replace(srv.URL, "http://", "http://reader:s3cret@", 1) + "/images/golden.raw?token=t0ken"
	return u, "sha256:" + hex.EncodeToString(sum[:]), img
}

func sourced(url, checksum, lv string) func(*vmv1alpha1.VMTemplate) {
	return func(t *vmv1alpha1.VMTemplate) {
		t.Spec.Origin.LogicalVolume = vmv1alpha1.LVName(lv)
		t.Spec.Source = &vmv1alpha1.TemplateSource{URL: url, Checksum: checksum}
	}
}

func getTemplate(g Gomega, name string) *vmv1alpha1.VMTemplate {
	var tpl vmv1alpha1.VMTemplate
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Name: name}, &tpl)).To(Succeed())
	return &tpl
}

// TestTemplateImportFromSource: a template with a source gets its origin onto every selected
// host through the import (a real HTTP download, hashed and verified), becomes Ready and
// Imported, and clones run from it; a wrong checksum leaves a condition naming both digests
// and no LV on any host; deleting a template removes the origin it imported.
func TestTemplateImportFromSource(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	url, sum, _ := imageServer(t, 8<<20)

	tpl := template(t, "tpl-imported", sourced(url, sum, "imported-golden"))
	g.Eventually(func(g Gomega) {
		got := getTemplate(g, tpl.Name)
		cond := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionImported)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Status).To(Equal(metav1.ConditionTrue), cond.Message)
		g.Expect(got.Status.ReadyHosts).To(BeEquivalentTo(2))
		g.Expect(got.Status.ImportingHosts).To(BeZero())
		g.Expect(got.Status.ImportGrants).To(BeEmpty(), "grants are released once done")
		for _, h := range got.Status.Hosts {
			g.Expect(h.Import).NotTo(BeNil(), h.NodeName)
			g.Expect(h.Import.Phase).To(Equal(vmv1alpha1.ImportSucceeded))
			g.Expect(h.Import.Checksum).To(Equal(sum))
			g.Expect(h.Import.BytesDone).To(BeEquivalentTo(8 << 20))
		}
	}, timeout).Should(Succeed())
	for _, node := range []string{"xen-a", "xen-b"} {
		lv := originOn(g, node, "imported-golden")
		g.Expect(lv.ImportedFor(string(getTemplate(g, tpl.Name).UID))).To(BeTrue(), "tags %v", lv.Tags)
		g.Expect(lv.Attr.ReadOnly()).To(BeTrue())
		g.Expect(lv.ImageChecksum()).To(Equal(sum))
		g.Expect(lv.Size).To(BeEquivalentTo(8 << 20))
		g.Expect(hosts[node].Storage.LVs("vg0")).NotTo(ContainElement("imported-golden" + hostagent.ImportSuffix))
	}

	c := clone(t, ns, "from-import", tpl.Name)
	g.Eventually(func(g Gomega) {
		got := get(g, c)
		g.Expect(got.Status.Phase).To(Equal(vmv1alpha1.PhaseRunning))
	}, timeout).Should(Succeed())

	// A wrong checksum: the download is refused before the LV gets the origin's name.
	bad := "sha256:" + strings.Repeat("ab", 32)
	badTpl := template(t, "tpl-badsum", sourced(url, bad, "bad-golden"))
	g.Eventually(func(g Gomega) {
		got := getTemplate(g, badTpl.Name)
		cond := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionImported)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Reason).To(Equal(vmv1alpha1.ReasonImportFailing))
		g.Expect(cond.Message).To(And(ContainSubstring(vmv1alpha1.ReasonImportChecksumMismatch), ContainSubstring(sum[len("sha256:"):]),
			ContainSubstring(strings.Repeat("ab", 32))))
		ready := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		for _, h := range got.Status.Hosts {
			g.Expect(h.Import).NotTo(BeNil())
			g.Expect(h.Import.NextAttemptTime).NotTo(BeNil(), "a failed import is retried")
		}
	}, timeout).Should(Succeed())
	for _, node := range []string{"xen-a", "xen-b"} {
		g.Expect(hosts[node].Storage.LVs("vg0")).NotTo(ContainElements("bad-golden", "bad-golden"+hostagent.ImportSuffix))
	}

	// Each host's attempts are events on the template (cluster-scoped: namespace default).
	g.Eventually(func(g Gomega) {
		var list eventsv1.EventList
		g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace("default"))).To(Succeed())
		seen := map[string]bool{}
		for _, e := range list.Items {
			if e.Regarding.Kind == "VMTemplate" {
				seen[e.Regarding.Name+"/"+e.Reason] = true
				g.Expect(e.Note).NotTo(Or(ContainSubstring("s3cret"), ContainSubstring("t0ken")))
			}
		}
		g.Expect(seen).To(HaveKey(tpl.Name + "/" + vmv1alpha1.ReasonImported))
		g.Expect(seen).To(HaveKey(badTpl.Name + "/" + vmv1alpha1.ReasonImportChecksumMismatch))
	}, timeout).Should(Succeed())

	// No status, host report or condition carries the URL's credentials.
	for _, name := range []string{tpl.Name, badTpl.Name} {
		got := getTemplate(g, name)
		got.Spec = vmv1alpha1.VMTemplateSpec{} // the spec holds the URL as the user wrote it
		g.Expect(dump(got)).NotTo(Or(ContainSubstring("s3cret"), ContainSubstring("t0ken")))
	}
	for _, node := range []string{"xen-a", "xen-b"} {
		var h vmv1alpha1.XenHost
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Name: node}, &h)).To(Succeed())
		g.Expect(dump(&h)).NotTo(Or(ContainSubstring("s3cret"), ContainSubstring("t0ken")))
	}

	// Deleted: the clone first (the template's finalizer waits for it), then the template;
	// each host removes the origin it imported.
	g.Expect(k8sClient.Delete(context.Background(), c)).To(Succeed())
	g.Expect(k8sClient.Delete(context.Background(), tpl)).To(Succeed())
	g.Eventually(func(g Gomega) {
		for _, node := range []string{"xen-a", "xen-b"} {
			g.Expect(hosts[node].Storage.LVs("vg0")).NotTo(ContainElement("imported-golden"), node)
		}
	}, timeout).Should(Succeed())
}

func dump(o any) string {
	b, _ := json.Marshal(o)
	return string(b)
}

// TestTemplateImportFollowsTheHostSelector: a template whose selector matches no host says so
// (NoHostSelected, Degraded in Argo CD) and imports nothing; a host labelled to match imports by
// itself, and only that host.
func TestTemplateImportFollowsTheHostSelector(t *testing.T) {
	g := NewWithT(t)
	url, sum, _ := imageServer(t, 4<<20)
	tpl := template(t, "tpl-import-selected", sourced(url, sum, "selected-golden"), func(t *vmv1alpha1.VMTemplate) {
		t.Spec.HostSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"images.example.com/late": "true"}}
	})
	g.Eventually(func(g Gomega) {
		c := meta.FindStatusCondition(getTemplate(g, tpl.Name).Status.Conditions, vmv1alpha1.ConditionImported)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(vmv1alpha1.ReasonNoHostSelected))
	}, timeout).Should(Succeed())

	var h vmv1alpha1.XenHost
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Name: "xen-b"}, &h)).To(Succeed())
	patch := client.MergeFrom(h.DeepCopy())
	if h.Labels == nil {
		h.Labels = map[string]string{}
	}
	h.Labels["images.example.com/late"] = "true"
	g.Expect(k8sClient.Patch(context.Background(), &h, patch)).To(Succeed())
	t.Cleanup(func() {
		var h vmv1alpha1.XenHost
		if k8sClient.Get(context.Background(), client.ObjectKey{Name: "xen-b"}, &h) == nil {
			patch := client.MergeFrom(h.DeepCopy())
			delete(h.Labels, "images.example.com/late")
			_ = k8sClient.Patch(context.Background(), &h, patch)
		}
	})

	g.Eventually(func(g Gomega) {
		got := getTemplate(g, tpl.Name)
		c := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionImported)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), c.Message)
		g.Expect(got.Status.Hosts).To(HaveLen(1))
		g.Expect(got.Status.Hosts[0].NodeName).To(Equal("xen-b"))
	}, timeout).Should(Succeed())
	g.Expect(hosts["xen-b"].Storage.LVs("vg0")).To(ContainElement("selected-golden"))
	g.Expect(hosts["xen-a"].Storage.LVs("vg0")).NotTo(ContainElement(HavePrefix("selected-golden")), "a host the selector does not match imports nothing")
}
