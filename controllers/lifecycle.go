package controllers

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Reasons the controller writes into a VMClone's conditions and events. They are the
// vocabulary's (api/v1alpha1/conditions.go), which says what each means and tests check
// against the health checks and the docs.
const (
	ReasonScheduled               = vmv1alpha1.ReasonScheduled
	ReasonUnschedulable           = vmv1alpha1.ReasonUnschedulable
	ReasonTemplateNotFound        = vmv1alpha1.ReasonTemplateNotFound
	ReasonTemplateDeleting        = vmv1alpha1.ReasonTemplateDeleting
	ReasonNamespaceNotAllowed     = vmv1alpha1.ReasonNamespaceNotAllowed
	ReasonMACConflict             = vmv1alpha1.ReasonMACConflict
	ReasonDomainNameTaken         = vmv1alpha1.ReasonDomainNameTaken
	ReasonNodeLost                = vmv1alpha1.ReasonNodeLost
	ReasonLifetimeEnded           = vmv1alpha1.ReasonLifetimeEnded
	ReasonLifetimeRunning         = vmv1alpha1.ReasonLifetimeRunning
	ReasonRunning                 = vmv1alpha1.ReasonRunning
	ReasonHalted                  = vmv1alpha1.ReasonHalted
	ReasonStoppedOnExpiry         = vmv1alpha1.ReasonStoppedOnExpiry
	ReasonWaitingForHost          = vmv1alpha1.ReasonWaitingForHost
	ReasonFailed                  = vmv1alpha1.ReasonFailed
	ReasonStopping                = vmv1alpha1.ReasonStopping
	ReasonRescheduled             = vmv1alpha1.ReasonRescheduled
	ReasonReschedulePaused        = vmv1alpha1.ReasonReschedulePaused
	ReasonRescheduleWaitsForFence = vmv1alpha1.ReasonRescheduleWaitsForFence
	ReasonHostNotFencing          = vmv1alpha1.ReasonHostNotFencing
	ReasonResetting               = vmv1alpha1.ReasonResetting
	ReasonProgressing             = vmv1alpha1.ReasonProgressing
)

// OnNodeLostAnnotation is the deprecated way to ask for spec.placement.onNodeLost: Reschedule,
// from before the field existed; still honoured (api/v1alpha1 holds the decision).
const (
	OnNodeLostAnnotation = vmv1alpha1.OnNodeLostAnnotation
	OnNodeLostReschedule = vmv1alpha1.OnNodeLostRescheduleValue
)

// ReschedulesOnNodeLoss says whether a clone asked to be moved off a lost host: the same
// function the agent fences by.
func ReschedulesOnNodeLoss(c *vmv1alpha1.VMClone) bool { return vmv1alpha1.ReschedulesOnNodeLoss(c) }

// Disruption counts how many of the registered hosts (XenHosts) have a stale or missing
// heartbeat.
type Disruption struct {
	Lost, Total int
}

// HostDisruption counts the lost hosts among hosts; a host without a heartbeat counts as lost.
func HostDisruption(hosts []vmv1alpha1.XenHost, heartbeats map[string]Heartbeat) Disruption {
	d := Disruption{Total: len(hosts)}
	for i := range hosts {
		if !heartbeats[hosts[i].Name].Live {
			d.Lost++
		}
	}
	return d
}

// LostHostWait says why a clone that asked to move off its lost host has not moved yet.
type LostHostWait int

const (
	// WaitsForDelay: the normal wait, grace plus --node-lost-reschedule-after (Ready NodeLost).
	WaitsForDelay LostHostWait = iota
	// WaitsForFence: the host's agent fences later than that delay; the clone moves only once
	// the agent must have stopped its domain (Ready RescheduleWaitsForFence).
	WaitsForFence
	// NeverMoves: the host's agent does not say it fences, so nothing tells the controller
	// that the domain stopped (Ready HostNotFencing).
	NeverMoves
)

// RescheduleInput is what moving a clone off a lost host depends on.
type RescheduleInput struct {
	Host      string
	Heartbeat Heartbeat
	// Now is the controller's clock, the one Heartbeat was measured on.
	Now time.Time
	// HeartbeatGrace, RescheduleAfter and FenceMargin are the controller's options.
	HeartbeatGrace, RescheduleAfter, FenceMargin time.Duration
}

// RescheduleDecision is whether a clone on a lost host may move now, and if not, why and when.
type RescheduleDecision struct {
	// Move is true once the clone may be placed elsewhere (the widespread-loss check aside).
	Move bool
	Wait LostHostWait
	// At is when the clone may move (zero with NeverMoves).
	At time.Time
	// Message says, for the clone's Ready condition, when it moves or why it never does.
	Message string
}

// DecideReschedule decides whether a clone with spec.placement.onNodeLost: Reschedule leaves
// its lost host now. Two copies of a guest must never run at once, and a host that is only cut
// off from the API server still runs the domain; so the clone moves only when the host's agent
// must have stopped it itself: the agent fences (destroys such domains) once it could not renew
// its Lease for its fenceAfter, and the controller adds a margin for the destroy and for the
// API server's latency. Both are counted from the last renewal the controller saw, on its own
// clock: the agent renewed no later than that, so it fenced no later than that plus fenceAfter.
// The normal delay (grace plus RescheduleAfter, room for a reboot) applies when it is longer.
func DecideReschedule(in RescheduleInput) RescheduleDecision {
	hb := in.Heartbeat
	if !hb.Seen || hb.LastRenewalSeen.IsZero() {
		return RescheduleDecision{Wait: NeverMoves, Message: fmt.Sprintf(
			"host %s is lost and the controller has seen no renewal of its heartbeat Lease, so it cannot know when its hostagent stopped the clone's domain: "+
				"the clone stays bound there (spec.placement.onNodeLost: Reschedule needs a fencing agent). Start the hostagent on %s; "+
				"if the host is gone for good, delete the clone and remove its finalizer %s",
			in.Host, in.Host, vmv1alpha1.CloneFinalizer)}
	}
	seen := hb.LastRenewalSeen.UTC().Format(time.RFC3339)
	if !hb.Fences {
		return RescheduleDecision{Wait: NeverMoves, Message: fmt.Sprintf(
			"host %s is lost (last heartbeat renewal seen at %s) and its hostagent does not fence: %s. Nothing stops the clone's domain there, "+
				"so it is never moved (spec.placement.onNodeLost: Reschedule): upgrade the hostagent on %s to one that fences; "+
				"if the host is gone for good, delete the clone and remove its finalizer %s",
			in.Host, seen, hb.NotFencingWhy, in.Host, vmv1alpha1.CloneFinalizer)}
	}
	delayed := hb.LastRenewalSeen.Add(in.HeartbeatGrace + in.RescheduleAfter)
	fenced := hb.LastRenewalSeen.Add(hb.FenceAfter + in.FenceMargin)
	d := RescheduleDecision{At: delayed}
	if fenced.After(delayed) {
		d.At, d.Wait = fenced, WaitsForFence
	}
	if !in.Now.Before(d.At) {
		d.Move = true
	}
	at := d.At.UTC().Format(time.RFC3339)
	if d.Wait == WaitsForFence {
		d.Message = fmt.Sprintf("host %s is lost (last heartbeat renewal seen at %s); its hostagent stops the clone's domain after %s without a renewal (fence-after), "+
			"so the clone moves to another host at %s (fence-after plus margin %s), not before (spec.placement.onNodeLost: Reschedule)",
			in.Host, seen, hb.FenceAfter, at, in.FenceMargin)
	} else {
		d.Message = fmt.Sprintf("host %s is lost (last heartbeat renewal seen at %s): the clone moves to another host at %s unless the host reports again "+
			"(spec.placement.onNodeLost: Reschedule; grace %s plus --node-lost-reschedule-after %s)",
			in.Host, seen, at, in.HeartbeatGrace, in.RescheduleAfter)
	}
	return d
}

// Widespread says whether so large a share of the hosts is lost that the cause is more likely
// on our side — the controller's or API server's network, an API server outage that stopped
// every heartbeat, a clock jump — than in the hosts. Moving clones then would only start second
// copies of guests that are still running (the same identity twice) and fill the few hosts
// left. Like the node lifecycle controller's unhealthy-zone threshold, with a single host (or
// none) every loss is widespread: there is nowhere to move to anyway.
func (d Disruption) Widespread(threshold float64) bool {
	if d.Total == 0 || d.Lost == 0 {
		return false
	}
	return float64(d.Lost)/float64(d.Total) >= threshold
}

// Expiry is when a clone's lifetime ends: creation + spec.lifetime.expireAfter. ok is false
// for clones without a lifetime.
func Expiry(clone *vmv1alpha1.VMClone) (at time.Time, ok bool) {
	if clone.Spec.Lifetime == nil || clone.Spec.Lifetime.ExpireAfter.Duration <= 0 {
		return time.Time{}, false
	}
	return clone.CreationTimestamp.Add(clone.Spec.Lifetime.ExpireAfter.Duration), true
}

// ExpiryDecision is what to do now about a clone's lifetime.
//
// With onExpiry: Stop, the controller's Expired condition (vmv1alpha1.ConditionExpired) is the
// signal the host agent honours: an Expired=True clone is kept stopped (as if its run strategy
// were Halted) and its disk kept. The controller cannot write spec.runStrategy itself because a
// GitOps tool would see drift and undo it.
type ExpiryDecision struct {
	// ExpiresAt is nil for clones without a lifetime.
	ExpiresAt *metav1.Time
	// Expired is true once now has reached ExpiresAt.
	Expired bool
	// Action is Delete or Stop, meaningful when Expired.
	Action vmv1alpha1.ExpiryAction
	// RequeueAfter is how long until expiry (0 once expired or without a lifetime), so the
	// reconciler comes back exactly then instead of polling.
	RequeueAfter time.Duration
}

// DecideExpiry computes a clone's expiry at now.
func DecideExpiry(clone *vmv1alpha1.VMClone, now time.Time) ExpiryDecision {
	at, ok := Expiry(clone)
	if !ok {
		return ExpiryDecision{}
	}
	d := ExpiryDecision{ExpiresAt: &metav1.Time{Time: at}, Action: clone.Spec.Lifetime.OnExpiry}
	if d.Action == "" {
		d.Action = vmv1alpha1.ExpiryDelete
	}
	if !now.Before(at) {
		d.Expired = true
		return d
	}
	d.RequeueAfter = at.Sub(now)
	return d
}

// ReadyInput is what a clone's Ready condition is derived from.
type ReadyInput struct {
	Clone *vmv1alpha1.VMClone
	// Scheduled is the controller's Scheduled condition as it is about to be written.
	Scheduled metav1.Condition
	// HostLive is false when the bound host's heartbeat is stale or missing.
	HostLive bool
	// HostLostMessage explains a stale heartbeat.
	HostLostMessage string
	// Reschedule is set for a clone that asked to move off its lost host and has not yet:
	// Ready then says when it moves, or why it never does.
	Reschedule *RescheduleDecision
	// StoppedOnExpiry is true when the lifetime ended with onExpiry: Stop.
	StoppedOnExpiry bool
}

// ReadyCondition derives Ready from scheduling, host liveness and the agent's conditions, so
// `kubectl wait --for=condition=Ready` and GitOps health checks have one answer. A clone
// halted by design (runStrategy Halted, or stopped on expiry) is Ready once its disk is
// prepared: that is the state the user asked for.
func ReadyCondition(in ReadyInput) metav1.Condition {
	c := in.Clone
	cond := metav1.Condition{Type: vmv1alpha1.ConditionReady, ObservedGeneration: c.Generation}
	if in.Scheduled.Status != metav1.ConditionTrue {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, in.Scheduled.Reason, in.Scheduled.Message
		return cond
	}
	if !in.HostLive {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionUnknown, ReasonNodeLost, in.HostLostMessage
		if r := in.Reschedule; r != nil {
			switch r.Wait {
			case WaitsForFence:
				cond.Reason = ReasonRescheduleWaitsForFence
			case NeverMoves:
				cond.Reason = ReasonHostNotFencing
			}
			cond.Message = r.Message
		}
		if cond.Message == "" {
			cond.Message = fmt.Sprintf("host %s's heartbeat is stale: the clone's state is unknown; check its hostagent", c.Status.NodeName)
		}
		return cond
	}
	if !c.HostReportCurrent() {
		// Bound, but the host has not reported on this binding yet (or what the status shows
		// is an earlier host's report, after a reschedule).
		cond.Status, cond.Reason = metav1.ConditionFalse, ReasonWaitingForHost
		cond.Message = fmt.Sprintf("bound to %s; waiting for its hostagent to report", c.Status.NodeName)
		return cond
	}
	if c.Spec.ResetRequests > c.Status.ObservedResetRequests {
		cond.Status, cond.Reason = metav1.ConditionFalse, ReasonResetting
		cond.Message = fmt.Sprintf("reset %d requested (spec.resetRequests); waiting for the hostagent on %s to replace the disk with a fresh snapshot",
			c.Spec.ResetRequests, c.Status.NodeName)
		return cond
	}
	if c.Status.Phase == vmv1alpha1.PhaseFailed {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, ReasonFailed, c.Status.Message
		if cond.Message == "" {
			cond.Message = "the clone failed on its host: see its events; reset it (spec.resetRequests) or delete it"
		}
		return cond
	}
	steps := []string{vmv1alpha1.ConditionVolumeReady, vmv1alpha1.ConditionGuestPrepared}
	halted := c.Spec.RunStrategy == vmv1alpha1.RunStrategyHalted || in.StoppedOnExpiry
	if !halted {
		steps = append(steps, vmv1alpha1.ConditionDomainRunning)
	}
	if !halted && meta.FindStatusCondition(c.Status.Conditions, vmv1alpha1.ConditionGuestReady) != nil {
		// The agent writes GuestReady while the domain runs (agents before it never do, and
		// their clones are Ready once the domain runs): then "Ready" means the guest is up as
		// the template's readiness probe defines it.
		steps = append(steps, vmv1alpha1.ConditionGuestReady)
	}
	for _, t := range steps {
		sc := meta.FindStatusCondition(c.Status.Conditions, t)
		if sc == nil {
			cond.Status, cond.Reason = metav1.ConditionFalse, ReasonWaitingForHost
			cond.Message = fmt.Sprintf("waiting for the hostagent on %s to report %s", c.Status.NodeName, t)
			return cond
		}
		if sc.Status != metav1.ConditionTrue {
			cond.Status, cond.Reason = metav1.ConditionFalse, sc.Reason
			cond.Message = fmt.Sprintf("%s: %s", t, sc.Message)
			return cond
		}
	}
	if halted {
		// Halted is only reached once the domain is actually off, so `kubectl wait
		// --for=condition=Ready` after switching to Halted waits for the shutdown.
		dr := meta.FindStatusCondition(c.Status.Conditions, vmv1alpha1.ConditionDomainRunning)
		if dr == nil {
			// Not reported yet: the phase still says Starting until the agent has looked.
			cond.Status, cond.Reason = metav1.ConditionFalse, ReasonWaitingForHost
			cond.Message = fmt.Sprintf("waiting for the hostagent on %s to report %s", c.Status.NodeName, vmv1alpha1.ConditionDomainRunning)
			return cond
		}
		if dr.Status == metav1.ConditionTrue || dr.Reason == vmv1alpha1.ReasonShuttingDown {
			cond.Status, cond.Reason = metav1.ConditionFalse, ReasonStopping
			cond.Message = fmt.Sprintf("waiting for the domain on %s to stop (%s)", c.Status.NodeName, dr.Message)
			return cond
		}
	}
	cond.Status = metav1.ConditionTrue
	switch {
	case in.StoppedOnExpiry:
		cond.Reason, cond.Message = ReasonStoppedOnExpiry, "lifetime ended and the clone is kept stopped (onExpiry: Stop); delete it to free its disk"
	case halted:
		cond.Reason, cond.Message = ReasonHalted, "disk prepared; the domain stays off (runStrategy: Halted)"
	case pausedReport(c):
		cond.Reason, cond.Message = vmv1alpha1.ReasonPaused, fmt.Sprintf("warm standby on %s: booted, memory ballooned down, paused until a claim resumes it", c.Status.NodeName)
	default:
		cond.Reason, cond.Message = ReasonRunning, fmt.Sprintf("domain running on %s", c.Status.NodeName)
		if gr := meta.FindStatusCondition(c.Status.Conditions, vmv1alpha1.ConditionGuestReady); gr != nil {
			cond.Message += "; guest up: " + gr.Message
		}
	}
	return cond
}

// pausedReport: the agent reports the domain paused as a warm standby (spec.pause).
func pausedReport(c *vmv1alpha1.VMClone) bool {
	dr := meta.FindStatusCondition(c.Status.Conditions, vmv1alpha1.ConditionDomainRunning)
	return dr != nil && dr.Status == metav1.ConditionTrue && dr.Reason == vmv1alpha1.ReasonPaused
}

// setKStatusConditions derives kstatus' Reconciling and Stalled from Ready, so kstatus reads a
// clone as InProgress while it is provisioned, Current when Ready, and Failed when it failed.
// Stalled follows Ready's reason, not the phase: a Failed clone being reset, or on a lost host,
// is on its way (Ready says Resetting or NodeLost), not stuck. They are present only while
// True, as kstatus expects.
func setKStatusConditions(st *vmv1alpha1.VMCloneStatus, clone *vmv1alpha1.VMClone) {
	meta.RemoveStatusCondition(&st.Conditions, vmv1alpha1.ConditionReconciling)
	meta.RemoveStatusCondition(&st.Conditions, vmv1alpha1.ConditionStalled)
	ready := meta.FindStatusCondition(st.Conditions, vmv1alpha1.ConditionReady)
	if ready == nil || ready.Status == metav1.ConditionTrue {
		return
	}
	cond := metav1.Condition{Status: metav1.ConditionTrue, Reason: ready.Reason, Message: ready.Message,
		ObservedGeneration: clone.Generation, LastTransitionTime: ready.LastTransitionTime}
	if ready.Reason == ReasonFailed {
		cond.Type = vmv1alpha1.ConditionStalled
	} else {
		cond.Type = vmv1alpha1.ConditionReconciling
		if cond.Reason == "" {
			cond.Reason = ReasonProgressing
		}
	}
	// Keep the transition time of a condition that was already there.
	if old := meta.FindStatusCondition(clone.Status.Conditions, cond.Type); old != nil {
		cond.LastTransitionTime = old.LastTransitionTime
	}
	st.Conditions = append(st.Conditions, cond)
}
