package controllers

import (
	"context"
	"fmt"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	// Notify receives the clones to reconcile again.
	Notify chan<- event.GenericEvent

	mu sync.Mutex
	// lastRun is each host's liveness as last seen; a host seen for the first time needs no
	// notification (every clone is reconciled when the controller starts anyway).
	lastRun map[string]bool
}

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
	now := r.Opts.Clock.Now()
	live, staleAt := HostLive(lease, now, r.Opts.HeartbeatGrace)

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
		return ctrl.Result{RequeueAfter: staleAt.Sub(now)}, nil
	}
	return ctrl.Result{}, nil
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
