package v1alpha1

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Defaults for what neither a clone nor its template says. The controller (placement,
// identity) and the host agent (snapshot, xl.cfg) both resolve a clone through Effective, so a
// default changed here changes what is counted and what runs together.
const (
	// DefaultMemoryMiB is the start memory of a clone whose template and overrides name none.
	// The agent always writes a memory line into xl.cfg, so xl's own default (128 MiB, for a
	// config without one) never applies; placement counts this figure because it is what the
	// domain takes on the host.
	DefaultMemoryMiB = 512
	// DefaultVCPUs is the vCPU count at start when neither names one.
	DefaultVCPUs = 1
	// DefaultBridge is the dom0 bridge of a NIC that names none (the CRD default; repeated here
	// for objects written before defaulting and for callers that build NICs in Go).
	DefaultBridge = "xenbr0"
	// DefaultCOWBytes is a classic snapshot's COW area when neither the clone nor the template
	// sizes it. The CRD defaults a template's snapshot to 1Gi and refuses Classic without a
	// size, so this only applies to templates built in Go; it is what the agent allocates, so
	// placement reserves the same.
	DefaultCOWBytes = 1 << 30
	// DefaultPoolDataPercent and DefaultPoolMetadataPercent are the thin pool usages past which
	// placement sends no more clones to a pool and the agent marks it at risk (the CRD
	// defaults of spec.snapshot.poolThresholds, for templates that set no thresholds at all).
	DefaultPoolDataPercent     = 80
	DefaultPoolMetadataPercent = 70
	// DefaultPauseMemoryMiB is what a paused warm standby keeps when spec.pause names no
	// memory (the API's documented default, 128Mi).
	DefaultPauseMemoryMiB = 128
	// DefaultPauseAfter is how long a warm standby's guest runs before it is paused.
	DefaultPauseAfter = 30 * time.Second
)

// EffectiveSpec is a clone's domain sizing, network and storage as they are once its overrides
// are laid over its template and the defaults fill the rest. MACs are not part of it: the
// controller allocates them into status.interfaces.
//
// +kubebuilder:object:generate=false
type EffectiveSpec struct {
	// MemoryMiB is the start memory, rounded up to MiB as xl does.
	MemoryMiB int64
	// MaxMemoryMiB is the balloon ceiling; 0 means equal to MemoryMiB. Never below MemoryMiB.
	MaxMemoryMiB int64
	// VCPUs online at start.
	VCPUs int32
	// MaxVCPUs the guest may bring online; 0 means equal to VCPUs. Never below VCPUs.
	MaxVCPUs int32
	// NICs in guest order, each with its bridge. A MAC is set only where the clone pins one.
	NICs []NIC
	// Hostname is the guest host name.
	Hostname string

	// Mode, VolumeGroup, Origin and ThinPool say where and how the clone's disk is made.
	Mode        SnapshotMode
	VolumeGroup string
	Origin      string
	// ThinPool is the pool thin snapshots go to ("" = the origin's own pool).
	ThinPool string
	// COWBytes is the classic snapshot's initial COW area; 0 for thin snapshots.
	COWBytes int64
	// PoolDataPercent and PoolMetadataPercent are the thin pool's at-risk thresholds.
	PoolDataPercent     int32
	PoolMetadataPercent int32

	// Paused is true when the clone is to be a paused warm standby (spec.pause).
	Paused bool
	// PauseMemoryMiB is the balloon target while paused (spec.pause.memory, rounded up to MiB),
	// never above MemoryMiB: a pause never asks the guest for more than it started with. 0
	// unless Paused.
	PauseMemoryMiB int64
	// PauseAfter is how long the guest runs before it is paused; 0 unless Paused.
	PauseAfter time.Duration
}

// HeldMemoryMiB is what the clone's domain holds on its host once it has settled: the pause
// memory for a paused warm standby, else its start memory. A standby boots with MemoryMiB and
// holds that much until it is ballooned down, and a claim takes it back to MemoryMiB
// (placement's bindingOf counts what the host's figures do not show yet).
func (e EffectiveSpec) HeldMemoryMiB() int64 {
	if e.Paused {
		return e.PauseMemoryMiB
	}
	return e.MemoryMiB
}

// Effective resolves a clone against its template. Either may be nil: a bound clone can
// outlive its template, and some template-only settings (the pool thresholds) are read
// without a clone; what is missing counts as unset.
func Effective(clone *VMClone, tmpl *VMTemplate) EffectiveSpec {
	var (
		cs VMCloneSpec
		ts VMTemplateSpec
	)
	if clone != nil {
		cs = clone.Spec
	}
	if tmpl != nil {
		ts = tmpl.Spec
	}
	d, snap := ts.Domain, ts.Snapshot
	e := EffectiveSpec{
		MemoryMiB:           DefaultMemoryMiB,
		VCPUs:               DefaultVCPUs,
		Mode:                snap.Mode,
		VolumeGroup:         string(ts.Origin.VolumeGroup),
		Origin:              string(ts.Origin.LogicalVolume),
		ThinPool:            string(snap.ThinPool),
		PoolDataPercent:     DefaultPoolDataPercent,
		PoolMetadataPercent: DefaultPoolMetadataPercent,
	}

	memory, maxMemory, vcpus := d.Memory, d.MaxMemory, d.VCPUs
	if r := cs.Resources; r != nil {
		memory = firstNonNil(r.Memory, memory)
		maxMemory = firstNonNil(r.MaxMemory, maxMemory)
		vcpus = firstNonNil(r.VCPUs, vcpus)
	}
	if memory != nil {
		e.MemoryMiB = ceilMiB(*memory)
	}
	if maxMemory != nil {
		e.MaxMemoryMiB = ceilMiB(*maxMemory)
	}
	if vcpus != nil {
		e.VCPUs = *vcpus
	}
	if d.MaxVCPUs != nil {
		e.MaxVCPUs = *d.MaxVCPUs
	}
	// A clone may ask for more than the template's ceilings; raising the ceilings gives it
	// what it asked for where xl would refuse the config.
	if e.MaxMemoryMiB != 0 && e.MaxMemoryMiB < e.MemoryMiB {
		e.MaxMemoryMiB = e.MemoryMiB
	}
	if e.MaxVCPUs != 0 && e.MaxVCPUs < e.VCPUs {
		e.MaxVCPUs = e.VCPUs
	}

	e.NICs = effectiveNICs(cs.NICs, d.NICs)
	e.Hostname = effectiveHostname(clone)

	if e.Mode == "" {
		e.Mode = SnapshotClassic
	}
	if e.Mode == SnapshotClassic {
		e.COWBytes = DefaultCOWBytes
		if q := snap.COWSize; q != nil {
			e.COWBytes = q.Value()
		}
		if s := cs.Storage; s != nil && s.COWSize != nil {
			e.COWBytes = s.COWSize.Value()
		}
	}
	if p := cs.Pause; p != nil {
		e.Paused = true
		e.PauseMemoryMiB, e.PauseAfter = DefaultPauseMemoryMiB, DefaultPauseAfter
		if p.Memory != nil {
			e.PauseMemoryMiB = ceilMiB(*p.Memory)
		}
		if p.After != nil {
			e.PauseAfter = p.After.Duration
		}
		if e.PauseMemoryMiB > e.MemoryMiB {
			e.PauseMemoryMiB = e.MemoryMiB
		}
	}
	if t := snap.PoolThresholds; t != nil {
		if t.DataPercent > 0 {
			e.PoolDataPercent = t.DataPercent
		}
		if t.MetadataPercent > 0 {
			e.PoolMetadataPercent = t.MetadataPercent
		}
	}
	return e
}

// effectiveNICs copies the list so callers can keep or change it without touching the
// objects, which may be shared informer cache entries.
func effectiveNICs(clone, tmpl []NIC) []NIC {
	src, fromTemplate := clone, false
	if len(src) == 0 {
		src, fromTemplate = tmpl, true
	}
	if len(src) == 0 {
		return nil
	}
	out := make([]NIC, len(src))
	copy(out, src)
	for i := range out {
		if out[i].Bridge == "" {
			out[i].Bridge = DefaultBridge
		}
		if fromTemplate {
			// A template's MAC would be shared by every clone: never inherit it.
			out[i].MAC = ""
		}
	}
	return out
}

// effectiveHostname prefers status.hostname over the name-derived default: it is what the
// controller recorded when it allocated the clone's identity, and it must not change if the
// derivation ever does.
func effectiveHostname(c *VMClone) string {
	switch {
	case c == nil:
		return ""
	case c.Spec.Hostname != "":
		return c.Spec.Hostname
	case c.Status.Hostname != "":
		return c.Status.Hostname
	}
	return HostnameLabel(c.Name)
}

// HostnameLabel turns an object name (an RFC 1123 subdomain) into a host name, which must be
// a single label.
func HostnameLabel(name string) string {
	h := strings.ReplaceAll(name, ".", "-")
	if len(h) > 63 {
		h = h[:63]
	}
	return strings.Trim(h, "-")
}

func ceilMiB(q resource.Quantity) int64 {
	const m = 1 << 20
	return (q.Value() + m - 1) / m
}

func firstNonNil[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}
