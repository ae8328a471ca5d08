package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImageFormat is the format of a template source image.
// +kubebuilder:validation:Enum=raw;qcow2
type ImageFormat string

const (
	// ImageRaw is a raw disk image, streamed straight into the origin LV.
	ImageRaw ImageFormat = "raw"
	// ImageQCOW2 is a qcow2 image. qcow2 needs random access, so it is downloaded into a
	// scratch file on the host (at most maxSize bytes) and converted into the LV with
	// `qemu-img convert`.
	ImageQCOW2 ImageFormat = "qcow2"
)

// DefaultImportMaxSize caps a source without spec.source.maxSize.
var DefaultImportMaxSize = resource.MustParse("64Gi")

// TemplateSource is where each selected host's agent fetches the template's disk from. With a
// source, the origin LV (spec.origin) is created by xenclone on every selected host: downloaded
// into a temporary LV, its checksum verified, and only then named spec.origin.logicalVolume and
// made read-only. An LV of that name that xenclone did not import for this template is never
// overwritten.
type TemplateSource struct {
	// URL is an http:// or https:// URL of the image. Redirects are followed only to http(s)
	// URLs. Credentials in the URL (user:password@, a signed query) are never shown in status,
	// events or logs.
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') || self.startsWith('http://')",message="spec.source.url must be an http:// or https:// URL, e.g. https://images.example.com/debian-12.raw"
	URL string `json:"url"`
	// Checksum is the image's digest as served (before any conversion): sha256:<64 hex> or
	// sha512:<128 hex>. The origin gets its name only once the download matches it.
	// +kubebuilder:validation:XValidation:rule="self.matches('^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$')",message="spec.source.checksum must be sha256: and the 64 lowercase hex digits sha256sum prints, or sha512: and the 128 of sha512sum"
	Checksum string `json:"checksum"`
	// Format is the image's format: raw (default) or qcow2.
	// +kubebuilder:default=raw
	// +optional
	Format ImageFormat `json:"format,omitempty"`
	// MaxSize caps both the bytes downloaded and the disk size of the origin (a qcow2's
	// virtual size), so a mistaken or hostile server cannot fill a volume group. Default 64Gi.
	// +optional
	MaxSize *resource.Quantity `json:"maxSize,omitempty"`
	// CABundle is a PEM bundle of the CAs to trust for an https URL instead of the host's.
	// CAs are public, so this is a field and not a Secret.
	// +kubebuilder:validation:MaxLength=65536
	// +optional
	CABundle string `json:"caBundle,omitempty"`
}

// ImportPhase is where one host's import of a template's source stands.
// +kubebuilder:validation:Enum=Waiting;Importing;Failed;Succeeded
type ImportPhase string

const (
	// ImportWaiting: the host needs the import and waits for a fleet-wide import slot
	// (--max-parallel-imports) or for its retry time.
	ImportWaiting ImportPhase = "Waiting"
	// ImportImporting: downloading, converting or verifying.
	ImportImporting ImportPhase = "Importing"
	// ImportFailed: the last attempt failed; reason and message say why, nextAttemptTime
	// when the agent tries again.
	ImportFailed ImportPhase = "Failed"
	// ImportSucceeded: the origin is on the host, verified and read-only.
	ImportSucceeded ImportPhase = "Succeeded"
)

// Reasons of a failed import attempt (HostImportStatus.reason). docs/troubleshooting.md says
// what to do about each.
const (
	ReasonImportHTTPError        = "ImportHTTPError"
	ReasonImportChecksumMismatch = "ImportChecksumMismatch"
	ReasonImportTruncated        = "ImportTruncated"
	ReasonImportStalled          = "ImportStalled"
	ReasonImportTooLarge         = "ImportTooLarge"
	ReasonImportOutOfSpace       = "ImportOutOfSpace"
	ReasonImportBadImage         = "ImportBadImage"
	ReasonImportNameTaken        = "ImportNameTaken"
	ReasonImportStorageError     = "ImportStorageError"
	ReasonImportFailed           = "ImportFailed"
)

// ImportFailureReason is one reason an import attempt fails.
// +kubebuilder:object:generate=false
type ImportFailureReason struct {
	Name    string
	Meaning string
}

// ImportFailureReasons is the table of ImportFailed reasons.
var ImportFailureReasons = []ImportFailureReason{
	{ReasonImportHTTPError, "the server answered with an error status, or could not be reached (DNS, TLS, connection); the message has the status or the error"},
	{ReasonImportChecksumMismatch, "the downloaded image's digest is not spec.source.checksum; the message has both"},
	{ReasonImportTruncated, "the server closed the download before Content-Length bytes"},
	{ReasonImportStalled, "the server sent nothing for the stall timeout"},
	{ReasonImportTooLarge, "the image (download or virtual size) is larger than spec.source.maxSize"},
	{ReasonImportOutOfSpace, "the volume group has too little free space for the origin; the message has both numbers"},
	{ReasonImportBadImage, "the image is not what spec.source.format says (qemu-img cannot read it), or a raw image came without Content-Length"},
	{ReasonImportNameTaken, "an LV named spec.origin.logicalVolume exists on the host that xenclone did not import for this template; it is left untouched"},
	{ReasonImportStorageError, "lvcreate, lvrename or lvchange failed; the message has lvm's error"},
	{ReasonImportFailed, "any other failure; the message says which step"},
}

// HostImportStatus is one host's import of one template's source, reported by that host's
// agent in its XenHost status and repeated by the controller in the VMTemplate's.
type HostImportStatus struct {
	// Template is the VMTemplate's name.
	Template string `json:"template"`
	// Phase is Waiting, Importing, Failed or Succeeded.
	Phase ImportPhase `json:"phase"`
	// Reason is a CamelCase reason of the last failure (see ImportFailureReasons).
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message says what happened, for people.
	// +optional
	Message string `json:"message,omitempty"`
	// BytesDone is how much of the image was downloaded.
	// +optional
	BytesDone int64 `json:"bytesDone,omitempty"`
	// BytesTotal is the image's download size, when the server says it.
	// +optional
	BytesTotal int64 `json:"bytesTotal,omitempty"`
	// BytesPerSecond is the download rate of the running attempt.
	// +optional
	BytesPerSecond int64 `json:"bytesPerSecond,omitempty"`
	// Checksum is the verified digest, once Succeeded.
	// +optional
	Checksum string `json:"checksum,omitempty"`
	// SizeBytes is the origin LV's size, once Succeeded.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// Attempts counts the attempts so far.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// StartTime is when the current or last attempt started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the import succeeded.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// NextAttemptTime is when a failed import is tried again.
	// +optional
	NextAttemptTime *metav1.Time `json:"nextAttemptTime,omitempty"`
}
