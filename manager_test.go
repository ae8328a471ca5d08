package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/controllers"
	"github.com/xenclone/xenclone/hack/testenv"
)

// defaultManagerOptions are `xenclone manager`'s options with no flags given but the two
// listen addresses (two managers share the test's network namespace).
func defaultManagerOptions(t *testing.T) *managerOptions {
	t.Helper()
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	o := managerFlags(fs)
	if err := fs.Parse([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0"}); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestManagerElectsByDefault(t *testing.T) {
	o := defaultManagerOptions(t)
	if !o.leaderElect {
		t.Fatal("xenclone manager must elect a leader unless told not to (--leader-elect=false)")
	}
}

func TestPlaygroundElectsOnAnExistingCluster(t *testing.T) {
	for _, existing := range []bool{false, true} {
		o := playgroundFlags(flag.NewFlagSet("playground", flag.ContinueOnError))
		o.useExistingCluster = existing
		m := o.managerOptions()
		if m.leaderElect != existing {
			t.Errorf("use-existing-cluster=%t: leader election %t; want it exactly on a cluster other managers may share", existing, m.leaderElect)
		}
		if existing && m.leaderElectionNS != controllers.DefaultLeaseNamespace {
			t.Errorf("use-existing-cluster: leader election namespace %q, want the namespace the playground creates (%s)", m.leaderElectionNS, controllers.DefaultLeaseNamespace)
		}
	}
}

// TestTwoManagersOneActs starts two `xenclone manager`s with their default options against one
// API server, as the README's --use-existing-cluster path does next to a cluster's own manager:
// only one may act (bind clones, allocate MACs), or both allocate MACs from their own caches
// and can hand out the same one twice. When the acting one stops, the other takes over.
func TestTwoManagersOneActs(t *testing.T) {
	if !testenv.Available("TestTwoManagersOneActs") {
		t.Skip("SKIP (loudly): needs KUBEBUILDER_ASSETS")
	}
	// Outside a pod, whatever machine the test runs on.
	inClusterNamespaceFile = filepath.Join(t.TempDir(), "no-such-file")
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	g := NewWithT(t)
	ctx := context.Background()
	c := env.Client

	type running struct {
		mgr    ctrl.Manager
		cancel context.CancelFunc
		done   chan error
	}
	start := func() *running {
		o := defaultManagerOptions(t)
		g.Expect(prepareLeaderElection(ctx, env.Config, o)).To(Succeed())
		g.Expect(o.leaderElectionNS).To(Equal(controllers.DefaultLeaseNamespace))
		o.sharedProcess = true
		mgr, err := newManager(env.Config, o)
		g.Expect(err).NotTo(HaveOccurred())
		mctx, cancel := context.WithCancel(ctx)
		r := &running{mgr: mgr, cancel: cancel, done: make(chan error, 1)}
		go func() { r.done <- mgr.Start(mctx) }()
		t.Cleanup(func() { cancel(); <-r.done })
		return r
	}
	managers := []*running{start(), start()}
	elected := func() []int {
		var out []int
		for i, m := range managers {
			select {
			case <-m.mgr.Elected():
				out = append(out, i)
			default:
			}
		}
		return out
	}

	// A host that has the template, with a fresh heartbeat, as its agent would report it.
	const host = "xen-01"
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: controllers.DefaultLeaseNamespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	now := metav1.NewMicroTime(time.Now())
	g.Expect(c.Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: controllers.DefaultLeaseNamespace, Name: host},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptrTo(host), RenewTime: &now, LeaseDurationSeconds: ptrTo(int32(40))},
	})).To(Succeed())
	xh := &vmv1alpha1.XenHost{ObjectMeta: metav1.ObjectMeta{Name: host}}
	g.Expect(c.Create(ctx, xh)).To(Succeed())
	xh.Status = vmv1alpha1.XenHostStatus{
		Memory:       vmv1alpha1.HostMemory{TotalMiB: 1 << 20, FreeMiB: 1 << 20},
		VolumeGroups: []vmv1alpha1.VolumeGroupStatus{{Name: "vg0", SizeBytes: 1 << 42, FreeBytes: 1 << 42}},
		Templates:    []vmv1alpha1.HostTemplateStatus{{Name: "debian12", ReadOnly: true, SizeBytes: 8 << 30}},
	}
	g.Expect(c.Status().Update(ctx, xh)).To(Succeed())
	mem, cow := resource.MustParse("256Mi"), resource.MustParse("64Mi")
	g.Expect(c.Create(ctx, &vmv1alpha1.VMTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "debian12"},
		Spec: vmv1alpha1.VMTemplateSpec{
			Origin:   vmv1alpha1.Origin{VolumeGroup: "vg0", LogicalVolume: "debian12"},
			Snapshot: vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotClassic, COWSize: &cow},
			Domain:   vmv1alpha1.DomainSpec{Memory: &mem, NICs: []vmv1alpha1.NIC{{Bridge: "xenbr0"}}},
		},
	})).To(Succeed())

	newClones := func(prefix string, n int) []*vmv1alpha1.VMClone {
		var out []*vmv1alpha1.VMClone
		for i := range n {
			vm := &vmv1alpha1.VMClone{
				ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("%s-%d", prefix, i)},
				Spec:       vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: "debian12"}},
			}
			g.Expect(c.Create(ctx, vm)).To(Succeed())
			out = append(out, vm)
		}
		return out
	}
	allBound := func(clones []*vmv1alpha1.VMClone) func(Gomega) {
		return func(g Gomega) {
			macs := map[string]string{}
			for _, vm := range clones {
				got := &vmv1alpha1.VMClone{}
				g.Expect(c.Get(ctx, client.ObjectKeyFromObject(vm), got)).To(Succeed())
				g.Expect(got.Status.NodeName).To(Equal(host), "%s not bound", vm.Name)
				g.Expect(got.Status.Interfaces).To(HaveLen(1))
				mac := got.Status.Interfaces[0].MAC
				g.Expect(macs).NotTo(HaveKey(mac), "MAC %s handed out twice", mac)
				macs[mac] = vm.Name
			}
		}
	}

	clones := newClones("vm", 30)
	g.Eventually(allBound(clones)).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	leaders := elected()
	g.Expect(leaders).To(HaveLen(1), "exactly one manager may act")
	// The other stays on standby: its controllers never start while the leader renews.
	g.Consistently(elected).WithTimeout(3 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(leaders))

	// The leader goes (a rolling update, a crash): it releases its Lease, the standby takes
	// over and binds what comes next.
	leader := managers[leaders[0]]
	leader.cancel()
	if err := <-leader.done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("leader stopped with %v", err)
	}
	leader.done <- nil // for the cleanup's receive
	standby := managers[1-leaders[0]]
	g.Eventually(standby.mgr.Elected()).WithTimeout(60*time.Second).Should(BeClosed(), "the standby takes over")
	more := newClones("after", 5)
	g.Eventually(allBound(append(clones, more...))).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}
