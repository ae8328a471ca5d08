package hostagent_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent"
)

// TestFinalizerReleaseKeepsAFinalizerAddedMeanwhile: the agent releases a finalizer an older
// agent added (the apply cannot take it back) from the clone it read; another writer adds its
// own finalizer after that read. The release must neither drop the other writer's finalizer
// nor fail because the clone it read is no longer current.
func TestFinalizerReleaseKeepsAFinalizerAddedMeanwhile(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	// No such template: no host takes the clone, so no agent touches it but this test's.
	c := clone(t, ns, "fin-race", "tpl-does-not-exist", func(c *vmv1alpha1.VMClone) {
		c.Finalizers = []string{"example.com/before", vmv1alpha1.CloneFinalizer}
	})
	read := &vmv1alpha1.VMClone{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), read)).To(Succeed())

	// Another writer adds its finalizer between the agent's read and its write. It retries on
	// a conflict, as any writer with an optimistic lock must: the controller writes the
	// clone's status (no such template) at any moment.
	setFinalizers := func(edit func([]string) []string) {
		g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur := &vmv1alpha1.VMClone{}
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(c), cur); err != nil {
				return err
			}
			patch := client.MergeFromWithOptions(cur.DeepCopy(), client.MergeFromWithOptimisticLock{})
			cur.Finalizers = edit(cur.Finalizers)
			return k8sClient.Patch(ctx, cur, patch)
		})).To(Succeed())
	}
	setFinalizers(func(f []string) []string { return append(f, "example.com/added-meanwhile") })

	g.Expect(hostagent.RemoveFinalizer(ctx, k8sClient, read)).To(Succeed())
	got := &vmv1alpha1.VMClone{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), got)).To(Succeed())
	g.Expect(got.Finalizers).To(ConsistOf("example.com/before", "example.com/added-meanwhile"))

	// Let the test's clone go.
	setFinalizers(func([]string) []string { return nil })
	g.Expect(k8sClient.Delete(ctx, got)).To(Succeed())
}
