package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/controllers"
)

// managerOptions are the manager role's flags, named as in kubebuilder's scaffold.
type managerOptions struct {
	metricsAddr      string
	probeAddr        string
	leaderElect      bool
	leaderElectionNS string
	leaseNamespace   string
	heartbeatGrace   time.Duration
	rescheduleAfter  time.Duration
	fenceMargin      time.Duration
	maxLostFraction  float64
	workers          int
	maxImports       int
	memoryLimit      string
	memoryLimitSet   bool // --memory-limit given on the command line
	// sharedProcess lets several managers run in one process (a test of two managers), where
	// controller names repeat.
	sharedProcess bool
}

// defaultMemoryLimit is the manager's default Go soft memory limit (debug.SetMemoryLimit): with
// GOGC alone the heap is allowed to grow to twice what is live before the GC runs, so a
// controller holding 10,000 VMClones (about 60 MiB live) sat at about 190 MiB resident. The
// limit makes the GC run earlier as the process nears it; it is soft (the heap grows past it
// when that much is live, at the price of more GC work), so it must stay above the live heap
// of the fleet: about 7 MiB per 1,000 VMClones plus 20 MiB. It is half the Deployment's
// memory limit (config/manager/manager.yaml); raise both together.
const defaultMemoryLimit = "128Mi"

func managerFlags(fs *flag.FlagSet) *managerOptions {
	o := &managerOptions{}
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address the metrics endpoint binds to; 0 disables it.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "Elect a leader so only one manager acts at a time. Two managers that both act bind clones and allocate MACs independently and can hand out the same MAC twice: turn it off (--leader-elect=false) only for a single manager on an API server of its own.")
	fs.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease. Default: the pod's namespace; outside a pod, --lease-namespace (created if missing).")
	leaseFlags(fs, &o.leaseNamespace)
	fs.DurationVar(&o.heartbeatGrace, "heartbeat-grace", controllers.DefaultHeartbeatGrace, "How long the controller may go without seeing a host's heartbeat Lease renewed (measured on the controller's clock, whatever the host's clock says) before the host's clones are marked NodeLost.")
	fs.DurationVar(&o.rescheduleAfter, "node-lost-reschedule-after", controllers.DefaultNodeLostRescheduleAfter, "How long a host must have been lost (after --heartbeat-grace) before clones with spec.placement.onNodeLost: Reschedule move to another host. With --heartbeat-grace it must cover the hostagent's default --fence-after (60s) plus --fence-margin; a host whose agent fences later holds its clones until its own fence-after plus --fence-margin.")
	fs.DurationVar(&o.fenceMargin, "fence-margin", vmv1alpha1.DefaultFenceMargin, "What the controller adds to a lost host's fence-after (the time after its last renewal at which its hostagent stops the domains of clones that reschedule) before it starts those clones elsewhere: the agent's xl destroy plus the API server's latency.")
	fs.Float64Var(&o.maxLostFraction, "reschedule-max-lost-fraction", controllers.DefaultRescheduleMaxLostFraction, "Pause all rescheduling while at least this share of the hosts is lost at once (an outage on the control plane's side, not host failures). 1 pauses only when every host is lost.")
	fs.StringVar(&o.memoryLimit, "memory-limit", defaultMemoryLimit, "Go soft memory limit (a quantity: 128Mi, 1Gi; 0 for none): the GC works harder as the process nears it instead of letting the heap double. Set it above the fleet's live heap (about 7 MiB per 1,000 VMClones plus 20 MiB) and below the container's memory limit. When the flag is not given and GOMEMLIMIT is set, GOMEMLIMIT applies.")
	fs.IntVar(&o.maxImports, "max-parallel-imports", controllers.DefaultMaxParallelImports, "How many hosts may import VMTemplate sources (spec.source) at the same time, fleet-wide; the others wait (status.hosts[].import.phase Waiting).")
	fs.IntVar(&o.workers, "max-concurrent-reconciles", controllers.DefaultMaxConcurrentReconciles, "Workers per controller. Placement is serialized inside the clone controller; more workers parallelize the API writes.")
	return o
}

func leaseFlags(fs *flag.FlagSet, ns *string) {
	fs.StringVar(ns, "lease-namespace", controllers.DefaultLeaseNamespace, "Namespace of the hosts' heartbeat Leases (one per host, named after it).")
}

// setMemoryLimit applies --memory-limit; explicit says whether the flag was given (else an
// environment GOMEMLIMIT, which the Go runtime has applied already, wins over the default).
func setMemoryLimit(limit string, explicit bool) error {
	if !explicit && os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	q, err := resource.ParseQuantity(limit)
	if err != nil {
		return fmt.Errorf("--memory-limit %q: %w", limit, err)
	}
	if q.Sign() <= 0 {
		debug.SetMemoryLimit(math.MaxInt64) // none
		return nil
	}
	debug.SetMemoryLimit(q.Value())
	return nil
}

func runManager(ctx context.Context, o *managerOptions) error {
	if err := setMemoryLimit(o.memoryLimit, o.memoryLimitSet); err != nil {
		return err
	}
	if err := o.controllerOptions().Validate(); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	if err := prepareLeaderElection(ctx, cfg, o); err != nil {
		return err
	}
	mgr, err := newManager(cfg, o)
	if err != nil {
		return err
	}
	ctrl.Log.WithName("manager").Info("starting manager", "leaderElection", o.leaderElect, "leaderElectionNamespace", o.leaderElectionNS)
	return mgr.Start(ctx)
}

// inClusterNamespaceFile is where a pod finds its namespace; controller-runtime's leader
// election reads it when no namespace is given.
var inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// prepareLeaderElection picks the leader election namespace when none is given and the manager
// runs outside a pod (where controller-runtime would refuse to start): the lease namespace,
// which the hosts' heartbeats use anyway, created if missing so a manager run from a laptop
// against a cluster (the README's --use-existing-cluster path) elects rather than acts alone.
func prepareLeaderElection(ctx context.Context, cfg *rest.Config, o *managerOptions) error {
	if !o.leaderElect || o.leaderElectionNS != "" {
		return nil
	}
	if _, err := os.Stat(inClusterNamespaceFile); err == nil {
		return nil // in a pod: its namespace
	}
	o.leaderElectionNS = o.leaseNamespace
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return fmt.Errorf("client for the leader election namespace: %w", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.leaderElectionNS}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create leader election namespace %s (or name an existing one with --leader-election-namespace): %w", o.leaderElectionNS, err)
	}
	return nil
}

// newManager builds the controller manager on cfg; the playground calls it with the embedded
// API server's config.
func newManager(cfg *rest.Config, o *managerOptions) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        newScheme(),
		Cache:                         controllers.CacheOptions(),
		Metrics:                       metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              "xenclone-manager.vm.xenclone.dev",
		LeaderElectionNamespace:       o.leaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       ptrTo(10 * time.Second),
		Controller:                    config.Controller{SkipNameValidation: ptrTo(o.sharedProcess)},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if err := controllers.SetupWithManager(mgr, o.controllerOptions()); err != nil {
		return nil, fmt.Errorf("set up controllers: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add ready check: %w", err)
	}
	return mgr, nil
}

// controllerOptions are the controllers' options as the flags set them.
func (o *managerOptions) controllerOptions() controllers.Options {
	return controllers.Options{
		LeaseNamespace: o.leaseNamespace, HeartbeatGrace: o.heartbeatGrace,
		NodeLostRescheduleAfter: o.rescheduleAfter, FenceMargin: o.fenceMargin,
		RescheduleMaxLostFraction: o.maxLostFraction, MaxConcurrentReconciles: o.workers, MaxParallelImports: o.maxImports,
	}
}

func ptrTo[T any](v T) *T { return &v }
