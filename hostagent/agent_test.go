package hostagent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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
	"github.com/xenclone/xenclone/hack/testenv"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/lvm"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// timeout is generous: CI machines have 2 cores, and the suite shares them with the API server.
const timeout = 60 * time.Second

func newNamespace(t *testing.T) string {
	t.Helper()
	testenv.Need(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "agent-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func template(t *testing.T, name string, mutate ...func(*vmv1alpha1.VMTemplate)) *vmv1alpha1.VMTemplate {
	t.Helper()
	testenv.Need(t)
	mem := resource.MustParse("512Mi")
	cow := resource.MustParse("256Mi")
	tpl := &vmv1alpha1.VMTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: vmv1alpha1.VMTemplateSpec{
			Origin:   vmv1alpha1.Origin{VolumeGroup: "vg0", LogicalVolume: "debian12"},
			Snapshot: vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotClassic, COWSize: &cow},
			Domain: vmv1alpha1.DomainSpec{Memory: &mem, Boot: &vmv1alpha1.BootSpec{Bootloader: "pygrub"},
				NICs: []vmv1alpha1.NIC{{Bridge: "xenbr0"}}},
		},
	}
	for _, m := range mutate {
		m(tpl)
	}
	if err := k8sClient.Create(context.Background(), tpl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), tpl) })
	return tpl
}

func clone(t *testing.T, ns, name, tpl string, mutate ...func(*vmv1alpha1.VMClone)) *vmv1alpha1.VMClone {
	t.Helper()
	c := &vmv1alpha1.VMClone{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: tpl}},
	}
	for _, m := range mutate {
		m(c)
	}
	if err := k8sClient.Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

func get(g Gomega, c *vmv1alpha1.VMClone) *vmv1alpha1.VMClone {
	out := &vmv1alpha1.VMClone{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(c), out)).To(Succeed())
	return out
}

func waitPhase(t *testing.T, c *vmv1alpha1.VMClone, phase vmv1alpha1.VMClonePhase) *vmv1alpha1.VMClone {
	t.Helper()
	var got *vmv1alpha1.VMClone
	NewWithT(t).Eventually(func(g Gomega) {
		got = get(g, c)
		g.Expect(got.Status.Phase).To(Equal(phase), "message: %s; conditions: %+v", got.Status.Message, got.Status.Conditions)
	}, timeout, 100*time.Millisecond).Should(Succeed())
	return got
}

func domainOf(t *testing.T, c *vmv1alpha1.VMClone) (xen.DomainInfo, bool) {
	t.Helper()
	h := hosts[c.Status.NodeName]
	if h == nil {
		t.Fatalf("clone bound to unknown host %q", c.Status.NodeName)
	}
	d, found, err := h.Xen.Lookup(context.Background(), vmv1alpha1.DomainNameOf(c))
	if err != nil {
		t.Fatal(err)
	}
	return d, found
}

func ownedLVs(t *testing.T, node string, uid string) []lvm.LV {
	t.Helper()
	rep, err := hosts[node].Storage.Report(context.Background(), "vg0")
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

// TestCloneRunsAndDeleteCleansHost is the user's path: apply a clone, see it Running with a
// domain and a tagged snapshot on its host; delete it and nothing is left there.
func TestCloneRunsAndDeleteCleansHost(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	template(t, "tpl-lifecycle")
	c := clone(t, ns, "web-1", "tpl-lifecycle", func(c *vmv1alpha1.VMClone) { c.Spec.Hostname = "web-one" })

	got := waitPhase(t, c, vmv1alpha1.PhaseRunning)
	g.Eventually(func(g Gomega) {
		got = get(g, c)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, vmv1alpha1.ConditionReady)).To(BeTrue(), "%+v", got.Status.Conditions)
	}, timeout).Should(Succeed())
	g.Expect(got.Status.NodeName).To(BeElementOf("xen-a", "xen-b"))
	g.Expect(got.Status.Domain.Name).To(Equal(vmv1alpha1.DomainNameOf(got)))
	g.Expect(got.Status.Volume.Path).To(HavePrefix("/dev/vg0/xc-web-1-"))
	g.Expect(got.Finalizers).To(ContainElement(vmv1alpha1.CloneFinalizer))
	for _, cond := range []string{vmv1alpha1.ConditionVolumeReady, vmv1alpha1.ConditionGuestPrepared, vmv1alpha1.ConditionDomainRunning} {
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, cond)).To(BeTrue(), cond)
	}

	// On the host: one classic snapshot carrying our tags, prepared; the origin read-only; the
	// domain running with the clone's UUID-based identity; the seed rendered with its MAC.
	lvs := ownedLVs(t, got.Status.NodeName, string(got.UID))
	g.Expect(lvs).To(HaveLen(1))
	g.Expect(lvs[0].Attr.IsClassicSnapshot()).To(BeTrue())
	g.Expect(lvs[0].Tags).To(ContainElements(lvm.ManagedTag, hostagent.PreparedTag, "xenclone.clone="+ns+"/web-1"))
	rep, _ := hosts[got.Status.NodeName].Storage.Report(context.Background(), "vg0")
	origin, _ := rep.LV("debian12")
	g.Expect(origin.Attr.ReadOnly()).To(BeTrue(), "the template origin must be read-only while clones exist")
	dom, found := domainOf(t, got)
	g.Expect(found).To(BeTrue())
	g.Expect(dom.State.Shutdown || dom.State.Dying).To(BeFalse())
	meta, err := os.ReadFile(filepath.Join(hosts[got.Status.NodeName].Dir, "seed", string(got.UID), "meta-data"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(meta)).To(ContainSubstring(string(got.UID)))
	g.Expect(string(meta)).To(ContainSubstring("web-one"))
	cfg, err := os.ReadFile(filepath.Join(hosts[got.Status.NodeName].Dir, "domains", vmv1alpha1.DomainNameOf(got)+".cfg"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(cfg)).To(ContainSubstring(got.Status.UUID))
	g.Expect(string(cfg)).To(ContainSubstring(got.Status.Interfaces[0].MAC))

	// Delete: the finalizer holds until the host is clean.
	g.Expect(k8sClient.Delete(context.Background(), got)).To(Succeed())
	g.Eventually(func() bool {
		err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(c), &vmv1alpha1.VMClone{})
		return apierrors.IsNotFound(err)
	}, timeout).Should(BeTrue())
	g.Expect(ownedLVs(t, got.Status.NodeName, string(got.UID))).To(BeEmpty())
	_, found = domainOf(t, got)
	g.Expect(found).To(BeFalse())
	_, err = os.Stat(filepath.Join(hosts[got.Status.NodeName].Dir, "domains", vmv1alpha1.DomainNameOf(got)+".cfg"))
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "domain config left behind")
	_, err = os.Stat(filepath.Join(hosts[got.Status.NodeName].Dir, "seed", string(got.UID)))
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "seed left behind")
}

// TestCrashedGuestIsRestarted: the agent is the domain's monitor (xl create -e); with
// runStrategy Always a crashed guest comes back.
func TestCrashedGuestIsRestarted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	template(t, "tpl-crash")
	c := waitPhase(t, clone(t, ns, "crashy", "tpl-crash"), vmv1alpha1.PhaseRunning)
	before, _ := domainOf(t, c)

	g.Expect(hosts[c.Status.NodeName].XL(context.Background(), "sim-guest", vmv1alpha1.DomainNameOf(c), "crash")).To(Succeed())
	g.Eventually(func() int {
		d, found := domainOf(t, c)
		if !found || d.State.Shutdown {
			return -1
		}
		return d.ID
	}, timeout, 100*time.Millisecond).ShouldNot(BeElementOf(-1, before.ID), "the crashed domain should be recreated with a new id")
	waitPhase(t, c, vmv1alpha1.PhaseRunning)
}

// TestHaltedThenStarted: Halted prepares the disk but runs nothing; switching to Always starts it.
func TestHaltedThenStarted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	template(t, "tpl-halted")
	c := clone(t, ns, "later", "tpl-halted", func(c *vmv1alpha1.VMClone) { c.Spec.RunStrategy = vmv1alpha1.RunStrategyHalted })
	got := waitPhase(t, c, vmv1alpha1.PhaseStopped)
	g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, vmv1alpha1.ConditionGuestPrepared)).To(BeTrue())
	_, found := domainOf(t, got)
	g.Expect(found).To(BeFalse())

	patch := client.MergeFrom(got.DeepCopy())
	got.Spec.RunStrategy = vmv1alpha1.RunStrategyAlways
	g.Expect(k8sClient.Patch(context.Background(), got, patch)).To(Succeed())
	waitPhase(t, c, vmv1alpha1.PhaseRunning)

	// And back to Halted: a graceful shutdown.
	got = get(g, c)
	patch = client.MergeFrom(got.DeepCopy())
	got.Spec.RunStrategy = vmv1alpha1.RunStrategyHalted
	g.Expect(k8sClient.Patch(context.Background(), got, patch)).To(Succeed())
	got = waitPhase(t, c, vmv1alpha1.PhaseStopped)
	_, found = domainOf(t, got)
	g.Expect(found).To(BeFalse())
}

// TestResetKeepsIdentity: a reset drops the disk for a fresh snapshot; UUID and MAC stay.
func TestResetKeepsIdentity(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	template(t, "tpl-reset")
	c := waitPhase(t, clone(t, ns, "resettable", "tpl-reset"), vmv1alpha1.PhaseRunning)
	oldLV := ownedLVs(t, c.Status.NodeName, string(c.UID))[0]

	patch := client.MergeFrom(c.DeepCopy())
	c.Spec.ResetRequests = 1
	g.Expect(k8sClient.Patch(context.Background(), c, patch)).To(Succeed())
	var got *vmv1alpha1.VMClone
	g.Eventually(func(g Gomega) {
		got = get(g, c)
		g.Expect(got.Status.ObservedResetRequests).To(BeEquivalentTo(1))
		g.Expect(got.Status.Phase).To(Equal(vmv1alpha1.PhaseRunning))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	newLVs := ownedLVs(t, got.Status.NodeName, string(got.UID))
	g.Expect(newLVs).To(HaveLen(1))
	g.Expect(newLVs[0].UUID).NotTo(Equal(oldLV.UUID), "a reset takes a fresh snapshot")
	g.Expect(newLVs[0].Tags).To(ContainElement(hostagent.PreparedTag))
	g.Expect(got.Status.UUID).To(Equal(c.Status.UUID))
	g.Expect(got.Status.Interfaces).To(Equal(c.Status.Interfaces))
}

// TestForeignLVIsNeverTouched: an LV without our tags where the clone's disk would go is a
// conflict the user must resolve; the agent neither uses nor removes it.
func TestForeignLVIsNeverTouched(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	template(t, "tpl-foreign")
	// Another tool takes the name just before the agent's lvcreate.
	var name string
	planted := make(chan error, 1)
	hosts["xen-b"].Storage.BeforeCreate(func(req hostagent.SnapshotRequest) {
		name = req.Name
		planted <- hosts["xen-b"].Storage.AddLV("vg0", req.Name, "-wi-a-----", 64<<20, "someone-else")
	})
	c := clone(t, ns, "squatted", "tpl-foreign", func(c *vmv1alpha1.VMClone) {
		c.Spec.Placement = &vmv1alpha1.Placement{NodeName: "xen-b"}
	})
	select {
	case err := <-planted:
		g.Expect(err).NotTo(HaveOccurred())
	case <-time.After(timeout):
		t.Fatal("the agent never tried to create the clone's volume")
	}
	g.Expect(name).To(Equal(hostagent.VolumeName(get(g, c))))
	g.Eventually(func(g Gomega) {
		got := get(g, c)
		cond := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionVolumeReady)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Reason).To(Equal(hostagent.ReasonVolumeConflict))
		g.Expect(cond.Message).To(ContainSubstring("does not own"))
	}, timeout).Should(Succeed())

	g.Expect(k8sClient.Delete(context.Background(), c)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(c), &vmv1alpha1.VMClone{}))
	}, timeout).Should(BeTrue())
	g.Expect(hosts["xen-b"].Storage.LVs("vg0")).To(ContainElement(name), "a foreign LV must survive")
}

// TestXenHostReported: each agent reports its host's capacity and templates.
func TestXenHostReported(t *testing.T) {
	g := NewWithT(t)
	template(t, "tpl-report")
	g.Eventually(func(g Gomega) {
		var h vmv1alpha1.XenHost
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Name: "xen-a"}, &h)).To(Succeed())
		g.Expect(h.Status.Memory.TotalMiB).To(BeEquivalentTo(16384))
		g.Expect(h.Status.Memory.FreeMiB).To(BeNumerically(">", 0))
		g.Expect(h.Status.XenVersion).NotTo(BeEmpty())
		g.Expect(h.Status.VolumeGroups).To(HaveLen(1))
		g.Expect(h.Status.Templates).To(ContainElement(HaveField("Name", "tpl-report")))
		g.Expect(meta.IsStatusConditionTrue(h.Status.Conditions, vmv1alpha1.ConditionReady)).To(BeTrue())
	}, timeout).Should(Succeed())
}

// TestForeignDomainIsNeverTouched: a domain with the clone's name (a spec.domainName someone
// already uses on the host outside xenclone) but another UUID is not ours: the clone reports
// the conflict, and deleting the clone leaves that domain running.
func TestForeignDomainIsNeverTouched(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	template(t, "tpl-foreign-dom")
	name := "xc-" + ns + "-squat"
	h := hosts["xen-a"]
	cfg := xen.DomainConfig{Name: name, UUID: "11111111-2222-3333-4444-555555555555", Type: xen.GuestPV,
		MemoryMiB: 128, VCPUs: 1, Kernel: "/boot/vmlinuz", Disks: []xen.Disk{{Target: "/dev/vg0/other", Vdev: "xvda"}}}
	path, err := xen.WriteConfigFile(t.TempDir(), cfg)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h.Xen.Create(context.Background(), name, path, xen.CreateOptions{})).To(Succeed())
	t.Cleanup(func() { _ = h.Xen.Destroy(context.Background(), name) })

	c := clone(t, ns, "squat", "tpl-foreign-dom", func(c *vmv1alpha1.VMClone) {
		c.Spec.Placement = &vmv1alpha1.Placement{NodeName: "xen-a"}
		c.Spec.DomainName = vmv1alpha1.DomainName(name)
	})
	g.Eventually(func(g Gomega) {
		got := get(g, c)
		cond := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionDomainRunning)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Reason).To(Equal(hostagent.ReasonDomainConflict))
		g.Expect(got.Status.Phase).NotTo(Equal(vmv1alpha1.PhaseRunning))
	}, timeout).Should(Succeed())

	g.Expect(k8sClient.Delete(context.Background(), c)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(c), &vmv1alpha1.VMClone{}))
	}, timeout).Should(BeTrue())
	d, found, err := h.Xen.Lookup(context.Background(), name)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(found).To(BeTrue(), "the foreign domain must survive")
	g.Expect(d.State.Shutdown).To(BeFalse())
}

// TestOrphansAreCollected: objects of ours that no clone owns (an LV with our owner tag, a
// domain whose xl.cfg we wrote, a seed) are removed after the grace period; an untagged LV and
// a domain we never configured stay.
func TestOrphansAreCollected(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	template(t, "tpl-orphans") // makes the agent look at vg0
	h := hosts["xen-a"]
	ghost := lvm.Owner{UID: "0aaaaa00-0000-4000-8000-000000000001", Namespace: "gone", Name: "ghost"}
	g.Expect(h.Storage.AddLV("vg0", "xc-ghost-0aaaaa00", "-wi-a-----", 8<<20, ghost.Tags()...)).To(Succeed())
	g.Expect(h.Storage.AddLV("vg0", "not-ours", "-wi-a-----", 8<<20)).To(Succeed())

	cfgDir := h.AgentHost().ConfigDir
	orphanDom := xen.DomainConfig{Name: "xc-gone-ghost", UUID: ghost.UID, Type: xen.GuestPV, MemoryMiB: 64, VCPUs: 1,
		Kernel: "/boot/vmlinuz", Disks: []xen.Disk{{Target: "/dev/vg0/xc-ghost-0aaaaa00", Vdev: "xvda"}}}
	path, err := xen.WriteConfigFile(cfgDir, orphanDom)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h.Xen.Create(ctx, orphanDom.Name, path, xen.CreateOptions{})).To(Succeed())
	foreign := orphanDom
	foreign.Name, foreign.UUID = "someone-elses", "99999999-0000-4000-8000-000000000009"
	fpath, err := xen.WriteConfigFile(t.TempDir(), foreign)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h.Xen.Create(ctx, foreign.Name, fpath, xen.CreateOptions{})).To(Succeed())
	t.Cleanup(func() { _ = h.Xen.Destroy(ctx, foreign.Name) })
	_, err = h.Guest.BuildSeed(ctx, hostagent.SeedRequest{UID: ghost.UID, Hostname: "ghost"})
	g.Expect(err).NotTo(HaveOccurred())

	g.Eventually(func(g Gomega) {
		g.Expect(h.Storage.LVs("vg0")).NotTo(ContainElement("xc-ghost-0aaaaa00"))
		_, found, err := h.Xen.Lookup(ctx, orphanDom.Name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(found).To(BeFalse())
		seeds, _ := h.Guest.Seeds(ctx)
		g.Expect(seeds).NotTo(ContainElement(ghost.UID))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(h.Storage.LVs("vg0")).To(ContainElement("not-ours"))
	_, found, _ := h.Xen.Lookup(ctx, foreign.Name)
	g.Expect(found).To(BeTrue(), "a domain we never configured must stay")
	_, err = os.Stat(path)
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "the orphan's config is removed with it")
}

// TestCOWExtendedBeforeItFills: a classic snapshot past its threshold is extended by the agent;
// one at its maximum size is reported StorageAtRisk; one the kernel invalidated is Failed.
func TestCOWExtendedBeforeItFills(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	maxSize := resource.MustParse("512Mi")
	template(t, "tpl-cow", func(tpl *vmv1alpha1.VMTemplate) {
		tpl.Spec.Snapshot.AutoExtend = &vmv1alpha1.AutoExtendPolicy{ThresholdPercent: 70, StepPercent: 50, MaxSize: &maxSize}
	})
	c := waitPhase(t, clone(t, ns, "writer", "tpl-cow"), vmv1alpha1.PhaseRunning)
	h := hosts[c.Status.NodeName]
	lv := ownedLVs(t, c.Status.NodeName, string(c.UID))[0]
	g.Expect(lv.Size).To(BeEquivalentTo(256 << 20))

	h.Storage.SetUsage("vg0", lv.Name, 75)
	g.Eventually(func() uint64 { return ownedLVs(t, c.Status.NodeName, string(c.UID))[0].Size }, timeout).
		Should(BeEquivalentTo(384<<20), "256 MiB + 50%")

	h.Storage.SetUsage("vg0", lv.Name, 75)
	g.Eventually(func() uint64 { return ownedLVs(t, c.Status.NodeName, string(c.UID))[0].Size }, timeout).
		Should(BeEquivalentTo(512<<20), "capped at maxSize")

	h.Storage.SetUsage("vg0", lv.Name, 90)
	g.Eventually(func(g Gomega) {
		got := get(g, c)
		cond := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionStorageAtRisk)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(cond.Reason).To(Equal(hostagent.ReasonCOWAtMax))
		g.Expect(cond.Message).To(ContainSubstring("maximum"))
	}, timeout).Should(Succeed())

	h.Storage.SetUsage("vg0", lv.Name, 100) // the kernel invalidates a full classic snapshot
	got := waitPhase(t, c, vmv1alpha1.PhaseFailed)
	g.Expect(got.Status.Message).To(ContainSubstring("reset the clone"))
}

// TestRunOnce: runStrategy Once keeps the domain running until the guest powers itself off,
// then leaves it off.
func TestRunOnce(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	template(t, "tpl-once")
	c := clone(t, ns, "once", "tpl-once", func(c *vmv1alpha1.VMClone) { c.Spec.RunStrategy = vmv1alpha1.RunStrategyOnce })
	c = waitPhase(t, c, vmv1alpha1.PhaseRunning)
	// Still running a while later: nothing stops a Once domain but its guest.
	g.Consistently(func(g Gomega) {
		_, found := domainOf(t, c)
		g.Expect(found).To(BeTrue())
	}, 3*time.Second, 200*time.Millisecond).Should(Succeed())

	g.Expect(hosts[c.Status.NodeName].XL(context.Background(), "sim-guest", vmv1alpha1.DomainNameOf(c), "poweroff")).To(Succeed())
	got := waitPhase(t, c, vmv1alpha1.PhaseStopped)
	cond := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionDomainRunning)
	g.Expect(cond.Reason).To(Equal(hostagent.ReasonGuestPoweredOff))
	g.Consistently(func(g Gomega) {
		_, found := domainOf(t, got)
		g.Expect(found).To(BeFalse(), "a Once domain must not be started again")
	}, 3*time.Second, 200*time.Millisecond).Should(Succeed())
}

// TestFinalizerFromAnOlderAgentIsReleased: agents before server-side apply added the
// host-cleanup finalizer with a merge patch (another field manager). An upgraded agent's apply
// cannot take that one back; deleting the clone must still finish.
func TestFinalizerFromAnOlderAgentIsReleased(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	template(t, "tpl-old-finalizer")
	c := clone(t, ns, "legacy", "tpl-old-finalizer", func(c *vmv1alpha1.VMClone) {
		c.Finalizers = []string{vmv1alpha1.CloneFinalizer} // as the older agent's patch left it
	})
	c = waitPhase(t, c, vmv1alpha1.PhaseRunning)
	var holders []string
	for _, mf := range c.ManagedFields {
		if strings.Contains(string(mf.FieldsV1.Raw), vmv1alpha1.CloneFinalizer) {
			holders = append(holders, mf.Manager)
		}
	}
	g.Expect(holders).NotTo(ContainElement(hostagent.FieldManager), "the test needs the finalizer held by another manager")

	g.Expect(k8sClient.Delete(context.Background(), c)).To(Succeed())
	g.Eventually(func() bool {
		err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(c), &vmv1alpha1.VMClone{})
		return apierrors.IsNotFound(err)
	}, timeout, 100*time.Millisecond).Should(BeTrue(), "the clone was never released")
	g.Expect(ownedLVs(t, c.Status.NodeName, string(c.UID))).To(BeEmpty())
}
