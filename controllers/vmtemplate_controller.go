package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// listedNames is how many names a condition message lists before "and N more".
const listedNames = 10

// Reasons of VMTemplate conditions.
const (
	ReasonOriginPresent       = vmv1alpha1.ReasonOriginPresent
	ReasonNoHostHasOrigin     = vmv1alpha1.ReasonNoHostHasOrigin
	ReasonInvalidHostSelector = vmv1alpha1.ReasonInvalidHostSelector
	ReasonInUse               = vmv1alpha1.ReasonInUse
	ReasonNotInUse            = vmv1alpha1.ReasonNotInUse
	ReasonDeletionBlocked     = vmv1alpha1.ReasonDeletionBlocked
)

// VMTemplateReconciler aggregates where a template's origin exists (from XenHosts), counts its
// clones, and holds TemplateFinalizer so a template with clones cannot be deleted: classic
// snapshots die with their origin.
type VMTemplateReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	Opts     Options

	grants importGrants
}

// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmtemplates,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmtemplates/status,verbs=get;patch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmtemplates/finalizers,verbs=update

// Reconcile fetches the template, then reconcileDelete or reconcileNormal; the status is
// applied on every exit.
func (r *VMTemplateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	tmpl := &vmv1alpha1.VMTemplate{}
	if err := r.Get(ctx, req.NamespacedName, tmpl); err != nil {
		if apierrors.IsNotFound(err) {
			r.grants.forget(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("vmtemplate", tmpl.Name))

	status := tmpl.Status.DeepCopy()
	status.ObservedGeneration = tmpl.Generation
	defer func() {
		if equality.Semantic.DeepEqual(*status, tmpl.Status) {
			return
		}
		if err := applyStatus(ctx, r.Client, r.Scheme, tmpl, status); err != nil && !apierrors.IsNotFound(err) {
			reterr = kerrors.NewAggregate([]error{reterr, err})
		}
	}()

	clones, err := r.clonesOf(ctx, tmpl.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	hosts, err := r.ensureHosts(ctx, tmpl, status)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.ensureImports(ctx, tmpl, status, hosts); err != nil {
		return ctrl.Result{}, err
	}
	r.ensureInUse(tmpl, status, clones)
	if !tmpl.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, tmpl, status, clones)
	}
	return ctrl.Result{}, r.ensureFinalizer(ctx, tmpl)
}

// reconcileDelete releases the finalizer once no clone uses the template; until then the InUse
// condition and an event name the clones to delete first.
func (r *VMTemplateReconciler) reconcileDelete(ctx context.Context, tmpl *vmv1alpha1.VMTemplate, status *vmv1alpha1.VMTemplateStatus, clones templateClones) error {
	if clones.count > 0 {
		msg := fmt.Sprintf("deletion waits for %d clone(s) of this template: %s; delete them first (their snapshots depend on the origin)",
			clones.count, clones)
		prev := meta.FindStatusCondition(tmpl.Status.Conditions, vmv1alpha1.ConditionTemplateInUse)
		if prev == nil || prev.Reason != ReasonDeletionBlocked || prev.Message != msg {
			r.Recorder.Eventf(tmpl, nil, corev1.EventTypeWarning, ReasonDeletionBlocked, "Delete", "%s", msg)
		}
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: vmv1alpha1.ConditionTemplateInUse, Status: metav1.ConditionTrue, Reason: ReasonDeletionBlocked,
			Message: msg, ObservedGeneration: tmpl.Generation,
		})
		return nil
	}
	if !controllerutil.ContainsFinalizer(tmpl, vmv1alpha1.TemplateFinalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(tmpl.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(tmpl, vmv1alpha1.TemplateFinalizer)
	if err := r.Patch(ctx, tmpl, patch); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			// Gone already, or our cache is behind: the newer version's event brings us back.
			return nil
		}
		return fmt.Errorf("remove finalizer %s: %w", vmv1alpha1.TemplateFinalizer, err)
	}
	log.FromContext(ctx).Info("no clones left, released template for deletion")
	return nil
}

func (r *VMTemplateReconciler) ensureFinalizer(ctx context.Context, tmpl *vmv1alpha1.VMTemplate) error {
	if controllerutil.ContainsFinalizer(tmpl, vmv1alpha1.TemplateFinalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(tmpl.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.AddFinalizer(tmpl, vmv1alpha1.TemplateFinalizer)
	if err := r.Patch(ctx, tmpl, patch); err != nil {
		if apierrors.IsConflict(err) {
			return nil // our cache is behind: the newer version's event brings us back
		}
		return fmt.Errorf("add finalizer %s: %w", vmv1alpha1.TemplateFinalizer, err)
	}
	return nil
}

// templateClones is how many clones use a template and the first listedNames of them
// (namespace/name, sorted): what its status says, without a sorted list of every name.
type templateClones struct {
	count int
	first []string
}

func (c templateClones) String() string { return listFirst(c.first, c.count) }

// clonesOf counts the clones using a template and keeps the first listedNames names.
func (r *VMTemplateReconciler) clonesOf(ctx context.Context, name string) (templateClones, error) {
	var list vmv1alpha1.VMCloneList
	if err := r.List(ctx, &list, client.MatchingFields{indexCloneTemplate: name}, client.UnsafeDisableDeepCopy); err != nil {
		return templateClones{}, fmt.Errorf("list clones of template %s: %w", name, err)
	}
	out := templateClones{count: len(list.Items)}
	for i := range list.Items {
		c := &list.Items[i]
		if len(out.first) == listedNames && !lessName(c.Namespace, c.Name, out.first[listedNames-1]) {
			continue
		}
		n := c.Namespace + "/" + c.Name
		at := sort.SearchStrings(out.first, n)
		if len(out.first) < listedNames {
			out.first = append(out.first, "")
		}
		copy(out.first[at+1:], out.first[at:])
		out.first[at] = n
	}
	return out, nil
}

// lessName says whether namespace/name sorts before full, without building the string.
func lessName(namespace, name, full string) bool {
	if len(full) > len(namespace) && full[len(namespace)] == '/' && full[:len(namespace)] == namespace {
		return name < full[len(namespace)+1:]
	}
	return namespace+"/" < full
}

// ensureHosts fills status.hosts, readyHosts and the Ready condition from the XenHosts, and
// returns them.
func (r *VMTemplateReconciler) ensureHosts(ctx context.Context, tmpl *vmv1alpha1.VMTemplate, status *vmv1alpha1.VMTemplateStatus) ([]vmv1alpha1.XenHost, error) {
	var hosts vmv1alpha1.XenHostList
	if err := r.List(ctx, &hosts); err != nil {
		return nil, fmt.Errorf("list XenHosts: %w", err)
	}
	agg := TemplatePresence(tmpl, hosts.Items)
	status.Hosts, status.ReadyHosts = agg.Hosts, agg.ReadyHosts
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{
		Type: vmv1alpha1.ConditionReady, Status: agg.Ready, Reason: agg.Reason, Message: agg.Message,
		ObservedGeneration: tmpl.Generation,
	})
	return hosts.Items, nil
}

// ensureImports hands out import slots and writes the Imported condition (templates with a
// source only).
func (r *VMTemplateReconciler) ensureImports(ctx context.Context, tmpl *vmv1alpha1.VMTemplate, status *vmv1alpha1.VMTemplateStatus, hosts []vmv1alpha1.XenHost) error {
	if tmpl.Spec.Source == nil && len(status.ImportGrants) == 0 {
		setImported(tmpl, status)
		return nil
	}
	var all vmv1alpha1.VMTemplateList
	if err := r.List(ctx, &all); err != nil {
		return fmt.Errorf("list VMTemplates: %w", err)
	}
	// A lost host's last report may say Importing for good: it must not hold a slot.
	lost := map[string]bool{}
	for i := range hosts {
		c := meta.FindStatusCondition(hosts[i].Status.Conditions, vmv1alpha1.ConditionReady)
		lost[hosts[i].Name] = c != nil && c.Reason == ReasonHeartbeatLost
	}
	status.ImportGrants = r.grants.decideGrants(tmpl, all.Items, status.Hosts, lost, r.Opts.withDefaults().MaxParallelImports)
	setImported(tmpl, status)
	// Until one host has the origin, Ready repeats how the imports go.
	ready := meta.FindStatusCondition(status.Conditions, vmv1alpha1.ConditionReady)
	imported := meta.FindStatusCondition(status.Conditions, vmv1alpha1.ConditionImported)
	if ready != nil && imported != nil && ready.Status != metav1.ConditionTrue && imported.Status != metav1.ConditionTrue &&
		ready.Reason == ReasonNoHostHasOrigin {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: vmv1alpha1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: imported.Reason, Message: "no host has the origin yet: " + imported.Message, ObservedGeneration: tmpl.Generation})
	}
	return nil
}

func (r *VMTemplateReconciler) ensureInUse(tmpl *vmv1alpha1.VMTemplate, status *vmv1alpha1.VMTemplateStatus, clones templateClones) {
	status.Clones = int32(clones.count)
	cond := metav1.Condition{Type: vmv1alpha1.ConditionTemplateInUse, ObservedGeneration: tmpl.Generation}
	if clones.count == 0 {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, ReasonNotInUse, "no clone uses this template; it can be deleted"
	} else {
		cond.Status, cond.Reason = metav1.ConditionTrue, ReasonInUse
		cond.Message = fmt.Sprintf("%d clone(s) use this template: %s", clones.count, clones)
	}
	meta.SetStatusCondition(&status.Conditions, cond)
}

// Presence is a template's aggregated presence across hosts.
type Presence struct {
	Hosts      []vmv1alpha1.TemplateHostStatus
	ReadyHosts int32
	Ready      metav1.ConditionStatus
	Reason     string
	Message    string
}

// TemplatePresence lists, for each host the template may run on, whether its agent reports the
// origin, and says in Ready where clones can go or what to do when nowhere.
func TemplatePresence(tmpl *vmv1alpha1.VMTemplate, hosts []vmv1alpha1.XenHost) Presence {
	sel, err := selectorOrEverything(tmpl.Spec.HostSelector)
	if err != nil {
		return Presence{Ready: metav1.ConditionFalse, Reason: ReasonInvalidHostSelector,
			Message: fmt.Sprintf("spec.hostSelector is invalid: %v; fix it", err)}
	}
	var p Presence
	var ready []string
	origin := fmt.Sprintf("%s/%s", tmpl.Spec.Origin.VolumeGroup, tmpl.Spec.Origin.LogicalVolume)
	for i := range hosts {
		h := &hosts[i]
		if !sel.Matches(labels.Set(h.Labels)) {
			continue
		}
		hs := vmv1alpha1.TemplateHostStatus{NodeName: h.Name}
		if tmpl.Spec.Source != nil {
			hs.Import = hostImport(h, tmpl.Name)
		}
		if ht := hostTemplate(h, tmpl.Name); ht != nil {
			hs.Present, hs.SizeBytes, hs.ReadOnly, hs.Thin, hs.LVUUID = true, ht.SizeBytes, ht.ReadOnly, ht.Thin, ht.LVUUID
			if ht.Refused == "" {
				p.ReadyHosts++
				ready = append(ready, h.Name)
			} else {
				hs.Message = "refused as this template's origin: " + ht.Refused
			}
		} else if tmpl.Spec.Source != nil {
			hs.Message = fmt.Sprintf("origin %s is not imported here yet", origin)
		} else {
			hs.Message = fmt.Sprintf("the hostagent does not report origin %s here", origin)
		}
		p.Hosts = append(p.Hosts, hs)
	}
	sort.Slice(p.Hosts, func(i, j int) bool { return p.Hosts[i].NodeName < p.Hosts[j].NodeName })
	sort.Strings(ready)
	if len(ready) == 0 && tmpl.Spec.Source != nil {
		p.Ready, p.Reason = metav1.ConditionFalse, ReasonNoHostHasOrigin
		p.Message = fmt.Sprintf("no host has imported origin %s yet (%d host(s) match); the Imported condition says how the imports go; clones of this template stay Pending until one host has it",
			origin, len(p.Hosts))
		return p
	}
	if len(ready) == 0 {
		p.Ready, p.Reason = metav1.ConditionFalse, ReasonNoHostHasOrigin
		p.Message = fmt.Sprintf("no host has origin %s ready (%d host(s) match): create the logical volume on the Xen hosts and check their hostagent runs; clones of this template stay Pending until then",
			origin, len(p.Hosts))
		return p
	}
	p.Ready, p.Reason = metav1.ConditionTrue, ReasonOriginPresent
	p.Message = fmt.Sprintf("origin %s ready on %d host(s): %s", origin, len(ready), listNames(ready))
	return p
}

// hostImport is the host's report of its import of the named template, or nil.
func hostImport(h *vmv1alpha1.XenHost, name string) *vmv1alpha1.HostImportStatus {
	for i := range h.Status.Imports {
		if h.Status.Imports[i].Template == name {
			return h.Status.Imports[i].DeepCopy()
		}
	}
	return nil
}

// listNames renders the first listedNames names and how many more there are.
func listNames(names []string) string {
	return listFirst(names[:min(len(names), listedNames)], len(names))
}

// listFirst renders first, the first names of total, and how many more there are.
func listFirst(first []string, total int) string {
	if total <= len(first) {
		return strings.Join(first, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(first, ", "), total-len(first))
}

func (r *VMTemplateReconciler) setupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&vmv1alpha1.VMTemplate{}).
		Named("vmtemplate").
		// Presence changes with the hosts' reports; there are few templates, so any host
		// change re-aggregates all of them.
		Watches(&vmv1alpha1.XenHost{}, handler.EnqueueRequestsFromMapFunc(r.allTemplates)).
		// Clone count and the deletion guard follow the clones' creation and deletion only:
		// their status updates do not change them. A burst of 10,000 creations is counted
		// about once per cloneCountDelay, not once per clone (each count lists the clones).
		Watches(&vmv1alpha1.VMClone{}, handler.Funcs{
			CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				q.AddAfter(templateOf(e.Object), cloneCountDelay)
			},
			DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				q.AddAfter(templateOf(e.Object), cloneCountDelay)
			},
			GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				q.AddAfter(templateOf(e.Object), cloneCountDelay)
			},
		}).
		Complete(r)
}

// cloneCountDelay is how long a clone's creation or deletion waits before its template is
// counted again: every event within it is folded into one count.
const cloneCountDelay = time.Second

func templateOf(o client.Object) reconcile.Request {
	return reconcile.Request{NamespacedName: client.ObjectKey{Name: o.(*vmv1alpha1.VMClone).Spec.TemplateRef.Name}}
}

func (r *VMTemplateReconciler) allTemplates(ctx context.Context, _ client.Object) []reconcile.Request {
	var list vmv1alpha1.VMTemplateList
	if err := r.List(ctx, &list); err != nil {
		log.FromContext(ctx).Error(err, "list VMTemplates")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Name: list.Items[i].Name}})
	}
	return reqs
}
