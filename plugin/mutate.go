package plugin

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// resetAttempts bounds the read-increment-write loop: each conflict means someone else
// changed the clone in between, which is rare; a clone that keeps changing is worth an error.
const resetAttempts = 5

// RequestReset increments spec.resetRequests by one and returns the new value. The patch
// carries the resourceVersion it read, so two resets at once give two increments, not one
// (a plain merge patch of "current+1" from both would write the same number twice).
func RequestReset(ctx context.Context, c client.Client, ns, name string) (int64, error) {
	var lastErr error
	for range resetAttempts {
		clone, err := GetClone(ctx, c, ns, name)
		if err != nil {
			return 0, err
		}
		next := clone.Spec.ResetRequests + 1
		patch, err := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": clone.ResourceVersion},
			"spec":     map[string]any{"resetRequests": next},
		})
		if err != nil {
			return 0, fmt.Errorf("encode reset patch: %w", err)
		}
		err = c.Patch(ctx, clone, client.RawPatch(types.MergePatchType, patch))
		if err == nil {
			return next, nil
		}
		if !apierrors.IsConflict(err) {
			return 0, fmt.Errorf("patch vmclone %s/%s spec.resetRequests: %w", ns, name, err)
		}
		lastErr = err
	}
	return 0, fmt.Errorf("patch vmclone %s/%s spec.resetRequests: it changed on every one of %d attempts: %w", ns, name, resetAttempts, lastErr)
}

// SetRunStrategy sets spec.runStrategy and returns the value it had (changed is false when it
// had the value already, and nothing was written). No resourceVersion: the last writer of a
// run strategy is meant to win.
func SetRunStrategy(ctx context.Context, c client.Client, ns, name string, s vmv1alpha1.RunStrategy) (was vmv1alpha1.RunStrategy, changed bool, err error) {
	clone, err := GetClone(ctx, c, ns, name)
	if err != nil {
		return "", false, err
	}
	was = clone.Spec.RunStrategy
	if was == "" {
		was = vmv1alpha1.RunStrategyAlways // the schema default, for objects read before it applied
	}
	if was == s {
		return was, false, nil
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"runStrategy": s}})
	if err != nil {
		return "", false, fmt.Errorf("encode run strategy patch: %w", err)
	}
	if err := c.Patch(ctx, clone, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return "", false, fmt.Errorf("patch vmclone %s/%s spec.runStrategy: %w", ns, name, err)
	}
	return was, true, nil
}

// SSHArgv is the ssh command line for a guest: `ssh [-l USER] [ARGS…] IP`. ARGS are ssh
// options (-i, -p, -o …) and come before the address; a remote command would have to follow
// it, which this order does not offer (the help says so).
func SSHArgv(user string, args []string, ip string) []string {
	argv := []string{"ssh"}
	if user != "" {
		argv = append(argv, "-l", user)
	}
	argv = append(argv, args...)
	return append(argv, ip)
}
