package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// TestCloudInitCopiedForTheAgent: the controller copies the Secret keys a clone names into its
// own namespace (the only Secrets an agent may read) before placing the clone; a missing Secret
// or key holds the clone back with the field to fix; the copy goes with the clone.
func TestCloudInitCopiedForTheAgent(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	tmpl := newTemplate(t, "512Mi")
	newHost(t, 8192, []string{tmpl.Name})

	c := newClone(t, ns, tmpl.Name, func(c *vmv1alpha1.VMClone) {
		c.Spec.CloudInit = &vmv1alpha1.CloudInitSpec{
			UserData:      &vmv1alpha1.SecretKeyReference{Name: "web", Key: "user-data"},
			NetworkConfig: &vmv1alpha1.SecretKeyReference{Name: "web", Key: "net"},
		}
	})
	g.Eventually(func(g Gomega) {
		get(g, c)
		s := condition(c, vmv1alpha1.ConditionScheduled)
		g.Expect(s.Reason).To(Equal(ReasonCloudInitDataMissing))
		g.Expect(s.Message).To(ContainSubstring("Secret " + ns + "/web named by spec.cloudInit.userData does not exist"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(c.Status.NodeName).To(BeEmpty(), "not placed without its cloud-init data")

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Data: map[string][]byte{"user-data": []byte("#cloud-config\nhostname: web\n")}}
	g.Expect(k8sClient.Create(ctx, sec)).To(Succeed())
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(condition(c, vmv1alpha1.ConditionScheduled).Message).To(ContainSubstring(`has no key "net" (spec.cloudInit.networkConfig.key)`))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	sec.Data["net"] = []byte("version: 2\n")
	g.Expect(k8sClient.Update(ctx, sec)).To(Succeed())
	// Secrets are not watched: the clone looks again every cloudInitRetry.
	copyKey := types.NamespacedName{Namespace: testLeaseNamespace, Name: vmv1alpha1.CloudInitCopyName(string(c.UID))}
	var cp corev1.Secret
	g.Eventually(func(g Gomega) {
		get(g, c)
		g.Expect(c.Status.NodeName).NotTo(BeEmpty())
		g.Expect(k8sClient.Get(ctx, copyKey, &cp)).To(Succeed())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(cp.Labels).To(HaveKeyWithValue(vmv1alpha1.CloneUIDLabel, string(c.UID)))
	g.Expect(string(cp.Data[vmv1alpha1.CloudInitUserDataKey])).To(Equal("#cloud-config\nhostname: web\n"))
	g.Expect(string(cp.Data[vmv1alpha1.CloudInitNetworkConfigKey])).To(Equal("version: 2\n"))

	g.Expect(k8sClient.Delete(ctx, c)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, copyKey, &corev1.Secret{}))
	}).WithTimeout(eventually).WithPolling(poll).Should(BeTrue(), "the copy goes with its clone")
}
