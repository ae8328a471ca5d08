package hostagent

// Guest data (spec.guestData): the keys of a Secret written into the running domain's xenstore
// tree, under data/xenclone/<key>, then data/xenclone/ready, all in one xenstore transaction. A
// guest reads them with `xenstore-read data/xenclone/<key>` and waits for them with
// `xenstore-watch data/xenclone/ready` (docs/guest-images.md). The agent reads only the
// controller's copy of the Secret (controllers/guestdata.go), as it does for cloud-init.
//
// Delivery is per domain: the GuestDataDelivered condition names the copy's source version and
// the domain id it went to, so a reconcile that finds both unchanged writes nothing, and a
// domain started again (a new id, an empty xenstore tree) gets the data again.

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/xen"
)

const (
	// MaxGuestDataKeys bounds the keys of spec.guestData: each is a xenstore node, and a
	// guest's nodes count against xenstored's per-domain quota (1000 by default).
	MaxGuestDataKeys = 16
	// GuestDataPath is where the keys go, relative to the domain's xenstore home.
	GuestDataPath = "data/xenclone"
	// GuestDataReadyKey is written last, with the data's version: the one key a guest watches.
	GuestDataReadyKey = "ready"
)

// guestDataKey is what a key may be: one plain xenstore path element.
var guestDataKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// guestDataRetry is how soon a clone looks again for a copy the controller has not written
// yet. Soon at first (a claim sets spec.guestData and the controller copies it a moment
// later; the guest waits for it), then at the cloud-init pace.
func guestDataRetry(since time.Duration) time.Duration {
	if since < 30*time.Second {
		return 500 * time.Millisecond
	}
	return 10 * time.Second
}

// GuestDataEntries validates a guest-data copy's keys and turns them into xenstore entries,
// sorted by key, with the ready key and version last. The error names the key and the fix.
func GuestDataEntries(data map[string][]byte, version string) ([]xen.XenstoreEntry, error) {
	if len(data) > MaxGuestDataKeys {
		return nil, fmt.Errorf("the Secret has %d keys, more than %d: put fewer, larger values in it (e.g. one JSON document)", len(data), MaxGuestDataKeys)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range data {
			if !yield(k) {
				return
			}
		}
	})
	out := make([]xen.XenstoreEntry, 0, len(keys)+1)
	for _, k := range keys {
		v := data[k]
		switch {
		case !guestDataKey.MatchString(k):
			return nil, fmt.Errorf("key %q is not a plain name: use only letters, digits, '-' and '_' (xenstore path elements), e.g. %q", k, plainKey(k))
		case k == GuestDataReadyKey:
			return nil, fmt.Errorf("key %q is reserved (the agent writes data/xenclone/ready last, with the data's version): rename it", k)
		case len(v) > xen.MaxXenstoreValue:
			return nil, fmt.Errorf("the value of key %q is %d bytes, more than xenstore's %d: split it over several keys or hand the guest a URL to fetch it from", k, len(v), xen.MaxXenstoreValue)
		case strings.IndexByte(string(v), 0) >= 0:
			return nil, fmt.Errorf("the value of key %q contains a NUL byte, which xenstore-write cannot carry: base64-encode it", k)
		}
		out = append(out, xen.XenstoreEntry{Path: GuestDataPath + "/" + k, Value: string(v)})
	}
	return append(out, xen.XenstoreEntry{Path: GuestDataPath + "/" + GuestDataReadyKey, Value: version}), nil
}

func plainKey(k string) string {
	b := []byte(k)
	for i, c := range b {
		if !guestDataKey.Match([]byte{c}) {
			b[i] = '_'
		}
	}
	return string(b)
}

// guestDataVersion is what data/xenclone/ready says: the source Secret's resourceVersion (the
// part after '@' of the copy's source annotation), unique to each version of the data.
func guestDataVersion(source string) string {
	if _, rv, ok := strings.Cut(source, "@"); ok && rv != "" {
		return rv
	}
	return source
}

func deliveredMessage(n int, source, domain string, domid int) string {
	return fmt.Sprintf("%d key(s) of %s written to domain %s (id %d) under %s/, then %s", n, source, domain, domid, GuestDataPath, GuestDataReadyKey)
}

// ensureGuestData delivers spec.guestData into the running domain once per data version and
// domain. It never holds the clone's other steps back; its condition says where delivery is.
func (r *CloneReconciler) ensureGuestData(ctx context.Context, s *cloneScope) (bool, error) {
	gd := s.clone.Spec.GuestData
	if gd == nil {
		meta.RemoveStatusCondition(&s.status.Conditions, vmv1alpha1.ConditionGuestDataDelivered)
		return true, nil
	}
	dr := meta.FindStatusCondition(s.status.Conditions, vmv1alpha1.ConditionDomainRunning)
	dom := s.status.Domain
	if wantPaused(s.clone) || dr == nil || dr.Status != metav1.ConditionTrue || dr.Reason != ReasonStarted || dom == nil || dom.ID <= 0 {
		// Paused or not running: written once it runs (a claim resumes the domain first).
		s.setCondition(vmv1alpha1.ConditionGuestDataDelivered, metav1.ConditionFalse, vmv1alpha1.ReasonGuestDataPending,
			"the domain is not running; the data of spec.guestData is written into its xenstore once it runs")
		return true, nil
	}
	if r.Host.Control == nil {
		s.setCondition(vmv1alpha1.ConditionGuestDataDelivered, metav1.ConditionFalse, vmv1alpha1.ReasonGuestDataRejected,
			fmt.Sprintf("the hostagent on %s cannot write xenstore (no xenstore-write wired)", r.NodeName))
		return true, nil
	}
	// The controller's copy, read uncached: the agent does not watch Secrets.
	key := types.NamespacedName{Namespace: r.LeaseNamespace, Name: vmv1alpha1.GuestDataCopyName(string(s.clone.UID))}
	var cp corev1.Secret
	if err := r.Reader.Get(ctx, key, &cp); err != nil {
		if !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("get guest-data copy %s: %w", key, err)
		}
		prev := meta.FindStatusCondition(s.status.Conditions, vmv1alpha1.ConditionGuestDataDelivered)
		s.setCondition(vmv1alpha1.ConditionGuestDataDelivered, metav1.ConditionFalse, vmv1alpha1.ReasonGuestDataSecretMissing,
			fmt.Sprintf("the controller has not copied Secret %s/%s of spec.guestData to %s yet: check that the Secret exists and the clone's events",
				s.clone.Namespace, gd.SecretRef.Name, key))
		since := time.Duration(0)
		if prev != nil && prev.Reason == vmv1alpha1.ReasonGuestDataSecretMissing {
			since = r.Clock.Since(prev.LastTransitionTime.Time)
		}
		s.requeueAfter(guestDataRetry(since))
		return true, nil
	}
	if cp.Labels[vmv1alpha1.CloneUIDLabel] != string(s.clone.UID) {
		return false, fmt.Errorf("guest-data copy %s belongs to clone UID %q, not %s: refusing it", key, cp.Labels[vmv1alpha1.CloneUIDLabel], s.clone.UID)
	}
	source := cp.Annotations[vmv1alpha1.GuestDataSourceAnnotation]
	if want := s.clone.Namespace + "/" + gd.SecretRef.Name + "@"; !strings.HasPrefix(source, want) {
		// A copy of a Secret the clone named before: the controller replaces it shortly.
		s.setCondition(vmv1alpha1.ConditionGuestDataDelivered, metav1.ConditionFalse, vmv1alpha1.ReasonGuestDataSecretMissing,
			fmt.Sprintf("waiting for the controller to copy Secret %s/%s (the copy holds %s)", s.clone.Namespace, gd.SecretRef.Name, source))
		s.requeueAfter(guestDataRetry(0))
		return true, nil
	}
	msg := deliveredMessage(len(cp.Data), source, dom.Name, int(dom.ID))
	if c := meta.FindStatusCondition(s.status.Conditions, vmv1alpha1.ConditionGuestDataDelivered); c != nil &&
		c.Status == metav1.ConditionTrue && c.Message == msg {
		return true, nil // this version is in this domain already
	}
	entries, err := GuestDataEntries(cp.Data, guestDataVersion(source))
	if err != nil {
		msg := fmt.Sprintf("Secret %s/%s (spec.guestData) cannot go into xenstore: %v", s.clone.Namespace, gd.SecretRef.Name, err)
		s.setCondition(vmv1alpha1.ConditionGuestDataDelivered, metav1.ConditionFalse, vmv1alpha1.ReasonGuestDataRejected, msg)
		return true, nil
	}
	if err := r.Host.Control.WriteXenstore(ctx, int(dom.ID), entries); err != nil {
		s.setCondition(vmv1alpha1.ConditionGuestDataDelivered, metav1.ConditionFalse, vmv1alpha1.ReasonGuestDataRejected,
			fmt.Sprintf("writing spec.guestData into domain %s failed: %v", dom.Name, err))
		return false, err
	}
	s.setCondition(vmv1alpha1.ConditionGuestDataDelivered, metav1.ConditionTrue, vmv1alpha1.ReasonGuestDataDelivered, msg)
	r.event(s.clone, corev1.EventTypeNormal, vmv1alpha1.ReasonGuestDataDelivered, "DeliverGuestData", "%s", msg)
	return true, nil
}
