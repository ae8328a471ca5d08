package admission

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// The policy and the agent's generated ClusterRole are installed as shipped into a real
// kube-apiserver (RBAC on, ValidatingAdmissionPolicy GA); the agent's identity is a service
// account with the node name its bound token would carry, made with impersonation (the same
// user info the token authenticator produces; TestPodBoundTokenCarriesItsNode checks that with
// a real pod-bound token).

const (
	agentSA   = "system:serviceaccount:xenclone-system:xenclone-hostagent"
	managerSA = "system:serviceaccount:xenclone-system:xenclone-manager"
	nodeExtra = "authentication.kubernetes.io/node-name"
	leaseNS   = "xenclone-system"
)

var (
	cfg    *rest.Config
	scheme = runtime.NewScheme()
	admin  client.Client
)

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		msg := "KUBEBUILDER_ASSETS is not set: the admission tests need kube-apiserver and etcd; run them with `make test`"
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
	_ = clientgoscheme.AddToScheme(scheme)
	_ = vmv1alpha1.AddToScheme(scheme)
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	if cfg, err = env.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if admin, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := install(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "install policy and role:", err)
		return 1
	}
	return m.Run()
}

// install applies config/admission and the agent's generated ClusterRole, bound to the agent's
// service account as config/rbac does.
func install(ctx context.Context) error {
	for _, n := range []string{leaseNS, "team-a"} {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			return err
		}
	}
	data, err := os.ReadFile("hostagent-own-node.yaml")
	if err != nil {
		return err
	}
	docs := bytes.Split(data, []byte("\n---\n"))
	var policy admissionv1.ValidatingAdmissionPolicy
	var binding admissionv1.ValidatingAdmissionPolicyBinding
	if err := yaml.UnmarshalStrict(docs[0], &policy); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if err := yaml.UnmarshalStrict(docs[1], &binding); err != nil {
		return fmt.Errorf("binding: %w", err)
	}
	if err := admin.Create(ctx, &policy); err != nil {
		return fmt.Errorf("create policy: %w", err)
	}
	if err := admin.Create(ctx, &binding); err != nil {
		return fmt.Errorf("create binding: %w", err)
	}

	if err := installRoles(ctx, "hostagent", "xenclone-hostagent"); err != nil {
		return err
	}
	return installRoles(ctx, "manager", "xenclone-manager")
}

// installRoles creates the roles generated into config/rbac/<dir>/role.yaml (a ClusterRole and,
// for namespaced markers, a Role in the lease namespace) and binds them to the service account
// sa in xenclone-system, as config/rbac/role_bindings.yaml does.
func installRoles(ctx context.Context, dir, sa string) error {
	data, err := os.ReadFile(filepath.Join("..", "rbac", dir, "role.yaml"))
	if err != nil {
		return err
	}
	subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "xenclone-system", Name: sa}}
	for _, doc := range bytes.Split(bytes.TrimPrefix(data, []byte("---\n")), []byte("\n---\n")) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return fmt.Errorf("%s/role.yaml: %w", dir, err)
		}
		switch meta.Kind {
		case "ClusterRole":
			var role rbacv1.ClusterRole
			if err := yaml.UnmarshalStrict(doc, &role); err != nil {
				return fmt.Errorf("%s/role.yaml: %w", dir, err)
			}
			if err := admin.Create(ctx, &role); err != nil {
				return err
			}
			if err := admin.Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: sa},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
				Subjects:   subjects,
			}); err != nil {
				return err
			}
		case "Role":
			var role rbacv1.Role
			if err := yaml.UnmarshalStrict(doc, &role); err != nil {
				return fmt.Errorf("%s/role.yaml: %w", dir, err)
			}
			if role.Namespace != leaseNS {
				return fmt.Errorf("%s/role.yaml: Role %s is in namespace %q, expected the lease namespace %s", dir, role.Name, role.Namespace, leaseNS)
			}
			if err := admin.Create(ctx, &role); err != nil {
				return err
			}
			if err := admin.Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Namespace: role.Namespace, Name: sa},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
				Subjects:   subjects,
			}); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s/role.yaml: unexpected kind %q", dir, meta.Kind)
		}
	}
	return nil
}

// agentClient acts as the host agent of node (node "" = a token without the node-name extra).
func agentClient(t *testing.T, node string) client.Client {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{
		UserName: agentSA,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:xenclone-system", "system:authenticated"},
	}
	if node != "" {
		c.Impersonate.Extra = map[string][]string{nodeExtra: {node}}
	}
	cl, err := client.New(c, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// boundClone creates a clone bound to node the way the controller binds it (status.nodeName).
func boundClone(t *testing.T, name, node string) *vmv1alpha1.VMClone {
	t.Helper()
	ctx := context.Background()
	c := &vmv1alpha1.VMClone{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name},
		Spec:       vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: "debian12"}},
	}
	if err := admin.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cur := &vmv1alpha1.VMClone{}
		if admin.Get(ctx, client.ObjectKeyFromObject(c), cur) == nil {
			patch := client.MergeFrom(cur.DeepCopy())
			cur.Finalizers = nil
			_ = admin.Patch(ctx, cur, patch)
			_ = admin.Delete(ctx, cur)
		}
	})
	patch := client.MergeFrom(c.DeepCopy())
	c.Status.NodeName = node
	c.Status.UUID = "6f2a3c1e-0000-4000-8000-" + fmt.Sprintf("%012x", len(name)+len(node))
	if err := admin.Status().Patch(ctx, c, patch); err != nil {
		t.Fatal(err)
	}
	return c
}

// statusPatch is what the agent does most: a status write on a clone.
func statusPatch(ctx context.Context, cl client.Client, c *vmv1alpha1.VMClone, msg string) error {
	cur := &vmv1alpha1.VMClone{}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(c), cur); err != nil {
		return err
	}
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Status.Message = msg
	return cl.Status().Patch(ctx, cur, patch)
}

func finalizerPatch(ctx context.Context, cl client.Client, c *vmv1alpha1.VMClone) error {
	cur := &vmv1alpha1.VMClone{}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(c), cur); err != nil {
		return err
	}
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Finalizers = append(cur.Finalizers, vmv1alpha1.CloneFinalizer)
	return cl.Patch(ctx, cur, patch)
}

func wantForbidden(t *testing.T, what string, err error, contains string) {
	t.Helper()
	if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
		t.Errorf("%s: want Forbidden by the admission policy, got %v", what, err)
		return
	}
	if !strings.Contains(err.Error(), contains) {
		t.Errorf("%s: denied, but the message does not say %q: %v", what, contains, err)
	}
}

// The policy is served from the API server's informer: wait until it denies the first time.
func eventuallyDenied(t *testing.T, fn func() error) error {
	t.Helper()
	var err error
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if err = fn(); err != nil && apierrors.IsForbidden(err) && strings.Contains(err.Error(), "hostagent-own-node") {
			return err
		}
	}
	return err
}

// TestAgentCannotTouchAnotherNodesClone is the "must show": agent A's identity cannot
// update a clone bound to node B — not its status, not its metadata, not by rebinding — while
// it can update its own.
func TestAgentCannotTouchAnotherNodesClone(t *testing.T) {
	ctx := context.Background()
	agentA := agentClient(t, "xen-a")
	mine := boundClone(t, "web-a", "xen-a")
	theirs := boundClone(t, "web-b", "xen-b")

	err := eventuallyDenied(t, func() error { return statusPatch(ctx, agentA, theirs, "hijacked by xen-a") })
	wantForbidden(t, "agent xen-a patches the status of a clone bound to xen-b", err, "bound to 'xen-b'")
	wantForbidden(t, "agent xen-a adds its finalizer to a clone bound to xen-b", finalizerPatch(ctx, agentA, theirs), "bound to 'xen-b'")

	// What the agent does for its own clones works: status and finalizer.
	if err := statusPatch(ctx, agentA, mine, "provisioning on xen-a"); err != nil {
		t.Fatalf("agent xen-a updates its own clone's status: %v", err)
	}
	if err := finalizerPatch(ctx, agentA, mine); err != nil {
		t.Fatalf("agent xen-a adds its finalizer to its own clone: %v", err)
	}

	// Nor can it pull a clone over, or push its own away.
	cur := &vmv1alpha1.VMClone{}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(theirs), cur); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Status.NodeName = "xen-a"
	wantForbidden(t, "agent xen-a rebinds xen-b's clone to itself", agentA.Status().Patch(ctx, cur, patch), "hostagent-own-node")
	if err := admin.Get(ctx, client.ObjectKeyFromObject(mine), cur); err != nil {
		t.Fatal(err)
	}
	patch = client.MergeFrom(cur.DeepCopy())
	cur.Status.NodeName = "xen-b"
	wantForbidden(t, "agent xen-a rewrites its clone's status.nodeName", agentA.Status().Patch(ctx, cur, patch), "hostagent-own-node")

	// Server-side apply, the agent's real write path, is held to the same rule.
	u := &vmv1alpha1.VMClone{}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(theirs), u); err != nil {
		t.Fatal(err)
	}
	applied := &vmv1alpha1.VMClone{TypeMeta: metav1.TypeMeta{APIVersion: vmv1alpha1.GroupVersion.String(), Kind: "VMClone"},
		ObjectMeta: metav1.ObjectMeta{Namespace: u.Namespace, Name: u.Name}}
	applied.Status.Phase = vmv1alpha1.PhaseFailed
	wantForbidden(t, "agent xen-a server-side applies xen-b's clone status",
		agentA.Status().Patch(ctx, applied, client.Apply, client.FieldOwner("xenclone-hostagent"), client.ForceOwnership), "bound to 'xen-b'") //nolint:staticcheck

	// The other agent and the controller (admin here) are unaffected.
	if err := statusPatch(ctx, agentClient(t, "xen-b"), theirs, "running on xen-b"); err != nil {
		t.Fatalf("agent xen-b updates its own clone: %v", err)
	}
	if err := statusPatch(ctx, admin, theirs, "controller writes"); err != nil {
		t.Fatalf("the controller's identity is not restricted: %v", err)
	}
}

// TestAgentOnlyWritesItsOwnHostAndLease: the XenHost and heartbeat Lease of another node are
// out of reach (a compromised agent cannot fake another host's capacity or liveness), and so
// is every Lease outside the lease namespace (leader election of other controllers).
func TestAgentOnlyWritesItsOwnHostAndLease(t *testing.T) {
	ctx := context.Background()
	agentA := agentClient(t, "xen-a")

	err := eventuallyDenied(t, func() error {
		return agentA.Create(ctx, &vmv1alpha1.XenHost{ObjectMeta: metav1.ObjectMeta{Name: "xen-b"}})
	})
	wantForbidden(t, "agent xen-a creates XenHost xen-b", err, "may only write XenHost xen-a")
	own := &vmv1alpha1.XenHost{ObjectMeta: metav1.ObjectMeta{Name: "xen-a"}}
	if err := agentA.Create(ctx, own); err != nil {
		t.Fatalf("agent xen-a creates its own XenHost: %v", err)
	}
	t.Cleanup(func() { _ = admin.Delete(ctx, own) })

	now := metav1.NewMicroTime(time.Now())
	lease := func(ns, name string) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &name, RenewTime: &now}}
	}
	wantForbidden(t, "agent xen-a fakes xen-b's heartbeat", agentA.Create(ctx, lease(leaseNS, "xen-b")), "may only write its heartbeat Lease")
	// RBAC already refuses it (the agent's Lease verbs are a Role in the lease namespace).
	wantForbidden(t, "agent xen-a writes a Lease in kube-system", agentA.Create(ctx, lease("kube-system", "xen-a")), "cannot create resource \"leases\"")
	l := lease(leaseNS, "xen-a")
	if err := agentA.Create(ctx, l); err != nil {
		t.Fatalf("agent xen-a creates its own heartbeat Lease: %v", err)
	}
	t.Cleanup(func() { _ = admin.Delete(ctx, l) })
	l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
	if err := agentA.Update(ctx, l); err != nil {
		t.Fatalf("agent xen-a renews its own Lease: %v", err)
	}
}

// TestTokenWithoutNodeNameWritesNothing: a token that is not bound to a node (a long-lived
// Secret token) gets no write at all.
func TestTokenWithoutNodeNameWritesNothing(t *testing.T) {
	ctx := context.Background()
	unbound := agentClient(t, "")
	c := boundClone(t, "web-unbound", "xen-a")
	err := eventuallyDenied(t, func() error { return statusPatch(ctx, unbound, c, "who am I") })
	wantForbidden(t, "agent without node name patches a clone", err, "carries no node name")
	wantForbidden(t, "agent without node name creates a XenHost",
		unbound.Create(ctx, &vmv1alpha1.XenHost{ObjectMeta: metav1.ObjectMeta{Name: "xen-z"}}), "carries no node name")
}

// TestAgentRBACBoundaries checks what RBAC alone already refuses the agent.
func TestAgentRBACBoundaries(t *testing.T) {
	ctx := context.Background()
	agentA := agentClient(t, "xen-a")
	c := boundClone(t, "web-rbac", "xen-a")
	for _, tc := range []struct {
		what string
		err  error
	}{
		{"delete a clone", agentA.Delete(ctx, c)},
		{"create a clone", agentA.Create(ctx, &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "x"},
			Spec: vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: "debian12"}}})},
		{"create a template", agentA.Create(ctx, &vmv1alpha1.VMTemplate{ObjectMeta: metav1.ObjectMeta{Name: "evil"}})},
		{"list secrets", agentA.List(ctx, &corev1.SecretList{})},
		// Not even by name: cloud-init data reaches it through the controller's copies.
		{"get a tenant's Secret", agentA.Get(ctx, types.NamespacedName{Namespace: "team-a", Name: "web-userdata"}, &corev1.Secret{})},
		{"get a kube-system Secret", agentA.Get(ctx, types.NamespacedName{Namespace: "kube-system", Name: "bootstrap-token-abcdef"}, &corev1.Secret{})},
		{"list the cloud-init copies", agentA.List(ctx, &corev1.SecretList{}, client.InNamespace(leaseNS))},
		{"delete a XenHost", agentA.Delete(ctx, &vmv1alpha1.XenHost{ObjectMeta: metav1.ObjectMeta{Name: "xen-a"}})},
	} {
		if !apierrors.IsForbidden(tc.err) {
			t.Errorf("agent may %s: want Forbidden by RBAC, got %v", tc.what, tc.err)
		}
	}
}
