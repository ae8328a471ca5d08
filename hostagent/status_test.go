package hostagent

import (
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func boundClone(binding, observed int64) *vmv1alpha1.VMClone {
	return &vmv1alpha1.VMClone{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "5e1f"},
		Status:     vmv1alpha1.VMCloneStatus{NodeName: "xen-a", BindingGeneration: binding, ObservedBindingGeneration: observed},
	}
}

// The agent is the only writer of its report, so a reconcile starts from what it last wrote
// even when the cache still shows the clone from before that write: a Once domain whose start
// was just recorded must not look unstarted (it would be started a second time).
func TestReportForPrefersOwnLastWriteOverLaggingCache(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 11, 25, 21, 37, 47, 111339002, time.UTC))
	written := vmv1alpha1.VMCloneStatus{
		ObservedBindingGeneration: 1, Phase: vmv1alpha1.PhaseRunning,
		Timestamps: &vmv1alpha1.CloneTimestamps{Started: &now},
	}
	stored, err := asStored(written)
	if err != nil {
		t.Fatal(err)
	}
	if got := stored.Timestamps.Started.Time; !got.Equal(now.Truncate(time.Second)) {
		t.Fatalf("asStored kept %v, want whole seconds", got)
	}
	r := &CloneReconciler{}
	lagging := boundClone(1, 0) // the cache has not seen the write yet
	r.reports.Store(client.ObjectKeyFromObject(lagging), writtenReport{uid: lagging.UID, status: stored})

	base, last := r.reportFor(lagging)
	if base.Timestamps == nil || base.Timestamps.Started == nil || base.Phase != vmv1alpha1.PhaseRunning {
		t.Fatalf("reportFor started from the lagging cache, not the agent's own write: %+v", base)
	}
	if !sameAgentStatus(last, stored) {
		t.Fatal("reportFor: last written report is not what was written")
	}

	// What the informer decodes from the watch event of that write compares equal, so the
	// next reconcile writes nothing (times have whole seconds on the wire).
	wire, err := json.Marshal(&vmv1alpha1.VMClone{Status: written})
	if err != nil {
		t.Fatal(err)
	}
	var cached vmv1alpha1.VMClone
	if err := json.Unmarshal(wire, &cached); err != nil {
		t.Fatal(err)
	}
	if !sameAgentStatus(storedReport(&cached), stored) {
		t.Fatal("the stored report and the written one differ only in time precision but compare different")
	}

	// A namesake (another UID) or another binding does not inherit the report.
	other := boundClone(1, 0)
	other.UID = "77aa"
	if base, _ := r.reportFor(other); base.Phase != "" {
		t.Fatalf("a namesake inherited the report: %+v", base)
	}
	r.reports.Store(client.ObjectKeyFromObject(lagging), writtenReport{uid: lagging.UID, status: stored})
	if base, _ := r.reportFor(boundClone(2, 1)); base.Phase != "" || base.ObservedBindingGeneration != 2 {
		t.Fatalf("a new binding continued from the old binding's report: %+v", base)
	}
}

// A report from an earlier binding (the clone's host before a reschedule) is not this host's
// state: the agent starts afresh, with the resets asked so far counted as done.
func TestAgentStatusIgnoresEarlierBindingsReport(t *testing.T) {
	now := metav1.Now()
	c := boundClone(2, 1)
	c.Spec.ResetRequests = 3
	c.Status.Phase = vmv1alpha1.PhaseRunning
	c.Status.Timestamps = &vmv1alpha1.CloneTimestamps{Started: &now}
	c.Status.Conditions = []metav1.Condition{{Type: vmv1alpha1.ConditionDomainRunning, Status: metav1.ConditionTrue, Reason: ReasonStarted}}
	st := agentStatus(c)
	if st.Phase != "" || st.Timestamps.Started != nil || len(st.Conditions) != 0 {
		t.Fatalf("agentStatus carried the old host's report over: %+v", st)
	}
	if st.ObservedBindingGeneration != 2 || st.ObservedResetRequests != 3 {
		t.Fatalf("agentStatus = binding %d resets %d, want 2 and 3", st.ObservedBindingGeneration, st.ObservedResetRequests)
	}
	if c.HostReportCurrent() {
		t.Fatal("HostReportCurrent: a report of binding 1 counts for binding 2")
	}
	c.Status.ObservedBindingGeneration = 2
	if got := agentStatus(c); got.Phase != vmv1alpha1.PhaseRunning {
		t.Fatalf("agentStatus dropped the current binding's report: %+v", got)
	}
}
