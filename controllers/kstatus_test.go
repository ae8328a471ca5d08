package controllers

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// TestKStatusCoversEveryReadyReason derives Ready for a clone in each state the vocabulary
// names a Ready reason for, then Reconciling/Stalled, and reads the result with the kstatus
// library as Flux and kpt do: Current when Ready is True, Failed for a Stalled reason,
// InProgress otherwise (a Blocked reason included: the controller keeps retrying it). A
// Ready reason added to the table without a way here to reach it fails the test, as does a
// kstatus answer that disagrees with the reason's class.
// hostagent/kstatus_test.go checks a few of these end to end on a real API server.
func TestKStatusCoversEveryReadyReason(t *testing.T) {
	type scenario struct {
		name   string
		reason string
		mod    func(*vmv1alpha1.VMClone, *ReadyInput)
	}
	setCond := func(c *vmv1alpha1.VMClone, typ string, s metav1.ConditionStatus, reason string) {
		meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: typ, Status: s, Reason: reason, Message: "m"})
	}
	scenarios := []scenario{
		{"running", ReasonRunning, func(*vmv1alpha1.VMClone, *ReadyInput) {}},
		{"paused warm standby", vmv1alpha1.ReasonPaused, func(c *vmv1alpha1.VMClone, _ *ReadyInput) {
			c.Spec.Pause = &vmv1alpha1.PauseSpec{}
			c.Status.Phase = vmv1alpha1.PhasePaused
			setCond(c, vmv1alpha1.ConditionDomainRunning, metav1.ConditionTrue, vmv1alpha1.ReasonPaused)
		}},
		{"halted", ReasonHalted, func(c *vmv1alpha1.VMClone, _ *ReadyInput) {
			c.Spec.RunStrategy = vmv1alpha1.RunStrategyHalted
			c.Status.Phase = vmv1alpha1.PhaseStopped
			setCond(c, vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, vmv1alpha1.ReasonHalted)
		}},
		{"stopped on expiry", ReasonStoppedOnExpiry, func(c *vmv1alpha1.VMClone, in *ReadyInput) {
			in.StoppedOnExpiry = true
			c.Status.Phase = vmv1alpha1.PhaseStopped
			setCond(c, vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, vmv1alpha1.ReasonHalted)
		}},
		{"halted, still stopping", ReasonStopping, func(c *vmv1alpha1.VMClone, _ *ReadyInput) {
			c.Spec.RunStrategy = vmv1alpha1.RunStrategyHalted
			c.Status.Phase = vmv1alpha1.PhaseStopping
			setCond(c, vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, vmv1alpha1.ReasonShuttingDown)
		}},
		{"no report on this binding", ReasonWaitingForHost, func(c *vmv1alpha1.VMClone, _ *ReadyInput) {
			c.Status.ObservedBindingGeneration = 0
		}},
		{"host lost", ReasonNodeLost, func(_ *vmv1alpha1.VMClone, in *ReadyInput) { in.HostLive = false }},
		{"host lost while failed", ReasonNodeLost, func(c *vmv1alpha1.VMClone, in *ReadyInput) {
			in.HostLive = false
			c.Status.Phase = vmv1alpha1.PhaseFailed
		}},
		{"host lost, rescheduling waits for its agent to fence", ReasonRescheduleWaitsForFence, func(_ *vmv1alpha1.VMClone, in *ReadyInput) {
			in.HostLive = false
			in.Reschedule = &RescheduleDecision{Wait: WaitsForFence, Message: "moves at noon"}
		}},
		{"host lost, its agent does not fence", ReasonHostNotFencing, func(_ *vmv1alpha1.VMClone, in *ReadyInput) {
			in.HostLive = false
			in.Reschedule = &RescheduleDecision{Wait: NeverMoves, Message: "upgrade the agent"}
		}},
		{"reset requested", ReasonResetting, func(c *vmv1alpha1.VMClone, _ *ReadyInput) { c.Spec.ResetRequests = 1 }},
		{"reset of a failed clone", ReasonResetting, func(c *vmv1alpha1.VMClone, _ *ReadyInput) {
			c.Spec.ResetRequests = 1
			c.Status.Phase = vmv1alpha1.PhaseFailed
		}},
		{"failed", ReasonFailed, func(c *vmv1alpha1.VMClone, _ *ReadyInput) { c.Status.Phase = vmv1alpha1.PhaseFailed }},
	}
	readyDef, ok := vmv1alpha1.LookupCondition("VMClone", vmv1alpha1.ConditionReady)
	if !ok {
		t.Fatal("no VMClone Ready in the table")
	}
	// Ready repeats the reason of the first condition that is not done.
	for _, typ := range readyDef.Repeats {
		for _, r := range vmv1alpha1.ReasonsOf("VMClone", typ) {
			if r.Class == vmv1alpha1.ClassStalled || !hasStatus(r.Statuses, metav1.ConditionFalse) {
				continue
			}
			typ, reason := typ, r.Name
			scenarios = append(scenarios, scenario{typ + " " + reason, reason, func(c *vmv1alpha1.VMClone, in *ReadyInput) {
				if typ == vmv1alpha1.ConditionScheduled {
					in.Scheduled = metav1.Condition{Type: typ, Status: metav1.ConditionFalse, Reason: reason, Message: "m"}
					return
				}
				c.Status.Phase = vmv1alpha1.PhaseProvisioning
				setCond(c, typ, metav1.ConditionFalse, reason)
			}})
		}
	}

	reached := map[string]bool{}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			c := testClone("k")
			c.Generation = 1
			c.Status.NodeName, c.Status.BindingGeneration, c.Status.ObservedBindingGeneration = "h1", 1, 1
			c.Status.ObservedGeneration, c.Status.Phase = 1, vmv1alpha1.PhaseRunning
			for _, step := range []struct{ typ, reason string }{
				{vmv1alpha1.ConditionVolumeReady, vmv1alpha1.ReasonSnapshotCreated},
				{vmv1alpha1.ConditionGuestPrepared, vmv1alpha1.ReasonPrepared},
				{vmv1alpha1.ConditionDomainRunning, vmv1alpha1.ReasonStarted},
			} {
				setCond(c, step.typ, metav1.ConditionTrue, step.reason)
			}
			in := ReadyInput{Clone: c, HostLive: true,
				Scheduled: metav1.Condition{Type: vmv1alpha1.ConditionScheduled, Status: metav1.ConditionTrue, Reason: ReasonScheduled}}
			sc.mod(c, &in)

			ready := ReadyCondition(in)
			if ready.Reason != sc.reason {
				t.Fatalf("Ready says %s %s, want reason %s", ready.Status, ready.Reason, sc.reason)
			}
			r, ok := reasonOf("VMClone", vmv1alpha1.ConditionReady, ready.Reason)
			if !ok || !hasStatus(r.Statuses, ready.Status) {
				t.Errorf("Ready %s with reason %s; the table allows %v", ready.Status, ready.Reason, r.Statuses)
			}
			reached[ready.Reason] = true

			st := c.Status.DeepCopy()
			meta.SetStatusCondition(&st.Conditions, ready)
			setKStatusConditions(st, c)
			for _, typ := range []string{vmv1alpha1.ConditionReconciling, vmv1alpha1.ConditionStalled} {
				if k := meta.FindStatusCondition(st.Conditions, typ); k != nil {
					if r, ok := reasonOf("VMClone", typ, k.Reason); !ok || !hasStatus(r.Statuses, k.Status) {
						t.Errorf("%s=%s with reason %s, which the table does not list so", typ, k.Status, k.Reason)
					}
				}
			}
			c.Status = *st

			want := status.InProgressStatus
			switch {
			case ready.Status == metav1.ConditionTrue:
				want = status.CurrentStatus
			case r.Class == vmv1alpha1.ClassStalled:
				want = status.FailedStatus
			}
			if got := kstatusOf(t, c); got != want {
				t.Errorf("kstatus %s, want %s (Ready %s %s)", got, want, ready.Status, ready.Reason)
			}
		})
	}
	for _, r := range vmv1alpha1.ReasonsOf("VMClone", vmv1alpha1.ConditionReady) {
		if !reached[r.Name] {
			t.Errorf("no scenario here yields Ready reason %s: add one (and check what kstatus makes of it)", r.Name)
		}
	}
}

func hasStatus(list []metav1.ConditionStatus, s metav1.ConditionStatus) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func reasonOf(kind, typ, reason string) (vmv1alpha1.ConditionReason, bool) {
	for _, r := range vmv1alpha1.ReasonsOf(kind, typ) {
		if r.Name == reason {
			return r, true
		}
	}
	return vmv1alpha1.ConditionReason{}, false
}

func kstatusOf(t *testing.T, c *vmv1alpha1.VMClone) status.Status {
	t.Helper()
	c = c.DeepCopy()
	c.APIVersion, c.Kind = vmv1alpha1.GroupVersion.String(), "VMClone"
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

// TestKStatusOfClaims: each Ready reason of a claim, through setClaimKStatus, reads in kstatus
// as the table's class says: Current when Ready, Failed when stalled, InProgress otherwise.
func TestKStatusOfClaims(t *testing.T) {
	for _, r := range vmv1alpha1.ReasonsOf("VMClaim", vmv1alpha1.ConditionReady) {
		for _, st := range r.Statuses {
			t.Run(r.Name+"/"+string(st), func(t *testing.T) {
				c := &vmv1alpha1.VMClaim{ObjectMeta: metav1.ObjectMeta{Name: "c", Generation: 1}}
				c.Status.ObservedGeneration = 1
				setClaimCondition(&c.Status, 1, vmv1alpha1.ConditionReady, st, r.Name, "m")
				setClaimKStatus(&c.Status, c)
				for _, typ := range []string{vmv1alpha1.ConditionReconciling, vmv1alpha1.ConditionStalled} {
					if k := meta.FindStatusCondition(c.Status.Conditions, typ); k != nil {
						if kr, ok := reasonOf("VMClaim", typ, k.Reason); !ok || !hasStatus(kr.Statuses, k.Status) {
							t.Errorf("%s=%s with reason %s, which the table does not list so", typ, k.Status, k.Reason)
						}
					}
				}
				c.APIVersion, c.Kind = vmv1alpha1.GroupVersion.String(), "VMClaim"
				obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
				if err != nil {
					t.Fatal(err)
				}
				res, err := status.Compute(&unstructured.Unstructured{Object: obj})
				if err != nil {
					t.Fatal(err)
				}
				want := status.InProgressStatus
				switch {
				case st == metav1.ConditionTrue:
					want = status.CurrentStatus
				case r.Class == vmv1alpha1.ClassStalled:
					want = status.FailedStatus
				}
				if res.Status != want {
					t.Errorf("kstatus %s, want %s", res.Status, want)
				}
			})
		}
	}
}
