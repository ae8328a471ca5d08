package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// The condition vocabulary: every condition type xenclone writes, who writes it, and every
// reason it may carry. The controller and the host agent take their reason constants from
// here, and tests hold the Argo CD health checks (config/argocd), docs/troubleshooting.md, the
// kstatus mapping and each writer's code to this table, so a reason cannot be added in one
// place and forgotten in the others.

// Writer is the component that writes a condition (docs/architecture.md "Who writes what").
type Writer string

const (
	WriterController Writer = "controller"
	WriterHostAgent  Writer = "hostagent"
)

// ReasonClass says what a reason asks of a person, which is what the health checks and
// kstatus report.
type ReasonClass string

const (
	// ClassSettled: the condition is where it should be (which may be False, as
	// StorageAtRisk=False or DomainRunning=False Halted); nothing to do.
	ClassSettled ReasonClass = "Settled"
	// ClassTransitional: on the way; it clears by itself.
	ClassTransitional ReasonClass = "Transitional"
	// ClassBlocked: stuck until someone acts (capacity, a template, a Secret, a name). The
	// writer keeps retrying and moves on by itself once that is fixed, so kstatus reads it as
	// InProgress; Argo CD reads it as Degraded.
	ClassBlocked ReasonClass = "Blocked"
	// ClassStalled: retrying cannot help; only a reset or a deletion does. kstatus Stalled
	// (Failed), Argo CD Degraded.
	ClassStalled ReasonClass = "Stalled"
)

// NeedsPerson says whether the reason stays until someone acts.
func (c ReasonClass) NeedsPerson() bool { return c == ClassBlocked || c == ClassStalled }

// Reasons of VMClone conditions.
const (
	// Scheduled, written by the controller.
	ReasonScheduled            = "Scheduled"
	ReasonUnschedulable        = "Unschedulable"
	ReasonTemplateNotFound     = "TemplateNotFound"
	ReasonTemplateDeleting     = "TemplateDeleting"
	ReasonNamespaceNotAllowed  = "NamespaceNotAllowed"
	ReasonCloudInitDataMissing = "CloudInitDataMissing"
	ReasonMACConflict          = "MACConflict"
	ReasonDomainNameTaken      = "DomainNameTaken"
	ReasonRescheduled          = "RescheduledFromLostHost"

	// Expired, written by the controller.
	ReasonLifetimeRunning = "LifetimeRunning"
	ReasonLifetimeEnded   = "LifetimeEnded"

	// Ready, Reconciling and Stalled, written by the controller.
	ReasonRunning         = "Running"
	ReasonHalted          = "Halted"
	ReasonStoppedOnExpiry = "StoppedOnExpiry"
	ReasonWaitingForHost  = "WaitingForHost"
	ReasonNodeLost        = "NodeLost"
	// ReasonRescheduleWaitsForFence and ReasonHostNotFencing refine NodeLost for a clone
	// with spec.placement.onNodeLost: Reschedule (see fencing.go).
	ReasonRescheduleWaitsForFence = "RescheduleWaitsForFence"
	ReasonHostNotFencing          = "HostNotFencing"
	ReasonResetting               = "Resetting"
	ReasonFailed                  = "Failed"
	ReasonStopping                = "Stopping"
	ReasonProgressing             = "Progressing"

	// VolumeReady, written by the host agent.
	ReasonSnapshotCreated    = "SnapshotCreated"
	ReasonWaitingForIdentity = "WaitingForIdentity"
	ReasonOriginMissing      = "OriginMissing"
	ReasonOriginRefused      = "OriginRefused"
	ReasonVolumeNameConflict = "VolumeNameConflict"
	ReasonStorageError       = "StorageError"
	ReasonVolumeLost         = "VolumeLost"

	// StorageAtRisk, written by the host agent.
	ReasonStorageOK       = "StorageOK"
	ReasonCOWExtended     = "COWExtended"
	ReasonCOWAtMaximum    = "COWAtMaximum"
	ReasonThinPoolAtRisk  = "ThinPoolAtRisk"
	ReasonSnapshotInvalid = "SnapshotInvalid"

	// GuestPrepared, written by the host agent.
	ReasonPrepared      = "Prepared"
	ReasonPrepareFailed = "PrepareFailed"

	// DomainRunning, written by the host agent.
	ReasonStarted            = "Started"
	ReasonShuttingDown       = "ShuttingDown"
	ReasonStopped            = "Stopped"
	ReasonGuestPoweredOff    = "GuestPoweredOff"
	ReasonGuestCrashed       = "GuestCrashed"
	ReasonRestarting         = "Restarting"
	ReasonStartFailed        = "StartFailed"
	ReasonSecretMissing      = "SecretMissing"
	ReasonDomainNameConflict = "DomainNameConflict"
	// ReasonPaused (DomainRunning True, and Ready True): a warm standby (spec.pause), booted,
	// its memory ballooned down, paused.
	ReasonPaused = "Paused"
	// ReasonFenced: the agent could not renew its heartbeat for its fence-after and destroyed
	// the domain of a clone that may be moved to another host (see fencing.go).
	ReasonFenced = "Fenced"
)

// Reasons of the VMClone GuestReady condition, written by the host agent while the domain runs
// (spec.domain.readiness of the template says what "up" means).
const (
	ReasonGuestUp            = "GuestUp"
	ReasonWaitingForGuest    = "WaitingForGuest"
	ReasonGuestNotResponding = "GuestNotResponding"
)

// Reasons of the VMClone GuestDataDelivered condition, written by the host agent.
const (
	ReasonGuestDataDelivered     = "Delivered"
	ReasonGuestDataPending       = "GuestDataPending"
	ReasonGuestDataSecretMissing = "GuestDataSecretMissing"
	ReasonGuestDataRejected      = "GuestDataRejected"
)

// Reasons of VMClaim conditions, written by the controller.
const (
	// Bound.
	ReasonClaimedWarm          = "ClaimedWarm"
	ReasonCreatedCold          = "CreatedCold"
	ReasonWaitingForWarmMember = "WaitingForWarmMember"
	ReasonPoolNotFound         = "PoolNotFound"
	ReasonCloneLost            = "CloneLost"
	// Ready (besides Running, StoppedOnExpiry and the Bound reasons it repeats).
	ReasonCloneNotReady    = "CloneNotReady"
	ReasonWaitingForData   = "WaitingForGuestData"
	ReasonClaimDataMissing = "ClaimDataMissing"
)

// Reasons of XenHost conditions.
const (
	ReasonHostToolsAnswer       = "HostToolsAnswer"
	ReasonXenUnavailable        = "XenUnavailable"
	ReasonHeartbeatLost         = "HeartbeatLost"
	ReasonVolumeGroupUnreadable = "VolumeGroupUnreadable"
	ReasonOriginNotProtected    = "OriginNotProtected"
)

// Reasons of VMTemplate conditions.
const (
	ReasonOriginPresent       = "OriginPresent"
	ReasonNoHostHasOrigin     = "NoHostHasOrigin"
	ReasonInvalidHostSelector = "InvalidHostSelector"
	ReasonInUse               = "InUse"
	ReasonNotInUse            = "NotInUse"
	ReasonDeletionBlocked     = "DeletionBlocked"
	// Imported (a template with spec.source).
	ReasonImported  = "Imported"
	ReasonImporting = "Importing"
	// ReasonImportFailing: some hosts' last attempt failed (their reasons are
	// ImportFailureReasons); they retry with backoff.
	ReasonImportFailing  = "ImportFailing"
	ReasonNoHostSelected = "NoHostSelected"
)

// Reasons of VMClonePool conditions.
const (
	ReasonAllMembersReady = "AllMembersReady"
	ReasonScaling         = "Scaling"
	ReasonMembersNotReady = "MembersNotReady"
	// ReasonRollingOut: unclaimed members of an older spec.template are being replaced
	// (updateStrategy Recreate).
	ReasonRollingOut = "RollingOut"
)

// Reasons that only events carry (events also use many condition reasons).
const (
	ReasonReschedulePaused      = "ReschedulePaused"
	ReasonMemberCreated         = "MemberCreated"
	ReasonMemberDeleted         = "MemberDeleted"
	ReasonReplacingFailedMember = "ReplacingFailedMember"
	// ReasonDuplicateStopped: an agent found a domain of a clone that is now bound to another
	// host running on its own, and destroyed it at once.
	ReasonDuplicateStopped = "DuplicateStopped"
	// Pool and claim events.
	ReasonRefillFailed = "RefillFailed"
	ReasonColdFallback = "ColdFallback"
	ReasonClaimExpired = "ClaimExpired"
)

// ConditionReason is one reason a condition may carry.
// +kubebuilder:object:generate=false
type ConditionReason struct {
	Name string
	// Statuses are the statuses the condition has with this reason.
	Statuses []metav1.ConditionStatus
	Class    ReasonClass
	// Meaning is one line for people; docs/troubleshooting.md says what to do.
	Meaning string
	// Writer, when set, is who writes the condition with this reason instead of the
	// condition's writer: the controller marks a XenHost HeartbeatLost because the agent that
	// writes its Ready otherwise is the one that stopped.
	Writer Writer
}

// ConditionDef is one condition type of one kind.
// +kubebuilder:object:generate=false
type ConditionDef struct {
	Kind   string
	Type   string
	Writer Writer
	// Repeats are the condition types of the same object whose reasons this one carries over,
	// with status RepeatsAs, while they are not True (Ready names the first step not done).
	Repeats   []string
	RepeatsAs metav1.ConditionStatus
	Reasons   []ConditionReason
}

// Reason looks a reason up among the condition's own.
func (d ConditionDef) Reason(name string) (ConditionReason, bool) {
	for _, r := range d.Reasons {
		if r.Name == name {
			return r, true
		}
	}
	return ConditionReason{}, false
}

// WriterOf is who writes the condition with that reason.
func (d ConditionDef) WriterOf(reason string) Writer {
	if r, ok := d.Reason(reason); ok && r.Writer != "" {
		return r.Writer
	}
	return d.Writer
}

// EventReason is a reason only events carry.
// +kubebuilder:object:generate=false
type EventReason struct {
	Kind    string
	Name    string
	Writer  Writer
	Meaning string
}

var (
	isTrue    = []metav1.ConditionStatus{metav1.ConditionTrue}
	isFalse   = []metav1.ConditionStatus{metav1.ConditionFalse}
	isUnknown = []metav1.ConditionStatus{metav1.ConditionUnknown}
)

// Conditions is the table.
var Conditions = []ConditionDef{
	{Kind: "VMClone", Type: ConditionScheduled, Writer: WriterController, Reasons: []ConditionReason{
		{ReasonScheduled, isTrue, ClassSettled, "bound to status.nodeName; the message says why that host", ""},
		{ReasonUnschedulable, isFalse, ClassBlocked, "no live host fits; the message counts the hosts and why each was rejected", ""},
		{ReasonTemplateNotFound, isFalse, ClassBlocked, "spec.templateRef names no VMTemplate", ""},
		{ReasonTemplateDeleting, isFalse, ClassBlocked, "the template is being deleted and takes no new clones", ""},
		{ReasonNamespaceNotAllowed, isFalse, ClassBlocked, "the template does not allow the clone's namespace", ""},
		{ReasonCloudInitDataMissing, isFalse, ClassBlocked, "a Secret or key named in spec.cloudInit does not exist", ""},
		{ReasonMACConflict, isFalse, ClassBlocked, "a MAC pinned in spec.nics is used by another clone", ""},
		{ReasonDomainNameTaken, isFalse, ClassBlocked, "the clone's domain name (spec.domainName) is already another bound clone's; domain names are unique across the cluster", ""},
		{ReasonRescheduled, isFalse, ClassTransitional, "the clone's host was lost; it is being placed on another (onNodeLost: Reschedule)", ""},
	}},
	{Kind: "VMClone", Type: ConditionReady, Writer: WriterController,
		Repeats:   []string{ConditionScheduled, ConditionVolumeReady, ConditionGuestPrepared, ConditionDomainRunning, ConditionGuestReady},
		RepeatsAs: metav1.ConditionFalse,
		Reasons: []ConditionReason{
			{ReasonRunning, isTrue, ClassSettled, "the domain runs (and, where the template has a readiness probe, the guest passed it: GuestReady)", ""},
			{ReasonHalted, isTrue, ClassSettled, "runStrategy Halted: the disk is prepared, the domain stays off", ""},
			{ReasonStoppedOnExpiry, isTrue, ClassSettled, "the lifetime ended with onExpiry: Stop; the domain stays off", ""},
			{ReasonWaitingForHost, isFalse, ClassTransitional, "bound; the host agent has not reported on this binding yet", ""},
			{ReasonNodeLost, isUnknown, ClassBlocked, "the host's heartbeat is stale or missing: the clone's state is unknown", ""},
			{ReasonRescheduleWaitsForFence, isUnknown, ClassTransitional, "the host is lost and the clone moves (onNodeLost: Reschedule) once the host's agent must have stopped its domain (fence-after plus margin); the message says when", ""},
			{ReasonHostNotFencing, isUnknown, ClassBlocked, "the host is lost and its agent does not fence, so the clone is never moved (onNodeLost: Reschedule): upgrade the agent", ""},
			{ReasonResetting, isFalse, ClassTransitional, "a reset was requested and the host agent has not finished it", ""},
			{ReasonFailed, isFalse, ClassStalled, "the clone failed on its host (phase Failed)", ""},
			{ReasonStopping, isFalse, ClassTransitional, "off by design, but the domain is still shutting down", ""},
			{ReasonPaused, isTrue, ClassSettled, "a warm standby (spec.pause): booted, memory ballooned down, paused until a claim resumes it", ""},
		}},
	{Kind: "VMClone", Type: ConditionExpired, Writer: WriterController, Reasons: []ConditionReason{
		{ReasonLifetimeRunning, isFalse, ClassSettled, "the lifetime runs; the message says when it ends and what happens then", ""},
		{ReasonLifetimeEnded, isTrue, ClassSettled, "the lifetime ended; with onExpiry: Stop the domain is kept off", ""},
	}},
	{Kind: "VMClone", Type: ConditionReconciling, Writer: WriterController,
		Repeats: []string{ConditionReady}, RepeatsAs: metav1.ConditionTrue,
		Reasons: []ConditionReason{
			{ReasonProgressing, isTrue, ClassTransitional, "Ready is not True and has no reason yet", ""},
		}},
	{Kind: "VMClone", Type: ConditionStalled, Writer: WriterController, Reasons: []ConditionReason{
		{ReasonFailed, isTrue, ClassStalled, "Ready says Failed: only a reset or a deletion helps", ""},
	}},
	{Kind: "VMClone", Type: ConditionVolumeReady, Writer: WriterHostAgent, Reasons: []ConditionReason{
		{ReasonSnapshotCreated, isTrue, ClassSettled, "the snapshot exists; the message is its device path", ""},
		{ReasonWaitingForIdentity, isFalse, ClassTransitional, "the controller has not written the clone's UUID and MACs yet", ""},
		{ReasonTemplateNotFound, isFalse, ClassBlocked, "the clone is bound but its VMTemplate is gone", ""},
		{ReasonOriginMissing, isFalse, ClassBlocked, "the template's origin LV is not on this host", ""},
		{ReasonOriginRefused, isFalse, ClassBlocked, "the LV the template names must not be an origin here (writable and open, a clone's disk, tagged xenclone.not-template); it was left untouched", ""},
		{ReasonVolumeNameConflict, isFalse, ClassBlocked, "an LV of the clone's disk name exists without the clone's ownership tag", ""},
		{ReasonStorageError, isFalse, ClassBlocked, "lvs or lvcreate failed; the message has lvm's error", ""},
		{ReasonResetting, isFalse, ClassTransitional, "the disk is being dropped for a reset", ""},
		{ReasonVolumeLost, isFalse, ClassStalled, "the clone's disk LV (or its VG) vanished after the agent had made it; only a reset gives a fresh disk", ""},
	}},
	{Kind: "VMClone", Type: ConditionGuestPrepared, Writer: WriterHostAgent, Reasons: []ConditionReason{
		{ReasonPrepared, isTrue, ClassSettled, "machine-specific data scrubbed and the hostname set on the fresh snapshot", ""},
		{ReasonPrepareFailed, isFalse, ClassBlocked, "attaching, mounting or scrubbing the guest filesystem failed", ""},
		{ReasonResetting, isFalse, ClassTransitional, "the disk is being dropped for a reset; the new one is prepared again", ""},
	}},
	{Kind: "VMClone", Type: ConditionDomainRunning, Writer: WriterHostAgent, Reasons: []ConditionReason{
		{ReasonStarted, isTrue, ClassSettled, "the domain runs", ""},
		{ReasonPaused, isTrue, ClassSettled, "the domain is paused with its memory ballooned down to spec.pause.memory (a warm standby)", ""},
		{ReasonShuttingDown, isFalse, ClassTransitional, "the guest was asked to shut down; it is destroyed after the grace period", ""},
		{ReasonStopped, isFalse, ClassTransitional, "the agent stopped the domain (for a reset, a deletion or the run strategy)", ""},
		{ReasonHalted, isFalse, ClassSettled, "the domain is off, as the run strategy (or onExpiry: Stop) asks", ""},
		{ReasonGuestPoweredOff, isFalse, ClassSettled, "the guest powered itself off and the run strategy keeps it off", ""},
		{ReasonGuestCrashed, isFalse, ClassBlocked, "the guest crashed and the run strategy does not start it again", ""},
		{ReasonRestarting, isFalse, ClassTransitional, "the guest stopped and the run strategy starts it again", ""},
		{ReasonStartFailed, isFalse, ClassBlocked, "xl create failed; the message has xl's error", ""},
		{ReasonSecretMissing, isFalse, ClassBlocked, "the controller's copy of the clone's cloud-init data is missing", ""},
		{ReasonDomainNameConflict, isFalse, ClassBlocked, "a domain of the clone's name runs that this clone did not create", ""},
		{ReasonResetting, isFalse, ClassTransitional, "the disk is being reset; the domain starts again on the fresh one", ""},
		{ReasonFenced, isFalse, ClassTransitional, "the host's agent could not renew its heartbeat for its fence-after and destroyed the domain (onNodeLost: Reschedule); it starts again once the API server confirms the clone is still bound here", ""},
	}},
	{Kind: "VMClone", Type: ConditionGuestReady, Writer: WriterHostAgent, Reasons: []ConditionReason{
		{ReasonGuestUp, isTrue, ClassSettled, "the guest is up as spec.domain.readiness of the template defines it (the domain runs, a guest agent reported, or the TCP port answered); present while the domain runs", ""},
		{ReasonWaitingForGuest, isFalse, ClassTransitional, "the domain runs and the guest has not passed its readiness probe yet (booting)", ""},
		{ReasonGuestNotResponding, isFalse, ClassBlocked, "the guest has not passed its readiness probe in 5 minutes: no guest agent in the guest, or the probed service does not answer; the message says which", ""},
	}},
	{Kind: "VMClone", Type: ConditionStorageAtRisk, Writer: WriterHostAgent, Reasons: []ConditionReason{
		{ReasonStorageOK, isFalse, ClassSettled, "COW or thin pool usage is below the thresholds", ""},
		{ReasonCOWExtended, isFalse, ClassSettled, "the classic COW area passed its threshold and was extended", ""},
		{ReasonCOWAtMaximum, isTrue, ClassBlocked, "the COW area is past its threshold and cannot grow", ""},
		{ReasonThinPoolAtRisk, isTrue, ClassBlocked, "the clone's thin pool is past its data or metadata threshold", ""},
		{ReasonSnapshotInvalid, isTrue, ClassBlocked, "the classic snapshot is full or invalidated: the guest's disk is lost", ""},
	}},
	{Kind: "VMClone", Type: ConditionGuestDataDelivered, Writer: WriterHostAgent, Reasons: []ConditionReason{
		{ReasonGuestDataDelivered, isTrue, ClassSettled, "the keys of spec.guestData are in the domain's xenstore under data/xenclone/", ""},
		{ReasonGuestDataPending, isFalse, ClassTransitional, "the domain is not running yet; the data is written once it is", ""},
		{ReasonGuestDataSecretMissing, isFalse, ClassBlocked, "the controller's copy of the Secret named in spec.guestData is missing (the Secret or the copy does not exist)", ""},
		{ReasonGuestDataRejected, isFalse, ClassBlocked, "the data cannot be written: too many keys, a value too large for xenstore, or xenstore-write failed; the message says which", ""},
	}},

	{Kind: "XenHost", Type: ConditionReady, Writer: WriterHostAgent, Reasons: []ConditionReason{
		{ReasonHostToolsAnswer, isTrue, ClassSettled, "xl and lvm answer on the host", ""},
		{ReasonXenUnavailable, isFalse, ClassBlocked, "xl info failed", ""},
		{ReasonHeartbeatLost, isUnknown, ClassBlocked, "the agent has not renewed its heartbeat Lease; the rest of the status is its last report", WriterController},
	}},
	{Kind: "XenHost", Type: ConditionStorageHealthy, Writer: WriterHostAgent, Reasons: []ConditionReason{
		{ReasonStorageOK, isTrue, ClassSettled, "the volume groups are readable", ""},
		{ReasonVolumeGroupUnreadable, isFalse, ClassBlocked, "vgs or lvs failed for a volume group", ""},
		{ReasonOriginNotProtected, isFalse, ClassBlocked, "a template origin could not be made read-only", ""},
	}},

	{Kind: "VMTemplate", Type: ConditionReady, Writer: WriterController,
		// A template with a source that no host has yet says how its imports go.
		Repeats: []string{ConditionImported}, RepeatsAs: metav1.ConditionFalse, Reasons: []ConditionReason{
			{ReasonOriginPresent, isTrue, ClassSettled, "the origin is present and read-only on the hosts listed", ""},
			{ReasonNoHostHasOrigin, isFalse, ClassBlocked, "no matching host reports the origin read-only", ""},
			{ReasonInvalidHostSelector, isFalse, ClassBlocked, "spec.hostSelector cannot be parsed", ""},
		}},
	{Kind: "VMTemplate", Type: ConditionImported, Writer: WriterController, Reasons: []ConditionReason{
		{ReasonImported, isTrue, ClassSettled, "every selected host imported spec.source and verified its checksum", ""},
		{ReasonImporting, isFalse, ClassTransitional, "hosts are importing spec.source or wait for an import slot; the message counts them and shows progress", ""},
		{ReasonImportFailing, isFalse, ClassBlocked, "the last import attempt failed on some hosts; the message names each host and its cause, status.hosts[].import has the details; they retry with backoff", ""},
		{ReasonNoHostSelected, isFalse, ClassBlocked, "no live host matches spec.hostSelector, so nothing imports the source", ""},
	}},
	{Kind: "VMTemplate", Type: ConditionTemplateInUse, Writer: WriterController, Reasons: []ConditionReason{
		{ReasonInUse, isTrue, ClassSettled, "clones use the template; the message lists them", ""},
		{ReasonNotInUse, isFalse, ClassSettled, "no clone uses the template", ""},
		{ReasonDeletionBlocked, isTrue, ClassBlocked, "the template was deleted while clones use it; deletion waits for them", ""},
	}},

	{Kind: "VMClonePool", Type: ConditionReady, Writer: WriterController, Reasons: []ConditionReason{
		{ReasonAllMembersReady, isTrue, ClassSettled, "all spec.replicas members exist and are Ready", ""},
		{ReasonScaling, isFalse, ClassTransitional, "members are being created or deleted to match spec.replicas", ""},
		{ReasonMembersNotReady, isFalse, ClassTransitional, "all members exist but some are not Ready (each says why)", ""},
		{ReasonRollingOut, isFalse, ClassTransitional, "unclaimed members of an older spec.template are being replaced (updateStrategy Recreate)", ""},
	}},

	{Kind: "VMClaim", Type: ConditionBound, Writer: WriterController, Reasons: []ConditionReason{
		{ReasonClaimedWarm, isTrue, ClassSettled, "a warm member of the pool was handed over; status.cloneName names it", ""},
		{ReasonCreatedCold, isTrue, ClassSettled, "no warm member was free: a new clone of the pool's template was created (fallback Cold)", ""},
		{ReasonWaitingForWarmMember, isFalse, ClassTransitional, "no warm member is free and the claim waits for one (fallback Wait)", ""},
		{ReasonPoolNotFound, isFalse, ClassBlocked, "spec.poolRef names no VMClonePool in the claim's namespace", ""},
		{ReasonTemplateNotFound, isFalse, ClassBlocked, "spec.templateRef names no VMTemplate", ""},
		{ReasonCloneLost, isFalse, ClassStalled, "the claim's clone was deleted by someone else; delete the claim and claim again", ""},
	}},
	{Kind: "VMClaim", Type: ConditionReady, Writer: WriterController,
		Repeats:   []string{ConditionBound},
		RepeatsAs: metav1.ConditionFalse,
		Reasons: []ConditionReason{
			{ReasonRunning, isTrue, ClassSettled, "the claim's clone runs (resumed, if it was a paused member) and has its data", ""},
			{ReasonStoppedOnExpiry, isTrue, ClassSettled, "the claim's lifetime ended with onExpiry: Stop; its clone stays off", ""},
			{ReasonCloneNotReady, isFalse, ClassTransitional, "the claim's clone is not Ready yet; the message repeats its reason", ""},
			{ReasonWaitingForData, isFalse, ClassTransitional, "the clone runs; the host agent has not delivered spec.data into it yet", ""},
			{ReasonClaimDataMissing, isFalse, ClassBlocked, "the Secret named in spec.data does not exist in the claim's namespace", ""},
		}},
	{Kind: "VMClaim", Type: ConditionReconciling, Writer: WriterController,
		Repeats: []string{ConditionReady}, RepeatsAs: metav1.ConditionTrue,
		Reasons: []ConditionReason{
			{ReasonProgressing, isTrue, ClassTransitional, "Ready is not True and has no reason yet", ""},
		}},
	{Kind: "VMClaim", Type: ConditionStalled, Writer: WriterController, Reasons: []ConditionReason{
		{ReasonCloneLost, isTrue, ClassStalled, "Ready says CloneLost: only deleting the claim helps", ""},
	}},
}

// EventReasons are the reasons only events carry.
var EventReasons = []EventReason{
	{"VMClone", ReasonReschedulePaused, WriterController, "the clone's host is lost, but so many hosts are that nothing is moved"},
	{"VMClone", ReasonDuplicateStopped, WriterHostAgent, "a host found the clone's domain running although the clone is bound to another host, and destroyed it at once"},
	{"VMClonePool", ReasonMemberCreated, WriterController, "a member was created"},
	{"VMClonePool", ReasonMemberDeleted, WriterController, "a member was deleted on scale-down"},
	{"VMClonePool", ReasonReplacingFailedMember, WriterController, "a Failed member is deleted and replaced (spec.replaceFailed)"},
	{"VMClonePool", ReasonRefillFailed, WriterController, "the API server refused a new member (quota, admission, validation); the pool retries with backoff"},
	{"VMClaim", ReasonColdFallback, WriterController, "no warm member was free: the claim got a new clone (fallback Cold)"},
	{"VMClaim", ReasonClaimExpired, WriterController, "the claim's lifetime ended: it was deleted (onExpiry Delete) or its clone stopped (Stop)"},
}

// LookupCondition finds a kind's condition type in the table.
func LookupCondition(kind, conditionType string) (ConditionDef, bool) {
	for _, d := range Conditions {
		if d.Kind == kind && d.Type == conditionType {
			return d, true
		}
	}
	return ConditionDef{}, false
}

// ConditionTypes lists the condition types of a kind that w writes, in the table's order.
func ConditionTypes(kind string, w Writer) []string {
	var out []string
	for _, d := range Conditions {
		if d.Kind == kind && d.Writer == w {
			out = append(out, d.Type)
		}
	}
	return out
}

// ReasonsOf lists every reason a kind's condition may carry: its own, then those it repeats
// from other conditions while they are not True, with its RepeatsAs status (a repeated name it
// also has as its own adds that status to its own). A Stalled reason is not repeated: it makes
// the object Stalled instead of Reconciling.
func ReasonsOf(kind, conditionType string) []ConditionReason {
	d, ok := LookupCondition(kind, conditionType)
	if !ok {
		return nil
	}
	at := map[string]int{}
	var out []ConditionReason
	for _, r := range d.Reasons {
		at[r.Name] = len(out)
		r.Statuses = append([]metav1.ConditionStatus(nil), r.Statuses...)
		out = append(out, r)
	}
	for _, t := range d.Repeats {
		for _, r := range ReasonsOf(kind, t) {
			if !notOnlyTrue(r.Statuses) || r.Class == ClassStalled {
				continue
			}
			if i, dup := at[r.Name]; dup {
				if !hasStatus(out[i].Statuses, d.RepeatsAs) {
					out[i].Statuses = append(out[i].Statuses, d.RepeatsAs)
				}
				continue
			}
			r.Statuses = []metav1.ConditionStatus{d.RepeatsAs}
			at[r.Name] = len(out)
			out = append(out, r)
		}
	}
	return out
}

func hasStatus(list []metav1.ConditionStatus, s metav1.ConditionStatus) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func notOnlyTrue(st []metav1.ConditionStatus) bool {
	for _, s := range st {
		if s != metav1.ConditionTrue {
			return true
		}
	}
	return false
}
