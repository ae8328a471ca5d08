package hostagent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/lvm"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// Names on the host are stable for a clone's life and traceable to it: the domain is named by
// vmv1alpha1.DomainNameOf (namespace, name and a hash of the UID, or spec.domainName), the LV
// after the name plus a UID prefix so two clones of the same name in different namespaces
// never meet. Both start with "xc-", which keeps them clear of all-digit names (xl reads those
// as domain ids) and of LVM's reserved prefixes.
const (
	namePrefix = "xc-"
	maxLVName  = 100
)

// legacyDomainName is the default domain name agents gave clones before names were unique by
// construction: xc-<namespace>-<name>, cut with a UID hash only past 64 characters. A clone
// whose domain such an agent started, and whose report it never wrote, still runs under it
// (see CloneReconciler.domainName). Empty when spec.domainName was set: that name never changed.
func legacyDomainName(c *vmv1alpha1.VMClone) string {
	if c.Spec.DomainName != "" {
		return ""
	}
	return boundedName(namePrefix+c.Namespace+"-"+c.Name, string(c.UID), vmv1alpha1.MaxDomainNameLength)
}

// hostDomainNames are the names a clone's domain may have on a host: its name now and, for a
// clone an agent from before unique names started, the old one. Every destroy also checks the
// domain's UUID, so a namesake of someone else's is never touched.
func hostDomainNames(c *vmv1alpha1.VMClone) []string {
	names := []string{vmv1alpha1.DomainNameOf(c)}
	if l := legacyDomainName(c); l != "" && l != names[0] {
		names = append(names, l)
	}
	return names
}

// VolumeName is the LV name of a clone's disk.
func VolumeName(c *vmv1alpha1.VMClone) string {
	uid := string(c.UID)
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return boundedName(namePrefix+c.Name+"-"+uid, string(c.UID), maxLVName)
}

// boundedName returns name if it fits, else a prefix of it with a short hash of uid, so long
// names stay unique and stable.
func boundedName(name, uid string, limit int) string {
	if len(name) <= limit {
		return name
	}
	sum := sha256.Sum256([]byte(uid))
	suffix := "-" + hex.EncodeToString(sum[:])[:8]
	return name[:limit-len(suffix)] + suffix
}

// OwnerOf is the ownership record of a clone's host objects.
func OwnerOf(c *vmv1alpha1.VMClone) lvm.Owner {
	return lvm.Owner{UID: string(c.UID), Namespace: c.Namespace, Name: c.Name}
}

// Hostname is the guest host name in effect.
func Hostname(c *vmv1alpha1.VMClone) string { return vmv1alpha1.Effective(c, nil).Hostname }

// SnapshotFor is the volume to create for a clone.
func SnapshotFor(t *vmv1alpha1.VMTemplate, c *vmv1alpha1.VMClone) SnapshotRequest {
	e := vmv1alpha1.Effective(c, t)
	return SnapshotRequest{
		VG:       e.VolumeGroup,
		Origin:   e.Origin,
		Name:     VolumeName(c),
		Mode:     e.Mode,
		ThinPool: e.ThinPool,
		COWBytes: uint64(e.COWBytes),
		Owner:    OwnerOf(c),
	}
}

// seedVdev is where the cloud-init seed appears in the guest: the disk after the root.
const seedVdev = "xvdb"

// DomainConfigFor resolves a clone's xl domain configuration from its template, its overrides
// and the identity the controller allocated (status.uuid and status.interfaces). The domain is
// named by vmv1alpha1.DomainNameOf; the agent sets the name it resolved on the host instead
// (a clone taken up under its legacy name). volumePath is the clone's disk; seedPath, if not
// empty, its cloud-init seed.
func DomainConfigFor(t *vmv1alpha1.VMTemplate, c *vmv1alpha1.VMClone, volumePath, seedPath string) (xen.DomainConfig, error) {
	d := t.Spec.Domain
	e := vmv1alpha1.Effective(c, t)
	cfg := xen.DomainConfig{
		Name:         vmv1alpha1.DomainNameOf(c),
		UUID:         c.Status.UUID,
		Type:         xen.GuestType(orDefault(string(d.Type), "pv")),
		MemoryMiB:    e.MemoryMiB,
		MaxMemoryMiB: e.MaxMemoryMiB,
		VCPUs:        int(e.VCPUs),
		MaxVCPUs:     int(e.MaxVCPUs),
		OnPoweroff:   xen.LifecycleAction(d.OnPoweroff),
		OnReboot:     xen.LifecycleAction(d.OnReboot),
		OnCrash:      xen.LifecycleAction(d.OnCrash),
	}
	if cfg.UUID == "" {
		return xen.DomainConfig{}, fmt.Errorf("clone has no UUID yet: the controller allocates status.uuid when it schedules the clone")
	}
	if b := d.Boot; b != nil {
		cfg.Bootloader, cfg.Kernel, cfg.Ramdisk, cfg.Cmdline = b.Bootloader, b.Kernel, b.Ramdisk, b.Cmdline
	} else if cfg.Type != xen.GuestHVM {
		cfg.Bootloader = "pygrub"
	}
	if d.VNC != nil {
		cfg.VNC = d.VNC.Enabled
	}
	cfg.Disks = []xen.Disk{{Target: volumePath, Vdev: orDefault(d.DiskVdev, "xvda")}}
	if seedPath != "" {
		cfg.Disks = append(cfg.Disks, xen.Disk{Target: seedPath, Vdev: seedVdev, ReadOnly: true})
	}
	for _, nic := range c.Status.Interfaces {
		cfg.VIFs = append(cfg.VIFs, xen.VIF{MAC: nic.MAC, Bridge: orDefault(nic.Bridge, vmv1alpha1.DefaultBridge)})
	}
	return cfg, nil
}

// ConfigPath is where a domain's xl.cfg lives.
func ConfigPath(dir, domain string) string { return filepath.Join(dir, domain+".cfg") }

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// CloudInitEnabled reports whether the template wants a seed disk.
func CloudInitEnabled(t *vmv1alpha1.VMTemplate) bool {
	return t.Spec.Guest.CloudInit == nil || *t.Spec.Guest.CloudInit
}

// PolicyFor turns a clone's run strategy into what the agent does when its domain stops by
// itself (the agent is the domain's monitor: xl create -e). The template's on_* settings apply
// where the run strategy has no opinion.
func PolicyFor(t *vmv1alpha1.VMTemplate, strategy vmv1alpha1.RunStrategy) xen.LifecyclePolicy {
	p := xen.LifecyclePolicy{
		OnPoweroff: xen.LifecycleAction(t.Spec.Domain.OnPoweroff),
		OnReboot:   xen.LifecycleAction(t.Spec.Domain.OnReboot),
		OnCrash:    xen.LifecycleAction(t.Spec.Domain.OnCrash),
	}
	switch strategy {
	case vmv1alpha1.RunStrategyAlways, "":
		p.OnPoweroff, p.OnReboot, p.OnCrash = xen.ActionRestart, xen.ActionRestart, xen.ActionRestart
	case vmv1alpha1.RunStrategyRerunOnFailure:
		p.OnPoweroff, p.OnReboot, p.OnCrash = xen.ActionDestroy, xen.ActionRestart, xen.ActionRestart
	case vmv1alpha1.RunStrategyOnce:
		p.OnPoweroff, p.OnCrash = xen.ActionDestroy, xen.ActionDestroy
		if p.OnReboot == "" {
			p.OnReboot = xen.ActionRestart
		}
	case vmv1alpha1.RunStrategyHalted:
		p.OnPoweroff, p.OnReboot, p.OnCrash = xen.ActionDestroy, xen.ActionDestroy, xen.ActionDestroy
	}
	return p
}

// UsagePolicies are the template's watch settings for a clone's storage: when to extend a
// classic snapshot (and up to what size) and when a thin pool is at risk.
func UsagePolicies(t *vmv1alpha1.VMTemplate) (lvm.SnapshotPolicy, lvm.PoolPolicy) {
	sp := lvm.SnapshotPolicy{ThresholdPercent: 70, StepPercent: 20}
	if ae := t.Spec.Snapshot.AutoExtend; ae != nil {
		if ae.ThresholdPercent != 0 {
			sp.ThresholdPercent = float64(ae.ThresholdPercent)
		}
		if ae.StepPercent != 0 {
			sp.StepPercent = float64(ae.StepPercent)
		}
		if ae.MaxSize != nil {
			sp.MaxSize = uint64(ae.MaxSize.Value())
		}
	}
	e := vmv1alpha1.Effective(nil, t)
	pp := lvm.PoolPolicy{DataThresholdPercent: float64(e.PoolDataPercent), MetadataThresholdPercent: float64(e.PoolMetadataPercent)}
	return sp, pp
}
