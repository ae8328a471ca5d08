package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VMClonePoolSpec keeps a number of ready clones of one template.
type VMClonePoolSpec struct {
	// Replicas is how many clones the pool keeps. Scale with `kubectl scale vmclonepool/NAME
	// --replicas=N`.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	// +kubebuilder:default=1
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Template is the VMClone each member is made from.
	Template VMCloneTemplateSpec `json:"template"`

	// AppendIndexToHostname gives each member the hostname <hostname>-<index> (or
	// <pool>-<index> without a hostname), so members are told apart on the network.
	// +kubebuilder:default=true
	// +optional
	AppendIndexToHostname *bool `json:"appendIndexToHostname,omitempty"`

	// ReplaceFailed deletes and replaces members that reach phase Failed.
	// +kubebuilder:default=true
	// +optional
	ReplaceFailed *bool `json:"replaceFailed,omitempty"`
}

// VMCloneTemplateSpec is the part of a VMClone a pool stamps out.
type VMCloneTemplateSpec struct {
	// Metadata: labels and annotations copied to each member.
	// +optional
	Metadata PoolMemberMetadata `json:"metadata,omitempty"`
	// Spec of each member. Its hostname, if set, is suffixed with the member's index. It may
	// not pin what must differ between members: a MAC (spec.nics[].mac) or the domain name
	// (spec.domainName); every member gets its own.
	// +kubebuilder:validation:XValidation:rule="!has(self.nics) || self.nics.all(n, !has(n.mac))",fieldPath=".nics",message="a pool's members cannot share a pinned MAC: remove mac from spec.template.spec.nics (each member gets a unique MAC allocated)"
	// +kubebuilder:validation:XValidation:rule="!has(self.domainName)",fieldPath=".domainName",message="a pool's members cannot share one domain name: remove spec.template.spec.domainName (each member gets a unique default name)"
	Spec VMCloneSpec `json:"spec"`
}

// PoolMemberMetadata is the metadata a pool puts on its members.
type PoolMemberMetadata struct {
	// Labels added to every member (the pool adds its own pool and index labels).
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations added to every member.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// VMClonePoolStatus is written by the controller.
type VMClonePoolStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Replicas is the number of members that exist.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas is the number of members whose Ready condition is True.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// Selector is the label selector of the members, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`
	// Conditions: Ready (all wanted members are ready).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// VMClonePool keeps N clones of a template ready for disposable use, replacing members that
// are deleted, expire or fail.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=vmcp;vmpool,categories=xenclone
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:printcolumn:name="Template",type=string,JSONPath=`.spec.template.spec.templateRef.name`
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Current",type=integer,JSONPath=`.status.replicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VMClonePool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:validation:XValidation:rule="self.template.spec.templateRef.name == oldSelf.template.spec.templateRef.name",message="spec.template.spec.templateRef is immutable: create a new VMClonePool for another template"
	Spec   VMClonePoolSpec   `json:"spec"`
	Status VMClonePoolStatus `json:"status,omitempty"`
}

// VMClonePoolList is a list of VMClonePools.
//
// +kubebuilder:object:root=true
type VMClonePoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VMClonePool `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VMClonePool{}, &VMClonePoolList{})
}
