package main

// Issue 15's budgets: API writes per clone lifetime by resource, host reads per clone, and a
// single clone on an idle host against the sum of its host operations.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Targets of issue 15.
const (
	targetCloneWrites   = 6    // VMClone writes per clone lifetime
	targetAllWrites     = 8    // VMClone writes + Events per clone lifetime
	targetReadsCreate   = 1.5  // host reads per clone on create
	targetReadsDelete   = 2.0  // host reads per clone on delete
	targetOursVsLimit   = 1.25 // ours / limit at the same per-host parallelism
	targetSingleOverOps = 1.10 // single clone apply → Running p50 / its host operations
)

var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "APPLY": true, "DELETE": true, "DELETECOLLECTION": true}

// splitKey splits a requestKey into its verb and resource.group (subresource dropped).
func splitKey(k string) (verb, resource string) {
	verb, rest, _ := strings.Cut(k, " ")
	resource, _, _ = strings.Cut(rest, "/")
	return verb, resource
}

const (
	resVMClone = "vmclones.vm.xenclone.dev"
	resXenHost = "xenhosts.vm.xenclone.dev"
	resLease   = "leases.coordination.k8s.io"
)

func isEvent(resource string) bool { return resource == "events.events.k8s.io" || resource == "events" }

// writesOf keeps the write requests of the given resources.
func writesOf(r RequestCounts, keep func(resource string) bool) RequestCounts {
	out := RequestCounts{}
	for k, v := range r {
		if verb, res := splitKey(k); writeVerbs[verb] && keep(res) && v != 0 {
			out[k] = v
		}
	}
	return out
}

// WriteBudget is the API writes of a run, per clone. "Ours" is controller + agents: the API
// server's count (apiserver_request_total) minus the bench's own requests (the user's creates
// and deletes, its watch); the agents' share is counted on their transport and the
// controller's is the rest. Lease and XenHost writes are the agents' own count (the API
// server's total also has kube-apiserver's own identity Lease) plus the controller's XenHost
// writes.
type WriteBudget struct {
	Clones  int     `json:"clones"`
	Hosts   int     `json:"hosts"`
	Seconds float64 `json:"seconds"`
	// Per clone, controller + agents.
	CloneWritesPerClone      float64 `json:"cloneWritesPerClone"`
	AgentCloneWritesPerClone float64 `json:"agentCloneWritesPerClone"`
	CtrlCloneWritesPerClone  float64 `json:"controllerCloneWritesPerClone"`
	EventWritesPerClone      float64 `json:"eventWritesPerClone"`
	AgentEventsPerClone      float64 `json:"agentEventWritesPerClone"`
	CtrlEventsPerClone       float64 `json:"controllerEventWritesPerClone"`
	// Host objects (Lease renewals, XenHost status): per clone and per host per minute.
	HostWritesPerClone         float64 `json:"hostObjectWritesPerClone"`
	LeaseWritesPerHostMinute   float64 `json:"leaseWritesPerHostMinute"`
	XenHostWritesPerHostMinute float64 `json:"xenHostWritesPerHostMinute"`
	// The writes behind those numbers, whole run, by requestKey.
	CloneWrites      RequestCounts `json:"cloneWrites"`
	AgentCloneWrites RequestCounts `json:"agentCloneWrites"`
	EventWrites      RequestCounts `json:"eventWrites"`
	HostWrites       RequestCounts `json:"hostObjectWrites"`
	// UserWrites are the bench's own writes (creates and deletes), not counted above.
	UserWrites RequestCounts `json:"userWrites"`
	// OtherWrites are controller + agent writes to anything else (VMTemplate status, …),
	// outside the budget, and OtherWritesPerClone their count per clone.
	OtherWrites         RequestCounts `json:"otherWrites"`
	OtherWritesPerClone float64       `json:"otherWritesPerClone"`
}

func writeBudget(p Phase, clones, hosts int) *WriteBudget {
	if clones == 0 || p.APIServerRequestsByResource == nil {
		return nil
	}
	all := func(string) bool { return true }
	ours := writesOf(p.APIServerRequestsByResource, all).Sub(writesOf(p.BenchRequestsByResource, all))
	agents := writesOf(p.AgentRequestsByResource, all)
	n := float64(clones)
	sum := func(r RequestCounts, keep func(string) bool) float64 { return float64(writesOf(r, keep).Total()) }
	clone := func(res string) bool { return res == resVMClone }
	lease := func(res string) bool { return res == resLease }
	xenhost := func(res string) bool { return res == resXenHost }
	b := &WriteBudget{Clones: clones, Hosts: hosts, Seconds: p.Seconds,
		CloneWrites: writesOf(ours, clone), AgentCloneWrites: writesOf(agents, clone), EventWrites: writesOf(ours, isEvent),
		UserWrites: writesOf(p.BenchRequestsByResource, all)}
	// Lease writes of others than the agents (kube-apiserver's own identity Lease) are left out.
	b.OtherWrites = writesOf(ours, func(res string) bool {
		return res != resVMClone && res != resXenHost && res != resLease && !isEvent(res)
	})
	b.OtherWritesPerClone = float64(b.OtherWrites.Total()) / n
	b.CloneWritesPerClone = sum(ours, clone) / n
	b.AgentCloneWritesPerClone = sum(agents, clone) / n
	b.CtrlCloneWritesPerClone = b.CloneWritesPerClone - b.AgentCloneWritesPerClone
	b.EventWritesPerClone = sum(ours, isEvent) / n
	b.AgentEventsPerClone = sum(agents, isEvent) / n
	b.CtrlEventsPerClone = b.EventWritesPerClone - b.AgentEventsPerClone
	// Host objects: the agents' Lease and XenHost writes, and the controller's XenHost writes.
	ctrlXenHost := sum(ours, xenhost) - sum(agents, xenhost)
	if ctrlXenHost < 0 {
		ctrlXenHost = 0
	}
	b.HostWrites = writesOf(agents, func(res string) bool { return lease(res) || xenhost(res) })
	b.HostWritesPerClone = (float64(b.HostWrites.Total()) + ctrlXenHost) / n
	if mins := p.Seconds / 60; mins > 0 && hosts > 0 {
		b.LeaseWritesPerHostMinute = sum(agents, lease) / float64(hosts) / mins
		b.XenHostWritesPerHostMinute = (sum(agents, xenhost) + ctrlXenHost) / float64(hosts) / mins
	}
	return b
}

// hostReadOps are the host operations that only read the host: the VG report (lvs/vgs), the
// domain list and lookups (xl list), xl info and xl list -l.
var hostReadOps = []string{"lvm report", "xl list", "xl list (lookup)", "xl info", "xl list -l (owner)", "xenstore-ls", "ip neigh show"}

// hostReads sums the read-only host operations.
func hostReads(ops map[string]OpSum) OpSum {
	var s OpSum
	for _, k := range hostReadOps {
		s.Count += ops[k].Count
		s.Seconds += ops[k].Seconds
	}
	return s
}

func sumOps(ops map[string]OpSum) OpSum {
	var s OpSum
	for _, o := range ops {
		s.Count += o.Count
		s.Seconds += o.Seconds
	}
	return s
}

func addOps(into, d map[string]OpSum) {
	for k, v := range d {
		o := into[k]
		o.Count += v.Count
		o.Seconds += v.Seconds
		into[k] = o
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SingleClone is clones created one at a time on the idle cluster: each is created, waited
// for until Running, deleted and waited for until gone before the next.
type SingleClone struct {
	Clones         int       `json:"clones"`
	ApplyToRunning Quantiles `json:"applyToRunning"`
	DeleteLatency  Quantiles `json:"deleteLatency"`
	// HostOps are the host operations on each clone's host (status.nodeName) from just before
	// its create call until the bench saw it Running, summed over the clones;
	// HostOpsSecondsPerClone is their seconds divided by the clone count.
	HostOps                map[string]OpSum `json:"hostOps"`
	HostOpsSecondsPerClone float64          `json:"hostOpsSecondsPerClone"`
	// Ratio is ApplyToRunning.P50 / HostOpsSecondsPerClone (target ≤ 1.10).
	Ratio  float64      `json:"ratio"`
	Phase  Phase        `json:"phase"`
	Writes *WriteBudget `json:"writes,omitempty"`
}

func runSingle(ctx context.Context, o Options, cl *cluster) (*SingleClone, error) {
	sg := &SingleClone{Clones: o.Single, HostOps: map[string]OpSum{}}
	logf("single clone: %d clones one at a time on the idle cluster", o.Single)
	before := cl.mark(ctx)
	var toRun, gone []float64
	wait := func(name string, seen func() (time.Time, bool)) (time.Time, error) {
		deadline := time.Now().Add(o.Timeout)
		for {
			if t, ok := seen(); ok {
				return t, nil
			}
			if err := cl.alive(); err != nil {
				return time.Time{}, err
			}
			if time.Now().After(deadline) {
				return time.Time{}, fmt.Errorf("%s: timed out after %s", name, o.Timeout)
			}
			select {
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	lookup := func(m map[string]time.Time, name string) func() (time.Time, bool) {
		return func() (time.Time, bool) {
			cl.cloneEvents.mu.Lock()
			defer cl.cloneEvents.mu.Unlock()
			t, ok := m[name]
			return t, ok
		}
	}
	fail := func(err error) (*SingleClone, error) {
		sg.ApplyToRunning, sg.DeleteLatency = quantiles(toRun), quantiles(gone)
		return sg, err
	}
	for i := 0; i < o.Single; i++ {
		name := fmt.Sprintf("one-%03d", i)
		statsBefore, err := getAgentStats(ctx, cl.agentsStats)
		if err != nil {
			return fail(err)
		}
		c := &vmv1alpha1.VMClone{
			ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: name},
			Spec:       vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: "debian12"}, RunStrategy: vmv1alpha1.RunStrategyAlways},
		}
		applied := time.Now()
		if err := cl.c.Create(ctx, c); err != nil {
			return fail(fmt.Errorf("create %s: %w", name, err))
		}
		running, err := wait(name, lookup(cl.cloneEvents.running, name))
		if err != nil {
			return fail(err)
		}
		statsAfter, err := getAgentStats(ctx, cl.agentsStats)
		if err != nil {
			return fail(err)
		}
		toRun = append(toRun, running.Sub(applied).Seconds())
		cl.cloneEvents.mu.Lock()
		node := cl.cloneEvents.node[name]
		cl.cloneEvents.mu.Unlock()
		addOps(sg.HostOps, subOps(statsAfter.HostOpsByHost[node], statsBefore.HostOpsByHost[node]))

		deleted := time.Now()
		if err := client.IgnoreNotFound(cl.c.Delete(ctx, c)); err != nil {
			return fail(fmt.Errorf("delete %s: %w", name, err))
		}
		g, err := wait(name, lookup(cl.cloneEvents.gone, name))
		if err != nil {
			return fail(err)
		}
		gone = append(gone, g.Sub(deleted).Seconds())
	}
	after := cl.mark(ctx)
	sg.Phase = phaseBetween(before, after)
	sg.Writes = writeBudget(sg.Phase, o.Single, o.Hosts)
	sg.ApplyToRunning, sg.DeleteLatency = quantiles(toRun), quantiles(gone)
	if o.Single > 0 {
		sg.HostOpsSecondsPerClone = sumOps(sg.HostOps).Seconds / float64(o.Single)
	}
	if sg.HostOpsSecondsPerClone > 0 {
		sg.Ratio = sg.ApplyToRunning.P50 / sg.HostOpsSecondsPerClone
	}
	logf("single clone: apply → Running p50 %.2fs, host operations %.2fs per clone (×%.2f)", sg.ApplyToRunning.P50, sg.HostOpsSecondsPerClone, sg.Ratio)
	return sg, nil
}
