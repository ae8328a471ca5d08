// Package hostagent is the node agent that runs on every Xen dom0 (DaemonSet). It watches only
// the VMClones bound to its node and drives the host toward them: LVM snapshot, guest scrub and
// personalization, xl domain. Host tools sit behind small interfaces in its sub-packages
// (lvm, guest, xen), with a simulated host in sim for tests and the playground.
package hostagent

// The agent's permissions, rendered into config/rbac/hostagent by `make manifests`. It may read
// templates, read and update the clones bound to it (status and its finalizer), report its own
// XenHost and renew its own Lease. Restricting an agent to its own node's objects at admission
// is described in docs/security.md.
//
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmtemplates,verbs=get;list;watch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclones,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclones/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmclones/finalizers,verbs=update
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=xenhosts,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=xenhosts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
