package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/command"
	"github.com/xenclone/xenclone/hostagent/guest"
	"github.com/xenclone/xenclone/hostagent/guest/seed"
	"github.com/xenclone/xenclone/hostagent/hostnet"
	"github.com/xenclone/xenclone/hostagent/imageimport"
	"github.com/xenclone/xenclone/hostagent/lvm"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// hostagentOptions are the node agent's flags.
type hostagentOptions struct {
	nodeName       string
	metricsAddr    string
	probeAddr      string
	commandPrefix  string
	hostRoot       string
	stateDir       string
	lvmBinary      string
	lvmConfig      string
	xlBinary       string
	seedFormat     string
	leaseNamespace string
	shutdownGrace  time.Duration
	commandTimeout time.Duration
	fenceAfter     time.Duration
	maxConcurrent  int
	qemuImg        string
	importStall    time.Duration
}

func hostagentFlags(fs *flag.FlagSet) *hostagentOptions {
	o := &hostagentOptions{}
	fs.StringVar(&o.nodeName, "node-name", os.Getenv("NODE_NAME"), "This host's Kubernetes node name (default $NODE_NAME, from the downward API).")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8090", "Address the metrics endpoint binds to; 0 disables it.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8091", "Address the health and readiness probes bind to.")
	fs.StringVar(&o.commandPrefix, "command-prefix", "nsenter -t 1 -m -u -i -n -p -- /usr/bin/env", "Prefix for host commands (lvm, xl, losetup, mount), so they run in the host's namespaces; empty runs them directly. "+
		"It ends in the host's /usr/bin/env because the image's nsenter is busybox, which would run its own applet of a tool's name (ip, mount, losetup) instead of the host's.")
	fs.StringVar(&o.hostRoot, "host-root", "/proc/1/root", "Where the agent process sees the host's filesystem (\"\" when it runs on the host itself).")
	fs.StringVar(&o.stateDir, "state-dir", guest.DefaultStateDir, "Host folder for domain configs, cloud-init seeds and guest mounts.")
	fs.StringVar(&o.lvmBinary, "lvm", "lvm", "lvm binary on the host.")
	fs.StringVar(&o.lvmConfig, "lvm-config", "", "Extra lvm --config text, e.g. global{wait_for_locks=0} to fail fast on lock contention.")
	fs.StringVar(&o.xlBinary, "xl", "xl", "xl binary on the host.")
	fs.StringVar(&o.seedFormat, "seed-format", string(seed.VFAT), "Filesystem of the cloud-init seed images: vfat or iso9660.")
	leaseFlags(fs, &o.leaseNamespace)
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", 60*time.Second, "How long a guest may take to shut down before its domain is destroyed.")
	fs.DurationVar(&o.commandTimeout, "command-timeout", 5*time.Minute, "Bound on each slow host operation (snapshot, guest preparation, xl create); a hung tool then fails the step instead of holding the clone.")
	fs.DurationVar(&o.fenceAfter, "fence-after", vmv1alpha1.DefaultFenceAfter, "When the agent could not renew its heartbeat Lease for this long, it destroys the domains of its clones with spec.placement.onNodeLost: Reschedule, which the controller may then start elsewhere (at least three renewals, 3 × 10s). Written on the Lease; the controller waits this plus its --fence-margin before it moves a clone.")
	fs.IntVar(&o.maxConcurrent, "max-concurrent", 4, "Clones prepared in parallel on this host.")
	fs.StringVar(&o.qemuImg, "qemu-img", imageimport.DefaultQemuImg, "The host's qemu-img (qemu-utils), which converts qcow2 template sources.")
	fs.DurationVar(&o.importStall, "import-stall-timeout", imageimport.DefaultStallTimeout, "A template import fails (ImportStalled) when its server sends nothing for this long.")
	return o
}

// realHost wires the host boundary to the host's own tools, all run through one prefix (in the
// host's namespaces) with a C locale so their messages classify the same everywhere.
func realHost(o *hostagentOptions) (hostagent.Host, *guest.Preparer) {
	runner := command.Runner{Prefix: strings.Fields(o.commandPrefix), Env: append(os.Environ(), "LC_ALL=C"),
		Observe: hostagent.ObserveCommand}
	prep := &guest.Preparer{Runner: runner, StateDir: o.stateDir, HostRoot: o.hostRoot}
	xl := &xen.Driver{Runner: runner, XL: o.xlBinary, Log: ctrl.Log.WithName("xl")}
	storage := hostagent.LVMStorage{LVM: &lvm.Client{Runner: runner, Binary: o.lvmBinary, Config: o.lvmConfig}, HostRoot: o.hostRoot}
	return hostagent.Host{
		Storage: storage,
		Images:  storage,
		// qcow2 sources are downloaded into scratch files beside the agent's other state.
		Importer: &imageimport.Importer{Runner: runner, QemuImg: o.qemuImg, ScratchDir: filepath.Join(o.stateDir, "imports"),
			HostRoot: o.hostRoot, StallTimeout: o.importStall},
		Guest:      hostagent.GuestPreparer{P: prep, SeedFormat: seed.Format(o.seedFormat)},
		Hypervisor: xl,
		Control:    hostagent.NewDomainControl(xl, &xen.Xenstore{Runner: runner, Log: ctrl.Log.WithName("xenstore")}),
		Guests:     hostagent.NewGuestSource(&xen.Xenstore{Runner: runner}, &hostnet.Table{Runner: runner}),
		// xl reads the config in the host's mount namespace: the folder has the same path
		// inside the container (hostPath mount) and on the host.
		ConfigDir: filepath.Join(o.stateDir, "domains"),
	}, prep
}

func runHostAgent(ctx context.Context, o *hostagentOptions) error {
	if o.nodeName == "" {
		return errors.New("--node-name is empty: set NODE_NAME from the downward API (spec.nodeName) or pass --node-name")
	}
	agentOpts := hostagent.Options{
		NodeName: o.nodeName, LeaseNamespace: o.leaseNamespace, FenceAfter: o.fenceAfter,
		ShutdownGrace: o.shutdownGrace, CommandTimeout: o.commandTimeout, MaxConcurrent: o.maxConcurrent, AgentVersion: version,
	}
	if err := agentOpts.Validate(); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	host, prep := realHost(o)
	agentOpts.Host = host
	// Mounts and loop devices left by an agent that died mid-preparation are ours to undo
	// before any clone is looked at.
	if err := prep.Sweep(ctx); err != nil {
		return fmt.Errorf("sweep stale guest mounts and loop devices: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 newScheme(),
		Cache:                  hostagent.CacheOptions(o.nodeName),
		MapperProvider:         hostagent.MapperProvider,
		Metrics:                metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress: o.probeAddr,
	})
	if err != nil {
		return fmt.Errorf("create agent manager: %w", err)
	}
	if err := hostagent.SetupWithManager(mgr, agentOpts); err != nil {
		return fmt.Errorf("set up agent: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add ready check: %w", err)
	}
	ctrl.Log.WithName("hostagent").Info("starting host agent", "node", o.nodeName, "stateDir", o.stateDir)
	return mgr.Start(ctx)
}
