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
		forgetHost(h.name)
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

// TestRescheduledCloneThatFindsNoHostCanBeDeleted is what the long soak found (seed
// 1795636250330968818: 10 clones stuck Terminating, their LVs, domains, configs and seeds left
// on the old hosts, both templates stuck in-use). A clone with the opt-in Reschedule annotation
// whose host is lost was unbound (status.nodeName cleared) even when no other host could take
// it; it kept its old node label, so the old host's orphan collector kept its disk, and once
// deleted nobody released the agent's finalizer. Fixed in the controller: the node label goes
// with status.nodeName, and an unbound clone's host finalizer is released on delete.
//
// Here: two hosts, lost-b cordoned, lost-a dies. One of two lost is a host failure (not the
// widespread loss that pauses rescheduling), so the clone is unbound and finds no host; the
// user deletes it after lost-a returns; it must go, and lost-a must be left clean.
func TestRescheduledCloneThatFindsNoHostCanBeDeleted(t *testing.T) {
	ctx := context.Background()
	h, err := newHost(ctx, "lost-a")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.startAgent(); err != nil {
		t.Fatal(err)
	}
	spare, err := newHost(ctx, "lost-b")
	if err != nil {
		t.Fatal(err)
	}
	if err := spare.startAgent(); err != nil {
		t.Fatal(err)
	}
	ctl, err := startController()
	if err != nil {
		t.Fatal(err)
	}
	nsName := "lost"
	t.Cleanup(func() {
		h.killAgent()
		spare.killAgent()
		ctl.kill()
		cleanupNamespace(nsName)
		forgetHost(h.name)
		forgetHost(spare.name)
		_ = spare.sim.XL(context.Background(), "sim-init")
		_ = k8s.Delete(context.Background(), &vmv1alpha1.VMTemplate{ObjectMeta: metav1.ObjectMeta{Name: "lost-tpl"}})
		_ = h.sim.XL(context.Background(), "sim-init")
	})
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	mem, cow := resource.MustParse("256Mi"), resource.MustParse("64Mi")
	if err := k8s.Create(ctx, &vmv1alpha1.VMTemplate{ObjectMeta: metav1.ObjectMeta{Name: "lost-tpl"}, Spec: vmv1alpha1.VMTemplateSpec{
		Origin:   vmv1alpha1.Origin{VolumeGroup: "vg0", LogicalVolume: "debian12"},
		Snapshot: vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotClassic, COWSize: &cow},
		Domain:   vmv1alpha1.DomainSpec{Memory: &mem, Boot: &vmv1alpha1.BootSpec{Bootloader: "pygrub"}},
	}}); err != nil {
		t.Fatal(err)
	}
	// lost-b takes no clone: the rescheduled clone will find no host.
	var xh vmv1alpha1.XenHost
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if err := k8s.Get(ctx, client.ObjectKey{Name: spare.name}, &xh); err == nil {
			break
		} else if time.Now().After(end) {
			t.Fatalf("XenHost %s never reported: %v", spare.name, err)
		}
	}
	cordon := client.MergeFrom(xh.DeepCopy())
	xh.Spec.Unschedulable = true
	if err := k8s.Patch(ctx, &xh, cordon); err != nil {
		t.Fatal(err)
	}
	c := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: nsName, Name: "movable"},
		Spec: vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: "lost-tpl"},
			Placement: &vmv1alpha1.Placement{OnNodeLost: vmv1alpha1.NodeLostReschedule}}}
	if err := k8s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	var got vmv1alpha1.VMClone
	waitFor := func(what string, d time.Duration, ok func() bool) bool {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			if k8s.Get(ctx, client.ObjectKeyFromObject(c), &got) == nil && ok() {
				return true
			}
		}
		return false
	}
	if !waitFor("Running on lost-a", 30*time.Second, func() bool {
		return got.Status.Phase == vmv1alpha1.PhaseRunning && got.Status.NodeName == "lost-a"
	}) {
		t.Fatalf("clone never ran on lost-a: %s %q", got.Status.Phase, got.Status.Message)
	}

	// lost-a disappears; the clone is unbound and finds no other host.
	h.killAgent()
	if !waitFor("unbound", heartbeatGrace+rescheduleAfter+20*time.Second, func() bool { return got.Status.NodeName == "" }) {
		t.Fatalf("clone was not rescheduled off the lost host: %s %q", got.Status.Phase, got.Status.Message)
	}

	// The host comes back, the user deletes the clone: it must go, and the host must be clean.
	if err := h.startAgent(); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(ctx, c); err != nil {
		t.Fatal(err)
	}
	gone := false
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end) && !gone; time.Sleep(250 * time.Millisecond) {
		gone = apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(c), &got))
	}
	if !gone {
		t.Errorf("BUG: the deleted, unbound clone stays Terminating with finalizers %v (phase %s: %s)", got.Finalizers, got.Status.Phase, got.Status.Message)
	}
	time.Sleep(orphanGrace + 2*time.Second)
	rep, err := h.sim.Storage.Report(ctx, "vg0")
	if err != nil {
		t.Fatal(err)
	}
	for _, lv := range rep.LVs {
		if lv.Managed() {
			t.Errorf("BUG: LV %s of the deleted clone left on lost-a", lv.Name)
		}
	}
}
