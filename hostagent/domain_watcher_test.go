package hostagent

import (
	"context"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// listOnly is a hypervisor whose xl list the test sets.
type listOnly struct {
	Hypervisor
	mu    sync.Mutex
	doms  []xen.DomainInfo
	lists int
}

func (l *listOnly) List(context.Context) ([]xen.DomainInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lists++
	return append([]xen.DomainInfo(nil), l.doms...), nil
}

func (l *listOnly) set(doms ...xen.DomainInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.doms = doms
}

func domain(t *testing.T, name, state string) xen.DomainInfo {
	t.Helper()
	st, err := xen.ParseState(state)
	if err != nil {
		t.Fatal(err)
	}
	return xen.DomainInfo{Name: name, ID: 3, State: st}
}

// A stop waits for the guest: once a reconcile says it awaits a domain change, the watcher
// looks often and wakes the clone as soon as the guest is down — not after its slow interval,
// nor after a fixed requeue.
func TestDomainWatcherWakesAwaitedCloneAtOnce(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := vmv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1"},
		Status: vmv1alpha1.VMCloneStatus{NodeName: "xen-a"}}
	cl := fake.NewClientBuilder().WithScheme(scheme).WithObjects(c).WithStatusSubresource(c).Build()
	name := vmv1alpha1.DomainNameOf(c)
	hyp := &listOnly{}
	hyp.set(domain(t, name, "-b----"))
	w := &domainWatcher{client: cl, nodeName: "xen-a", hyp: hyp, interval: time.Hour, fastInterval: 20 * time.Millisecond,
		events: make(chan event.GenericEvent, 4)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := w.poll(ctx); err != nil { // the baseline, as the first tick would take it
		t.Fatal(err)
	}
	go func() { _ = w.Start(ctx) }()

	w.Expect(name)
	time.Sleep(100 * time.Millisecond)
	hyp.set(domain(t, name, "---s--")) // the guest has shut down
	select {
	case ev := <-w.events:
		if ev.Object.GetName() != "web" {
			t.Fatalf("woke %s, want web", ev.Object.GetName())
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the awaited domain shut down, but its clone was not woken (the watcher kept its slow interval)")
	}

	// Nothing awaited any more: back to the slow interval, no busy polling.
	time.Sleep(100 * time.Millisecond)
	hyp.mu.Lock()
	before := hyp.lists
	hyp.mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	hyp.mu.Lock()
	after := hyp.lists
	hyp.mu.Unlock()
	if after != before {
		t.Fatalf("the watcher listed domains %d times in 300 ms with nothing awaited (interval 1h)", after-before)
	}
}
