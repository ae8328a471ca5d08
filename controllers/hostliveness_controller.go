package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// HostLivenessReconciler watches each host's heartbeat Lease and, when a host turns live or
// stale, hands that host's clones (and, when it turns live, the pending ones) to the VMClone
// reconciler, which marks them Ready Unknown / NodeLost or recomputes them.
//
// Why a reconciler per host rather than per clone: a Lease renews every few seconds; mapping
// each renewal to every clone of the host would cost hosts × clones reconciles per renewal
// period. Here a renewal costs one cheap reconcile, and clones are touched only on a change.
type HostLivenessReconciler struct {
	client.Client
	Leases client.Reader
	Opts   Options
	// Heartbeats is the manager's liveness tracker; every Lease this reconciler reads (it
	// reconciles on every Lease event) goes through it.
	Heartbeats *Heartbeats
	// Notify receives the clones to reconcile again.
	Notify chan<- event.GenericEvent

	mu sync.Mutex
	// lastRun is each host's liveness as last seen; a host seen for the first time needs no
	// notification (every clone is reconciled when the controller starts anyway).
	lastRun map[string]bool
	// markedLost is, per host, the heartbeat deadline whose loss was written to its XenHost:
	// written once per loss, so an agent that still reports while its Lease is stale does
	// not ping-pong Ready with the controller.
	markedLost map[string]time.Time
}

// ReasonHeartbeatLost is the XenHost Ready reason the controller sets when the host's agent
// stops renewing its heartbeat: the agent, which normally writes Ready, cannot say so itself.
const ReasonHeartbeatLost = vmv1alpha1.ReasonHeartbeatLost

// The controller writes only the XenHost Ready condition of a lost host (server-side apply of
// that one list entry); the agent takes it back with its next report.
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=xenhosts/status,verbs=patch

// Reconcile evaluates one host's heartbeat and requeues for the moment it would go stale.
func (r *HostLivenessReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	host := req.Name
	lease := &coordinationv1.Lease{}
	err := r.Leases.Get(ctx, types.NamespacedName{Namespace: r.Opts.LeaseNamespace, Name: host}, lease)
	switch {
	case apierrors.IsNotFound(err):
		lease = nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("get heartbeat Lease %s/%s: %w", r.Opts.LeaseNamespace, host, err)
	}
	hb := r.Heartbeats.Observe(host, lease)
	live := hb.Live

	r.mu.Lock()
	prev, known := r.lastRun[host]
	r.lastRun[host] = live
	r.mu.Unlock()

	if known && prev != live {
		log.FromContext(ctx).Info("host heartbeat changed", "host", host, "live", live)
		if err := r.notifyClones(ctx, host); err != nil {
			return ctrl.Result{}, err
		}
		if live {
			if err := r.notifyClones(ctx, unboundNode); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	if live {
		// Come back exactly when the heartbeat would be stale; a renewal before then
		// reconciles earlier and pushes the deadline out.
		return ctrl.Result{RequeueAfter: hb.StaleAt.Sub(r.Opts.Clock.Now())}, nil
	}
	return ctrl.Result{}, r.markHostLost(ctx, host, hb)
}

// markHostLost sets the XenHost's Ready to Unknown: what the agent reported last (Ready True,
// free memory) is no longer known to hold, and `kubectl get xenhosts` must not say Ready.
func (r *HostLivenessReconciler) markHostLost(ctx context.Context, host string, hb Heartbeat) error {
	staleAt := hb.StaleAt
	var xh vmv1alpha1.XenHost
	if err := r.Get(ctx, types.NamespacedName{Name: host}, &xh); err != nil {
		return client.IgnoreNotFound(err)
	}
	if c := meta.FindStatusCondition(xh.Status.Conditions, vmv1alpha1.ConditionReady); c != nil &&
		c.Status == metav1.ConditionUnknown && c.Reason == ReasonHeartbeatLost {
		return nil
	}
	r.mu.Lock()
	done := !staleAt.IsZero() && r.markedLost[host].Equal(staleAt)
	r.mu.Unlock()
	if done {
		return nil
	}
	msg := fmt.Sprintf("no heartbeat from the hostagent on %s (Lease %s/%s missing)", host, r.Opts.LeaseNamespace, host)
	if !hb.LeaseMissing && !staleAt.IsZero() {
		msg = fmt.Sprintf("no heartbeat from the hostagent on %s since %s (the last renewal of its Lease the controller saw; grace %s): "+
			"the status below is from then; check the hostagent pod and the host",
			host, hb.LastRenewalSeen.UTC().Format(time.RFC3339), r.Opts.HeartbeatGrace)
	}
	cond := map[string]any{
		"type": vmv1alpha1.ConditionReady, "status": string(metav1.ConditionUnknown), "reason": ReasonHeartbeatLost,
		"message": msg, "observedGeneration": xh.Generation,
		"lastTransitionTime": metav1.NewTime(r.Opts.Clock.Now()).UTC().Format(time.RFC3339),
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": vmv1alpha1.GroupVersion.String(), "kind": "XenHost",
		"metadata": map[string]any{"name": host, "uid": string(xh.UID)},
		"status":   map[string]any{"conditions": []any{cond}},
	}}
	// Forced: Ready is the agent's field while it reports; the agent forces it back.
	if err := r.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return fmt.Errorf("mark XenHost %s Ready=Unknown: %w", host, err)
	}
	r.mu.Lock()
	if r.markedLost == nil {
		r.markedLost = map[string]time.Time{}
	}
	r.markedLost[host] = staleAt
	r.mu.Unlock()
	return nil
}

// notifyClones sends every clone indexed under node (a host, or unboundNode) to the VMClone
// reconciler.
func (r *HostLivenessReconciler) notifyClones(ctx context.Context, node string) error {
	var list vmv1alpha1.VMCloneList
	if err := r.List(ctx, &list, client.MatchingFields{indexCloneNode: node}); err != nil {
		return fmt.Errorf("list VMClones on %s: %w", node, err)
	}
	for i := range list.Items {
		select {
		case r.Notify <- event.GenericEvent{Object: &list.Items[i]}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (r *HostLivenessReconciler) setupWithManager(mgr ctrl.Manager, leases cache.Cache) error {
	byName := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetName()}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("hostliveness").
		For(&vmv1alpha1.XenHost{}).
		WatchesRawSource(source.Kind(leases, client.Object(&coordinationv1.Lease{}), byName)).
		Complete(r)
}
