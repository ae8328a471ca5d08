// Package testenv starts the envtest control plane (a real kube-apiserver + etcd, built by
// hack/envtest-assets.sh) with xenclone's CRDs for the test suites, and applies the house rule
// for tests that need it: without the binaries they skip loudly, except under CI=true, where
// they fail.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Available reports whether KUBEBUILDER_ASSETS names the control plane binaries. When it does
// not, it says so on stderr for the suite `what`; under CI=true it exits the test binary with
// status 1, because nothing may skip in CI.
func Available(what string) bool {
	if os.Getenv("KUBEBUILDER_ASSETS") != "" {
		return true
	}
	msg := fmt.Sprintf("KUBEBUILDER_ASSETS is not set: %s needs kube-apiserver and etcd; run `make test` or KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go test ...", what)
	if os.Getenv("CI") == "true" {
		fmt.Fprintln(os.Stderr, "FAIL:", msg)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "SKIP (loudly):", msg)
	return false
}

// Need skips t when the control plane is not there. A suite's TestMain still runs its unit
// tests then (an early exit would skip them with the rest, silently); under CI=true Available
// has already failed the binary.
func Need(t testing.TB) {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("SKIP (loudly): needs KUBEBUILDER_ASSETS (the envtest control plane); run `make test`")
	}
}

// Scheme has the Kubernetes built-in kinds and xenclone's.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := vmv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Env is a running control plane.
type Env struct {
	*envtest.Environment
	Config *rest.Config
	Client client.Client
	Scheme *k8sruntime.Scheme
}

// Start starts kube-apiserver and etcd and installs the CRDs from config/crd/bases.
func Start() (*Env, error) {
	return start(&envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	})
}

func start(env *envtest.Environment) (*Env, error) {
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	scheme := Scheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("client: %w", err)
	}
	return &Env{Environment: env, Config: cfg, Client: c, Scheme: scheme}, nil
}

// Stop stops the control plane, reporting a failure on stderr.
func (e *Env) Stop() {
	if err := e.Environment.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
}

// repoRoot is the module root, found from this file's place in it (hack/testenv).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
