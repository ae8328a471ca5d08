// Package controllers holds the central manager's reconcilers, one per kind: templates,
// placement and lifecycle of clones, pools, and host liveness. The manager decides; the host
// agents act (see package hostagent).
package controllers

// The manager's permissions, rendered into config/rbac/manager by `make manifests`.
//
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmtemplates;vmclones;vmclonepools;xenhosts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmtemplates/status;vmclones/status;vmclonepools/status;xenhosts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=vm.xenclone.dev,resources=vmtemplates/finalizers;vmclones/finalizers;vmclonepools/finalizers,verbs=update
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
