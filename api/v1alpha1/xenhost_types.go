package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// XenHostSpec is set by the platform team; the agent writes the status.
type XenHostSpec struct {
	// Unschedulable stops new clones from being placed on the host (existing ones stay),
	// like `kubectl cordon`.
	// +optional
	Unschedulable bool `json:"unschedulable,omitempty"`

	// MaxClones caps the clones placed on the host. 0 means no cap.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32000
	// +optional
	MaxClones int32 `json:"maxClones,omitempty"`

	// ReservedMemory is dom0 memory placement leaves free for the host itself, e.g. 512Mi.
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('0')) >= 0",message="spec.reservedMemory must not be negative, e.g. 512Mi"
	// +optional
	ReservedMemory *resource.Quantity `json:"reservedMemory,omitempty"`
}

// XenHostStatus is the host as its agent last reported it. It changes only when capacity does;
// liveness is the host's Lease in the controller's namespace.
type XenHostStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// AgentVersion is the hostagent's version.
	// +optional
	AgentVersion string `json:"agentVersion,omitempty"`
	// XenVersion as `xl info` reports it, e.g. 4.17.5.
	// +optional
	XenVersion string `json:"xenVersion,omitempty"`
	// Memory of the host in MiB.
	// +optional
	Memory HostMemory `json:"memory,omitempty"`
	// CPUs is the number of physical CPUs.
	// +optional
	CPUs int32 `json:"cpus,omitempty"`
	// VolumeGroups the agent manages.
	// +listType=map
	// +listMapKey=name
	// +optional
	VolumeGroups []VolumeGroupStatus `json:"volumeGroups,omitempty"`
	// Templates present on the host.
	// +listType=map
	// +listMapKey=name
	// +optional
	Templates []HostTemplateStatus `json:"templates,omitempty"`
	// Imports are this host's imports of template sources (spec.source): waiting, running,
	// failed, or done.
	// +listType=map
	// +listMapKey=template
	// +optional
	Imports []HostImportStatus `json:"imports,omitempty"`
	// Clones is the number of clones bound to the host.
	// +optional
	Clones int32 `json:"clones,omitempty"`
	// Conditions: Ready (the agent runs and the host tools answer), StorageHealthy.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// HostMemory is `xl info` memory in MiB.
type HostMemory struct {
	// TotalMiB is total_memory.
	// +optional
	TotalMiB int64 `json:"totalMiB,omitempty"`
	// FreeMiB is free_memory (excluding outstanding claims).
	// +optional
	FreeMiB int64 `json:"freeMiB,omitempty"`
}

// VolumeGroupStatus is one LVM volume group of the host.
type VolumeGroupStatus struct {
	// Name of the volume group.
	Name string `json:"name"`
	// SizeBytes is the VG size.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// FreeBytes is the unallocated space.
	// +optional
	FreeBytes int64 `json:"freeBytes,omitempty"`
	// MetadataFreeBytes is the free space of the VG's metadata area, which limits how many
	// LVs the VG can hold (trouble starts near 1,400 LVs with the 1 MiB default).
	// +optional
	MetadataFreeBytes int64 `json:"metadataFreeBytes,omitempty"`
	// LVCount is the number of logical volumes.
	// +optional
	LVCount int32 `json:"lvCount,omitempty"`
	// ThinPools in the volume group.
	// +listType=map
	// +listMapKey=name
	// +optional
	ThinPools []ThinPoolStatus `json:"thinPools,omitempty"`
}

// ThinPoolStatus is one thin pool's usage.
type ThinPoolStatus struct {
	// Name of the pool LV.
	Name string `json:"name"`
	// SizeBytes is the pool's data size.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// DataPercent as lvs reports it, e.g. "41.20".
	// +optional
	DataPercent string `json:"dataPercent,omitempty"`
	// MetadataPercent as lvs reports it.
	// +optional
	MetadataPercent string `json:"metadataPercent,omitempty"`
}

// HostTemplateStatus is one template origin present on the host.
type HostTemplateStatus struct {
	// Name of the VMTemplate.
	Name string `json:"name"`
	// LVUUID of the origin.
	// +optional
	LVUUID string `json:"lvUUID,omitempty"`
	// SizeBytes of the origin.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// ReadOnly is true when the origin is read-only: the agent makes it so right before the
	// first clone is taken from it on this host (or an administrator did).
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`
	// Thin is true when the origin is a thin volume.
	// +optional
	Thin bool `json:"thin,omitempty"`
	// Refused says why the LV must not be this template's origin here (open and writable,
	// a clone's disk, tagged xenclone.not-template); empty when it may. No clone of the
	// template is placed on the host while it is set.
	// +optional
	Refused string `json:"refused,omitempty"`
}

// XenHost is a Xen dom0 that runs clones: one per node, created and reported by its hostagent.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=xh,categories=xenclone
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Xen",type=string,JSONPath=`.status.xenVersion`
// +kubebuilder:printcolumn:name="Free MiB",type=integer,JSONPath=`.status.memory.freeMiB`
// +kubebuilder:printcolumn:name="Clones",type=integer,JSONPath=`.status.clones`
// +kubebuilder:printcolumn:name="Cordoned",type=boolean,JSONPath=`.spec.unschedulable`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type XenHost struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec   XenHostSpec   `json:"spec,omitempty"`
	Status XenHostStatus `json:"status,omitempty"`
}

// XenHostList is a list of XenHosts.
//
// +kubebuilder:object:root=true
type XenHostList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []XenHost `json:"items"`
}

func init() {
	SchemeBuilder.Register(&XenHost{}, &XenHostList{})
}
