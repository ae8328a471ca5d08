package controllers

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

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
}

// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclonepools,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclonepools/finalizers,verbs=update
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclonepools/status,verbs=get;patch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclones,verbs=get;list;watch;create;delete

// PoolMember is a pool's clone as the pool's plan sees it.
type PoolMember struct {
	Name     string
	Index    int
	Deleting bool
	Failed   bool
	Ready    bool
}

// PoolPlan is what to do to reach the wanted replicas.
type PoolPlan struct {
	// Create are the indices of new members.
	Create []int
	// Delete are members to delete: failed ones being replaced, then the highest indices on
	// scale-down.
	Delete []string
	// Replace is the subset of Delete that failed.
	Replace []string
}

// PlanPool decides creations and deletions. Members being deleted still hold their index
// (their name is taken until they are gone), so new members get the lowest index no member
// holds.
func PlanPool(replicas int, members []PoolMember, replaceFailed bool) PoolPlan {
	var plan PoolPlan
	used := map[int]bool{}
	var keep []PoolMember
	for _, m := range members {
		used[m.Index] = true
		switch {
		case m.Deleting:
		case m.Failed && replaceFailed:
			plan.Delete = append(plan.Delete, m.Name)
			plan.Replace = append(plan.Replace, m.Name)
		default:
			keep = append(keep, m)
		}
	}
	if len(keep) > replicas {
		sort.Slice(keep, func(i, j int) bool { return keep[i].Index > keep[j].Index })
		for _, m := range keep[:len(keep)-replicas] {
			plan.Delete = append(plan.Delete, m.Name)
		}
		return plan
	}
	for idx := 0; len(plan.Create) < replicas-len(keep); idx++ {
		if !used[idx] {
			plan.Create = append(plan.Create, idx)
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
		return ctrl.Result{}, r.reconcileDelete(ctx, pool)
	}
	if added, err := r.ensureFinalizer(ctx, pool); err != nil || !added {
		return ctrl.Result{}, err
	}

	members, err := r.members(ctx, pool)
	if err != nil {
		return ctrl.Result{}, err
	}
	status := r.poolStatus(pool, members)
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
	for _, m := range members {
		if m.Deleting {
			continue
		}
		obj := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: pool.Namespace, Name: m.Name}}
		if err := r.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete member %s: %w", m.Name, err))
		}
	}
	if len(members) > 0 || len(errs) > 0 {
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

func (r *VMClonePoolReconciler) ensureMembers(ctx context.Context, pool *vmv1alpha1.VMClonePool, members []PoolMember) error {
	replaceFailed := pool.Spec.ReplaceFailed == nil || *pool.Spec.ReplaceFailed
	plan := PlanPool(int(replicasOf(pool)), members, replaceFailed)
	replacing := map[string]bool{}
	for _, n := range plan.Replace {
		replacing[n] = true
	}
	var errs []error
	for _, name := range plan.Delete {
		m := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: pool.Namespace, Name: name}}
		if err := r.Delete(ctx, m); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete member %s: %w", name, err))
			continue
		}
		// The member is the event's related object: events of one reason and action on the
		// pool would otherwise merge into one series that keeps only the first member's note.
		if replacing[name] {
			r.Recorder.Eventf(pool, m, corev1.EventTypeWarning, ReasonMemberFailed, "Delete", "member %s failed: deleting it, a new member replaces it (spec.replaceFailed)", name)
		} else {
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
			continue
		}
		r.Recorder.Eventf(pool, m, corev1.EventTypeNormal, ReasonMemberCreated, "Create", "created member %s", m.Name)
	}
	return kerrors.NewAggregate(errs)
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
	if pool.Spec.AppendIndexToHostname == nil || *pool.Spec.AppendIndexToHostname {
		m.Spec.Hostname = memberHostname(pool, idx)
	}
	if err := controllerutil.SetControllerReference(pool, m, r.Scheme); err != nil {
		return nil, fmt.Errorf("own member %s: %w", m.Name, err)
	}
	return m, nil
}

// members lists the clones this pool controls (by label, confirmed by owner reference).
func (r *VMClonePoolReconciler) members(ctx context.Context, pool *vmv1alpha1.VMClonePool) ([]PoolMember, error) {
	var list vmv1alpha1.VMCloneList
	if err := r.List(ctx, &list, client.InNamespace(pool.Namespace), client.MatchingLabels{vmv1alpha1.PoolLabel: pool.Name}); err != nil {
		return nil, fmt.Errorf("list members of pool %s: %w", pool.Name, err)
	}
	var out []PoolMember
	for i := range list.Items {
		c := &list.Items[i]
		if !metav1.IsControlledBy(c, pool) {
			continue
		}
		idx, err := strconv.Atoi(c.Labels[vmv1alpha1.PoolIndexLabel])
		if err != nil || idx < 0 {
			continue
		}
		out = append(out, PoolMember{
			Name:     c.Name,
			Index:    idx,
			Deleting: !c.DeletionTimestamp.IsZero(),
			Failed:   c.HostReportCurrent() && c.Status.Phase == vmv1alpha1.PhaseFailed,
			Ready:    meta.IsStatusConditionTrue(c.Status.Conditions, vmv1alpha1.ConditionReady),
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

// poolStatus counts members (those not being deleted) and says whether all wanted are Ready.
func (r *VMClonePoolReconciler) poolStatus(pool *vmv1alpha1.VMClonePool, members []PoolMember) *vmv1alpha1.VMClonePoolStatus {
	st := pool.Status.DeepCopy()
	st.ObservedGeneration = pool.Generation
	st.Selector = labels.SelectorFromSet(labels.Set{vmv1alpha1.PoolLabel: pool.Name}).String()
	st.Replicas, st.ReadyReplicas = 0, 0
	for _, m := range members {
		if m.Deleting {
			continue
		}
		st.Replicas++
		if m.Ready {
			st.ReadyReplicas++
		}
	}
	want := replicasOf(pool)
	cond := metav1.Condition{Type: vmv1alpha1.ConditionReady, ObservedGeneration: pool.Generation}
	switch {
	case st.Replicas != want:
		cond.Status, cond.Reason = metav1.ConditionFalse, ReasonScaling
		cond.Message = fmt.Sprintf("%d of %d members exist; scaling to spec.replicas", st.Replicas, want)
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

func (r *VMClonePoolReconciler) setupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&vmv1alpha1.VMClonePool{}).
		Named("vmclonepool").
		Owns(&vmv1alpha1.VMClone{}).
		Complete(r)
}
