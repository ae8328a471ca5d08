package hostagent

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// RemoveFinalizer runs the agent's finalizer release against c, for tests that need a writer
// to act between the agent's read and its write.
func RemoveFinalizer(ctx context.Context, c client.Client, clone *vmv1alpha1.VMClone) error {
	return (&CloneReconciler{Client: c}).removeFinalizer(ctx, clone)
}
