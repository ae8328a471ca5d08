package controllers

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hack/testenv"
)

// The envtest suite: a real kube-apiserver + etcd with the generated CRDs, the controller's
// reconcilers running in a manager, and tests that play the host agents (XenHosts with status
// written through the status subresource, heartbeat Leases).
var (
	k8sClient client.Client
	// managerCache is what the controller reads: fixtures wait on it, not on the API server,
	// so a test's next step never races the controller's view (a host it has not seen yet
	// makes a lost host look like the whole fleet lost, and rescheduling pauses for a grace).
	managerCache cache.Cache
	// fakeClock is the controller's clock: tests move it to expire lifetimes and age
	// heartbeats without sleeping.
	fakeClock *clocktesting.FakeClock
	// heartbeats is the controller's liveness tracker: fixtures wait until it has seen the
	// renewals they write, so a clock step that follows never races the controller's view.
	heartbeats *Heartbeats
)

const (
	testLeaseNamespace = "xenclone-system"
	eventually         = 20 * time.Second
	poll               = 50 * time.Millisecond
)

func TestMain(m *testing.M) {
	if !testenv.Available("the controller envtest suite") {
		// Unit tests (placement, MACs, expiry, pools) run without the control plane.
		os.Exit(m.Run())
	}
	os.Exit(runSuite(m))
}

// envtestAvailable is false when the control plane is not running (unit tests only).
var envtestAvailable bool

func needEnvtest(t *testing.T) {
	t.Helper()
	if !envtestAvailable {
		t.Skip("SKIP (loudly): needs KUBEBUILDER_ASSETS (envtest control plane)")
	}
}

func runSuite(m *testing.M) int {
	// Controller logs only on request (TEST_VERBOSE_CONTROLLER=1): the tests' own failures say
	// what went wrong.
	var logTo io.Writer = io.Discard
	if os.Getenv("TEST_VERBOSE_CONTROLLER") != "" {
		logTo = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logTo), zap.UseDevMode(true)))
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	cfg, scheme := env.Config, env.Scheme
	k8sClient = env.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testLeaseNamespace}}); err != nil {
		fmt.Fprintln(os.Stderr, "create lease namespace:", err)
		return 1
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	managerCache = mgr.GetCache()
	fakeClock = clocktesting.NewFakeClock(time.Now())
	if heartbeats, err = setupWithManager(mgr, Options{
		LeaseNamespace: testLeaseNamespace,
		HeartbeatGrace: 40 * time.Second,
		Clock:          fakeClock,
	}); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	envtestAvailable = true
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
	}
	return code
}

// --- fixtures: every test uses its own names and deletes what it created -------------------

// uniq returns a name unique to this run, so tests never see each other's objects. A counter,
// not a random draw: with hundreds of names per run, random 6-digit suffixes collided (a test
// failed creating a namespace another test was still deleting).
func uniq(prefix string) string {
	return fmt.Sprintf("%s-%06d", prefix, (uniqBase+uniqSeq.Add(1))%1_000_000)
}

var (
	uniqBase = rand.Uint64N(1_000_000)
	uniqSeq  atomic.Uint64
)

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: uniq("t")}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// envtest runs no namespace controller: delete the clones explicitly.
		_ = k8sClient.DeleteAllOf(context.Background(), &vmv1alpha1.VMClonePool{}, client.InNamespace(ns.Name))
		_ = k8sClient.DeleteAllOf(context.Background(), &vmv1alpha1.VMClone{}, client.InNamespace(ns.Name))
		_ = k8sClient.Delete(context.Background(), ns)
	})
	return ns.Name
}

// newTemplate creates a classic-snapshot template; the cleanup waits for the controller to
// release its finalizer once the test's clones are gone.
func newTemplate(t *testing.T, memory string, mods ...func(*vmv1alpha1.VMTemplate)) *vmv1alpha1.VMTemplate {
	t.Helper()
	tmpl := testTemplate(memory)
	tmpl.Name = uniq("tmpl")
	tmpl.Spec.Domain.NICs = []vmv1alpha1.NIC{{Bridge: "xenbr0"}}
	for _, m := range mods {
		m(tmpl)
	}
	if err := k8sClient.Create(context.Background(), tmpl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		// Cleanups run last-in first-out, so the test's clones still exist here: delete them
		// first, or the template's finalizer rightly holds it.
		var clones vmv1alpha1.VMCloneList
		_ = k8sClient.List(ctx, &clones)
		for i := range clones.Items {
			if clones.Items[i].Spec.TemplateRef.Name == tmpl.Name {
				_ = k8sClient.Delete(ctx, &clones.Items[i])
			}
		}
		_ = k8sClient.Delete(ctx, tmpl)
		g := NewWithT(t)
		g.Eventually(func() bool {
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(tmpl), &vmv1alpha1.VMTemplate{})
			return client.IgnoreNotFound(err) == nil && err != nil
		}).WithTimeout(eventually).WithPolling(poll).Should(BeTrue(), "template %s not released", tmpl.Name)
	})
	return tmpl
}

// newHost plays a hostagent: a XenHost whose status says it has the templates, free memory
// and VG space given, and a fresh heartbeat Lease.
func newHost(t *testing.T, freeMiB int64, templates []string, opts ...hostOpt) *vmv1alpha1.XenHost {
	t.Helper()
	ctx := context.Background()
	h := testHost(uniq("host"), freeMiB, opts...)
	h.Status.Templates = nil
	for _, tn := range templates {
		h.Status.Templates = append(h.Status.Templates, vmv1alpha1.HostTemplateStatus{Name: tn, ReadOnly: true, SizeBytes: 8 << 30})
	}
	status := h.Status
	// Heartbeat first, as a starting agent does: a XenHost without one is marked not Ready.
	renewLease(t, h.Name, fakeClock.Now())
	if err := k8sClient.Create(ctx, &h); err != nil {
		t.Fatal(err)
	}
	reportHost(t, &h, func(st *vmv1alpha1.XenHostStatus) { *st = status })
	t.Cleanup(func() {
		// The XenHost goes first, and out of the controller's cache before its Lease: a host
		// the controller still lists without a Lease counts as lost, and a next test's one
		// lost host would look like most of the fleet lost (rescheduling paused).
		_ = k8sClient.Delete(ctx, &h)
		waitCached(t, &vmv1alpha1.XenHost{ObjectMeta: metav1.ObjectMeta{Name: h.Name}}, nil)
		_ = k8sClient.Delete(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: testLeaseNamespace, Name: h.Name}})
	})
	return &h
}

// reportHost writes the host's status as its agent would: a patch of the fields the agent
// reports, without a resourceVersion. The controller writes the XenHost's Ready condition
// (HeartbeatLost when the Lease is not in its cache yet) at any moment; an Update carrying the
// resourceVersion this test read would conflict with that write.
func reportHost(t *testing.T, h *vmv1alpha1.XenHost, report func(*vmv1alpha1.XenHostStatus)) {
	t.Helper()
	base := h.DeepCopy()
	report(&h.Status)
	if err := k8sClient.Status().Patch(context.Background(), h, client.MergeFrom(base)); err != nil {
		t.Fatalf("report XenHost %s status: %v", h.Name, err)
	}
	want := h.DeepCopy()
	waitCached(t, want, func(got client.Object) bool {
		return equality.Semantic.DeepEqual(placementView(got.(*vmv1alpha1.XenHost)), placementView(want))
	})
}

// waitCached waits until the controller's cache shows obj so that ok(cached) holds, or, with
// ok nil, no longer shows it.
func waitCached(t *testing.T, obj client.Object, ok func(cached client.Object) bool) {
	t.Helper()
	g := NewWithT(t)
	g.Eventually(func() bool {
		cached := obj.DeepCopyObject().(client.Object)
		err := managerCache.Get(context.Background(), client.ObjectKeyFromObject(obj), cached)
		if ok == nil {
			return apierrors.IsNotFound(err)
		}
		return err == nil && ok(cached)
	}).WithTimeout(eventually).WithPolling(10*time.Millisecond).Should(BeTrue(),
		"the controller's cache never caught up with %T %s", obj, obj.GetName())
}

// renewLease writes the host's heartbeat as its agent would: renewTime at, on the agent's
// clock (which the controller only compares with the value before), and a new Lease says its
// agent fences after 60 s. It returns once the controller has seen the renewal: the controller
// counts liveness from when it saw renewTime change, so a test that then steps the
// controller's clock ages exactly this renewal.
func renewLease(t *testing.T, host string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	mt := metav1.NewMicroTime(at)
	l := &coordinationv1.Lease{}
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: testLeaseNamespace, Name: host}, l)
	if err != nil {
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: testLeaseNamespace, Name: host,
				Annotations: map[string]string{vmv1alpha1.FenceAfterAnnotation: vmv1alpha1.DefaultFenceAfter.String()}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &host, RenewTime: &mt, LeaseDurationSeconds: ptrTo(int32(40))},
		}
		if err := k8sClient.Create(ctx, l); err != nil {
			t.Fatal(err)
		}
	} else {
		l.Spec.RenewTime = &mt
		if err := k8sClient.Update(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	// The API server keeps microseconds.
	want := at.Truncate(time.Microsecond)
	NewWithT(t).Eventually(func() bool {
		seen, ok := heartbeats.renewedAt(host)
		return ok && seen.Equal(want)
	}).WithTimeout(eventually).WithPolling(10*time.Millisecond).Should(BeTrue(),
		"the controller never saw host %s's renewal at %s", host, want)
}

// touchLease writes the host's Lease without renewing it (renewTime unchanged), as an agent
// updating only its annotations would; the Lease event wakes the host liveness reconciler,
// which is how a test lets the controller notice that a clock step made a host stale.
func touchLease(t *testing.T, host string) {
	t.Helper()
	patch := client.RawPatch("application/merge-patch+json",
		fmt.Appendf(nil, `{"metadata":{"annotations":{"test.xenclone.dev/touch":"%d"}}}`, time.Now().UnixNano()))
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: testLeaseNamespace, Name: host}}
	if err := k8sClient.Patch(context.Background(), l, patch); err != nil {
		t.Fatal(err)
	}
}

// setFenceAfter sets the host's fence-after annotation as its agent would ("" removes it, as
// on an agent too old to fence), without renewing. The Lease cache delivers a Lease's changes
// in order, so whatever the controller reads after a later touchLease's event carries it.
func setFenceAfter(t *testing.T, host, value string) {
	t.Helper()
	v := "null"
	if value != "" {
		v = fmt.Sprintf("%q", value)
	}
	patch := client.RawPatch("application/merge-patch+json",
		fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%s}}}`, vmv1alpha1.FenceAfterAnnotation, v))
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: testLeaseNamespace, Name: host}}
	if err := k8sClient.Patch(context.Background(), l, patch); err != nil {
		t.Fatal(err)
	}
}

func newClone(t *testing.T, ns, tmpl string, mods ...func(*vmv1alpha1.VMClone)) *vmv1alpha1.VMClone {
	t.Helper()
	c := &vmv1alpha1.VMClone{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uniq("vm")},
		Spec:       vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: tmpl}},
	}
	for _, m := range mods {
		m(c)
	}
	if err := k8sClient.Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

func withMemory(q string) func(*vmv1alpha1.VMClone) {
	return func(c *vmv1alpha1.VMClone) {
		m := resource.MustParse(q)
		c.Spec.Resources = &vmv1alpha1.CloneResources{Memory: &m}
	}
}

func get(g Gomega, obj client.Object) {
	g.ExpectWithOffset(1, k8sClient.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
}

func ptrTo[T any](v T) *T { return &v }

// TestFixtureReportSurvivesControllerWrite pins down the suite's old race deterministically: a
// XenHost whose Lease the controller's cache does not show yet gets its Ready condition
// written by the controller (HeartbeatLost) right after its creation; the fixture's report of
// the agent's fields, from the copy read before that write, must still land (an Update with
// that copy's resourceVersion conflicted: TestBurstOf200NeverOvercommits' setup under load).
func TestFixtureReportSurvivesControllerWrite(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ctx := context.Background()
	h := testHost(uniq("host"), 4096)
	h.Status = vmv1alpha1.XenHostStatus{}
	g.Expect(k8sClient.Create(ctx, &h)).To(Succeed()) // no Lease: the controller marks it lost
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, &h) })
	read := h.DeepCopy()
	g.Eventually(func(g Gomega) {
		var cur vmv1alpha1.XenHost
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(&h), &cur)).To(Succeed())
		g.Expect(cur.ResourceVersion).NotTo(Equal(read.ResourceVersion), "the controller has not written the host yet")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	reportHost(t, read, func(st *vmv1alpha1.XenHostStatus) { st.Memory.FreeMiB = 4096 })
	var got vmv1alpha1.XenHost
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(&h), &got)).To(Succeed())
	g.Expect(got.Status.Memory.FreeMiB).To(BeEquivalentTo(4096))
	g.Expect(got.Status.Conditions).NotTo(BeEmpty(), "the controller's Ready condition is kept")
}
