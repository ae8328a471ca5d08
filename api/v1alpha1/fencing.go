package v1alpha1

import "time"

// Fencing: a host's agent that cannot renew its heartbeat Lease for its fenceAfter stops the
// domains of its clones that opted in to rescheduling (spec.placement.onNodeLost: Reschedule)
// on its own, and the controller moves such a clone only after it may assume that happened:
// fenceAfter plus a margin after it last saw the Lease renewed. Both sides read these.
const (
	// FenceAfterAnnotation on a host's heartbeat Lease is the agent's fenceAfter, as a Go
	// duration ("60s"), written by the agent with every renewal. A Lease without it is an
	// agent that does not fence: its clones are never rescheduled.
	FenceAfterAnnotation = "vm.xenclone.dev/fence-after"
	// DefaultFenceAfter is the agent's default fenceAfter (--fence-after).
	DefaultFenceAfter = 60 * time.Second
	// DefaultFenceMargin is what the controller adds to a host's fenceAfter before it moves
	// a clone off it: the time the agent's xl destroy may take, plus the API server's write
	// latency between the agent's renewal and the controller seeing it.
	DefaultFenceMargin = 20 * time.Second
)

// OnNodeLostAnnotation is the deprecated way to ask for spec.placement.onNodeLost: Reschedule
// (value OnNodeLostRescheduleValue), from before the field existed; still honoured.
const (
	OnNodeLostAnnotation      = "vm.xenclone.dev/on-node-lost"
	OnNodeLostRescheduleValue = "Reschedule"
)

// ReschedulesOnNodeLoss says whether a clone asked to be moved off a lost host. The controller
// moves such a clone, and the agent of a cut-off host fences it (destroys its domain) before
// the controller may: both decide with this one function, or a clone could be moved without
// being fenced.
func ReschedulesOnNodeLoss(c *VMClone) bool {
	if p := c.Spec.Placement; p != nil && p.OnNodeLost != "" {
		return p.OnNodeLost == NodeLostReschedule
	}
	return c.Annotations[OnNodeLostAnnotation] == OnNodeLostRescheduleValue
}
