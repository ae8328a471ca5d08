package controllers

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/event"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// FieldManager is the server-side apply field manager of every status field the controller
// writes. The host agent applies its own fields as "xenclone-hostagent".
const FieldManager = "xenclone-controller"

// Defaults for Options.
const (
	DefaultLeaseNamespace = "xenclone-system"
	DefaultHeartbeatGrace = 40 * time.Second
	// DefaultNodeLostRescheduleAfter leaves a lost host time to come back (a reboot) before
	// opted-in clones move.
	DefaultNodeLostRescheduleAfter = 5 * time.Minute
	// DefaultRescheduleMaxLostFraction: with 55% or more of the hosts lost at once no clone
	// is rescheduled (the node lifecycle controller's default unhealthy-zone threshold).
	DefaultRescheduleMaxLostFraction = 0.55
)

// Options configure the controller's reconcilers.
// DefaultMaxConcurrentReconciles is the workers per controller. 16, not 4: with 4 the
// controller's binding writes queued behind each other in a burst (apply → Scheduled p50 9.4 s
// for 1,000 clones; 3.5 s with 16) and 10,000 pending clones took 82 s to reconcile (56 s).
const DefaultMaxConcurrentReconciles = 16

type Options struct {
	// LeaseNamespace holds the hosts' heartbeat Leases, one per host named after it.
	LeaseNamespace string
	// HeartbeatGrace is how long, on the controller's clock, the controller may go without
	// seeing a host's Lease renewTime change before the host counts as lost (see Heartbeats).
	// The agent should renew several times per grace (e.g. every 10 s for 40 s).
	HeartbeatGrace time.Duration
	// Clock is injectable so tests can move time (TTL, heartbeats). Default: the real clock.
	Clock clock.Clock
	// DefaultPlacement is the strategy for clones that name none (Spread unless set).
	DefaultPlacement vmv1alpha1.PlacementStrategy
	// NodeLostRescheduleAfter is how long a host's heartbeat must have been stale before
	// clones that opted in (spec.placement.onNodeLost: Reschedule) are placed
	// on another host. Default 5m. A host whose agent fences later than that holds its clones
	// until its fenceAfter plus FenceMargin (DecideReschedule).
	NodeLostRescheduleAfter time.Duration
	// FenceMargin is added to a host's fenceAfter before its clones may move: the agent's
	// xl destroy and the API server's latency. Default vmv1alpha1.DefaultFenceMargin.
	FenceMargin time.Duration
	// RescheduleMaxLostFraction pauses all rescheduling while at least this share of the
	// registered hosts is lost (see Disruption.Widespread). Default 0.55; 1 pauses only when
	// every host is lost.
	RescheduleMaxLostFraction float64
	// MaxConcurrentReconciles per controller (default DefaultMaxConcurrentReconciles).
	// Placement itself is serialized inside the clone reconciler, so more workers only
	// parallelize the API writes — which is what a burst waits on.
	MaxConcurrentReconciles int
	// MaxParallelImports bounds how many hosts import template sources at once, fleet-wide
	// (default DefaultMaxParallelImports): 50 hosts must not pull one image from one server at
	// the same moment.
	MaxParallelImports int
}

// DefaultMaxParallelImports is Options.MaxParallelImports unless set.
const DefaultMaxParallelImports = 4

func (o Options) withDefaults() Options {
	if o.LeaseNamespace == "" {
		o.LeaseNamespace = DefaultLeaseNamespace
	}
	if o.HeartbeatGrace <= 0 {
		o.HeartbeatGrace = DefaultHeartbeatGrace
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.MaxParallelImports <= 0 {
		o.MaxParallelImports = DefaultMaxParallelImports
	}
	if o.DefaultPlacement == "" {
		o.DefaultPlacement = vmv1alpha1.PlacementSpread
	}
	if o.NodeLostRescheduleAfter <= 0 {
		o.NodeLostRescheduleAfter = DefaultNodeLostRescheduleAfter
	}
	if o.FenceMargin <= 0 {
		o.FenceMargin = vmv1alpha1.DefaultFenceMargin
	}
	if o.RescheduleMaxLostFraction <= 0 || o.RescheduleMaxLostFraction > 1 {
		o.RescheduleMaxLostFraction = DefaultRescheduleMaxLostFraction
	}
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}
	return o
}

// Validate checks options as the manager's flags set them (withDefaults fills what is left
// zero), and names the flag to fix. Rescheduling must not, with agents on the default
// fenceAfter, move a clone before its agent stopped it: the reschedule delay plus the grace
// must cover DefaultFenceAfter plus the margin. (A host whose agent declares a longer
// fenceAfter holds its clones longer still; see DecideReschedule.)
func (o Options) Validate() error {
	if o.HeartbeatGrace <= 0 {
		return fmt.Errorf("--heartbeat-grace %s: must be positive", o.HeartbeatGrace)
	}
	if o.NodeLostRescheduleAfter <= 0 {
		return fmt.Errorf("--node-lost-reschedule-after %s: must be positive", o.NodeLostRescheduleAfter)
	}
	if o.FenceMargin <= 0 {
		return fmt.Errorf("--fence-margin %s: must be positive (the time a host's agent takes to stop its domains, plus the API server's latency)", o.FenceMargin)
	}
	if o.RescheduleMaxLostFraction <= 0 || o.RescheduleMaxLostFraction > 1 {
		return fmt.Errorf("--reschedule-max-lost-fraction %g: must be in (0, 1]", o.RescheduleMaxLostFraction)
	}
	if o.MaxConcurrentReconciles < 1 {
		return fmt.Errorf("--max-concurrent-reconciles %d: must be at least 1", o.MaxConcurrentReconciles)
	}
	if got, need := o.HeartbeatGrace+o.NodeLostRescheduleAfter, vmv1alpha1.DefaultFenceAfter+o.FenceMargin; got < need {
		return fmt.Errorf("--node-lost-reschedule-after %s plus --heartbeat-grace %s is %s, less than the hostagent's default fence-after %s plus --fence-margin %s: "+
			"a clone could be started on another host before its lost host's agent stopped it; set --node-lost-reschedule-after to at least %s",
			o.NodeLostRescheduleAfter, o.HeartbeatGrace, got, vmv1alpha1.DefaultFenceAfter, o.FenceMargin, need-o.HeartbeatGrace)
	}
	return nil
}

// Field indexes on VMClones, served from the manager's cache.
const (
	indexCloneNode     = "status.nodeName"
	indexCloneTemplate = "spec.templateRef.name"
	indexCloneMAC      = "mac"
	// indexCloneDomain is a clone's Xen domain name (vmv1alpha1.DomainNameOf), which must be
	// unique across the cluster.
	indexCloneDomain = "domainName"
	// unboundNode is the index value of clones not bound to a host yet (not a valid host name).
	unboundNode = "<unbound>"
)

// lastApplied is kubectl's client-side apply annotation: a copy of the whole object as applied,
// which the controller never reads.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// StripUnread is the cache transform of the controller's caches: it drops what the controller
// never reads from every cached object — metadata.managedFields (the API server's field
// ownership, a few hundred bytes per manager per object; the one-writer check reads it from the
// API server, not the cache) and kubectl's last-applied annotation. Writes are unaffected: the
// controller server-side applies only its own fields, and an update with managedFields unset
// leaves them as they are.
func StripUnread(in any) (any, error) {
	if obj, err := meta.Accessor(in); err == nil {
		if obj.GetManagedFields() != nil {
			obj.SetManagedFields(nil)
		}
		if a := obj.GetAnnotations(); a != nil {
			if _, ok := a[lastApplied]; ok {
				delete(a, lastApplied)
				if len(a) == 0 {
					obj.SetAnnotations(nil)
				}
			}
		}
	}
	return in, nil
}

// CacheOptions are the manager cache's options the controller needs: StripUnread on every
// object. The manager role passes them to ctrl.NewManager.
func CacheOptions() cache.Options {
	return cache.Options{DefaultTransform: StripUnread}
}

// SetupWithManager registers the controller's field indexes and its reconcilers (VMClone
// placement and lifecycle, host liveness, VMTemplate, VMClonePool, VMClaim) with mgr.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	_, err := setupWithManager(mgr, opts)
	return err
}

// setupWithManager is SetupWithManager; it returns the manager's heartbeat tracker, which the
// tests read to know when the controller has seen a renewal they wrote.
func setupWithManager(mgr ctrl.Manager, opts Options) (*Heartbeats, error) {
	opts = opts.withDefaults()
	ctx := context.Background()
	if err := indexClones(ctx, mgr); err != nil {
		return nil, err
	}
	if err := indexClaims(ctx, mgr); err != nil {
		return nil, err
	}

	// Leases and cloud-init copies are read from their own cache, limited to the lease
	// namespace, so the manager neither watches every Lease or Secret in the cluster nor
	// needs the leader's cache options changed.
	copies, err := labels.NewRequirement(vmv1alpha1.CloneUIDLabel, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	leases, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultNamespaces: map[string]cache.Config{opts.LeaseNamespace: {}},
		DefaultTransform:  StripUnread,
		ByObject: map[client.Object]cache.ByObject{
			&coordinationv1.Lease{}: {},
			&corev1.Secret{}:        {Label: labels.NewSelector().Add(*copies)},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create lease cache for namespace %s: %w", opts.LeaseNamespace, err)
	}
	if err := mgr.Add(leases); err != nil {
		return nil, fmt.Errorf("add lease cache: %w", err)
	}

	// One heartbeat tracker for the reconcilers that judge liveness, so they agree on it.
	heartbeats := NewHeartbeats(opts.Clock, opts.HeartbeatGrace)
	hostEvents := make(chan event.GenericEvent, 1024)
	clones := &VMCloneReconciler{
		Client:     mgr.GetClient(),
		Scheme:     mgr.GetScheme(),
		Recorder:   mgr.GetEventRecorder("xenclone-controller"),
		Leases:     leases,
		System:     leases,
		Sources:    mgr.GetAPIReader(),
		Opts:       opts,
		Heartbeats: heartbeats,
		reserved:   newReservations(),
		ledger:     newUsageLedger(),
	}
	if err := clones.setupWithManager(mgr, leases, hostEvents); err != nil {
		return nil, fmt.Errorf("set up VMClone controller: %w", err)
	}
	hosts := &HostLivenessReconciler{
		Client:     mgr.GetClient(),
		Leases:     leases,
		Opts:       opts,
		Heartbeats: heartbeats,
		Notify:     hostEvents,
		lastRun:    map[string]bool{},
	}
	if err := hosts.setupWithManager(mgr, leases); err != nil {
		return nil, fmt.Errorf("set up host liveness controller: %w", err)
	}
	copyGC := &CloudInitCopyReconciler{Client: mgr.GetClient(), System: leases, Opts: opts}
	if err := copyGC.setupWithManager(mgr, leases); err != nil {
		return nil, fmt.Errorf("set up cloud-init copy collector: %w", err)
	}
	templates := &VMTemplateReconciler{
		Client:   mgr.GetClient(),
		Scheme:   mgr.GetScheme(),
		Recorder: mgr.GetEventRecorder("xenclone-controller"),
		Opts:     opts,
	}
	if err := templates.setupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up VMTemplate controller: %w", err)
	}
	pools := &VMClonePoolReconciler{
		Client:   mgr.GetClient(),
		Scheme:   mgr.GetScheme(),
		Recorder: mgr.GetEventRecorder("xenclone-controller"),
		Opts:     opts,
	}
	if err := pools.setupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up VMClonePool controller: %w", err)
	}
	claims := newClaimReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetScheme(), mgr.GetEventRecorder("xenclone-controller"), opts)
	if err := claims.setupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up VMClaim controller: %w", err)
	}
	return heartbeats, nil
}

func indexClones(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &vmv1alpha1.VMClone{}, indexCloneNode, func(o client.Object) []string {
		if n := o.(*vmv1alpha1.VMClone).Status.NodeName; n != "" {
			return []string{n}
		}
		return []string{unboundNode}
	}); err != nil {
		return fmt.Errorf("index VMClones by %s: %w", indexCloneNode, err)
	}
	if err := idx.IndexField(ctx, &vmv1alpha1.VMClone{}, indexCloneTemplate, func(o client.Object) []string {
		return []string{o.(*vmv1alpha1.VMClone).Spec.TemplateRef.Name}
	}); err != nil {
		return fmt.Errorf("index VMClones by %s: %w", indexCloneTemplate, err)
	}
	// Every MAC allocated to a clone, so a collision check is one index lookup however many
	// clones exist.
	if err := idx.IndexField(ctx, &vmv1alpha1.VMClone{}, indexCloneMAC, func(o client.Object) []string {
		return cloneMACs(o.(*vmv1alpha1.VMClone))
	}); err != nil {
		return fmt.Errorf("index VMClones by %s: %w", indexCloneMAC, err)
	}
	// Only the clones a name lookup is for: the bound ones, which hold their names, and those
	// refused a name, which wait for its holder to go; bindings not in the cache yet hold their
	// names in the reservations. Pending clones need no entry (two sets each: with 10,000 of
	// them the heap profile's index share fell from 12.1 to 11.1 MB).
	if err := idx.IndexField(ctx, &vmv1alpha1.VMClone{}, indexCloneDomain, func(o client.Object) []string {
		c := o.(*vmv1alpha1.VMClone)
		if c.Status.NodeName != "" || refusedDomainName(c) {
			return []string{vmv1alpha1.DomainNameOf(c)}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index VMClones by %s: %w", indexCloneDomain, err)
	}
	return nil
}

// refusedDomainName says whether the clone waits for its domain name's holder to go.
func refusedDomainName(c *vmv1alpha1.VMClone) bool {
	cond := meta.FindStatusCondition(c.Status.Conditions, vmv1alpha1.ConditionScheduled)
	return cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == ReasonDomainNameTaken
}

func cloneMACs(c *vmv1alpha1.VMClone) []string {
	seen := map[string]bool{}
	var macs []string
	for _, i := range c.Status.Interfaces {
		if i.MAC != "" && !seen[i.MAC] {
			seen[i.MAC] = true
			macs = append(macs, i.MAC)
		}
	}
	return macs
}

// applyStatus server-side applies status (only the fields set in it) to obj's status
// subresource as FieldManager. Without force: a conflict means another manager (the agent)
// owns a field this reconcile saw stale, and the caller retries with fresh state.
func applyStatus(ctx context.Context, c client.Client, scheme *runtime.Scheme, obj client.Object, status any, opts ...client.SubResourceApplyOption) error {
	u, err := applyObject(scheme, obj)
	if err != nil {
		return err
	}
	st, err := runtime.DefaultUnstructuredConverter.ToUnstructured(status)
	if err != nil {
		return fmt.Errorf("convert status of %s: %w", client.ObjectKeyFromObject(obj), err)
	}
	u.Object["status"] = st
	opts = append([]client.SubResourceApplyOption{client.FieldOwner(FieldManager)}, opts...)
	if err := c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...); err != nil {
		return fmt.Errorf("apply status of %s: %w", client.ObjectKeyFromObject(obj), err)
	}
	return nil
}

// applyFinalizer server-side applies finalizer on obj. metadata.finalizers is a set, so the
// apply owns only this entry: others' finalizers stay, no read-modify-write, no conflict.
func applyFinalizer(ctx context.Context, c client.Client, scheme *runtime.Scheme, obj client.Object, finalizer string) error {
	u, err := applyObject(scheme, obj)
	if err != nil {
		return err
	}
	u.SetFinalizers([]string{finalizer})
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager+"-finalizer")); err != nil {
		return fmt.Errorf("apply finalizer %s on %s: %w", finalizer, client.ObjectKeyFromObject(obj), err)
	}
	return nil
}

// applyLabels server-side applies the controller's labels on obj; labels of other managers
// (the user, Argo CD) are left alone.
func applyLabels(ctx context.Context, c client.Client, scheme *runtime.Scheme, obj client.Object, labels map[string]string) error {
	u, err := applyObject(scheme, obj)
	if err != nil {
		return err
	}
	u.SetLabels(labels)
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("apply labels of %s: %w", client.ObjectKeyFromObject(obj), err)
	}
	return nil
}

func applyObject(scheme *runtime.Scheme, obj client.Object) (*unstructured.Unstructured, error) {
	gvk, err := apiutil.GVKForObject(obj, scheme)
	if err != nil {
		return nil, fmt.Errorf("kind of %T: %w", obj, err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind})
	u.SetName(obj.GetName())
	u.SetNamespace(obj.GetNamespace())
	// The UID makes the apply a precondition on this very object: it never creates one, and
	// never lands on a namesake recreated meanwhile (a pool member reusing its index).
	u.SetUID(obj.GetUID())
	return u, nil
}
