package hostagent

import (
	"math"
	"strconv"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Thresholds below which a capacity change does not by itself rewrite the XenHost status.
// Placement (controllers/placement.go) subtracts the memory and COW space of bindings whose
// domain or volume does not exist yet, so the XenHost only has to show what is already
// allocated, and a drift below these figures is at most a small clone's worth: a clone that
// does not fit after all fails its xl create or lvcreate with a message saying so, and retries.
const (
	// memoryMoveMiB: free memory moved by 1 GiB, or by 5% of the host's total if that is less
	// (a small host's figures stay finer).
	memoryMoveMiB     = 1024
	memoryMovePercent = 5
	// vgMoveBytes: a VG's free space moved by 1 GiB, or by 5% of its size if that is less.
	vgMoveBytes   = 1 << 30
	vgMovePercent = 5
	// poolMovePoints: a thin pool's data or metadata use moved by one percentage point; the
	// thresholds placement and the pool policy use are whole percents.
	poolMovePoints = 1.0
	// metadataMovePercent: a VG's metadata headroom moved by 5% of what it was, so the steps
	// get finer as the area fills (~75 LVs apart on a fresh 1 MiB area, one LV apart near the
	// end, where it matters).
	metadataMovePercent = 5
)

// capacityMoved reports whether the XenHost status must be written at once: anything that is
// not a capacity figure (versions, templates, conditions, which VGs and pools exist, sizes)
// changed, or a capacity figure moved past its threshold. The clone count and the LV count
// are informational and never force a write on their own.
func capacityMoved(old, cur vmv1alpha1.XenHostStatus) bool {
	if old.ObservedGeneration != cur.ObservedGeneration || old.AgentVersion != cur.AgentVersion ||
		old.XenVersion != cur.XenVersion || old.CPUs != cur.CPUs || old.Memory.TotalMiB != cur.Memory.TotalMiB {
		return true
	}
	if !equality.Semantic.DeepEqual(old.Templates, cur.Templates) || !equality.Semantic.DeepEqual(old.Imports, cur.Imports) || conditionsChanged(old.Conditions, cur.Conditions) {
		return true
	}
	if moved(old.Memory.FreeMiB, cur.Memory.FreeMiB, memoryMoveMiB, cur.Memory.TotalMiB*memoryMovePercent/100) {
		return true
	}
	if len(old.VolumeGroups) != len(cur.VolumeGroups) {
		return true
	}
	for i := range cur.VolumeGroups {
		o, c := old.VolumeGroups[i], cur.VolumeGroups[i] // both sorted by name
		if o.Name != c.Name || o.SizeBytes != c.SizeBytes || len(o.ThinPools) != len(c.ThinPools) {
			return true
		}
		if moved(o.FreeBytes, c.FreeBytes, vgMoveBytes, c.SizeBytes*vgMovePercent/100) ||
			moved(o.MetadataFreeBytes, c.MetadataFreeBytes, o.MetadataFreeBytes*metadataMovePercent/100, 0) {
			return true
		}
		for j := range c.ThinPools {
			op, cp := o.ThinPools[j], c.ThinPools[j]
			if op.Name != cp.Name || op.SizeBytes != cp.SizeBytes ||
				percentMoved(op.DataPercent, cp.DataPercent) || percentMoved(op.MetadataPercent, cp.MetadataPercent) {
				return true
			}
		}
	}
	return false
}

// moved reports whether a figure changed by at least the smaller positive threshold (any
// change at all when neither is positive).
func moved(old, cur, a, b int64) bool {
	d := cur - old
	if d < 0 {
		d = -d
	}
	if d == 0 {
		return false
	}
	t := a
	if b > 0 && (t <= 0 || b < t) {
		t = b
	}
	return t <= 0 || d >= t
}

// percentMoved compares two of lvm's percentages as the XenHost shows them ("12.34"; "" when
// lvm gives none): appearing or disappearing counts, as does a move of poolMovePoints.
func percentMoved(old, cur string) bool {
	if old == cur {
		return false
	}
	o, oerr := strconv.ParseFloat(old, 64)
	c, cerr := strconv.ParseFloat(cur, 64)
	if oerr != nil || cerr != nil {
		return true
	}
	return math.Abs(c-o) >= poolMovePoints
}

// conditionsChanged compares conditions by what they say (type, status, reason, message,
// generation); the report keeps transition times of unchanged ones.
func conditionsChanged(old, cur []metav1.Condition) bool {
	if len(old) != len(cur) {
		return true
	}
	for _, c := range cur {
		o := meta.FindStatusCondition(old, c.Type)
		if o == nil || o.Status != c.Status || o.Reason != c.Reason || o.Message != c.Message ||
			o.ObservedGeneration != c.ObservedGeneration {
			return true
		}
	}
	return false
}
