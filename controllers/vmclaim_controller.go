package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
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
	toolscache "k8s.io/client-go/tools/cache"
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

// Handing a warm member to a claim.
//
// The handover is one merge patch of the member, preconditioned on the resourceVersion the
// claim saw it unclaimed at: it adds ClaimLabel, makes the claim its controller in place of
// the pool, drops spec.pause (a paused member resumes) and sets spec.guestData. The API
// server's optimistic concurrency is what makes two claims never get the same member: the
// second patch of one version fails with a conflict, and that claim tries another member.
// Nothing else is needed for correctness; the in-memory `taken` set only spares workers the
// conflicts of members the cache still shows unclaimed for a few milliseconds after a
// handover. The claim's own status (cloneName) is written after the handover; a controller
// that dies in between finds the member by its ClaimLabel and owner reference and finishes.

// Field index of VMClaims by the pool they name (spec.poolRef.name); "" for template claims.
const indexClaimPool = "spec.poolRef.name"

// Field index of unbound VMClaims by the pool they name, so a member turning Ready wakes only
// the claims waiting for that pool.
const indexClaimWaiting = "waitingOnPool"

// VMClaimReconciler binds claims to warm pool members or cold clones, mirrors their clones'
// state, ends their lifetime and deletes their clones with them.
type VMClaimReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	Opts     Options
	// Live reads the API server, uncached: a clone missing from the cache is confirmed gone
	// there before a claim is marked CloneLost (the clone's informer may lag the claim's).
	Live client.Reader

	mu sync.Mutex
	// firstSeen is when this controller first saw each unbound claim: bind latency is
	// measured from it (creationTimestamp has only second precision).
	firstSeen map[types.UID]time.Time
	// taken is the members this controller handed over that its cache may still show
	// unclaimed, with when: they are skipped by other claims until the cache catches up.
	taken map[types.NamespacedName]time.Time
	// bindings are the bindings this controller wrote that its cache may not show yet (the
	// claim's own finalizer write brings it back at once, often before its status write is
	// in the cache): without them such a reconcile would bind the claim a second time.
	bindings map[types.UID]vmv1alpha1.VMClaimStatus
}

// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclaims,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclaims/finalizers,verbs=update
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclaims/status,verbs=get;patch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclones,verbs=get;list;watch;create;patch;delete

// takenTTL bounds how long a handed-over member is skipped on the word of this controller
// alone; the cache shows the handover within milliseconds.
const takenTTL = 30 * time.Second

func newClaimReconciler(c client.Client, live client.Reader, scheme *runtime.Scheme, rec events.EventRecorder, opts Options) *VMClaimReconciler {
	return &VMClaimReconciler{Client: c, Live: live, Scheme: scheme, Recorder: rec, Opts: opts,
		firstSeen: map[types.UID]time.Time{}, taken: map[types.NamespacedName]time.Time{},
		bindings: map[types.UID]vmv1alpha1.VMClaimStatus{}}
}

// Reconcile binds an unbound claim, then keeps its status in step with its clone.
func (r *VMClaimReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	claim := &vmv1alpha1.VMClaim{}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("vmclaim", req.NamespacedName))
	if err := r.Get(ctx, req.NamespacedName, claim); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.deleteOrphans(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, err
	}
	if !claim.DeletionTimestamp.IsZero() {
		r.forget(claim.UID)
		return ctrl.Result{}, r.reconcileDelete(ctx, claim)
	}
	now := r.Opts.Clock.Now()
	if claim.Status.CloneName == "" {
		r.seen(claim, now)
	}
	status := claim.Status.DeepCopy()
	status.ObservedGeneration = claim.Generation
	r.recallBinding(claim, status)
	if !controllerutil.ContainsFinalizer(claim, vmv1alpha1.ClaimFinalizer) {
		// The finalizer makes deleting the claim delete its VM where no garbage collector
		// runs (the playground, envtest) and keeps the claim visible until the VM is gone.
		// It stays off a binding's path: a reconcile that binds writes the handover and the
		// status only (two writes), and the status write's event brings the claim back, when
		// the finalizer is applied. It runs after the status (registered first, so it runs
		// last). A claim deleted in between goes at once, and deleteOrphans deletes its clone.
		defer func() {
			if reterr != nil || (status.CloneName != "" && claim.Status.CloneName == "") {
				return
			}
			if err := applyFinalizer(ctx, r.Client, r.Scheme, claim, vmv1alpha1.ClaimFinalizer); err != nil && !apierrors.IsNotFound(err) {
				reterr = err
			}
		}()
	}
	defer func() {
		setClaimKStatus(status, claim)
		if equality.Semantic.DeepEqual(*status, claim.Status) {
			return
		}
		if err := applyStatus(ctx, r.Client, r.Scheme, claim, status); err != nil && !apierrors.IsNotFound(err) {
			reterr = kerrors.NewAggregate([]error{reterr, err})
			return
		}
		if status.CloneName != "" && claim.Status.CloneName == "" {
			r.rememberBinding(claim.UID, status)
		}
	}()

	clone, err := r.boundClone(ctx, claim, status)
	if err != nil {
		return ctrl.Result{}, err
	}
	if clone == nil && status.CloneName == "" {
		clone, err = r.bind(ctx, claim, status, now)
		if errors.Is(err, errRetryHandover) {
			// Not an error to log: other claims were faster; the cache catches up in ms.
			return ctrl.Result{RequeueAfter: handoverRetry}, nil
		}
		if err != nil || clone == nil {
			setClaimReady(status, claim.Generation, nil, nil)
			return ctrl.Result{}, err
		}
	}
	if clone == nil {
		// Bound, and the clone is gone without the claim being deleted.
		setClaimCondition(status, claim.Generation, vmv1alpha1.ConditionBound, metav1.ConditionFalse, vmv1alpha1.ReasonCloneLost,
			fmt.Sprintf("clone %s was deleted, not by deleting this claim: delete the claim and claim again", status.CloneName))
		setClaimReady(status, claim.Generation, nil, nil)
		return ctrl.Result{}, nil
	}
	if b := meta.FindStatusCondition(status.Conditions, vmv1alpha1.ConditionBound); b == nil || b.Status != metav1.ConditionTrue {
		// A CloneLost that turned out wrong, or a binding recovered from the clone's label.
		reason := vmv1alpha1.ReasonClaimedWarm
		if status.Source == vmv1alpha1.SourceCold {
			reason = vmv1alpha1.ReasonCreatedCold
		}
		setClaimCondition(status, claim.Generation, vmv1alpha1.ConditionBound, metav1.ConditionTrue, reason, fmt.Sprintf("bound to clone %s", clone.Name))
	}
	mirrorClone(status, clone)
	return r.lifetime(ctx, claim, status, clone, now)
}

// seen records the first sight of an unbound claim.
func (r *VMClaimReconciler) seen(claim *vmv1alpha1.VMClaim, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.firstSeen[claim.UID]; !ok {
		r.firstSeen[claim.UID] = now
	}
}

func (r *VMClaimReconciler) forget(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.firstSeen, uid)
	delete(r.bindings, uid)
}

// rememberBinding keeps the binding just written until the cache shows it.
func (r *VMClaimReconciler) rememberBinding(uid types.UID, st *vmv1alpha1.VMClaimStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := vmv1alpha1.VMClaimStatus{CloneName: st.CloneName, Source: st.Source, BoundTime: st.BoundTime, BindMilliseconds: st.BindMilliseconds}
	if c := meta.FindStatusCondition(st.Conditions, vmv1alpha1.ConditionBound); c != nil {
		b.Conditions = []metav1.Condition{*c}
	}
	r.bindings[uid] = b
}

// recallBinding fills a binding the cache's copy of the claim does not show yet into status;
// once the cache shows it, the memory goes.
func (r *VMClaimReconciler) recallBinding(claim *vmv1alpha1.VMClaim, status *vmv1alpha1.VMClaimStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.bindings[claim.UID]
	if !ok {
		return
	}
	if claim.Status.CloneName != "" {
		delete(r.bindings, claim.UID)
		return
	}
	status.CloneName, status.Source, status.BoundTime, status.BindMilliseconds = b.CloneName, b.Source, b.BoundTime, b.BindMilliseconds
	for _, c := range b.Conditions {
		meta.SetStatusCondition(&status.Conditions, c)
	}
}

// boundClone finds the claim's clone: the one status.cloneName names, or, before that was
// written, one handed to it (ClaimLabel and its owner reference). It fills status.cloneName
// for the latter.
func (r *VMClaimReconciler) boundClone(ctx context.Context, claim *vmv1alpha1.VMClaim, status *vmv1alpha1.VMClaimStatus) (*vmv1alpha1.VMClone, error) {
	if status.CloneName != "" {
		key := types.NamespacedName{Namespace: claim.Namespace, Name: status.CloneName}
		c := &vmv1alpha1.VMClone{}
		err := r.Get(ctx, key, c)
		if apierrors.IsNotFound(err) && r.Live != nil {
			err = r.Live.Get(ctx, key, c)
		}
		if apierrors.IsNotFound(err) || (err == nil && !metav1.IsControlledBy(c, claim)) {
			return nil, nil
		}
		return c, err
	}
	var list vmv1alpha1.VMCloneList
	if err := r.List(ctx, &list, client.InNamespace(claim.Namespace), client.MatchingLabels{vmv1alpha1.ClaimLabel: claim.Name}); err != nil {
		return nil, fmt.Errorf("list clones of claim: %w", err)
	}
	for i := range list.Items {
		if c := &list.Items[i]; metav1.IsControlledBy(c, claim) {
			src := vmv1alpha1.SourceCold
			if _, ok := c.Labels[vmv1alpha1.PoolIndexLabel]; ok {
				src = vmv1alpha1.SourceWarm
			}
			r.markBound(claim, status, c, src, r.Opts.Clock.Now())
			return c, nil
		}
	}
	return nil, nil
}

// bind hands the claim a warm member, or (fallback Cold) a new clone. It returns nil while
// the claim waits.
func (r *VMClaimReconciler) bind(ctx context.Context, claim *vmv1alpha1.VMClaim, status *vmv1alpha1.VMClaimStatus, now time.Time) (*vmv1alpha1.VMClone, error) {
	var spec vmv1alpha1.VMCloneSpec
	if ref := claim.Spec.TemplateRef; ref != nil {
		tmpl := &vmv1alpha1.VMTemplate{}
		if err := r.Get(ctx, types.NamespacedName{Name: ref.Name}, tmpl); err != nil {
			if apierrors.IsNotFound(err) {
				setClaimCondition(status, claim.Generation, vmv1alpha1.ConditionBound, metav1.ConditionFalse, vmv1alpha1.ReasonTemplateNotFound,
					fmt.Sprintf("VMTemplate %s does not exist: create it, or recreate the claim with an existing spec.templateRef", ref.Name))
				return nil, nil
			}
			return nil, err
		}
		spec = vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: ref.Name}}
		return r.createCold(ctx, claim, status, nil, spec, now)
	}
	pool := &vmv1alpha1.VMClonePool{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: claim.Namespace, Name: claim.Spec.PoolRef.Name}, pool); err != nil {
		if apierrors.IsNotFound(err) {
			setClaimCondition(status, claim.Generation, vmv1alpha1.ConditionBound, metav1.ConditionFalse, vmv1alpha1.ReasonPoolNotFound,
				fmt.Sprintf("VMClonePool %s does not exist in namespace %s: create it, or recreate the claim with an existing spec.poolRef", claim.Spec.PoolRef.Name, claim.Namespace))
			return nil, nil
		}
		return nil, err
	}
	if !pool.DeletionTimestamp.IsZero() {
		setClaimCondition(status, claim.Generation, vmv1alpha1.ConditionBound, metav1.ConditionFalse, vmv1alpha1.ReasonPoolNotFound,
			fmt.Sprintf("VMClonePool %s is being deleted and hands out nothing", pool.Name))
		return nil, nil
	}
	clone, err := r.takeWarm(ctx, claim, pool)
	if err != nil || clone != nil {
		if clone != nil {
			r.markBound(claim, status, clone, vmv1alpha1.SourceWarm, r.Opts.Clock.Now())
			claimsBound.WithLabelValues(string(vmv1alpha1.SourceWarm)).Inc()
			r.Recorder.Eventf(claim, clone, corev1.EventTypeNormal, vmv1alpha1.ReasonClaimedWarm, "Claim", "claimed warm member %s of pool %s in %d ms", clone.Name, pool.Name, ptr.Deref(status.BindMilliseconds, 0))
		}
		return clone, err
	}
	if claim.Spec.Fallback == vmv1alpha1.FallbackWait {
		setClaimCondition(status, claim.Generation, vmv1alpha1.ConditionBound, metav1.ConditionFalse, vmv1alpha1.ReasonWaitingForWarmMember,
			fmt.Sprintf("no warm member of pool %s is free; waiting for the next one (spec.fallback: Wait)", pool.Name))
		return nil, nil
	}
	spec = *pool.Spec.Template.Spec.DeepCopy()
	return r.createCold(ctx, claim, status, pool, spec, now)
}

// warmCandidates are the pool's members a claim may take, best first: Ready, unclaimed, not
// being deleted, members of the current template before outdated ones; within each group the
// order starts at a point taken from the claim's UID, so concurrent claims try different
// members instead of all racing for the first.
func warmCandidates(pool *vmv1alpha1.VMClonePool, clones []vmv1alpha1.VMClone, claimUID types.UID, skip func(string) bool) []*vmv1alpha1.VMClone {
	hash := PoolTemplateHash(pool)
	var current, outdated []*vmv1alpha1.VMClone
	for i := range clones {
		c := &clones[i]
		if !metav1.IsControlledBy(c, pool) || c.Labels[vmv1alpha1.ClaimLabel] != "" || !c.DeletionTimestamp.IsZero() ||
			!meta.IsStatusConditionTrue(c.Status.Conditions, vmv1alpha1.ConditionReady) || skip(c.Name) {
			continue
		}
		if c.Annotations[vmv1alpha1.PoolTemplateHashAnnotation] == hash {
			current = append(current, c)
		} else {
			outdated = append(outdated, c)
		}
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(claimUID))
	spin := func(l []*vmv1alpha1.VMClone) []*vmv1alpha1.VMClone {
		if len(l) == 0 {
			return l
		}
		sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
		k := int(h.Sum32() % uint32(len(l)))
		return append(l[k:], l[:k]...)
	}
	return append(spin(current), spin(outdated)...)
}

// handoverRetry is how soon a claim whose every try lost to another claim looks again.
const handoverRetry = 20 * time.Millisecond

// maxHandoverTries bounds the members one reconcile tries after conflicts (another claim won
// each); the claim is requeued after that, by which time the cache shows who took what.
const maxHandoverTries = 8

// takeWarm hands the claim one of the pool's warm members, or returns nil if none is free.
func (r *VMClaimReconciler) takeWarm(ctx context.Context, claim *vmv1alpha1.VMClaim, pool *vmv1alpha1.VMClonePool) (*vmv1alpha1.VMClone, error) {
	var list vmv1alpha1.VMCloneList
	// Read-only: every claim of a burst lists all members, and copying each of them every
	// time cost more than the handover; only the member patched is copied.
	if err := r.List(ctx, &list, client.InNamespace(pool.Namespace), client.MatchingLabels{vmv1alpha1.PoolLabel: pool.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list members of pool %s: %w", pool.Name, err)
	}
	cands := warmCandidates(pool, list.Items, claim.UID, func(name string) bool {
		return r.isTaken(types.NamespacedName{Namespace: pool.Namespace, Name: name})
	})
	conflicts := 0
	for _, cand := range cands {
		if conflicts >= maxHandoverTries {
			return nil, errRetryHandover
		}
		m := cand.DeepCopy()
		patch := client.MergeFromWithOptions(cand, client.MergeFromWithOptimisticLock{})
		handOver(m, claim, r.Scheme)
		if err := r.Patch(ctx, m, patch, client.FieldOwner(FieldManager)); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				conflicts++
				continue
			}
			return nil, fmt.Errorf("hand member %s to the claim: %w", m.Name, err)
		}
		r.markTaken(types.NamespacedName{Namespace: m.Namespace, Name: m.Name})
		return m, nil
	}
	if conflicts > 0 {
		// Every free member we saw was taken meanwhile: the cache is behind, not the pool
		// empty. Look again once it has caught up rather than falling back to a cold clone.
		return nil, errRetryHandover
	}
	return nil, nil
}

// errRetryHandover makes the claim be retried (with the controller's backoff) when every
// member it tried was taken by another claim first.
var errRetryHandover = errors.New("every free warm member this claim tried was taken by another claim first; retrying")

// handOver makes m the claim's: the claim its controller instead of the pool, its label, no
// pause (a paused member resumes), the claim's data.
func handOver(m *vmv1alpha1.VMClone, claim *vmv1alpha1.VMClaim, scheme *runtime.Scheme) {
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	m.Labels[vmv1alpha1.ClaimLabel] = claim.Name
	var refs []metav1.OwnerReference
	for _, ref := range m.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			refs = append(refs, ref)
		}
	}
	m.OwnerReferences = refs
	_ = controllerutil.SetControllerReference(claim, m, scheme)
	m.Spec.Pause = nil
	m.Spec.GuestData = claim.Spec.Data.DeepCopy()
	// A member's own lifetime bounds how long it may wait warm; once claimed, the claim's
	// lifetime (counted from binding) is the VM's.
	m.Spec.Lifetime = nil
}

func (r *VMClaimReconciler) isTaken(k types.NamespacedName) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.taken[k]
	if ok && r.Opts.Clock.Since(at) > takenTTL {
		delete(r.taken, k)
		return false
	}
	return ok
}

func (r *VMClaimReconciler) markTaken(k types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.taken[k] = r.Opts.Clock.Now()
	// Entries only matter for milliseconds; drop old ones so the map stays small.
	for n, at := range r.taken {
		if r.Opts.Clock.Since(at) > takenTTL {
			delete(r.taken, n)
		}
	}
}

// ColdCloneName is the name of a claim's cold clone: the claim's name and a hash of its UID,
// so a retry after a lost reply creates nothing twice, and a pool member's name
// (<pool>-<index>) is never hit.
func ColdCloneName(claim *vmv1alpha1.VMClaim) string {
	sum := sha256.Sum256([]byte(claim.UID))
	suffix := "-" + hex.EncodeToString(sum[:])[:5]
	base := claim.Name
	if len(base)+len(suffix) > 63 {
		base = base[:63-len(suffix)]
	}
	return base + suffix
}

// createCold makes the claim a new clone of spec (the pool's member template, or a template).
func (r *VMClaimReconciler) createCold(ctx context.Context, claim *vmv1alpha1.VMClaim, status *vmv1alpha1.VMClaimStatus, pool *vmv1alpha1.VMClonePool, spec vmv1alpha1.VMCloneSpec, now time.Time) (*vmv1alpha1.VMClone, error) {
	c := &vmv1alpha1.VMClone{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: claim.Namespace,
			Name:      ColdCloneName(claim),
			Labels:    map[string]string{vmv1alpha1.ClaimLabel: claim.Name},
		},
		Spec: spec,
	}
	if pool != nil {
		for k, v := range pool.Spec.Template.Metadata.Labels {
			c.Labels[k] = v
		}
		c.Annotations = map[string]string{}
		for k, v := range pool.Spec.Template.Metadata.Annotations {
			c.Annotations[k] = v
		}
	}
	c.Spec.Pause = nil
	c.Spec.GuestData = claim.Spec.Data.DeepCopy()
	c.Spec.Lifetime = nil // the claim's lifetime is the VM's
	if err := controllerutil.SetControllerReference(claim, c, r.Scheme); err != nil {
		return nil, fmt.Errorf("own clone %s: %w", c.Name, err)
	}
	if err := r.Create(ctx, c, client.FieldOwner(FieldManager)); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create clone %s: %w", c.Name, err)
		}
		if err := r.Get(ctx, client.ObjectKeyFromObject(c), c); err != nil {
			return nil, err
		}
		if !metav1.IsControlledBy(c, claim) {
			return nil, fmt.Errorf("clone %s exists and is not this claim's: delete or rename it", c.Name)
		}
	}
	r.markBound(claim, status, c, vmv1alpha1.SourceCold, r.Opts.Clock.Now())
	claimsBound.WithLabelValues(string(vmv1alpha1.SourceCold)).Inc()
	from := "template " + spec.TemplateRef.Name
	if pool != nil {
		from = fmt.Sprintf("pool %s's template (no warm member was free; spec.fallback: Cold)", pool.Name)
		r.Recorder.Eventf(claim, c, corev1.EventTypeNormal, vmv1alpha1.ReasonColdFallback, "Claim", "created clone %s from %s", c.Name, from)
	}
	return c, nil
}

// markBound fills the binding into the claim's status (once).
func (r *VMClaimReconciler) markBound(claim *vmv1alpha1.VMClaim, status *vmv1alpha1.VMClaimStatus, c *vmv1alpha1.VMClone, src vmv1alpha1.ClaimSource, now time.Time) {
	status.CloneName = c.Name
	status.Source = src
	status.BoundTime = ptr.To(metav1.NewMicroTime(now))
	r.mu.Lock()
	from, ok := r.firstSeen[claim.UID]
	delete(r.firstSeen, claim.UID)
	r.mu.Unlock()
	if !ok {
		from = claim.CreationTimestamp.Time
	}
	ms := now.Sub(from).Milliseconds()
	status.BindMilliseconds = &ms
	claimBindSeconds.WithLabelValues(string(src)).Observe(now.Sub(from).Seconds())
	reason, msg := vmv1alpha1.ReasonClaimedWarm, fmt.Sprintf("warm member %s handed over in %d ms", c.Name, ms)
	if src == vmv1alpha1.SourceCold {
		reason, msg = vmv1alpha1.ReasonCreatedCold, fmt.Sprintf("created clone %s: no warm member was free, so it starts from scratch", c.Name)
	}
	setClaimCondition(status, claim.Generation, vmv1alpha1.ConditionBound, metav1.ConditionTrue, reason, msg)
}

// mirrorClone copies what a user of the claim needs from its clone.
func mirrorClone(status *vmv1alpha1.VMClaimStatus, c *vmv1alpha1.VMClone) {
	status.NodeName = c.Status.NodeName
	status.DomainName = ""
	if c.Status.Domain != nil {
		status.DomainName = c.Status.Domain.Name
	}
	status.Interfaces = append([]vmv1alpha1.InterfaceStatus(nil), c.Status.Interfaces...)
}

// lifetime sets Ready from the clone and ends the claim's lifetime when it is up.
func (r *VMClaimReconciler) lifetime(ctx context.Context, claim *vmv1alpha1.VMClaim, status *vmv1alpha1.VMClaimStatus, clone *vmv1alpha1.VMClone, now time.Time) (ctrl.Result, error) {
	lt := claim.Spec.Lifetime
	if lt == nil || status.BoundTime == nil {
		status.ExpiresAt = nil
		setClaimReady(status, claim.Generation, clone, nil)
		return ctrl.Result{}, nil
	}
	at := metav1.NewTime(status.BoundTime.Add(lt.ExpireAfter.Duration).Truncate(time.Second))
	status.ExpiresAt = &at
	if now.Before(at.Time) {
		setClaimReady(status, claim.Generation, clone, nil)
		return ctrl.Result{RequeueAfter: at.Sub(now)}, nil
	}
	if lt.OnExpiry == vmv1alpha1.ExpiryStop {
		if clone.Spec.RunStrategy != vmv1alpha1.RunStrategyHalted {
			patch := client.MergeFrom(clone.DeepCopy())
			clone.Spec.RunStrategy = vmv1alpha1.RunStrategyHalted
			if err := r.Patch(ctx, clone, patch, client.FieldOwner(FieldManager)); err != nil {
				return ctrl.Result{}, fmt.Errorf("stop clone %s at the claim's expiry: %w", clone.Name, err)
			}
			r.Recorder.Eventf(claim, clone, corev1.EventTypeNormal, vmv1alpha1.ReasonClaimExpired, "Expire", "lifetime %s ended: stopping clone %s (onExpiry: Stop)", lt.ExpireAfter.Duration, clone.Name)
		}
		expired := true
		setClaimReady(status, claim.Generation, clone, &expired)
		return ctrl.Result{}, nil
	}
	r.Recorder.Eventf(claim, clone, corev1.EventTypeNormal, vmv1alpha1.ReasonClaimExpired, "Expire", "lifetime %s ended: deleting the claim and clone %s (onExpiry: Delete)", lt.ExpireAfter.Duration, clone.Name)
	if err := r.Delete(ctx, claim); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("delete expired claim: %w", err)
	}
	return ctrl.Result{}, nil
}

// setClaimReady derives the claim's Ready from Bound and its clone: True once the clone is
// Ready, running (not a paused member still resuming) and has the claim's data.
func setClaimReady(status *vmv1alpha1.VMClaimStatus, gen int64, clone *vmv1alpha1.VMClone, stoppedOnExpiry *bool) {
	bound := meta.FindStatusCondition(status.Conditions, vmv1alpha1.ConditionBound)
	switch {
	case bound == nil || bound.Status != metav1.ConditionTrue || clone == nil:
		if bound == nil {
			setClaimCondition(status, gen, vmv1alpha1.ConditionReady, metav1.ConditionFalse, vmv1alpha1.ReasonWaitingForWarmMember, "not bound yet")
			return
		}
		setClaimCondition(status, gen, vmv1alpha1.ConditionReady, metav1.ConditionFalse, bound.Reason, bound.Message)
		return
	case stoppedOnExpiry != nil && *stoppedOnExpiry:
		setClaimCondition(status, gen, vmv1alpha1.ConditionReady, metav1.ConditionTrue, vmv1alpha1.ReasonStoppedOnExpiry, fmt.Sprintf("the claim's lifetime ended; clone %s is stopped and its disk kept (onExpiry: Stop)", clone.Name))
		return
	}
	ready := meta.FindStatusCondition(clone.Status.Conditions, vmv1alpha1.ConditionReady)
	switch {
	case ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration < clone.Generation:
		msg := fmt.Sprintf("clone %s is not Ready yet", clone.Name)
		if ready != nil {
			msg = fmt.Sprintf("clone %s: %s: %s", clone.Name, ready.Reason, ready.Message)
		}
		setClaimCondition(status, gen, vmv1alpha1.ConditionReady, metav1.ConditionFalse, vmv1alpha1.ReasonCloneNotReady, msg)
	case ready.Reason == vmv1alpha1.ReasonPaused:
		setClaimCondition(status, gen, vmv1alpha1.ConditionReady, metav1.ConditionFalse, vmv1alpha1.ReasonCloneNotReady, fmt.Sprintf("clone %s is resuming from pause", clone.Name))
	case clone.Spec.GuestData != nil && !guestDataDelivered(clone):
		if d := meta.FindStatusCondition(clone.Status.Conditions, vmv1alpha1.ConditionGuestDataDelivered); d != nil && d.Reason == vmv1alpha1.ReasonGuestDataSecretMissing {
			setClaimCondition(status, gen, vmv1alpha1.ConditionReady, metav1.ConditionFalse, vmv1alpha1.ReasonClaimDataMissing, fmt.Sprintf("Secret %s named in spec.data does not exist in the claim's namespace: create it", clone.Spec.GuestData.SecretRef.Name))
			return
		}
		setClaimCondition(status, gen, vmv1alpha1.ConditionReady, metav1.ConditionFalse, vmv1alpha1.ReasonWaitingForData, fmt.Sprintf("clone %s runs; its host agent has not delivered spec.data into the guest yet", clone.Name))
	default:
		setClaimCondition(status, gen, vmv1alpha1.ConditionReady, metav1.ConditionTrue, vmv1alpha1.ReasonRunning, fmt.Sprintf("clone %s runs on %s", clone.Name, clone.Status.NodeName))
	}
}

// setClaimKStatus derives kstatus' Reconciling and Stalled from Ready, as for clones: kstatus
// reads a claim as InProgress until Ready, Current once Ready, Failed when its clone was lost.
func setClaimKStatus(st *vmv1alpha1.VMClaimStatus, claim *vmv1alpha1.VMClaim) {
	prev := func(t string) *metav1.Condition { return meta.FindStatusCondition(claim.Status.Conditions, t) }
	meta.RemoveStatusCondition(&st.Conditions, vmv1alpha1.ConditionReconciling)
	meta.RemoveStatusCondition(&st.Conditions, vmv1alpha1.ConditionStalled)
	ready := meta.FindStatusCondition(st.Conditions, vmv1alpha1.ConditionReady)
	if ready == nil || ready.Status == metav1.ConditionTrue {
		return
	}
	cond := metav1.Condition{Type: vmv1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: ready.Reason,
		Message: ready.Message, ObservedGeneration: claim.Generation, LastTransitionTime: ready.LastTransitionTime}
	if d, ok := vmv1alpha1.LookupCondition("VMClaim", vmv1alpha1.ConditionStalled); ok {
		if _, stalled := d.Reason(ready.Reason); stalled {
			cond.Type = vmv1alpha1.ConditionStalled
		}
	}
	if cond.Reason == "" {
		cond.Reason = vmv1alpha1.ReasonProgressing
	}
	if old := prev(cond.Type); old != nil {
		cond.LastTransitionTime = old.LastTransitionTime
	}
	st.Conditions = append(st.Conditions, cond)
}

func guestDataDelivered(c *vmv1alpha1.VMClone) bool {
	d := meta.FindStatusCondition(c.Status.Conditions, vmv1alpha1.ConditionGuestDataDelivered)
	return d != nil && d.Status == metav1.ConditionTrue && d.ObservedGeneration >= c.Generation
}

func setClaimCondition(status *vmv1alpha1.VMClaimStatus, gen int64, t string, st metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: t, Status: st, Reason: reason, Message: msg, ObservedGeneration: gen})
}

// reconcileDelete deletes the claim's clone and lets the claim go once the clone is gone.
func (r *VMClaimReconciler) reconcileDelete(ctx context.Context, claim *vmv1alpha1.VMClaim) error {
	if !controllerutil.ContainsFinalizer(claim, vmv1alpha1.ClaimFinalizer) {
		return nil
	}
	var list vmv1alpha1.VMCloneList
	if err := r.List(ctx, &list, client.InNamespace(claim.Namespace), client.MatchingLabels{vmv1alpha1.ClaimLabel: claim.Name}); err != nil {
		return fmt.Errorf("list clones of claim: %w", err)
	}
	left := 0
	var errs []error
	for i := range list.Items {
		c := &list.Items[i]
		if !metav1.IsControlledBy(c, claim) {
			continue
		}
		left++
		if c.DeletionTimestamp.IsZero() {
			if err := r.Delete(ctx, c); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete clone %s: %w", c.Name, err))
			}
		}
	}
	if left > 0 || len(errs) > 0 {
		return kerrors.NewAggregate(errs) // the clone's deletion event brings the claim back
	}
	patch := client.MergeFrom(claim.DeepCopy())
	controllerutil.RemoveFinalizer(claim, vmv1alpha1.ClaimFinalizer)
	if err := r.Patch(ctx, claim, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	return nil
}

// deleteOrphans deletes the clones a claim that no longer exists controlled: a claim deleted
// before its finalizer was applied goes at once, and without a garbage collector (the
// playground, envtest) its VM would stay. The clone's UID precondition keeps a clone replaced
// meanwhile safe.
func (r *VMClaimReconciler) deleteOrphans(ctx context.Context, key types.NamespacedName) error {
	var list vmv1alpha1.VMCloneList
	if err := r.List(ctx, &list, client.InNamespace(key.Namespace), client.MatchingLabels{vmv1alpha1.ClaimLabel: key.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list clones of deleted claim: %w", err)
	}
	var errs []error
	var live *vmv1alpha1.VMClaim
	for i := range list.Items {
		c := &list.Items[i]
		ref := metav1.GetControllerOf(c)
		if ref == nil || ref.Kind != "VMClaim" || ref.Name != key.Name || !c.DeletionTimestamp.IsZero() {
			continue
		}
		if live == nil {
			// The cache may lag; the API server says whether the claim is really gone (or
			// was recreated: a namesake with another UID does not own this clone).
			live = &vmv1alpha1.VMClaim{}
			if err := r.Live.Get(ctx, key, live); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("read claim %s: %w", key, err)
			}
		}
		if live.UID == ref.UID {
			continue
		}
		log.FromContext(ctx).Info("deleting the clone of a deleted claim", "vmclone", c.Name)
		uid := c.UID
		if err := r.Delete(ctx, c, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("delete clone %s of deleted claim: %w", c.Name, err))
		}
	}
	return kerrors.NewAggregate(errs)
}

func indexClaims(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &vmv1alpha1.VMClaim{}, indexClaimPool, func(o client.Object) []string {
		if c := o.(*vmv1alpha1.VMClaim); c.Spec.PoolRef != nil {
			return []string{c.Spec.PoolRef.Name}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index VMClaims by %s: %w", indexClaimPool, err)
	}
	if err := idx.IndexField(ctx, &vmv1alpha1.VMClaim{}, indexClaimWaiting, func(o client.Object) []string {
		if c := o.(*vmv1alpha1.VMClaim); c.Spec.PoolRef != nil && c.Status.CloneName == "" && c.DeletionTimestamp.IsZero() {
			return []string{c.Spec.PoolRef.Name}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index VMClaims by %s: %w", indexClaimWaiting, err)
	}
	return nil
}

func (r *VMClaimReconciler) setupWithManager(mgr ctrl.Manager) error {
	// A claim's bind time counts from the moment the controller's informer got it, before it
	// waits in the work queue: under a burst the wait is most of what a user sees.
	informer, err := mgr.GetCache().GetInformer(context.Background(), &vmv1alpha1.VMClaim{})
	if err != nil {
		return fmt.Errorf("VMClaim informer: %w", err)
	}
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if c, ok := o.(*vmv1alpha1.VMClaim); ok && c.Status.CloneName == "" {
				r.seen(c, r.Opts.Clock.Now())
			}
		},
		DeleteFunc: func(o any) {
			if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = tomb.Obj
			}
			if c, ok := o.(*vmv1alpha1.VMClaim); ok {
				r.forget(c.UID)
			}
		},
	}); err != nil {
		return fmt.Errorf("add claim arrival handler: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&vmv1alpha1.VMClaim{}).
		Named("vmclaim").
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Opts.MaxConcurrentReconciles}).
		// The claim's clone: its state is mirrored into the claim.
		Owns(&vmv1alpha1.VMClone{}).
		// A pool member that is (or becomes) warm wakes the claims waiting on its pool.
		Watches(&vmv1alpha1.VMClone{}, handler.EnqueueRequestsFromMapFunc(r.claimsWaitingForMember),
			builder.WithPredicates(warmMemberEvent{})).
		// A pool created (or its template changed) wakes its waiting claims.
		Watches(&vmv1alpha1.VMClonePool{}, handler.EnqueueRequestsFromMapFunc(r.claimsWaitingOnPool)).
		Complete(r)
}

func (r *VMClaimReconciler) claimsWaitingForMember(ctx context.Context, o client.Object) []reconcile.Request {
	pool := o.GetLabels()[vmv1alpha1.PoolLabel]
	if pool == "" {
		return nil
	}
	return r.waiting(ctx, o.GetNamespace(), pool)
}

func (r *VMClaimReconciler) claimsWaitingOnPool(ctx context.Context, o client.Object) []reconcile.Request {
	return r.waiting(ctx, o.GetNamespace(), o.GetName())
}

func (r *VMClaimReconciler) waiting(ctx context.Context, ns, pool string) []reconcile.Request {
	var list vmv1alpha1.VMClaimList
	if err := r.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{indexClaimWaiting: pool}); err != nil {
		log.FromContext(ctx).Error(err, "list claims waiting on pool", "pool", pool)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// warmMemberEvent passes events of unclaimed pool members that are Ready: those a waiting
// claim could take now.
type warmMemberEvent struct{ predicate.Funcs }

func isWarm(o client.Object) bool {
	c, ok := o.(*vmv1alpha1.VMClone)
	return ok && c.Labels[vmv1alpha1.PoolLabel] != "" && c.Labels[vmv1alpha1.ClaimLabel] == "" &&
		c.DeletionTimestamp.IsZero() && meta.IsStatusConditionTrue(c.Status.Conditions, vmv1alpha1.ConditionReady)
}

func (warmMemberEvent) Create(e event.CreateEvent) bool   { return isWarm(e.Object) }
func (warmMemberEvent) Delete(event.DeleteEvent) bool     { return false }
func (warmMemberEvent) Generic(e event.GenericEvent) bool { return isWarm(e.Object) }
func (warmMemberEvent) Update(e event.UpdateEvent) bool {
	return isWarm(e.ObjectNew) && !isWarm(e.ObjectOld)
}
