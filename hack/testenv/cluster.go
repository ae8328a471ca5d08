package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Cluster is the control plane a real cluster has around the API server: kube-apiserver with
// the ServiceAccount admission plugin on (envtest turns it off, so pods get no token volume),
// kube-controller-manager with the controllers that turn workloads into pods and give service
// accounts their tokens and CA, and kube-scheduler. There is no kubelet: a test plays the
// node's part (registers the Node, marks it Ready). Built by hack/envtest-assets.sh beside
// kube-apiserver.
type Cluster struct {
	*Env
	procs []*exec.Cmd
	logs  []*bytes.Buffer
	dir   string
}

// clusterControllers are the kube-controller-manager controllers a DaemonSet and a Deployment
// need to reach their pods, with tokens and the cluster CA for them.
const clusterControllers = "daemonset-controller,deployment-controller,replicaset-controller," +
	"serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller," +
	"garbage-collector-controller,namespace-controller"

// StartCluster starts the API server (with xenclone's CRDs), kube-controller-manager and
// kube-scheduler.
func StartCluster() (*Cluster, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	for _, b := range []string{"kube-controller-manager", "kube-scheduler"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("%s is not in KUBEBUILDER_ASSETS=%s: run hack/envtest-assets.sh (make test does)", b, assets)
		}
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	env.ControlPlane.GetAPIServer().Configure().Disable("disable-admission-plugins")
	e, err := start(env)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Env: e}
	if c.dir, err = os.MkdirTemp("", "xenclone-cluster-"); err != nil {
		c.Stop()
		return nil, err
	}
	admin, err := env.AddUser(envtest.User{Name: "cluster-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("admin user: %w", err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		c.Stop()
		return nil, err
	}
	kubeconfig := filepath.Join(c.dir, "admin.kubeconfig")
	ca := filepath.Join(c.dir, "ca.crt")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		c.Stop()
		return nil, err
	}
	if err := os.WriteFile(ca, e.Config.CAData, 0o644); err != nil {
		c.Stop()
		return nil, err
	}
	certDir := env.ControlPlane.GetAPIServer().CertDir
	c.run(filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig,
		"--controllers="+clusterControllers,
		"--root-ca-file="+ca,
		"--service-account-private-key-file="+filepath.Join(certDir, "sa-signer.key"),
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--secure-port=0",
		"--concurrent-daemonset-syncs=1",
	)
	c.run(filepath.Join(assets, "kube-scheduler"),
		"--kubeconfig="+kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
	)
	for i, p := range c.procs {
		if p.Process == nil {
			err := fmt.Errorf("start %s: %s", p.Path, c.logs[i])
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) run(bin string, args ...string) {
	var log bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(&log, "%v", err)
	}
	c.procs = append(c.procs, cmd)
	c.logs = append(c.logs, &log)
}

// Logs is what kube-controller-manager and kube-scheduler printed, for a failing test.
func (c *Cluster) Logs() string {
	var b bytes.Buffer
	for i, p := range c.procs {
		fmt.Fprintf(&b, "---- %s\n%s\n", filepath.Base(p.Path), tail(c.logs[i].String(), 4000))
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Stop stops the controllers, then the API server and etcd.
func (c *Cluster) Stop() {
	for _, p := range c.procs {
		if p.Process != nil {
			_ = p.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = p.Process.Kill()
				<-done
			}
		}
	}
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
	if c.Env != nil {
		c.Env.Stop()
	}
}
