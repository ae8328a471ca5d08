package hostagent

// The node agent's VMClone reconciler: it drives this host toward each clone bound to it.
//
// Once the controller has bound a clone here (status.nodeName, bindingGeneration, uuid, MACs),
// this reconciler alone writes what the host knows, as field manager "xenclone-hostagent": phase,
// message, domain, volume, observedGeneration, observedBindingGeneration,
// observedResetRequests, the timestamps other than scheduled, and the conditions VolumeReady,
// GuestPrepared, DomainRunning and StorageAtRisk. The controller derives Ready from them
// (docs/architecture.md has the table).
//
// Every step looks at the host first (LVs by ownership tag, domains by name), so the agent can
// die between any two steps and the next reconcile continues where the host is.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/guest/scrub"
	"github.com/xenclone/xenclone/hostagent/lvm"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// FieldManager is the agent's server-side apply identity.
const FieldManager = "xenclone-hostagent"

// Condition reasons the agent writes, from the vocabulary (api/v1alpha1/conditions.go).
const (
	ReasonWaitingForIdentity = vmv1alpha1.ReasonWaitingForIdentity
	ReasonTemplateNotFound   = vmv1alpha1.ReasonTemplateNotFound
	ReasonOriginMissing      = vmv1alpha1.ReasonOriginMissing
	ReasonOriginRefused      = vmv1alpha1.ReasonOriginRefused
	ReasonVolumeCreated      = vmv1alpha1.ReasonSnapshotCreated
	ReasonVolumeConflict     = vmv1alpha1.ReasonVolumeNameConflict
	ReasonStorageError       = vmv1alpha1.ReasonStorageError
	ReasonVolumeLost         = vmv1alpha1.ReasonVolumeLost
	ReasonSnapshotInvalid    = vmv1alpha1.ReasonSnapshotInvalid
	ReasonCOWExtended        = vmv1alpha1.ReasonCOWExtended
	ReasonCOWAtMax           = vmv1alpha1.ReasonCOWAtMaximum
	ReasonPoolAtRisk         = vmv1alpha1.ReasonThinPoolAtRisk
	ReasonStorageOK          = vmv1alpha1.ReasonStorageOK
	ReasonPrepared           = vmv1alpha1.ReasonPrepared
	ReasonPrepareFailed      = vmv1alpha1.ReasonPrepareFailed
	ReasonStarted            = vmv1alpha1.ReasonStarted
	ReasonStartFailed        = vmv1alpha1.ReasonStartFailed
	ReasonShuttingDown       = vmv1alpha1.ReasonShuttingDown
	ReasonStopped            = vmv1alpha1.ReasonStopped
	ReasonGuestPoweredOff    = vmv1alpha1.ReasonGuestPoweredOff
	ReasonGuestCrashed       = vmv1alpha1.ReasonGuestCrashed
	ReasonRestarting         = vmv1alpha1.ReasonRestarting
	ReasonHalted             = vmv1alpha1.ReasonHalted
	ReasonResetting          = vmv1alpha1.ReasonResetting
	ReasonSecretMissing      = vmv1alpha1.ReasonSecretMissing
	ReasonDomainConflict     = vmv1alpha1.ReasonDomainNameConflict
	ReasonFenced             = vmv1alpha1.ReasonFenced
	ReasonPaused             = vmv1alpha1.ReasonPaused
	ReasonGuestUp            = vmv1alpha1.ReasonGuestUp
	ReasonWaitingForGuest    = vmv1alpha1.ReasonWaitingForGuest
	ReasonGuestNotResponding = vmv1alpha1.ReasonGuestNotResponding
)

// CloneReconciler reconciles the VMClones bound to one host.
type CloneReconciler struct {
	client.Client
	// Reader reads uncached (the controller's cloud-init copies).
	Reader client.Reader
	// LeaseNamespace holds the heartbeat Leases and the controller's cloud-init copies.
	LeaseNamespace string
	NodeName       string
	Host           Host
	Recorder       events.EventRecorder
	Clock          clock.PassiveClock
	// ShutdownGrace bounds a graceful stop before the domain is destroyed.
	ShutdownGrace time.Duration
	// CommandTimeout bounds each slow host operation (default 5 minutes).
	CommandTimeout time.Duration
	// UsageResync is how often a running clone's COW and pool usage is looked at again.
	UsageResync time.Duration
	// MaxConcurrent bounds parallel reconciles: lvm serializes metadata changes anyway and
	// guest preparation is I/O bound.
	MaxConcurrent int

	// changed tells the host reporter that capacity moved (a domain or disk came or went).
	changed func()
	// domainEvents wakes the clones whose domain changed state by itself (domainWatcher).
	domainEvents chan event.GenericEvent
	// expectDomain tells the domain watcher a domain is about to change (shut down, finish
	// dying), so it looks often until it has.
	expectDomain func(name string)
	// fence holds the start of domains while the host is fenced (fence.go), and destroys the
	// copy of a clone that left this host's cache for another host (rebound.go).
	fence *Fencer
	// guests knows what the running guests publish (guest_watcher.go); nil on a host whose
	// guests are not looked into (GuestReady then follows the domain alone).
	guests *guestWatcher

	// reports holds, per clone, the report this agent last wrote (see reportFor).
	reports sync.Map // types.NamespacedName -> writtenReport
	// finalizers remembers, per clone, that this agent applied its finalizer, or released it:
	// the cache may show the clone without the one or with the other for a moment, and acting
	// on that would apply it twice, or clean a host that is clean already and write to an
	// object that is gone.
	finalizers sync.Map // types.NamespacedName -> finalizerState
	// ballooning remembers, per clone UID, when a standby was asked to balloon down
	// (standby.go); lost on a restart, which only asks again.
	ballooning sync.Map // types.UID -> time.Time
}

// SetupWithManager registers the reconciler. The manager's cache holds only this node's clones
// (see the agent's cache options); templates map to their clones on this node.
func (r *CloneReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.ShutdownGrace == 0 {
		r.ShutdownGrace = 60 * time.Second
	}
	if r.MaxConcurrent == 0 {
		r.MaxConcurrent = 4
	}
	if r.CommandTimeout == 0 {
		r.CommandTimeout = 5 * time.Minute
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("hostagent-vmclone").
		For(&vmv1alpha1.VMClone{}, builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			return updateMatters(e.ObjectOld.(*vmv1alpha1.VMClone), e.ObjectNew.(*vmv1alpha1.VMClone))
		}})).
		// A template's status (hosts, imports, clone counts) is the controller's aggregate and
		// changes nothing here; during an import it changes every few seconds.
		Watches(&vmv1alpha1.VMTemplate{}, handler.EnqueueRequestsFromMapFunc(r.clonesOfTemplate),
			builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
				return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
					!e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp())
			}})).
		WatchesRawSource(source.Channel(r.domainEvents, &handler.EnqueueRequestForObject{})).
		WatchesRawSource(source.Channel(r.fenceEvents(), &handler.EnqueueRequestForObject{})).
		WatchesRawSource(source.Channel(r.guestEvents(), &handler.EnqueueRequestForObject{})).
		// Several agents share one process in the playground and the tests.
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrent, SkipNameValidation: ptr.To(true)}).
		Complete(r)
}

// updateMatters filters the clone updates that can change what the agent does: the spec,
// deletion, and the controller's decisions in status (binding, identity, expiry). The agent's
// own writes (its report, its finalizer) and the controller's Ready updates would otherwise
// each cost a reconcile.
func updateMatters(old, cur *vmv1alpha1.VMClone) bool {
	if old.Generation != cur.Generation || !old.DeletionTimestamp.Equal(cur.DeletionTimestamp) {
		return true
	}
	o, c := old.Status, cur.Status
	if o.NodeName != c.NodeName || o.BindingGeneration != c.BindingGeneration || o.UUID != c.UUID ||
		!equality.Semantic.DeepEqual(o.Interfaces, c.Interfaces) {
		return true
	}
	oe, ce := meta.FindStatusCondition(o.Conditions, vmv1alpha1.ConditionExpired), meta.FindStatusCondition(c.Conditions, vmv1alpha1.ConditionExpired)
	return (oe == nil) != (ce == nil) || oe != nil && oe.Status != ce.Status
}

// fenceEvents wakes the clones the fencer released (never closed; empty without a fencer).
func (r *CloneReconciler) fenceEvents() chan event.GenericEvent {
	if r.fence != nil && r.fence.wakeClones != nil {
		return r.fence.wakeClones
	}
	return make(chan event.GenericEvent)
}

func (r *CloneReconciler) usageResync() time.Duration {
	if r.UsageResync == 0 {
		return time.Minute
	}
	return r.UsageResync
}

func (r *CloneReconciler) clonesOfTemplate(ctx context.Context, o client.Object) []reconcile.Request {
	// A new or changed template changes what the host reports (templates present, VGs).
	r.capacityChanged()
	clones, err := boundClones(ctx, r.Client, r.NodeName)
	if err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, c := range clones {
		if c.Spec.TemplateRef.Name == o.GetName() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&c)})
		}
	}
	return out
}

// cloneScope is one reconcile: the clone as read, its template, and the status the steps build.
type cloneScope struct {
	clone    *vmv1alpha1.VMClone
	template *vmv1alpha1.VMTemplate
	status   vmv1alpha1.VMCloneStatus // the agent's report, as the steps build it
	// last is the report as last written (or stored): applyStatus writes only a change.
	last   vmv1alpha1.VMCloneStatus
	volume *lvm.LV
	vg     lvm.VG
	pool   *lvm.LV
	failed bool
	// domain is the clone's domain name on this host, once resolved (CloneReconciler.domainName).
	domain string
	// built lists what this reconcile made on the host for the clone, for its Started event.
	built []string
	// resumed is true once this reconcile unpaused the domain and restored its memory target.
	resumed bool
	now     metav1.Time
	requeue time.Duration
}

func (s *cloneScope) setCondition(t string, st metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&s.status.Conditions, metav1.Condition{
		Type: t, Status: st, Reason: reason, Message: msg, ObservedGeneration: s.clone.Generation,
		LastTransitionTime: s.now,
	})
}

func (s *cloneScope) requeueAfter(d time.Duration) {
	if d > 0 && (s.requeue == 0 || d < s.requeue) {
		s.requeue = d
	}
}

// Reconcile reads like a clone's life on this host: fetch; on deletion clean the host and
// release the finalizer; otherwise volume → guest → domain; then apply what the host showed.
func (r *CloneReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	clone := &vmv1alpha1.VMClone{}
	if err := r.Get(ctx, req.NamespacedName, clone); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		clone = nil
	}
	if clone == nil || clone.Status.NodeName != r.NodeName {
		// Not (or no longer) ours. Deleted, its leftovers are orphans (collected after a
		// grace period); rebound to another host, its domain must not run here a moment
		// longer.
		r.reports.Delete(req.NamespacedName)
		fin, _ := r.finalizers.LoadAndDelete(req.NamespacedName)
		if held, _ := fin.(finalizerState); held.released && clone == nil {
			// We cleaned it and let it go, so it was deleted, not moved: no need to ask
			// the API server (one GET per deleted clone, in a burst of deletes).
			return ctrl.Result{}, nil
		}
		if r.fence != nil {
			return ctrl.Result{}, r.fence.StopReboundCopy(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, nil
	}
	fin, _ := r.finalizers.Load(req.NamespacedName)
	held, _ := fin.(finalizerState)
	if held.uid != clone.UID {
		held = finalizerState{}
	}
	if held.released {
		return ctrl.Result{}, nil // cleaned and let go; the cache has not seen it gone yet
	}
	log := log.FromContext(ctx).WithValues("node", r.NodeName)
	ctx = ctrl.LoggerInto(ctx, log)

	s := &cloneScope{clone: clone, now: metav1.NewTime(r.Clock.Now())}
	s.status, s.last = r.reportFor(clone)

	if !clone.DeletionTimestamp.IsZero() {
		done, err := r.reconcileDelete(ctx, s)
		if err != nil || !done {
			if err == nil && r.holdReport(s) {
				return ctrl.Result{RequeueAfter: s.requeue}, nil
			}
			if applyErr := r.applyStatus(ctx, s); applyErr != nil {
				err = errors.Join(err, applyErr)
			}
			return ctrl.Result{RequeueAfter: s.requeue}, err
		}
		r.capacityChanged()
		r.reports.Delete(req.NamespacedName) // the clone's last reconcile here
		if err := r.removeFinalizer(ctx, clone); err != nil {
			return ctrl.Result{}, err
		}
		r.finalizers.Store(req.NamespacedName, finalizerState{uid: clone.UID, released: true})
		return ctrl.Result{}, nil
	}

	if !held.applied && !controllerutil.ContainsFinalizer(clone, vmv1alpha1.CloneFinalizer) {
		if _, err := r.applyFinalizer(ctx, clone, true); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
		r.finalizers.Store(req.NamespacedName, finalizerState{uid: clone.UID, applied: true})
	}

	defer func() {
		if err := r.applyStatus(ctx, s); err != nil {
			retErr = errors.Join(retErr, err)
		}
		if retErr == nil {
			res.RequeueAfter = s.requeue
		}
	}()
	if s.last.ObservedBindingGeneration != 0 && s.last.ObservedBindingGeneration != clone.Status.BindingGeneration {
		// The stored report is another host's, from before a reschedule: replace it at once,
		// before the slow host work, so nobody reads the old host's phase as this one's.
		if err := r.applyStatus(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, r.reconcileNormal(ctx, s)
}

func (r *CloneReconciler) reconcileNormal(ctx context.Context, s *cloneScope) error {
	// The controller writes the UUID and the MACs in one apply, before it binds the clone.
	if s.clone.Status.UUID == "" {
		s.setCondition(vmv1alpha1.ConditionVolumeReady, metav1.ConditionFalse, ReasonWaitingForIdentity,
			"waiting for the controller to allocate the clone's UUID and MACs")
		return nil
	}
	tpl := &vmv1alpha1.VMTemplate{}
	if err := r.Get(ctx, types.NamespacedName{Name: s.clone.Spec.TemplateRef.Name}, tpl); err != nil {
		if apierrors.IsNotFound(err) {
			s.setCondition(vmv1alpha1.ConditionVolumeReady, metav1.ConditionFalse, ReasonTemplateNotFound,
				fmt.Sprintf("VMTemplate %q does not exist: create it or delete this clone", s.clone.Spec.TemplateRef.Name))
			return nil
		}
		return fmt.Errorf("get template: %w", err)
	}
	s.template = tpl
	if err := r.resumeStandby(ctx, s); err != nil {
		return err
	}

	for _, step := range []struct {
		name string
		fn   func(context.Context, *cloneScope) (bool, error)
	}{
		{"reset", r.ensureReset},
		{"volume", r.ensureVolume},
		{"storage", r.ensureStorageHealth},
		{"guest", r.ensureGuestPrepared},
		{"domain", r.ensureDomain},
		{"guestready", r.ensureGuestReady},
		{"guestdata", r.ensureGuestData},
	} {
		start := time.Now()
		done, err := step.fn(ctx, s)
		stepSeconds.WithLabelValues(step.name, result(err)).Observe(time.Since(start).Seconds())
		if err != nil || !done {
			r.guestWhenDown(s)
			return err
		}
	}
	return nil
}

// ensureReset replaces the disk when spec.resetRequests grew: stop the domain, drop the
// snapshot and the seed, record the reset; the next steps take a fresh snapshot, prepare it and
// start the domain again with the same identity.
func (r *CloneReconciler) ensureReset(ctx context.Context, s *cloneScope) (bool, error) {
	if s.clone.Spec.ResetRequests <= s.status.ObservedResetRequests {
		return true, nil
	}
	stopped, err := r.stopDomain(ctx, s, ReasonResetting)
	if err != nil || !stopped {
		return false, err
	}
	if err := r.removeVolumes(ctx, s, []string{string(s.template.Spec.Origin.VolumeGroup)}); err != nil {
		return false, err
	}
	if err := r.Host.Guest.RemoveSeed(ctx, string(s.clone.UID)); err != nil {
		return false, fmt.Errorf("remove seed for reset: %w", err)
	}
	s.status.ObservedResetRequests = s.clone.Spec.ResetRequests
	for _, t := range []string{vmv1alpha1.ConditionVolumeReady, vmv1alpha1.ConditionGuestPrepared} {
		s.setCondition(t, metav1.ConditionFalse, ReasonResetting, "resetting the disk to the template")
	}
	s.status.Timestamps.VolumeReady, s.status.Timestamps.GuestPrepared = nil, nil
	// The fresh disk gets a fresh run: what marks the old one (it started, it stopped, how)
	// goes too, or runStrategy Once would read the old run as done and never start the
	// reset clone again — and Ready would wait for it forever.
	s.status.Timestamps.Started, s.status.Timestamps.Stopped = nil, nil
	s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, ReasonResetting,
		"the domain starts again once the fresh disk is prepared")
	r.event(s.clone, corev1.EventTypeNormal, ReasonResetting, "Reset", "disk dropped; a fresh snapshot of %s is being taken", s.template.Name)
	// Apply the recorded reset before taking the new snapshot, so a crash here never drops
	// the fresh disk a second time.
	s.requeueAfter(time.Millisecond)
	return false, nil
}

// removeVolumes removes every LV the clone owns in the given volume groups.
func (r *CloneReconciler) removeVolumes(ctx context.Context, s *cloneScope, vgs []string) error {
	owner := OwnerOf(s.clone)
	for _, vg := range vgs {
		rep, err := r.Host.Storage.Report(ctx, vg)
		if err != nil {
			if errors.Is(err, lvm.ErrVGNotFound) {
				continue
			}
			return fmt.Errorf("read volume group %s: %w", vg, err)
		}
		for _, lv := range ownedBy(rep, owner.UID) {
			if err := r.Host.Storage.Remove(ctx, lv.Ref(), owner); err != nil && !errors.Is(err, lvm.ErrLVNotFound) {
				return fmt.Errorf("remove %s: %w", lv.Ref(), err)
			}
			log.FromContext(ctx).V(1).Info("removed volume", "lv", lv.Ref().String())
		}
	}
	return nil
}

func (r *CloneReconciler) ensureVolume(ctx context.Context, s *cloneScope) (bool, error) {
	req := SnapshotFor(s.template, s.clone)
	rep, err := r.Host.Storage.Report(ctx, req.VG)
	if err != nil && errors.Is(err, lvm.ErrVGNotFound) && hadVolume(s) {
		return false, r.volumeLost(ctx, s, req, fmt.Sprintf("volume group %s, which held its disk %s/%s, is gone from host %s", req.VG, req.VG, req.Name, r.NodeName))
	}
	if err != nil {
		s.setCondition(vmv1alpha1.ConditionVolumeReady, metav1.ConditionFalse, ReasonStorageError,
			fmt.Sprintf("cannot read volume group %s on %s: %v", req.VG, r.NodeName, err))
		return false, err
	}
	s.vg = rep.VG
	if lv, ok := rep.LV(req.Name); ok {
		if !lv.OwnedBy(req.Owner.UID) {
			s.setCondition(vmv1alpha1.ConditionVolumeReady, metav1.ConditionFalse, ReasonVolumeConflict,
				fmt.Sprintf("an LV %s exists on %s that this clone does not own; it is left untouched: rename or remove it, or set spec.domainName", lv.Ref(), r.NodeName))
			return false, nil
		}
		s.volume = &lv
		s.pool = poolOf(rep, lv)
		r.markVolumeReady(s, lv)
		return true, nil
	}
	if hadVolume(s) {
		return false, r.volumeLost(ctx, s, req, fmt.Sprintf("its disk %s/%s is gone from host %s", req.VG, req.Name, r.NodeName))
	}
	origin, ok := rep.LV(req.Origin)
	if !ok {
		msg := fmt.Sprintf("template origin %s/%s is not on host %s: install it there, or restrict the template's hostSelector", req.VG, req.Origin, r.NodeName)
		if s.template.Spec.Source != nil {
			msg = fmt.Sprintf("template origin %s/%s is not imported on host %s yet: the template's Imported condition says how the import goes", req.VG, req.Origin, r.NodeName)
		}
		s.setCondition(vmv1alpha1.ConditionVolumeReady, metav1.ConditionFalse, ReasonOriginMissing, msg)
		return false, nil
	}
	if why := TemplateOriginRefusal(s.template, origin); why != "" {
		// Asked again here, right before the origin is protected: the host may have changed
		// since the report placement went by.
		s.setCondition(vmv1alpha1.ConditionVolumeReady, metav1.ConditionFalse, ReasonOriginRefused,
			fmt.Sprintf("template %s: %s (on %s; the LV was left untouched)", s.template.Name, why, r.NodeName))
		// What unblocks it (an unmount, a domain shut down) is no event the agent watches.
		s.requeueAfter(30 * time.Second)
		return false, nil
	}
	if !origin.Attr.ReadOnly() && !origin.Attr.IsThin() {
		// Writes to a classic origin are copied into every snapshot; the template is never
		// written while clones exist. Made read-only only now, for the first snapshot on this
		// host, and tagged so it is made writable again once no template names it.
		if err := r.Host.Storage.SetOriginReadOnly(ctx, origin.Ref()); err != nil {
			return false, fmt.Errorf("make origin %s read-only: %w", origin.Ref(), err)
		}
	}
	opCtx, cancel := context.WithTimeout(ctx, r.CommandTimeout)
	lv, err := r.Host.Storage.CreateSnapshot(opCtx, req)
	cancel()
	if err != nil {
		msg := fmt.Sprintf("snapshot of %s/%s failed: %v", req.VG, req.Origin, err)
		if req.ThinPool != "" && errors.Is(err, lvm.ErrInUse) {
			// lvm takes a thick LV as the external origin of its first thin snapshot only while
			// it is inactive (seen in the host lab). The agent does not deactivate a template
			// by itself: classic clones or an administrator may be using it.
			msg = fmt.Sprintf("lvm refuses the active thick LV %s/%s as the external origin of a first thin snapshot: on %s run `lvchange -an %s/%s` once (it may be active again afterwards); the clone retries by itself (%v)",
				req.VG, req.Origin, r.NodeName, req.VG, req.Origin, err)
		}
		s.setCondition(vmv1alpha1.ConditionVolumeReady, metav1.ConditionFalse, ReasonStorageError, msg)
		r.event(s.clone, corev1.EventTypeWarning, ReasonStorageError, "CreateSnapshot", "%s", msg)
		return false, err
	}
	s.volume = &lv
	s.pool = poolOf(rep, lv)
	r.markVolumeReady(s, lv)
	// Told in the Started event with the rest: one event per clone start, not one per step.
	s.built = append(s.built, fmt.Sprintf("%s snapshot %s of %s", req.Mode, lv.Ref(), req.Origin))
	log.FromContext(ctx).V(1).Info("snapshot created", "lv", lv.Ref().String(), "mode", req.Mode)
	return true, nil
}

// hadVolume says whether the agent has made this clone's disk on its current binding: its
// report recorded the volume ready. The report is the agent's own (reportFor), or the stored
// status after an agent restart, so a restart does not forget it. A reschedule starts a new
// report (agentStatus) and a reset clears the timestamp (ensureReset): both rightly take a
// fresh snapshot.
func hadVolume(s *cloneScope) bool {
	return s.status.Timestamps != nil && s.status.Timestamps.VolumeReady != nil
}

// volumeLost handles a disk that vanished under a clone (an lvremove by hand, a VG rebuilt or
// not assembled): the guest's data is gone, and a fresh snapshot in its place would hand the
// user a template-fresh disk without a word. The agent never does that by itself: the clone
// fails, says what happened and how to get a fresh disk (a reset), and a domain still running
// off the vanished device is destroyed — a clean shutdown has nothing left to flush to. It
// looks again now and then: an LV brought back (vgcfgrestore) is taken up again.
func (r *CloneReconciler) volumeLost(ctx context.Context, s *cloneScope, req SnapshotRequest, what string) error {
	msg := fmt.Sprintf("the clone's disk is lost: %s. xenclone does not replace it by itself; to get a fresh disk from template %s, raise spec.resetRequests: kubectl -n %s patch vmclone %s --type merge -p '{\"spec\":{\"resetRequests\":%d}}'",
		what, s.template.Name, s.clone.Namespace, s.clone.Name, s.clone.Spec.ResetRequests+1)
	prev := meta.FindStatusCondition(s.status.Conditions, vmv1alpha1.ConditionVolumeReady)
	if prev == nil || prev.Reason != ReasonVolumeLost {
		r.event(s.clone, corev1.EventTypeWarning, ReasonVolumeLost, "CheckVolume", "%s", msg)
		log.FromContext(ctx).Info("clone volume lost", "vmclone", client.ObjectKeyFromObject(s.clone).String(), "lv", req.VG+"/"+req.Name)
	}
	s.setCondition(vmv1alpha1.ConditionVolumeReady, metav1.ConditionFalse, ReasonVolumeLost, msg)
	s.status.Volume = nil
	s.requeueAfter(r.usageResync())

	name, err := r.domainName(ctx, s)
	if err != nil {
		return err
	}
	dom, found, err := r.Host.Hypervisor.Lookup(ctx, name)
	if err != nil {
		return fmt.Errorf("look up domain %s: %w", name, err)
	}
	if !found || dom.State.Dying {
		return nil
	}
	if err := r.Host.Hypervisor.DestroyOwned(ctx, name, s.clone.Status.UUID); err != nil {
		return r.domainError(s, name, "destroy domain with a lost disk", err)
	}
	r.capacityChanged()
	s.status.Timestamps.Stopped = &s.now
	s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, ReasonStopped,
		fmt.Sprintf("domain %s destroyed: its disk is lost", name))
	s.status.Domain = &vmv1alpha1.DomainStatus{Name: name}
	r.event(s.clone, corev1.EventTypeWarning, ReasonVolumeLost, "StopDomain", "domain %s destroyed: its disk %s/%s is gone", name, req.VG, req.Name)
	return nil
}

func poolOf(rep lvm.Report, lv lvm.LV) *lvm.LV {
	if lv.Pool == "" {
		return nil
	}
	if p, ok := rep.LV(lv.Pool); ok {
		return &p
	}
	return nil
}

func (r *CloneReconciler) markVolumeReady(s *cloneScope, lv lvm.LV) {
	s.setCondition(vmv1alpha1.ConditionVolumeReady, metav1.ConditionTrue, ReasonVolumeCreated, fmt.Sprintf("disk %s", VolumePath(lv)))
	if s.status.Timestamps.VolumeReady == nil {
		s.status.Timestamps.VolumeReady = &s.now
	}
	vs := &vmv1alpha1.VolumeStatus{Path: VolumePath(lv), Mode: vmv1alpha1.SnapshotThin, SizeBytes: int64(lv.Size)}
	if lv.Attr.IsClassicSnapshot() {
		vs.Mode, vs.COWSizeBytes, vs.SizeBytes = vmv1alpha1.SnapshotClassic, int64(lv.Size), int64(lv.OriginSize)
	}
	if lv.DataPercent.Valid {
		vs.COWPercent = fmt.Sprintf("%.2f", lv.DataPercent.Value)
	}
	s.status.Volume = vs
}

// ensureStorageHealth extends a classic snapshot before its COW area fills and reports a clone
// whose storage is at risk; an invalidated snapshot has lost the guest's disk.
func (r *CloneReconciler) ensureStorageHealth(ctx context.Context, s *cloneScope) (bool, error) {
	lv := *s.volume
	snapPolicy, poolPolicy := UsagePolicies(s.template)
	d := snapPolicy.Decide(lv, s.vg)
	if s.pool != nil && d.Verdict == lvm.VerdictOK {
		d = poolPolicy.Decide(*s.pool)
	}
	switch d.Verdict {
	case lvm.VerdictExtend:
		if err := r.Host.Storage.ExtendSnapshot(ctx, lv.Ref(), OwnerOf(s.clone), d.ExtendBy); err != nil {
			return false, fmt.Errorf("extend COW area of %s: %w", lv.Ref(), err)
		}
		r.event(s.clone, corev1.EventTypeNormal, ReasonCOWExtended, "ExtendSnapshot", "%s", d.Reason)
		s.setCondition(vmv1alpha1.ConditionStorageAtRisk, metav1.ConditionFalse, ReasonCOWExtended, d.Reason)
	case lvm.VerdictAtRisk:
		reason := ReasonCOWAtMax
		if s.pool != nil {
			reason = ReasonPoolAtRisk
		}
		if !meta.IsStatusConditionTrue(s.status.Conditions, vmv1alpha1.ConditionStorageAtRisk) {
			r.event(s.clone, corev1.EventTypeWarning, reason, "WatchStorage", "%s", d.Reason)
		}
		s.setCondition(vmv1alpha1.ConditionStorageAtRisk, metav1.ConditionTrue, reason, d.Reason)
	case lvm.VerdictFull:
		if !meta.IsStatusConditionTrue(s.status.Conditions, vmv1alpha1.ConditionStorageAtRisk) {
			r.event(s.clone, corev1.EventTypeWarning, ReasonSnapshotInvalid, "WatchStorage", "%s", d.Reason)
		}
		s.setCondition(vmv1alpha1.ConditionStorageAtRisk, metav1.ConditionTrue, ReasonSnapshotInvalid, d.Reason)
		if lv.Attr.Invalid() {
			s.failed = true
			return false, nil
		}
	default:
		s.setCondition(vmv1alpha1.ConditionStorageAtRisk, metav1.ConditionFalse, ReasonStorageOK, d.Reason)
	}
	// Usage changes without any event reaching us: look again while the clone lives.
	s.requeueAfter(r.usageResync())
	return true, nil
}

// ensureGuestPrepared scrubs and personalizes a fresh snapshot once. The Prepared mark lives on
// the LV (a tag), so a restarted agent never scrubs a disk that has booted.
func (r *CloneReconciler) ensureGuestPrepared(ctx context.Context, s *cloneScope) (bool, error) {
	lv := *s.volume
	if !lv.HasTag(PreparedTag) {
		opCtx, cancel := context.WithTimeout(ctx, r.CommandTimeout)
		defer cancel()
		rep, err := r.Host.Guest.Prepare(opCtx, VolumePath(lv), PrepareRequest{
			Owner: OwnerOf(s.clone), Hostname: Hostname(s.clone), Operations: scrub.Resolve(s.template.Spec.Scrub),
			RootPartition: int(s.template.Spec.Guest.RootPartition), RootFilesystem: s.template.Spec.Guest.RootFilesystem,
		})
		if err != nil {
			s.setCondition(vmv1alpha1.ConditionGuestPrepared, metav1.ConditionFalse, ReasonPrepareFailed,
				fmt.Sprintf("preparing the guest failed: %v", err))
			r.event(s.clone, corev1.EventTypeWarning, ReasonPrepareFailed, "PrepareGuest", "%v", err)
			return false, err
		}
		if err := r.Host.Storage.AddTag(ctx, lv.Ref(), OwnerOf(s.clone), PreparedTag); err != nil {
			return false, fmt.Errorf("mark %s prepared: %w", lv.Ref(), err)
		}
		s.built = append(s.built, fmt.Sprintf("scrubbed %d item(s) (%s), hostname %s",
			len(rep.Changed), summarize(rep.Changed, 5), Hostname(s.clone)))
	}
	s.setCondition(vmv1alpha1.ConditionGuestPrepared, metav1.ConditionTrue, ReasonPrepared,
		fmt.Sprintf("machine-specific data scrubbed, hostname %s", Hostname(s.clone)))
	if s.status.Timestamps.GuestPrepared == nil {
		s.status.Timestamps.GuestPrepared = &s.now
	}
	return true, nil
}

// effectiveStrategy is the run strategy in force: the user's, or Halted once the controller
// marked the clone Expired with onExpiry: Stop.
func effectiveStrategy(c *vmv1alpha1.VMClone) vmv1alpha1.RunStrategy {
	if exp := meta.FindStatusCondition(c.Status.Conditions, vmv1alpha1.ConditionExpired); exp != nil &&
		exp.Status == metav1.ConditionTrue && c.Spec.Lifetime != nil && c.Spec.Lifetime.OnExpiry == vmv1alpha1.ExpiryStop {
		return vmv1alpha1.RunStrategyHalted
	}
	if c.Spec.RunStrategy == "" {
		return vmv1alpha1.RunStrategyAlways
	}
	return c.Spec.RunStrategy
}

// wantRunning says whether the domain should run now, from the run strategy in force and what
// the guest did last as the agent's report says (the report being built, which is also what is
// stored, so it survives agent restarts). The report, not the clone as read: a reconcile that
// just saw the guest power off must not start it again from the clone's older conditions.
func wantRunning(c *vmv1alpha1.VMClone, report vmv1alpha1.VMCloneStatus) bool {
	last := meta.FindStatusCondition(report.Conditions, vmv1alpha1.ConditionDomainRunning)
	switch effectiveStrategy(c) {
	case vmv1alpha1.RunStrategyHalted:
		return false
	case vmv1alpha1.RunStrategyOnce:
		// Run until the guest stops by itself for good; a reboot keeps it going.
		if report.Timestamps == nil || report.Timestamps.Started == nil {
			return true
		}
		return last == nil || last.Status == metav1.ConditionTrue || last.Reason == ReasonRestarting
	case vmv1alpha1.RunStrategyRerunOnFailure:
		return last == nil || last.Reason != ReasonGuestPoweredOff
	}
	return true
}

func (r *CloneReconciler) ensureDomain(ctx context.Context, s *cloneScope) (bool, error) {
	name, err := r.domainName(ctx, s)
	if err != nil {
		return false, err
	}
	dom, found, err := r.Host.Hypervisor.Lookup(ctx, name)
	if err != nil {
		return false, fmt.Errorf("look up domain %s: %w", name, err)
	}
	if found && !dom.State.Dying && !meta.IsStatusConditionTrue(s.status.Conditions, vmv1alpha1.ConditionDomainRunning) {
		// First sight of a domain with our name (after a crash of the agent, or a name
		// squatted by someone else): it is ours only if it carries the clone's UUID.
		if _, err := r.Host.Hypervisor.Owner(ctx, name, s.clone.Status.UUID); err != nil && !errors.Is(err, xen.ErrNoSuchDomain) {
			return false, r.domainError(s, name, "check owner of", err)
		}
	}
	if found {
		s.status.Domain = domainStatus(s.status.Domain, name, dom)
	} else {
		s.status.Domain = &vmv1alpha1.DomainStatus{Name: name}
	}

	// The agent is the domain's monitor (xl create -e): a guest that stopped by itself is
	// still listed as shut down, with its reason, until we act on it.
	if found && dom.State.Shutdown {
		step := xen.DecideStep(dom.State, PolicyFor(s.template, effectiveStrategy(s.clone)))
		if step == xen.StepNone || step == xen.StepWait {
			r.awaitDomain(s, name, domainChangeFallback)
			return false, nil
		}
		if err := r.Host.Hypervisor.DestroyOwned(ctx, name, s.clone.Status.UUID); err != nil {
			return false, r.domainError(s, name, "destroy stopped domain", err)
		}
		reason := ReasonGuestPoweredOff
		switch dom.State.Reason {
		case xen.ReasonCrash, xen.ReasonWatchdog:
			reason = ReasonGuestCrashed
		case xen.ReasonReboot, xen.ReasonSoftReset:
			reason = ReasonRestarting
		}
		if step == xen.StepRestart {
			reason = ReasonRestarting
		}
		s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, reason,
			fmt.Sprintf("the guest stopped (%s, state %s)", dom.State.Reason, dom.State))
		s.status.Timestamps.Stopped = &s.now
		r.event(s.clone, eventType(reason), reason, "DomainStopped", "domain %s stopped by the guest (%s)", name, dom.State.Reason)
		// A destroyed domain may linger as dying (its memory is freed asynchronously), and a
		// dying domain of the same name blocks xl create: go on only once it is gone.
		if dom, found, err = r.Host.Hypervisor.Lookup(ctx, name); err != nil {
			return false, fmt.Errorf("look up domain %s: %w", name, err)
		}
		if found {
			r.awaitDomain(s, name, domainChangeFallback)
			return false, nil
		}
		s.status.Domain = &vmv1alpha1.DomainStatus{Name: name}
	}

	if !wantRunning(s.clone, s.status) {
		stopped, err := r.stopDomain(ctx, s, ReasonHalted)
		if err != nil || !stopped {
			return false, err
		}
		// Keep the guest's own reason (powered off, crashed) when it says more than "off".
		last := meta.FindStatusCondition(s.status.Conditions, vmv1alpha1.ConditionDomainRunning)
		if last == nil || (last.Reason != ReasonGuestPoweredOff && last.Reason != ReasonGuestCrashed) {
			s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, ReasonHalted,
				fmt.Sprintf("the domain is off, as the run strategy %s asks", effectiveStrategy(s.clone)))
		}
		return true, nil
	}

	if found && !dom.State.Dying {
		if s.status.Timestamps.Started == nil {
			// The write that recorded the start was lost (agent killed, or a write race):
			// a running domain has started, and runStrategy Once depends on knowing it.
			s.status.Timestamps.Started = &s.now
		}
		// Running, or a paused warm standby (spec.pause), or one being resumed.
		return r.ensureStandby(ctx, s, name, dom)
	}
	if found && dom.State.Dying {
		r.awaitDomain(s, name, domainChangeFallback)
		return false, nil
	}
	if v := r.fence.mayStart(s.clone); v.hold {
		if v.message != "" {
			s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, ReasonFenced, v.message)
		}
		// The fencer wakes the clone when it releases it; this only bounds a missed wake.
		s.requeueAfter(fenceRecheck)
		return false, nil
	} else if v.released {
		// Say what happened before the domain runs again: the fence may have come and gone
		// while no status could be written.
		s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, ReasonFenced, v.message)
		if err := r.applyStatus(ctx, s); err != nil {
			return false, err
		}
		r.event(s.clone, corev1.EventTypeNormal, ReasonFenced, "StartDomain", "%s", v.message)
		r.fence.release(s.clone)
	}
	return r.startDomain(ctx, s, name)
}

// fenceRecheck bounds how long a clone held by the fencer waits before it asks again.
const fenceRecheck = 5 * time.Second

func (r *CloneReconciler) startDomain(ctx context.Context, s *cloneScope, name string) (bool, error) {
	seed := ""
	if CloudInitEnabled(s.template) {
		req, err := r.seedRequest(ctx, s)
		if err != nil {
			s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, ReasonSecretMissing, err.Error())
			// The agent does not watch Secrets (its cache would hold every Secret of the
			// cluster): look again soon.
			s.requeueAfter(10 * time.Second)
			return false, nil
		}
		if seed, err = r.Host.Guest.BuildSeed(ctx, req); err != nil {
			return false, fmt.Errorf("build cloud-init seed: %w", err)
		}
	}
	cfg, err := DomainConfigFor(s.template, s.clone, VolumePath(*s.volume), seed)
	if err != nil {
		return false, err
	}
	cfg.Name = name
	path, err := xen.WriteConfigFile(r.Host.ConfigDir, cfg)
	if err != nil {
		s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, ReasonStartFailed, fmt.Sprintf("domain config rejected: %v", err))
		return false, err
	}
	opCtx, cancel := context.WithTimeout(ctx, r.CommandTimeout)
	err = r.Host.Hypervisor.Create(opCtx, name, path, xen.CreateOptions{MemoryMiB: cfg.MemoryMiB})
	cancel()
	if err != nil {
		msg := fmt.Sprintf("xl create %s failed: %v", name, err)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			msg = fmt.Sprintf("xl create %s did not return within %s: the host's toolstack (xenstored, a device model) may be stuck; check `xl list` and /var/log/xen on %s", name, r.CommandTimeout, r.NodeName)
		}
		if errors.Is(err, xen.ErrNoMemory) {
			msg = fmt.Sprintf("host %s has not enough free memory for %d MiB: free memory or move the clone (delete it and let it be rescheduled)", r.NodeName, cfg.MemoryMiB)
		}
		s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, ReasonStartFailed, msg)
		r.event(s.clone, corev1.EventTypeWarning, ReasonStartFailed, "StartDomain", "%s", msg)
		return false, err
	}
	msg := fmt.Sprintf("domain %s started", name)
	if dom, found, err := r.Host.Hypervisor.Lookup(ctx, name); err == nil && found {
		s.status.Domain = domainStatus(s.status.Domain, name, dom)
		// What the next look at a running domain says too: no second write for it.
		msg = runningMessage(name, dom.ID)
	}
	s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionTrue, ReasonStarted, msg)
	s.status.Timestamps.Started = &s.now
	r.capacityChanged()
	what := fmt.Sprintf("domain %s started on %s", name, r.NodeName)
	if len(s.built) > 0 {
		what += " from a fresh disk: " + strings.Join(s.built, "; ")
	}
	r.event(s.clone, corev1.EventTypeNormal, ReasonStarted, "StartDomain", "%s", what)
	return true, nil
}

func (r *CloneReconciler) seedRequest(ctx context.Context, s *cloneScope) (SeedRequest, error) {
	req := SeedRequest{UID: string(s.clone.UID), Hostname: Hostname(s.clone)}
	for _, nic := range s.clone.Status.Interfaces {
		req.MACs = append(req.MACs, nic.MAC)
	}
	ci := s.clone.Spec.CloudInit
	if ci == nil {
		return req, nil
	}
	if ci.UserData == nil && ci.NetworkConfig == nil {
		return req, nil
	}
	// The controller copies the Secrets a clone names into its namespace before placing the
	// clone; the agent may read those copies only (docs/security.md).
	key := types.NamespacedName{Namespace: r.LeaseNamespace, Name: vmv1alpha1.CloudInitCopyName(string(s.clone.UID))}
	var cp corev1.Secret
	if err := r.Reader.Get(ctx, key, &cp); err != nil {
		if apierrors.IsNotFound(err) {
			return req, fmt.Errorf("the controller has not copied the cloud-init data of spec.cloudInit to Secret %s yet: check the clone's events and that the Secrets it names exist", key)
		}
		return req, fmt.Errorf("get cloud-init copy %s: %w", key, err)
	}
	if cp.Labels[vmv1alpha1.CloneUIDLabel] != string(s.clone.UID) {
		return req, fmt.Errorf("cloud-init copy %s belongs to clone UID %q, not %s: refusing it", key, cp.Labels[vmv1alpha1.CloneUIDLabel], s.clone.UID)
	}
	if ci.UserData != nil {
		req.UserData = cp.Data[vmv1alpha1.CloudInitUserDataKey]
	}
	if ci.NetworkConfig != nil {
		req.NetworkConfig = cp.Data[vmv1alpha1.CloudInitNetworkConfigKey]
	}
	return req, nil
}

// stopDomain brings the clone's domain down gracefully without blocking a worker: it asks the
// guest once, records when in the DomainRunning condition, and requeues until the guest is
// gone or the grace period is over, then destroys it. It reports whether the domain is gone.
func (r *CloneReconciler) stopDomain(ctx context.Context, s *cloneScope, why string) (bool, error) {
	name, err := r.domainName(ctx, s)
	if err != nil {
		return false, err
	}
	dom, found, err := r.Host.Hypervisor.Lookup(ctx, name)
	if err != nil {
		return false, fmt.Errorf("look up domain %s: %w", name, err)
	}
	cond := meta.FindStatusCondition(s.status.Conditions, vmv1alpha1.ConditionDomainRunning)
	if !found {
		return true, nil
	}
	if dom.State.Dying {
		r.awaitDomain(s, name, domainChangeFallback)
		return false, nil
	}
	if cond == nil || cond.Reason != ReasonShuttingDown {
		if startedByUs(s, dom) {
			// Ours by our own report; xl destroy checks the UUID again (DestroyOwned).
		} else if _, err := r.Host.Hypervisor.Owner(ctx, name, s.clone.Status.UUID); err != nil {
			// A domain of that name that is not ours is not ours to stop: for this clone
			// there is nothing running.
			return errors.Is(err, xen.ErrNotOwned), r.domainError(s, name, "check owner of", err)
		}
		if dom.State.Paused && !dom.State.Shutdown {
			// A paused guest cannot acknowledge a shutdown request, nor act on one: waiting
			// would only run out the grace period. Unpausing it first would give it back its
			// memory and time to shut down, for a warm standby no one has used yet; it is
			// destroyed at once (NextStopStep). A clone whose guest's state matters is
			// resumed (spec.pause removed) before it is stopped.
		} else if !dom.State.Shutdown {
			// xl shutdown waits up to 60 s for the guest to acknowledge; never hold a worker
			// that long. An unacknowledged request is fine: the grace period ends in destroy.
			reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := r.Host.Hypervisor.RequestShutdown(reqCtx, name)
			cancel()
			if err != nil && !errors.Is(err, xen.ErrNoPVControl) && !errors.Is(err, xen.ErrShutdownNotAcknowledged) &&
				!errors.Is(err, context.DeadlineExceeded) {
				return false, fmt.Errorf("request shutdown of %s: %w", name, err)
			}
		}
		s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, ReasonShuttingDown,
			fmt.Sprintf("shutting %s down (%s); it is destroyed after %s", name, why, r.ShutdownGrace))
		if dom.State.Paused {
			s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, ReasonShuttingDown,
				fmt.Sprintf("destroying the paused domain %s (%s): a paused guest cannot shut down", name, why))
		} else if s.clone.DeletionTimestamp.IsZero() {
			// A deleted clone's events outlive it for nothing: its status says Terminating.
			r.event(s.clone, corev1.EventTypeNormal, ReasonShuttingDown, "StopDomain", "asked domain %s to shut down (%s)", name, why)
		}
		cond = meta.FindStatusCondition(s.status.Conditions, vmv1alpha1.ConditionDomainRunning)
		// The grace period starts when the request went out, not when this reconcile began
		// (a slow xl list or shutdown before it would eat into the guest's grace), nor when an
		// earlier DomainRunning=False began (a crashed guest's would leave none).
		cond.LastTransitionTime = metav1.NewTime(r.Clock.Now())
	}
	step, wait := xen.NextStopStep(found, dom.State, cond.LastTransitionTime.Time, r.Clock.Now(), r.ShutdownGrace)
	switch step {
	case xen.StopWait:
		// The domain watcher wakes the clone as soon as the guest has shut down; the
		// requeue only ends the grace period.
		r.awaitDomain(s, name, wait)
		return false, nil
	case xen.StopDestroy:
		if err := r.Host.Hypervisor.DestroyOwned(ctx, name, s.clone.Status.UUID); err != nil {
			return false, r.domainError(s, name, "destroy", err)
		}
		s.status.Timestamps.Stopped = &s.now
		s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, ReasonStopped, fmt.Sprintf("domain %s stopped (%s)", name, why))
		if !s.clone.DeletionTimestamp.IsZero() {
			// A delete goes on at once, without listing the host again: xl destroy tears
			// down the domain's devices before it returns, so its disk is released even
			// while Xen still lists the domain as dying (freeing its memory). Only a new
			// domain of that name needs it gone, and a deleted clone starts none. Should
			// the disk still be held, its removal says so and waits for the domain then
			// (reconcileDelete).
			return true, nil
		}
		// Go on in this reconcile once the domain is gone; a dying one is waited for.
		if _, found, err := r.Host.Hypervisor.Lookup(ctx, name); err != nil || found {
			r.awaitDomain(s, name, domainChangeFallback)
			return false, err
		}
	}
	return true, nil
}

// reconcileDelete removes the clone's domain, config, seed and volume; it reports true when
// the host is clean and the finalizer may go.
func (r *CloneReconciler) reconcileDelete(ctx context.Context, s *cloneScope) (bool, error) {
	if !controllerutil.ContainsFinalizer(s.clone, vmv1alpha1.CloneFinalizer) {
		return false, nil
	}
	s.status.Phase = vmv1alpha1.PhaseTerminating
	s.status.Message = "removing the domain and its disk from " + r.NodeName
	stopped, err := r.stopDomain(ctx, s, "clone deleted")
	if err != nil || !stopped {
		return false, err
	}
	name, err := r.domainName(ctx, s)
	if err != nil {
		return false, err
	}
	if err := xen.RemoveConfigFile(r.Host.ConfigDir, name); err != nil {
		return false, fmt.Errorf("remove domain config: %w", err)
	}
	if err := r.Host.Guest.RemoveSeed(ctx, string(s.clone.UID)); err != nil {
		return false, fmt.Errorf("remove seed: %w", err)
	}
	if err := r.removeVolumes(ctx, s, r.cloneVGs(ctx, s.clone, s.status.Volume)); err != nil {
		if errors.Is(err, lvm.ErrInUse) {
			// Held by the domain we just destroyed, still dying: wait for it to go.
			if _, found, lerr := r.Host.Hypervisor.Lookup(ctx, name); lerr == nil && found {
				r.awaitDomain(s, name, domainChangeFallback)
				return false, nil
			}
		}
		return false, err
	}
	return true, nil
}

// cloneVGs are the volume groups that may hold the clone's disk: the one recorded in its status
// and its template's.
func (r *CloneReconciler) cloneVGs(ctx context.Context, c *vmv1alpha1.VMClone, vol *vmv1alpha1.VolumeStatus) []string {
	seen := map[string]bool{}
	var out []string
	add := func(vg string) {
		if vg != "" && !seen[vg] {
			seen[vg] = true
			out = append(out, vg)
		}
	}
	if vol != nil {
		// /dev/<vg>/<lv>
		if parts := strings.Split(strings.TrimPrefix(vol.Path, "/dev/"), "/"); len(parts) == 2 {
			add(parts[0])
		}
	}
	var tpl vmv1alpha1.VMTemplate
	if err := r.Get(ctx, types.NamespacedName{Name: c.Spec.TemplateRef.Name}, &tpl); err == nil {
		add(string(tpl.Spec.Origin.VolumeGroup))
	}
	return out
}

// finalizerState is what this agent did with a clone's finalizer.
type finalizerState struct {
	uid               types.UID
	applied, released bool
}

// applyFinalizer adds (hold) or drops the agent's finalizer by server-side apply of
// metadata.finalizers alone. The API server merges finalizers as a set per field manager, so
// no other finalizer is touched and no resourceVersion is needed: a status write by the
// controller in between cannot make it fail (a merge patch with an optimistic lock conflicted,
// one without it could drop another finalizer added meanwhile). It returns the finalizers as
// the server then holds them.
func (r *CloneReconciler) applyFinalizer(ctx context.Context, c *vmv1alpha1.VMClone, hold bool) ([]string, error) {
	md := map[string]any{"name": c.Name, "namespace": c.Namespace, "uid": string(c.UID)}
	if hold {
		md["finalizers"] = []any{vmv1alpha1.CloneFinalizer}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": vmv1alpha1.GroupVersion.String(), "kind": "VMClone", "metadata": md,
	}}
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return nil, err
	}
	return u.GetFinalizers(), nil
}

func (r *CloneReconciler) removeFinalizer(ctx context.Context, c *vmv1alpha1.VMClone) error {
	// Added by an agent from before server-side apply (a merge patch, another field manager),
	// the finalizer outlives the apply: it is then removed by a JSON patch that tests it is at
	// the index the server just showed, and removes that index alone. A finalizer another
	// writer adds meanwhile is never dropped (a merge patch replaces the whole list), and a
	// status write in between does not make it fail (a resourceVersion precondition would);
	// only a change to the list itself fails the test, and the next round reads it again.
	const rounds = 5
	for range rounds {
		left, err := r.applyFinalizer(ctx, c, false)
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil // gone already, or a namesake (UID precondition)
		}
		if err != nil {
			return fmt.Errorf("remove finalizer: %w", err)
		}
		i := slices.Index(left, vmv1alpha1.CloneFinalizer)
		if i < 0 {
			controllerutil.RemoveFinalizer(c, vmv1alpha1.CloneFinalizer)
			return nil
		}
		at := fmt.Sprintf("/metadata/finalizers/%d", i)
		ops, err := json.Marshal([]map[string]any{
			{"op": "test", "path": "/metadata/uid", "value": string(c.UID)},
			{"op": "test", "path": at, "value": vmv1alpha1.CloneFinalizer},
			{"op": "remove", "path": at},
		})
		if err != nil {
			return fmt.Errorf("remove finalizer: %w", err)
		}
		err = r.Patch(ctx, c, client.RawPatch(types.JSONPatchType, ops))
		switch {
		case err == nil, apierrors.IsNotFound(err):
			return nil
		case apierrors.IsInvalid(err) || apierrors.IsConflict(err):
			// A test failed: the list (or the object) changed since the apply showed it.
			continue
		default:
			return fmt.Errorf("remove finalizer: %w", err)
		}
	}
	return fmt.Errorf("remove finalizer %s: the finalizer list kept changing under %d attempts", vmv1alpha1.CloneFinalizer, rounds)
}

// domainError turns a refusal to touch a domain we do not own into a condition the user can act
// on; other errors pass through.
// domainName resolves, once per reconcile, the name of the clone's domain on this host: the
// name the agent recorded (its report, else the stored status), else vmv1alpha1.DomainNameOf.
// One case needs the host: an agent from before unique names (xc-<namespace>-<name>) may have
// started the domain and died before recording it. When nothing is recorded and no domain of
// the new name exists, a domain of the old name is the clone's if it carries the clone's UUID
// (the ownership rule every domain operation follows): it is taken up under that name, so an
// upgraded agent never starts a second domain on the same disk. A domain of the old name with
// another UUID (another clone's, from the collisions the old names had) is left alone.
func (r *CloneReconciler) domainName(ctx context.Context, s *cloneScope) (string, error) {
	if s.domain != "" {
		return s.domain, nil
	}
	if d := s.status.Domain; d != nil && d.Name != "" {
		s.domain = d.Name
		return s.domain, nil
	}
	name := vmv1alpha1.DomainNameOf(s.clone)
	recorded := s.clone.Status.Domain != nil && s.clone.Status.Domain.Name != ""
	if legacy := legacyDomainName(s.clone); !recorded && legacy != "" && legacy != name {
		adopt, err := r.ownsLegacyDomain(ctx, s, name, legacy)
		if err != nil {
			return "", err
		}
		if adopt {
			log.FromContext(ctx).Info("taking up the clone's domain under its pre-upgrade name", "vmclone", client.ObjectKeyFromObject(s.clone).String(), "domain", legacy, "newName", name)
			name = legacy
		}
	}
	s.domain = name
	return name, nil
}

// ownsLegacyDomain says whether the clone's domain runs under its legacy name: none of the new
// name exists, and one of the legacy name carries the clone's UUID.
func (r *CloneReconciler) ownsLegacyDomain(ctx context.Context, s *cloneScope, name, legacy string) (bool, error) {
	if _, found, err := r.Host.Hypervisor.Lookup(ctx, name); err != nil || found {
		if err != nil {
			return false, fmt.Errorf("look up domain %s: %w", name, err)
		}
		return false, nil
	}
	if _, found, err := r.Host.Hypervisor.Lookup(ctx, legacy); err != nil || !found {
		if err != nil {
			return false, fmt.Errorf("look up domain %s: %w", legacy, err)
		}
		return false, nil
	}
	_, err := r.Host.Hypervisor.Owner(ctx, legacy, s.clone.Status.UUID)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, xen.ErrNotOwned), errors.Is(err, xen.ErrNoSuchDomain):
		return false, nil
	}
	return false, fmt.Errorf("check owner of %s: %w", legacy, err)
}

func (r *CloneReconciler) domainError(s *cloneScope, name, op string, err error) error {
	if errors.Is(err, xen.ErrNotOwned) {
		s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, ReasonDomainConflict,
			fmt.Sprintf("a domain named %s runs on %s that this clone did not create (its UUID differs); it is left untouched: rename it, or set spec.domainName", name, r.NodeName))
		return nil
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

func runningMessage(name string, id int) string {
	return fmt.Sprintf("domain %s (id %d) running", name, id)
}

// startedByUs says whether the report proves the listed domain is the one this agent started
// for the clone: running by our own report, with the domain id we recorded. Domain ids are not
// reused while a domain lives, so the ownership check (xl list -l) need not be repeated.
func startedByUs(s *cloneScope, dom xen.DomainInfo) bool {
	d := s.status.Domain
	return d != nil && d.ID != 0 && int(d.ID) == dom.ID &&
		meta.IsStatusConditionTrue(s.status.Conditions, vmv1alpha1.ConditionDomainRunning)
}

// domainStatus is the report of a domain seen on the host. A live guest's r/b flags change all
// the time; the state last reported is kept while only they differ, so the status is written
// when the domain's life changes (started again, paused, shut down), not on every look.
func domainStatus(prev *vmv1alpha1.DomainStatus, name string, dom xen.DomainInfo) *vmv1alpha1.DomainStatus {
	ds := &vmv1alpha1.DomainStatus{Name: name, ID: int32(dom.ID), State: dom.State.String()}
	if prev != nil && prev.Name == ds.Name && prev.ID == ds.ID {
		if old, err := xen.ParseState(prev.State); err == nil && old.Lifecycle() == dom.State.Lifecycle() {
			ds.State = prev.State
		}
		// The same run of the domain: its VNC port (from its xenstore, ensureGuestReady) holds.
		ds.VNCPort = prev.VNCPort
	}
	return ds
}

// TerminatingReportAfter is how long a deleted clone's removal may go on before the agent
// reports it (phase Terminating, DomainRunning ShuttingDown): a delete that is done by then
// costs no status write that nobody would read (the object is gone a moment later), while one
// that waits on a slow guest, or fails, is shown. kubectl and kstatus see the deletion itself
// from metadata.deletionTimestamp meanwhile.
const TerminatingReportAfter = 5 * time.Second

// holdReport keeps the report of a deleted clone whose removal is waiting (on the guest's
// shutdown, or a dying domain) in memory instead of writing it, while the delete is younger
// than TerminatingReportAfter; the next reconcile builds on it (the grace period's start in
// DomainRunning included). It reports whether it held the report; a requeue at the end of the
// hold writes it. An agent restarted meanwhile starts from the stored report: it asks the
// guest to shut down again, and the grace period starts again.
//
// The hold is timed by the agent's own clock from its first hold, not from deletionTimestamp:
// an agent whose clock is behind the API server's would otherwise hold for the skew.
func (r *CloneReconciler) holdReport(s *cloneScope) bool {
	key := client.ObjectKeyFromObject(s.clone)
	now := r.Clock.Now()
	since := now
	if v, ok := r.reports.Load(key); ok {
		if w := v.(writtenReport); w.pending != nil && w.uid == s.clone.UID {
			since = w.heldSince
		}
	}
	left := since.Add(TerminatingReportAfter).Sub(now)
	if left <= 0 {
		return false
	}
	s.requeueAfter(left)
	s.status.ObservedBindingGeneration = s.clone.Status.BindingGeneration
	r.reports.Store(key, writtenReport{uid: s.clone.UID, status: *s.last.DeepCopy(), pending: s.status.DeepCopy(), heldSince: since})
	return true
}

// domainChangeFallback bounds a wait for a domain to change by itself (shut down, finish
// dying) when the domain watcher's event is what normally ends it.
const domainChangeFallback = 10 * time.Second

// awaitDomain makes the clone wait for its domain to change: the domain watcher looks at the
// host often until it does and wakes the clone then, instead of the clone polling on fixed
// requeues; fallback is a backstop (or the end of a grace period).
func (r *CloneReconciler) awaitDomain(s *cloneScope, name string, fallback time.Duration) {
	if r.expectDomain != nil {
		r.expectDomain(name)
	}
	s.requeueAfter(fallback)
}

func (r *CloneReconciler) capacityChanged() {
	if r.changed != nil {
		r.changed()
	}
}

func (r *CloneReconciler) event(obj *vmv1alpha1.VMClone, typ, reason, action, msgf string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, typ, reason, action, msgf, args...)
	}
}

func eventType(reason string) string {
	if reason == ReasonGuestCrashed {
		return corev1.EventTypeWarning
	}
	return corev1.EventTypeNormal
}

func summarize(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}
