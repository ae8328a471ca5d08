package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
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

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Reasons of VMClonePool conditions and events.
const (
	ReasonAllReady       = vmv1alpha1.ReasonAllMembersReady
	ReasonScaling        = vmv1alpha1.ReasonScaling
	ReasonMembersPending = vmv1alpha1.ReasonMembersNotReady
	ReasonMemberCreated  = vmv1alpha1.ReasonMemberCreated
	ReasonMemberDeleted  = vmv1alpha1.ReasonMemberDeleted
	ReasonMemberFailed   = vmv1alpha1.ReasonReplacingFailedMember
)

// VMClonePoolReconciler keeps spec.replicas clones of a template. Members are named
// <pool>-<index> with the lowest free index, so a create that the cache has not shown yet is
// idempotent (AlreadyExists) instead of a duplicate member.
type VMClonePoolReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	Opts     Options

	// refilled remembers the members whose creation → Ready was observed, so each is
	// counted once; an entry goes when its member is claimed or deleted.
	refilled sync.Map
}

// observeRefill records a member's creation → first Ready once.
func (r *VMClonePoolReconciler) observeRefill(c *vmv1alpha1.VMClone, readyAt time.Time) {
	if _, seen := r.refilled.LoadOrStore(c.UID, struct{}{}); seen {
		return
	}
	if d := readyAt.Sub(c.CreationTimestamp.Time); d >= 0 {
		poolRefillSeconds.Observe(d.Seconds())
	}
}

// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclonepools,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclonepools/finalizers,verbs=update
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclonepools/status,verbs=get;patch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclones,verbs=get;list;watch;create;delete

// PoolMember is a pool's clone as the pool's plan sees it.
type PoolMember struct {
	Name string
	// ResourceVersion is the member's as listed; deletions are preconditioned on it.
	ResourceVersion string
	Index           int
	Deleting        bool
	Failed          bool
	Ready           bool
	// Claimed members were handed to a VMClaim: they left the pool but hold their index
	// (their name) until they are gone.
	Claimed bool
	// Outdated members were made from an earlier spec.template (or warm state).
	Outdated bool
}

// PoolPolicy is what the plan needs from the pool's spec.
type PoolPolicy struct {
	Replicas      int
	ReplaceFailed bool
	// MaxMaking bounds members being made (created, not Ready) at once; 0 means no bound.
	MaxMaking int
	// Recreate replaces outdated unclaimed members (updateStrategy Recreate).
	Recreate bool
}

// PoolPlan is what to do to reach the wanted replicas.
type PoolPlan struct {
	// Create are the indices of new members.
	Create []int
	// Delete are members to delete: failed ones being replaced, then the surplus on
	// scale-down, then outdated ones being rolled out.
	Delete []string
	// Replace is the subset of Delete that failed.
	Replace []string
	// RollOut is the subset of Delete that is outdated (updateStrategy Recreate).
	RollOut []string
}

// PlanPool decides creations and deletions. Members being deleted and claimed members still
// hold their index (their name is taken until they are gone), so new members get the lowest
// index no clone holds. Members being made count against MaxMaking, so a burst of claims, a
// rollout or a pool that cannot be placed (its members stay Pending) adds at most that many at
// once. A scale-down drops outdated members first, then those not Ready, then the highest
// indices. A rollout (Recreate) deletes outdated members only from the budget left after
// refilling, so the pool stays as warm as the budget allows.
func PlanPool(pol PoolPolicy, members []PoolMember) PoolPlan {
	var plan PoolPlan
	used := map[int]bool{}
	var keep []PoolMember
	making := 0
	for _, m := range members {
		used[m.Index] = true
		switch {
		case m.Deleting || m.Claimed:
		case m.Failed && pol.ReplaceFailed:
			plan.Delete = append(plan.Delete, m.Name)
			plan.Replace = append(plan.Replace, m.Name)
		default:
			keep = append(keep, m)
			if !m.Ready {
				making++
			}
		}
	}
	if len(keep) > pol.Replicas {
		sort.Slice(keep, func(i, j int) bool {
			a, b := keep[i], keep[j]
			if a.Outdated != b.Outdated {
				return a.Outdated
			}
			if a.Ready != b.Ready {
				return !a.Ready
			}
			return a.Index > b.Index
		})
		for _, m := range keep[:len(keep)-pol.Replicas] {
			plan.Delete = append(plan.Delete, m.Name)
		}
		return plan
	}
	budget := pol.Replicas - len(keep)
	if pol.MaxMaking > 0 && pol.MaxMaking-making < budget {
		budget = max(pol.MaxMaking-making, 0)
	}
	for idx := 0; len(plan.Create) < budget; idx++ {
		if !used[idx] {
			plan.Create = append(plan.Create, idx)
			used[idx] = true
		}
	}
	if pol.Recreate {
		left := len(keep) // no bound: replace them all now
		if pol.MaxMaking > 0 {
			left = pol.MaxMaking - making - len(plan.Create)
		}
		for _, m := range keep {
			if left <= 0 {
				break
			}
			if m.Outdated {
				plan.Delete = append(plan.Delete, m.Name)
				plan.RollOut = append(plan.RollOut, m.Name)
				left--
			}
		}
	}
	return plan
}

// memberHostname is <hostname or pool name>-<index>, kept within a 63-character label.
func memberHostname(pool *vmv1alpha1.VMClonePool, index int) string {
	base := pool.Spec.Template.Spec.Hostname
	if base == "" {
		base = hostnameLabel(pool.Name)
	}
	suffix := "-" + strconv.Itoa(index)
	if len(base)+len(suffix) > 63 {
		base = base[:63-len(suffix)]
	}
	return base + suffix
}

// Reconcile fetches the pool, plans members against spec.replicas, applies the plan and the
// status.
func (r *VMClonePoolReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	pool := &vmv1alpha1.VMClonePool{}
	if err := r.Get(ctx, req.NamespacedName, pool); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("vmclonepool", req.NamespacedName))
	if !pool.DeletionTimestamp.IsZero() {
		poolMemberGauge.DeletePartialMatch(map[string]string{"namespace": pool.Namespace, "pool": pool.Name})
		return ctrl.Result{}, r.reconcileDelete(ctx, pool)
	}
	if added, err := r.ensureFinalizer(ctx, pool); err != nil || !added {
		return ctrl.Result{}, err
	}

	members, err := r.members(ctx, pool)
	if err != nil {
		return ctrl.Result{}, err
	}
	var claims vmv1alpha1.VMClaimList
	if err := r.List(ctx, &claims, client.InNamespace(pool.Namespace), client.MatchingFields{indexClaimPool: pool.Name}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list claims of pool %s: %w", pool.Name, err)
	}
	status := r.poolStatus(pool, members, claims.Items)
	for state, n := range map[string]int32{"warm": status.ReadyReplicas, "making": status.MakingReplicas, "claimed": status.ClaimedReplicas} {
		poolMemberGauge.WithLabelValues(pool.Namespace, pool.Name, state).Set(float64(n))
	}
	defer func() {
		if equality.Semantic.DeepEqual(*status, pool.Status) {
			return
		}
		if err := applyStatus(ctx, r.Client, r.Scheme, pool, status); err != nil && !apierrors.IsNotFound(err) {
			reterr = kerrors.NewAggregate([]error{reterr, err})
		}
	}()
	return ctrl.Result{}, r.ensureMembers(ctx, pool, members)
}

// ensureFinalizer adds the pool's finalizer. A merge patch replaces the whole list: without
// the resourceVersion precondition it would drop a finalizer another writer added since our
// cache's copy. It reports false when that copy was behind (the newer version's event brings
// the pool back).
func (r *VMClonePoolReconciler) ensureFinalizer(ctx context.Context, pool *vmv1alpha1.VMClonePool) (bool, error) {
	if controllerutil.ContainsFinalizer(pool, vmv1alpha1.PoolFinalizer) {
		return true, nil
	}
	patch := client.MergeFromWithOptions(pool.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.AddFinalizer(pool, vmv1alpha1.PoolFinalizer)
	if err := r.Patch(ctx, pool, patch); err != nil {
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return false, fmt.Errorf("add finalizer: %w", err)
	}
	return true, nil
}

// reconcileDelete deletes a deleted pool's members itself rather than leaving them to the
// garbage collector through owner references: the members' VMs go with the pool even where no
// garbage collector runs (the playground, envtest), and the finalizer shows the pool until
// they are gone.
func (r *VMClonePoolReconciler) reconcileDelete(ctx context.Context, pool *vmv1alpha1.VMClonePool) error {
	if !controllerutil.ContainsFinalizer(pool, vmv1alpha1.PoolFinalizer) {
		return nil
	}
	members, err := r.members(ctx, pool)
	if err != nil {
		return err
	}
	var errs []error
	var left []PoolMember
	for _, m := range members {
		if m.Claimed {
			continue // a claim's VM now: it goes with the claim, not the pool
		}
		left = append(left, m)
		if m.Deleting {
			continue
		}
		obj := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: pool.Namespace, Name: m.Name}}
		if err := r.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete member %s: %w", m.Name, err))
		}
	}
	if len(left) > 0 || len(errs) > 0 {
		// Members' deletions come back as events on the watch; the pool is reconciled then.
		return kerrors.NewAggregate(errs)
	}
	// No lock needed here: the API server refuses new finalizers on an object being deleted,
	// so the list this replaces can only have lost entries since our read, and re-adding one is
	// refused too.
	patch := client.MergeFrom(pool.DeepCopy())
	controllerutil.RemoveFinalizer(pool, vmv1alpha1.PoolFinalizer)
	if err := r.Patch(ctx, pool, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	return nil
}

// policyOf reads the plan's inputs from the pool's spec, with the CRD's defaults for objects
// written before they existed.
func policyOf(pool *vmv1alpha1.VMClonePool) PoolPolicy {
	pol := PoolPolicy{
		Replicas:      int(replicasOf(pool)),
		ReplaceFailed: pool.Spec.ReplaceFailed == nil || *pool.Spec.ReplaceFailed,
		MaxMaking:     DefaultPoolMaxMaking,
		Recreate:      pool.Spec.UpdateStrategy.Type != vmv1alpha1.PoolUpdateOnReplenish,
	}
	if pool.Spec.MaxMaking != nil && *pool.Spec.MaxMaking > 0 {
		pol.MaxMaking = int(*pool.Spec.MaxMaking)
	}
	return pol
}

// DefaultPoolMaxMaking is spec.maxMaking's CRD default.
const DefaultPoolMaxMaking = 10

func (r *VMClonePoolReconciler) ensureMembers(ctx context.Context, pool *vmv1alpha1.VMClonePool, members []PoolMember) error {
	plan := PlanPool(policyOf(pool), members)
	why := map[string]string{}
	for _, n := range plan.Replace {
		why[n] = "failed"
	}
	for _, n := range plan.RollOut {
		why[n] = "outdated"
	}
	var errs []error
	for _, name := range plan.Delete {
		m := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: pool.Namespace, Name: name}}
		// Preconditioned on the member still being unclaimed as we saw it: a claim that took
		// it since our cache's copy wins, and the member is not deleted from under it.
		if err := r.Delete(ctx, m, client.Preconditions{ResourceVersion: ptr.To(memberVersion(members, name))}); err != nil {
			if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				errs = append(errs, fmt.Errorf("delete member %s: %w", name, err))
			}
			continue
		}
		// The member is the event's related object: events of one reason and action on the
		// pool would otherwise merge into one series that keeps only the first member's note.
		switch why[name] {
		case "failed":
			r.Recorder.Eventf(pool, m, corev1.EventTypeWarning, ReasonMemberFailed, "Delete", "member %s failed: deleting it, a new member replaces it (spec.replaceFailed)", name)
		case "outdated":
			r.Recorder.Eventf(pool, m, corev1.EventTypeNormal, ReasonMemberDeleted, "Delete", "rolling out spec.template: deleted member %s of the previous template (updateStrategy Recreate)", name)
		default:
			r.Recorder.Eventf(pool, m, corev1.EventTypeNormal, ReasonMemberDeleted, "Delete", "scaled down: deleted member %s", name)
		}
	}
	for _, idx := range plan.Create {
		m, err := r.newMember(pool, idx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := r.Create(ctx, m, client.FieldOwner(FieldManager)); err != nil {
			if apierrors.IsAlreadyExists(err) {
				continue // created by an earlier reconcile the cache has not shown yet
			}
			errs = append(errs, fmt.Errorf("create member %s: %w", m.Name, err))
			r.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, vmv1alpha1.ReasonRefillFailed, "Create", "cannot create member %s: %v", m.Name, err)
			continue
		}
		r.Recorder.Eventf(pool, m, corev1.EventTypeNormal, ReasonMemberCreated, "Create", "created member %s", m.Name)
	}
	return kerrors.NewAggregate(errs)
}

func memberVersion(members []PoolMember, name string) string {
	for _, m := range members {
		if m.Name == name {
			return m.ResourceVersion
		}
	}
	return ""
}

// PoolTemplateHash is the hash of what a pool stamps onto a member: its spec.template and
// how members wait (warm state and pause). A member whose annotation differs is outdated.
func PoolTemplateHash(pool *vmv1alpha1.VMClonePool) string {
	b, _ := json.Marshal(struct {
		T vmv1alpha1.VMCloneTemplateSpec
		W vmv1alpha1.WarmState
		P *vmv1alpha1.PauseSpec
		H *bool
	}{pool.Spec.Template, warmStateOf(pool), pausedSpec(pool), pool.Spec.AppendIndexToHostname})
	h := fnv.New64a()
	_, _ = h.Write(b)
	return strconv.FormatUint(h.Sum64(), 36)
}

func warmStateOf(pool *vmv1alpha1.VMClonePool) vmv1alpha1.WarmState {
	if pool.Spec.WarmState == "" {
		return vmv1alpha1.WarmRunning
	}
	return pool.Spec.WarmState
}

// pausedSpec is the spec.pause a member of the pool gets: nil unless warmState is Paused.
func pausedSpec(pool *vmv1alpha1.VMClonePool) *vmv1alpha1.PauseSpec {
	if warmStateOf(pool) != vmv1alpha1.WarmPaused {
		return nil
	}
	if pool.Spec.Pause != nil {
		return pool.Spec.Pause.DeepCopy()
	}
	return &vmv1alpha1.PauseSpec{}
}

func (r *VMClonePoolReconciler) newMember(pool *vmv1alpha1.VMClonePool, idx int) (*vmv1alpha1.VMClone, error) {
	t := pool.Spec.Template
	m := &vmv1alpha1.VMClone{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   pool.Namespace,
			Name:        fmt.Sprintf("%s-%d", pool.Name, idx),
			Labels:      map[string]string{},
			Annotations: map[string]string{},
		},
		Spec: *t.Spec.DeepCopy(),
	}
	for k, v := range t.Metadata.Labels {
		m.Labels[k] = v
	}
	for k, v := range t.Metadata.Annotations {
		m.Annotations[k] = v
	}
	m.Labels[vmv1alpha1.PoolLabel] = pool.Name
	m.Labels[vmv1alpha1.PoolIndexLabel] = strconv.Itoa(idx)
	m.Annotations[vmv1alpha1.PoolTemplateHashAnnotation] = PoolTemplateHash(pool)
	if pool.Spec.AppendIndexToHostname == nil || *pool.Spec.AppendIndexToHostname {
		m.Spec.Hostname = memberHostname(pool, idx)
	}
	m.Spec.Pause = pausedSpec(pool)
	if err := controllerutil.SetControllerReference(pool, m, r.Scheme); err != nil {
		return nil, fmt.Errorf("own member %s: %w", m.Name, err)
	}
	return m, nil
}

// members lists the pool's clones (by label): those it controls, and those it handed to a
// claim (controlled by the claim, ClaimLabel set), which keep their index until they are gone.
func (r *VMClonePoolReconciler) members(ctx context.Context, pool *vmv1alpha1.VMClonePool) ([]PoolMember, error) {
	var list vmv1alpha1.VMCloneList
	if err := r.List(ctx, &list, client.InNamespace(pool.Namespace), client.MatchingLabels{vmv1alpha1.PoolLabel: pool.Name}); err != nil {
		return nil, fmt.Errorf("list members of pool %s: %w", pool.Name, err)
	}
	hash := PoolTemplateHash(pool)
	var out []PoolMember
	for i := range list.Items {
		c := &list.Items[i]
		claimed := c.Labels[vmv1alpha1.ClaimLabel] != ""
		if !claimed && !metav1.IsControlledBy(c, pool) {
			continue
		}
		if claimed || !c.DeletionTimestamp.IsZero() {
			r.refilled.Delete(c.UID)
		}
		idx, err := strconv.Atoi(c.Labels[vmv1alpha1.PoolIndexLabel])
		if err != nil || idx < 0 {
			continue
		}
		ready := meta.FindStatusCondition(c.Status.Conditions, vmv1alpha1.ConditionReady)
		if ready != nil && ready.Status == metav1.ConditionTrue && !claimed {
			r.observeRefill(c, ready.LastTransitionTime.Time)
		}
		out = append(out, PoolMember{
			Name:            c.Name,
			ResourceVersion: c.ResourceVersion,
			Index:           idx,
			Deleting:        !c.DeletionTimestamp.IsZero(),
			Failed:          c.HostReportCurrent() && c.Status.Phase == vmv1alpha1.PhaseFailed,
			Ready:           meta.IsStatusConditionTrue(c.Status.Conditions, vmv1alpha1.ConditionReady),
			Claimed:         claimed,
			Outdated:        c.Annotations[vmv1alpha1.PoolTemplateHashAnnotation] != hash,
		})
	}
	return out, nil
}

func replicasOf(pool *vmv1alpha1.VMClonePool) int32 {
	if pool.Spec.Replicas == nil {
		return 1
	}
	return *pool.Spec.Replicas
}

// poolStatus counts members (those not being deleted) by state, the clones handed out, and
// the pool's claims by how they were bound, and says whether all wanted members are Ready.
func (r *VMClonePoolReconciler) poolStatus(pool *vmv1alpha1.VMClonePool, members []PoolMember, claims []vmv1alpha1.VMClaim) *vmv1alpha1.VMClonePoolStatus {
	st := pool.Status.DeepCopy()
	st.ObservedGeneration = pool.Generation
	st.Selector = poolSelector(pool)
	st.Replicas, st.ReadyReplicas, st.MakingReplicas, st.UpdatedReplicas, st.ClaimedReplicas = 0, 0, 0, 0, 0
	outdated := 0
	for _, m := range members {
		switch {
		case m.Claimed:
			st.ClaimedReplicas++
			continue
		case m.Deleting:
			continue
		}
		st.Replicas++
		if m.Ready {
			st.ReadyReplicas++
		} else {
			st.MakingReplicas++
		}
		if m.Outdated {
			outdated++
		} else {
			st.UpdatedReplicas++
		}
	}
	st.WarmHits, st.ColdClaims, st.WarmHitPercent = 0, 0, nil
	for i := range claims {
		switch claims[i].Status.Source {
		case vmv1alpha1.SourceWarm:
			st.WarmHits++
		case vmv1alpha1.SourceCold:
			st.ColdClaims++
		}
	}
	if n := st.WarmHits + st.ColdClaims; n > 0 {
		st.WarmHitPercent = ptr.To(st.WarmHits * 100 / n)
	}
	want := replicasOf(pool)
	cond := metav1.Condition{Type: vmv1alpha1.ConditionReady, ObservedGeneration: pool.Generation}
	switch {
	case outdated > 0 && policyOf(pool).Recreate:
		cond.Status, cond.Reason = metav1.ConditionFalse, vmv1alpha1.ReasonRollingOut
		cond.Message = fmt.Sprintf("%d of %d members made from the current spec.template; replacing the others, at most spec.maxMaking at a time", st.UpdatedReplicas, st.Replicas)
	case st.Replicas != want:
		cond.Status, cond.Reason = metav1.ConditionFalse, ReasonScaling
		cond.Message = fmt.Sprintf("%d of %d members exist (%d being made); scaling to spec.replicas", st.Replicas, want, st.MakingReplicas)
	case st.ReadyReplicas < want:
		cond.Status, cond.Reason = metav1.ConditionFalse, ReasonMembersPending
		cond.Message = fmt.Sprintf("%d of %d members ready: see the members' Ready conditions (kubectl get vmc -l %s)", st.ReadyReplicas, want, st.Selector)
	default:
		cond.Status, cond.Reason = metav1.ConditionTrue, ReasonAllReady
		cond.Message = fmt.Sprintf("all %d members ready", want)
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	return st
}

// poolSelector selects the pool's unclaimed members (the scale subresource's selector).
func poolSelector(pool *vmv1alpha1.VMClonePool) string {
	return vmv1alpha1.PoolLabel + "=" + pool.Name + ",!" + vmv1alpha1.ClaimLabel
}

func (r *VMClonePoolReconciler) setupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&vmv1alpha1.VMClonePool{}).
		Named("vmclonepool").
		Owns(&vmv1alpha1.VMClone{}).
		// A claim bound (warm or cold) changes the pool's hit counts.
		Watches(&vmv1alpha1.VMClaim{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			c := o.(*vmv1alpha1.VMClaim)
			if c.Spec.PoolRef == nil {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Spec.PoolRef.Name}}}
		}), builder.WithPredicates(claimSourceChanged{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Opts.MaxConcurrentReconciles}).
		Complete(r)
}

// claimSourceChanged passes a claim's creation, deletion and changes of status.source.
type claimSourceChanged struct{ predicate.Funcs }

func (claimSourceChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*vmv1alpha1.VMClaim)
	n, ok2 := e.ObjectNew.(*vmv1alpha1.VMClaim)
	return !ok1 || !ok2 || o.Status.Source != n.Status.Source
}
