//go:build lab

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/controllers"
	"github.com/xenclone/xenclone/hack/testenv"
)

const (
	node           = "lab-xen"
	leaseNamespace = "xenclone-system"
	// Waits sized for TCG: xl create alone takes 10-15 s, the guest boots in ~7 s more.
	stepTimeout = 10 * time.Minute
)

// The template guest's machine-specific data (hack/lab/lab.sh build_guest_disk).
const (
	templateHostname  = "golden-template"
	templateMachineID = "7e3b5c1d9a2f4e6b8c0d1a2b3c4d5e6f"
	templateHWADDR    = "52:54:00:de:ad:01"
)

type env struct {
	t   *testing.T
	k   client.Client
	cl  *testenv.Cluster
	lab *Lab
	ns  string
	// imageURL serves guest.img to dom0 (the test's HTTP server through guestfwd), with its
	// sha256 in imageSum: the source of templates that are imported, not written with dd.
	imageURL, imageSum string
	// qcowURL serves the same image as qcow2 (made by qemu-img), with its sha256 in qcowSum.
	qcowURL, qcowSum string
}

// TestClonesOnRealXen is the lab end to end: the controller here, the agent as the DaemonSet's
// pod on dom0's kubelet, on real Xen 4.17 and real LVM; every identity claim is checked from
// inside the booted guest.
func TestClonesOnRealXen(t *testing.T) {
	total := time.Now()
	e := newLabEnv(t)
	lab := e.lab
	// dom0: the VG on the lab's data disk and a thin pool. The thin template is written from the
	// guest disk image by hand (an import makes thick LVs); the two thick ones come through the
	// import (spec.source) from the test's image server.
	lab.Sh(t, `set -e
D=/dev/disk/by-id/virtio-labdata
pvcreate -y -ff $D >/dev/null && vgcreate vg0 $D >/dev/null
lvcreate -y -L 256M -T vg0/pool >/dev/null
lvcreate -y -V 64M -T vg0/pool -n golden-thin >/dev/null
dd if=/lab/guest.img of=/dev/vg0/golden-thin bs=1M oflag=direct status=none
sync`)
	e.startAgent()

	start := time.Now()
	classic := e.template("lab-classic", "golden", func(s *vmv1alpha1.VMTemplateSpec) {
		s.Source = &vmv1alpha1.TemplateSource{URL: e.imageURL, Checksum: e.imageSum}
		cow := resource.MustParse("32Mi")
		s.Snapshot = vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotClassic, COWSize: &cow}
	})
	// A thick LV that is the origin of active classic snapshots cannot become an external
	// origin (lvm: "Cannot use active LV for the external origin"): its own template LV. Nor
	// can an active one that is not yet an origin: the agent leaves the import of a Thin
	// template with a thinPool inactive.
	ext := e.template("lab-thin-ext", "golden-ext", func(s *vmv1alpha1.VMTemplateSpec) {
		s.Source = &vmv1alpha1.TemplateSource{URL: e.imageURL, Checksum: e.imageSum}
		s.Snapshot = vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotThin, ThinPool: "pool"}
	})
	e.waitImported(classic, "golden", e.imageSum, start)
	e.waitImported(ext, "golden-ext", e.imageSum, start)
	// golden-ext is active while sha256sum reads it; the final checksum activates it again.
	sums := "lvchange -ay vg0/golden-ext && sha256sum /dev/vg0/golden /dev/vg0/golden-thin /dev/vg0/golden-ext | cut -d' ' -f1"
	sumBefore := lab.Sh(t, sums)
	lab.Sh(t, "lvchange -an vg0/golden-ext")

	// 1. A clone boots with the template's data scrubbed and its own identity.
	c := e.clone("web-1", classic, "web-one", vmv1alpha1.RunStrategyAlways)
	c = e.waitRunning(c)
	mac := c.Status.Interfaces[0].MAC
	id := e.guestIdentity(c, 1)
	e.expectPersonalized(id, c, "web-one", mac)
	lv := e.lvOf(c)
	if !strings.HasPrefix(lv.attr, "s") || lv.origin != "golden" {
		t.Fatalf("clone disk is not a classic snapshot of golden: %+v", lv)
	}

	// 2. Halted: the domain goes away, the disk stays; Always again boots the same disk.
	c = e.setRunStrategy(c, vmv1alpha1.RunStrategyHalted)
	e.waitPhase(c, vmv1alpha1.PhaseStopped)
	if out := lab.Sh(t, "xl list"); strings.Contains(out, vmv1alpha1.DomainNameOf(c)) {
		t.Fatalf("domain still listed after Halted:\n%s", out)
	}
	c = e.setRunStrategy(c, vmv1alpha1.RunStrategyAlways)
	c = e.waitRunning(c)
	id = e.guestIdentity(c, 2)
	e.expectPersonalized(id, c, "web-one", mac)
	if got := e.lvOf(c); got.uuid != lv.uuid {
		t.Fatalf("restart must keep the disk: LV %s became %s", lv.uuid, got.uuid)
	}

	// 3. Reset: a fresh snapshot (boot counter back to 1), same identity.
	c = e.reset(c)
	id = e.guestIdentity(c, 1)
	e.expectPersonalized(id, c, "web-one", mac)
	if got := e.lvOf(c); got.uuid == lv.uuid {
		t.Fatalf("reset must take a fresh snapshot, LV %s kept", lv.uuid)
	}

	// 4. A classic snapshot with a small COW area that the guest fills: the agent must extend
	// it before it overflows (it looks every minute), so the guest's disk stays valid. The
	// guest writes while the thin clones are made; step 6 checks the result.
	cf := e.startFill()

	// 5. Thin, from a thin template and from the thick one (external origin).
	thin := e.template("lab-thin", "golden-thin", func(s *vmv1alpha1.VMTemplateSpec) {
		s.Snapshot = vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotThin}
	})
	ct := e.waitRunning(e.clone("thin-1", thin, "thin-one", vmv1alpha1.RunStrategyAlways))
	e.expectPersonalized(e.guestIdentity(ct, 1), ct, "thin-one", ct.Status.Interfaces[0].MAC)
	ce := e.waitRunning(e.clone("ext-1", ext, "ext-one", vmv1alpha1.RunStrategyAlways))
	e.expectPersonalized(e.guestIdentity(ce, 1), ce, "ext-one", ce.Status.Interfaces[0].MAC)
	if l := e.lvOf(ct); !strings.HasPrefix(l.attr, "V") || l.origin != "golden-thin" {
		t.Fatalf("thin clone disk is not a thin snapshot of golden-thin: %+v", l)
	}
	if l := e.lvOf(ce); !strings.HasPrefix(l.attr, "V") || l.origin != "golden-ext" {
		t.Fatalf("thin-from-thick clone disk is not a thin snapshot with external origin golden: %+v", l)
	}

	// 6. Agent upgrades while four guests run: `kubectl rollout restart` of the DaemonSet, then
	// an image change to another build (another version, another digest). Each replaces the
	// agent's pod. No domain is restarted or destroyed (same names, same domain IDs), no clone
	// leaves Running, and the new pod carries on: it extends the filling snapshot (step 7) and
	// deletes everything (step 8).
	doms := "xl list | awk 'NR>1 {print $1, $2}' | sort"
	domsBefore := lab.Sh(t, doms)
	kept := func(what string) {
		t.Helper()
		if after := lab.Sh(t, doms); after != domsBefore {
			t.Fatalf("the agent's %s changed the domains:\nbefore:\n%s\nafter:\n%s", what, domsBefore, after)
		}
		for _, x := range []*vmv1alpha1.VMClone{c, ct, ce, cf} {
			var got vmv1alpha1.VMClone
			if err := e.k.Get(context.Background(), client.ObjectKeyFromObject(x), &got); err != nil {
				t.Fatal(err)
			}
			if got.Status.Phase != vmv1alpha1.PhaseRunning || got.Status.Domain == nil || got.Status.Domain.ID != x.Status.Domain.ID {
				t.Fatalf("%s after the agent's %s: phase %s, domain %+v (was %d)", x.Name, what, got.Status.Phase, got.Status.Domain, x.Status.Domain.ID)
			}
		}
		t.Logf("agent %s: domains unchanged:\n%s", what, domsBefore)
	}
	e.rolloutRestart()
	kept("rollout restart")
	e.upgradeAgent(labAgentNext, labNextVersion)
	kept("image change")

	// 7. The filled snapshot was extended in time.
	cf = e.waitFill(cf)

	// 8. Delete everything: dom0 is left with the templates only.
	for _, x := range []*vmv1alpha1.VMClone{c, ct, ce, cf} {
		e.delete(x)
	}
	e.expectNoLeftovers()
	e.expectNoRefusals()
	if sumAfter := lab.Sh(t, sums); sumAfter != sumBefore {
		t.Fatalf("template checksums changed:\nbefore %s\nafter  %s", sumBefore, sumAfter)
	}
	t.Logf("template checksums unchanged: %s", strings.ReplaceAll(sumBefore, "\n", " "))
	t.Logf("e2e done in %s", time.Since(total).Round(time.Second))
}

// newLabEnv starts the control plane (hack/testenv.StartCluster) and the controller in the test
// process, boots the lab with what dom0 needs to be a node, and makes it one (startNode: the
// kubelet registers it, xenclone is installed); the test then prepares dom0 and starts the
// agent's pod (startAgent).
//
// The manager is the test's process, not the Deployment's pod: it is the same code, the node's
// two emulated CPUs are the lab's bottleneck already (xl create takes 10-15 s under TCG), and
// its log is the test's. The agent, whose pod is where a wrong mount, flag or permission would
// show, is the real DaemonSet pod.
func newLabEnv(t *testing.T) *env {
	t.Helper()
	images := labImages(t)
	assets := nodeAssets(t)
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("KUBEBUILDER_ASSETS is not set")
		}
		t.Skip("SKIP (loudly): KUBEBUILDER_ASSETS is not set")
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(false)))

	cl, err := testenv.StartCluster()
	if err != nil {
		t.Fatalf("start the control plane: %v", err)
	}
	t.Cleanup(cl.Stop)
	cfg := cl.Config

	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = vmv1alpha1.AddToScheme(scheme)
	k, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// xenclone-system comes with the install (startNode).
	if err := k.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "lab"}}); err != nil {
		t.Fatal(err)
	}
	// Each lab test starts its own manager in this one process: controller names repeat.
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.SetupWithManager(mgr, controllers.Options{LeaseNamespace: leaseNamespace, HeartbeatGrace: 60 * time.Second}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()

	// The agent's static binary is in its image; the share has the node's binaries and images.
	share := t.TempDir()
	shareNode(t, cl, assets, share)
	copyFile(t, filepath.Join(images, "guest.img"), filepath.Join(share, "guest.img"))

	// The image server: what a platform team's HTTP server is to its hosts.
	img, err := os.ReadFile(filepath.Join(images, "guest.img"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(img)
	// The same image as qcow2, made by the real qemu-img here, for the qcow2 import.
	qcowPath := filepath.Join(t.TempDir(), "guest.qcow2")
	if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", filepath.Join(images, "guest.img"), qcowPath).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	qcow, err := os.ReadFile(qcowPath)
	if err != nil {
		t.Fatal(err)
	}
	qsum := sha256.Sum256(qcow)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Logf("image server: %s %s", r.Method, r.URL.Path)
		switch r.URL.Path {
		case "/guest.img":
			http.ServeContent(w, r, "guest.img", time.Time{}, bytes.NewReader(img))
		case "/guest.qcow2":
			http.ServeContent(w, r, "guest.qcow2", time.Time{}, bytes.NewReader(qcow))
		default:
			http.NotFound(w, r)
		}
	}), ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	lab := Boot(t, BootOptions{APIPort: apiPort(t, cl), ImagePort: ln.Addr().(*net.TCPAddr).Port, Share: share, Timeout: 35 * time.Minute})
	e := &env{t: t, k: k, cl: cl, lab: lab, ns: "lab", imageURL: "http://10.0.2.101/guest.img", imageSum: "sha256:" + hex.EncodeToString(sum[:]),
		qcowURL: "http://10.0.2.101/guest.qcow2", qcowSum: "sha256:" + hex.EncodeToString(qsum[:])}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dom0 on failure:\n%s", e.dom0State())
		}
	})
	e.startNode()
	return e
}

// labCloudInit: the templates use cloud-init (a file-backed seed disk per clone) unless
// XENCLONE_LAB_CLOUDINIT=0.
// fillMiB is what the fill guest writes: 1 MiB every 10 s into a 16 MiB COW area that the
// agent extends at 50% by 100%. Its usage check runs every minute, so the area has room for
// more than a minute of writing at every check.
const fillMiB = 24

// startFill boots a clone whose guest fills its classic snapshot (hack/lab/guest/init xcfill).
// No cloud-init: one disk, one hotplug script fewer while other clones are created.
func (e *env) startFill() *vmv1alpha1.VMClone {
	e.t.Helper()
	tpl := e.template("lab-fill", "golden", func(s *vmv1alpha1.VMTemplateSpec) {
		cow, maxCOW := resource.MustParse("16Mi"), resource.MustParse("128Mi")
		s.Snapshot = vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotClassic, COWSize: &cow,
			AutoExtend: &vmv1alpha1.AutoExtendPolicy{ThresholdPercent: 50, StepPercent: 100, MaxSize: &maxCOW}}
		s.Domain.Boot.Cmdline += fmt.Sprintf(" xcfill=%d xcfillpace=10", fillMiB)
		off := false
		s.Guest.CloudInit = &off
	})
	return e.waitRunning(e.clone("fill-1", tpl, "fill-one", vmv1alpha1.RunStrategyAlways))
}

// waitFill waits until the fill guest has written everything, with the snapshot still valid,
// never StorageAtRisk, and its COW area extended at least once.
func (e *env) waitFill(c *vmv1alpha1.VMClone) *vmv1alpha1.VMClone {
	e.t.Helper()
	start := time.Now()
	log := "/var/log/xen/console/guest-" + vmv1alpha1.DomainNameOf(c) + ".log"
	var got *vmv1alpha1.VMClone
	var last string
	NewWithT(e.t).Eventually(func(g Gomega) {
		got = e.get(g, c)
		out, err := e.lab.try(context.Background(), time.Minute, "tr -d '\\r' <"+log+" | grep 'XCID fill=' | tail -n1; "+
			"lvs --noheadings -o lv_attr,lv_size,data_percent,lv_tags vg0 | grep owner-uid="+string(c.UID))
		g.Expect(err).NotTo(HaveOccurred())
		last = out
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, vmv1alpha1.ConditionStorageAtRisk)).To(BeFalse(),
			"StorageAtRisk: %+v", meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionStorageAtRisk))
		g.Expect(out).To(ContainSubstring("XCID fill=done"), "guest still writing: %s", out)
		g.Expect(got.Status.Volume).NotTo(BeNil())
		g.Expect(got.Status.Volume.COWSizeBytes).To(BeNumerically(">", 16<<20), "COW area not extended yet")
	}, stepTimeout, 5*time.Second).Should(Succeed(), func() string { return "agent log:\n" + e.agentLog() })
	if l := e.lvOf(got); len(l.attr) < 5 || l.attr[4] == 'I' {
		e.t.Fatalf("the filled snapshot is invalid: %+v", l)
	}
	e.t.Logf("%s/%s: guest wrote %d MiB; COW area extended from 16 to %d MiB (%s%% used), snapshot valid; %s more after the thin clones: %s",
		c.Namespace, c.Name, fillMiB, got.Status.Volume.COWSizeBytes>>20, got.Status.Volume.COWPercent,
		time.Since(start).Round(time.Second), strings.ReplaceAll(strings.TrimSpace(last), "\n", " | "))
	return got
}

func labCloudInit() bool { return os.Getenv("XENCLONE_LAB_CLOUDINIT") != "0" }

func kubeconfig(cfg *rest.Config) []byte {
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	return []byte(`apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: https://10.0.2.100:6443
    tls-server-name: localhost
    certificate-authority-data: ` + b64(cfg.CAData) + `
users:
- name: admin
  user:
    client-certificate-data: ` + b64(cfg.CertData) + `
    client-key-data: ` + b64(cfg.KeyData) + `
contexts:
- name: lab
  context: {cluster: envtest, user: admin}
current-context: lab
`)
}

func (e *env) waitHost() {
	e.t.Helper()
	start := time.Now()
	NewWithT(e.t).Eventually(func(g Gomega) {
		h := &vmv1alpha1.XenHost{}
		g.Expect(e.k.Get(context.Background(), client.ObjectKey{Name: node}, h)).To(Succeed())
	}, stepTimeout, 2*time.Second).Should(Succeed(), "the agent's pod never reported its XenHost; agent log:\n%s", e.agentLog())
	e.t.Logf("the agent's pod reported XenHost %s after %s", node, time.Since(start).Round(100*time.Millisecond))
}

// dom0State is what dom0 looks like, for a failure message: bounded, so a stuck dom0 cannot
// hold the test.
func (e *env) dom0State() string {
	out, err := e.lab.try(context.Background(), 2*time.Minute, `echo "== xl list"; xl list
echo "== lvs"; lvs -a -o lv_name,lv_attr,lv_size,origin,data_percent,lv_tags vg0
echo "== loops"; losetup -a
echo "== mounts"; findmnt -rn -o TARGET,SOURCE | grep xenclone
echo "== /var/lib/xenclone"; find /var/lib/xenclone | head -40
echo "== xl logs"; tail -n 15 /var/log/xen/xl-*.log 2>/dev/null
echo "== hotplug"; tail -n 15 /var/log/xen/xen-hotplug.log
echo "== consoles"; tail -n 12 /var/log/xen/console/*.log 2>/dev/null | tr -d '\r'
echo "== agent log"; `+agentLogScript(120))
	if err != nil {
		out += fmt.Sprintf("\n(dom0 state incomplete: %v)", err)
	}
	return out
}

func (e *env) agentLog() string {
	out, _ := e.lab.try(context.Background(), time.Minute, agentLogScript(40))
	return out
}

func (e *env) template(name, lv string, mutate func(*vmv1alpha1.VMTemplateSpec)) string {
	e.t.Helper()
	mem := resource.MustParse("128Mi")
	vcpus := int32(1)
	// The cloud-init seed is a second, file-backed disk: its /etc/xen/scripts/block add is the
	// slowest hotplug step in the lab (docs/host-lab.md), XENCLONE_LAB_CLOUDINIT=0 leaves it out.
	cloudInit := labCloudInit()
	tpl := &vmv1alpha1.VMTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: vmv1alpha1.VMTemplateSpec{
			Origin: vmv1alpha1.Origin{VolumeGroup: "vg0", LogicalVolume: vmv1alpha1.LVName(lv)},
			Domain: vmv1alpha1.DomainSpec{Type: vmv1alpha1.DomainTypePV, Memory: &mem, VCPUs: &vcpus,
				Boot: &vmv1alpha1.BootSpec{Kernel: "/boot/vmlinuz-domu", Ramdisk: "/var/lib/xclab/domu-initrd.gz",
					Cmdline: "console=hvc0 rdinit=/init quiet"},
				NICs: []vmv1alpha1.NIC{{Bridge: "xenbr0"}}},
			Guest: vmv1alpha1.GuestSpec{RootPartition: 1, RootFilesystem: "ext4", CloudInit: &cloudInit},
		},
	}
	mutate(&tpl.Spec)
	if err := e.k.Create(context.Background(), tpl); err != nil {
		e.t.Fatal(err)
	}
	return name
}

func (e *env) clone(name, tpl, hostname string, rs vmv1alpha1.RunStrategy) *vmv1alpha1.VMClone {
	e.t.Helper()
	c := &vmv1alpha1.VMClone{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: tpl},
			RunStrategy: rs, Hostname: hostname, Placement: &vmv1alpha1.Placement{NodeName: node}},
	}
	if err := e.k.Create(context.Background(), c); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) get(g Gomega, c *vmv1alpha1.VMClone) *vmv1alpha1.VMClone {
	out := &vmv1alpha1.VMClone{}
	g.Expect(e.k.Get(context.Background(), client.ObjectKeyFromObject(c), out)).To(Succeed())
	return out
}

func (e *env) waitPhase(c *vmv1alpha1.VMClone, phase vmv1alpha1.VMClonePhase) *vmv1alpha1.VMClone {
	e.t.Helper()
	start := time.Now()
	var got *vmv1alpha1.VMClone
	NewWithT(e.t).Eventually(func(g Gomega) {
		got = e.get(g, c)
		g.Expect(got.Status.Phase).To(Equal(phase), "message: %s; conditions: %+v", got.Status.Message, got.Status.Conditions)
	}, stepTimeout, time.Second).Should(Succeed(), func() string { return "agent log:\n" + e.agentLog() })
	e.t.Logf("%s/%s %s after %s", c.Namespace, c.Name, phase, time.Since(start).Round(100*time.Millisecond))
	return got
}

func (e *env) waitRunning(c *vmv1alpha1.VMClone) *vmv1alpha1.VMClone {
	e.t.Helper()
	got := e.waitPhase(c, vmv1alpha1.PhaseRunning)
	if len(got.Status.Interfaces) == 0 || got.Status.Domain == nil {
		e.t.Fatalf("running clone without interfaces or domain: %+v", got.Status)
	}
	return got
}

func (e *env) setRunStrategy(c *vmv1alpha1.VMClone, rs vmv1alpha1.RunStrategy) *vmv1alpha1.VMClone {
	e.t.Helper()
	var got *vmv1alpha1.VMClone
	NewWithT(e.t).Eventually(func(g Gomega) {
		got = e.get(g, c)
		patch := client.MergeFrom(got.DeepCopy())
		got.Spec.RunStrategy = rs
		g.Expect(e.k.Patch(context.Background(), got, patch)).To(Succeed())
	}, 30*time.Second).Should(Succeed())
	e.t.Logf("%s/%s runStrategy %s", c.Namespace, c.Name, rs)
	return got
}

func (e *env) reset(c *vmv1alpha1.VMClone) *vmv1alpha1.VMClone {
	e.t.Helper()
	start := time.Now()
	var got *vmv1alpha1.VMClone
	g := NewWithT(e.t)
	g.Eventually(func(g Gomega) {
		got = e.get(g, c)
		patch := client.MergeFrom(got.DeepCopy())
		got.Spec.ResetRequests++
		g.Expect(e.k.Patch(context.Background(), got, patch)).To(Succeed())
	}, 30*time.Second).Should(Succeed())
	want := got.Spec.ResetRequests
	g.Eventually(func(g Gomega) {
		got = e.get(g, c)
		g.Expect(got.Status.ObservedResetRequests).To(Equal(want))
		g.Expect(got.Status.Phase).To(Equal(vmv1alpha1.PhaseRunning))
	}, stepTimeout, time.Second).Should(Succeed(), func() string { return "agent log:\n" + e.agentLog() })
	e.t.Logf("%s/%s reset and Running after %s", c.Namespace, c.Name, time.Since(start).Round(100*time.Millisecond))
	return got
}

func (e *env) delete(c *vmv1alpha1.VMClone) {
	e.t.Helper()
	start := time.Now()
	if err := e.k.Delete(context.Background(), c); err != nil && !apierrors.IsNotFound(err) {
		e.t.Fatal(err)
	}
	e.waitGone(c)
	e.t.Logf("%s/%s deleted after %s", c.Namespace, c.Name, time.Since(start).Round(100*time.Millisecond))
}

// waitGone waits for a clone to be gone: deleted by us, its claim or its pool.
func (e *env) waitGone(c *vmv1alpha1.VMClone) {
	e.t.Helper()
	NewWithT(e.t).Eventually(func() bool {
		return apierrors.IsNotFound(e.k.Get(context.Background(), client.ObjectKeyFromObject(c), &vmv1alpha1.VMClone{}))
	}, stepTimeout, time.Second).Should(BeTrue(), func() string { return "agent log:\n" + e.agentLog() })
}

// identity is what the guest printed about itself on one boot (XCID lines, hack/lab/guest/init).
type identity map[string]string

var xcid = regexp.MustCompile(`XCID ([a-z-]+(?: [a-z0-9]+)?)=(.*)`)

// guestIdentity waits for boot number `boot` of the clone's domain to print "XCID ready" on its
// console (xenconsoled's log in dom0) and returns that boot's lines.
func (e *env) guestIdentity(c *vmv1alpha1.VMClone, boot int) identity {
	e.t.Helper()
	log := "/var/log/xen/console/guest-" + vmv1alpha1.DomainNameOf(c) + ".log"
	start := time.Now()
	var id identity
	var lines []string
	NewWithT(e.t).Eventually(func(g Gomega) {
		out, err := e.lab.Try("cat " + log + " 2>/dev/null | tr -d '\\r' | grep XCID || true")
		g.Expect(err).NotTo(HaveOccurred())
		id, lines = nil, nil
		for _, l := range strings.Split(out, "\n") {
			if i := strings.Index(l, "XCID "); i >= 0 {
				l = l[i:]
			} else {
				continue
			}
			if strings.HasPrefix(l, "XCID boot=") {
				id, lines = identity{}, nil
			}
			if id == nil {
				continue
			}
			lines = append(lines, l)
			if m := xcid.FindStringSubmatch(l); m != nil {
				id[m[1]] = strings.TrimSpace(m[2])
			} else if strings.TrimSpace(l) == "XCID ready" {
				id["ready"] = "yes"
			}
		}
		g.Expect(id).To(HaveKeyWithValue("boot", fmt.Sprint(boot)), "console so far:\n%s", out)
		g.Expect(id).To(HaveKey("ready"), "console so far:\n%s", out)
	}, stepTimeout, 2*time.Second).Should(Succeed())
	e.t.Logf("guest console of %s (boot %d, ready %s after Running):\n    %s", vmv1alpha1.DomainNameOf(c), boot,
		time.Since(start).Round(100*time.Millisecond), strings.Join(lines, "\n    "))
	return id
}

// expectPersonalized: the template's machine data is gone and the clone's identity is there,
// as the booted guest sees it.
func (e *env) expectPersonalized(id identity, c *vmv1alpha1.VMClone, hostname, mac string) {
	e.t.Helper()
	g := NewWithT(e.t)
	g.Expect(id["hostname"]).To(Equal(hostname), "hostname")
	g.Expect(id["machine-id"]).NotTo(ContainSubstring(templateMachineID), "machine-id must be scrubbed")
	g.Expect(id["hwaddr"]).To(Equal("absent"), "ifcfg-eth0 HWADDR= must be scrubbed")
	g.Expect(id["ssh-host-keys"]).To(Equal("0"), "ssh host keys must be scrubbed")
	g.Expect(id["udev-net-rules"]).To(Equal("0"), "udev persistent-net rules must be scrubbed")
	g.Expect(id["mac eth0"]).To(Equal(mac), "the guest's NIC must carry the clone's MAC")
	if labCloudInit() {
		// The seed's meta-data has YAML double-quoted scalars; the guest prints them raw.
		g.Expect(strings.ReplaceAll(id["cidata"], `"`, "")).To(Equal("yes instance-id="+string(c.UID)+" local-hostname="+hostname),
			"cloud-init seed as the guest reads it")
	} else {
		g.Expect(id["cidata"]).To(Equal("no"), "no seed disk without cloud-init")
	}
}

type lvInfo struct{ name, uuid, attr, origin string }

func (e *env) lvOf(c *vmv1alpha1.VMClone) lvInfo {
	e.t.Helper()
	out := e.lab.Sh(e.t, "lvs --noheadings --separator '|' -o lv_name,lv_uuid,lv_attr,origin,lv_tags vg0")
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(l), "|")
		if len(f) == 5 && strings.Contains(f[4], "owner-uid="+string(c.UID)) {
			return lvInfo{name: f[0], uuid: f[1], attr: f[2], origin: f[3]}
		}
	}
	e.t.Fatalf("no LV owned by %s/%s:\n%s", c.Namespace, c.Name, out)
	return lvInfo{}
}

// expectNoLeftovers: no LV but the templates and pool, no domain but dom0, no guest mount or
// loop device, no domain config, seed or lock file, and a fence journal that names no clone.
func (e *env) expectNoLeftovers() {
	e.t.Helper()
	out := e.lab.Sh(e.t, `echo "lvs: $(lvs --noheadings -o lv_name vg0 | tr -s ' \n' ' ')"
echo "domains: $(xl list | awk 'NR>1 {print $1}' | tr '\n' ' ')"
# /var/lib/xenclone/mnt itself stays: the agent's private bind mount (guest.ensurePrivateMntDir).
echo "mounts: $(findmnt -rn -o TARGET | grep /var/lib/xenclone | grep -vcx /var/lib/xenclone/mnt)"
echo "loops: $(losetup -n -l | wc -l)"
# The fence journal stays (the agent's own state, not a clone's); it must name no clone.
echo "configs: $(find /var/lib/xenclone -type f ! -name fence-journal.json | wc -l)"
echo "journal clones: $(grep -o '"uid"' /var/lib/xenclone/fence-journal.json | wc -l)"
find /var/lib/xenclone -type f | head`)
	e.t.Logf("dom0 after delete:\n%s", out)
	g := NewWithT(e.t)
	g.Expect(out).To(ContainSubstring("domains: Domain-0 \n"))
	g.Expect(out).To(ContainSubstring("mounts: 0\n"))
	g.Expect(out).To(ContainSubstring("loops: 0\n"))
	g.Expect(out).To(ContainSubstring("configs: 0\n"))
	g.Expect(out).To(ContainSubstring("journal clones: 0\n"))
	lvs := strings.Fields(strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "lvs:"))
	g.Expect(lvs).To(ConsistOf("golden", "golden-thin", "golden-ext", "pool"), "LVs left in vg0")
}
