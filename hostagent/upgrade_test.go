package hostagent_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hack/testenv"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// TestUpgradeTakesUpDomainUnderLegacyName plays an agent from before unique domain names that
// died right after `xl create`: the clone's disk is made and prepared, its domain runs under
// the old name xc-<namespace>-<name>, and nothing of it is in the clone's status. The upgraded
// agent must take that domain up (it carries the clone's UUID) instead of starting a second
// one under the new name on the same disk. A domain under another clone's old name that is
// not that clone's (another UUID: the old names collided) is left alone, and that clone gets
// its own domain under the new name.
func TestUpgradeTakesUpDomainUnderLegacyName(t *testing.T) {
	testenv.Need(t)
	g := NewWithT(t)
	ctx := context.Background()
	const node = "xen-b"
	h := hosts[node]
	tpl := template(t, "tpl-upgrade")
	ns := newNamespace(t)

	// The host has reported the template, as it had before the upgrade.
	g.Eventually(func(g Gomega) {
		var xh vmv1alpha1.XenHost
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: node}, &xh)).To(Succeed())
		g.Expect(xh.Status.Templates).To(ContainElement(HaveField("Name", tpl.Name)))
	}, timeout).Should(Succeed())

	killAgent(node) // the old agent, dead
	t.Cleanup(func() {
		agentsMu.Lock()
		_, running := agents[node]
		agentsMu.Unlock()
		if !running {
			if err := startAgent(context.Background(), node, h.AgentHost()); err != nil {
				t.Errorf("restore agent: %v", err)
			}
		}
	})

	// Someone else's domain under the old name "squatted" gets (its config is not the agent's).
	squatName := "xc-" + ns + "-squatted"
	foreign := xen.DomainConfig{Name: squatName, UUID: string(uuid.NewUUID()), Type: xen.GuestPV, MemoryMiB: 256, VCPUs: 1,
		Bootloader: "pygrub", Disks: []xen.Disk{{Target: "/dev/vg0/debian12", Vdev: "xvda", ReadOnly: true}}}
	foreignPath, err := xen.WriteConfigFile(t.TempDir(), foreign)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h.Xen.Create(ctx, squatName, foreignPath, xen.CreateOptions{})).To(Succeed())
	t.Cleanup(func() { _ = h.Xen.DestroyOwned(context.Background(), squatName, foreign.UUID) })

	pin := func(c *vmv1alpha1.VMClone) { c.Spec.Placement = &vmv1alpha1.Placement{NodeName: node} }
	started := clone(t, ns, "legacy", tpl.Name, pin)
	squatted := clone(t, ns, "squatted", tpl.Name, pin)
	for _, c := range []*vmv1alpha1.VMClone{started, squatted} {
		g.Eventually(func(g Gomega) {
			heartbeat(g, node) // the dead agent's, so the controller still places on its host
			got := get(g, c)
			g.Expect(got.Status.NodeName).To(Equal(node))
			g.Expect(got.Status.UUID).NotTo(BeEmpty())
			*c = *got
		}, timeout, 500*time.Millisecond).Should(Succeed(), "the controller binds the clone")
	}
	g.Expect(hostagent.LegacyDomainName(squatted)).To(Equal(squatName))

	// What the old agent left of "legacy": a prepared disk and a domain under the old name.
	legacyName := hostagent.LegacyDomainName(started)
	g.Expect(legacyName).To(Equal("xc-" + ns + "-legacy"))
	req := hostagent.SnapshotFor(tpl, started)
	lv, err := h.Storage.CreateSnapshot(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h.Storage.AddTag(ctx, lv.Ref(), hostagent.OwnerOf(started), hostagent.PreparedTag)).To(Succeed())
	cfg, err := hostagent.DomainConfigFor(tpl, started, hostagent.VolumePath(lv), "")
	g.Expect(err).NotTo(HaveOccurred())
	cfg.Name = legacyName
	path, err := xen.WriteConfigFile(h.AgentHost().ConfigDir, cfg)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h.Xen.Create(ctx, legacyName, path, xen.CreateOptions{})).To(Succeed())

	g.Expect(startAgent(ctx, node, h.AgentHost())).To(Succeed()) // the upgraded agent

	got := waitPhase(t, started, vmv1alpha1.PhaseRunning)
	g.Expect(got.Status.Domain.Name).To(Equal(legacyName), "the running domain is taken up under its old name")
	g.Expect(vmv1alpha1.DomainNameOf(got)).To(Equal(legacyName))
	g.Expect(domainsOwnedBy(t, node, got.Status.UUID)).To(ConsistOf(legacyName), "exactly one domain runs the clone's disk")

	other := waitPhase(t, squatted, vmv1alpha1.PhaseRunning)
	g.Expect(other.Status.Domain.Name).To(Equal(vmv1alpha1.DefaultDomainName(other)))
	g.Expect(domainsOwnedBy(t, node, other.Status.UUID)).To(ConsistOf(vmv1alpha1.DefaultDomainName(other)))
	g.Expect(domainsOwnedBy(t, node, foreign.UUID)).To(ConsistOf(squatName), "a domain that is not the clone's is left alone")

	// Deleting the clone removes the domain it took up.
	for _, c := range []*vmv1alpha1.VMClone{got, other} {
		g.Expect(k8sClient.Delete(ctx, c)).To(Succeed())
		g.Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), &vmv1alpha1.VMClone{}))
		}, timeout).Should(BeTrue())
	}
	g.Expect(domainsOwnedBy(t, node, got.Status.UUID)).To(BeEmpty())
	g.Expect(ownedLVs(t, node, string(got.UID))).To(BeEmpty())
	g.Expect(domainsOwnedBy(t, node, foreign.UUID)).To(ConsistOf(squatName), "still left alone")
}

// heartbeat renews node's Lease as its agent would.
func heartbeat(g Gomega, node string) {
	var l coordinationv1.Lease
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: leaseNamespace, Name: node}, &l)).To(Succeed())
	now := metav1.NewMicroTime(time.Now())
	l.Spec.RenewTime = &now
	g.Expect(k8sClient.Update(context.Background(), &l)).To(Succeed())
}

// domainsOwnedBy lists the live domains on node that carry uuid.
func domainsOwnedBy(t *testing.T, node, uuid string) []string {
	t.Helper()
	h := hosts[node]
	doms, err := h.Xen.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range doms {
		if d.State.Dying {
			continue
		}
		if _, err := h.Xen.Owner(context.Background(), d.Name, uuid); err == nil {
			out = append(out, d.Name)
		}
	}
	return out
}
