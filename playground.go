package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	ctrl "sigs.k8s.io/controller-runtime"
)

// playgroundOptions are the playground role's flags.
type playgroundOptions struct {
	dir                string
	useExistingCluster bool
	samples            []string
	manager            managerOptions
}

func playgroundFlags(fs *flag.FlagSet) *playgroundOptions {
	o := &playgroundOptions{}
	fs.StringVar(&o.dir, "dir", ".playground", "Folder for the playground's kubeconfig.")
	fs.BoolVar(&o.useExistingCluster, "use-existing-cluster", os.Getenv("USE_EXISTING_CLUSTER") == "true",
		"Install the CRDs into the cluster of $KUBECONFIG and run the manager against it instead of starting an embedded control plane.")
	fs.StringVar(&o.manager.metricsAddr, "metrics-bind-address", "127.0.0.1:8080", "Manager metrics address; 0 disables it.")
	fs.StringVar(&o.manager.probeAddr, "health-probe-bind-address", "127.0.0.1:8081", "Manager probe address.")
	o.samples = []string{"config/samples/vm_v1alpha1_vmtemplate.yaml"}
	return o
}

// runPlayground starts a real kube-apiserver + etcd (the envtest binaries built by
// hack/envtest-assets.sh), installs the CRDs, applies the sample template, writes a kubeconfig
// and runs the manager until interrupted.
func runPlayground(ctx context.Context, o *playgroundOptions) error {
	log := ctrl.Log.WithName("playground")
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		UseExistingCluster:    &o.useExistingCluster,
	}
	if !o.useExistingCluster && os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return fmt.Errorf("KUBEBUILDER_ASSETS is not set: start the playground with `make run`, which builds kube-apiserver and etcd first")
	}
	log.Info("starting control plane", "existingCluster", o.useExistingCluster)
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			log.Error(err, "stop control plane")
		}
	}()

	kubeconfig := os.Getenv("KUBECONFIG")
	if !o.useExistingCluster {
		user, err := env.AddUser(envtest.User{Name: "playground-admin", Groups: []string{"system:masters"}}, nil)
		if err != nil {
			return fmt.Errorf("create playground user: %w", err)
		}
		data, err := user.KubeConfig()
		if err != nil {
			return fmt.Errorf("render kubeconfig: %w", err)
		}
		if err := os.MkdirAll(o.dir, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", o.dir, err)
		}
		kubeconfig, err = filepath.Abs(filepath.Join(o.dir, "kubeconfig"))
		if err != nil {
			return err
		}
		if err := os.WriteFile(kubeconfig, data, 0o600); err != nil {
			return fmt.Errorf("write kubeconfig: %w", err)
		}
	}

	c, err := client.New(cfg, client.Options{Scheme: newScheme()})
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	for _, s := range o.samples {
		if err := applyFile(ctx, c, s); err != nil {
			return err
		}
	}

	fmt.Printf(`
xenclone playground is up (control plane: %s).

  export KUBECONFIG=%s
  kubectl get vmtemplates
  kubectl apply -f config/samples/vm_v1alpha1_vmclone.yaml
  kubectl get vmclones -w

Ctrl-C stops everything.

`, cfg.Host, kubeconfig)

	return startManager(ctx, cfg, &o.manager)
}

// applyFile creates (or leaves alone, if present) each object of a multi-document YAML file.
func applyFile(ctx context.Context, c client.Client, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open sample: %w", err)
	}
	defer f.Close()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		obj := map[string]any{}
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("decode %s: %w", path, err)
		}
		if len(obj) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.Create(ctx, u)
		cancel()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("apply %s %s from %s: %w", u.GetKind(), u.GetName(), path, err)
		}
	}
}
