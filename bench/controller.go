package main

// The "controller" role, used only with -profile: the same controllers.SetupWithManager the
// `xenclone manager` binary runs (no leader election, default options), in its own process,
// with controller-runtime's pprof endpoint on, so the bench can take CPU and heap profiles of
// the controller while it works. Without -profile the bench runs the real binary.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/xenclone/xenclone/controllers"
)

func controllerMain(args []string) int {
	fs := flag.NewFlagSet("bench controller", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server")
	metrics := fs.String("metrics-bind-address", "0", "metrics address")
	pprof := fs.String("pprof-bind-address", "0", "pprof address")
	workers := fs.Int("max-concurrent-reconciles", 0, "controllers.Options.MaxConcurrentReconciles (0: the default, 4)")
	strip := fs.Bool("strip-managed-fields", false, "Experiment: drop metadata.managedFields from every cached object (cache.TransformStripManagedFields).")
	_ = fs.Parse(args)
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapErrorLevel)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg.QPS, cfg.Burst = -1, -1
	// The manager's cache options (controllers.CacheOptions: StripUnread), so a profile shows
	// the heap the shipped binary has.
	opts := ctrl.Options{
		Scheme: newScheme(), Metrics: metricsserver.Options{BindAddress: *metrics},
		HealthProbeBindAddress: "0", PprofBindAddress: *pprof, Cache: controllers.CacheOptions(),
	}
	if *strip {
		opts.Cache.DefaultTransform = cache.TransformStripManagedFields()
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err == nil {
		err = controllers.SetupWithManager(mgr, controllers.Options{LeaseNamespace: leaseNamespace, MaxConcurrentReconciles: *workers})
	}
	if err == nil {
		err = mgr.Start(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		return 1
	}
	return 0
}
