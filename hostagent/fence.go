package hostagent

// Self-fencing. A clone with spec.placement.onNodeLost: Reschedule is moved by the controller
// to another host once its host's heartbeat has been stale long enough. The controller cannot
// know whether the host is dead or only cut off, so the cut-off host must have stopped the
// clone's domain by then on its own, as kubelet's node lease plus eviction or a Pacemaker
// watchdog would: an agent that cannot renew its heartbeat Lease for FenceAfter destroys the
// domains of those clones, and the controller waits fenceAfter plus a margin after it last saw
// a renewal (the agent writes its fenceAfter on the Lease, vmv1alpha1.FenceAfterAnnotation).
//
// The fence clock starts at the send time of the last renewal that succeeded: the API server
// may have stored it any time after the request left, so that is the conservative base. The
// clock is the agent's own; nothing here compares it with another machine's.
//
// Clones that did not opt in keep running: nobody moves them, and their host may come back.
// A fenced clone is started again only after a live read (not the cache, which may still show
// the binding from before the cut) says it is still bound here.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// DefaultRenewInterval is how often the agent renews its heartbeat Lease by default.
const DefaultRenewInterval = 10 * time.Second

// fenceDestroyTimeout bounds each xl destroy of a fence or of a rebound copy. It is well
// inside vmv1alpha1.DefaultFenceMargin, which the controller adds for it, and destroys run in
// parallel, so one hung domain does not delay the others.
const fenceDestroyTimeout = 10 * time.Second

// apiTimeout bounds each API request of the Fencer (a live read): a hung request must not
// hold the fence loop.
const apiTimeout = 10 * time.Second

// Fencer keeps the fence clock and stops the domains of this host's Reschedule clones when it
// runs out; it also destroys copies of clones rebound elsewhere (rebound.go).
type Fencer struct {
	// Client is the agent's cache: it still holds the last state while the API server is
	// unreachable, which is when the fence needs it.
	Client client.Reader
	// Reader reads live from the API server.
	Reader   client.Reader
	NodeName string
	// Hypervisor is the agent's shared host view, so a destroy here invalidates what the
	// reconciler would read next.
	Hypervisor Hypervisor
	// ConfigDir holds the xl.cfg files the agent wrote (the rebound-copy sweep reads them).
	ConfigDir string
	// Journal is the fence journal's path on the host (fencejournal.go); "" keeps none.
	Journal    string
	FenceAfter time.Duration
	// Interval is how often the fence clock is looked at (the renew interval).
	Interval time.Duration
	Clock    clock.WithTicker
	Recorder events.EventRecorder

	// wakeClones enqueues a clone in the clone reconciler (one released from a fence).
	wakeClones chan event.GenericEvent

	mu sync.Mutex
	// lastRenewal is the send time of the last heartbeat renewal that succeeded; the agent's
	// start before the first one.
	lastRenewal time.Time
	// renewed: a renewal succeeded since the agent started; journaled is the last renewal
	// written to the journal.
	renewed         bool
	journaled       time.Time
	journaledClones []fenceTarget
	// fencedAt is when the fence clock last ran out; zero while it has not, or since a
	// renewal succeeded again.
	fencedAt time.Time
	// held are the clones fenced here that may not start before a live read released them.
	held map[types.NamespacedName]*fenceHold
	// swept: the rebound-copy sweep at start has run; no domain starts before.
	swept bool
	// confirming: a confirm pass runs (on its own goroutine: its live reads must not hold
	// the fence clock).
	confirming bool
	wake       chan struct{}
}

// fenceHold is one clone fenced on this host.
type fenceHold struct {
	uid types.UID
	// bindingGeneration is the binding the clone had here when it was fenced.
	bindingGeneration int64
	// since is the last renewal before the fence, at the agent's clock; at is when it fenced.
	since, at time.Time
	// destroyed names the domain the fence destroyed ("" if it was not running).
	destroyed string
	// confirmed is the binding a live read showed after the API server answered again (nil
	// until then): the clone may start once the cache shows that binding too.
	confirmed *int64
}

// NewFencer returns a Fencer whose fence clock starts now: what happened before this agent
// started is unknown (see docs/security.md, the limit of fencing).
func NewFencer(f *Fencer) *Fencer {
	if f.Clock == nil {
		f.Clock = clock.RealClock{}
	}
	if f.FenceAfter <= 0 {
		f.FenceAfter = vmv1alpha1.DefaultFenceAfter
	}
	if f.Interval <= 0 {
		f.Interval = DefaultRenewInterval
	}
	f.lastRenewal = f.Clock.Now()
	f.held = map[types.NamespacedName]*fenceHold{}
	f.wake = make(chan struct{}, 1)
	return f
}

// NeedLeaderElection is false: every agent fences its own host.
func (f *Fencer) NeedLeaderElection() bool { return false }

// renewalStarted is the fence clock's reading for a renewal about to be sent.
func (f *Fencer) renewalStarted() time.Time { return f.Clock.Now() }

// Renewed records that the renewal sent at start succeeded.
func (f *Fencer) Renewed(start time.Time) {
	f.mu.Lock()
	if start.After(f.lastRenewal) {
		f.lastRenewal = start
	}
	f.renewed = true
	f.mu.Unlock()
	f.poke()
}

func (f *Fencer) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// fenced says whether the fence clock has run out at now (f.mu held).
func (f *Fencer) fenced(now time.Time) bool { return now.Sub(f.lastRenewal) >= f.FenceAfter }

// Start runs until ctx ends: first the rebound-copy sweep (retried until it succeeds: the
// clone reconciler starts no domain before), then the fence clock.
func (f *Fencer) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithValues("node", f.NodeName)
	ctx = log.IntoContext(ctx, logger)
	tick := f.Clock.NewTicker(f.Interval)
	defer tick.Stop()
	for {
		f.mu.Lock()
		swept := f.swept
		f.mu.Unlock()
		if !swept {
			if err := f.StopReboundCopies(ctx); err != nil {
				logger.Error(err, "look for copies of clones rebound to other hosts; no domain starts before it succeeds")
			} else {
				f.mu.Lock()
				f.swept = true
				f.mu.Unlock()
				f.wakeHeld(ctx)
			}
		}
		f.check(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C():
		case <-f.wake:
		}
	}
}

// check fences while the clock has run out, and releases fenced clones once it has not.
func (f *Fencer) check(ctx context.Context) {
	now := f.Clock.Now()
	f.mu.Lock()
	fenced, since := f.fenced(now), f.lastRenewal
	first := fenced && f.fencedAt.IsZero()
	if first {
		f.fencedAt = now
	}
	if !fenced && !f.fencedAt.IsZero() {
		log.FromContext(ctx).Info("heartbeat renewed again; fenced clones start again once the API server confirms they are still bound here",
			"fencedAt", f.fencedAt)
		f.fencedAt = time.Time{}
	}
	f.mu.Unlock()
	if fenced {
		if first {
			log.FromContext(ctx).Info("heartbeat not renewed for fence-after: stopping the domains of clones with onNodeLost: Reschedule",
				"lastRenewal", since, "fenceAfter", f.FenceAfter)
		}
		// Every round while fenced, not once: a domain whose start raced with the fence is
		// destroyed at the next look.
		f.fence(ctx, since, now)
		return
	}
	f.journal(ctx)
	f.mu.Lock()
	start := !f.confirming && len(f.held) > 0
	if start {
		f.confirming = true
	}
	f.mu.Unlock()
	if start {
		go func() {
			f.confirm(ctx)
			f.mu.Lock()
			f.confirming = false
			f.mu.Unlock()
		}()
	}
}

// fence destroys the domains of the Reschedule clones bound here, as the cache last showed
// them.
func (f *Fencer) fence(ctx context.Context, since, now time.Time) {
	clones, err := boundClones(ctx, f.Client, f.NodeName)
	if err != nil {
		log.FromContext(ctx).Error(err, "fence: list clones from the cache")
		return
	}
	f.stopTargets(ctx, fenceTargets(clones), since, now)
}

// fenceTarget is one clone a fence stops: what the cache shows, or the journal kept.
type fenceTarget struct {
	Namespace         string    `json:"namespace"`
	Name              string    `json:"name"`
	UID               types.UID `json:"uid"`
	BindingGeneration int64     `json:"bindingGeneration"`
	// UUID is the domain's UUID: a destroy checks it, so a namesake is never touched.
	UUID    string   `json:"uuid"`
	Domains []string `json:"domains"`
}

func (t fenceTarget) key() types.NamespacedName {
	return types.NamespacedName{Namespace: t.Namespace, Name: t.Name}
}

func (t fenceTarget) equal(o fenceTarget) bool {
	return t.UID == o.UID && t.BindingGeneration == o.BindingGeneration && t.UUID == o.UUID && slices.Equal(t.Domains, o.Domains)
}

// fenceTargets are the clones among clones a fence stops: those with onNodeLost: Reschedule
// that have an identity (a domain to look for).
func fenceTargets(clones []vmv1alpha1.VMClone) []fenceTarget {
	var out []fenceTarget
	for i := range clones {
		c := &clones[i]
		if !vmv1alpha1.ReschedulesOnNodeLoss(c) || c.Status.UUID == "" {
			continue
		}
		out = append(out, fenceTarget{Namespace: c.Namespace, Name: c.Name, UID: c.UID,
			BindingGeneration: c.Status.BindingGeneration, UUID: c.Status.UUID, Domains: hostDomainNames(c)})
	}
	return out
}

// stopTargets holds each target's clone (none starts again before a live read says it is
// still bound here) and destroys its domains, each destroy with its own timeout and all in
// parallel.
func (f *Fencer) stopTargets(ctx context.Context, targets []fenceTarget, since, now time.Time) {
	var wg sync.WaitGroup
	for _, t := range targets {
		h := f.hold(t, since, now)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var name string
			for _, n := range t.Domains {
				destroyed, err := f.destroy(ctx, n, t.UUID)
				if err != nil {
					log.FromContext(ctx).Error(err, "fence: destroy domain", "vmclone", t.key().String(), "domain", n)
					continue
				}
				if destroyed {
					name = n
				}
			}
			if name == "" {
				return
			}
			fencedDomains.WithLabelValues(f.NodeName).Inc()
			f.mu.Lock()
			h.destroyed = name
			f.mu.Unlock()
			log.FromContext(ctx).Info("fenced: domain destroyed", "vmclone", t.key().String(), "domain", name,
				"lastRenewal", since, "fenceAfter", f.FenceAfter)
		}()
	}
	wg.Wait()
}

// destroy destroys domain name if it runs and carries uuid; it reports whether it did.
func (f *Fencer) destroy(ctx context.Context, name, uuid string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, fenceDestroyTimeout)
	defer cancel()
	dom, found, err := f.Hypervisor.Lookup(ctx, name)
	if err != nil {
		return false, fmt.Errorf("look up domain %s: %w", name, err)
	}
	if !found || dom.State.Dying {
		return false, nil
	}
	err = f.Hypervisor.DestroyOwned(ctx, name, uuid)
	switch {
	case errors.Is(err, xen.ErrNoSuchDomain), errors.Is(err, xen.ErrNotOwned):
		// Gone meanwhile, or a namesake we never started: nothing of this clone runs.
		return false, nil
	case err != nil:
		return false, fmt.Errorf("destroy domain %s: %w", name, err)
	}
	return true, nil
}

// hold records that target t's clone is fenced, once.
func (f *Fencer) hold(t fenceTarget, since, at time.Time) *fenceHold {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.held[t.key()]
	if h == nil || h.uid != t.UID {
		h = &fenceHold{uid: t.UID, bindingGeneration: t.BindingGeneration, since: since, at: at}
		f.held[t.key()] = h
	}
	return h
}

// confirm reads each fenced clone live once the API server answers again: one still bound here
// is released (its reconcile starts it again), one bound elsewhere or gone is dropped.
func (f *Fencer) confirm(ctx context.Context) {
	f.mu.Lock()
	var pending []types.NamespacedName
	for key, h := range f.held {
		if h.confirmed == nil {
			pending = append(pending, key)
		}
	}
	f.mu.Unlock()
	for _, key := range pending {
		live := &vmv1alpha1.VMClone{}
		rctx, cancel := context.WithTimeout(ctx, apiTimeout)
		err := f.Reader.Get(rctx, key, live)
		cancel()
		if err != nil && !apierrors.IsNotFound(err) {
			log.FromContext(ctx).V(1).Info("confirm fenced clone's binding", "vmclone", key.String(), "error", err.Error())
			continue
		}
		f.mu.Lock()
		h := f.held[key]
		if h == nil || h.confirmed != nil {
			f.mu.Unlock()
			continue
		}
		at := h.at
		moved := err == nil && live.UID == h.uid && live.Status.NodeName != f.NodeName
		switch {
		case apierrors.IsNotFound(err) || live.UID != h.uid || moved:
			delete(f.held, key)
		default:
			gen := live.Status.BindingGeneration
			h.confirmed = &gen
		}
		f.mu.Unlock()
		switch {
		case moved:
			f.event(live, corev1.EventTypeWarning, vmv1alpha1.ReasonFenced, "Fence",
				"host %s fenced the clone at %s (its heartbeat was not renewed for %s) and the clone is now bound to %s: its domain stays off here",
				f.NodeName, at.UTC().Format(time.RFC3339), f.FenceAfter, boundTo(live))
		case err == nil && live.UID == h.uid:
			f.enqueue(live)
		}
	}
}

// wakeHeld enqueues every clone the sweep kept from starting.
func (f *Fencer) wakeHeld(ctx context.Context) {
	clones, err := boundClones(ctx, f.Client, f.NodeName)
	if err != nil {
		return
	}
	for i := range clones {
		f.enqueue(&clones[i])
	}
}

func (f *Fencer) enqueue(c *vmv1alpha1.VMClone) {
	if f.wakeClones == nil {
		return
	}
	// Never blocks the fence loop: a wake that does not fit is covered by the clone's own
	// requeue (fenceRecheck).
	select {
	case f.wakeClones <- event.GenericEvent{Object: c}:
	default:
	}
}

// fenceVerdict is what the Fencer says about starting one clone's domain.
type fenceVerdict struct {
	// hold: the domain must not start now; message, if any, says why, for DomainRunning.
	hold bool
	// released: the clone was fenced and may start again; message says so.
	released bool
	message  string
}

// mayStart is the clone reconciler's gate before it starts a domain. A clone that may be moved
// elsewhere is held while the fence clock has run out, and after a fence until a live read
// showed it still bound here and the cache shows that same binding. No clone starts before the
// rebound-copy sweep at agent start has run.
func (f *Fencer) mayStart(c *vmv1alpha1.VMClone) fenceVerdict {
	if f == nil {
		return fenceVerdict{}
	}
	key := client.ObjectKeyFromObject(c)
	now := f.Clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.swept {
		// Moments at most, normally: the sweep wakes every clone when it is done.
		return fenceVerdict{hold: true}
	}
	h := f.held[key]
	if h != nil && h.uid != c.UID {
		delete(f.held, key)
		h = nil
	}
	if h == nil {
		if !vmv1alpha1.ReschedulesOnNodeLoss(c) || !f.fenced(now) {
			return fenceVerdict{}
		}
		h = &fenceHold{uid: c.UID, bindingGeneration: c.Status.BindingGeneration, since: f.lastRenewal, at: now}
		f.held[key] = h
	}
	what := "the domain was not running"
	if h.destroyed != "" {
		what = "domain " + h.destroyed + " was destroyed"
	}
	base := fmt.Sprintf("host %s has not renewed its heartbeat since %s (fence-after %s); at %s %s so that the controller may start the clone on another host (onNodeLost: Reschedule)",
		f.NodeName, h.since.UTC().Format(time.RFC3339), f.FenceAfter, h.at.UTC().Format(time.RFC3339), what)
	if h.confirmed == nil || f.fenced(now) {
		return fenceVerdict{hold: true, message: base + ". It starts here again only once the API server answers and confirms the clone is still bound to " + f.NodeName}
	}
	if *h.confirmed != c.Status.BindingGeneration {
		return fenceVerdict{hold: true, message: base + ". The API server answers again; waiting for the agent's cache to show the clone's current binding"}
	}
	return fenceVerdict{released: true, message: base + ". The API server answers again and the clone is still bound here: starting it again"}
}

// release forgets a fenced clone once its reconcile has reported the fence and starts it.
func (f *Fencer) release(c *vmv1alpha1.VMClone) {
	if f == nil {
		return
	}
	f.mu.Lock()
	if h := f.held[client.ObjectKeyFromObject(c)]; h != nil && h.uid == c.UID {
		delete(f.held, client.ObjectKeyFromObject(c))
	}
	f.mu.Unlock()
}

func (f *Fencer) event(c *vmv1alpha1.VMClone, typ, reason, action, msgf string, args ...any) {
	if f.Recorder != nil {
		f.Recorder.Eventf(c, nil, typ, reason, action, msgf, args...)
	}
}

// boundTo names where a clone is bound, for messages.
func boundTo(c *vmv1alpha1.VMClone) string {
	if c.Status.NodeName == "" {
		return "no host yet (it is being placed again)"
	}
	return "host " + c.Status.NodeName
}
