package controllers

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func TestDecideExpiry(t *testing.T) {
	created := testNow.Add(-time.Hour)
	withLifetime := func(d time.Duration, on vmv1alpha1.ExpiryAction) *vmv1alpha1.VMClone {
		c := testClone("ttl")
		c.CreationTimestamp = metav1.NewTime(created)
		c.Spec.Lifetime = &vmv1alpha1.Lifetime{ExpireAfter: metav1.Duration{Duration: d}, OnExpiry: on}
		return c
	}
	tests := []struct {
		name        string
		clone       *vmv1alpha1.VMClone
		wantAt      time.Time
		wantExpired bool
		wantAction  vmv1alpha1.ExpiryAction
		wantRequeue time.Duration
	}{
		{name: "no lifetime", clone: testClone("plain")},
		{name: "not yet: requeue exactly at expiry", clone: withLifetime(90*time.Minute, ""),
			wantAt: created.Add(90 * time.Minute), wantAction: vmv1alpha1.ExpiryDelete, wantRequeue: 30 * time.Minute},
		{name: "at expiry", clone: withLifetime(time.Hour, vmv1alpha1.ExpiryStop),
			wantAt: testNow, wantExpired: true, wantAction: vmv1alpha1.ExpiryStop},
		{name: "past expiry", clone: withLifetime(time.Minute, vmv1alpha1.ExpiryDelete),
			wantAt: created.Add(time.Minute), wantExpired: true, wantAction: vmv1alpha1.ExpiryDelete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := DecideExpiry(tt.clone, testNow)
			if tt.wantAt.IsZero() {
				if d.ExpiresAt != nil || d.Expired || d.RequeueAfter != 0 {
					t.Fatalf("want no expiry, got %+v", d)
				}
				return
			}
			if d.ExpiresAt == nil || !d.ExpiresAt.Time.Equal(tt.wantAt) {
				t.Errorf("expiresAt = %v, want %v", d.ExpiresAt, tt.wantAt)
			}
			if d.Expired != tt.wantExpired || d.Action != tt.wantAction || d.RequeueAfter != tt.wantRequeue {
				t.Errorf("got expired=%v action=%s requeue=%s, want %v %s %s", d.Expired, d.Action, d.RequeueAfter, tt.wantExpired, tt.wantAction, tt.wantRequeue)
			}
		})
	}
}

func TestReadyCondition(t *testing.T) {
	scheduled := metav1.Condition{Type: vmv1alpha1.ConditionScheduled, Status: metav1.ConditionTrue, Reason: ReasonScheduled}
	unscheduled := metav1.Condition{Type: vmv1alpha1.ConditionScheduled, Status: metav1.ConditionFalse, Reason: ReasonUnschedulable, Message: "0/3 hosts fit"}
	cond := func(typ string, s metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: "m"}
	}
	withConds := func(rs vmv1alpha1.RunStrategy, cs ...metav1.Condition) *vmv1alpha1.VMClone {
		c := testClone("r")
		c.Spec.RunStrategy = rs
		c.Status.NodeName = "h1"
		c.Status.Conditions = cs
		return c
	}
	allUp := []metav1.Condition{
		cond(vmv1alpha1.ConditionVolumeReady, metav1.ConditionTrue, "Ok"),
		cond(vmv1alpha1.ConditionGuestPrepared, metav1.ConditionTrue, "Ok"),
		cond(vmv1alpha1.ConditionDomainRunning, metav1.ConditionTrue, "Ok"),
	}
	diskOnly := []metav1.Condition{
		cond(vmv1alpha1.ConditionVolumeReady, metav1.ConditionTrue, "Ok"),
		cond(vmv1alpha1.ConditionGuestPrepared, metav1.ConditionTrue, "Ok"),
		cond(vmv1alpha1.ConditionDomainRunning, metav1.ConditionFalse, "Stopped"),
	}
	tests := []struct {
		name       string
		in         ReadyInput
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		{"unscheduled carries the scheduling reason", ReadyInput{Clone: withConds(""), Scheduled: unscheduled, HostLive: true}, metav1.ConditionFalse, ReasonUnschedulable},
		{"node lost is Unknown", ReadyInput{Clone: withConds("", allUp...), Scheduled: scheduled, HostLive: false}, metav1.ConditionUnknown, ReasonNodeLost},
		{"waiting for the agent", ReadyInput{Clone: withConds(""), Scheduled: scheduled, HostLive: true}, metav1.ConditionFalse, ReasonWaitingForHost},
		{"agent step failing", ReadyInput{Clone: withConds("", cond(vmv1alpha1.ConditionVolumeReady, metav1.ConditionFalse, "InsufficientSpace")), Scheduled: scheduled, HostLive: true}, metav1.ConditionFalse, "InsufficientSpace"},
		{"running", ReadyInput{Clone: withConds(vmv1alpha1.RunStrategyAlways, allUp...), Scheduled: scheduled, HostLive: true}, metav1.ConditionTrue, ReasonRunning},
		{"paused warm standby is ready, as Paused", ReadyInput{Clone: func() *vmv1alpha1.VMClone {
			c := withConds(vmv1alpha1.RunStrategyAlways, allUp[0], allUp[1], cond(vmv1alpha1.ConditionDomainRunning, metav1.ConditionTrue, vmv1alpha1.ReasonPaused))
			c.Status.Phase = vmv1alpha1.PhasePaused
			return c
		}(), Scheduled: scheduled, HostLive: true}, metav1.ConditionTrue, vmv1alpha1.ReasonPaused},
		{"always but stopped", ReadyInput{Clone: withConds(vmv1alpha1.RunStrategyAlways, diskOnly...), Scheduled: scheduled, HostLive: true}, metav1.ConditionFalse, "Stopped"},
		{"halted by design is ready", ReadyInput{Clone: withConds(vmv1alpha1.RunStrategyHalted, diskOnly...), Scheduled: scheduled, HostLive: true}, metav1.ConditionTrue, ReasonHalted},
		{"halted, domain not reported yet: not ready before the phase says Stopped", ReadyInput{Clone: withConds(vmv1alpha1.RunStrategyHalted, diskOnly[:2]...), Scheduled: scheduled, HostLive: true}, metav1.ConditionFalse, ReasonWaitingForHost},
		{"reset requested and not done", ReadyInput{Clone: func() *vmv1alpha1.VMClone {
			c := withConds("", allUp...)
			c.Spec.ResetRequests = 2
			c.Status.ObservedResetRequests = 1
			return c
		}(), Scheduled: scheduled, HostLive: true}, metav1.ConditionFalse, ReasonResetting},
		{"stopped on expiry is ready", ReadyInput{Clone: withConds("", diskOnly...), Scheduled: scheduled, HostLive: true, StoppedOnExpiry: true}, metav1.ConditionTrue, ReasonStoppedOnExpiry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ReadyCondition(tt.in)
			if got.Status != tt.wantStatus || got.Reason != tt.wantReason {
				t.Errorf("Ready = %s/%s (%s), want %s/%s", got.Status, got.Reason, got.Message, tt.wantStatus, tt.wantReason)
			}
			if got.Type != vmv1alpha1.ConditionReady || got.Message == "" {
				t.Errorf("condition incomplete: %+v", got)
			}
		})
	}
}

func TestPlanPool(t *testing.T) {
	m := func(name string, idx int, mods ...func(*PoolMember)) PoolMember {
		pm := PoolMember{Name: name, Index: idx, Ready: true}
		for _, f := range mods {
			f(&pm)
		}
		return pm
	}
	deleting := func(p *PoolMember) { p.Deleting = true }
	failed := func(p *PoolMember) { p.Failed = true }
	making := func(p *PoolMember) { p.Ready = false }
	claimed := func(p *PoolMember) { p.Claimed = true }
	outdated := func(p *PoolMember) { p.Outdated = true }
	tests := []struct {
		name        string
		pol         PoolPolicy
		members     []PoolMember
		wantCreate  []int
		wantDelete  []string
		wantRollOut []string
	}{
		{name: "from zero", pol: PoolPolicy{Replicas: 3}, wantCreate: []int{0, 1, 2}},
		{name: "lowest free index reused", pol: PoolPolicy{Replicas: 3}, members: []PoolMember{m("p-0", 0), m("p-2", 2)}, wantCreate: []int{1}},
		{name: "terminating member keeps its index", pol: PoolPolicy{Replicas: 2}, members: []PoolMember{m("p-0", 0, deleting), m("p-1", 1)}, wantCreate: []int{2}},
		{name: "scale down highest index first", pol: PoolPolicy{Replicas: 1}, members: []PoolMember{m("p-0", 0), m("p-2", 2), m("p-1", 1)}, wantDelete: []string{"p-2", "p-1"}},
		{name: "scale down drops members not ready first", pol: PoolPolicy{Replicas: 1}, members: []PoolMember{m("p-0", 0, making), m("p-1", 1)}, wantDelete: []string{"p-0"}},
		{name: "scale down drops outdated first", pol: PoolPolicy{Replicas: 1}, members: []PoolMember{m("p-0", 0), m("p-1", 1, outdated, making), m("p-2", 2, outdated)}, wantDelete: []string{"p-1", "p-2"}},
		{name: "steady", pol: PoolPolicy{Replicas: 2}, members: []PoolMember{m("p-0", 0), m("p-1", 1)}},
		{name: "failed member replaced", pol: PoolPolicy{Replicas: 2, ReplaceFailed: true}, members: []PoolMember{m("p-0", 0, failed), m("p-1", 1)}, wantCreate: []int{2}, wantDelete: []string{"p-0"}},
		{name: "failed member kept without replaceFailed", pol: PoolPolicy{Replicas: 2}, members: []PoolMember{m("p-0", 0, failed), m("p-1", 1)}},
		{name: "scale to zero", pol: PoolPolicy{Replicas: 0}, members: []PoolMember{m("p-0", 0), m("p-1", 1, deleting)}, wantDelete: []string{"p-0"}},
		// Claims.
		{name: "claimed member leaves the count but holds its index", pol: PoolPolicy{Replicas: 2}, members: []PoolMember{m("p-0", 0, claimed), m("p-1", 1)}, wantCreate: []int{2}},
		{name: "claimed members are never deleted on scale-down", pol: PoolPolicy{Replicas: 0}, members: []PoolMember{m("p-0", 0, claimed), m("p-1", 1)}, wantDelete: []string{"p-1"}},
		// Bounded refill.
		{name: "refill bounded by maxMaking", pol: PoolPolicy{Replicas: 10, MaxMaking: 3}, wantCreate: []int{0, 1, 2}},
		{name: "members being made use the budget", pol: PoolPolicy{Replicas: 10, MaxMaking: 3}, members: []PoolMember{m("p-0", 0, making), m("p-1", 1, making), m("p-2", 2)}, wantCreate: []int{3}},
		{name: "budget spent: nothing made", pol: PoolPolicy{Replicas: 10, MaxMaking: 2}, members: []PoolMember{m("p-0", 0, making), m("p-1", 1, making)}},
		// Rollout.
		{name: "recreate replaces outdated within the budget", pol: PoolPolicy{Replicas: 3, MaxMaking: 2, Recreate: true},
			members:    []PoolMember{m("p-0", 0, outdated), m("p-1", 1, outdated), m("p-2", 2, outdated)},
			wantDelete: []string{"p-0", "p-1"}, wantRollOut: []string{"p-0", "p-1"}},
		{name: "recreate refills before it replaces", pol: PoolPolicy{Replicas: 3, MaxMaking: 2, Recreate: true},
			members:    []PoolMember{m("p-0", 0, outdated, deleting), m("p-1", 1, outdated), m("p-2", 2, outdated)},
			wantCreate: []int{3}, wantDelete: []string{"p-1"}, wantRollOut: []string{"p-1"}},
		{name: "on replenish keeps outdated", pol: PoolPolicy{Replicas: 2, MaxMaking: 2},
			members: []PoolMember{m("p-0", 0, outdated), m("p-1", 1, outdated)}},
		{name: "on replenish makes new members of the new template", pol: PoolPolicy{Replicas: 2, MaxMaking: 2},
			members: []PoolMember{m("p-0", 0, outdated), m("p-1", 1, outdated, claimed)}, wantCreate: []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PlanPool(tt.pol, tt.members)
			if !equalInts(got.Create, tt.wantCreate) || !equalStrings(got.Delete, tt.wantDelete) || !equalStrings(got.RollOut, tt.wantRollOut) {
				t.Errorf("plan = create %v delete %v rollout %v, want create %v delete %v rollout %v",
					got.Create, got.Delete, got.RollOut, tt.wantCreate, tt.wantDelete, tt.wantRollOut)
			}
		})
	}
}

func TestMemberHostname(t *testing.T) {
	pool := &vmv1alpha1.VMClonePool{ObjectMeta: metav1.ObjectMeta{Name: "ci.runners"}}
	if got := memberHostname(pool, 3); got != "ci-runners-3" {
		t.Errorf("got %q", got)
	}
	pool.Spec.Template.Spec.Hostname = "runner"
	if got := memberHostname(pool, 12); got != "runner-12" {
		t.Errorf("got %q", got)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHostDisruptionWidespread(t *testing.T) {
	fresh := func(string) Heartbeat { return Heartbeat{Seen: true, Live: true} }
	stale := func(string) Heartbeat { return Heartbeat{Seen: true} }
	hosts := func(names ...string) []vmv1alpha1.XenHost {
		var hs []vmv1alpha1.XenHost
		for _, n := range names {
			hs = append(hs, vmv1alpha1.XenHost{ObjectMeta: metav1.ObjectMeta{Name: n}})
		}
		return hs
	}
	for _, tc := range []struct {
		name       string
		hosts      []vmv1alpha1.XenHost
		heartbeats map[string]Heartbeat
		lost       int
		widespread bool
	}{
		{"one of two lost: move", hosts("a", "b"), map[string]Heartbeat{"a": stale("a"), "b": fresh("b")}, 1, false},
		{"the only host lost: nowhere to go", hosts("a"), map[string]Heartbeat{"a": stale("a")}, 1, true},
		{"all lost (API server was down)", hosts("a", "b", "c"), map[string]Heartbeat{"a": stale("a"), "b": stale("b"), "c": stale("c")}, 3, true},
		{"two of three lost", hosts("a", "b", "c"), map[string]Heartbeat{"a": stale("a"), "b": stale("b"), "c": fresh("c")}, 2, true},
		{"a host without any Lease counts as lost", hosts("a", "b", "c", "d"), map[string]Heartbeat{"a": fresh("a"), "b": fresh("b"), "c": fresh("c")}, 1, false},
		{"5 of 10 lost: under 55%", hosts("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
			map[string]Heartbeat{"0": stale("0"), "1": stale("1"), "2": stale("2"), "3": stale("3"), "4": stale("4"),
				"5": fresh("5"), "6": fresh("6"), "7": fresh("7"), "8": fresh("8"), "9": fresh("9")}, 5, false},
		{"none lost", hosts("a"), map[string]Heartbeat{"a": fresh("a")}, 0, false},
		{"no hosts", nil, nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := HostDisruption(tc.hosts, tc.heartbeats)
			if d.Lost != tc.lost || d.Total != len(tc.hosts) {
				t.Errorf("HostDisruption = %+v, want %d lost of %d", d, tc.lost, len(tc.hosts))
			}
			if got := d.Widespread(DefaultRescheduleMaxLostFraction); got != tc.widespread {
				t.Errorf("Widespread(%.2f) with %d of %d lost = %v, want %v", DefaultRescheduleMaxLostFraction, d.Lost, d.Total, got, tc.widespread)
			}
		})
	}
}

func TestDecideReschedule(t *testing.T) {
	seen := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	const grace, delay, margin = 40 * time.Second, 5 * time.Minute, 20 * time.Second
	fencing := func(after time.Duration) Heartbeat {
		return Heartbeat{Seen: true, LastRenewalSeen: seen, StaleAt: seen.Add(grace), FenceAfter: after, Fences: true}
	}
	oldAgent := Heartbeat{Seen: true, LastRenewalSeen: seen, StaleAt: seen.Add(grace),
		NotFencingWhy: "its heartbeat Lease has no vm.xenclone.dev/fence-after annotation (an agent that does not fence)"}
	for _, tc := range []struct {
		name      string
		hb        Heartbeat
		since     time.Duration // controller clock since the last renewal seen
		move      bool
		wait      LostHostWait
		at        time.Duration // after the last renewal seen; -1: never
		inMessage string
	}{
		{"default agent, within the delay", fencing(60 * time.Second), 5 * time.Minute, false, WaitsForDelay, grace + delay, "moves to another host at 2026-12-03T08:05:40Z"},
		{"default agent, one ns short of the delay", fencing(60 * time.Second), grace + delay - time.Nanosecond, false, WaitsForDelay, grace + delay, ""},
		{"default agent, at the delay", fencing(60 * time.Second), grace + delay, true, WaitsForDelay, grace + delay, ""},
		{"fence-after longer than the delay: waits for it plus the margin", fencing(10 * time.Minute), grace + delay + time.Minute, false, WaitsForFence, 10*time.Minute + margin, "at 2026-12-03T08:10:20Z (fence-after plus margin 20s)"},
		{"fence-after + margin, one ns short", fencing(10 * time.Minute), 10*time.Minute + margin - time.Nanosecond, false, WaitsForFence, 10*time.Minute + margin, ""},
		{"fence-after + margin reached", fencing(10 * time.Minute), 10*time.Minute + margin, true, WaitsForFence, 10*time.Minute + margin, ""},
		{"fence-after + margin equal to the delay: the normal wait", fencing(grace + delay - margin), grace + delay, true, WaitsForDelay, grace + delay, ""},
		{"agent without fence-after: never", oldAgent, 24 * time.Hour, false, NeverMoves, -1, "upgrade the hostagent"},
		{"Lease never seen: never", Heartbeat{LeaseMissing: true}, 24 * time.Hour, false, NeverMoves, -1, "has seen no renewal"},
		{"Lease deleted after renewals: counts from the last seen", Heartbeat{Seen: true, LeaseMissing: true, LastRenewalSeen: seen, FenceAfter: time.Minute, Fences: true}, grace + delay, true, WaitsForDelay, grace + delay, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := DecideReschedule(RescheduleInput{Host: "xen-01", Heartbeat: tc.hb, Now: seen.Add(tc.since),
				HeartbeatGrace: grace, RescheduleAfter: delay, FenceMargin: margin})
			if d.Move != tc.move || d.Wait != tc.wait {
				t.Errorf("Move %v Wait %v, want %v %v (%s)", d.Move, d.Wait, tc.move, tc.wait, d.Message)
			}
			wantAt := time.Time{}
			if tc.at >= 0 {
				wantAt = seen.Add(tc.at)
			}
			if !d.At.Equal(wantAt) {
				t.Errorf("At %s, want %s", d.At, wantAt)
			}
			if !strings.Contains(d.Message, tc.inMessage) || !strings.Contains(d.Message, "xen-01") {
				t.Errorf("message %q lacks %q", d.Message, tc.inMessage)
			}
		})
	}
}

// TestReadyOnLostHostSaysWhenTheCloneMoves: a rescheduling clone's Ready carries the
// decision's reason and message.
func TestReadyOnLostHostSaysWhenTheCloneMoves(t *testing.T) {
	c := testClone("c")
	c.Status.NodeName = "xen-01"
	scheduled := metav1.Condition{Type: vmv1alpha1.ConditionScheduled, Status: metav1.ConditionTrue, Reason: ReasonScheduled}
	for wait, want := range map[LostHostWait]string{WaitsForDelay: ReasonNodeLost, WaitsForFence: ReasonRescheduleWaitsForFence, NeverMoves: ReasonHostNotFencing} {
		got := ReadyCondition(ReadyInput{Clone: c, Scheduled: scheduled, HostLostMessage: "lost",
			Reschedule: &RescheduleDecision{Wait: wait, Message: "moves at noon"}})
		if got.Status != metav1.ConditionUnknown || got.Reason != want || got.Message != "moves at noon" {
			t.Errorf("wait %d: Ready %s/%s %q, want Unknown/%s", wait, got.Status, got.Reason, got.Message, want)
		}
	}
}
