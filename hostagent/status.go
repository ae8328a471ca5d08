package hostagent

import (
	"context"
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// agentConditions are the condition types the agent owns.
var agentConditions = vmv1alpha1.ConditionTypes("VMClone", vmv1alpha1.WriterHostAgent)

// agentStatus is the part of a clone's status the agent owns, as currently stored, if it
// describes the clone's current binding. A report from another binding (the clone's earlier
// host, before a reschedule) is not this host's to continue from: the agent starts afresh,
// with the resets counted as done (its disk will be a fresh snapshot anyway).
func agentStatus(c *vmv1alpha1.VMClone) vmv1alpha1.VMCloneStatus {
	if !c.HostReportCurrent() {
		return vmv1alpha1.VMCloneStatus{
			ObservedBindingGeneration: c.Status.BindingGeneration,
			ObservedResetRequests:     c.Spec.ResetRequests,
			Timestamps:                &vmv1alpha1.CloneTimestamps{},
		}
	}
	return storedReport(c)
}

// storedReport is the agent's part of a clone's status as stored, whichever binding it
// describes.
func storedReport(c *vmv1alpha1.VMClone) vmv1alpha1.VMCloneStatus {
	st := vmv1alpha1.VMCloneStatus{
		ObservedGeneration:        c.Status.ObservedGeneration,
		ObservedBindingGeneration: c.Status.ObservedBindingGeneration,
		Phase:                     c.Status.Phase,
		Message:                   c.Status.Message,
		Domain:                    c.Status.Domain.DeepCopy(),
		Volume:                    c.Status.Volume.DeepCopy(),
		Guest:                     c.Status.Guest.DeepCopy(),
		ObservedResetRequests:     c.Status.ObservedResetRequests,
		Timestamps:                &vmv1alpha1.CloneTimestamps{},
	}
	if ts := c.Status.Timestamps; ts != nil {
		st.Timestamps.VolumeReady = ts.VolumeReady.DeepCopy()
		st.Timestamps.GuestPrepared = ts.GuestPrepared.DeepCopy()
		st.Timestamps.Started = ts.Started.DeepCopy()
		st.Timestamps.Stopped = ts.Stopped.DeepCopy()
	}
	for _, t := range agentConditions {
		if cond := meta.FindStatusCondition(c.Status.Conditions, t); cond != nil {
			st.Conditions = append(st.Conditions, *cond.DeepCopy())
		}
	}
	return st
}

// reportFor is where a reconcile starts from: the report this agent last wrote for the clone's
// current binding, else the one stored. The agent is the only writer of these fields, so what
// it wrote is never older than what its cache shows — which may lag its own write by a moment,
// and acting on that lag once restarted a Once domain that had just stopped.
// It returns the report to build on and the one the server holds, to write only a change.
func (r *CloneReconciler) reportFor(c *vmv1alpha1.VMClone) (base, last vmv1alpha1.VMCloneStatus) {
	key := client.ObjectKeyFromObject(c)
	if v, ok := r.reports.Load(key); ok {
		w := v.(writtenReport)
		if w.pending != nil && w.uid == c.UID && w.pending.ObservedBindingGeneration == c.Status.BindingGeneration {
			base = *w.pending.DeepCopy()
			if base.Timestamps == nil {
				base.Timestamps = &vmv1alpha1.CloneTimestamps{}
			}
			return base, *w.status.DeepCopy()
		}
		if w.pending == nil && w.uid == c.UID && w.status.ObservedBindingGeneration == c.Status.BindingGeneration {
			base = *w.status.DeepCopy()
			if base.Timestamps == nil {
				base.Timestamps = &vmv1alpha1.CloneTimestamps{}
			}
			return base, *w.status.DeepCopy()
		}
		r.reports.Delete(key)
	}
	return agentStatus(c), storedReport(c)
}

// writtenReport is a report this agent wrote, for the clone of that UID, and the one it has
// decided on but holds back (holdReport), if any.
type writtenReport struct {
	uid     types.UID
	status  vmv1alpha1.VMCloneStatus
	pending *vmv1alpha1.VMCloneStatus
	// heldSince is when the agent first held a report back for this clone.
	heldSince time.Time
}

// phaseOf derives the clone's phase and message from the agent's conditions. It returns an
// empty phase while the agent has nothing to say yet (the controller's phase stands).
func phaseOf(s *cloneScope) (vmv1alpha1.VMClonePhase, string) {
	conds := s.status.Conditions
	find := func(t string) *metav1.Condition { return meta.FindStatusCondition(conds, t) }
	vol, guest, dom := find(vmv1alpha1.ConditionVolumeReady), find(vmv1alpha1.ConditionGuestPrepared), find(vmv1alpha1.ConditionDomainRunning)
	switch {
	case !s.clone.DeletionTimestamp.IsZero():
		return vmv1alpha1.PhaseTerminating, "removing the domain and its disk from " + s.clone.Status.NodeName
	case s.failed:
		return vmv1alpha1.PhaseFailed, find(vmv1alpha1.ConditionStorageAtRisk).Message
	case vol == nil || vol.Reason == ReasonWaitingForIdentity:
		return "", ""
	case vol.Reason == ReasonVolumeLost:
		return vmv1alpha1.PhaseFailed, vol.Message
	case vol.Reason == ReasonResetting:
		return vmv1alpha1.PhaseResetting, "the disk is being reset to the template"
	case vol.Status != metav1.ConditionTrue:
		return vmv1alpha1.PhaseProvisioning, vol.Message
	case guest == nil || guest.Status != metav1.ConditionTrue:
		msg := "preparing the guest disk"
		if guest != nil {
			msg = guest.Message
		}
		return vmv1alpha1.PhaseProvisioning, msg
	case dom == nil:
		return vmv1alpha1.PhaseStarting, "starting the domain"
	case dom.Status == metav1.ConditionTrue && dom.Reason == ReasonPaused:
		return vmv1alpha1.PhasePaused, dom.Message
	case dom.Status == metav1.ConditionTrue:
		return vmv1alpha1.PhaseRunning, dom.Message
	}
	switch dom.Reason {
	case ReasonShuttingDown:
		return vmv1alpha1.PhaseStopping, dom.Message
	case ReasonHalted, ReasonStopped, ReasonGuestPoweredOff, ReasonFenced:
		return vmv1alpha1.PhaseStopped, dom.Message
	case ReasonGuestCrashed:
		if !wantRunning(s.clone, s.status) {
			return vmv1alpha1.PhaseStopped, dom.Message
		}
	}
	return vmv1alpha1.PhaseStarting, dom.Message
}

// applyStatus writes the agent's report with server-side apply, only when it differs from the
// last one written (or stored): a clone costs a handful of writes over its life, not one per
// reconcile. Every field sent is the agent's alone, so no resourceVersion precondition is
// needed and no other writer's change can conflict; the UID keeps the write off a namesake
// created meanwhile.
func (r *CloneReconciler) applyStatus(ctx context.Context, s *cloneScope) error {
	s.status.Phase, s.status.Message = phaseOf(s)
	s.status.ObservedGeneration = s.clone.Generation
	s.status.ObservedBindingGeneration = s.clone.Status.BindingGeneration
	if ts := s.status.Timestamps; ts != nil && *ts == (vmv1alpha1.CloneTimestamps{}) {
		s.status.Timestamps = nil
	}
	if sameAgentStatus(s.last, s.status) {
		return nil
	}
	st, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&s.status)
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": vmv1alpha1.GroupVersion.String(),
		"kind":       "VMClone",
		"metadata":   map[string]any{"name": s.clone.Name, "namespace": s.clone.Namespace, "uid": string(s.clone.UID)},
		"status":     st,
	}}
	if err := r.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			// Gone, or replaced by a namesake (UID precondition): nothing of ours to report.
			r.reports.Delete(client.ObjectKeyFromObject(s.clone))
			log.FromContext(ctx).V(1).Info("clone gone before its report was written", "error", err.Error())
			return nil
		}
		return fmt.Errorf("apply status of %s/%s: %w", s.clone.Namespace, s.clone.Name, err)
	}
	// Remember the report as the server stores it (times in whole seconds), so the next
	// comparison is with what is really there.
	applied, err := asStored(s.status)
	if err != nil {
		return err
	}
	s.last = applied
	s.status = *applied.DeepCopy()
	if s.status.Timestamps == nil {
		s.status.Timestamps = &vmv1alpha1.CloneTimestamps{} // the steps set its fields
	}
	r.reports.Store(client.ObjectKeyFromObject(s.clone), writtenReport{uid: s.clone.UID, status: applied})
	return nil
}

// sameAgentStatus compares two versions of the agent's share of a status as the server would
// store them: times in whole seconds, an empty Timestamps as none, conditions in any order
// (agentStatus lists them by type, a reconcile appends them as it sets them).
func sameAgentStatus(a, b vmv1alpha1.VMCloneStatus) bool {
	norm := func(st vmv1alpha1.VMCloneStatus) vmv1alpha1.VMCloneStatus {
		st = *st.DeepCopy()
		if stored, err := asStored(st); err == nil {
			st = stored
		}
		if st.Timestamps != nil && *st.Timestamps == (vmv1alpha1.CloneTimestamps{}) {
			st.Timestamps = nil
		}
		sort.SliceStable(st.Conditions, func(i, j int) bool { return st.Conditions[i].Type < st.Conditions[j].Type })
		return st
	}
	return equality.Semantic.DeepEqual(norm(a), norm(b))
}

// asStored returns st as the API server stores and returns it: metav1.Time is serialized with
// one-second precision.
func asStored(st vmv1alpha1.VMCloneStatus) (vmv1alpha1.VMCloneStatus, error) {
	var out vmv1alpha1.VMCloneStatus
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&st)
	if err == nil {
		err = runtime.DefaultUnstructuredConverter.FromUnstructured(u, &out)
	}
	if err != nil {
		return out, fmt.Errorf("round-trip status: %w", err)
	}
	return out, nil
}

// boundClones lists the clones bound to node. The agent's cache holds only those already (it
// selects on status.nodeName); the filter keeps callers right with any reader.
func boundClones(ctx context.Context, c client.Reader, node string) ([]vmv1alpha1.VMClone, error) {
	var list vmv1alpha1.VMCloneList
	if err := c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list VMClones bound to %s: %w", node, err)
	}
	out := list.Items[:0]
	for i := range list.Items {
		if list.Items[i].Status.NodeName == node {
			out = append(out, list.Items[i])
		}
	}
	return out, nil
}
