package v1alpha1_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xenclone/xenclone/hostagent/xen"
)

// Adversarial manifests, beyond the schema table of validation_test.go: huge strings, unicode
// look-alikes and direction overrides, shell and xl.cfg metacharacters in every string that
// reaches a host (names, hostname, bridge, kernel paths, secret keys). Each must be refused by
// the API server with a message naming the field — or, where the API accepts it, be stored
// byte for byte (the agent then quotes or refuses it: hostagent/xen FuzzRenderNoInjection and
// the soak's soak-kernel template).

func TestAPIServerRefusesHostileManifests(t *testing.T) {
	ns := testNamespace(t)
	huge := strings.Repeat("a", 1<<20)
	cases := []struct {
		name  string
		base  string
		edit  func(map[string]any)
		field string // the rejection must name it
	}{
		{"clone name of 300 characters", baseClone, set("metadata.name", strings.Repeat("w", 300)), "metadata.name"},
		{"clone name with unicode", baseClone, set("metadata.name", "wéb-1"), "metadata.name"},
		{"hostname of 1 MiB", baseClone, set("spec.hostname", huge), "spec.hostname"},
		{"hostname with a shell command", baseClone, set("spec.hostname", "web;reboot"), "spec.hostname"},
		{"hostname with a Cyrillic look-alike", baseClone, set("spec.hostname", "wеb-1"), "spec.hostname"},
		{"hostname with a right-to-left override", baseClone, set("spec.hostname", "\u202eweb"), "spec.hostname"},
		{"hostname with a newline", baseClone, set("spec.hostname", "web\nname = \"evil\""), "spec.hostname"},
		{"domain name escaping the config folder", baseClone, set("spec.domainName", "../../etc/xen/evil"), "spec.domainName"},
		{"domain name with a quote", baseClone, set("spec.domainName", `web"; on_crash="preserve`), "spec.domainName"},
		{"domain name all digits", baseClone, set("spec.domainName", "0"), "spec.domainName"},
		{"domain name of 1 MiB", baseClone, set("spec.domainName", huge), "spec.domainName"},
		{"bridge with a vif option", baseClone, set("spec.nics", []any{map[string]any{"bridge": "xenbr0,script=/tmp/x"}}), "spec.nics[0].bridge"},
		{"bridge with unicode", baseClone, set("spec.nics", []any{map[string]any{"bridge": "xenbr٠"}}), "spec.nics[0].bridge"},
		{"broadcast MAC", baseClone, set("spec.nics", []any{map[string]any{"mac": "ff:ff:ff:ff:ff:ff"}}), "spec.nics[0].mac"},
		{"MAC with a vif option", baseClone, set("spec.nics", []any{map[string]any{"mac": "00:16:3e:00:00:01,bridge=x"}}), "spec.nics[0].mac"},
		{"nine NICs", baseClone, set("spec.nics", []any{map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}}), "spec.nics"},
		{"user-data key walking up", baseClone, set("spec.cloudInit", map[string]any{"userData": map[string]any{"name": "s", "key": "../../etc/shadow"}}), "spec.cloudInit.userData.key"},
		{"memory 1e100", baseClone, set("spec.resources", map[string]any{"memory": "1e100"}), "spec.resources.memory"},
		{"negative memory", baseClone, set("spec.resources", map[string]any{"memory": "-1Gi"}), "spec.resources.memory"},
		{"pinned node with a path", baseClone, set("spec.placement", map[string]any{"nodeName": "../xen-b"}), "spec.placement.nodeName"},
		{"TTL written as seconds", baseClone, set("spec.lifetime", map[string]any{"expireAfter": "99999999999999999999s"}), "spec.lifetime.expireAfter"},

		{"cmdline with a newline", baseTemplate, set("spec.domain.boot", map[string]any{"kernel": "/boot/vmlinuz", "cmdline": "quiet\non_crash = \"preserve\""}), "spec.domain.boot.cmdline"},
		{"cmdline with NUL", baseTemplate, set("spec.domain.boot", map[string]any{"kernel": "/boot/vmlinuz", "cmdline": "quiet\x00x"}), "spec.domain.boot.cmdline"},
		{"cmdline of 1 MiB", baseTemplate, set("spec.domain.boot", map[string]any{"kernel": "/boot/vmlinuz", "cmdline": huge}), "spec.domain.boot.cmdline"},
		{"kernel path with a shell command", baseTemplate, set("spec.domain.boot", map[string]any{"kernel": "/boot/vmlinuz;rm -rf /"}), "spec.domain.boot.kernel"},
		{"kernel path with a quote", baseTemplate, set("spec.domain.boot", map[string]any{"kernel": `/boot/vmlinuz"`}), "spec.domain.boot.kernel"},
		{"ramdisk path relative", baseTemplate, set("spec.domain.boot", map[string]any{"kernel": "/boot/vmlinuz", "ramdisk": "initrd.img"}), "spec.domain.boot.ramdisk"},
		{"origin VG with a shell command", baseTemplate, set("spec.origin", map[string]any{"volumeGroup": "vg0;reboot", "logicalVolume": "debian12"}), "spec.origin.volumeGroup"},
		{"origin LV looking like an option", baseTemplate, set("spec.origin", map[string]any{"volumeGroup": "vg0", "logicalVolume": "--yes"}), "spec.origin.logicalVolume"},
		{"origin LV with a slash", baseTemplate, set("spec.origin", map[string]any{"volumeGroup": "vg0", "logicalVolume": "../vg1/db"}), "spec.origin.logicalVolume"},
		{"allowed namespace wildcard", baseTemplate, set("spec.allowedNamespaces", []any{"*"}), "spec.allowedNamespaces"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			obj := decode(t, tc.base, fmt.Sprintf("hostile-%d", i), ns)
			tc.edit(obj.Object)
			err := k8sClient.Create(ctx, obj)
			if err == nil {
				_ = k8sClient.Delete(context.Background(), obj)
				t.Fatalf("the API server accepted it; want a rejection naming %s", tc.field)
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) && !apierrors.IsRequestEntityTooLargeError(err) {
				t.Fatalf("want Invalid, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("rejection does not name %s: %.400s", tc.field, err)
			}
			if len(err.Error()) > 8<<10 {
				t.Errorf("rejection is %d bytes long: it echoes the hostile value", len(err.Error()))
			}
		})
	}
}

// TestAPIServerStoresAcceptedOddValuesVerbatim: values the schema lets through on purpose
// (an xl.cfg-hostile but printable cmdline, a huge but valid COW size) are stored exactly;
// the renderer quotes them (hostagent/xen) and the agent reports lvm's refusal.
func TestAPIServerStoresAcceptedOddValuesVerbatim(t *testing.T) {
	ns := testNamespace(t)
	ctx := context.Background()
	cmdline := `root=/dev/xvda1 x="]; on_crash = \"preserve\" # ' \`
	tpl := decode(t, baseTemplate, "hostile-ok-template", ns)
	set("spec.domain.boot", map[string]any{"kernel": "/boot/vmlinuz-6.1", "cmdline": cmdline})(tpl.Object)
	clone := decode(t, baseClone, "hostile-ok-clone", ns)
	set("spec.storage", map[string]any{"cowSize": "1Ei"})(clone.Object)
	for _, obj := range []*unstructured.Unstructured{tpl, clone} {
		if err := k8sClient.Create(ctx, obj); err != nil {
			t.Fatalf("%s rejected: %v", obj.GetKind(), err)
		}
		t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), obj) })
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(tpl.GroupVersionKind())
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(tpl), got); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedString(got.Object, "spec", "domain", "boot", "cmdline"); v != cmdline {
		t.Errorf("cmdline stored as %q, sent %q", v, cmdline)
	}
}

// TestKernelPathWithDotDot: the schema's kernel/ramdisk pattern allows "..", so a template may
// name /boot/../etc/shadow as its kernel. The API server accepts it today (a gap in the CEL rule,
// reported); the renderer refuses it, so no domain is ever started with it.
func TestKernelPathWithDotDot(t *testing.T) {
	ns := testNamespace(t)
	const kernel = "/boot/../etc/shadow"
	tpl := decode(t, baseTemplate, "hostile-dotdot", ns)
	set("spec.domain.boot", map[string]any{"kernel": kernel})(tpl.Object)
	if err := k8sClient.Create(context.Background(), tpl); err == nil {
		t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), tpl) })
		t.Logf("FINDING: the API server accepts spec.domain.boot.kernel %q; add a CEL rule refusing '..' segments", kernel)
	}
	c := xen.DomainConfig{Name: "vm-1", UUID: "5a0b3c9e-8d1f-4e2a-9b7c-1d2e3f405162", Type: xen.GuestPV, MemoryMiB: 256, VCPUs: 1,
		Kernel: kernel, Disks: []xen.Disk{{Target: "/dev/vg0/c1", Vdev: "xvda"}}}
	if _, err := xen.Render(c); !errors.Is(err, xen.ErrInvalidConfig) {
		t.Fatalf("the renderer accepts kernel %q: %v", kernel, err)
	}
}
