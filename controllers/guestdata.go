package controllers

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Guest data (spec.guestData) reaches a host the way cloud-init data does (cloudinit.go): the
// controller reads the Secret the clone names, in the clone's namespace and uncached, and copies
// its keys into vmv1alpha1.GuestDataCopyName(uid) in its own namespace, where agents may read
// it. Unlike a cloud-init seed, which the guest reads once at its first boot, guest data is
// written into a running guest: the copy records its source with the Secret's resourceVersion
// (vmv1alpha1.GuestDataSourceAnnotation) and is taken again when that changes, and the agent
// delivers each new copy. The agent validates the keys (it is the one that knows xenstore's
// limits) and says what is wrong in the clone's GuestDataDelivered condition.

// guestDataSource is the annotation value of a copy taken from src.
func guestDataSource(src *corev1.Secret) string {
	return src.Namespace + "/" + src.Name + "@" + src.ResourceVersion
}

// ensureGuestData copies the Secret named by spec.guestData (or removes the copy once the
// field is gone). It never holds a clone back: the data is for a running guest, and the agent
// reports its delivery; a missing Secret is said in an event, and the agent reports the missing
// copy (GuestDataSecretMissing).
func (r *VMCloneReconciler) ensureGuestData(ctx context.Context, s *cloneScope) error {
	key := types.NamespacedName{Namespace: r.Opts.LeaseNamespace, Name: vmv1alpha1.GuestDataCopyName(string(s.clone.UID))}
	var cp corev1.Secret
	err := r.System.Get(ctx, key, &cp)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get guest-data copy %s: %w", key, err)
	}
	found := err == nil
	exists := found && cp.Labels[vmv1alpha1.CloneUIDLabel] == string(s.clone.UID)
	gd := s.clone.Spec.GuestData
	if gd == nil {
		if exists {
			// The claim that asked for it is done with it: no copy of a secret outlives its use.
			if err := r.Delete(ctx, &cp, client.Preconditions{UID: &cp.UID}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete guest-data copy %s: %w", key, err)
			}
		}
		return nil
	}
	var src corev1.Secret
	err = r.Sources.Get(ctx, types.NamespacedName{Namespace: s.clone.Namespace, Name: gd.SecretRef.Name}, &src)
	if apierrors.IsNotFound(err) {
		if !exists {
			r.Recorder.Eventf(s.clone, nil, corev1.EventTypeWarning, vmv1alpha1.ReasonGuestDataSecretMissing, "CopyGuestData",
				"Secret %s/%s named by spec.guestData.secretRef does not exist: create it, or fix spec.guestData.secretRef.name", s.clone.Namespace, gd.SecretRef.Name)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get Secret %s/%s for spec.guestData: %w", s.clone.Namespace, gd.SecretRef.Name, err)
	}
	want := guestDataSource(&src)
	if exists && cp.Annotations[vmv1alpha1.GuestDataSourceAnnotation] == want {
		return nil
	}
	meta := copyMeta(s, key, vmv1alpha1.GuestDataSourceAnnotation, want)
	data := maps.Clone(src.Data)
	if !found {
		err = r.Create(ctx, &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, Data: data})
		if apierrors.IsAlreadyExists(err) {
			s.stale = true // our cache is behind a copy written moments ago
			return nil
		}
	} else {
		cp.Labels, cp.Annotations, cp.Data = meta.Labels, meta.Annotations, data
		err = r.Update(ctx, &cp)
		if apierrors.IsConflict(err) {
			s.stale = true
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("write guest-data copy %s: %w", key, err)
	}
	log.FromContext(ctx).V(1).Info("copied guest data", "copy", key.String(), "source", want, "keys", len(data))
	return nil
}
