package hostagent

import (
	"context"

	"k8s.io/utils/clock"

	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/lvm"
)

// RemoveFinalizer runs the agent's finalizer release against c, for tests that need a writer
// to act between the agent's read and its write.
func RemoveFinalizer(ctx context.Context, c client.Client, clone *vmv1alpha1.VMClone) error {
	return (&CloneReconciler{Client: c}).removeFinalizer(ctx, clone)
}

// ReleaseOriginsAfterRestart runs a fresh reporter's first release of protected origins: the
// stored status st seeds the volume groups to look at, and no template names any LV.
func ReleaseOriginsAfterRestart(ctx context.Context, host Host, st vmv1alpha1.XenHostStatus) (remembered map[string]bool, err error) {
	h := &HostReporter{NodeName: "test", Host: host}
	h.seedProtectedVGs(st)
	err = h.releaseOrigins(ctx, nil, map[string]lvm.Report{})
	return h.protectedVGs, err
}

// LegacyDomainName is the domain name agents from before unique names gave a clone.
func LegacyDomainName(c *vmv1alpha1.VMClone) string { return legacyDomainName(c) }

// SetFenceClock makes c the agent's fence clock alone (the rest of the agent keeps o.Clock), so
// a test steps the time since the last heartbeat renewal without stepping everything else.
func SetFenceClock(o *Options, c clock.WithTicker) { o.fenceClock = c }
