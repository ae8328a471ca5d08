package soak

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// One envtest control plane for the package. The API server's certificates live in a folder we
// own, so a restarted API server serves the same CA on the same port and every client (the
// managers', the test's) reconnects on its own; etcd is never restarted and keeps the data.

var (
	soakDuration   = flag.Duration("soak.duration", 0, "length of the chaos phase; 0 runs the short CI version (~60s of chaos, under 3 minutes in all)")
	soakSeed       = flag.Int64("soak.seed", 0, "random seed; 0 picks one from the clock (printed, so a run can be replayed)")
	soakHosts      = flag.Int("soak.hosts", 3, "simulated Xen hosts")
	soakClones     = flag.Int("soak.clones", 18, "most standalone clones alive at once")
	soakReschedule = flag.String("soak.reschedule", "", "true/false: some clones opt in to Reschedule off a lost host (default true)")
	soakSkew       = flag.Duration("soak.skew", 5*time.Minute, "the first host's clock runs this far ahead and the second's this far behind (0: all clocks right)")
)

var (
	env      *envtest.Environment
	cfg      *rest.Config
	scheme   = runtime.NewScheme()
	k8s      client.Client
	xlBinary string
	workDir  string
)

const leaseNamespace = "xenclone-system"

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		msg := "KUBEBUILDER_ASSETS is not set: the soak needs kube-apiserver and etcd; run it with `make test` or `make soak`"
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "FAIL:", msg)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "SKIP (loudly):", msg)
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	level := zapcore.Level(3) // quiet: the soak provokes errors on purpose
	if os.Getenv("XENCLONE_TEST_LOG") != "" {
		level = zapcore.Level(-1)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(level)))
	_ = clientgoscheme.AddToScheme(scheme)
	_ = vmv1alpha1.AddToScheme(scheme)

	var err error
	workDir, err = os.MkdirTemp("", "xenclone-soak-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)

	xlBinary = filepath.Join(workDir, "xl")
	if out, err := exec.Command("go", "build", "-o", xlBinary, "../xen/xlsim/cmd/xl").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build xl simulator: %v\n%s", err, out)
		return 1
	}

	env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	certDir := filepath.Join(workDir, "apiserver-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.ControlPlane.GetAPIServer().CertDir = certDir
	// kube-apiserver drains gracefully for a long time with watches open; past this it is
	// SIGKILLed, which is as good a restart for the soak.
	env.ControlPlane.GetAPIServer().StopTimeout = 5 * time.Second
	// Two shared cores and a busy machine: give a (re)starting API server time.
	env.ControlPlane.GetAPIServer().StartTimeout = 90 * time.Second
	cfg, err = env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	cfg.Timeout = 20 * time.Second

	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNamespace}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// restartAPIServer stops the kube-apiserver and starts it again on the same port with the same
// certificates; etcd keeps running with the data.
func restartAPIServer(down time.Duration) error {
	api := env.ControlPlane.GetAPIServer()
	if err := api.Stop(); err != nil && !strings.Contains(err.Error(), "timeout waiting for process") {
		return fmt.Errorf("stop kube-apiserver: %w", err)
	}
	time.Sleep(down)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		// A SIGKILLed server may hold its port a moment longer; a failed start is stopped and
		// tried again.
		if err = api.Start(); err == nil {
			return nil
		}
		_ = api.Stop()
		time.Sleep(2 * time.Second)
	}
	return fmt.Errorf("start kube-apiserver again: %w", err)
}
