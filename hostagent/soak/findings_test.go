package soak

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Minimal repros of what the soak found, one test each, so a fix can be checked in seconds.

// TestHungXLCreateIsBounded: an `xl create` that never returns (xenstored or a device-model
// stuck on a real host; `fail.create=hang` in the simulator) must not hold the clone forever.
// The agent passes the reconcile's context to xl unbounded, so the worker waits until the agent
// restarts: the clone stays Provisioning and, once deleted, Terminating with its finalizer, while
// the host's Lease is renewed and it looks healthy. Four such hangs take every worker of the
// agent. Fix: bound each host command (hostagent/clone_controller.go startDomain: give Create a
// context.WithTimeout, e.g. 2 minutes, and report StartFailed "xl create did not return within
// …"; the same for lvm and guest preparation).
func TestHungXLCreateIsBounded(t *testing.T) {
	ctx := context.Background()
	h, err := newHost(ctx, "hang-a")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.startAgent(); err != nil {
		t.Fatal(err)
	}
	ctl, err := startController()
	if err != nil {
		t.Fatal(err)
	}
	nsName := "hang"
	t.Cleanup(func() {
		h.killAgent()
		ctl.kill()
		cleanupNamespace(nsName)
		_ = h.sim.XL(context.Background(), "sim-init")
	})
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	mem, cow := resource.MustParse("256Mi"), resource.MustParse("64Mi")
	tpl := &vmv1alpha1.VMTemplate{ObjectMeta: metav1.ObjectMeta{Name: "hang-tpl"}, Spec: vmv1alpha1.VMTemplateSpec{
		Origin:   vmv1alpha1.Origin{VolumeGroup: "vg0", LogicalVolume: "debian12"},
		Snapshot: vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotClassic, COWSize: &cow},
		Domain:   vmv1alpha1.DomainSpec{Memory: &mem, Boot: &vmv1alpha1.BootSpec{Bootloader: "pygrub"}},
	}}
	if err := k8s.Create(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.XL(ctx, "sim-knob", "fail.create=hang:1"); err != nil {
		t.Fatal(err)
	}
	c := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: nsName, Name: "stuck"},
		Spec: vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: tpl.Name},
			Placement: &vmv1alpha1.Placement{NodeName: "hang-a"}}}
	if err := k8s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}

	// The hang is one-shot: a bounded create fails once and the retry starts the domain.
	var got vmv1alpha1.VMClone
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if k8s.Get(ctx, client.ObjectKeyFromObject(c), &got) == nil && got.Status.Phase == vmv1alpha1.PhaseRunning {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("BUG: a hung `xl create` holds the clone for good (no timeout on host commands): after 30s the clone is %q on %q: %s",
		got.Status.Phase, got.Status.NodeName, got.Status.Message)

	// And deleting it does not help while the worker is held.
	_ = k8s.Delete(ctx, c)
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(c), &got)) {
			return
		}
	}
	t.Errorf("BUG: the deleted clone stays Terminating with finalizers %v while `xl create` hangs", got.Finalizers)
}

// cleanupNamespace releases finalizers of whatever a test left and deletes it.
func cleanupNamespace(nsName string) {
	ctx := context.Background()
	var list vmv1alpha1.VMCloneList
	if k8s.List(ctx, &list, client.InNamespace(nsName)) == nil {
		for _, c := range list.Items {
			patch := client.MergeFrom(c.DeepCopy())
			c.Finalizers = nil
			_ = k8s.Patch(ctx, &c, patch)
			_ = k8s.Delete(ctx, &c)
		}
	}
	var tpls vmv1alpha1.VMTemplateList
	if k8s.List(ctx, &tpls) == nil {
		for _, tpl := range tpls.Items {
			if tpl.Name != "hang-tpl" {
				continue
			}
			patch := client.MergeFrom(tpl.DeepCopy())
			tpl.Finalizers = nil
			_ = k8s.Patch(ctx, &tpl, patch)
			_ = k8s.Delete(ctx, &tpl)
		}
	}
}
