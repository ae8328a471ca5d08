package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SnapshotMode is how clones of a template get their disk.
// +kubebuilder:validation:Enum=Classic;Thin
type SnapshotMode string

const (
	// SnapshotClassic takes a classic copy-on-write snapshot with a fixed COW area
	// (lvcreate -s -L size). The COW area is watched and extended before it fills: a full
	// classic snapshot is invalidated by the kernel and the guest's disk fails.
	SnapshotClassic SnapshotMode = "Classic"
	// SnapshotThin takes a thin snapshot. A thin origin is snapshotted in its own pool; a thick
	// origin is used as an external origin in spec.snapshot.thinPool
	// (lvcreate -s --thinpool pool VG/origin). There is no COW area per clone; the pool is
	// watched for data and metadata usage instead.
	SnapshotThin SnapshotMode = "Thin"
)

// ScrubOperation removes or resets one kind of machine-specific data in a fresh clone before
// its first boot. Names follow virt-sysprep's operations.
// +kubebuilder:validation:Enum=net-hwaddr;net-nmconn;udev-persistent-net;machine-id;ssh-hostkeys;dhcp-client-state;random-seed;logfiles;bash-history;hostname
type ScrubOperation string

const (
	ScrubNetHwaddr         ScrubOperation = "net-hwaddr"
	ScrubNetNMConn         ScrubOperation = "net-nmconn"
	ScrubUdevPersistentNet ScrubOperation = "udev-persistent-net"
	ScrubMachineID         ScrubOperation = "machine-id"
	ScrubSSHHostKeys       ScrubOperation = "ssh-hostkeys"
	ScrubDHCPClientState   ScrubOperation = "dhcp-client-state"
	ScrubRandomSeed        ScrubOperation = "random-seed"
	ScrubLogFiles          ScrubOperation = "logfiles"
	ScrubBashHistory       ScrubOperation = "bash-history"
	ScrubHostname          ScrubOperation = "hostname"
)

// DefaultScrubOperations are applied when a template lists none, like virt-sysprep's defaults
// that are safe for a template (log files and shell histories are opt-in).
var DefaultScrubOperations = []ScrubOperation{
	ScrubNetHwaddr, ScrubNetNMConn, ScrubUdevPersistentNet, ScrubMachineID, ScrubSSHHostKeys,
	ScrubDHCPClientState, ScrubRandomSeed, ScrubHostname,
}

// FilesystemType is a guest root filesystem the host agent can open for scrubbing.
// +kubebuilder:validation:Enum=ext4;xfs;btrfs
type FilesystemType string

// VMTemplateSpec describes a template disk that clones are snapshotted from.
// +kubebuilder:validation:XValidation:rule="has(self.source) == has(oldSelf.source)",message="spec.source cannot be added to or removed from an existing VMTemplate: create a new VMTemplate"
// +kubebuilder:validation:XValidation:rule="!has(self.source) || self.snapshot.mode != 'Thin' || has(self.snapshot.thinPool)",message="spec.snapshot.thinPool is required for a Thin template with spec.source: the imported origin is a thick LV that the pool uses as external origin"
type VMTemplateSpec struct {
	// Origin is the logical volume holding the installed, cleaned template. Without a source
	// it must exist on every host that is to run clones of this template; with a source,
	// xenclone creates it on every selected host. xenclone makes it read-only and never writes
	// to an origin it did not import.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.origin is immutable: create a new VMTemplate for a different logical volume"
	Origin Origin `json:"origin"`

	// Source, when set, is an image each selected host's agent imports into the origin LV:
	// downloaded, checked against its checksum, and only then given the origin's name. It is
	// immutable: a new image is a new VMTemplate (its own origin LV name), so an origin that
	// clones use is never overwritten.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.source is immutable: a new image is a new VMTemplate with its own spec.origin.logicalVolume"
	// +optional
	Source *TemplateSource `json:"source,omitempty"`

	// HostSelector limits the hosts (XenHost labels) that may run clones of this template.
	// Unset means every host where the origin exists.
	// +optional
	HostSelector *metav1.LabelSelector `json:"hostSelector,omitempty"`

	// Snapshot says how each clone's disk is made from the origin.
	// +kubebuilder:default={mode: Classic, cowSize: "1Gi"}
	// +optional
	Snapshot SnapshotSpec `json:"snapshot,omitempty"`

	// Domain is the Xen domain configuration clones start from.
	Domain DomainSpec `json:"domain"`

	// Guest tells the host agent where the guest's root filesystem is, for scrubbing and
	// personalization.
	// +optional
	Guest GuestSpec `json:"guest,omitempty"`

	// Scrub lists the operations applied to every fresh clone before its first boot. Unset
	// means the defaults: net-hwaddr, net-nmconn, udev-persistent-net, machine-id, ssh-hostkeys,
	// dhcp-client-state, random-seed, hostname. An empty list turns scrubbing off.
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	// +optional
	Scrub []ScrubOperation `json:"scrub,omitempty"`

	// AllowedNamespaces lists the namespaces whose VMClones may use this template. Empty (and
	// no NamespaceSelector) means every namespace.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.all(n, n.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))",message="allowedNamespaces entries must be namespace names: lowercase letters, digits and '-', e.g. team-a"
	// +listType=set
	// +optional
	AllowedNamespaces []string `json:"allowedNamespaces,omitempty"`

	// NamespaceSelector admits VMClones from namespaces whose labels match, in addition to
	// AllowedNamespaces.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// Origin is the template's logical volume.
type Origin struct {
	// VolumeGroup is the LVM volume group holding the origin, e.g. vg0.
	VolumeGroup VGName `json:"volumeGroup"`
	// LogicalVolume is the origin's name in VolumeGroup, e.g. debian12-template.
	LogicalVolume LVName `json:"logicalVolume"`
}

// SnapshotSpec configures how clone disks are taken from the origin.
// +kubebuilder:validation:XValidation:rule="self.mode != 'Classic' || has(self.cowSize)",message="spec.snapshot.cowSize is required for mode Classic: set the COW area size per clone, e.g. 1Gi"
// +kubebuilder:validation:XValidation:rule="self.mode != 'Thin' || !has(self.cowSize)",message="spec.snapshot.cowSize applies to mode Classic only: remove it for mode Thin (thin snapshots share the pool)"
// +kubebuilder:validation:XValidation:rule="self.mode != 'Thin' || !has(self.autoExtend)",message="spec.snapshot.autoExtend applies to mode Classic only: for mode Thin use spec.snapshot.poolThresholds"
// +kubebuilder:validation:XValidation:rule="self.mode != 'Classic' || !has(self.thinPool)",message="spec.snapshot.thinPool applies to mode Thin only: remove it, or set mode: Thin"
// +kubebuilder:validation:XValidation:rule="!has(self.autoExtend) || !has(self.autoExtend.maxSize) || !has(self.cowSize) || quantity(string(self.autoExtend.maxSize)).compareTo(quantity(string(self.cowSize))) >= 0",message="spec.snapshot.autoExtend.maxSize must be at least spec.snapshot.cowSize: raise maxSize"
type SnapshotSpec struct {
	// Mode is Classic (fixed COW area per clone, watched and auto-extended) or Thin.
	// +kubebuilder:default=Classic
	Mode SnapshotMode `json:"mode"`

	// COWSize is the initial copy-on-write area of each classic snapshot, e.g. 1Gi. It holds
	// only the blocks a clone changes.
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('4Mi')) >= 0",message="spec.snapshot.cowSize must be at least 4Mi, e.g. 1Gi"
	// +optional
	COWSize *resource.Quantity `json:"cowSize,omitempty"`

	// AutoExtend grows a classic snapshot's COW area before it fills.
	// +optional
	AutoExtend *AutoExtendPolicy `json:"autoExtend,omitempty"`

	// ThinPool is the thin pool (in the origin's volume group) that holds thin snapshots of a
	// thick origin (external origin). Leave it empty when the origin is itself a thin volume.
	// +optional
	ThinPool LVName `json:"thinPool,omitempty"`

	// PoolThresholds mark a thin pool at risk when its data or metadata usage passes them.
	// +optional
	PoolThresholds *PoolThresholds `json:"poolThresholds,omitempty"`
}

// AutoExtendPolicy grows a classic snapshot's COW area.
type AutoExtendPolicy struct {
	// ThresholdPercent is the COW usage at which the snapshot is extended, 50 to 95.
	// +kubebuilder:validation:Minimum=50
	// +kubebuilder:validation:Maximum=95
	// +kubebuilder:default=70
	// +optional
	ThresholdPercent int32 `json:"thresholdPercent,omitempty"`
	// StepPercent is how much the COW area grows each time, in percent of its current size.
	// +kubebuilder:validation:Minimum=5
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=20
	// +optional
	StepPercent int32 `json:"stepPercent,omitempty"`
	// MaxSize caps the COW area. Past it the clone is marked StorageAtRisk.
	// +optional
	MaxSize *resource.Quantity `json:"maxSize,omitempty"`
}

// PoolThresholds are the usage levels at which a thin pool is at risk.
type PoolThresholds struct {
	// DataPercent is the data usage that marks the pool (and its clones) at risk.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=99
	// +kubebuilder:default=80
	// +optional
	DataPercent int32 `json:"dataPercent,omitempty"`
	// MetadataPercent is the metadata usage that marks the pool at risk. A pool whose metadata
	// fills needs offline repair, so keep this low.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=99
	// +kubebuilder:default=70
	// +optional
	MetadataPercent int32 `json:"metadataPercent,omitempty"`
}

// GuestSpec locates the guest's root filesystem inside the template disk.
type GuestSpec struct {
	// RootPartition is the 1-based partition number of the root filesystem. 0 or unset means:
	// find it (the disk may also be a bare filesystem without a partition table).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	// +optional
	RootPartition int32 `json:"rootPartition,omitempty"`
	// RootFilesystem is the root filesystem's type; the disk is never probed by the kernel with
	// another type. Unset means detect it (ext4, xfs or btrfs).
	// +optional
	RootFilesystem FilesystemType `json:"rootFilesystem,omitempty"`
	// CloudInit attaches a per-clone NoCloud seed disk (label cidata) read-only as xvdb, with
	// the clone's instance-id, hostname, network config and user data. Default true.
	// +kubebuilder:default=true
	// +optional
	CloudInit *bool `json:"cloudInit,omitempty"`
}

// VMTemplateStatus is written by the controller.
type VMTemplateStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Hosts lists, per host, whether the origin is there and usable.
	// +listType=map
	// +listMapKey=nodeName
	// +optional
	Hosts []TemplateHostStatus `json:"hosts,omitempty"`
	// ReadyHosts counts hosts where the origin is present and not refused.
	// +optional
	ReadyHosts int32 `json:"readyHosts,omitempty"`
	// Clones counts the VMClones that use this template.
	// +optional
	Clones int32 `json:"clones,omitempty"`
	// ImportingHosts counts selected hosts whose import of spec.source is not done yet.
	// +optional
	ImportingHosts int32 `json:"importingHosts,omitempty"`
	// ImportGrants are the hosts that may import spec.source now: the controller hands out at
	// most --max-parallel-imports fleet-wide, so a fleet does not hammer one image server.
	// +listType=set
	// +optional
	ImportGrants []string `json:"importGrants,omitempty"`
	// Conditions: Ready (clones can be scheduled somewhere), InUse, and Imported for a
	// template with a source.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// TemplateHostStatus is the template origin as one host sees it.
type TemplateHostStatus struct {
	// NodeName is the host.
	NodeName string `json:"nodeName"`
	// Present is true when the origin LV exists there.
	Present bool `json:"present"`
	// SizeBytes is the origin's size.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// ReadOnly is true once the origin is read-only.
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`
	// Thin is true when the origin is a thin volume.
	// +optional
	Thin bool `json:"thin,omitempty"`
	// LVUUID is the origin's LVM UUID, to tell a replaced origin from the original.
	// +optional
	LVUUID string `json:"lvUUID,omitempty"`
	// Message explains why the origin is unusable there.
	// +optional
	Message string `json:"message,omitempty"`
	// Import is the host's import of spec.source, as its agent reports it.
	// +optional
	Import *HostImportStatus `json:"import,omitempty"`
}

// VMTemplate is an installed, cleaned Xen guest disk on hosts' LVM, plus the domain defaults
// for its clones. Cluster-scoped; owned by the platform team.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=vmt;vmtpl,categories=xenclone
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="VG",type=string,JSONPath=`.spec.origin.volumeGroup`
// +kubebuilder:printcolumn:name="Origin",type=string,JSONPath=`.spec.origin.logicalVolume`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.snapshot.mode`
// +kubebuilder:printcolumn:name="Hosts",type=integer,JSONPath=`.status.readyHosts`
// +kubebuilder:printcolumn:name="Importing",type=integer,JSONPath=`.status.importingHosts`,priority=1
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=`.spec.source.format`,priority=1
// +kubebuilder:printcolumn:name="Clones",type=integer,JSONPath=`.status.clones`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VMTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   VMTemplateSpec   `json:"spec"`
	Status VMTemplateStatus `json:"status,omitempty"`
}

// VMTemplateList is a list of VMTemplates.
//
// +kubebuilder:object:root=true
type VMTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VMTemplate `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VMTemplate{}, &VMTemplateList{})
}
