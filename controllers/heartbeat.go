package controllers

import (
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/clock"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Heartbeats measures host liveness on the controller's own clock. A host is live while the
// controller last saw its Lease's renewTime change less than the grace ago; the renewTime value
// (the agent's clock) is only ever compared with the value seen before it, never with the
// controller's clock — the way kube-controller-manager's node lifecycle controller reads node
// Leases. Skew between the two clocks then neither kills a live host (an agent minutes behind
// still changes its renewTime every renewal) nor keeps a dead one alive (an agent minutes ahead
// stops changing it when it stops).
//
// Every reader of a Lease passes what it read through Observe, so the tracker is exactly as
// fresh as the Lease cache: the host liveness reconciler, which reconciles on every Lease event,
// feeds it promptly, and a clone reconcile that reads a Lease before that reconciler ran counts
// the change itself. A reader may still hold the version before the one another reader just
// observed: going back to the previous value is not a renewal, so such a stale copy cannot
// keep a host that stopped renewing alive. One instance per manager, shared by its reconcilers.
type Heartbeats struct {
	clock clock.PassiveClock
	grace time.Duration

	mu    sync.Mutex
	hosts map[string]*heartbeatRecord
}

type heartbeatRecord struct {
	// renewal is the Lease's renewTime (acquireTime when it has none) as last seen: only
	// compared for equality. Zero while the Lease carries neither.
	renewal time.Time
	// previous is the value before renewal: seeing it again is a stale copy, not a renewal.
	previous time.Time
	// seenAt is the controller's clock when renewal was first seen with its current value.
	seenAt time.Time
	// fenceAfter is the Lease's fence-after annotation as last seen ("" when absent).
	fenceAfter    string
	hasFenceAfter bool
	// gone is set once the Lease was seen deleted; the rest is kept from before, as what the
	// controller last knew of the agent.
	gone bool
}

// Heartbeat is one host's heartbeat as the controller sees it at one moment.
type Heartbeat struct {
	// Seen is false while the controller has never seen a Lease of the host (since it started).
	Seen bool
	// LeaseMissing is true when the host has no Lease now (never had one, or it was deleted).
	LeaseMissing bool
	// Live is true while the controller saw the Lease's renewTime change within the grace.
	Live bool
	// LastRenewalSeen is when, on the controller's clock, it last saw renewTime change (a
	// Lease first seen counts as a change seen then). Zero when never seen or never renewed.
	LastRenewalSeen time.Time
	// StaleAt is LastRenewalSeen plus the grace: when the host stops being live unless the
	// controller sees another renewal.
	StaleAt time.Time
	// FenceAfter is the agent's fenceAfter (vmv1alpha1.FenceAfterAnnotation) when Fences.
	FenceAfter time.Duration
	// Fences says whether the agent declared a valid fenceAfter: it stops its rescheduling
	// clones' domains by itself when it cannot renew for that long. NotFencingWhy says why not.
	Fences        bool
	NotFencingWhy string
}

// NewHeartbeats returns a tracker that counts a host live for grace after each renewal seen.
func NewHeartbeats(c clock.PassiveClock, grace time.Duration) *Heartbeats {
	return &Heartbeats{clock: c, grace: grace, hosts: map[string]*heartbeatRecord{}}
}

// Observe records host's Lease as just read (nil: it has none) and returns the host's
// heartbeat now.
func (h *Heartbeats) Observe(host string, lease *coordinationv1.Lease) Heartbeat {
	now := h.clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	rec := h.hosts[host]
	if lease == nil {
		if rec != nil {
			rec.gone = true
		}
		return h.heartbeat(rec, now)
	}
	renewal := renewalOf(lease)
	fenceAfter, hasFenceAfter := lease.Annotations[vmv1alpha1.FenceAfterAnnotation]
	switch {
	case rec == nil:
		// First sight (the controller just started, or a new host): a change seen now, so a
		// host that died while the controller was away is declared lost one grace after the
		// controller starts, never at once.
		rec = &heartbeatRecord{renewal: renewal, seenAt: now}
		h.hosts[host] = rec
	case rec.gone:
		// A recreated Lease is a renewal too: only a running agent creates one.
		rec.renewal, rec.previous, rec.seenAt, rec.gone = renewal, time.Time{}, now, false
	case !renewal.Equal(rec.renewal) && !renewal.Equal(rec.previous):
		rec.renewal, rec.previous, rec.seenAt = renewal, rec.renewal, now
	}
	rec.fenceAfter, rec.hasFenceAfter = fenceAfter, hasFenceAfter
	return h.heartbeat(rec, now)
}

func (h *Heartbeats) heartbeat(rec *heartbeatRecord, now time.Time) Heartbeat {
	if rec == nil {
		return Heartbeat{LeaseMissing: true, NotFencingWhy: "the controller has seen no heartbeat Lease of the host"}
	}
	hb := Heartbeat{Seen: true, LeaseMissing: rec.gone}
	if !rec.renewal.IsZero() {
		hb.LastRenewalSeen = rec.seenAt
		hb.StaleAt = rec.seenAt.Add(h.grace)
		hb.Live = !rec.gone && now.Before(hb.StaleAt)
	}
	hb.FenceAfter, hb.NotFencingWhy = parseFenceAfter(rec.fenceAfter, rec.hasFenceAfter)
	hb.Fences = hb.NotFencingWhy == ""
	return hb
}

// renewedAt is the renewTime the tracker last saw for host, for tests that wait until the
// tracker has seen a renewal they wrote.
func (h *Heartbeats) renewedAt(host string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rec := h.hosts[host]
	if rec == nil || rec.gone {
		return time.Time{}, false
	}
	return rec.renewal, true
}

// renewalOf is the Lease's last renewal as its holder wrote it.
func renewalOf(l *coordinationv1.Lease) time.Time {
	switch {
	case l.Spec.RenewTime != nil:
		return l.Spec.RenewTime.Time
	case l.Spec.AcquireTime != nil:
		return l.Spec.AcquireTime.Time
	}
	return time.Time{}
}

// parseFenceAfter reads the agent's fence-after annotation; why is empty when it is valid.
func parseFenceAfter(v string, present bool) (d time.Duration, why string) {
	if !present {
		return 0, fmt.Sprintf("its heartbeat Lease has no %s annotation (an agent that does not fence)", vmv1alpha1.FenceAfterAnnotation)
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Sprintf("its heartbeat Lease's %s annotation %q is not a positive duration", vmv1alpha1.FenceAfterAnnotation, v)
	}
	return d, ""
}
