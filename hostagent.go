package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/xenclone/xenclone/hostagent"
)

// hostagentOptions are the node agent's flags.
type hostagentOptions struct {
	nodeName      string
	metricsAddr   string
	probeAddr     string
	commandPrefix string
}

func hostagentFlags(fs *flag.FlagSet) *hostagentOptions {
	o := &hostagentOptions{}
	fs.StringVar(&o.nodeName, "node-name", os.Getenv("NODE_NAME"), "This host's Kubernetes node name (default $NODE_NAME, from the downward API).")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8090", "Address the metrics endpoint binds to; 0 disables it.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8091", "Address the health and readiness probes bind to.")
	fs.StringVar(&o.commandPrefix, "command-prefix", "nsenter -t 1 -m -u -i -n -p --", "Prefix for host commands (lvm, xl, losetup, mount), so they run in the host's namespaces.")
	return o
}

func runHostAgent(ctx context.Context, o *hostagentOptions) error {
	if o.nodeName == "" {
		return errors.New("--node-name is empty: set NODE_NAME from the downward API (spec.nodeName) or pass --node-name")
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 newScheme(),
		Cache:                  hostagent.CacheOptions(o.nodeName),
		Metrics:                metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress: o.probeAddr,
	})
	if err != nil {
		return fmt.Errorf("create agent manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add ready check: %w", err)
	}
	ctrl.Log.WithName("hostagent").Info("starting host agent", "node", o.nodeName)
	return mgr.Start(ctx)
}
