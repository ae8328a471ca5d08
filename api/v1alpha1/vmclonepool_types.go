package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VMClonePoolSpec keeps a number of ready clones of one template.
// +kubebuilder:validation:XValidation:rule="!has(self.warmState) || self.warmState != 'Paused' || !has(self.template.spec.runStrategy) || self.template.spec.runStrategy == 'Always'",fieldPath=".warmState",message="warmState Paused needs members that run: remove spec.template.spec.runStrategy or set it to Always"
type VMClonePoolSpec struct {
	// Replicas is how many unclaimed clones (warm members) the pool keeps. A member handed to
	// a VMClaim leaves the pool at once and the pool makes a new one. Scale with `kubectl scale
	// vmclonepool/NAME --replicas=N`.
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

	// WarmState is how unclaimed members wait: Running (booted and idle; a claim gets it at
	// once) or Paused (booted, memory ballooned down to spec.pause.memory, then paused with xl
	// pause; a claim unpauses it and restores its memory, in well under a second).
	// +kubebuilder:validation:Enum=Running;Paused
	// +kubebuilder:default=Running
	// +optional
	WarmState WarmState `json:"warmState,omitempty"`

	// Pause tunes warmState Paused: the memory a member keeps while it waits (default 128Mi;
	// what placement counts for it) and how long it runs before it is paused, so it has
	// booted (default 30s). Each member gets it as its spec.pause.
	// +optional
	Pause *PauseSpec `json:"pause,omitempty"`

	// MaxMaking bounds how many members are being made (created, not Ready yet) at once, so a
	// burst of claims or a rollout does not flood the hosts; members that cannot be placed
	// (no host has the memory or the VG room) count too, so the pool waits for room instead
	// of piling up Pending clones. Default 10.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=10
	// +optional
	MaxMaking *int32 `json:"maxMaking,omitempty"`

	// UpdateStrategy says what happens to unclaimed members when spec.template changes (a new
	// template version, say): Recreate replaces them now, at most maxMaking at a time;
	// OnReplenish keeps them and makes only new members from the new template. Claimed
	// members are never touched.
	// +optional
	UpdateStrategy PoolUpdateStrategy `json:"updateStrategy,omitempty"`
}

// WarmState is how a pool's unclaimed members wait.
type WarmState string

const (
	WarmRunning WarmState = "Running"
	WarmPaused  WarmState = "Paused"
)

// PoolUpdateStrategy says how a changed pool template reaches unclaimed members.
type PoolUpdateStrategy struct {
	// Type is Recreate (default) or OnReplenish.
	// +kubebuilder:validation:Enum=Recreate;OnReplenish
	// +kubebuilder:default=Recreate
	// +optional
	Type PoolUpdateStrategyType `json:"type,omitempty"`
}

// PoolUpdateStrategyType names a PoolUpdateStrategy.
type PoolUpdateStrategyType string

const (
	PoolUpdateRecreate    PoolUpdateStrategyType = "Recreate"
	PoolUpdateOnReplenish PoolUpdateStrategyType = "OnReplenish"
)

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
	// +kubebuilder:validation:XValidation:rule="!has(self.pause)",fieldPath=".pause",message="remove spec.template.spec.pause: set the pool's spec.warmState: Paused (and spec.pause) instead"
	// +kubebuilder:validation:XValidation:rule="!has(self.guestData)",fieldPath=".guestData",message="remove spec.template.spec.guestData: claim-time data comes from a VMClaim's spec.data"
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
	// ReadyReplicas is the number of members whose Ready condition is True: the warm ones a
	// claim can take now.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// MakingReplicas is the number of members being made (not Ready yet).
	// +optional
	MakingReplicas int32 `json:"makingReplicas,omitempty"`
	// UpdatedReplicas is the number of members made from the current spec.template.
	// +optional
	UpdatedReplicas int32 `json:"updatedReplicas,omitempty"`
	// ClaimedReplicas is the number of clones handed out by this pool that still exist.
	// +optional
	ClaimedReplicas int32 `json:"claimedReplicas,omitempty"`
	// WarmHits counts the pool's existing claims that got a warm member.
	// +optional
	WarmHits int32 `json:"warmHits,omitempty"`
	// ColdClaims counts the pool's existing claims that got a cold clone because no warm
	// member was free.
	// +optional
	ColdClaims int32 `json:"coldClaims,omitempty"`
	// WarmHitPercent is warmHits * 100 / (warmHits + coldClaims), unset before the first claim.
	// +optional
	WarmHitPercent *int32 `json:"warmHitPercent,omitempty"`
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
// +kubebuilder:printcolumn:name="Warm",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Making",type=integer,JSONPath=`.status.makingReplicas`
// +kubebuilder:printcolumn:name="Claimed",type=integer,JSONPath=`.status.claimedReplicas`
// +kubebuilder:printcolumn:name="Hit%",type=integer,JSONPath=`.status.warmHitPercent`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.spec.warmState`,priority=1
// +kubebuilder:printcolumn:name="Updated",type=integer,JSONPath=`.status.updatedReplicas`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VMClonePool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

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
