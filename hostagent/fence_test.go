package hostagent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// domains is a hypervisor holding running domains by name (with their UUID), recording
// destroys.
type domains struct {
	Hypervisor
	mu        sync.Mutex
	running   map[string]string // name -> uuid
	destroyed []string
}

func (d *domains) List(context.Context) ([]xen.DomainInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []xen.DomainInfo
	for n := range d.running {
		out = append(out, xen.DomainInfo{Name: n, ID: 7})
	}
	return out, nil
}

func (d *domains) Lookup(_ context.Context, name string) (xen.DomainInfo, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.running[name]
	return xen.DomainInfo{Name: name, ID: 7}, ok, nil
}

func (d *domains) DestroyOwned(_ context.Context, name, uuid string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.running[name]
	if !ok {
		return xen.ErrNoSuchDomain
	}
	if u != uuid {
		return xen.ErrNotOwned
	}
	delete(d.running, name)
	d.destroyed = append(d.destroyed, name)
	return nil
}

func (d *domains) isRunning(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.running[name]
	return ok
}

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := vmv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := coordinationv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// fenceClone is clone number n, bound to node at binding generation 1.
func fenceClone(name string, n int, node string, reschedule bool) *vmv1alpha1.VMClone {
	c := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(fmt.Sprintf("u%d", n))},
		Status: vmv1alpha1.VMCloneStatus{NodeName: node, UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), BindingGeneration: 1}}
	if reschedule {
		c.Spec.Placement = &vmv1alpha1.Placement{OnNodeLost: vmv1alpha1.NodeLostReschedule}
	}
	return c
}

// TestFencerStopsRescheduleClonesWhenCutOff: once no renewal has succeeded for fenceAfter
// (counted from the send time of the last one that did), the domain of a clone with
// onNodeLost: Reschedule is destroyed and may not start again; a clone that did not opt in
// keeps running. After renewals succeed again, the fenced clone starts only once a live read
// showed it still bound here with the binding the cache shows.
func TestFencerStopsRescheduleClonesWhenCutOff(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0))
	moving, staying := fenceClone("moving", 1, "xen-a", true), fenceClone("staying", 2, "xen-a", false)
	cache := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(moving, staying).Build()
	hyp := &domains{running: map[string]string{vmv1alpha1.DomainNameOf(moving): moving.Status.UUID, vmv1alpha1.DomainNameOf(staying): staying.Status.UUID}}
	f := NewFencer(&Fencer{Client: cache, Reader: cache, NodeName: "xen-a", Hypervisor: hyp, FenceAfter: 30 * time.Second, Clock: clk})
	f.swept = true

	// A renewal sent now that takes 20 s to succeed counts from when it was sent.
	sent := f.renewalStarted()
	clk.Step(20 * time.Second)
	f.Renewed(sent)
	clk.Step(9 * time.Second)
	f.check(ctx)
	g.Expect(hyp.isRunning(vmv1alpha1.DomainNameOf(moving))).To(BeTrue(), "29 s after the last renewal was sent: not fenced yet")
	g.Expect(f.mayStart(moving).hold).To(BeFalse())

	clk.Step(time.Second)
	f.check(ctx)
	g.Expect(hyp.isRunning(vmv1alpha1.DomainNameOf(moving))).To(BeFalse(), "fenceAfter after the last renewal was sent, the Reschedule clone's domain is destroyed")
	g.Expect(hyp.isRunning(vmv1alpha1.DomainNameOf(staying))).To(BeTrue(), "a clone that did not opt in keeps running")
	v := f.mayStart(moving)
	g.Expect(v.hold).To(BeTrue())
	g.Expect(v.message).To(And(ContainSubstring("destroyed"), ContainSubstring("fence-after 30s"), ContainSubstring("still bound to xen-a")))
	g.Expect(f.mayStart(staying).hold).To(BeFalse())

	// The API server answers again, but the live read has not confirmed the binding yet.
	f.Renewed(f.renewalStarted())
	g.Expect(f.mayStart(moving).hold).To(BeTrue(), "no start before a live read")
	settle(g, ctx, f)
	v = f.mayStart(moving)
	g.Expect(v.hold).To(BeFalse())
	g.Expect(v.released).To(BeTrue())
	g.Expect(v.message).To(ContainSubstring("still bound here: starting it again"))
	f.release(moving)
	g.Expect(f.mayStart(moving)).To(Equal(fenceVerdict{}))
}

// TestFencerHoldsCloneMovedMeanwhile: a fenced clone the live read shows bound elsewhere is
// never started here again, and one rebound here anew waits until the cache shows that binding.
func TestFencerHoldsCloneMovedMeanwhile(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0))
	c := fenceClone("moving", 1, "xen-a", true)
	cache := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(c).Build()
	live := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(c.DeepCopy()).WithStatusSubresource(c).Build()
	hyp := &domains{running: map[string]string{vmv1alpha1.DomainNameOf(c): c.Status.UUID}}
	f := NewFencer(&Fencer{Client: cache, Reader: live, NodeName: "xen-a", Hypervisor: hyp, FenceAfter: 30 * time.Second, Clock: clk})
	f.swept = true
	clk.Step(30 * time.Second)
	f.check(ctx)
	g.Expect(hyp.isRunning(vmv1alpha1.DomainNameOf(c))).To(BeFalse())

	// Moved away and back while cut off: the live read shows binding 3, the cache still 1.
	moved := &vmv1alpha1.VMClone{}
	g.Expect(live.Get(ctx, client.ObjectKeyFromObject(c), moved)).To(Succeed())
	moved.Status.BindingGeneration = 3
	g.Expect(live.Status().Update(ctx, moved)).To(Succeed())
	f.Renewed(f.renewalStarted())
	settle(g, ctx, f)
	v := f.mayStart(c)
	g.Expect(v.hold).To(BeTrue(), "the cache still shows the old binding")
	g.Expect(v.message).To(ContainSubstring("waiting for the agent's cache"))
	g.Expect(f.mayStart(moved).released).To(BeTrue())

	// Fenced again, and this time moved to another host.
	f.release(moved)
	clk.Step(30 * time.Second)
	f.check(ctx)
	g.Expect(f.mayStart(moved).hold).To(BeTrue())
	moved.Status.NodeName = "xen-b"
	g.Expect(live.Status().Update(ctx, moved)).To(Succeed())
	f.Renewed(f.renewalStarted())
	settle(g, ctx, f)
	f.mu.Lock()
	g.Expect(f.held).To(BeEmpty(), "a clone bound elsewhere is no longer this host's to hold or start")
	f.mu.Unlock()
}

// TestStopReboundCopies: a running domain of ours whose clone the API server shows bound to
// another host is destroyed at once; one of a clone bound here (the cache lagging) and one
// whose clone is gone (an orphan, for the collector) are left alone.
func TestStopReboundCopies(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dir := t.TempDir()
	moved, lagging := fenceClone("moved", 1, "xen-b", true), fenceClone("lagging", 2, "xen-a", false)
	gone := fenceClone("gone", 3, "xen-a", false)
	for _, c := range []*vmv1alpha1.VMClone{moved, lagging, gone} {
		if _, err := xen.WriteConfigFile(dir, xen.DomainConfig{Name: vmv1alpha1.DomainNameOf(c), UUID: c.Status.UUID, Type: xen.GuestPV,
			MemoryMiB: 64, VCPUs: 1, Kernel: "/boot/vmlinuz", Disks: []xen.Disk{{Target: "/dev/vg0/x", Vdev: "xvda"}}}); err != nil {
			t.Fatal(err)
		}
	}
	hyp := &domains{running: map[string]string{}}
	for _, c := range []*vmv1alpha1.VMClone{moved, lagging, gone} {
		hyp.running[vmv1alpha1.DomainNameOf(c)] = c.Status.UUID
	}
	cache := fake.NewClientBuilder().WithScheme(testScheme(t)).Build() // shows nothing bound here yet
	live := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(moved, lagging).Build()
	f := NewFencer(&Fencer{Client: cache, Reader: live, NodeName: "xen-a", Hypervisor: hyp, ConfigDir: dir})
	g.Expect(f.StopReboundCopies(ctx)).To(Succeed())
	g.Expect(hyp.destroyed).To(Equal([]string{vmv1alpha1.DomainNameOf(moved)}))

	hyp.running[vmv1alpha1.DomainNameOf(moved)] = moved.Status.UUID
	g.Expect(f.StopReboundCopy(ctx, client.ObjectKeyFromObject(moved))).To(Succeed())
	g.Expect(hyp.isRunning(vmv1alpha1.DomainNameOf(moved))).To(BeFalse(), "the clone left the cache for another host")
	g.Expect(f.StopReboundCopy(ctx, client.ObjectKeyFromObject(lagging))).To(Succeed())
	g.Expect(f.StopReboundCopy(ctx, client.ObjectKeyFromObject(gone))).To(Succeed())
	g.Expect(hyp.isRunning(vmv1alpha1.DomainNameOf(lagging))).To(BeTrue())
	g.Expect(hyp.isRunning(vmv1alpha1.DomainNameOf(gone))).To(BeTrue())
}

// hangingReader is an API server that never answers a Get: only the request's own context
// ends it.
type hangingReader struct {
	client.Reader
	released atomic.Int64
}

func (h *hangingReader) Get(ctx context.Context, _ client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
	<-ctx.Done()
	h.released.Add(1)
	return ctx.Err()
}

// TestRenewalHasItsOwnTimeout: a renewal whose request hangs is ended by its own timeout,
// while the agent runs on, so the next renewal is sent on time and the fence clock is not
// advanced by a renewal that never succeeded.
func TestRenewalHasItsOwnTimeout(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0))
	api := &hangingReader{}
	f := NewFencer(&Fencer{NodeName: "xen-1", Clock: clk, FenceAfter: time.Minute})
	before := f.lastRenewal
	h := &HostReporter{
		NodeName: "xen-1", Reader: api, Clock: clk, RenewInterval: 10 * time.Second, RenewTimeout: 50 * time.Millisecond,
		report: func(context.Context) error { return nil }, fence: f,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.Start(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	g.Eventually(api.released.Load, 5*time.Second).Should(BeEquivalentTo(1), "the hung renewal ends by its own timeout, not the agent's")
	g.Eventually(clk.Waiters).Should(BeNumerically(">=", 2))
	clk.Step(10 * time.Second)
	g.Eventually(api.released.Load, 5*time.Second).Should(BeEquivalentTo(2), "the next renewal is sent on time")
	f.mu.Lock()
	g.Expect(f.lastRenewal).To(Equal(before), "a renewal that failed does not move the fence clock")
	f.mu.Unlock()
}

// TestRenewLeaseWritesFenceAfter: every renewal, of a new Lease or an existing one (also one an
// older agent wrote without it), carries the agent's fenceAfter for the controller.
func TestRenewLeaseWritesFenceAfter(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).Build()
	h := &HostReporter{Client: cl, Reader: cl, NodeName: "xen-1", LeaseNamespace: "xenclone-system", Clock: clocktesting.NewFakeClock(time.Now()),
		LeaseDuration: 40 * time.Second, FenceAfter: 45 * time.Second}
	key := types.NamespacedName{Namespace: "xenclone-system", Name: "xen-1"}
	var lease coordinationv1.Lease
	g.Expect(h.RenewLease(ctx)).To(Succeed())
	g.Expect(cl.Get(ctx, key, &lease)).To(Succeed())
	g.Expect(lease.Annotations).To(HaveKeyWithValue(vmv1alpha1.FenceAfterAnnotation, "45s"))

	lease.Annotations = nil
	g.Expect(cl.Update(ctx, &lease)).To(Succeed())
	h.FenceAfter = 2 * time.Minute
	g.Expect(h.RenewLease(ctx)).To(Succeed())
	g.Expect(cl.Get(ctx, key, &lease)).To(Succeed())
	g.Expect(lease.Annotations).To(HaveKeyWithValue(vmv1alpha1.FenceAfterAnnotation, "2m0s"))
	d, err := time.ParseDuration(lease.Annotations[vmv1alpha1.FenceAfterAnnotation])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d).To(Equal(2 * time.Minute))
}

func TestOptionsValidateFenceAfter(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, ""},
		{Options{FenceAfter: 30 * time.Second}, ""},
		{Options{FenceAfter: 29 * time.Second}, "--fence-after 29s is shorter than three heartbeat renewals (3 × 10s)"},
		{Options{FenceAfter: 5 * time.Second, RenewInterval: time.Second}, ""},
		{Options{RenewInterval: 30 * time.Second}, "--fence-after 1m0s"},
	} {
		err := tc.o.Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate() = %v, want %q", tc.o, err, tc.want)
		}
	}
}

// settle runs one fence check and waits for the confirm pass it may have started.
func settle(g Gomega, ctx context.Context, f *Fencer) {
	f.check(ctx)
	g.Eventually(func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.confirming
	}).Should(BeFalse())
}
