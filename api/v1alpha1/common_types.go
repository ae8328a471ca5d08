package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
)

// Labels, annotations and finalizers shared by the controller and the host agents.
const (
	// PoolLabel names the VMClonePool that owns a VMClone.
	PoolLabel = "vm.xenclone.dev/pool"

	// PoolIndexLabel carries a pool member's index.
	PoolIndexLabel = "vm.xenclone.dev/pool-index"

	// ClaimLabel names the VMClaim a clone was handed to. A pool member that carries it has
	// left the pool: it keeps its pool and index labels (its name holds the index) but no
	// longer counts as a member, and the claim is its controller.
	ClaimLabel = "vm.xenclone.dev/claim"

	// PoolTemplateHashAnnotation on a pool member is the hash of the pool's spec.template it
	// was made from, so a changed template is rolled out (spec.updateStrategy).
	PoolTemplateHashAnnotation = "vm.xenclone.dev/pool-template-hash"

	// ClaimFinalizer is held by the controller until a deleted claim's clone is gone.
	ClaimFinalizer = "vm.xenclone.dev/claimed-clone"

	// CloneFinalizer is held by the host agent until the clone's domain, configuration, seed and
	// snapshot are gone from its host.
	CloneFinalizer = "vm.xenclone.dev/host-cleanup"

	// PoolFinalizer is held by the controller until a deleted pool's members are gone, so
	// deleting a pool removes its VMs even where no garbage collector runs.
	PoolFinalizer = "vm.xenclone.dev/pool-members"

	// TemplateFinalizer is held by the controller while clones of a template exist.
	TemplateFinalizer = "vm.xenclone.dev/in-use"

	// CloneUIDLabel is set on the controller's copy of a clone's cloud-init data (see
	// CloudInitCopyName) to the clone's UID.
	CloneUIDLabel = "vm.xenclone.dev/clone-uid"

	// CloudInitSourceAnnotation on a cloud-init copy records the Secret keys it was copied
	// from ("<namespace>/<secret>:<key>" for user data, then network config, "-" if unset).
	CloudInitSourceAnnotation = "vm.xenclone.dev/cloud-init-source"

	// CloudInitUserDataKey and CloudInitNetworkConfigKey are the keys of a cloud-init copy.
	CloudInitUserDataKey      = "user-data"
	CloudInitNetworkConfigKey = "network-config"
)

// CloudInitCopyName is the name of the Secret, in the controller's system namespace, holding the
// copy of a clone's cloud-init data. Host agents read only these copies — a Role in that
// namespace — never a tenant's Secret, so a compromised dom0 cannot read arbitrary Secrets.
func CloudInitCopyName(cloneUID string) string { return "xc-cloudinit-" + cloneUID }

// GuestDataCopyName is the name of the controller's copy, in its system namespace, of the
// Secret a clone's spec.guestData names; like cloud-init copies, agents read only these.
func GuestDataCopyName(cloneUID string) string { return "xc-guestdata-" + cloneUID }

// GuestDataSourceAnnotation on a guest-data copy records "<namespace>/<secret>@<resourceVersion>"
// of the Secret it was copied from.
const GuestDataSourceAnnotation = "vm.xenclone.dev/guest-data-source"

// Condition types. Every object reports a top-level Ready condition; the others say which step
// is not done yet.
const (
	ConditionReady         = "Ready"
	ConditionScheduled     = "Scheduled"
	ConditionVolumeReady   = "VolumeReady"
	ConditionGuestPrepared = "GuestPrepared"
	ConditionDomainRunning = "DomainRunning"
	// ConditionGuestReady: the guest is up as spec.domain.readiness defines it.
	ConditionGuestReady     = "GuestReady"
	ConditionStorageAtRisk  = "StorageAtRisk"
	ConditionHostReachable  = "HostReachable"
	ConditionTemplateInUse  = "InUse"
	ConditionStorageHealthy = "StorageHealthy"
	// ConditionGuestDataDelivered: the host agent wrote spec.guestData into the domain.
	ConditionGuestDataDelivered = "GuestDataDelivered"
	// ConditionImported: every selected host has imported a VMTemplate's spec.source.
	ConditionImported = "Imported"
	// ConditionBound: a VMClaim has its clone.
	ConditionBound = "Bound"
	// ConditionExpired is True once a clone's lifetime has ended; with onExpiry: Stop the host
	// agent keeps such a clone stopped (the controller cannot rewrite the user's spec).
	ConditionExpired = "Expired"
	// ConditionReconciling and ConditionStalled follow kstatus (sigs.k8s.io/cli-utils), which
	// Flux, kpt and `kubectl wait` users rely on: Reconciling=True while the object is on its
	// way, Stalled=True when it cannot get there without help. Present only when True.
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)

// DomainType is the Xen guest type.
// +kubebuilder:validation:Enum=pv;pvh;hvm
type DomainType string

const (
	DomainTypePV  DomainType = "pv"
	DomainTypePVH DomainType = "pvh"
	DomainTypeHVM DomainType = "hvm"
)

// LifecycleAction is what Xen does when a guest powers off, reboots or crashes
// (xl.cfg on_poweroff / on_reboot / on_crash).
// +kubebuilder:validation:Enum=destroy;restart;rename-restart;preserve;coredump-destroy;coredump-restart
type LifecycleAction string

// DomainSpec is the Xen domain configuration of a clone. A VMTemplate gives the defaults; a
// VMClone may override memory, vCPUs and NICs.
//
// +kubebuilder:validation:XValidation:rule="!has(self.maxMemory) || !has(self.memory) || quantity(string(self.maxMemory)).compareTo(quantity(string(self.memory))) >= 0",message="spec.domain.maxMemory must be greater than or equal to spec.domain.memory: raise maxMemory or lower memory"
// +kubebuilder:validation:XValidation:rule="!has(self.maxVCPUs) || !has(self.vcpus) || self.maxVCPUs >= self.vcpus",message="spec.domain.maxVCPUs must be greater than or equal to spec.domain.vcpus: raise maxVCPUs or lower vcpus"
// +kubebuilder:validation:XValidation:rule="!has(self.boot) || !has(self.type) || self.type != 'hvm' || !has(self.boot.bootloader)",message="spec.domain.boot.bootloader (pygrub) is for pv and pvh guests only: remove it for type hvm (HVM guests boot from their own disk)"
type DomainSpec struct {
	// Type is the Xen guest type: pv (paravirtualized, the default and the only type that runs
	// without hardware virtualization), pvh, or hvm.
	// +kubebuilder:default=pv
	// +optional
	Type DomainType `json:"type,omitempty"`

	// Memory is the guest's memory at start, e.g. 1Gi (xl.cfg memory, rounded up to MiB).
	// At least 32Mi, at most 4Ti. Unset means 512Mi, which is also what placement counts.
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('32Mi')) >= 0 && quantity(string(self)).compareTo(quantity('4Ti')) <= 0",message="memory must be between 32Mi and 4Ti, e.g. 512Mi or 2Gi"
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`

	// MaxMemory is the most memory the guest may balloon up to (xl.cfg maxmem); at least Memory.
	// Unset means equal to Memory.
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('32Mi')) >= 0 && quantity(string(self)).compareTo(quantity('4Ti')) <= 0",message="maxMemory must be between 32Mi and 4Ti, e.g. 1Gi"
	// +optional
	MaxMemory *resource.Quantity `json:"maxMemory,omitempty"`

	// VCPUs is the number of virtual CPUs online at start (xl.cfg vcpus), 1 to 512. Unset
	// means 1.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=512
	// +optional
	VCPUs *int32 `json:"vcpus,omitempty"`

	// MaxVCPUs is the number of virtual CPUs the guest may bring online (xl.cfg maxvcpus);
	// at least VCPUs.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=512
	// +optional
	MaxVCPUs *int32 `json:"maxVCPUs,omitempty"`

	// Boot says how the guest boots: through pygrub reading the guest's own grub
	// configuration, or directly from a kernel and ramdisk in dom0.
	// +optional
	Boot *BootSpec `json:"boot,omitempty"`

	// DiskVdev is the virtual device the clone's snapshot appears as in the guest. A whole-disk
	// name such as xvda means the guest sees a partition table; xvda1 means a bare filesystem.
	// +kubebuilder:validation:MaxLength=8
	// +kubebuilder:validation:XValidation:rule="self.matches('^(xvd[a-z]{1,2}|hd[a-z]|sd[a-z]{1,2})[0-9]{0,2}$')",message="diskVdev must be a Xen virtual disk name such as xvda (whole disk) or xvda1 (a bare filesystem)"
	// +kubebuilder:default=xvda
	// +optional
	DiskVdev string `json:"diskVdev,omitempty"`

	// NICs are the guest's network interfaces, in order (eth0 first). Each clone gets its own
	// unique MAC per NIC.
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	// +optional
	NICs []NIC `json:"nics,omitempty"`

	// VNC turns on a VNC console bound to 127.0.0.1 of the host. It costs one QEMU process in
	// dom0 per guest, so leave it off for dense hosts.
	// +optional
	VNC *VNCSpec `json:"vnc,omitempty"`

	// Readiness says when a started guest counts as up: the clone's GuestReady condition, which
	// Ready follows (so `kubectl wait --for=condition=Ready` can mean "I can log in"). Unset
	// means probe DomainRunning: up once the domain runs.
	// +optional
	Readiness *GuestReadiness `json:"readiness,omitempty"`

	// OnPoweroff is what Xen does when the guest powers off. Default destroy.
	// +optional
	OnPoweroff LifecycleAction `json:"onPoweroff,omitempty"`
	// OnReboot is what Xen does when the guest reboots. Default restart.
	// +optional
	OnReboot LifecycleAction `json:"onReboot,omitempty"`
	// OnCrash is what Xen does when the guest crashes. Default destroy.
	// +optional
	OnCrash LifecycleAction `json:"onCrash,omitempty"`
}

// BootSpec selects exactly one boot method.
// +kubebuilder:validation:XValidation:rule="has(self.bootloader) != has(self.kernel)",message="spec.domain.boot must set exactly one of bootloader or kernel: use bootloader: pygrub to boot the guest's own kernel, or kernel (with optional ramdisk and cmdline) to boot a kernel from dom0"
// +kubebuilder:validation:XValidation:rule="!has(self.ramdisk) || has(self.kernel)",message="spec.domain.boot.ramdisk needs spec.domain.boot.kernel: set kernel too, or remove ramdisk"
type BootSpec struct {
	// Bootloader runs in dom0 to read the guest's boot configuration; only pygrub is supported.
	// +kubebuilder:validation:Enum=pygrub
	// +optional
	Bootloader string `json:"bootloader,omitempty"`

	// Kernel is an absolute path in dom0 of the kernel to boot directly.
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.](/|$)')",message="kernel must not contain '..': give the real absolute path, e.g. /boot/vmlinuz-6.1"
	// +kubebuilder:validation:XValidation:rule="self.matches('^/[A-Za-z0-9._/+-]+$')",message="kernel must be an absolute path in dom0 made of letters, digits and . _ / + -, e.g. /boot/vmlinuz-6.1"
	// +optional
	Kernel string `json:"kernel,omitempty"`

	// Ramdisk is an absolute path in dom0 of the initial ramdisk for Kernel.
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.](/|$)')",message="ramdisk must not contain '..': give the real absolute path, e.g. /boot/initrd.img-6.1"
	// +kubebuilder:validation:XValidation:rule="self.matches('^/[A-Za-z0-9._/+-]+$')",message="ramdisk must be an absolute path in dom0 made of letters, digits and . _ / + -, e.g. /boot/initrd.img-6.1"
	// +optional
	Ramdisk string `json:"ramdisk,omitempty"`

	// Cmdline is the guest kernel command line (with pygrub it is appended to the guest's grub
	// entry). Printable ASCII only.
	// +kubebuilder:validation:XValidation:rule="self.matches('^[ -~]*$')",message="cmdline must be printable ASCII on one line: remove newlines and control characters"
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	Cmdline string `json:"cmdline,omitempty"`
}

// NIC is one virtual network interface.
type NIC struct {
	// Bridge is the dom0 bridge the interface is plugged into, e.g. xenbr0.
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9][A-Za-z0-9_.-]*$')",message="bridge must be a Linux interface name of up to 15 letters, digits and _ . -, e.g. xenbr0"
	// +kubebuilder:default=xenbr0
	// +optional
	Bridge string `json:"bridge,omitempty"`

	// MAC pins the interface's MAC address (lowercase, colon-separated). It must be unicast and
	// either in Xen's OUI 00:16:3e or locally administered. Leave it empty and the controller
	// allocates a MAC that is unique across the cluster; only set it in a VMClone.
	// +kubebuilder:validation:MaxLength=17
	// +kubebuilder:validation:XValidation:rule="self.matches('^(00:16:3e(:[0-9a-f]{2}){3}|[0-9a-f][26ae](:[0-9a-f]{2}){5})$')",message="mac must be a lowercase unicast MAC in Xen's OUI (00:16:3e:xx:xx:xx) or locally administered (second hex digit 2, 6, a or e, e.g. 02:00:00:00:00:01); or leave it empty to get a unique one"
	// +optional
	MAC string `json:"mac,omitempty"`
}

// GuestProbe is how the host agent tells that a guest is up.
// +kubebuilder:validation:Enum=DomainRunning;GuestAgent;TCP
type GuestProbe string

const (
	// GuestProbeDomainRunning: up once the domain runs (xl create returned). For guests with no
	// guest agent and no service to probe; what Ready meant before GuestReady existed.
	GuestProbeDomainRunning GuestProbe = "DomainRunning"
	// GuestProbeGuestAgent: up once a guest agent (xen-guest-agent, xe-guest-utilities, or
	// anything that writes the same xenstore keys) has made its first report: its version under
	// attr/PVAddons or an address under attr/vif.
	GuestProbeGuestAgent GuestProbe = "GuestAgent"
	// GuestProbeTCP: up once a TCP port answers on the guest's address (status.guest.ip), dialled
	// from the host's dom0.
	GuestProbeTCP GuestProbe = "TCP"
)

// GuestReadiness configures the GuestReady condition.
// +kubebuilder:validation:XValidation:rule="!has(self.probe) || self.probe != 'TCP' || has(self.port)",message="spec.domain.readiness: probe TCP needs port, e.g. port: 22"
// +kubebuilder:validation:XValidation:rule="!has(self.port) || (has(self.probe) && self.probe == 'TCP')",message="spec.domain.readiness.port is only used by probe TCP: set probe: TCP or remove port"
type GuestReadiness struct {
	// Probe is DomainRunning (the default), GuestAgent or TCP.
	// +kubebuilder:default=DomainRunning
	// +optional
	Probe GuestProbe `json:"probe,omitempty"`
	// Port is the TCP port probe TCP dials, e.g. 22.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`
}

// VNCSpec configures the guest's VNC console.
type VNCSpec struct {
	// Enabled turns the console on. It always listens on 127.0.0.1 of the host; reach it
	// through an SSH tunnel.
	Enabled bool `json:"enabled"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// SecretKeyReference names a key of a Secret in the clone's namespace.
type SecretKeyReference struct {
	// Name of the Secret: a Kubernetes object name (lowercase RFC 1123 subdomain).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="name must be a Secret name (lowercase RFC 1123 subdomain: lowercase letters, digits, '-' and '.'), e.g. web-1-userdata"
	Name string `json:"name"`
	// Key in the Secret's data.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$')",message="key must be a Secret data key: letters, digits and - . _"
	Key string `json:"key"`
}

// LVName is an LVM logical volume name: letters, digits and + _ . -, not starting with a
// hyphen, not "." or "..", not starting with "snapshot" or "pvmove", and without the suffixes
// lvm2 reserves for its internal volumes (lvm(8) "VALID NAMES").
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=127
// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$')",message="an LVM logical volume name may contain only letters, digits and + _ . - and must not start with a hyphen, e.g. debian12-template"
// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="an LVM name cannot be '.' or '..': choose a name made of letters, digits and + _ . -"
// +kubebuilder:validation:XValidation:rule="!self.startsWith('snapshot') && !self.startsWith('pvmove')",message="LVM reserves names starting with 'snapshot' or 'pvmove': choose another logical volume name"
// +kubebuilder:validation:XValidation:rule="!['_cdata', '_cmeta', '_corig', '_mlog', '_mimage', '_pmspare', '_rimage', '_rmeta', '_tdata', '_tmeta', '_vorigin', '_vdata'].exists(s, self.contains(s))",message="LVM reserves the substrings _cdata _cmeta _corig _mlog _mimage _pmspare _rimage _rmeta _tdata _tmeta _vorigin _vdata for internal volumes: rename the logical volume"
type LVName string

// VGName is an LVM volume group name: letters, digits and + _ . -, not starting with a hyphen,
// not "." or "..".
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=127
// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$')",message="an LVM volume group name may contain only letters, digits and + _ . - and must not start with a hyphen, e.g. vg0"
// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="an LVM name cannot be '.' or '..': choose a name made of letters, digits and + _ . -"
type VGName string

// DomainName is a Xen domain name. xl reads an all-digit name as a domain id, so a name must
// contain at least one non-digit.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9][A-Za-z0-9_.-]*$')",message="a Xen domain name may contain only letters, digits and _ . - and must start with a letter or digit, e.g. web-1"
// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]+$')",message="a Xen domain name cannot be all digits (xl would read it as a domain id): add a letter, e.g. vm-1234"
type DomainName string
