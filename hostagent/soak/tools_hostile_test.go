package soak

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/lvm"
	"github.com/xenclone/xenclone/hostagent/sim"
)

// A fake lvm for the whole agent: it answers from dir/mode and records every call.
const fakeLVMScript = `#!/bin/sh
dir="$(dirname "$0")"
printf '%s\n' "$*" >>"$dir/calls"
case "$(cat "$dir/mode")" in
truncated) printf '{"report":[{"vg":[{"vg_name":"xenclonefixture","vg_si' ;;
stderr) printf '\033[31m\000\377  Internal error: Unreleased memory pool(s) found.\033[0m\n' >&2; exit 5 ;;
ok) cat "$dir/fullreport.json" ;;
esac
`

// TestAgentOnGarbageLVM runs the real agent with lvm answering garbage (a truncated report,
// then a crash with binary stderr): the clone says what is wrong, no lvm write runs, no domain,
// config or seed appears; once lvm answers sanely again, deleting the clone leaves nothing.
func TestAgentOnGarbageLVM(t *testing.T) {
	ctx := context.Background()
	const node = "junk-a"
	dir := t.TempDir()
	h, err := sim.NewHost(ctx, node, filepath.Join(dir, "host"), sim.HostOptions{XL: []string{xlBinary}})
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "lvm")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(bin, []byte(fakeLVMScript), 0o755))
	fixture, err := os.ReadFile("../lvm/testdata/real/fullreport-empty-vg.json")
	must(err)
	must(os.WriteFile(filepath.Join(dir, "fullreport.json"), fixture, 0o644))
	setMode := func(m string) { must(os.WriteFile(filepath.Join(dir, "mode"), []byte(m), 0o644)) }
	setMode("truncated")

	host := h.AgentHost()
	host.Storage = hostagent.LVMStorage{LVM: &lvm.Client{Binary: bin}}
	mgr, err := ctrl.NewManager(cfg, func() ctrl.Options {
		o := managerOptions()
		o.Cache = hostagent.CacheOptions(node)
		o.MapperProvider = hostagent.MapperProvider
		return o
	}())
	must(err)
	must(hostagent.SetupWithManager(mgr, hostagent.Options{NodeName: node, Host: host, LeaseNamespace: leaseNamespace,
		RenewInterval: time.Second, ShutdownGrace: time.Second, OrphanInterval: time.Second, OrphanGrace: time.Second}))
	agent := startManager(mgr)
	nsName := "junk"
	t.Cleanup(func() {
		agent.kill()
		cleanupNamespace(nsName)
		forgetHost(node)
		_ = k8s.Delete(context.Background(), &vmv1alpha1.VMTemplate{ObjectMeta: metav1.ObjectMeta{Name: "junk-tpl"}})
		_ = h.XL(context.Background(), "sim-init")
	})
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	mem, cow := resource.MustParse("256Mi"), resource.MustParse("64Mi")
	must(k8s.Create(ctx, &vmv1alpha1.VMTemplate{ObjectMeta: metav1.ObjectMeta{Name: "junk-tpl"}, Spec: vmv1alpha1.VMTemplateSpec{
		Origin:   vmv1alpha1.Origin{VolumeGroup: "xenclonefixture", LogicalVolume: "debian12"},
		Snapshot: vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotClassic, COWSize: &cow},
		Domain:   vmv1alpha1.DomainSpec{Memory: &mem, Boot: &vmv1alpha1.BootSpec{Bootloader: "pygrub"}},
	}}))
	// Bound by hand the way the controller binds (no controller here: it would see no capacity).
	c := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: nsName, Name: "web-1"},
		Spec: vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: "junk-tpl"}}}
	must(k8s.Create(ctx, c))
	patch := client.MergeFrom(c.DeepCopy())
	c.Status.NodeName, c.Status.BindingGeneration, c.Status.UUID = node, 1, "0c1d2e3f-0000-4000-8000-00000000beef"
	c.Status.Interfaces = []vmv1alpha1.InterfaceStatus{{Index: 0, MAC: "00:16:3e:00:be:ef", Bridge: "xenbr0"}}
	must(k8s.Status().Patch(ctx, c, patch))

	waitMessage := func(want string) {
		t.Helper()
		var got vmv1alpha1.VMClone
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			if k8s.Get(ctx, client.ObjectKeyFromObject(c), &got) != nil {
				continue
			}
			if cond := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionVolumeReady); cond != nil &&
				cond.Status == metav1.ConditionFalse && strings.Contains(cond.Message, want) {
				if len(cond.Message) > 4096 {
					t.Errorf("condition message is %d bytes", len(cond.Message))
				}
				return
			}
		}
		t.Fatalf("VolumeReady never said %q; conditions: %+v", want, got.Status.Conditions)
	}
	noWrites := func() {
		t.Helper()
		b, _ := os.ReadFile(filepath.Join(dir, "calls"))
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] != "fullreport" && f[0] != "lvs" {
				t.Errorf("lvm write ran on garbage: %s", line)
			}
		}
		doms, err := h.Xen.List(ctx)
		must(err)
		if len(doms) != 1 {
			t.Errorf("domains appeared: %+v", doms)
		}
		if seeds, _ := h.Guest.Seeds(ctx); len(seeds) > 0 {
			t.Errorf("seeds appeared: %v", seeds)
		}
		if entries, _ := os.ReadDir(host.ConfigDir); len(entries) > 0 {
			t.Errorf("domain configs appeared: %d", len(entries))
		}
	}

	waitMessage("cannot read volume group xenclonefixture")
	noWrites()
	setMode("stderr")
	waitMessage("Internal error: Unreleased memory pool")
	noWrites()

	// Deleting while lvm is broken keeps the finalizer (the host cannot be proven clean) …
	must(k8s.Delete(ctx, c))
	time.Sleep(3 * time.Second)
	var got vmv1alpha1.VMClone
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(c), &got); err != nil {
		t.Fatalf("the clone went while lvm could not tell whether its disk exists: %v", err)
	}
	// … and releases it once lvm answers sanely again.
	setMode("ok")
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(c), &got)) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("finalizer not released after lvm recovered: %s %v", got.Status.Message, got.Finalizers)
		}
	}
	noWrites()
}
