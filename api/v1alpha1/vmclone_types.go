package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RunStrategy says whether a clone's domain should run.
// +kubebuilder:validation:Enum=Always;RerunOnFailure;Once;Halted
type RunStrategy string

const (
	// RunStrategyAlways keeps the domain running: whenever it stops, it is started again.
	RunStrategyAlways RunStrategy = "Always"
	// RunStrategyRerunOnFailure restarts the domain after a crash but not after a clean power-off.
	RunStrategyRerunOnFailure RunStrategy = "RerunOnFailure"
	// RunStrategyOnce starts the domain once; when it stops it stays stopped.
	RunStrategyOnce RunStrategy = "Once"
	// RunStrategyHalted prepares the disk but keeps the domain stopped (a clean shut-down is
	// requested if it runs).
	RunStrategyHalted RunStrategy = "Halted"
)

// ExpiryAction is what happens to a clone when its lifetime ends.
// +kubebuilder:validation:Enum=Delete;Stop
type ExpiryAction string

const (
	ExpiryDelete ExpiryAction = "Delete"
	ExpiryStop   ExpiryAction = "Stop"
)

// PlacementStrategy chooses between spreading clones and packing hosts.
// +kubebuilder:validation:Enum=Spread;Pack
type PlacementStrategy string

const (
	PlacementSpread PlacementStrategy = "Spread"
	PlacementPack   PlacementStrategy = "Pack"
)

// NodeLostAction is what happens to a clone whose host stops reporting.
// +kubebuilder:validation:Enum=Wait;Reschedule
type NodeLostAction string

const (
	NodeLostWait       NodeLostAction = "Wait"
	NodeLostReschedule NodeLostAction = "Reschedule"
)

// VMClonePhase summarizes where a clone is in its life.
// +kubebuilder:validation:Enum=Pending;Scheduled;Provisioning;Starting;Running;Paused;Stopping;Stopped;Resetting;Failed;Unknown;Terminating
type VMClonePhase string

const (
	PhasePending VMClonePhase = "Pending"
	// PhaseScheduled is no longer written (the binding is status.nodeName and the Scheduled
	// condition); it stays valid for objects written by earlier versions.
	PhaseScheduled    VMClonePhase = "Scheduled"
	PhaseProvisioning VMClonePhase = "Provisioning"
	PhaseStarting     VMClonePhase = "Starting"
	PhaseRunning      VMClonePhase = "Running"
	// PhasePaused: a warm standby (spec.pause), booted, ballooned down and paused.
	PhasePaused      VMClonePhase = "Paused"
	PhaseStopping    VMClonePhase = "Stopping"
	PhaseStopped     VMClonePhase = "Stopped"
	PhaseResetting   VMClonePhase = "Resetting"
	PhaseFailed      VMClonePhase = "Failed"
	PhaseUnknown     VMClonePhase = "Unknown"
	PhaseTerminating VMClonePhase = "Terminating"
)

// VMCloneSpec is what a user asks for: a running (or halted) copy of a template.
// +kubebuilder:validation:XValidation:rule="!has(self.pause) || !has(self.runStrategy) || self.runStrategy == 'Always'",fieldPath=".pause",message="spec.pause needs runStrategy Always (a paused standby is a running guest): remove spec.pause or set runStrategy: Always"
// +kubebuilder:validation:XValidation:rule="!has(self.resources) || !has(self.resources.maxMemory) || !has(self.resources.memory) || quantity(string(self.resources.maxMemory)).compareTo(quantity(string(self.resources.memory))) >= 0",message="spec.resources.maxMemory must be greater than or equal to spec.resources.memory: raise maxMemory or lower memory"
type VMCloneSpec struct {
	// TemplateRef names the VMTemplate to clone. It cannot change after creation: delete the
	// clone and create a new one to change templates.
	TemplateRef LocalObjectReference `json:"templateRef"`

	// RunStrategy says whether the domain runs: Always (default), RerunOnFailure, Once or Halted.
	// +kubebuilder:default=Always
	// +optional
	RunStrategy RunStrategy `json:"runStrategy,omitempty"`

	// Hostname is the guest's host name (RFC 1123 label). Default: the clone's name (pool
	// members get their index appended).
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="hostname must be an RFC 1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. web-1"
	// +optional
	Hostname string `json:"hostname,omitempty"`

	// DomainName overrides the Xen domain name. Default: xc-<namespace>-<name>-<10 hex digits
	// of a hash of the clone's UID>, unique by construction (cut to 64 characters, the hash
	// kept); status.domain.name shows the name in use. A name set here must be unique across
	// the cluster: one another bound clone has is refused before placement (condition
	// Scheduled, reason DomainNameTaken). It cannot change.
	// +optional
	DomainName DomainName `json:"domainName,omitempty"`

	// Resources override the template's memory and vCPUs.
	// +optional
	Resources *CloneResources `json:"resources,omitempty"`

	// NICs override the template's network interfaces (bridges, pinned MACs). Unset means the
	// template's NICs with MACs allocated by the controller.
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:XValidation:rule="self.all(n, !has(n.mac) || self.exists_one(m, has(m.mac) && m.mac == n.mac))",message="spec.nics: each pinned mac must be different: change or remove the duplicate mac"
	// +listType=atomic
	// +optional
	NICs []NIC `json:"nics,omitempty"`

	// Placement pins or restricts the host the clone runs on.
	// +optional
	Placement *Placement `json:"placement,omitempty"`

	// CloudInit supplies user data and network config for the clone's NoCloud seed disk.
	// +optional
	CloudInit *CloudInitSpec `json:"cloudInit,omitempty"`

	// Lifetime makes the clone disposable: after ExpireAfter it is deleted or stopped.
	// +optional
	Lifetime *Lifetime `json:"lifetime,omitempty"`

	// ResetRequests resets the clone's disk to the template each time it is increased: the
	// domain stops, the snapshot is replaced by a fresh one, scrubbed and started again. The
	// clone's identity (UUID, MACs, hostname) stays. A counter rather than an action so a
	// GitOps repository can drive it; it can only grow.
	// +kubebuilder:validation:Minimum=0
	// +optional
	ResetRequests int64 `json:"resetRequests,omitempty"`

	// Storage overrides the template's storage settings for this clone.
	// +optional
	Storage *CloneStorage `json:"storage,omitempty"`

	// Pause makes the clone a paused warm standby (what a VMClonePool with warmState Paused
	// sets on its members): once the guest has run for pause.after, so it has booted, the host
	// agent balloons its memory down to pause.memory (xl mem-set) and pauses the domain (xl
	// pause). Removing it (a VMClaim does) restores the memory and unpauses the domain: the
	// guest carries on where it was, without a boot. Only with runStrategy Always.
	// +optional
	Pause *PauseSpec `json:"pause,omitempty"`

	// GuestData names a Secret in the clone's namespace whose keys reach the running guest
	// without a restart: the host agent writes each key under the domain's xenstore
	// data/xenclone/ tree (read in the guest with xenstore-read), then data/xenclone/ready.
	// A VMClaim sets it from its spec.data. See docs/user-guide.md "Claim-time data".
	// +optional
	GuestData *GuestDataSpec `json:"guestData,omitempty"`
}

// PauseSpec is how a warm standby waits.
type PauseSpec struct {
	// Memory the domain keeps while paused (the balloon target), e.g. 128Mi; at least 32Mi.
	// The guest needs a balloon driver for the memory to be given back to the host; placement
	// counts what a paused clone holds. Default 128Mi.
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('32Mi')) >= 0",message="spec.pause.memory must be at least 32Mi, e.g. 128Mi"
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
	// After is how long the guest runs before it is paused, as a Go duration (default 30s):
	// long enough for it to boot, so a claim resumes a booted guest.
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="spec.pause.after must be a duration written like 30s or 2m"
	// +optional
	After *metav1.Duration `json:"after,omitempty"`
}

// GuestDataSpec names the Secret whose keys are delivered into a running guest.
type GuestDataSpec struct {
	// SecretRef names a Secret in the clone's namespace. Each key (at most 16, each value at
	// most 2048 bytes: xenstore's limit) becomes data/xenclone/<key>.
	SecretRef LocalObjectReference `json:"secretRef"`
}

// CloneResources override a template's domain sizing.
type CloneResources struct {
	// Memory at start, e.g. 2Gi; 32Mi to 4Ti.
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('32Mi')) >= 0 && quantity(string(self)).compareTo(quantity('4Ti')) <= 0",message="memory must be between 32Mi and 4Ti, e.g. 512Mi or 2Gi"
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
	// MaxMemory the guest may balloon up to; at least Memory.
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('32Mi')) >= 0 && quantity(string(self)).compareTo(quantity('4Ti')) <= 0",message="maxMemory must be between 32Mi and 4Ti, e.g. 1Gi"
	// +optional
	MaxMemory *resource.Quantity `json:"maxMemory,omitempty"`
	// VCPUs online at start, 1 to 512.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=512
	// +optional
	VCPUs *int32 `json:"vcpus,omitempty"`
}

// Placement constrains which host runs a clone.
// +kubebuilder:validation:XValidation:rule="!has(self.nodeName) || !has(self.hostSelector)",message="spec.placement: set either nodeName (pin to one host) or hostSelector (choose among hosts), not both"
// +kubebuilder:validation:XValidation:rule="!has(self.nodeName) || !has(self.onNodeLost) || self.onNodeLost != 'Reschedule'",message="spec.placement.onNodeLost: Reschedule cannot move a clone pinned to one host with nodeName: remove one of the two"
type Placement struct {
	// NodeName pins the clone to one host (its Kubernetes node name).
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="nodeName must be a Kubernetes node name (lowercase RFC 1123 subdomain), e.g. xen-01"
	// +optional
	NodeName string `json:"nodeName,omitempty"`
	// HostSelector restricts the clone to XenHosts whose labels match.
	// +optional
	HostSelector *metav1.LabelSelector `json:"hostSelector,omitempty"`
	// Strategy is Spread (default: the least loaded host) or Pack (fill hosts in turn).
	// +kubebuilder:default=Spread
	// +optional
	Strategy PlacementStrategy `json:"strategy,omitempty"`
	// OnNodeLost is Wait (the default: the clone stays bound to its host, Ready Unknown, until
	// the host reports again or an administrator releases it) or Reschedule (once the host has
	// been lost for the controller's --node-lost-reschedule-after, 5m by default, the clone is
	// placed on another host with the same name, UUID and MACs; its disk on the lost host is
	// abandoned and collected if that host returns). Reschedule is for disposable clones. It
	// never runs one twice: a host's agent that cannot renew its heartbeat for its
	// --fence-after (60s) destroys the domains of its Reschedule clones itself, and the clone
	// moves only after that fence-after plus the controller's --fence-margin; a host whose
	// agent does not fence never has its clones moved. No clone moves while 55% or more of
	// the hosts are lost at once.
	// +optional
	OnNodeLost NodeLostAction `json:"onNodeLost,omitempty"`
}

// CloudInitSpec is the personalization handed to the guest through its NoCloud seed.
type CloudInitSpec struct {
	// UserData is a Secret key holding the cloud-init user data (e.g. #cloud-config).
	// +optional
	UserData *SecretKeyReference `json:"userData,omitempty"`
	// NetworkConfig is a Secret key holding a cloud-init network config (version 2). Unset
	// means DHCP on every NIC, matched by the clone's MACs.
	// +optional
	NetworkConfig *SecretKeyReference `json:"networkConfig,omitempty"`
}

// Lifetime bounds how long a clone lives.
type Lifetime struct {
	// ExpireAfter is how long after creation the clone expires, as a Go duration such as 30m,
	// 8h or 1h30m; at least 1m.
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1m')",message="spec.lifetime.expireAfter must be a duration of at least 1m written like 30m, 8h or 1h30m"
	ExpireAfter metav1.Duration `json:"expireAfter"`
	// OnExpiry is Delete (default: the VMClone is deleted, which removes the domain and disk)
	// or Stop (the domain stops and the disk is kept).
	// +kubebuilder:default=Delete
	// +optional
	OnExpiry ExpiryAction `json:"onExpiry,omitempty"`
}

// CloneStorage overrides storage settings for one clone.
type CloneStorage struct {
	// COWSize overrides the template's classic snapshot COW size.
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('4Mi')) >= 0",message="spec.storage.cowSize must be at least 4Mi, e.g. 2Gi"
	// +optional
	COWSize *resource.Quantity `json:"cowSize,omitempty"`
}

// VMCloneStatus has one writer per field (docs/architecture.md, "Who writes what"). The
// controller binds the clone once per host — nodeName, bindingGeneration, uuid, interfaces,
// hostname, timestamps.scheduled, in one apply — and owns what only it can know: expiresAt and
// the conditions Scheduled, Expired, Ready, Reconciling and Stalled. Everything else is the
// bound host agent's report of its host: phase, message, domain, volume, guest,
// observedGeneration, observedBindingGeneration, observedResetRequests, the other timestamps
// and the conditions VolumeReady, GuestPrepared, DomainRunning, GuestReady and StorageAtRisk.
// A report whose
// observedBindingGeneration differs from bindingGeneration describes an earlier host and is
// ignored (VMClone.HostReport).
type VMCloneStatus struct {
	// ObservedGeneration is the generation the host agent's report describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Phase summarizes the clone's state as its host reports it. Pending until the host agent
	// has reported (the API server fills it in; no controller writes it).
	// +kubebuilder:default=Pending
	// +optional
	Phase VMClonePhase `json:"phase,omitempty"`
	// Message says, for a human, what is happening on the host or what to do.
	// +optional
	Message string `json:"message,omitempty"`
	// NodeName is the host the clone is bound to.
	// +optional
	NodeName string `json:"nodeName,omitempty"`
	// BindingGeneration counts the clone's bindings: 1 once it is placed on its first host,
	// one more each time it is placed on another (spec.placement.onNodeLost: Reschedule).
	// +optional
	BindingGeneration int64 `json:"bindingGeneration,omitempty"`
	// ObservedBindingGeneration is the binding the host agent's report (phase, message,
	// domain, volume, its conditions and timestamps) describes: a report from a host the
	// clone has left has an older value and counts for nothing.
	// +optional
	ObservedBindingGeneration int64 `json:"observedBindingGeneration,omitempty"`
	// UUID is the Xen domain UUID, allocated once and kept across resets.
	// +optional
	UUID string `json:"uuid,omitempty"`
	// Interfaces are the clone's NICs with their MACs, unique across the cluster.
	// +listType=atomic
	// +optional
	Interfaces []InterfaceStatus `json:"interfaces,omitempty"`
	// Hostname is the guest host name in effect.
	// +optional
	Hostname string `json:"hostname,omitempty"`
	// Domain is the Xen domain as last seen on the host.
	// +optional
	Domain *DomainStatus `json:"domain,omitempty"`
	// Volume is the clone's disk.
	// +optional
	Volume *VolumeStatus `json:"volume,omitempty"`
	// Guest is what the running guest tells of itself (through a guest agent's xenstore keys)
	// and what its host sees of it (dom0's neighbour table): its addresses and OS. Rewritten only
	// when it changes.
	// +optional
	Guest *GuestStatus `json:"guest,omitempty"`
	// ObservedResetRequests is the spec.resetRequests value the agent has acted on: the old disk
	// is gone and a fresh snapshot is being (or has been) taken. Ready says when it is back up.
	// +optional
	ObservedResetRequests int64 `json:"observedResetRequests,omitempty"`
	// ExpiresAt is when spec.lifetime ends.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// Timestamps of the clone's milestones.
	// +optional
	Timestamps *CloneTimestamps `json:"timestamps,omitempty"`
	// Conditions: Scheduled, VolumeReady, GuestPrepared, DomainRunning, GuestReady,
	// StorageAtRisk, Ready.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// InterfaceStatus is one NIC of a clone.
type InterfaceStatus struct {
	// Index is the NIC's position (0 is eth0).
	Index int32 `json:"index"`
	// MAC address.
	MAC string `json:"mac"`
	// Bridge in dom0.
	// +optional
	Bridge string `json:"bridge,omitempty"`
}

// DomainStatus is a Xen domain as the host reports it.
type DomainStatus struct {
	// Name of the domain on the host.
	Name string `json:"name"`
	// ID is the domain id, which changes on each start.
	// +optional
	ID int32 `json:"id,omitempty"`
	// State is xl's six-letter state (r running, b blocked, p paused, s shut down, c crashed,
	// d dying), e.g. "-b----".
	// +optional
	State string `json:"state,omitempty"`
	// VNCPort is the TCP port of the domain's VNC console (spec.domain.vnc) on the host's
	// 127.0.0.1, as its device model published it in xenstore (console/vnc-port).
	// `kubectl xenclone vnc` forwards a local port to it.
	// +optional
	VNCPort int32 `json:"vncPort,omitempty"`
}

// AddressSource says where the host agent learnt an address.
// +kubebuilder:validation:Enum=GuestAgent;NeighborTable
type AddressSource string

const (
	// AddressFromGuestAgent: a guest agent wrote it to the domain's xenstore
	// (attr/vif/<nic>/ipv4/<n>, attr/vif/<nic>/ipv6/<n>). It is what the guest says of itself.
	AddressFromGuestAgent AddressSource = "GuestAgent"
	// AddressFromNeighborTable: dom0's neighbour table (`ip neigh`) has the address for the NIC's
	// MAC on its bridge, so the guest has used it towards dom0. Without a guest agent this is
	// the only source, and it knows only addresses the guest has talked to dom0 from.
	AddressFromNeighborTable AddressSource = "NeighborTable"
)

// GuestStatus is what the host agent knows of a running guest from inside it.
type GuestStatus struct {
	// IP is the first IPv4 address of the first NIC that has one (else the first IPv6 one):
	// the address `kubectl xenclone ssh` connects to.
	// +optional
	IP string `json:"ip,omitempty"`
	// Interfaces are the guest's addresses per NIC, by index (eth0 is 0).
	// +listType=map
	// +listMapKey=index
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Interfaces []GuestInterfaceStatus `json:"interfaces,omitempty"`
	// AgentVersion is the guest agent's version (attr/PVAddons), once it has reported.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	AgentVersion string `json:"agentVersion,omitempty"`
	// OS is the guest's operating system as its agent reports it (data/os_name), e.g.
	// "Debian GNU/Linux 12".
	// +kubebuilder:validation:MaxLength=128
	// +optional
	OS string `json:"os,omitempty"`
	// Kernel is the guest's kernel release as its agent reports it (data/os_uname).
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Kernel string `json:"kernel,omitempty"`
}

// GuestInterfaceStatus is one NIC's addresses.
type GuestInterfaceStatus struct {
	// Index is the NIC's position (0 is eth0), as in status.interfaces.
	Index int32 `json:"index"`
	// MAC of the NIC.
	// +optional
	MAC string `json:"mac,omitempty"`
	// IPAddresses the guest uses on this NIC, IPv4 first.
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	// +optional
	IPAddresses []string `json:"ipAddresses,omitempty"`
	// Source is where the addresses came from: GuestAgent or NeighborTable.
	// +optional
	Source AddressSource `json:"source,omitempty"`
}

// VolumeStatus is a clone's disk.
type VolumeStatus struct {
	// Path of the block device, e.g. /dev/vg0/xc-default-web-1.
	// +optional
	Path string `json:"path,omitempty"`
	// Mode is the snapshot mode used.
	// +optional
	Mode SnapshotMode `json:"mode,omitempty"`
	// SizeBytes is the virtual size of the disk.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// COWSizeBytes is a classic snapshot's current COW area.
	// +optional
	COWSizeBytes int64 `json:"cowSizeBytes,omitempty"`
	// COWPercent is how full the COW area (classic) or the clone's share of the pool (thin) is,
	// as lvs reports it, e.g. "12.50".
	// +optional
	COWPercent string `json:"cowPercent,omitempty"`
}

// CloneTimestamps record when a clone reached each milestone.
type CloneTimestamps struct {
	// Scheduled is when the clone was bound to a host.
	// +optional
	Scheduled *metav1.Time `json:"scheduled,omitempty"`
	// VolumeReady is when its snapshot was taken.
	// +optional
	VolumeReady *metav1.Time `json:"volumeReady,omitempty"`
	// GuestPrepared is when scrubbing and personalization finished.
	// +optional
	GuestPrepared *metav1.Time `json:"guestPrepared,omitempty"`
	// Started is when the domain last started.
	// +optional
	Started *metav1.Time `json:"started,omitempty"`
	// Stopped is when the domain last stopped.
	// +optional
	Stopped *metav1.Time `json:"stopped,omitempty"`
}

// VMClone is a Xen domain running on one host from a copy-on-write snapshot of a VMTemplate,
// with machine-specific data scrubbed and a unique name, UUID and MAC. Deleting it removes the
// domain and the snapshot.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=vmc,categories=xenclone
// +kubebuilder:subresource:status
// +kubebuilder:selectablefield:JSONPath=`.status.nodeName`
// +kubebuilder:selectablefield:JSONPath=`.spec.templateRef.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.nodeName`
// +kubebuilder:printcolumn:name="Template",type=string,JSONPath=`.spec.templateRef.name`
// +kubebuilder:printcolumn:name="IP",type=string,JSONPath=`.status.guest.ip`
// +kubebuilder:printcolumn:name="MAC",type=string,JSONPath=`.status.interfaces[0].mac`,priority=1
// +kubebuilder:printcolumn:name="COW%",type=string,JSONPath=`.status.volume.cowPercent`,priority=1
// +kubebuilder:printcolumn:name="Domain",type=string,JSONPath=`.status.domain.name`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VMClone struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:validation:XValidation:rule="self.templateRef.name == oldSelf.templateRef.name",message="spec.templateRef is immutable: delete this VMClone and create a new one to use another template"
	// +kubebuilder:validation:XValidation:rule="(has(self.resetRequests) ? self.resetRequests : 0) >= (has(oldSelf.resetRequests) ? oldSelf.resetRequests : 0)",message="spec.resetRequests can only grow: set it to a value above the current one to request a reset"
	// +kubebuilder:validation:XValidation:rule="has(self.domainName) == has(oldSelf.domainName) && (!has(self.domainName) || self.domainName == oldSelf.domainName)",message="spec.domainName is immutable: the domain keeps its name for the clone's life"
	Spec   VMCloneSpec   `json:"spec"`
	Status VMCloneStatus `json:"status,omitempty"`
}

// VMCloneList is a list of VMClones.
//
// +kubebuilder:object:root=true
type VMCloneList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VMClone `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VMClone{}, &VMCloneList{})
}
