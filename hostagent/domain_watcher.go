package hostagent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// domainWatcher is the agent's view of the hypervisor between reconciles: xl has no event
// stream, so one `xl list` per interval for the whole host (not one per clone) finds domains
// that changed state by themselves — a guest that powered off, rebooted or crashed — and wakes
// exactly their clones, which then apply their run strategy.
//
// While a reconcile waits for a domain to change (a requested shutdown, a destroyed domain
// still dying), the watcher looks every fastInterval instead, until every awaited domain has
// changed or its wait has run out: a stop continues the moment the guest is down, not at the
// next fixed requeue.
type domainWatcher struct {
	client   client.Client
	nodeName string
	hyp      Hypervisor
	interval time.Duration
	// fastInterval is the polling interval while a domain change is awaited (default 500 ms).
	fastInterval time.Duration
	// expectFor bounds one wait (default 2 minutes: past any shutdown grace period a
	// reconcile waits out by itself).
	expectFor time.Duration
	events    chan event.GenericEvent

	mu       sync.Mutex
	awaited  map[string]time.Time // domain name -> until when
	wake     chan struct{}
	last     map[string]string // domain name -> "id/state"
	haveLast bool
}

func (w *domainWatcher) NeedLeaderElection() bool { return false }

// Expect asks the watcher to look often until domain name changes.
func (w *domainWatcher) Expect(name string) {
	w.mu.Lock()
	if w.awaited == nil {
		w.awaited = map[string]time.Time{}
	}
	w.awaited[name] = time.Now().Add(w.expectWindow())
	w.mu.Unlock()
	select {
	case w.wakeChan() <- struct{}{}:
	default:
	}
}

func (w *domainWatcher) expectWindow() time.Duration {
	if w.expectFor > 0 {
		return w.expectFor
	}
	return 2 * time.Minute
}

func (w *domainWatcher) fast() time.Duration {
	if w.fastInterval > 0 {
		return w.fastInterval
	}
	return 500 * time.Millisecond
}

// next is how long until the next look: short while any domain change is awaited.
func (w *domainWatcher) next() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	for n, until := range w.awaited {
		if now.After(until) {
			delete(w.awaited, n)
		}
	}
	if len(w.awaited) > 0 {
		return w.fast()
	}
	return w.interval
}

func (w *domainWatcher) wakeChan() chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
	}
	return w.wake
}

func (w *domainWatcher) Start(ctx context.Context) error {
	wake := w.wakeChan()
	waited := w.interval
	t := time.NewTimer(waited)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-wake:
			// A new wait: the next look comes within fastInterval rather than after a
			// whole slow interval. Not at once: the domain has only just been asked.
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
			waited = w.fast()
			t.Reset(waited)
			continue
		}
		if err := w.pollWithin(ctx, waited/recentShare); err != nil {
			log.FromContext(ctx).V(1).Info("poll domains", "node", w.nodeName, "error", err.Error())
		}
		waited = w.next()
		t.Reset(waited)
	}
}

// recentShare: a poll may use a list the host view read for someone else within a fifth of the
// time it waited. A guest's own change then shows at most a fifth of an interval later, and in
// a burst, where the clones' reconciles list the host every second or so, most polls cost no
// `xl list` of their own.
const recentShare = 5

// recentLister is the HostView's ListRecent.
type recentLister interface {
	ListRecent(ctx context.Context, maxAge time.Duration) ([]xen.DomainInfo, error)
}

func (w *domainWatcher) poll(ctx context.Context) error { return w.pollWithin(ctx, 0) }

// pollWithin looks at the host's domains, through a list no older than maxAge (0: a new one).
func (w *domainWatcher) pollWithin(ctx context.Context, maxAge time.Duration) error {
	var doms []xen.DomainInfo
	var err error
	if r, ok := w.hyp.(recentLister); ok && maxAge > 0 {
		doms, err = r.ListRecent(ctx, maxAge)
	} else {
		doms, err = w.hyp.List(ctx)
	}
	if err != nil {
		return err
	}
	cur := make(map[string]string, len(doms))
	for _, d := range doms {
		// Only changes of the domain's life wake its clone, not a vCPU going from running
		// to blocked.
		cur[d.Name] = fmt.Sprintf("%d/%s", d.ID, d.State.Lifecycle())
	}
	w.mu.Lock()
	last, first := w.last, !w.haveLast
	w.last, w.haveLast = cur, true
	changed := map[string]bool{}
	for n, s := range cur {
		if last[n] != s {
			changed[n] = true
		}
	}
	for n := range last {
		if _, ok := cur[n]; !ok {
			changed[n] = true
		}
	}
	for n := range changed {
		delete(w.awaited, n)
	}
	w.mu.Unlock()
	if first || len(changed) == 0 {
		return nil
	}
	bound, err := boundClones(ctx, w.client, w.nodeName)
	if err != nil {
		return err
	}
	for i := range bound {
		c := &bound[i]
		if changed[vmv1alpha1.DomainNameOf(c)] {
			select {
			case w.events <- event.GenericEvent{Object: c}:
			case <-ctx.Done():
				return nil
			}
		}
	}
	return nil
}
