package plugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hack/testenv"
)

// The envtest suite: a real kube-apiserver (with RBAC) and etcd with the CRDs from
// config/crd/bases. Tests play the host agents: they write clone status through the status
// subresource and make the agent Pods themselves (no kubelet runs them, so a test sets their
// phase through the status subresource too). Every test uses its own namespaces and nodes.
var (
	env   *testenv.Env
	admin client.Client
)

func TestMain(m *testing.M) {
	if !testenv.Available("the kubectl plugin envtest suite") {
		// The unit tests (argv, address checks) run without a control plane.
		os.Exit(m.Run())
	}
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	// The parallel tests would queue behind client-go's default 5 requests/s.
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	if admin, err = client.New(cfg, client.Options{Scheme: env.Scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	return m.Run()
}

var uniqSeq atomic.Uint64

func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid()%100000, uniqSeq.Add(1))
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: uniq(prefix)}}
	if err := admin.Create(ctxFor(t), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// newClone creates a clone and, when status is not nil, writes it as its host agent and the
// controller would (status subresource).
func newClone(t *testing.T, ns, name string, status *vmv1alpha1.VMCloneStatus) *vmv1alpha1.VMClone {
	t.Helper()
	ctx := ctxFor(t)
	c := &vmv1alpha1.VMClone{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: "debian12"}},
	}
	if err := admin.Create(ctx, c); err != nil {
		t.Fatalf("create vmclone: %v", err)
	}
	if status != nil {
		c.Status = *status
		if err := admin.Status().Update(ctx, c); err != nil {
			t.Fatalf("write vmclone status: %v", err)
		}
	}
	return c
}

// placed is the status of a clone its host reports running as domain.
func placed(node, domain string) *vmv1alpha1.VMCloneStatus {
	return &vmv1alpha1.VMCloneStatus{
		NodeName: node, BindingGeneration: 1, ObservedBindingGeneration: 1, Phase: vmv1alpha1.PhaseRunning,
		Domain: &vmv1alpha1.DomainStatus{Name: domain, ID: 7, State: "-b----"},
	}
}

// newAgentPod makes the agent's pod on node, as the DaemonSet would, in phase.
func newAgentPod(t *testing.T, ns, node string, phase corev1.PodPhase) *corev1.Pod {
	t.Helper()
	ctx := ctxFor(t)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "xenclone-hostagent-",
			Labels: map[string]string{"app.kubernetes.io/name": "xenclone", "app.kubernetes.io/component": "hostagent"}},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			AutomountServiceAccountToken: new(bool),
			Containers: []corev1.Container{{Name: AgentContainer, Image: "ghcr.io/xenclone/xenclone:latest",
				Args: []string{"hostagent", "--state-dir=/var/lib/xenclone"}}},
		},
	}
	if err := admin.Create(ctx, p); err != nil {
		t.Fatalf("create agent pod: %v", err)
	}
	p.Status.Phase = phase
	if err := admin.Status().Update(ctx, p); err != nil {
		t.Fatalf("write agent pod phase: %v", err)
	}
	return p
}

func newXenHost(t *testing.T, node string) {
	t.Helper()
	h := &vmv1alpha1.XenHost{ObjectMeta: metav1.ObjectMeta{Name: node}}
	if err := admin.Create(ctxFor(t), h); err != nil {
		t.Fatalf("create xenhost: %v", err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.Background(), h) })
}

// newUser is a user of the API server with no rights beyond what every authenticated user
// has (e.g. SelfSubjectAccessReviews).
func newUser(t *testing.T, name string) (*rest.Config, client.Client) {
	t.Helper()
	u, err := env.AddUser(envtest.User{Name: name}, nil)
	if err != nil {
		t.Fatalf("add user: %v", err)
	}
	c, err := client.New(u.Config(), client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatalf("client for %s: %v", name, err)
	}
	return u.Config(), c
}

// installConsoleRole creates config/rbac/console_role.yaml in ns under its kustomized name
// and binds it to user.
func installConsoleRole(t *testing.T, ns, user string) {
	t.Helper()
	ctx := ctxFor(t)
	data, err := os.ReadFile(filepath.Join("..", "config", "rbac", "console_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.Role
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatalf("config/rbac/console_role.yaml: %v", err)
	}
	if role.Name != "console" || role.Namespace != "system" {
		t.Fatalf("config/rbac/console_role.yaml is Role %s/%s, want system/console (config/default makes it xenclone-system/%s)", role.Namespace, role.Name, ConsoleRole)
	}
	role.Name, role.Namespace = ConsoleRole, ns
	if err := admin.Create(ctx, &role); err != nil {
		t.Fatalf("create role: %v", err)
	}
	if err := admin.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "console-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: ConsoleRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	}); err != nil {
		t.Fatalf("create rolebinding: %v", err)
	}
}

// eventually retries ok until it returns nil, for what the API server applies asynchronously
// (the RBAC authorizer reads bindings through an informer).
func eventually(t *testing.T, what string, ok func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := ok()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after 20s", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kubeconfig writes cfg (a user's client certificate) as a kubeconfig file for the CLI tests.
func kubeconfig(t *testing.T, cfg *rest.Config, namespace string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "user", Namespace: namespace}
	kc.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}
