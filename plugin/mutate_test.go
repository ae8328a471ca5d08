package plugin

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hack/testenv"
)

func getClone(t *testing.T, ns, name string) *vmv1alpha1.VMClone {
	t.Helper()
	var c vmv1alpha1.VMClone
	if err := admin.Get(ctxFor(t), types.NamespacedName{Namespace: ns, Name: name}, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestResetIncrementsAndKeepsTheRest(t *testing.T) {
	testenv.Need(t)
	t.Parallel()
	ctx, ns := ctxFor(t), newNamespace(t, "team")
	c := newClone(t, ns, "web-1", placed(uniq("xen"), "xc-web-1"))
	c.Spec.ResetRequests, c.Spec.Hostname, c.Spec.RunStrategy = 2, "web-one", vmv1alpha1.RunStrategyOnce
	if err := admin.Update(ctx, c); err != nil {
		t.Fatal(err)
	}
	n, err := RequestReset(ctx, admin, ns, "web-1")
	if err != nil || n != 3 {
		t.Fatalf("reset: %d, %v; want 3", n, err)
	}
	got := getClone(t, ns, "web-1")
	if got.Spec.ResetRequests != 3 || got.Spec.Hostname != "web-one" || got.Spec.RunStrategy != vmv1alpha1.RunStrategyOnce ||
		got.Spec.TemplateRef.Name != "debian12" || got.Status.Domain == nil || got.Status.Domain.Name != "xc-web-1" {
		t.Errorf("after reset: spec %+v status.domain %+v", got.Spec, got.Status.Domain)
	}
	_, err = RequestReset(ctx, admin, ns, "nope")
	wantErr(t, err, "vmclone "+ns+"/nope not found (kubectl get vmclones -n "+ns+" lists them)")
}

// resetBehindItsBack is a client whose every Patch (up to times) is preceded by another user's
// reset, so the plugin's patch carries a stale resourceVersion and the API server refuses it.
func resetBehindItsBack(t *testing.T, times int) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	base, err := client.NewWithWatch(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	return interceptor.NewClient(base, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if n < times {
				n++
				other := obj.DeepCopyObject().(*vmv1alpha1.VMClone)
				other.Spec.ResetRequests++
				if err := c.Update(ctx, other); err != nil {
					t.Errorf("the other user's reset: %v", err)
				}
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
	})
}

func TestConcurrentResetsBothCount(t *testing.T) {
	testenv.Need(t)
	t.Parallel()
	ctx, ns := ctxFor(t), newNamespace(t, "team")
	newClone(t, ns, "web-1", nil)
	n, err := RequestReset(ctx, resetBehindItsBack(t, 1), ns, "web-1")
	if err != nil || n != 2 {
		t.Fatalf("reset after a conflict: %d, %v; want 2 (the other user's 1, then ours)", n, err)
	}
	if got := getClone(t, ns, "web-1").Spec.ResetRequests; got != 2 {
		t.Errorf("spec.resetRequests %d, want 2", got)
	}

	newClone(t, ns, "busy", nil)
	_, err = RequestReset(ctx, resetBehindItsBack(t, resetAttempts), ns, "busy")
	if err == nil || !strings.Contains(err.Error(), "it changed on every one of 5 attempts") {
		t.Errorf("always in conflict: %v", err)
	}
}

func TestStopAndStartSetTheRunStrategy(t *testing.T) {
	testenv.Need(t)
	t.Parallel()
	ctx, ns := ctxFor(t), newNamespace(t, "team")
	c := newClone(t, ns, "web-1", nil)
	c.Spec.ResetRequests = 4
	if err := admin.Update(ctx, c); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		set, was vmv1alpha1.RunStrategy
		changed  bool
	}{
		{vmv1alpha1.RunStrategyHalted, vmv1alpha1.RunStrategyAlways, true}, // the schema's default before
		{vmv1alpha1.RunStrategyHalted, vmv1alpha1.RunStrategyHalted, false},
		{vmv1alpha1.RunStrategyAlways, vmv1alpha1.RunStrategyHalted, true},
	}
	for _, s := range steps {
		was, changed, err := SetRunStrategy(ctx, admin, ns, "web-1", s.set)
		if err != nil || was != s.was || changed != s.changed {
			t.Fatalf("set %s: was %s changed %v err %v; want was %s changed %v", s.set, was, changed, err, s.was, s.changed)
		}
		got := getClone(t, ns, "web-1")
		if got.Spec.RunStrategy != s.set || got.Spec.ResetRequests != 4 {
			t.Fatalf("after %s: runStrategy %s resetRequests %d", s.set, got.Spec.RunStrategy, got.Spec.ResetRequests)
		}
	}
}
