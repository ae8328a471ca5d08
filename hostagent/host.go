package hostagent

import (
	"context"
	"errors"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/imageimport"
	"github.com/xenclone/xenclone/hostagent/lvm"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// The host boundary. The agent drives a dom0 through three small interfaces, defined here where
// they are used: Storage (lvm2), Guest (attach + scrub + cloud-init seed) and Hypervisor (xl).
// Production wires the lvm, guest and xen packages behind them (see host_real.go); tests and
// the playground use the simulated host of package sim, which keeps the same contracts.

// Storage is the host's LVM as the agent needs it; *lvm.Client behind LVMStorage has it, and
// so has the simulated host. Volumes are reported in lvm's own types so one usage policy
// (lvm.SnapshotPolicy, lvm.PoolPolicy) judges real and simulated hosts alike.
type Storage interface {
	// Report reads a volume group and every LV in it, in one call.
	Report(ctx context.Context, vg string) (lvm.Report, error)
	// CreateSnapshot creates (and activates) the clone's volume. It is idempotent: an existing
	// LV of that name owned by req.Owner is returned as is; one we do not own is a conflict.
	CreateSnapshot(ctx context.Context, req SnapshotRequest) (lvm.LV, error)
	// AddTag tags an LV we own (the Prepared mark). It refuses LVs we do not own.
	AddTag(ctx context.Context, ref lvm.Ref, owner lvm.Owner, tag string) error
	// ExtendSnapshot grows a classic snapshot's COW area by bytes. It refuses LVs we do not own.
	ExtendSnapshot(ctx context.Context, ref lvm.Ref, owner lvm.Owner, by uint64) error
	// Remove deletes an LV. It refuses LVs we do not own.
	Remove(ctx context.Context, ref lvm.Ref, owner lvm.Owner) error
	// SetOriginReadOnly makes a template origin read-only (idempotent), tagging it
	// lvm.MadeReadOnlyTag unless it already was read-only.
	SetOriginReadOnly(ctx context.Context, ref lvm.Ref) error
	// RestoreOriginWritable reverts SetOriginReadOnly on an LV tagged lvm.MadeReadOnlyTag
	// and refuses (lvm.ErrNotOwned) any other.
	RestoreOriginWritable(ctx context.Context, ref lvm.Ref) error
}

// PreparedTag marks a clone volume whose guest was scrubbed and personalized. It lives on the
// LV, so a restarted agent never prepares (mounts and edits) a disk that has booted.
const PreparedTag = lvm.TagPrefix + "prepared"

// VolumePath is the block device of an LV.
func VolumePath(lv lvm.LV) string { return "/dev/" + lv.VG + "/" + lv.Name }

// ownedBy returns the LVs of a report that carry uid's ownership tag.
func ownedBy(rep lvm.Report, uid string) []lvm.LV {
	var out []lvm.LV
	for _, lv := range rep.LVs {
		if lv.OwnedBy(uid) {
			out = append(out, lv)
		}
	}
	return out
}

// SnapshotRequest is a clone volume to create.
type SnapshotRequest struct {
	VG, Origin, Name string
	Mode             vmv1alpha1.SnapshotMode
	// ThinPool holds a thin snapshot of a thick origin; empty for a thin origin.
	ThinPool string
	// COWBytes is a classic snapshot's COW area.
	COWBytes uint64
	Owner    lvm.Owner
}

// Guest prepares a fresh clone disk before its first boot.
type Guest interface {
	// Prepare attaches the disk at device, applies the scrub operations and the hostname, and
	// detaches it again on every path.
	Prepare(ctx context.Context, device string, req PrepareRequest) (PrepareReport, error)
	// BuildSeed writes the clone's cloud-init NoCloud seed image and returns its path.
	BuildSeed(ctx context.Context, req SeedRequest) (string, error)
	// RemoveSeed deletes the clone's seed image (no error if absent).
	RemoveSeed(ctx context.Context, uid string) error
	// Seeds lists the clone UIDs that have a seed image, for orphan collection.
	Seeds(ctx context.Context) ([]string, error)
}

// PrepareRequest says what to do to a fresh clone disk.
type PrepareRequest struct {
	Owner          lvm.Owner
	Hostname       string
	Operations     []vmv1alpha1.ScrubOperation
	RootPartition  int
	RootFilesystem vmv1alpha1.FilesystemType
}

// PrepareReport says what Prepare changed, for the clone's events.
type PrepareReport struct {
	Changed []string
}

// SeedRequest is a clone's cloud-init personalization.
type SeedRequest struct {
	UID, Hostname string
	MACs          []string
	UserData      []byte
	NetworkConfig []byte
}

// Hypervisor is the host's Xen toolstack; *xen.Driver (real xl or the xl simulator) has it.
type Hypervisor interface {
	List(ctx context.Context) ([]xen.DomainInfo, error)
	Lookup(ctx context.Context, name string) (xen.DomainInfo, bool, error)
	Create(ctx context.Context, name, cfgPath string, opts xen.CreateOptions) error
	RequestShutdown(ctx context.Context, name string) error
	// Owner checks that domain name carries uuid (xen.ErrNotOwned otherwise).
	Owner(ctx context.Context, name, uuid string) (xen.DomainDetail, error)
	// DestroyOwned destroys domain name only if it carries uuid: the agent never touches a
	// domain it did not create.
	DestroyOwned(ctx context.Context, name, uuid string) error
	Info(ctx context.Context) (xen.HostInfo, error)
}

// DomainControl changes a running domain without restarting it: a warm standby is ballooned
// down and paused, and resumed with its memory back (spec.pause); guest data is written into
// its xenstore tree (spec.guestData). NewDomainControl puts xl and xenstore-write behind it.
// The caller has checked that the domain is the clone's (by UUID, or by the domid it started).
type DomainControl interface {
	Pause(ctx context.Context, name string) error
	Unpause(ctx context.Context, name string) error
	// SetMemory sets the balloon target in MiB (xl mem-set); the guest follows at its pace.
	SetMemory(ctx context.Context, name string, mib int64) error
	// WriteXenstore writes entries under /local/domain/<domid>/ in one transaction.
	WriteXenstore(ctx context.Context, domid int, entries []xen.XenstoreEntry) error
}

// NewDomainControl is the DomainControl of a host's xl and xenstore-write.
func NewDomainControl(xl *xen.Driver, store *xen.Xenstore) DomainControl {
	return domainControl{Driver: xl, store: store}
}

type domainControl struct {
	*xen.Driver
	store *xen.Xenstore
}

func (c domainControl) WriteXenstore(ctx context.Context, domid int, entries []xen.XenstoreEntry) error {
	return c.store.WriteDomain(ctx, domid, entries)
}

// Host bundles one dom0's host boundary.
type Host struct {
	Storage    Storage
	Guest      Guest
	Hypervisor Hypervisor
	// Control pauses, resumes, balloons and writes xenstore; nil on a host that cannot (a
	// clone with spec.pause or spec.guestData then says so in its status).
	Control DomainControl
	// ConfigDir holds the domains' xl.cfg files, one per domain, owned by the agent.
	ConfigDir string
	// Images creates the origin LVs of templates with a source (spec.source); nil on a host
	// that cannot import (such templates then report the import failed there).
	Images ImageStore
	// Importer fetches and verifies template images; nil with Images.
	Importer *imageimport.Importer
	// Guests shows what the guests publish (guest agent keys in xenstore, dom0's neighbour
	// table): a clone's status.guest and GuestReady come from it. nil on a host that does not
	// look into its guests (GuestReady then follows the domain alone).
	Guests GuestSource
}

// ImageStore is the storage side of template imports: an import volume tagged as the
// template's, committed (verified, read-only, renamed to the origin) or removed. *lvm.Client
// behind LVMStorage has it, and so has the simulated host.
type ImageStore interface {
	CreateImportVolume(ctx context.Context, ref lvm.Ref, size uint64, owner lvm.TemplateOwner) (lvm.LV, error)
	CommitImport(ctx context.Context, tmp lvm.Ref, origin string, owner lvm.TemplateOwner, checksum string) error
	RemoveImport(ctx context.Context, ref lvm.Ref, owner lvm.TemplateOwner) error
	// DeactivateImport deactivates a committed import (a thin pool's future external origin).
	DeactivateImport(ctx context.Context, ref lvm.Ref, owner lvm.TemplateOwner) error
	// ImportTarget is where an import writes the volume's data.
	ImportTarget(lv lvm.LV) imageimport.Target
}

func errorsIsVGNotFound(err error) bool { return errors.Is(err, lvm.ErrVGNotFound) }
