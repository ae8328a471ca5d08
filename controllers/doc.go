// Package controllers holds the central manager's reconcilers, one per kind: templates,
// placement and lifecycle of clones, pools, and host liveness. The manager decides; the host
// agents act (see package hostagent). SetupWithManager (setup.go) registers them all.
//
// # Contract with the host agent
//
//   - Heartbeat: a coordination.k8s.io Lease named after the host (its node name, the same as
//     its XenHost) in Options.LeaseNamespace (default xenclone-system), spec.renewTime renewed
//     every ~10 s, and the annotation vm.xenclone.dev/fence-after (the agent's fenceAfter).
//     A host is live while the controller saw renewTime change less than
//     Options.HeartbeatGrace (default 40 s) ago on its own clock; renewTime's value is only
//     compared with the one before (Heartbeats), so the agent's clock may be skewed.
//     Placement uses only live hosts.
//   - XenHost status (memory.freeMiB, volumeGroups, templates with readOnly) changes when
//     capacity does. Placement subtracts, per host, the memory of clones bound but not yet
//     Running and the COW size of clones whose VolumeReady is not True, so the agent should
//     report the new free memory no later than it sets phase Running.
//   - Binding: the controller writes status.nodeName, uuid, interfaces (MACs) and hostname,
//     then the label vm.xenclone.dev/node=<host>; the agent's cache selects on that label.
//   - Status ownership: server-side apply with field manager xenclone-hostagent, force=true,
//     for phase (from Provisioning on), message, domain, volume, observedGeneration,
//     observedResetRequests, timestamps other than scheduled, and the conditions
//     VolumeReady, GuestPrepared, DomainRunning, StorageAtRisk. The controller owns the rest
//     (see the table in vmclone_controller.go) and derives Ready from the agent's conditions.
//   - Stop on expiry: when spec.lifetime ends with onExpiry: Stop, the controller sets the
//     condition Expired=True (reason LifetimeEnded); the agent keeps such a clone's domain
//     stopped, as if runStrategy were Halted, and keeps its disk.
//   - Finalizer vm.xenclone.dev/host-cleanup is the agent's: added when it first acts on a
//     clone, removed once domain, config, seed and snapshot are gone from its host.
//   - Fencing: an agent that cannot renew its Lease for its fenceAfter stops the domains of
//     its clones with spec.placement.onNodeLost: Reschedule. The controller moves such a clone
//     only after max(grace + Options.NodeLostRescheduleAfter, fenceAfter +
//     Options.FenceMargin) since the last renewal it saw, and never off a host whose Lease
//     lacks a valid fence-after (DecideReschedule).
//   - Rescheduled clones (spec.placement.onNodeLost: Reschedule, host lost for
//     Options.NodeLostRescheduleAfter) get a new status.nodeName and label; an agent that comes
//     back must treat domains and LVs it owns for a clone now bound elsewhere as garbage.
//     No clone moves while Options.RescheduleMaxLostFraction (default 55%) or more of the
//     hosts are lost at once: that is an outage on the control plane's side far more often
//     than that many hosts failing, and moving would start second copies of live guests.
//
// # Force-releasing clones of a host that is gone for good
//
// A clone's finalizer is released by its host's agent. If the host will never return, the
// clones bound to it stay Terminating after deletion (their Ready condition says NodeLost).
// After making sure the host is really off (its domains would keep running with the same
// MACs), an administrator releases them:
//
//	kubectl get vmclones -A -l vm.xenclone.dev/node=HOST --no-headers \
//	  -o custom-columns=NS:.metadata.namespace,NAME:.metadata.name |
//	while read -r ns name; do
//	  kubectl -n "$ns" patch vmclone "$name" --type=json \
//	    -p '[{"op":"remove","path":"/metadata/finalizers"}]'
//	done
//	kubectl delete xenhost HOST
package controllers

// The manager's permissions are the +kubebuilder:rbac markers on each reconciler (rendered into
// config/rbac/manager by `make manifests`); docs/security.md explains each verb.
