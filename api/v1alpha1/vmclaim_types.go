package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VMClaimSpec asks for one disposable VM, warm from a pool when one is free.
// +kubebuilder:validation:XValidation:rule="has(self.poolRef) != has(self.templateRef)",message="set exactly one of spec.poolRef (a warm member of a VMClonePool) and spec.templateRef (a cold clone of a VMTemplate)"
// +kubebuilder:validation:XValidation:rule="!has(self.templateRef) || !has(self.fallback) || self.fallback == 'Cold'",fieldPath=".fallback",message="spec.fallback: Wait needs spec.poolRef (a template has no warm members to wait for)"
type VMClaimSpec struct {
	// PoolRef names the VMClonePool, in the claim's namespace, whose warm member the claim
	// takes. It cannot change.
	// +optional
	PoolRef *LocalObjectReference `json:"poolRef,omitempty"`

	// TemplateRef claims a cold clone of a VMTemplate instead of a pool member (as if the
	// pool were always empty). It cannot change.
	// +optional
	TemplateRef *LocalObjectReference `json:"templateRef,omitempty"`

	// Fallback is what happens when no warm member is free: Cold (default) creates a new clone
	// of the pool's template at once; Wait waits for the pool to make one.
	// +kubebuilder:validation:Enum=Cold;Wait
	// +kubebuilder:default=Cold
	// +optional
	Fallback ClaimFallback `json:"fallback,omitempty"`

	// Lifetime makes the claim disposable: ExpireAfter after it is bound, the claim is deleted
	// with its VM (onExpiry Delete, the default) or its VM is stopped (Stop).
	// +optional
	Lifetime *Lifetime `json:"lifetime,omitempty"`

	// Data is claim-time data for the guest (a CI runner's registration token, SSH keys): the
	// keys of a Secret in the claim's namespace, delivered into the running guest's xenstore
	// under data/xenclone/<key> without a restart (spec.guestData of the clone). See
	// docs/user-guide.md "Claim-time data".
	// +optional
	Data *GuestDataSpec `json:"data,omitempty"`
}

// ClaimFallback is what a claim does when its pool has no warm member free.
type ClaimFallback string

const (
	FallbackCold ClaimFallback = "Cold"
	FallbackWait ClaimFallback = "Wait"
)

// ClaimSource says how a claim got its clone.
type ClaimSource string

const (
	SourceWarm ClaimSource = "Warm"
	SourceCold ClaimSource = "Cold"
)

// VMClaimStatus is written by the controller alone.
type VMClaimStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// CloneName is the VMClone the claim is bound to, in the claim's namespace. Set once.
	// +optional
	CloneName string `json:"cloneName,omitempty"`
	// Source is Warm (a pool member was handed over) or Cold (a new clone was made).
	// +optional
	Source ClaimSource `json:"source,omitempty"`
	// BoundTime is when the claim got its clone.
	// +optional
	BoundTime *metav1.MicroTime `json:"boundTime,omitempty"`
	// BindMilliseconds is how long binding took, from the moment the controller received the
	// claim (before it waited in the work queue; after a controller restart, the restart) to
	// the bind.
	// +optional
	BindMilliseconds *int64 `json:"bindMilliseconds,omitempty"`
	// NodeName is the host the clone runs on.
	// +optional
	NodeName string `json:"nodeName,omitempty"`
	// Domain is the clone's Xen domain name.
	// +optional
	DomainName string `json:"domainName,omitempty"`
	// Interfaces are the clone's NICs (MACs, bridges), as in its status.
	// +optional
	Interfaces []InterfaceStatus `json:"interfaces,omitempty"`
	// ExpiresAt is when the lifetime ends, if spec.lifetime is set.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// Conditions: Bound (the claim has its clone) and Ready (the clone runs, resumed if it was
	// paused, with its data delivered).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// VMClaim hands out one disposable VM: a warm member of a VMClonePool (a booted, running or
// paused clone, bound in well under a second) or, when none is free, a cold clone. Deleting
// the claim deletes its VM; the pool refills.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=vmcl,categories=xenclone
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Pool",type=string,JSONPath=`.spec.poolRef.name`
// +kubebuilder:printcolumn:name="Clone",type=string,JSONPath=`.status.cloneName`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.nodeName`
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=`.status.source`
// +kubebuilder:printcolumn:name="Bind-ms",type=integer,JSONPath=`.status.bindMilliseconds`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="MAC",type=string,JSONPath=`.status.interfaces[0].mac`,priority=1
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.status.expiresAt`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VMClaim struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:validation:XValidation:rule="has(self.poolRef) == has(oldSelf.poolRef) && (!has(self.poolRef) || self.poolRef.name == oldSelf.poolRef.name)",message="spec.poolRef is immutable: delete the claim and create a new one"
	// +kubebuilder:validation:XValidation:rule="has(self.templateRef) == has(oldSelf.templateRef) && (!has(self.templateRef) || self.templateRef.name == oldSelf.templateRef.name)",message="spec.templateRef is immutable: delete the claim and create a new one"
	Spec   VMClaimSpec   `json:"spec"`
	Status VMClaimStatus `json:"status,omitempty"`
}

// VMClaimList is a list of VMClaims.
//
// +kubebuilder:object:root=true
type VMClaimList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VMClaim `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VMClaim{}, &VMClaimList{})
}
