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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// agentConditions are the condition types the agent owns.
var agentConditions = []string{
	vmv1alpha1.ConditionVolumeReady, vmv1alpha1.ConditionGuestPrepared,
	vmv1alpha1.ConditionDomainRunning, vmv1alpha1.ConditionStorageAtRisk,
}

// agentOwnsPhase says whether a phase is one the agent writes (the controller writes Pending,
// Scheduled and Unknown).
func agentOwnsPhase(p vmv1alpha1.VMClonePhase) bool {
	switch p {
	case "", vmv1alpha1.PhasePending, vmv1alpha1.PhaseScheduled, vmv1alpha1.PhaseUnknown:
		return false
	}
	return true
}

// agentStatus is the part of a clone's status the agent owns, as currently stored.
func agentStatus(c *vmv1alpha1.VMClone) vmv1alpha1.VMCloneStatus {
	st := vmv1alpha1.VMCloneStatus{
		ObservedGeneration:    c.Status.ObservedGeneration,
		Domain:                c.Status.Domain.DeepCopy(),
		Volume:                c.Status.Volume.DeepCopy(),
		ObservedResetRequests: c.Status.ObservedResetRequests,
		Timestamps:            &vmv1alpha1.CloneTimestamps{},
	}
	if agentOwnsPhase(c.Status.Phase) {
		st.Phase, st.Message = c.Status.Phase, c.Status.Message
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

// phaseOf derives the clone's phase and message from the agent's conditions. It returns an
// empty phase while the agent has nothing to say yet (the controller's phase stands).
func phaseOf(s *cloneScope) (vmv1alpha1.VMClonePhase, string) {
	conds := s.status.Conditions
	find := func(t string) *metav1.Condition { return meta.FindStatusCondition(conds, t) }
	vol, guest, dom := find(vmv1alpha1.ConditionVolumeReady), find(vmv1alpha1.ConditionGuestPrepared), find(vmv1alpha1.ConditionDomainRunning)
	switch {
	case s.failed:
		return vmv1alpha1.PhaseFailed, find(vmv1alpha1.ConditionStorageAtRisk).Message
	case vol == nil || vol.Reason == ReasonWaitingForIdentity:
		return "", ""
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
	case dom.Status == metav1.ConditionTrue:
		return vmv1alpha1.PhaseRunning, dom.Message
	}
	switch dom.Reason {
	case ReasonShuttingDown:
		return vmv1alpha1.PhaseStopping, dom.Message
	case ReasonHalted, ReasonStopped, ReasonGuestPoweredOff:
		return vmv1alpha1.PhaseStopped, dom.Message
	case ReasonGuestCrashed:
		if !wantRunning(s.clone) {
			return vmv1alpha1.PhaseStopped, dom.Message
		}
	}
	return vmv1alpha1.PhaseStarting, dom.Message
}

// applyStatus writes the agent's part of the status with server-side apply, and only when it
// changed since the last write: a clone costs a handful of writes over its life, not one per
// reconcile. The apply carries the resourceVersion the reconcile started from, so a status
// computed from a stale cache can never remove fields a newer write set (server-side apply
// drops fields a manager stops sending); a stale reconcile gets a conflict and the fresh
// object's event runs it again.
func (r *CloneReconciler) applyStatus(ctx context.Context, s *cloneScope) error {
	s.status.ObservedGeneration = s.clone.Generation
	if ts := s.status.Timestamps; ts != nil && *ts == (vmv1alpha1.CloneTimestamps{}) {
		s.status.Timestamps = nil
	}
	if s.applied == nil {
		before := agentStatus(s.clone)
		s.applied = &before
	}
	if sameAgentStatus(*s.applied, s.status) {
		return nil
	}
	st, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&s.status)
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	var u *unstructured.Unstructured
	for attempt := 0; ; attempt++ {
		u = &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": vmv1alpha1.GroupVersion.String(),
			"kind":       "VMClone",
			"metadata": map[string]any{"name": s.clone.Name, "namespace": s.clone.Namespace,
				"uid": string(s.clone.UID), "resourceVersion": s.clone.ResourceVersion},
			"status": st,
		}}
		// Forced: the agent takes the phase over from the controller once it acts on the clone.
		err = r.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
			client.FieldOwner(FieldManager), client.ForceOwnership)
		if err == nil {
			break
		}
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("apply status of %s/%s: %w", s.clone.Namespace, s.clone.Name, err)
		}
		// Someone wrote the clone since this reconcile read it. If the agent's own share is
		// still what this reconcile started from, the other write was the controller's (its
		// conditions, labels): this status is still right, so write it on the new version.
		// Dropping it instead would lose what the host just did — a guest that powered off
		// and whose domain was cleaned up would look like a vanished domain next time.
		fresh, same, rerr := r.agentShareUnchanged(ctx, s)
		if rerr != nil || !same || attempt == 2 {
			log.FromContext(ctx).V(1).Info("status write raced a newer version of the clone; retrying from it",
				"resourceVersion", s.clone.ResourceVersion, "error", err.Error())
			s.stale = true
			return nil
		}
		s.clone.ResourceVersion = fresh
	}
	// Later writes of this reconcile start from what the server now holds.
	s.clone.ResourceVersion = u.GetResourceVersion()
	// Remember the status as the server stores it: times have one-second precision on the
	// wire, and cacheBehind compares this with what the cache returns. Kept with nanoseconds,
	// it never matched, and every reconcile after a write waited out cacheBehind's timeout.
	applied, err := asStored(s.status)
	if err != nil {
		return err
	}
	s.status = *applied.DeepCopy()
	if s.status.Timestamps == nil {
		s.status.Timestamps = &vmv1alpha1.CloneTimestamps{} // the steps set its fields
	}
	s.applied = &applied
	r.written.Store(s.clone.UID, writtenStatus{status: applied, at: time.Now()})
	return nil
}

// flush writes the status between steps, so `kubectl get -w` shows Provisioning and Starting
// while the slow host work happens rather than only its end.
func (r *CloneReconciler) flush(ctx context.Context, s *cloneScope) error {
	s.status.Phase, s.status.Message = phaseOf(s)
	return r.applyStatus(ctx, s)
}

// agentShareUnchanged reads the clone uncached and reports its resourceVersion and whether the
// agent's share of its status is still the one this reconcile started from (s.applied).
func (r *CloneReconciler) agentShareUnchanged(ctx context.Context, s *cloneScope) (string, bool, error) {
	var cur vmv1alpha1.VMClone
	if err := r.Reader.Get(ctx, client.ObjectKeyFromObject(s.clone), &cur); err != nil {
		return "", false, err
	}
	if cur.UID != s.clone.UID {
		return "", false, nil
	}
	return cur.ResourceVersion, sameAgentStatus(agentStatus(&cur), *s.applied), nil
}

// sameAgentStatus compares two versions of the agent's share of a status as the server would
// store them: times in whole seconds, an empty Timestamps as none, conditions in any order
// (agentStatus lists them by type, a reconcile appends them as it sets them).
func sameAgentStatus(a, b vmv1alpha1.VMCloneStatus) bool {
	norm := func(st vmv1alpha1.VMCloneStatus) vmv1alpha1.VMCloneStatus {
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
