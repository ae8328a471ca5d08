package controllers

// The VMClone reconciler decides; the host agent acts. Every status field has one writer
// (docs/architecture.md, "Who writes what"): this reconciler binds a clone once per host —
// nodeName, bindingGeneration, uuid, interfaces, hostname and timestamps.scheduled in one
// server-side apply — and owns what only it can know: expiresAt and the conditions Scheduled,
// Expired, Ready, Reconciling and Stalled. After binding, the host agent alone writes what its
// host knows (phase, message, domain, volume, its conditions). Ready is the controller's because
// it is the one place that sees every input: the binding, the host's heartbeat, the lifetime
// and the agent's report — and a lost host cannot report anything.
//
// The agent's watch selects clones on status.nodeName (a CRD selectable field), so binding is
// one write and the agent never sees a clone without its identity. The user's spec and labels
// are never written (GitOps tools would see drift).

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// unschedulableRetry is a backstop for pending clones: they are retried on every XenHost,
// template or heartbeat change already; this catches a change no watch maps to them.
const unschedulableRetry = 5 * time.Minute

// cloudInitRetry is how often a clone waiting for a Secret named in spec.cloudInit looks again.
const cloudInitRetry = 10 * time.Second

// VMCloneReconciler checks a clone's template and namespace, allocates its identity, places it
// on a live host with capacity, and runs its lifetime and Ready condition.
type VMCloneReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	// Leases reads the hosts' heartbeat Leases in Opts.LeaseNamespace.
	Leases client.Reader
	// System reads the cloud-init copies in Opts.LeaseNamespace; Sources reads the Secrets
	// clones name, uncached.
	System, Sources client.Reader
	Opts            Options
	// Heartbeats judges the hosts' liveness from the Leases read (shared with the host
	// liveness reconciler).
	Heartbeats *Heartbeats

	reserved *reservations
	// ledger accounts what bound clones take per host, for placement.
	ledger *usageLedger
}

// cloneScope carries one reconcile's state: the clone as read, and the controller-owned status
// the steps build, applied once on the way out.
type cloneScope struct {
	clone  *vmv1alpha1.VMClone
	key    types.NamespacedName
	tmpl   *vmv1alpha1.VMTemplate
	status vmv1alpha1.VMCloneStatus
	// deleted is set when the clone was deleted on expiry: nothing left to apply.
	deleted bool
	// stale is set when a write showed the cache is behind this controller's own earlier
	// write: the status built from it would undo that write, so nothing is applied and the
	// newer version's event reconciles the clone again.
	stale bool
	// reschedule is set while the clone waits to move off its lost host (or never will): what
	// Ready says about it.
	reschedule *RescheduleDecision
}

// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclones,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclones/status,verbs=get;patch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmtemplates;xenhosts,verbs=get;list;watch
// Heartbeats are read only in the lease namespace (a Role there, not a ClusterRole): the
// controller has no business with node leases or other components' leader election.
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch,namespace=xenclone-system
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile drives one VMClone: fetch, then reconcileDelete or reconcileNormal, with the
// controller's share of the status applied on every exit.
func (r *VMCloneReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	clone := &vmv1alpha1.VMClone{}
	if err := r.Get(ctx, req.NamespacedName, clone); err != nil {
		if apierrors.IsNotFound(err) {
			r.reserved.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get VMClone %s: %w", req.NamespacedName, err)
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("vmclone", req.NamespacedName, "node", clone.Status.NodeName))
	r.reserved.observed(req.NamespacedName, clone.UID, clone.Status.NodeName, cloneMACs(clone))

	if !clone.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, clone)
	}

	s := &cloneScope{clone: clone, key: req.NamespacedName, status: controllerStatus(clone)}
	defer func() {
		setKStatusConditions(&s.status, clone)
		if s.deleted || s.stale || equality.Semantic.DeepEqual(s.status, controllerStatus(clone)) {
			return
		}
		err := applyStatus(ctx, r.Client, r.Scheme, clone, &s.status)
		if err == nil && s.status.NodeName != "" && clone.Status.NodeName == "" {
			r.reserved.bindingWritten(clone.UID)
		}
		if err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				// Deleted meanwhile (scale-down, expiry), or replaced by a namesake (the UID
				// precondition): nothing to record; a namesake's own events reconcile it.
				return
			}
			reterr = kerrors.NewAggregate([]error{reterr, err})
		}
	}()
	return r.reconcileNormal(ctx, s)
}

// reconcileDelete only drops what the controller holds in memory: the host agent's finalizer
// removes the domain and disk, and a clone that was never bound has no finalizer at all.
func (r *VMCloneReconciler) reconcileDelete(ctx context.Context, clone *vmv1alpha1.VMClone) (ctrl.Result, error) {
	if clone.Status.NodeName != "" {
		return ctrl.Result{}, nil // its host's agent cleans up and releases the finalizer
	}
	r.reserved.forget(client.ObjectKeyFromObject(clone))
	// Bound to no host (never placed, or moved off a lost one): no agent will release the
	// host-cleanup finalizer, and no host holds anything for the clone any more — what a lost
	// host left is collected by its orphan collector once it returns.
	if controllerutil.ContainsFinalizer(clone, vmv1alpha1.CloneFinalizer) {
		patch := client.MergeFromWithOptions(clone.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.RemoveFinalizer(clone, vmv1alpha1.CloneFinalizer)
		if err := r.Patch(ctx, clone, patch); err != nil && !apierrors.IsNotFound(err) {
			if apierrors.IsConflict(err) {
				return ctrl.Result{RequeueAfter: time.Second}, nil
			}
			return ctrl.Result{}, fmt.Errorf("release finalizer of unbound clone: %w", err)
		}
	}
	return ctrl.Result{}, nil
}

// reconcileNormal reads like a clone's life: lifetime, usable template, identity, host (moved
// off a lost one if it opted in), label on the host's watch, Ready. Each step returns done or
// not yet; a clone that cannot go further still gets its lifetime and Ready.
func (r *VMCloneReconciler) reconcileNormal(ctx context.Context, s *cloneScope) (ctrl.Result, error) {
	// The lifetime runs whether or not the clone could be placed: an expired clone goes even if
	// it never found a host.
	expiresIn, err := r.ensureLifetime(ctx, s)
	if err != nil || s.deleted {
		return ctrl.Result{}, err
	}
	result := ctrl.Result{}
	requeueWithin := func(d time.Duration) {
		if d > 0 && (result.RequeueAfter == 0 || d < result.RequeueAfter) {
			result.RequeueAfter = d
		}
	}
	requeueWithin(expiresIn)

	placed, err := r.ensureHost(ctx, s, requeueWithin)
	if err != nil || s.stale {
		return ctrl.Result{}, err
	}
	if !placed {
		// Backstop only: pending clones are retried on host, template, namespace and
		// heartbeat changes already.
		requeueWithin(unschedulableRetry)
	}
	if err := r.ensureReady(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	return result, nil
}

// ensureHost runs the steps that get a clone onto a host: template and namespace rules,
// identity, moving off a lost host (opt-in), placement, and the labels the agent selects on.
// It reports whether the clone is bound.
func (r *VMCloneReconciler) ensureHost(ctx context.Context, s *cloneScope, requeueWithin func(time.Duration)) (bool, error) {
	if ok, err := r.ensureTemplate(ctx, s); err != nil || !ok {
		return false, err
	}
	if ok, err := r.ensureIdentity(ctx, s); err != nil || !ok {
		return false, err
	}
	if ok, err := r.ensureCloudInit(ctx, s); err != nil || !ok {
		// Secrets are not watched (that would take list/watch on every Secret): look again
		// soon for the one the user is about to create.
		requeueWithin(cloudInitRetry)
		return false, err
	}
	// Never holds the clone back: the data is for the running guest (guestdata.go).
	if err := r.ensureGuestData(ctx, s); err != nil {
		return false, err
	}
	rescheduleIn, err := r.ensureRescheduleOnNodeLoss(ctx, s)
	if err != nil {
		return false, err
	}
	requeueWithin(rescheduleIn)
	return r.ensurePlacement(ctx, s)
}

// ensureTemplate loads the template and checks the clone's namespace may use it. A bound clone
// keeps going whatever happens to the template (its disk exists; the template's finalizer
// protects it); an unbound one waits with a Scheduled condition that says what to fix.
func (r *VMCloneReconciler) ensureTemplate(ctx context.Context, s *cloneScope) (bool, error) {
	name := s.clone.Spec.TemplateRef.Name
	tmpl := &vmv1alpha1.VMTemplate{}
	err := r.Get(ctx, types.NamespacedName{Name: name}, tmpl)
	switch {
	case apierrors.IsNotFound(err):
		tmpl = nil
	case err != nil:
		return false, fmt.Errorf("get VMTemplate %s: %w", name, err)
	}
	s.tmpl = tmpl
	if s.status.NodeName != "" {
		return true, nil
	}
	if tmpl == nil {
		r.setUnscheduled(s, ReasonTemplateNotFound,
			fmt.Sprintf("VMTemplate %s does not exist: create it, or fix spec.templateRef.name (it cannot change: recreate the clone)", name))
		return false, nil
	}
	if !tmpl.DeletionTimestamp.IsZero() {
		r.setUnscheduled(s, ReasonTemplateDeleting,
			fmt.Sprintf("VMTemplate %s is being deleted and takes no new clones: use another template", name))
		return false, nil
	}
	allowed, err := r.namespaceAllowed(ctx, tmpl, s.clone.Namespace)
	if err != nil {
		return false, err
	}
	if !allowed {
		r.setUnscheduled(s, ReasonNamespaceNotAllowed,
			fmt.Sprintf("namespace %s may not clone VMTemplate %s: ask its owners to add the namespace to spec.allowedNamespaces or to match spec.namespaceSelector", s.clone.Namespace, name))
		return false, nil
	}
	return true, nil
}

// namespaceAllowed applies the template's namespace rule: no rule means every namespace.
func (r *VMCloneReconciler) namespaceAllowed(ctx context.Context, tmpl *vmv1alpha1.VMTemplate, namespace string) (bool, error) {
	if len(tmpl.Spec.AllowedNamespaces) == 0 && tmpl.Spec.NamespaceSelector == nil {
		return true, nil
	}
	for _, ns := range tmpl.Spec.AllowedNamespaces {
		if ns == namespace {
			return true, nil
		}
	}
	if tmpl.Spec.NamespaceSelector == nil {
		return false, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(tmpl.Spec.NamespaceSelector)
	if err != nil {
		return false, nil //nolint:nilerr // an invalid selector admits nobody; the template status says why
	}
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
		return false, fmt.Errorf("get namespace %s: %w", namespace, err)
	}
	return sel.Matches(labels.Set(ns.Labels)), nil
}

// ensureIdentity allocates the clone's UUID, host name and one unique MAC per NIC, once.
func (r *VMCloneReconciler) ensureIdentity(ctx context.Context, s *cloneScope) (bool, error) {
	if s.status.UUID == "" {
		// The clone's UID is a random UUID the API server guarantees unique: the Xen UUID
		// is unique by construction and traceable to the object.
		s.status.UUID = string(s.clone.UID)
	}
	if s.status.Hostname == "" {
		s.status.Hostname = cloneHostname(s.clone)
	}
	if s.tmpl == nil {
		// Bound clone whose template vanished (finalizer forced off): keep what it has.
		return true, nil
	}
	nics := cloneNICs(s.clone, s.tmpl)
	r.reserved.placing.Lock()
	defer r.reserved.placing.Unlock()
	current := s.status.Interfaces
	if len(current) == 0 {
		// Allocated moments ago by a reconcile whose write the cache does not show yet.
		current = r.reserved.interfacesFor(s.clone.UID)
	}
	ifaces, err := AllocateInterfaces(nics, current, r.macInUse(ctx, s.clone.UID),
		drawRandom, func(mac string) { r.reserved.reserveMAC(s.key, s.clone.UID, mac) })
	var conflict *MACConflictError
	if errors.As(err, &conflict) {
		if s.status.NodeName == "" {
			r.setUnscheduled(s, ReasonMACConflict, conflict.Error())
			return false, nil
		}
		// Bound already: keep the MACs it has; the event tells the user the new pin is refused.
		r.Recorder.Eventf(s.clone, nil, corev1.EventTypeWarning, ReasonMACConflict, "AllocateMAC", "%s", conflict.Error())
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("allocate MACs: %w", err)
	}
	if len(s.status.Interfaces) == 0 {
		r.reserved.reserveInterfaces(s.key, s.clone.UID, ifaces)
	}
	s.status.Interfaces = ifaces
	return true, nil
}

// macInUse looks a MAC up in the cache's MAC index and in the MACs reserved but not yet in
// the cache, ignoring the clone itself.
func (r *VMCloneReconciler) macInUse(ctx context.Context, self types.UID) MACInUse {
	return func(mac string) string {
		if owner := r.reserved.macOwner(mac, self); owner != "" {
			return owner
		}
		var holders vmv1alpha1.VMCloneList
		if err := r.List(ctx, &holders, client.MatchingFields{indexCloneMAC: mac}, client.UnsafeDisableDeepCopy); err != nil {
			// Cannot prove it free: treat as taken, a re-draw is cheap.
			return "unknown (cache error)"
		}
		for i := range holders.Items {
			if holders.Items[i].UID != self {
				return client.ObjectKeyFromObject(&holders.Items[i]).String()
			}
		}
		return ""
	}
}

func drawRandom() [3]byte {
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return b
}

// ensureRescheduleOnNodeLoss moves a clone off its lost host once the host's agent must have
// stopped the clone's domain (DecideReschedule), if the clone asked for it
// (spec.placement.onNodeLost). The clone keeps its identity (UUID, MACs); its disk on the lost
// host is abandoned, which is why this is opt-in for disposable clones. A host that is only cut
// off from the API server fenced the domain by then (its agent stops it when it cannot renew
// its Lease for fenceAfter); when it returns, its agent sees the clone bound elsewhere and
// removes what is left (issue 6: owned domains and LVs whose clone is bound elsewhere are
// garbage). It returns how long until the clone may move, for a requeue.
func (r *VMCloneReconciler) ensureRescheduleOnNodeLoss(ctx context.Context, s *cloneScope) (time.Duration, error) {
	node := s.status.NodeName
	if node == "" || !ReschedulesOnNodeLoss(s.clone) {
		return 0, nil
	}
	lease, err := r.lease(ctx, node)
	if err != nil {
		return 0, err
	}
	hb := r.Heartbeats.Observe(node, lease)
	if hb.Live {
		return 0, nil
	}
	now := r.Opts.Clock.Now()
	d := DecideReschedule(RescheduleInput{
		Host: node, Heartbeat: hb, Now: now,
		HeartbeatGrace: r.Opts.HeartbeatGrace, RescheduleAfter: r.Opts.NodeLostRescheduleAfter, FenceMargin: r.Opts.FenceMargin,
	})
	if !d.Move {
		s.reschedule = &d
		if d.Wait == NeverMoves {
			// Nothing but the host's return (a Lease event) or an upgraded agent changes this.
			return 0, nil
		}
		return d.At.Sub(now), nil
	}
	dis, err := r.hostDisruption(ctx)
	if err != nil {
		return 0, err
	}
	if dis.Widespread(r.Opts.RescheduleMaxLostFraction) {
		r.Recorder.Eventf(s.clone, nil, corev1.EventTypeWarning, ReasonReschedulePaused, "Reschedule",
			"host %s is lost, but so are %d of %d hosts (threshold %.0f%%): that looks like a control-plane or network outage, not host failures, so no clone is moved until more hosts report again; to move this clone anyway, delete it",
			node, dis.Lost, dis.Total, 100*r.Opts.RescheduleMaxLostFraction)
		log.FromContext(ctx).Info("rescheduling paused: widespread host loss", "lostHost", node, "lost", dis.Lost, "hosts", dis.Total)
		return r.Opts.HeartbeatGrace, nil
	}
	// The old host's report stays in the status until the new host's agent replaces it; it
	// carries the old binding generation, so nothing counts it meanwhile (HostReportCurrent).
	// Placement below binds the clone anew in this same reconcile: one write.
	r.Recorder.Eventf(s.clone, nil, corev1.EventTypeWarning, ReasonRescheduled, "Reschedule",
		"host %s has been lost since %s (last heartbeat renewal seen) and its hostagent has fenced the clone's domain by now (fence-after %s): placing the clone on another host with the same identity (spec.placement.onNodeLost: Reschedule); its old disk is abandoned",
		node, hb.LastRenewalSeen.UTC().Format(time.RFC3339), hb.FenceAfter)
	log.FromContext(ctx).Info("rescheduling clone off lost host", "lostHost", node, "lastRenewalSeen", hb.LastRenewalSeen, "fenceAfter", hb.FenceAfter)
	s.status.NodeName = ""
	s.status.Timestamps = nil
	r.setCondition(s, vmv1alpha1.ConditionScheduled, metav1.ConditionFalse, ReasonRescheduled,
		fmt.Sprintf("host %s lost; looking for another host (spec.placement.onNodeLost: Reschedule)", node))
	return 0, nil
}

// hostDisruption counts the registered hosts whose heartbeat is stale.
func (r *VMCloneReconciler) hostDisruption(ctx context.Context) (Disruption, error) {
	hosts, heartbeats, err := r.hostsAndHeartbeats(ctx)
	if err != nil {
		return Disruption{}, err
	}
	return HostDisruption(hosts, heartbeats), nil
}

// hostsAndHeartbeats reads the registered hosts and their heartbeats, by host name.
func (r *VMCloneReconciler) hostsAndHeartbeats(ctx context.Context) ([]vmv1alpha1.XenHost, map[string]Heartbeat, error) {
	// Read-only below (Place, HostDisruption): the cache's objects, not copies of them.
	var hosts vmv1alpha1.XenHostList
	if err := r.List(ctx, &hosts, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, fmt.Errorf("list XenHosts: %w", err)
	}
	var leases coordinationv1.LeaseList
	if err := r.Leases.List(ctx, &leases, client.InNamespace(r.Opts.LeaseNamespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, fmt.Errorf("list heartbeat Leases in %s: %w", r.Opts.LeaseNamespace, err)
	}
	byName := make(map[string]*coordinationv1.Lease, len(leases.Items))
	for i := range leases.Items {
		byName[leases.Items[i].Name] = &leases.Items[i]
	}
	heartbeats := make(map[string]Heartbeat, len(hosts.Items))
	for i := range hosts.Items {
		name := hosts.Items[i].Name
		heartbeats[name] = r.Heartbeats.Observe(name, byName[name])
	}
	return hosts.Items, heartbeats, nil
}

func (r *VMCloneReconciler) lease(ctx context.Context, node string) (*coordinationv1.Lease, error) {
	lease := &coordinationv1.Lease{}
	err := r.Leases.Get(ctx, types.NamespacedName{Namespace: r.Opts.LeaseNamespace, Name: node}, lease)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get heartbeat Lease %s/%s: %w", r.Opts.LeaseNamespace, node, err)
	}
	return lease, nil
}

// ensurePlacement binds an unbound clone to a host. It reports whether the clone is bound.
func (r *VMCloneReconciler) ensurePlacement(ctx context.Context, s *cloneScope) (bool, error) {
	if s.status.NodeName != "" {
		if c := meta.FindStatusCondition(s.status.Conditions, vmv1alpha1.ConditionScheduled); c == nil || c.Status != metav1.ConditionTrue {
			r.setScheduled(s, s.status.NodeName, fmt.Sprintf("bound to %s", s.status.NodeName), true)
		}
		return true, nil
	}
	if b, ok := r.reserved.bindingFor(s.clone.UID); ok {
		// Decided moments ago by a reconcile whose write the cache does not show yet:
		// keep that decision rather than place twice. Once that write is known to have
		// landed, this reconcile has nothing to add (it would only write the binding again).
		if b.written {
			s.stale = true
			return true, nil
		}
		s.status.NodeName = b.Host
		s.status.BindingGeneration = b.generation
		r.setScheduled(s, b.Host, b.message, false)
		s.status.Timestamps = &vmv1alpha1.CloneTimestamps{Scheduled: &metav1.Time{Time: b.at}}
		return true, nil
	}
	r.reserved.placing.Lock()
	defer r.reserved.placing.Unlock()
	// Under the placement lock: a binding reserved by another worker counts at once, so two
	// clones of one name can never both be bound.
	if holder := r.domainNameHolder(ctx, s); holder != nil {
		name := vmv1alpha1.DomainNameOf(s.clone)
		r.setUnscheduled(s, ReasonDomainNameTaken, fmt.Sprintf(
			"domain name %s is already used by VMClone %s/%s, bound to %s: VMClone %s cannot have it too (domain names are unique across the cluster). "+
				"Pick another spec.domainName: it cannot change, so delete this clone and create it with another spec.domainName, or without one for a unique default name; "+
				"or delete VMClone %s/%s, and this clone is placed by itself",
			name, holder.Namespace, holder.Name, orUnknown(holder.Status.NodeName), s.key, holder.Namespace, holder.Name))
		return false, nil
	}
	in, err := r.placementInput(ctx, s)
	if err != nil {
		return false, err
	}
	res := Place(in)
	if res.Host == "" {
		r.setUnscheduled(s, ReasonUnschedulable, res.Message)
		return false, nil
	}
	req := RequestFor(s.clone, s.tmpl)
	now := r.Opts.Clock.Now()
	gen := s.status.BindingGeneration + 1
	r.reserved.reserveBinding(s.key, s.clone.UID, vmv1alpha1.DomainNameOf(s.clone), Binding{
		Clone: s.key.String(), Host: res.Host, MemoryMiB: req.MemoryMiB, COWBytes: req.COWBytes,
		MemoryInFlight: true, StorageInFlight: true,
	}, res.Message, gen, now)
	s.status.NodeName = res.Host
	s.status.BindingGeneration = gen
	r.setScheduled(s, res.Host, res.Message, true)
	s.status.Timestamps = &vmv1alpha1.CloneTimestamps{Scheduled: &metav1.Time{Time: now}}
	schedulingSeconds.Observe(now.Sub(s.clone.CreationTimestamp.Time).Seconds())
	log.FromContext(ctx).V(1).Info("placed clone", "host", res.Host, "why", res.Message)
	return true, nil
}

// domainNameHolder returns the other clone that holds the clone's domain name: one bound (or
// whose binding this controller has just decided) under the same name. The clone that is bound
// first keeps the name; a bound clone that is being deleted holds it until it is gone, as its
// domain may still run. The caller holds r.reserved.placing.
func (r *VMCloneReconciler) domainNameHolder(ctx context.Context, s *cloneScope) *vmv1alpha1.VMClone {
	name := vmv1alpha1.DomainNameOf(s.clone)
	if b, ok := r.reserved.domainHolder(name, s.clone.UID); ok {
		holder := &vmv1alpha1.VMClone{}
		holder.Namespace, holder.Name = b.key.Namespace, b.key.Name
		holder.Status.NodeName = b.Host
		return holder
	}
	var same vmv1alpha1.VMCloneList
	if err := r.List(ctx, &same, client.MatchingFields{indexCloneDomain: name}); err != nil {
		log.FromContext(ctx).Error(err, "list VMClones by domain name")
		return nil // placement's own reads fail the same way and retry
	}
	for i := range same.Items {
		if other := &same.Items[i]; other.UID != s.clone.UID && other.Status.NodeName != "" {
			return other
		}
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown host"
	}
	return s
}

// placementInput gathers the hosts, their heartbeats and every binding (from the cache, plus
// bindings reserved but not yet in it) for Place.
func (r *VMCloneReconciler) placementInput(ctx context.Context, s *cloneScope) (PlacementInput, error) {
	in := PlacementInput{
		Clone: s.clone, Template: s.tmpl, DefaultStrategy: r.Opts.DefaultPlacement,
	}
	var err error
	if in.Hosts, in.Heartbeats, err = r.hostsAndHeartbeats(ctx); err != nil {
		return in, err
	}
	in.Now = r.Opts.Clock.Now()
	var templates vmv1alpha1.VMTemplateList
	if err := r.List(ctx, &templates, client.UnsafeDisableDeepCopy); err != nil { // read-only
		return in, fmt.Errorf("list VMTemplates: %w", err)
	}
	byName := make(map[string]*vmv1alpha1.VMTemplate, len(templates.Items))
	for i := range templates.Items {
		byName[templates.Items[i].Name] = &templates.Items[i]
	}
	// What the bound clones take comes from the ledger, kept up to date by the informer's
	// events: no scan of every clone per decision. The clone itself is left out: the ledger
	// may still count it on the host it was just moved off (rescheduled in this reconcile).
	in.Usage = r.ledger.usage(func(name string) *vmv1alpha1.VMTemplate { return byName[name] }, s.clone.UID)
	for uid, b := range r.reserved.pendingBindings(r.ledger.boundTo, time.Now()) {
		if uid != s.clone.UID {
			in.Bindings = append(in.Bindings, b)
		}
	}
	return in, nil
}

// bindingOf accounts one bound clone. Its memory is "in flight" until its domain runs: the
// agent's reported free memory does not include it yet. Its COW area is in flight until the
// agent reports the volume ready.
func bindingOf(c *vmv1alpha1.VMClone, tmpl *vmv1alpha1.VMTemplate) Binding {
	b := Binding{Clone: c.Namespace + "/" + c.Name, Host: c.Status.NodeName, MemoryMiB: cloneMemoryMiB(c, tmpl), COWBytes: cloneCOWBytes(c, tmpl)}
	if !c.HostReportCurrent() {
		// Its host has not reported on this binding yet: nothing of it is in the host's
		// free memory or VG figures.
		b.MemoryInFlight, b.StorageInFlight = true, true
		return b
	}
	switch c.Status.Phase {
	case "", vmv1alpha1.PhasePending, vmv1alpha1.PhaseScheduled, vmv1alpha1.PhaseProvisioning,
		vmv1alpha1.PhaseStarting, vmv1alpha1.PhaseResetting:
		b.MemoryInFlight = true
	case vmv1alpha1.PhasePaused:
		if !vmv1alpha1.Effective(c, tmpl).Paused {
			// A paused standby is counted by what it holds: the host's free memory already
			// shows it ballooned down. Once claimed (spec.pause gone) its agent takes it back
			// to its start memory, which the host's figures do not show until it runs: count
			// all of it until then, over by the pause memory for the fraction of a second a
			// resume takes rather than under by the rest.
			b.MemoryInFlight = true
		}
	}
	if c.Status.Phase != vmv1alpha1.PhaseFailed && !meta.IsStatusConditionTrue(c.Status.Conditions, vmv1alpha1.ConditionVolumeReady) {
		b.StorageInFlight = true
	}
	return b
}

// ensureLifetime records status.expiresAt and, at expiry, deletes the clone or marks it
// Expired (the agent keeps an Expired clone stopped). It returns how long until expiry, so the
// reconcile comes back exactly then.
func (r *VMCloneReconciler) ensureLifetime(ctx context.Context, s *cloneScope) (time.Duration, error) {
	d := DecideExpiry(s.clone, r.Opts.Clock.Now())
	s.status.ExpiresAt = d.ExpiresAt
	if d.ExpiresAt == nil {
		meta.RemoveStatusCondition(&s.status.Conditions, vmv1alpha1.ConditionExpired)
		return 0, nil
	}
	at := d.ExpiresAt.UTC().Format(time.RFC3339)
	if !d.Expired {
		r.setCondition(s, vmv1alpha1.ConditionExpired, metav1.ConditionFalse, ReasonLifetimeRunning,
			fmt.Sprintf("expires at %s (spec.lifetime.expireAfter %s, then %s)", at, s.clone.Spec.Lifetime.ExpireAfter.Duration, d.Action))
		return d.RequeueAfter, nil
	}
	if d.Action == vmv1alpha1.ExpiryDelete {
		log.FromContext(ctx).Info("lifetime ended, deleting clone", "expiresAt", at)
		r.Recorder.Eventf(s.clone, nil, corev1.EventTypeNormal, ReasonLifetimeEnded, "Delete",
			"lifetime ended at %s: deleting the clone (onExpiry: Delete)", at)
		uid := s.clone.UID
		if err := r.Delete(ctx, s.clone, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("delete expired clone: %w", err)
		}
		s.deleted = true
		return 0, nil
	}
	if prev := meta.FindStatusCondition(s.status.Conditions, vmv1alpha1.ConditionExpired); prev == nil || prev.Status != metav1.ConditionTrue {
		r.Recorder.Eventf(s.clone, nil, corev1.EventTypeNormal, ReasonLifetimeEnded, "Stop",
			"lifetime ended at %s: the host agent stops the domain and keeps the disk (onExpiry: Stop); delete the clone to free it", at)
	}
	r.setCondition(s, vmv1alpha1.ConditionExpired, metav1.ConditionTrue, ReasonLifetimeEnded,
		fmt.Sprintf("lifetime ended at %s: the domain is stopped and kept stopped, the disk is kept (onExpiry: Stop); delete the VMClone to free it", at))
	return 0, nil
}

// ensureReady derives Ready from scheduling, the host's heartbeat and the agent's conditions.
func (r *VMCloneReconciler) ensureReady(ctx context.Context, s *cloneScope) error {
	// Ready describes the clone as this reconcile leaves it: bound where it was just placed.
	view := *s.clone
	view.Status.NodeName, view.Status.BindingGeneration = s.status.NodeName, s.status.BindingGeneration
	in := ReadyInput{
		Clone:           &view,
		HostLive:        true,
		StoppedOnExpiry: meta.IsStatusConditionTrue(s.status.Conditions, vmv1alpha1.ConditionExpired),
	}
	if c := meta.FindStatusCondition(s.status.Conditions, vmv1alpha1.ConditionScheduled); c != nil {
		in.Scheduled = *c
	}
	if node := s.status.NodeName; node != "" && in.Scheduled.Status == metav1.ConditionTrue {
		lease, err := r.lease(ctx, node)
		if err != nil {
			return err
		}
		hb := r.Heartbeats.Observe(node, lease)
		in.HostLive = hb.Live
		if !hb.Live {
			in.Reschedule = s.reschedule
			what := fmt.Sprintf("has no heartbeat Lease %s/%s", r.Opts.LeaseNamespace, node)
			if !hb.LeaseMissing && !hb.LastRenewalSeen.IsZero() {
				what = fmt.Sprintf("has not renewed its heartbeat Lease %s/%s since %s (the last renewal the controller saw; grace %s)", r.Opts.LeaseNamespace, node,
					hb.LastRenewalSeen.UTC().Format(time.RFC3339), r.Opts.HeartbeatGrace)
			}
			in.HostLostMessage = fmt.Sprintf("host %s %s: the clone's state is unknown. Check the hostagent on %s; "+
				"if the host is gone for good, delete the clone and remove its finalizer %s (see the force-release note in controllers/doc.go)",
				node, what, node, vmv1alpha1.CloneFinalizer)
		}
	}
	cond := ReadyCondition(in)
	prev := meta.FindStatusCondition(s.clone.Status.Conditions, vmv1alpha1.ConditionReady)
	if cond.Status == metav1.ConditionUnknown && (prev == nil || prev.Status != metav1.ConditionUnknown) {
		r.Recorder.Eventf(s.clone, nil, corev1.EventTypeWarning, ReasonNodeLost, "MarkUnknown", "%s", cond.Message)
	}
	if cond.Status == metav1.ConditionTrue && (prev == nil || prev.Status != metav1.ConditionTrue) {
		readySeconds.Observe(r.Opts.Clock.Now().Sub(s.clone.CreationTimestamp.Time).Seconds())
	}
	cond.LastTransitionTime = metav1.NewTime(r.Opts.Clock.Now())
	meta.SetStatusCondition(&s.status.Conditions, cond)
	return nil
}

// setScheduled records a binding: Scheduled True.
func (r *VMCloneReconciler) setScheduled(s *cloneScope, host, message string, announce bool) {
	prev := meta.FindStatusCondition(s.clone.Status.Conditions, vmv1alpha1.ConditionScheduled)
	if announce && (prev == nil || prev.Status != metav1.ConditionTrue) {
		r.Recorder.Eventf(s.clone, nil, corev1.EventTypeNormal, ReasonScheduled, "Bind", "%s", message)
	}
	r.setCondition(s, vmv1alpha1.ConditionScheduled, metav1.ConditionTrue, ReasonScheduled, message)
}

// setUnscheduled records why the clone is not placed; the event fires only when the reason or
// message changes, so retries do not flood the clone's events.
func (r *VMCloneReconciler) setUnscheduled(s *cloneScope, reason, message string) {
	prev := meta.FindStatusCondition(s.clone.Status.Conditions, vmv1alpha1.ConditionScheduled)
	if prev == nil || prev.Reason != reason || prev.Message != message {
		r.Recorder.Eventf(s.clone, nil, corev1.EventTypeWarning, reason, "Schedule", "%s", message)
	}
	r.setCondition(s, vmv1alpha1.ConditionScheduled, metav1.ConditionFalse, reason, message)
}

// setCondition sets one of the controller's conditions; a transition is stamped with the
// controller's clock (kept when the status does not change).
func (r *VMCloneReconciler) setCondition(s *cloneScope, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&s.status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: s.clone.Generation,
		LastTransitionTime: metav1.NewTime(r.Opts.Clock.Now()),
	})
}

// controllerConditions are the condition types this controller owns on a VMClone.
var controllerConditions = vmv1alpha1.ConditionTypes("VMClone", vmv1alpha1.WriterController)

// controllerStatus projects a clone's status onto the fields the controller owns: the
// starting point of the status this reconcile applies.
func controllerStatus(c *vmv1alpha1.VMClone) vmv1alpha1.VMCloneStatus {
	st := vmv1alpha1.VMCloneStatus{
		NodeName:          c.Status.NodeName,
		BindingGeneration: c.Status.BindingGeneration,
		UUID:              c.Status.UUID,
		Interfaces:        c.Status.Interfaces,
		Hostname:          c.Status.Hostname,
		ExpiresAt:         c.Status.ExpiresAt,
	}
	if ts := c.Status.Timestamps; ts != nil && ts.Scheduled != nil {
		st.Timestamps = &vmv1alpha1.CloneTimestamps{Scheduled: ts.Scheduled}
	}
	for _, t := range controllerConditions {
		if cond := meta.FindStatusCondition(c.Status.Conditions, t); cond != nil {
			st.Conditions = append(st.Conditions, *cond)
		}
	}
	return *st.DeepCopy()
}

func (r *VMCloneReconciler) setupWithManager(mgr ctrl.Manager, leases cache.Cache, hostEvents <-chan event.GenericEvent) error {
	informer, err := mgr.GetCache().GetInformer(context.Background(), &vmv1alpha1.VMClone{})
	if err != nil {
		return fmt.Errorf("VMClone informer: %w", err)
	}
	if _, err := informer.AddEventHandler(r.ledger.handler()); err != nil {
		return fmt.Errorf("add usage ledger handler: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&vmv1alpha1.VMClone{}).
		Named("vmclone").
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Opts.MaxConcurrentReconciles}).
		// Capacity, labels or template presence changed: pending clones that host could take
		// may fit now. Heartbeat-only and condition-only status writes place nothing.
		Watches(&vmv1alpha1.XenHost{}, r.pendingRetry(r.pendingClonesForHost)).
		// A template appeared, went, or its spec changed: its waiting clones are decided again.
		// Its status (presence, clone count, written as clones come and go) changes nothing
		// placement reads.
		Watches(&vmv1alpha1.VMTemplate{}, r.pendingRetry(r.pendingClonesOfTemplate),
			builder.WithPredicates(specOrDeletionChanged{})).
		// A namespace's labels decide templates' namespaceSelector.
		Watches(&corev1.Namespace{}, r.pendingRetry(r.pendingClonesInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		// A deleted clone frees its domain name for a clone waiting for it (DomainNameTaken).
		Watches(&vmv1alpha1.VMClone{}, r.pendingRetry(r.clonesWaitingForDomainName)).
		// The host liveness reconciler sends the clones of a host whose heartbeat came or went.
		WatchesRawSource(source.Channel(hostEvents, &handler.EnqueueRequestForObject{})).
		Complete(r)
}

// pendingRetryDelay is how long a pending clone woken by a host, template or namespace change
// waits in the queue: the writes of several agents reporting at once (or one agent's writes in
// quick succession) wake it once, not once each.
const pendingRetryDelay = time.Second

// pendingRetry turns a mapping from an event (old is nil on create, delete and generic events;
// new is nil on delete) to pending clones into an event handler. The clones are queued after
// pendingRetryDelay at low priority, so clones nobody has looked at yet (creates) go first.
func (r *VMCloneReconciler) pendingRetry(mapFn func(ctx context.Context, old, new client.Object) []reconcile.Request) handler.EventHandler {
	enqueue := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], reqs []reconcile.Request) {
		if len(reqs) == 0 {
			return
		}
		if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
			pq.AddWithOpts(priorityqueue.AddOpts{After: pendingRetryDelay, Priority: new(handler.LowPriority)}, reqs...)
			return
		}
		for _, req := range reqs {
			q.AddAfter(req, pendingRetryDelay)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if !e.IsInInitialList { // at start every clone is reconciled anyway
				enqueue(q, mapFn(ctx, nil, e.Object))
			}
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, mapFn(ctx, e.ObjectOld, e.ObjectNew))
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, mapFn(ctx, e.Object, nil))
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, mapFn(ctx, nil, e.Object))
		},
	}
}

// specOrDeletionChanged passes creates, deletes and updates that change an object's spec
// (its generation) or start its deletion, not status or metadata-only updates.
type specOrDeletionChanged struct{ predicate.Funcs }

func (specOrDeletionChanged) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return true
	}
	return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
		e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
}

// hostIndependent are the reasons a pending clone waits for something no XenHost change can
// give it: a template, a namespace rule, a MAC, a Secret. Their own watches (or requeues)
// bring such clones back.
var hostIndependent = map[string]bool{
	ReasonTemplateNotFound: true, ReasonTemplateDeleting: true, ReasonNamespaceNotAllowed: true,
	ReasonMACConflict: true, ReasonCloudInitDataMissing: true, ReasonDomainNameTaken: true,
}

// placementView is what placement reads of a XenHost (Place, hostTemplate, hostVG,
// reservedMiB): a write that changes none of it (a condition, the agent's version, the clone
// count it reports) cannot change where a clone goes.
func placementView(h *vmv1alpha1.XenHost) any {
	return struct {
		Labels    map[string]string
		Spec      vmv1alpha1.XenHostSpec
		Memory    vmv1alpha1.HostMemory
		VGs       []vmv1alpha1.VolumeGroupStatus
		Templates []vmv1alpha1.HostTemplateStatus
	}{h.Labels, h.Spec, h.Status.Memory, h.Status.VolumeGroups, h.Status.Templates}
}

// pendingClonesForHost maps a XenHost change to the pending clones it may let in: only when
// something placement reads changed, only clones waiting for capacity (not for a template, a
// namespace rule or a MAC), and only those whose template and own host selectors match the
// host before or after the change — a host no selector of the clone admits changes nothing
// for it, whatever its capacity. With 10,000 clones pending on a template that matches no
// host, a host's capacity report wakes none of them (it used to wake all 10,000).
func (r *VMCloneReconciler) pendingClonesForHost(ctx context.Context, old, cur client.Object) []reconcile.Request {
	var hosts []*vmv1alpha1.XenHost
	for _, o := range []client.Object{old, cur} {
		if h, ok := o.(*vmv1alpha1.XenHost); ok && h != nil {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return nil
	}
	if len(hosts) == 2 && equality.Semantic.DeepEqual(placementView(hosts[0]), placementView(hosts[1])) &&
		hosts[0].DeletionTimestamp.IsZero() == hosts[1].DeletionTimestamp.IsZero() {
		return nil
	}
	var list vmv1alpha1.VMCloneList
	if err := r.List(ctx, &list, client.MatchingFields{indexCloneNode: unboundNode}, client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "list pending VMClones")
		return nil
	}
	// The template's selector, per template name (nil: no such template, or invalid).
	tmplSel := map[string]labels.Selector{}
	templateSelector := func(name string) labels.Selector {
		if sel, ok := tmplSel[name]; ok {
			return sel
		}
		var sel labels.Selector
		tmpl := &vmv1alpha1.VMTemplate{}
		if err := r.Get(ctx, types.NamespacedName{Name: name}, tmpl); err == nil {
			if s, err := selectorOrEverything(tmpl.Spec.HostSelector); err == nil {
				sel = s
			}
		}
		tmplSel[name] = sel
		return sel
	}
	admits := func(c *vmv1alpha1.VMClone) bool {
		sel := templateSelector(c.Spec.TemplateRef.Name)
		if sel == nil {
			return true // decided at placement; let it look
		}
		var cloneSel labels.Selector = labels.Everything()
		pin := ""
		if p := c.Spec.Placement; p != nil {
			pin = p.NodeName
			if s, err := selectorOrEverything(p.HostSelector); err == nil {
				cloneSel = s
			}
		}
		for _, h := range hosts {
			if (pin == "" || pin == h.Name) && sel.Matches(labels.Set(h.Labels)) && cloneSel.Matches(labels.Set(h.Labels)) {
				return true
			}
		}
		return false
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		c := &list.Items[i]
		cond := meta.FindStatusCondition(c.Status.Conditions, vmv1alpha1.ConditionScheduled)
		if cond == nil {
			continue // not reconciled yet: its own event is queued
		}
		if hostIndependent[cond.Reason] || !admits(c) {
			continue
		}
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)})
	}
	return reqs
}

// clonesWaitingForDomainName maps a clone's deletion to the pending clones refused its domain
// name. Only a deletion frees a name: a clone's name never changes (spec.domainName is
// immutable, the default is derived from the UID).
func (r *VMCloneReconciler) clonesWaitingForDomainName(ctx context.Context, old, cur client.Object) []reconcile.Request {
	gone, ok := old.(*vmv1alpha1.VMClone)
	if cur != nil || !ok || gone == nil {
		return nil
	}
	var list vmv1alpha1.VMCloneList
	if err := r.List(ctx, &list, client.MatchingFields{indexCloneDomain: vmv1alpha1.DomainNameOf(gone)}, client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "list VMClones by domain name", "domain", vmv1alpha1.DomainNameOf(gone))
		return nil
	}
	var waiting []vmv1alpha1.VMClone
	for _, c := range list.Items {
		if c.UID != gone.UID && c.Status.NodeName == "" {
			waiting = append(waiting, c)
		}
	}
	return requestsFor(waiting)
}

// pendingClonesOfTemplate maps a template's creation, deletion or spec change to its clones
// not bound yet.
func (r *VMCloneReconciler) pendingClonesOfTemplate(ctx context.Context, old, cur client.Object) []reconcile.Request {
	o := cur
	if o == nil {
		o = old
	}
	var list vmv1alpha1.VMCloneList
	if err := r.List(ctx, &list, client.MatchingFields{indexCloneTemplate: o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "list VMClones of template", "template", o.GetName())
		return nil
	}
	var pending []vmv1alpha1.VMClone
	for _, c := range list.Items {
		if c.Status.NodeName == "" {
			pending = append(pending, c)
		}
	}
	return requestsFor(pending)
}

// pendingClonesInNamespace maps a namespace's label change to its pending clones whose
// template has a namespaceSelector: the only rule that reads namespace labels.
func (r *VMCloneReconciler) pendingClonesInNamespace(ctx context.Context, old, cur client.Object) []reconcile.Request {
	o := cur
	if o == nil {
		o = old
	}
	var list vmv1alpha1.VMCloneList
	if err := r.List(ctx, &list, client.InNamespace(o.GetName()), client.MatchingFields{indexCloneNode: unboundNode}, client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "list pending VMClones of namespace", "namespace", o.GetName())
		return nil
	}
	bySelector := map[string]bool{}
	var pending []vmv1alpha1.VMClone
	for _, c := range list.Items {
		name := c.Spec.TemplateRef.Name
		has, ok := bySelector[name]
		if !ok {
			tmpl := &vmv1alpha1.VMTemplate{}
			has = r.Get(ctx, types.NamespacedName{Name: name}, tmpl) == nil && tmpl.Spec.NamespaceSelector != nil
			bySelector[name] = has
		}
		if has {
			pending = append(pending, c)
		}
	}
	return requestsFor(pending)
}

func requestsFor(clones []vmv1alpha1.VMClone) []reconcile.Request {
	reqs := make([]reconcile.Request, 0, len(clones))
	for i := range clones {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&clones[i])})
	}
	return reqs
}
