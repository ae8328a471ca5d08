package admission

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/controllers"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/sim"
)

// TestAgentRunsUnderItsGeneratedRBAC runs the real node agent and the real controller as their
// service accounts, with only the generated roles (ClusterRole + Role in the lease namespace)
// and the admission policy: the agent must renew its Lease and report its XenHost, the
// controller must place a clone with cloud-init user data, the agent must bring it to Running,
// and a delete must leave nothing. This is what the pods get in a cluster; the other envtest
// suites run both as cluster admin, which would hide a missing verb.
func TestAgentRunsUnderItsGeneratedRBAC(t *testing.T) {
	const node = "xen-r"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	xl := filepath.Join(dir, "xl")
	if out, err := exec.Command("go", "build", "-o", xl, "../../hostagent/xen/xlsim/cmd/xl").CombinedOutput(); err != nil {
		t.Fatalf("build xl simulator: %v\n%s", err, out)
	}
	h, err := sim.NewHost(ctx, node, filepath.Join(dir, node), sim.HostOptions{
		MemoryMiB: 8192, Templates: map[string]uint64{"debian12": 4 << 30}, XL: []string{xl}})
	if err != nil {
		t.Fatal(err)
	}

	agentCfg := rest.CopyConfig(cfg)
	agentCfg.Impersonate = rest.ImpersonationConfig{
		UserName: agentSA,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:xenclone-system", "system:authenticated"},
		Extra:    map[string][]string{nodeExtra: {node}},
	}
	mgr, err := ctrl.NewManager(agentCfg, ctrl.Options{
		Scheme: scheme, Cache: hostagent.CacheOptions(node), MapperProvider: hostagent.MapperProvider,
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := hostagent.SetupWithManager(mgr, hostagent.Options{
		NodeName: node, Host: h.AgentHost(), LeaseNamespace: leaseNS, RenewInterval: time.Second,
		ShutdownGrace: time.Second, OrphanInterval: time.Second, OrphanGrace: time.Hour,
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	defer func() { cancel(); <-done }()

	within := func(what string, d time.Duration, ok func() bool) bool {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			if ok() {
				return true
			}
		}
		t.Errorf("agent under its own RBAC: %s did not happen within %s", what, d)
		return false
	}
	if !within("heartbeat Lease "+leaseNS+"/"+node+" renewed", 20*time.Second, func() bool {
		var l coordinationv1.Lease
		return admin.Get(ctx, types.NamespacedName{Namespace: leaseNS, Name: node}, &l) == nil
	}) {
		// Known bug (found by this test): the agent reads its Lease (and cloud-init Secrets)
		// through the manager's cache, which starts a cluster-wide informer that needs
		// list+watch; the generated role grants get only, so the informer never syncs, the
		// Get blocks, and the manager's controllers wait behind it. Fix in hostagent/agent.go:
		// read Lease and Secret with mgr.GetAPIReader() (or DisableFor them in the client).
		t.Fatal("the agent cannot renew its heartbeat under its generated RBAC: every host would count as lost")
	}
	within("XenHost "+node+" reported", 20*time.Second, func() bool {
		var x vmv1alpha1.XenHost
		return admin.Get(ctx, types.NamespacedName{Name: node}, &x) == nil && x.Status.Memory.TotalMiB > 0
	})

	startController(ctx, t)

	// A clone with user data; the controller places it on the only host.
	mem, cow := resource.MustParse("256Mi"), resource.MustParse("64Mi")
	tpl := &vmv1alpha1.VMTemplate{ObjectMeta: metav1.ObjectMeta{Name: "debian12-rbac"}, Spec: vmv1alpha1.VMTemplateSpec{
		Origin:   vmv1alpha1.Origin{VolumeGroup: "vg0", LogicalVolume: "debian12"},
		Snapshot: vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotClassic, COWSize: &cow},
		Domain:   vmv1alpha1.DomainSpec{Memory: &mem, Boot: &vmv1alpha1.BootSpec{Bootloader: "pygrub"}, NICs: []vmv1alpha1.NIC{{Bridge: "xenbr0"}}},
	}}
	if err := admin.Create(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.Background(), tpl) })
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web-userdata"},
		StringData: map[string]string{"user-data": "#cloud-config\n"}}
	if err := admin.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.Background(), sec) })
	c := &vmv1alpha1.VMClone{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web-rbac-1"},
		Spec: vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: tpl.Name},
			CloudInit: &vmv1alpha1.CloudInitSpec{UserData: &vmv1alpha1.SecretKeyReference{Name: sec.Name, Key: "user-data"}}},
	}
	if err := admin.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cur := &vmv1alpha1.VMClone{}
		if admin.Get(context.Background(), client.ObjectKeyFromObject(c), cur) == nil {
			p := client.MergeFrom(cur.DeepCopy())
			cur.Finalizers = nil
			_ = admin.Patch(context.Background(), cur, p)
			_ = admin.Delete(context.Background(), cur)
		}
		_ = h.XL(context.Background(), "sim-init")
		_ = os.RemoveAll(dir)
	})
	var got vmv1alpha1.VMClone
	if !within("clone Running", 30*time.Second, func() bool {
		return admin.Get(ctx, client.ObjectKeyFromObject(c), &got) == nil && got.Status.Phase == vmv1alpha1.PhaseRunning
	}) {
		t.Logf("clone status: phase %q message %q conditions %+v", got.Status.Phase, got.Status.Message, got.Status.Conditions)
	}
	if got.Status.NodeName != node {
		t.Errorf("clone bound to %q, want %s", got.Status.NodeName, node)
	}

	// The agent read the user data from the controller's copy (it may read no tenant Secret).
	copyKey := types.NamespacedName{Namespace: leaseNS, Name: vmv1alpha1.CloudInitCopyName(string(got.UID))}
	var cp corev1.Secret
	if err := admin.Get(ctx, copyKey, &cp); err != nil {
		t.Errorf("cloud-init copy %s: %v", copyKey, err)
	} else if string(cp.Data[vmv1alpha1.CloudInitUserDataKey]) != "#cloud-config\n" {
		t.Errorf("cloud-init copy holds %q, want the Secret's user-data", cp.Data[vmv1alpha1.CloudInitUserDataKey])
	}

	// Delete: the agent tears down and releases its finalizer under its own role.
	if err := admin.Delete(ctx, &got); err != nil {
		t.Fatal(err)
	}
	within("clone deleted (finalizer released by the agent)", 30*time.Second, func() bool {
		return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKeyFromObject(c), &vmv1alpha1.VMClone{}))
	})
	within("cloud-init copy deleted with its clone", 20*time.Second, func() bool {
		return apierrors.IsNotFound(admin.Get(ctx, copyKey, &corev1.Secret{}))
	})
	if lvs := h.Storage.LVs("vg0"); len(lvs) != 1 {
		t.Errorf("after delete: LVs in vg0 = %v, want only the template", lvs)
	}
}

// startController runs the real controller as its service account, under only the generated
// manager roles, until ctx ends.
func startController(ctx context.Context, t *testing.T) {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{
		UserName: managerSA,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:xenclone-system", "system:authenticated"},
	}
	mgr, err := ctrl.NewManager(c, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.SetupWithManager(mgr, controllers.Options{LeaseNamespace: leaseNS}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	t.Cleanup(func() { <-done })
}
