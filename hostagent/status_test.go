package hostagent

import (
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// After the agent writes a status, the cache soon returns it as the API server stores it (times
// in whole seconds). cacheBehind must then say the cache caught up; before asStored it compared
// nanosecond times with second ones, never matched, and every reconcile after a write stalled
// for cacheBehind's whole timeout (5 s per status write).
func TestCacheCatchesUpWithOwnWriteDespiteTimePrecision(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 11, 25, 21, 37, 47, 111339002, time.UTC))
	st := vmv1alpha1.VMCloneStatus{
		Phase:      vmv1alpha1.PhaseProvisioning,
		Timestamps: &vmv1alpha1.CloneTimestamps{VolumeReady: &now},
		Conditions: []metav1.Condition{{Type: vmv1alpha1.ConditionVolumeReady, Status: metav1.ConditionTrue,
			ObservedGeneration: 1, LastTransitionTime: now, Reason: "SnapshotCreated", Message: "disk /dev/vg0/x"}},
	}
	stored, err := asStored(st)
	if err != nil {
		t.Fatal(err)
	}
	if got := stored.Timestamps.VolumeReady.Time; !got.Equal(now.Truncate(time.Second)) {
		t.Fatalf("asStored kept %v, want whole seconds", got)
	}

	r := &CloneReconciler{}
	uid := types.UID("5e1f")
	r.written.Store(uid, writtenStatus{status: stored, at: time.Now()})

	// What the informer decodes from the watch event of that write.
	wire, err := json.Marshal(&vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{UID: uid}, Status: st})
	if err != nil {
		t.Fatal(err)
	}
	var cached vmv1alpha1.VMClone
	if err := json.Unmarshal(wire, &cached); err != nil {
		t.Fatal(err)
	}
	if r.cacheBehind(&cached) {
		t.Fatal("cacheBehind: the cache holds the agent's own write but is reported behind")
	}

	// A cache that really predates the write is behind.
	r.written.Store(uid, writtenStatus{status: stored, at: time.Now()})
	cached.Status.Conditions = nil
	if !r.cacheBehind(&cached) {
		t.Fatal("cacheBehind: a cache without the agent's last write is reported caught up")
	}
}
