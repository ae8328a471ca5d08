// Package hostagent is the node agent that runs on every Xen dom0 (DaemonSet). It watches only
// the VMClones bound to its node and drives the host toward them: LVM snapshot, guest scrub and
// personalization, xl domain. Host tools sit behind small interfaces in its sub-packages
// (lvm, guest, xen), with a simulated host in sim for tests and the playground.
package hostagent

// The agent's permissions, rendered into config/rbac/hostagent by `make manifests`. Every write
// is a patch (merge patch for its finalizer, server-side apply for status), so no update verb.
// It may read templates, patch the clones bound to it, report its own XenHost and renew its own
// Lease, and read the controller's copies of cloud-init data (both a Role in the lease namespace
// only: no tenant Secret is readable). Restricting an agent to its own node's objects at
// admission is in docs/security.md.
//
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmtemplates,verbs=get;list;watch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclones,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclones/status,verbs=get;patch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=xenhosts,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=xenhosts/status,verbs=get;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update,namespace=xenclone-system
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get,namespace=xenclone-system
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
