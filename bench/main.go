// Command bench measures xenclone (issue 10, DESIGN §6): the control plane at scale against a
// real kube-apiserver + etcd with simulated Xen hosts, the same host operations run bare as the
// limit, the controller with 10,000 VMClones present, and the disk cost of a clone by reflink
// against a full copy on real storage. It prints markdown tables and writes JSON to
// bench/results/<name>.json. Run it with `make bench` (hack/bench.sh).
//
// Processes: the controller is the real `xenclone manager` binary, and the node agents (one
// controller-runtime manager per simulated host, as a DaemonSet pod would have) run together in
// a second process, this binary's "agents" role; both are measured from /proc (CPU seconds of
// the process and of its waited-for children, peak RSS from VmHWM).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// Options are the bench's knobs; every default is documented in docs/performance.md.
type Options struct {
	Name      string
	Results   string
	Xenclone  string
	Clones    int
	Hosts     int
	Scale     int
	Latency   Latency
	AgentConc int
	// GuestAgents: every simulated guest runs a guest agent that reports its address once
	// booted (one xenstore read and one status write more per clone).
	GuestAgents bool
	CtrlConc    int
	Creators    int
	Timeout     time.Duration
	CloneCost   bool
	CostSize    int64
	CostDir     string
	SkipScale   bool
	SkipCP      bool
	Work        string
	Keep        bool
	Profile     bool
	Strip       bool
	Workers     int
	NoLimit     bool
	// Single clones are created one at a time on the idle cluster after the burst
	// (SkipSingle or 0 skips that run).
	Single     int
	SkipSingle bool
	// The claims part (issue 17): a pool of ClaimPool warm members (ClaimState Running or
	// Paused, ClaimMaxMaking members made at once, 0: the pool's default), Claims claims at
	// once, then ClaimCold cold claims.
	SkipClaims     bool
	ClaimPool      int
	Claims         int
	ClaimState     string
	ClaimMaxMaking int
	ClaimCold      int
	// ClaimsPaced claims are made one after another once the pool is full again.
	ClaimsPaced int
}

// Latency is what each simulated host operation takes. Defaults are the simulator's realistic
// values (hostagent/sim: sim.RealisticStorageLatency, the guest preparer and xl create), whose
// sources are research/host-facts.md §2.4 (Qubes OS on Xen + LVM: 0.2–1 s per LVM command,
// snapshots 1–2 s) and the lab's measured mount/edit/umount and xl timings.
type Latency struct {
	Report, Create, Change, Remove time.Duration
	Prepare                        time.Duration
	XLCreate, XLShutdown           time.Duration
}

func defaultOptions() Options {
	return Options{
		Name: "default", Results: "bench/results", Clones: 1000, Hosts: 20, Scale: 10000,
		Latency: Latency{Report: 150 * time.Millisecond, Create: 900 * time.Millisecond, Change: 300 * time.Millisecond,
			Remove: 400 * time.Millisecond, Prepare: 1200 * time.Millisecond, XLCreate: 500 * time.Millisecond, XLShutdown: time.Second},
		AgentConc: 4, CtrlConc: 4, Creators: 16, Timeout: 10 * time.Minute,
		CloneCost: true, CostSize: 2 << 30, Single: 10,
		ClaimPool: 200, Claims: 200, ClaimState: "Running", ClaimCold: 10, ClaimsPaced: 30,
	}
}

func (o *Options) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.Name, "name", o.Name, "Result name: bench/results/<name>.json.")
	fs.StringVar(&o.Results, "results", o.Results, "Folder for the JSON results.")
	fs.StringVar(&o.Xenclone, "xenclone", o.Xenclone, "The xenclone binary (manager role, xl simulator); hack/bench.sh builds it.")
	fs.IntVar(&o.Clones, "clones", o.Clones, "Clones created in the control-plane run.")
	fs.IntVar(&o.Hosts, "hosts", o.Hosts, "Simulated Xen hosts.")
	fs.IntVar(&o.Scale, "scale", o.Scale, "VMClones present for the memory and list/watch measurement (0 skips it).")
	fs.DurationVar(&o.Latency.Report, "lvm-report", o.Latency.Report, "Simulated lvs/vgs report.")
	fs.DurationVar(&o.Latency.Create, "lvm-create", o.Latency.Create, "Simulated lvcreate -s.")
	fs.DurationVar(&o.Latency.Change, "lvm-change", o.Latency.Change, "Simulated lvchange (tag, read-only, extend).")
	fs.DurationVar(&o.Latency.Remove, "lvm-remove", o.Latency.Remove, "Simulated lvremove.")
	fs.DurationVar(&o.Latency.Prepare, "guest-prepare", o.Latency.Prepare, "Simulated attach + scrub + detach of a guest disk.")
	fs.DurationVar(&o.Latency.XLCreate, "xl-create", o.Latency.XLCreate, "Simulated xl create (the xl simulator's delay.create).")
	fs.DurationVar(&o.Latency.XLShutdown, "xl-shutdown", o.Latency.XLShutdown, "Simulated guest shutdown after xl shutdown.")
	fs.IntVar(&o.AgentConc, "agent-concurrency", o.AgentConc, "Each agent's MaxConcurrent (the agent's default is 4).")
	fs.IntVar(&o.CtrlConc, "controller-concurrency", o.CtrlConc, "Informational: the manager binary runs with its default MaxConcurrentReconciles (4).")
	fs.IntVar(&o.Creators, "creators", o.Creators, "Parallel clients creating (and deleting) the clones, like a burst of kubectl apply.")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "Give up waiting for a phase after this long.")
	fs.BoolVar(&o.CloneCost, "clone-cost", o.CloneCost, "Measure reflink vs full copy on a loop-mounted XFS (needs root).")
	fs.Int64Var(&o.CostSize, "clone-cost-size", o.CostSize, "Template size in bytes for the clone-cost measurement.")
	fs.StringVar(&o.CostDir, "clone-cost-dir", o.CostDir, "Folder for the clone-cost backing file (default: the work folder).")
	fs.BoolVar(&o.SkipScale, "skip-scale", o.SkipScale, "Skip the 10,000-VMClone measurement.")
	fs.BoolVar(&o.GuestAgents, "guest-agents", o.GuestAgents, "Every simulated guest runs a guest agent that reports its address (status.guest) once booted.")
	fs.BoolVar(&o.SkipCP, "skip-control-plane", o.SkipCP, "Skip the control-plane and baseline runs.")
	fs.StringVar(&o.Work, "work", o.Work, "Work folder (default: a new temp folder, removed at the end).")
	fs.BoolVar(&o.Keep, "keep", o.Keep, "Keep the work folder (logs of the manager and agents).")
	fs.BoolVar(&o.Strip, "strip-managed-fields", o.Strip, "Experiment (implies -profile): the controller's cache drops metadata.managedFields (cache.TransformStripManagedFields).")
	fs.IntVar(&o.Workers, "controller-workers", 0, "Experiment (implies -profile): the controller's MaxConcurrentReconciles (the manager binary has no flag for it; default 4).")
	fs.BoolVar(&o.NoLimit, "skip-limit", false, "Skip the limit (bare host operations) runs.")
	fs.IntVar(&o.Single, "single", o.Single, "After the burst, create this many clones one at a time on the idle cluster (each to Running, then deleted) and compare apply → Running with its host operations (0 skips it).")
	fs.BoolVar(&o.SkipSingle, "skip-single", o.SkipSingle, "Skip the single-clone run (same as -single 0).")
	fs.BoolVar(&o.SkipClaims, "skip-claims", o.SkipClaims, "Skip the claims part (a warm pool, a burst of VMClaims against it, the refill, cold claims).")
	fs.IntVar(&o.ClaimPool, "claim-pool", o.ClaimPool, "Warm members of the claims part's VMClonePool.")
	fs.IntVar(&o.Claims, "claims", o.Claims, "VMClaims created at once (by -creators clients) against the full pool (0 skips the part).")
	fs.StringVar(&o.ClaimState, "claim-warm-state", o.ClaimState, "The pool's spec.warmState: Running or Paused (Paused needs the host agent's pause support).")
	fs.IntVar(&o.ClaimMaxMaking, "claim-max-making", o.ClaimMaxMaking, "The pool's spec.maxMaking (0: not set, the CRD default 10).")
	fs.IntVar(&o.ClaimsPaced, "claims-paced", o.ClaimsPaced, "Claims made one after another (each Ready before the next) once the pool is full again, timed like the burst (0 skips them).")
	fs.IntVar(&o.ClaimCold, "claim-cold", o.ClaimCold, "Cold claims (spec.templateRef) after the refill, timed the same way (0 skips them).")
	fs.BoolVar(&o.Profile, "profile", o.Profile, "Run the controller as this binary's controller role (same controllers.SetupWithManager) with pprof on, and save 30 s CPU profiles of the create and scale phases and a heap profile at scale to bench/results/<name>-*.pprof.")
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "agents" {
		os.Exit(agentsMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "controller" {
		os.Exit(controllerMain(os.Args[2:]))
	}
	o := defaultOptions()
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	o.flags(fs)
	_ = fs.Parse(os.Args[1:])
	o.Profile = o.Profile || o.Strip || o.Workers > 0
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapErrorLevel)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Results is the JSON written to bench/results/<name>.json.
type Results struct {
	Name      string            `json:"name"`
	Started   time.Time         `json:"started"`
	Machine   Machine           `json:"machine"`
	Options   Options           `json:"options"`
	Control   *ControlPlane     `json:"controlPlane,omitempty"`
	Baseline  *Baseline         `json:"baseline,omitempty"`
	Scale     *ScaleResult      `json:"scale,omitempty"`
	CloneCost *CloneCost        `json:"cloneCost,omitempty"`
	Claims    *ClaimsResult     `json:"claims,omitempty"`
	Errors    map[string]string `json:"errors,omitempty"`
}

func run(ctx context.Context, o Options) error {
	res := &Results{Name: o.Name, Started: time.Now().UTC(), Options: o, Machine: machine(), Errors: map[string]string{}}
	work := o.Work
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "xenclone-bench-"); err != nil {
			return err
		}
		if !o.Keep {
			defer os.RemoveAll(work)
		}
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	logf("work folder %s; load %s", work, res.Machine.LoadBefore)

	if !o.SkipCP {
		if o.Xenclone == "" {
			return fmt.Errorf("-xenclone is empty: run through hack/bench.sh, which builds the binary")
		}
		// The limit first, on an idle control plane: the same host operations, no controller.
		if !o.NoLimit {
			b, err := runBaseline(ctx, o, filepath.Join(work, "baseline"))
			if err != nil {
				res.Errors["baseline"] = err.Error()
				logf("baseline: %v", err)
			}
			res.Baseline = b
		}
		cp, sc, err := runControlPlane(ctx, o, work, res)
		if err != nil {
			res.Errors["controlPlane"] = err.Error()
			logf("control plane: %v", err)
		}
		res.Control, res.Scale = cp, sc
	}
	if o.CloneCost {
		dir := o.CostDir
		if dir == "" {
			dir = work
		}
		cc, err := runCloneCost(ctx, dir, o.CostSize)
		if err != nil {
			res.Errors["cloneCost"] = err.Error()
			logf("clone cost: %v", err)
		}
		res.CloneCost = cc
	}
	res.Machine.LoadAfter = loadavg()

	printTables(os.Stdout, res)
	if err := os.MkdirAll(o.Results, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(o.Results, o.Name+".json")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return err
	}
	logf("wrote %s", path)
	if len(res.Errors) > 0 {
		return fmt.Errorf("%d part(s) failed: %v", len(res.Errors), res.Errors)
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}
