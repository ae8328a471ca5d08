package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/controllers"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/sim"
)

// playgroundOptions are the playground role's flags.
type playgroundOptions struct {
	dir                string
	useExistingCluster bool
	hosts              int
	realistic          bool
	samples            []string
	manager            managerOptions
}

func playgroundFlags(fs *flag.FlagSet) *playgroundOptions {
	o := &playgroundOptions{}
	fs.StringVar(&o.dir, "dir", ".playground", "Folder for the playground's kubeconfig and the simulated hosts' state.")
	fs.BoolVar(&o.useExistingCluster, "use-existing-cluster", os.Getenv("USE_EXISTING_CLUSTER") == "true",
		"Install the CRDs into the cluster of $KUBECONFIG and run the manager (and the simulated hosts) against it instead of starting an embedded control plane.")
	fs.IntVar(&o.hosts, "hosts", 3, "Number of simulated Xen hosts (0: none, e.g. with real agents in the cluster).")
	fs.BoolVar(&o.realistic, "realistic", true, "Give simulated host operations the latencies measured on real hosts (snapshot ~0.9 s, scrub ~1.2 s, xl create ~0.5 s).")
	fs.StringVar(&o.manager.metricsAddr, "metrics-bind-address", "127.0.0.1:8080", "Manager metrics address; 0 disables it.")
	fs.StringVar(&o.manager.probeAddr, "health-probe-bind-address", "127.0.0.1:8081", "Manager probe address.")
	o.manager.leaseNamespace = controllers.DefaultLeaseNamespace
	o.manager.heartbeatGrace = controllers.DefaultHeartbeatGrace
	o.samples = []string{"config/samples/vm_v1alpha1_vmtemplate.yaml"}
	return o
}

// managerOptions are the playground manager's options. On its own embedded API server the
// playground's manager is the only one there can be, so it needs no leader election; on an
// existing cluster (--use-existing-cluster) another manager may run — the cluster's own, or a
// second playground — and two managers that both act hand out duplicate MACs, so it elects,
// with its Lease in the lease namespace the playground creates.
func (o *playgroundOptions) managerOptions() managerOptions {
	m := o.manager
	m.leaderElect = o.useExistingCluster
	if m.leaderElect && m.leaderElectionNS == "" {
		m.leaderElectionNS = m.leaseNamespace
	}
	return m
}

// runPlayground starts a real kube-apiserver + etcd (the envtest binaries built by
// hack/envtest-assets.sh), installs the CRDs, runs the controller and simulated Xen hosts (each
// a real node agent driving in-memory LVM and the xl simulator), applies the sample template,
// writes a kubeconfig and runs until interrupted.
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
		log.Info("stopping control plane")
		if err := env.Stop(); err != nil {
			log.Error(err, "stop control plane")
		}
	}()

	kubeconfig := os.Getenv("KUBECONFIG")
	if !o.useExistingCluster {
		if kubeconfig, err = writeKubeconfig(env, o.dir); err != nil {
			return err
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: newScheme()})
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.manager.leaseNamespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns.Name, err)
	}

	mo := o.managerOptions()
	mgr, err := newManager(cfg, &mo)
	if err != nil {
		return err
	}
	errs := make(chan error, o.hosts+1)
	go func() { errs <- mgr.Start(ctx) }()
	if err := startSimulatedHosts(ctx, cfg, o, errs); err != nil {
		return err
	}
	if o.hosts > 0 {
		if err := os.MkdirAll(o.dir, 0o700); err != nil {
			return err
		}
		if _, err := startImageServer(ctx, log, o.dir); err != nil {
			return err
		}
	}
	for _, s := range o.samples {
		if err := applyFile(ctx, c, s); err != nil {
			return err
		}
	}

	if o.hosts > 0 {
		// Hand over once the hosts have reported the sample template, so the first clone a
		// user applies is placed at once.
		waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
		err := wait.PollUntilContextCancel(waitCtx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			var t vmv1alpha1.VMTemplate
			if err := c.Get(ctx, client.ObjectKey{Name: "debian12"}, &t); err != nil {
				return false, nil
			}
			return int(t.Status.ReadyHosts) == o.hosts, nil
		})
		cancel()
		if err != nil {
			log.Info("the simulated hosts have not all reported the sample template yet; carrying on")
		}
	}

	fmt.Printf(`
xenclone playground is up: control plane %s, %d simulated Xen hosts.

  export KUBECONFIG=%s
  kubectl get xenhosts,vmtemplates
  kubectl apply -f .playground/vmtemplate-imported.yaml
  kubectl get vmtemplates -o wide
  kubectl wait --for=condition=Imported vmtemplate/debian12-imported --timeout=120s
  kubectl apply -f config/samples/vm_v1alpha1_vmclone.yaml
  kubectl wait --for=condition=Ready vmclone/web-1 --timeout=60s
  kubectl get vmclones -o wide
  kubectl describe vmclone web-1
  kubectl xenclone console web-1
  kubectl apply -f config/samples/vm_v1alpha1_vmclonepool.yaml
  kubectl scale vmclonepool/ci-runners --replicas=10
  kubectl delete vmclone web-1

The user guide goes on from here: docs/user-guide.md.

Ctrl-C stops everything.

`, cfg.Host, o.hosts, kubeconfig)

	select {
	case <-ctx.Done():
		return nil
	case err := <-errs:
		return err
	}
}

func writeKubeconfig(env *envtest.Environment, dir string) (string, error) {
	user, err := env.AddUser(envtest.User{Name: "playground-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("create playground user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("render kubeconfig: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	path, err := filepath.Abs(filepath.Join(dir, "kubeconfig"))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("write kubeconfig: %w", err)
	}
	return path, nil
}

// startSimulatedHosts runs one node agent per simulated host. Each agent has its own manager
// and cache (only its node's clones), exactly as a DaemonSet pod would; the xl simulator is this
// binary's xlsim role.
func startSimulatedHosts(ctx context.Context, cfg *rest.Config, o *playgroundOptions, errs chan<- error) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary for the xl simulator: %w", err)
	}
	for i := 1; i <= o.hosts; i++ {
		name := fmt.Sprintf("xen-%02d", i)
		dir := filepath.Join(o.dir, "hosts", name)
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		h, err := sim.NewHost(ctx, name, dir, sim.HostOptions{
			MemoryMiB: 32768, Realistic: o.realistic,
			// Its guests run a guest agent, as a template with xen-guest-agent installed does:
			// addresses show in `kubectl get vmclones -o wide`.
			GuestAgents: true,
			Templates:   map[string]uint64{"debian12-template": 10 << 30},
			XL:          []string{self, "xlsim", "xl"},
		})
		if err != nil {
			return fmt.Errorf("simulated host %s: %w", name, err)
		}
		mgr, err := ctrl.NewManager(cfg, ctrl.Options{
			Scheme: newScheme(), Cache: hostagent.CacheOptions(name), MapperProvider: hostagent.MapperProvider,
			Metrics: metricsserver.Options{BindAddress: "0"},
		})
		if err != nil {
			return fmt.Errorf("agent manager for %s: %w", name, err)
		}
		if err := hostagent.SetupWithManager(mgr, hostagent.Options{
			NodeName: name, Host: h.AgentHost(), LeaseNamespace: o.manager.leaseNamespace,
			ShutdownGrace: 20 * time.Second, AgentVersion: "playground",
		}); err != nil {
			return fmt.Errorf("agent for %s: %w", name, err)
		}
		go func() { errs <- mgr.Start(ctx) }()
	}
	return nil
}

// applyFile creates (or leaves alone, if present) each object of a multi-document YAML file,
// as `kubectl apply -f` would create it: with the last-applied-configuration annotation, so a
// user's own `kubectl apply -f` of the same file later finds it unchanged and does not warn
// that the annotation is missing.
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
		if err := setLastApplied(u); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.Create(ctx, u)
		cancel()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("apply %s %s from %s: %w", u.GetKind(), u.GetName(), path, err)
		}
	}
}

// setLastApplied records u, as read from its file, in the annotation kubectl's client-side
// apply keeps: the object's JSON without that annotation (and with an annotations map, empty
// if the file has none, as kubectl writes it).
func setLastApplied(u *unstructured.Unstructured) error {
	annotations := u.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	delete(annotations, corev1.LastAppliedConfigAnnotation)
	u.SetAnnotations(annotations)
	data, err := json.Marshal(u.Object)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	annotations[corev1.LastAppliedConfigAnnotation] = string(data) + "\n"
	u.SetAnnotations(annotations)
	return nil
}
