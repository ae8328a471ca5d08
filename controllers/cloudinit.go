package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Cloud-init data reaches a host through a copy. RBAC cannot say "the Secrets named by the
// clones bound to my node", so an agent allowed to get Secrets could read any Secret of the
// cluster by name — from 50 dom0s. Instead the controller (one Deployment) reads the Secrets a
// clone names and copies the keys into a Secret of its own namespace named after the clone's
// UID (vmv1alpha1.CloudInitCopyName); agents may get Secrets in that namespace only. The data
// is captured when the clone is first reconciled (before it is placed) and again whenever its
// spec.cloudInit names other keys; a changed Secret reaches new clones, not existing ones, the
// same way a clone keeps its identity across resets.

// ReasonCloudInitDataMissing: a Secret or key named in spec.cloudInit does not exist.
const ReasonCloudInitDataMissing = vmv1alpha1.ReasonCloudInitDataMissing

// Secrets named by clones are read uncached (get only: no list/watch of every Secret); the
// copies live in the lease namespace, with their own Role.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete,namespace=xenclone-system

// cloudInitSource is what a copy of the clone's cloud-init data is taken from, recorded on the
// copy so a change of spec.cloudInit is noticed.
func cloudInitSource(c *vmv1alpha1.VMClone) string {
	ref := func(r *vmv1alpha1.SecretKeyReference) string {
		if r == nil {
			return "-"
		}
		return c.Namespace + "/" + r.Name + ":" + r.Key
	}
	ci := c.Spec.CloudInit
	return ref(ci.UserData) + " " + ref(ci.NetworkConfig)
}

// ensureCloudInit makes sure the clone's cloud-init data is copied where its host's agent may
// read it. It reports false while an unbound clone must wait for a missing Secret or key.
func (r *VMCloneReconciler) ensureCloudInit(ctx context.Context, s *cloneScope) (bool, error) {
	ci := s.clone.Spec.CloudInit
	if ci == nil || (ci.UserData == nil && ci.NetworkConfig == nil) {
		return true, nil
	}
	key := types.NamespacedName{Namespace: r.Opts.LeaseNamespace, Name: vmv1alpha1.CloudInitCopyName(string(s.clone.UID))}
	want := cloudInitSource(s.clone)
	var cp corev1.Secret
	err := r.System.Get(ctx, key, &cp)
	exists := err == nil
	switch {
	case exists && cp.Labels[vmv1alpha1.CloneUIDLabel] == string(s.clone.UID) && cp.Annotations[vmv1alpha1.CloudInitSourceAnnotation] == want:
		return true, nil
	case err != nil && !apierrors.IsNotFound(err):
		return false, fmt.Errorf("get cloud-init copy %s: %w", key, err)
	}

	data := map[string][]byte{}
	for _, f := range []struct {
		field, key string
		ref        *vmv1alpha1.SecretKeyReference
	}{{"userData", vmv1alpha1.CloudInitUserDataKey, ci.UserData}, {"networkConfig", vmv1alpha1.CloudInitNetworkConfigKey, ci.NetworkConfig}} {
		if f.ref == nil {
			continue
		}
		var src corev1.Secret
		err := r.Sources.Get(ctx, types.NamespacedName{Namespace: s.clone.Namespace, Name: f.ref.Name}, &src)
		if apierrors.IsNotFound(err) {
			return r.cloudInitMissing(ctx, s, exists, fmt.Sprintf("Secret %s/%s named by spec.cloudInit.%s does not exist: create it, or fix spec.cloudInit.%s.name",
				s.clone.Namespace, f.ref.Name, f.field, f.field))
		}
		if err != nil {
			return false, fmt.Errorf("get Secret %s/%s for spec.cloudInit.%s: %w", s.clone.Namespace, f.ref.Name, f.field, err)
		}
		v, ok := src.Data[f.ref.Key]
		if !ok {
			return r.cloudInitMissing(ctx, s, exists, fmt.Sprintf("Secret %s/%s has no key %q (spec.cloudInit.%s.key): add it, or fix the key",
				s.clone.Namespace, f.ref.Name, f.ref.Key, f.field))
		}
		data[f.key] = v
	}

	meta := copyMeta(s, key, vmv1alpha1.CloudInitSourceAnnotation, want)
	if !exists {
		err = r.Create(ctx, &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, Data: data})
		if apierrors.IsAlreadyExists(err) {
			// Our cache is behind a copy written moments ago: its event brings us back.
			s.stale = true
			return false, nil
		}
	} else {
		cp.Labels, cp.Annotations, cp.Data = meta.Labels, meta.Annotations, data
		err = r.Update(ctx, &cp)
		if apierrors.IsConflict(err) {
			s.stale = true
			return false, nil
		}
	}
	if err != nil {
		return false, fmt.Errorf("write cloud-init copy %s: %w", key, err)
	}
	log.FromContext(ctx).V(1).Info("copied cloud-init data", "copy", key.String(), "source", want)
	return true, nil
}

// copyMeta is the metadata of a Secret copy the controller keeps for a clone's host agent
// (cloud-init data, guest data): the clone's UID label, what it was copied from, whose it is.
func copyMeta(s *cloneScope, key types.NamespacedName, sourceAnnotation, source string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: key.Namespace, Name: key.Name,
		Labels: map[string]string{vmv1alpha1.CloneUIDLabel: string(s.clone.UID)},
		Annotations: map[string]string{
			sourceAnnotation: source,
			cloneAnnotation:  s.clone.Namespace + "/" + s.clone.Name,
		},
	}
}

// cloudInitMissing holds an unbound clone back with a condition naming the field to fix. A
// clone already bound keeps the copy it has (its guest may already have booted from it), and is
// told through an event.
func (r *VMCloneReconciler) cloudInitMissing(ctx context.Context, s *cloneScope, haveCopy bool, msg string) (bool, error) {
	if s.status.NodeName == "" {
		r.setUnscheduled(s, ReasonCloudInitDataMissing, msg)
		return false, nil
	}
	if !haveCopy {
		r.Recorder.Eventf(s.clone, nil, corev1.EventTypeWarning, ReasonCloudInitDataMissing, "CopyCloudInit", "%s", msg)
	}
	log.FromContext(ctx).V(1).Info("cloud-init data of a bound clone not copied", "reason", msg)
	return true, nil
}

// cloneAnnotation on a cloud-init copy names its clone, for the copy collector.
const cloneAnnotation = "vm.xenclone.dev/clone"

// CloudInitCopyReconciler deletes cloud-init and guest-data copies whose clone is gone. Copies cannot carry an
// owner reference to their clone (another namespace), so no garbage collector would.
type CloudInitCopyReconciler struct {
	client.Client
	// System reads the copies (the lease namespace's cache).
	System client.Reader
	Opts   Options
}

func (r *CloudInitCopyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var cp corev1.Secret
	if err := r.System.Get(ctx, req.NamespacedName, &cp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	uid := cp.Labels[vmv1alpha1.CloneUIDLabel]
	ns, name, ok := strings.Cut(cp.Annotations[cloneAnnotation], "/")
	if uid == "" || !ok {
		return ctrl.Result{}, nil // not a copy of ours
	}
	var clone vmv1alpha1.VMClone
	err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &clone)
	switch {
	case err == nil && string(clone.UID) == uid:
		return ctrl.Result{}, nil
	case err != nil && !apierrors.IsNotFound(err):
		return ctrl.Result{}, fmt.Errorf("get VMClone %s/%s of cloud-init copy %s: %w", ns, name, cp.Name, err)
	}
	if err := r.Delete(ctx, &cp, client.Preconditions{UID: &cp.UID}); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("delete cloud-init copy %s of deleted clone %s/%s: %w", cp.Name, ns, name, err)
	}
	log.FromContext(ctx).V(1).Info("deleted cloud-init copy of a deleted clone", "copy", cp.Name, "clone", ns+"/"+name)
	return ctrl.Result{}, nil
}

func (r *CloudInitCopyReconciler) setupWithManager(mgr ctrl.Manager, system cache.Cache) error {
	// A clone's events (its deletion above all) map to its copy.
	copyOf := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		c, ok := o.(*vmv1alpha1.VMClone)
		if !ok {
			return nil
		}
		// Guest-data copies (guestdata.go) carry the same label and annotation and go the
		// same way (one whose clone stops naming it is deleted by the clone's reconciler).
		var reqs []reconcile.Request
		if c.Spec.GuestData != nil {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: r.Opts.LeaseNamespace, Name: vmv1alpha1.GuestDataCopyName(string(c.UID))}})
		}
		if c.Spec.CloudInit != nil {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: r.Opts.LeaseNamespace, Name: vmv1alpha1.CloudInitCopyName(string(c.UID))}})
		}
		return reqs
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("cloudinitcopy").
		WatchesRawSource(source.Kind(system, client.Object(&corev1.Secret{}), &handler.EnqueueRequestForObject{})).
		Watches(&vmv1alpha1.VMClone{}, copyOf).
		Complete(r)
}
