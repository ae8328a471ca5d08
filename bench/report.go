package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

func ms(s float64) string  { return fmt.Sprintf("%.0f ms", s*1000) }
func sec(s float64) string { return fmt.Sprintf("%.1f s", s) }
func mib(b int64) string   { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func counts(r RequestCounts) string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, r[k]))
	}
	return fmt.Sprintf("%d (%s)", r.Total(), strings.Join(parts, ", "))
}

func printTables(w io.Writer, r *Results) {
	m := r.Machine
	fmt.Fprintf(w, "\n## xenclone bench `%s` — %s\n\n", r.Name, r.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %s RAM, Linux %s, %s; load average before %s, after %s.\n\n",
		m.CPUs, m.CPUModel, m.MemTotal, m.Kernel, m.GoVersion, m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(w, "Built from commit %s", m.Commit)
	if len(m.Dirty) > 0 {
		fmt.Fprintf(w, " with uncommitted changes in the shared worktree: %s", strings.Join(m.Dirty, "; "))
	}
	fmt.Fprintf(w, ".\n\n")
	l := r.Options.Latency
	fmt.Fprintf(w, "Simulated host latencies: lvm report %s, lvcreate -s %s, lvchange %s, lvremove %s, guest prepare %s, xl create %s, guest shutdown %s; agent MaxConcurrent %d.\n\n",
		l.Report, l.Create, l.Change, l.Remove, l.Prepare, l.XLCreate, l.XLShutdown, r.Options.AgentConc)

	if cp := r.Control; cp != nil {
		fmt.Fprintf(w, "### Control plane: %d clones on %d simulated hosts\n\n", cp.Clones, cp.Hosts)
		fmt.Fprintf(w, "| measure | value |\n|---|---|\n")
		fmt.Fprintf(w, "| clones Running | %d of %d |\n", cp.Running, cp.Clones)
		fmt.Fprintf(w, "| apply of all clones (%d parallel clients) | %s |\n", r.Options.Creators, sec(cp.ApplySeconds))
		fmt.Fprintf(w, "| first apply → last Running (target < 60 s) | %s — %s |\n", sec(cp.CreateWallSeconds), verdict(cp.Running == cp.Clones && cp.CreateWallSeconds < 60))
		q := cp.ApplyToScheduled
		fmt.Fprintf(w, "| apply → Scheduled p50 / p95 / p99 | %s / %s / %s |\n", ms(q.P50), ms(q.P95), ms(q.P99))
		q = cp.ApplyToRunning
		fmt.Fprintf(w, "| apply → Running p50 / p95 / p99 (max) | %s / %s / %s (%s) |\n", sec(q.P50), sec(q.P95), sec(q.P99), sec(q.Max))
		fmt.Fprintf(w, "| delete of all → last gone | %s |\n", sec(cp.DeleteWallSeconds))
		q = cp.DeleteLatency
		fmt.Fprintf(w, "| delete → gone p50 / p95 / p99 | %s / %s / %s |\n\n", sec(q.P50), sec(q.P95), sec(q.P99))

		fmt.Fprintf(w, "| process, phase | CPU s | CPU s of children | peak RSS | API requests |\n|---|---|---|---|---|\n")
		for _, ph := range []struct {
			name string
			p    Phase
		}{{"create", cp.Create}, {"delete", cp.Delete}} {
			fmt.Fprintf(w, "| controller (`xenclone manager`), %s | %.1f | – | %.0f MiB | %s |\n", ph.name, ph.p.Controller.CPUSeconds, ph.p.Controller.PeakRSSMiB, counts(ph.p.ControllerRequests))
			fmt.Fprintf(w, "| %d agents (one process), %s | %.1f | %.1f (xl simulator) | %.0f MiB | %s |\n", cp.Hosts, ph.name, ph.p.Agents.CPUSeconds, ph.p.Agents.ChildCPUSeconds, ph.p.Agents.PeakRSSMiB, counts(ph.p.AgentRequests))
			fmt.Fprintf(w, "| bench client (creates/deletes + its watch), %s | – | – | – | %s |\n", ph.name, counts(ph.p.BenchRequests))
			fmt.Fprintf(w, "| kube-apiserver (envtest), %s | %.1f | – | %.0f MiB | %s (apiserver_request_total, every client) |\n", ph.name, ph.p.APIServer.CPUSeconds, ph.p.APIServer.PeakRSSMiB, counts(ph.p.APIServerRequests))
			fmt.Fprintf(w, "| etcd (envtest), %s | %.1f | – | %.0f MiB | – |\n", ph.name, ph.p.Etcd.CPUSeconds, ph.p.Etcd.PeakRSSMiB)
		}
		n := float64(cp.Clones)
		fmt.Fprintf(w, "\nPer clone (create + delete): controller %.1f requests, agents %.1f requests, controller %.1f ms CPU, agents %.1f ms CPU (+%.1f ms xl simulator).\n\n",
			float64(cp.Create.ControllerRequests.Total()+cp.Delete.ControllerRequests.Total())/n,
			float64(cp.Create.AgentRequests.Total()+cp.Delete.AgentRequests.Total())/n,
			(cp.Create.Controller.CPUSeconds+cp.Delete.Controller.CPUSeconds)/n*1000,
			(cp.Create.Agents.CPUSeconds+cp.Delete.Agents.CPUSeconds)/n*1000,
			(cp.Create.Agents.ChildCPUSeconds+cp.Delete.Agents.ChildCPUSeconds)/n*1000)

		for _, ph := range []struct {
			name string
			ops  map[string]OpSum
		}{{"create", cp.Create.HostOps}, {"delete", cp.Delete.HostOps}} {
			fmt.Fprintf(w, "Host operations the agents ran (%s phase; reads = the host reads counted against the target):\n\n", ph.name)
			printOps(w, ph.ops, n)
		}
		printWrites(w, cp)
	}

	if b := r.Baseline; b != nil && r.Control != nil {
		cp := r.Control
		fmt.Fprintf(w, "### Ours vs the limit (same host operations, no controller)\n\n")
		fmt.Fprintf(w, "| run | create wall | ours / limit | delete wall | ours / limit | time per clone |\n|---|---|---|---|---|---|\n")
		fmt.Fprintf(w, "| xenclone (controller + agents, %d per host at a time) | %s | – | %s | – | p50 apply→Running %s |\n", r.Options.AgentConc, sec(cp.CreateWallSeconds), sec(cp.DeleteWallSeconds), sec(cp.ApplyToRunning.P50))
		for _, lr := range []LimitRun{b.Sequential, b.Parallel} {
			fmt.Fprintf(w, "| limit, %d per host at a time, hosts in parallel | %s | %.2f | %s | %.2f | %s of operations |\n", lr.PerHost,
				sec(lr.CreateSeconds), cp.CreateWallSeconds/lr.CreateSeconds, sec(lr.DeleteSeconds), cp.DeleteWallSeconds/lr.DeleteSeconds, ms(lr.PerCloneSeconds))
		}
		perHost := float64(cp.Clones) / float64(cp.Hosts)
		over := (cp.CreateWallSeconds - b.Parallel.CreateSeconds) * float64(r.Options.AgentConc) / perHost
		fmt.Fprintf(w, "\nAt the same per-host parallelism (%d per host, the agents' MaxConcurrent, against the limit run with %d per host):\n\n", r.Options.AgentConc, b.Parallel.PerHost)
		for _, l := range oursVsLimit(r) {
			fmt.Fprintf(w, "- %s: %s (target %s) — %s\n", l.measure, l.value, l.target, l.verdict)
		}
		fmt.Fprintf(w, "\nOverhead per clone: %.0f ms of host-worker time ((ours − limit) × %d workers ÷ %.0f clones per host).\n\n",
			over*1000, r.Options.AgentConc, perHost)
	}

	if cp := r.Control; cp != nil && cp.Single != nil {
		sg := cp.Single
		fmt.Fprintf(w, "### One clone at a time on the idle cluster (%d clones, each created, Running, deleted, gone before the next)\n\n", sg.Clones)
		fmt.Fprintf(w, "| measure | value |\n|---|---|\n")
		fmt.Fprintf(w, "| apply → Running p50 / min / max | %s / %s / %s |\n", ms(sg.ApplyToRunning.P50), ms(sg.ApplyToRunning.Min), ms(sg.ApplyToRunning.Max))
		fmt.Fprintf(w, "| host operations on the clone's host, apply → Running, per clone (sum of their durations) | %s |\n", ms(sg.HostOpsSecondsPerClone))
		fmt.Fprintf(w, "| p50 / host operations (target ≤ %.2f) | %.2f — %s |\n", targetSingleOverOps, sg.Ratio, verdict(sg.Ratio > 0 && sg.Ratio <= targetSingleOverOps))
		if b := r.Baseline; b != nil {
			fmt.Fprintf(w, "| the limit's operations per clone, 1 per host at a time (for comparison) | %s |\n", ms(b.Sequential.PerCloneSeconds))
		}
		fmt.Fprintf(w, "| delete → gone p50 / max | %s / %s |\n", ms(sg.DeleteLatency.P50), ms(sg.DeleteLatency.Max))
		if wb := sg.Writes; wb != nil {
			fmt.Fprintf(w, "| API writes per clone lifetime: VMClone / Events (controller + agents) | %.2f / %.2f |\n", wb.CloneWritesPerClone, wb.EventWritesPerClone)
		}
		fmt.Fprintf(w, "\nHost operations on the clone's host from apply to Running (all %d clones):\n\n", sg.Clones)
		printOps(w, sg.HostOps, float64(sg.Clones))
	}

	printClaims(w, r)

	for _, part := range []struct {
		title string
		l     []shown
	}{{"Issue 15: must show", mustShow(r)}, {"Issue 17: must show (claims)", claimsMustShow(r)}} {
		if len(part.l) == 0 {
			continue
		}
		fmt.Fprintf(w, "### %s\n\n| measure | target | value | verdict |\n|---|---|---|---|\n", part.title)
		for _, x := range part.l {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", x.measure, x.target, x.value, x.verdict)
		}
		fmt.Fprintln(w)
	}

	if s := r.Scale; s != nil {
		fmt.Fprintf(w, "### Controller with %d VMClones present (all Pending: their template matches no host)\n\n", s.Clones)
		fmt.Fprintf(w, "| measure | value |\n|---|---|\n")
		fmt.Fprintf(w, "| create %d clones (%d clients) | %s |\n", s.Clones, r.Options.Creators, sec(s.CreateSeconds))
		fmt.Fprintf(w, "| until the controller reconciled each (Scheduled condition written) | %s (%d) |\n", sec(s.ReconciledSeconds), s.Reconciled)
		fmt.Fprintf(w, "| controller RSS after settling (target < 150 MiB) | %.0f MiB — %s |\n", s.ControllerRSSMiB, verdict(s.ControllerRSSMiB < 150 && s.ControllerPeakRSSMiB < 150))
		fmt.Fprintf(w, "| controller peak RSS during the phase | %.0f MiB |\n", s.ControllerPeakRSSMiB)
		fmt.Fprintf(w, "| controller Go heap in use | %.0f MiB |\n", s.ControllerHeapMiB)
		fmt.Fprintf(w, "| controller CPU for the phase | %.1f s |\n", s.ControllerCPUSeconds)
		fmt.Fprintf(w, "| controller API requests for the phase | %s |\n", counts(s.Phase.ControllerRequests))
		fmt.Fprintf(w, "| kube-apiserver / etcd CPU for the phase | %.1f s / %.1f s |\n", s.Phase.APIServer.CPUSeconds, s.Phase.Etcd.CPUSeconds)
		fmt.Fprintf(w, "| LIST all (one response, %s) p50 / max | %s / %s |\n", mib(int64(s.ListBytes)), ms(s.List.P50), ms(s.List.Max))
		fmt.Fprintf(w, "| LIST all in pages of 500 p50 / max | %s / %s |\n", ms(s.ListPaged.P50), ms(s.ListPaged.Max))
		fmt.Fprintf(w, "| new informer list+watch until synced p50 / max | %s / %s |\n", ms(s.InformerSync.P50), ms(s.InformerSync.Max))
		fmt.Fprintf(w, "| watch event delivery after a patch p50 / p99 (%d) | %.1f ms / %.1f ms |\n", s.WatchDelivery.N, s.WatchDelivery.P50*1000, s.WatchDelivery.P99*1000)
		fmt.Fprintf(w, "| delete all (one DELETE each, %d clients) until gone | %s |\n\n", r.Options.Creators, sec(s.DeleteSeconds))
	}

	if c := r.CloneCost; c != nil && len(c.Methods) > 0 {
		fmt.Fprintf(w, "### Clone cost: one clone of a %s template on %s\n\n", mib(c.TemplateBytes), c.Filesystem)
		fmt.Fprintf(w, "| method | command | time | bytes allocated | file st_blocks | time vs reflink | bytes vs reflink |\n|---|---|---|---|---|---|---|\n")
		ref := c.Methods[0]
		for _, mt := range c.Methods {
			ratioT, ratioB := "1×", "1×"
			if mt.Name != ref.Name {
				ratioT = fmt.Sprintf("%.0f×", mt.Seconds/ref.Seconds)
				if ref.AllocatedBytes > 0 {
					ratioB = fmt.Sprintf("%.0f×", float64(mt.AllocatedBytes)/float64(ref.AllocatedBytes))
				} else {
					ratioB = "∞"
				}
			}
			fmt.Fprintf(w, "| %s | `%s` | %s | %s | %s | %s | %s |\n", mt.Name, mt.Command, ms(mt.Seconds), mib(mt.AllocatedBytes), mib(mt.FileBlocksBytes), ratioT, ratioB)
		}
		fmt.Fprintf(w, "\nAfter a simulated first boot (%s written in 4 KiB blocks at random offsets) the reflink clone allocated %s more (%s).\n%s.\n\n",
			mib(c.FirstBootBytes), mib(c.AfterWritesAllocated), ms(c.AfterWritesSeconds), c.Note)
	}
	for k, v := range r.Errors {
		fmt.Fprintf(w, "**%s failed:** %s\n\n", k, v)
	}
}

// printOps prints a host operations table, per clone over n clones, with the reads' total.
func printOps(w io.Writer, ops map[string]OpSum, n float64) {
	fmt.Fprintf(w, "| operation | read? | count | per clone | total s | mean |\n|---|---|---|---|---|---|\n")
	reads := map[string]bool{}
	for _, k := range hostReadOps {
		reads[k] = true
	}
	row := func(name, read string, o OpSum) {
		mean := "–"
		if o.Count > 0 {
			mean = ms(o.Seconds / float64(o.Count))
		}
		fmt.Fprintf(w, "| %s | %s | %d | %.2f | %.1f | %s |\n", name, read, o.Count, float64(o.Count)/n, o.Seconds, mean)
	}
	for _, k := range sortedKeys(ops) {
		read := ""
		if reads[k] {
			read = "read"
		}
		row(k, read, ops[k])
	}
	row("**host reads** ("+strings.Join(hostReadOps, ", ")+")", "read", hostReads(ops))
	row("**all**", "", sumOps(ops))
	fmt.Fprintln(w)
}

// printWrites prints the API writes of the clones' lifetime by verb and resource.
func printWrites(w io.Writer, cp *ControlPlane) {
	wb, life := cp.Writes, cp.Lifetime
	if wb == nil || life == nil {
		return
	}
	n := float64(wb.Clones)
	fmt.Fprintf(w, "API writes over the clones' lifetime (first create → last gone, %s), controller + agents, per clone. "+
		"Agents: their own transport; controller: the API server's apiserver_request_total minus the agents' and the bench's (the user's %d creates and deletes are not counted).\n\n",
		sec(wb.Seconds), wb.UserWrites.Total())
	fmt.Fprintf(w, "| write | per clone | agents | controller |\n|---|---|---|---|\n")
	all := func(string) bool { return true }
	agents := writesOf(life.AgentRequestsByResource, all)
	ours := RequestCounts{}
	for k, v := range wb.CloneWrites {
		ours[k] = v
	}
	for k, v := range wb.EventWrites {
		ours[k] = v
	}
	for _, k := range sortedKeys(ours) {
		fmt.Fprintf(w, "| %s | %.2f | %.2f | %.2f |\n", k, float64(ours[k])/n, float64(agents[k])/n, float64(ours[k]-agents[k])/n)
	}
	fmt.Fprintf(w, "| **VMClone writes** | %.2f | %.2f | %.2f |\n", wb.CloneWritesPerClone, wb.AgentCloneWritesPerClone, wb.CtrlCloneWritesPerClone)
	fmt.Fprintf(w, "| **Events** | %.2f | %.2f | %.2f |\n", wb.EventWritesPerClone, wb.AgentEventsPerClone, wb.CtrlEventsPerClone)
	for _, k := range sortedKeys(wb.OtherWrites) {
		fmt.Fprintf(w, "| %s (outside the budget) | %.2f | %.2f | %.2f |\n", k, float64(wb.OtherWrites[k])/n, float64(agents[k])/n, float64(wb.OtherWrites[k]-agents[k])/n)
	}
	for _, k := range sortedKeys(wb.HostWrites) {
		fmt.Fprintf(w, "| %s (host heartbeat) | %.2f | %.2f | – |\n", k, float64(wb.HostWrites[k])/n, float64(wb.HostWrites[k])/n)
	}
	fmt.Fprintf(w, "\nHost objects (per host, not per clone): %.1f Lease renewals and %.1f XenHost writes per host per minute, %.2f per clone over this run.\n\n",
		wb.LeaseWritesPerHostMinute, wb.XenHostWritesPerHostMinute, wb.HostWritesPerClone)
}

type shown struct{ measure, target, value, verdict string }

func oursVsLimit(r *Results) []shown {
	cp, b := r.Control, r.Baseline
	if cp == nil {
		return nil
	}
	var out []shown
	if b == nil || b.Parallel.CreateSeconds == 0 {
		out = append(out, shown{"ours / limit, create and delete", fmt.Sprintf("≤ %.2f", targetOursVsLimit), "not measured (-skip-limit)", "–"})
	} else {
		c, d := cp.CreateWallSeconds/b.Parallel.CreateSeconds, cp.DeleteWallSeconds/b.Parallel.DeleteSeconds
		out = append(out,
			shown{fmt.Sprintf("ours / limit, create (%d per host at a time)", b.Parallel.PerHost), fmt.Sprintf("≤ %.2f", targetOursVsLimit),
				fmt.Sprintf("%.2f (%s vs %s)", c, sec(cp.CreateWallSeconds), sec(b.Parallel.CreateSeconds)), verdict(cp.Running == cp.Clones && c <= targetOursVsLimit)},
			shown{fmt.Sprintf("ours / limit, delete (%d per host at a time)", b.Parallel.PerHost), fmt.Sprintf("≤ %.2f", targetOursVsLimit),
				fmt.Sprintf("%.2f (%s vs %s)", d, sec(cp.DeleteWallSeconds), sec(b.Parallel.DeleteSeconds)), verdict(cp.DeleteLatency.N == cp.Clones && d <= targetOursVsLimit)})
	}
	out = append(out, shown{fmt.Sprintf("first apply → last Running, %d clones on %d hosts", cp.Clones, cp.Hosts), "< 60 s",
		sec(cp.CreateWallSeconds), verdict(cp.Running == cp.Clones && cp.CreateWallSeconds < 60)})
	return out
}

// mustShow is issue 15's list, each with its target and verdict.
func mustShow(r *Results) []shown {
	cp := r.Control
	if cp == nil {
		return nil
	}
	var out []shown
	if wb := cp.Writes; wb != nil {
		out = append(out,
			shown{"(a) VMClone writes per clone lifetime, controller + agents", fmt.Sprintf("≤ %d", targetCloneWrites),
				fmt.Sprintf("%.2f (controller %.2f, agents %.2f)", wb.CloneWritesPerClone, wb.CtrlCloneWritesPerClone, wb.AgentCloneWritesPerClone),
				verdict(wb.CloneWritesPerClone <= targetCloneWrites)},
			shown{"(a) + (b) Events per clone lifetime", fmt.Sprintf("≤ %d", targetAllWrites),
				fmt.Sprintf("%.2f (Events %.2f: controller %.2f, agents %.2f)", wb.CloneWritesPerClone+wb.EventWritesPerClone, wb.EventWritesPerClone, wb.CtrlEventsPerClone, wb.AgentEventsPerClone),
				verdict(wb.CloneWritesPerClone+wb.EventWritesPerClone <= targetAllWrites)},
			shown{"(c) host-object writes (Lease renewals, XenHost status)", "per-host heartbeat, no per-clone target",
				fmt.Sprintf("%.2f per clone; %.1f Lease + %.1f XenHost per host per minute", wb.HostWritesPerClone, wb.LeaseWritesPerHostMinute, wb.XenHostWritesPerHostMinute), "–"},
			shown{"other writes (" + strings.Join(resourcesOf(wb.OtherWrites), ", ") + ")", "outside the budget", fmt.Sprintf("%.2f per clone", wb.OtherWritesPerClone), "–"})
	} else {
		out = append(out, shown{"API writes per clone lifetime", fmt.Sprintf("≤ %d (+ Events ≤ %d)", targetCloneWrites, targetAllWrites), "not measured", "–"})
	}
	n := float64(cp.Clones)
	rc, rd := hostReads(cp.Create.HostOps), hostReads(cp.Delete.HostOps)
	out = append(out,
		shown{"host reads per clone, create (lvm report, xl list / lookups, xl info, xl list -l)", fmt.Sprintf("≤ %.1f", targetReadsCreate),
			fmt.Sprintf("%.2f (%d in %.1f s)", float64(rc.Count)/n, rc.Count, rc.Seconds), verdict(float64(rc.Count)/n <= targetReadsCreate)},
		shown{"host reads per clone, delete", fmt.Sprintf("≤ %.1f", targetReadsDelete),
			fmt.Sprintf("%.2f (%d in %.1f s)", float64(rd.Count)/n, rd.Count, rd.Seconds), verdict(float64(rd.Count)/n <= targetReadsDelete)})
	out = append(out, oursVsLimit(r)...)
	if sg := cp.Single; sg != nil {
		out = append(out, shown{"single clone on an idle host: apply → Running p50 / its host operations", fmt.Sprintf("≤ %.2f (within 10 %%)", targetSingleOverOps),
			fmt.Sprintf("%.2f (%s / %s)", sg.Ratio, ms(sg.ApplyToRunning.P50), ms(sg.HostOpsSecondsPerClone)), verdict(sg.Ratio > 0 && sg.Ratio <= targetSingleOverOps)})
	}
	return out
}

// resourcesOf lists the resources of request keys, each once.
func resourcesOf(r RequestCounts) []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range sortedKeys(r) {
		if _, res := splitKey(k); !seen[res] {
			seen[res] = true
			out = append(out, res)
		}
	}
	if len(out) == 0 {
		out = []string{"none"}
	}
	return out
}
