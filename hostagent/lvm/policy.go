package lvm

import (
	"fmt"
)

// Verdict is what a usage policy concludes about one LV.
type Verdict string

const (
	// VerdictOK: nothing to do.
	VerdictOK Verdict = "OK"
	// VerdictExtend: extend the classic snapshot's COW area by Decision.ExtendBy bytes.
	VerdictExtend Verdict = "Extend"
	// VerdictAtRisk: it will fill and nothing here can prevent it (at the maximum size, VG
	// without room, thin pool above its threshold); tell the user.
	VerdictAtRisk Verdict = "AtRisk"
	// VerdictFull: full or invalid — an invalidated snapshot (its data is gone), or a thin
	// pool out of data space, failed, or with read-only metadata (guest writes fail).
	VerdictFull Verdict = "Full"
)

// Decision is a verdict with what to do and why. Reason is written for the clone's status.
type Decision struct {
	Verdict  Verdict
	ExtendBy uint64 // bytes, a whole number of extents; only with VerdictExtend
	Reason   string
}

// SnapshotPolicy watches classic (COW) snapshots. lvm's own autoextend (dmeventd,
// snapshot_autoextend_threshold) is off by default and needs monitoring; the agent applies
// this policy itself on every report.
type SnapshotPolicy struct {
	// ThresholdPercent: extend when COW usage reaches it (>=). 100 never extends.
	ThresholdPercent float64
	// StepPercent: grow by this share of the current COW size (at least one extent).
	StepPercent float64
	// MaxSize caps the COW size in bytes; 0 = no cap beyond the VG's free space.
	MaxSize uint64
}

// DefaultSnapshotPolicy extends at 80% by 20%, the ratios lvm's autoextend examples use.
var DefaultSnapshotPolicy = SnapshotPolicy{ThresholdPercent: 80, StepPercent: 20}

// Validate checks the policy's ranges.
func (p SnapshotPolicy) Validate() error {
	if !(p.ThresholdPercent > 0 && p.ThresholdPercent <= 100) {
		return fmt.Errorf("snapshot policy: threshold %v%% not in (0, 100]", p.ThresholdPercent)
	}
	if !(p.StepPercent > 0) {
		return fmt.Errorf("snapshot policy: step %v%% must be > 0", p.StepPercent)
	}
	return nil
}

// Decide judges a classic snapshot from a report; vg is the snapshot's VG from the same
// report (its free space and extent size bound the extension).
func (p SnapshotPolicy) Decide(lv LV, vg VG) Decision {
	a := lv.Attr
	used := lv.DataPercent
	switch {
	case !a.IsClassicSnapshot():
		return Decision{Verdict: VerdictOK, Reason: fmt.Sprintf("%s is not a classic snapshot; thin volumes are watched through their pool", lv.Name)}
	case a.Invalid():
		return Decision{Verdict: VerdictFull, Reason: fmt.Sprintf(
			"snapshot %s is invalid: its COW area overflowed and the kernel dropped it, so the clone's disk is lost; reset the clone to take a new snapshot (and give it a larger COW size or a lower extend threshold)", lv.Name)}
	case a.State == StateMergeFailed || a.State == StateSuspendedMergeFailed:
		return Decision{Verdict: VerdictAtRisk, Reason: fmt.Sprintf("snapshot %s: merge into its origin failed; inspect it with lvs before changing anything", lv.Name)}
	case !used.Valid:
		return Decision{Verdict: VerdictOK, Reason: fmt.Sprintf("snapshot %s: usage unknown (not active)", lv.Name)}
	case used.Value >= 100:
		return Decision{Verdict: VerdictFull, Reason: fmt.Sprintf(
			"snapshot %s: COW area 100%% full; the kernel invalidates it on the next new write", lv.Name)}
	case used.Value < p.ThresholdPercent:
		return Decision{Verdict: VerdictOK, Reason: fmt.Sprintf("snapshot %s: COW %s used, below %v%%", lv.Name, used, p.ThresholdPercent)}
	}

	by := roundUp(uint64(float64(lv.Size)*p.StepPercent/100), vg.ExtentSize)
	if p.MaxSize > 0 {
		if lv.Size >= p.MaxSize {
			by = 0
		} else if lv.Size+by > p.MaxSize {
			by = roundDown(p.MaxSize-lv.Size, vg.ExtentSize)
		}
	}
	if by == 0 {
		return Decision{Verdict: VerdictAtRisk, Reason: fmt.Sprintf(
			"snapshot %s: COW %s used (threshold %v%%) and at its maximum size %d bytes; it will be invalidated when full — raise the maximum or reset the clone", lv.Name, used, p.ThresholdPercent, p.MaxSize)}
	}
	if vg.Free < by {
		return Decision{Verdict: VerdictAtRisk, Reason: fmt.Sprintf(
			"snapshot %s: COW %s used (threshold %v%%) and needs %d more bytes, but volume group %s has only %d free; free space in the VG or remove clones", lv.Name, used, p.ThresholdPercent, by, vg.Name, vg.Free)}
	}
	return Decision{Verdict: VerdictExtend, ExtendBy: by, Reason: fmt.Sprintf(
		"snapshot %s: COW %s used (threshold %v%%), extending by %d bytes", lv.Name, used, p.ThresholdPercent, by)}
}

// PoolPolicy watches a thin pool's data and metadata usage. The pool belongs to the platform
// team, not to a clone, so the agent never extends it: the verdicts are OK, AtRisk, Full.
type PoolPolicy struct {
	DataThresholdPercent     float64
	MetadataThresholdPercent float64
}

// DefaultPoolPolicy flags a pool at 80% data or metadata, where dmeventd starts warning.
var DefaultPoolPolicy = PoolPolicy{DataThresholdPercent: 80, MetadataThresholdPercent: 80}

// Validate checks the policy's ranges.
func (p PoolPolicy) Validate() error {
	if v := p.DataThresholdPercent; !(v > 0 && v <= 100) {
		return fmt.Errorf("thin pool policy: data threshold %v%% not in (0, 100]", v)
	}
	if v := p.MetadataThresholdPercent; !(v > 0 && v <= 100) {
		return fmt.Errorf("thin pool policy: metadata threshold %v%% not in (0, 100]", v)
	}
	return nil
}

// Decide judges a thin pool from a report.
func (p PoolPolicy) Decide(pool LV) Decision {
	a := pool.Attr
	data, meta := pool.DataPercent, pool.MetadataPercent
	switch {
	case !a.IsThinPool():
		return Decision{Verdict: VerdictOK, Reason: fmt.Sprintf("%s is not a thin pool", pool.Name)}
	case a.Health == HealthFailed:
		return Decision{Verdict: VerdictFull, Reason: fmt.Sprintf(
			"thin pool %s failed: no I/O is possible on its volumes; it needs offline repair (lvconvert --repair)", pool.Name)}
	case a.Health == HealthOutOfData || data.Valid && data.Value >= 100:
		return Decision{Verdict: VerdictFull, Reason: fmt.Sprintf(
			"thin pool %s is out of data space (data %s): guest writes queue, then fail; extend the pool or remove clones", pool.Name, data)}
	case a.Health == HealthMetadataReadOnly || meta.Valid && meta.Value >= 100:
		return Decision{Verdict: VerdictFull, Reason: fmt.Sprintf(
			"thin pool %s metadata is full or read-only (metadata %s): no new blocks can be mapped; it needs lvconvert --repair and a larger metadata LV", pool.Name, meta)}
	case a.State == StateThinPoolCheckNeeded || a.State == StateSuspendedPoolCheckNeeded:
		return Decision{Verdict: VerdictAtRisk, Reason: fmt.Sprintf("thin pool %s needs a metadata check (thin_check)", pool.Name)}
	}
	var over []string
	if data.Valid && data.Value >= p.DataThresholdPercent {
		over = append(over, fmt.Sprintf("data %s ≥ %v%%", data, p.DataThresholdPercent))
	}
	if meta.Valid && meta.Value >= p.MetadataThresholdPercent {
		over = append(over, fmt.Sprintf("metadata %s ≥ %v%%", meta, p.MetadataThresholdPercent))
	}
	switch {
	case len(over) == 1:
		return Decision{Verdict: VerdictAtRisk, Reason: fmt.Sprintf("thin pool %s: %s; extend the pool or remove clones before it fills", pool.Name, over[0])}
	case len(over) == 2:
		return Decision{Verdict: VerdictAtRisk, Reason: fmt.Sprintf("thin pool %s: %s and %s; extend the pool or remove clones before it fills", pool.Name, over[0], over[1])}
	case !data.Valid && !meta.Valid:
		return Decision{Verdict: VerdictOK, Reason: fmt.Sprintf("thin pool %s: usage unknown (not active)", pool.Name)}
	}
	return Decision{Verdict: VerdictOK, Reason: fmt.Sprintf("thin pool %s: data %s, metadata %s", pool.Name, data, meta)}
}

func roundUp(n, unit uint64) uint64 {
	if unit == 0 {
		return n
	}
	if n == 0 {
		return unit // always grow by at least one extent
	}
	return (n + unit - 1) / unit * unit
}

func roundDown(n, unit uint64) uint64 {
	if unit == 0 {
		return n
	}
	return n / unit * unit
}
