// Package install tests config/default as a cluster installs it: rendered by kustomize, applied
// to a real control plane whose kube-controller-manager and kube-scheduler turn the DaemonSet
// and Deployment into pods (hack/testenv's Cluster). There is no kubelet: the test registers
// the nodes and marks them Ready, as a kubelet and the node lifecycle controller would.
package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xenclone/xenclone/hack/testenv"
)

const (
	ns       = "xenclone-system"
	xenLabel = "vm.xenclone.dev/xen-host"
	nodeName = "authentication.kubernetes.io/node-name"
)

func TestMain(m *testing.M) {
	if !testenv.Available("config/install") {
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// render builds a kustomization the way `kubectl apply -k` does.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	out, err := testenv.Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readyNode registers a node as its kubelet would and marks it Ready, clearing the not-ready
// taint admission put on it (the node lifecycle controller's part).
func readyNode(ctx context.Context, t *testing.T, c client.Client, name string, labels map[string]string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := c.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	n.Status = corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		Capacity:    corev1.ResourceList{corev1.ResourceCPU: mustQ("4"), corev1.ResourceMemory: mustQ("8Gi"), corev1.ResourcePods: mustQ("110")},
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: mustQ("4"), corev1.ResourceMemory: mustQ("8Gi"), corev1.ResourcePods: mustQ("110")},
	}
	if err := c.Status().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(n), n); err != nil {
		t.Fatal(err)
	}
	n.Spec.Taints = nil
	if err := c.Update(ctx, n); err != nil {
		t.Fatal(err)
	}
}

// TestDefaultInstallPutsOneAgentOnEachXenNode applies config/default and config/admission as
// the README says, to a cluster with one node labelled as a Xen host and one not: the real
// DaemonSet controller and scheduler must put exactly one agent pod on the Xen node and none
// on the other, the manager's pods must be scheduled, and the agent's pod must get its service
// account's token volume (ServiceAccount admission, the account from config/rbac), whose
// token, bound to that pod, names the node the admission policy keys on.
func TestDefaultInstallPutsOneAgentOnEachXenNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, err := testenv.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Stop()
	c := cl.Client
	fail := func(format string, args ...any) {
		t.Helper()
		var evs corev1.EventList
		_ = c.List(context.Background(), &evs, client.InNamespace(ns))
		var lines []string
		for _, e := range evs.Items {
			lines = append(lines, fmt.Sprintf("%s %s/%s: %s %s", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message))
		}
		t.Fatalf(format+"\nevents in %s:\n%s\n%s", append(args, ns, strings.Join(lines, "\n"), cl.Logs())...)
	}

	for _, dir := range []string{"../default", "../admission"} {
		for _, o := range render(t, filepath.Join(dir)) {
			if err := c.Patch(ctx, o, client.Apply, client.ForceOwnership, client.FieldOwner("kubectl")); err != nil {
				t.Fatalf("apply %s %s from %s: %v", o.GetKind(), o.GetName(), dir, err)
			}
		}
	}
	readyNode(ctx, t, c, "xen-01", map[string]string{xenLabel: "true"})
	readyNode(ctx, t, c, "plain-01", nil)

	var agents, managers []corev1.Pod
	for {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			fail("list pods: %v", err)
		}
		agents, managers = nil, nil
		for _, p := range pods.Items {
			if p.Spec.NodeName == "" {
				continue // not scheduled yet
			}
			switch p.Labels["app.kubernetes.io/component"] {
			case "hostagent":
				agents = append(agents, p)
			case "manager":
				managers = append(managers, p)
			}
		}
		if len(agents) >= 1 && len(managers) >= 2 {
			break
		}
		select {
		case <-ctx.Done():
			fail("after 3 minutes: %d agent pods and %d manager pods scheduled, want 1 and 2", len(agents), len(managers))
		case <-time.After(250 * time.Millisecond):
		}
	}
	// The DaemonSet controller has made all it will make once its status says so.
	var ds unstructured.Unstructured
	ds.SetAPIVersion("apps/v1")
	ds.SetKind("DaemonSet")
	for {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "xenclone-hostagent"}, &ds); err != nil {
			fail("get DaemonSet: %v", err)
		}
		desired, _, _ := unstructured.NestedInt64(ds.Object, "status", "desiredNumberScheduled")
		observed, _, _ := unstructured.NestedInt64(ds.Object, "status", "observedGeneration")
		if observed == ds.GetGeneration() && desired > 0 {
			if desired != 1 {
				fail("the DaemonSet wants %d pods with one Xen node (its nodeSelector must pick only %s=true)", desired, xenLabel)
			}
			break
		}
		select {
		case <-ctx.Done():
			fail("the DaemonSet's status was never written")
		case <-time.After(250 * time.Millisecond):
		}
	}
	if len(agents) != 1 || agents[0].Spec.NodeName != "xen-01" {
		var where []string
		for _, a := range agents {
			where = append(where, a.Spec.NodeName)
		}
		fail("agent pods on %v, want exactly one, on xen-01", where)
	}
	agent := agents[0]
	if !agent.Spec.HostPID || !agent.Spec.HostNetwork {
		t.Errorf("agent pod: hostPID %v hostNetwork %v, want both (nsenter into PID 1, the host's bridges)", agent.Spec.HostPID, agent.Spec.HostNetwork)
	}
	var projected bool
	for _, v := range agent.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			projected = projected || s.ServiceAccountToken != nil
		}
	}
	if !projected || agent.Spec.ServiceAccountName != "xenclone-hostagent" {
		t.Errorf("agent pod: service account %q, token volume %v; want xenclone-hostagent with the admission-injected token", agent.Spec.ServiceAccountName, projected)
	}

	// The token the kubelet would mount: a TokenRequest bound to this pod.
	cs, err := kubernetes.NewForConfig(cl.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, agent.Spec.ServiceAccountName, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To[int64](3600),
			BoundObjectRef:    &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: agent.Name, UID: agent.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		fail("TokenRequest for the agent's pod: %v", err)
	}
	tokCfg := rest.AnonymousClientConfig(cl.Config)
	tokCfg.BearerToken = tr.Status.Token
	tokCS, err := kubernetes.NewForConfig(tokCfg)
	if err != nil {
		t.Fatal(err)
	}
	review, err := tokCS.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		fail("SelfSubjectReview with the agent pod's token: %v", err)
	}
	if got := review.Status.UserInfo.Extra[nodeName]; len(got) != 1 || got[0] != "xen-01" {
		t.Errorf("the agent pod's token carries %s = %v, want [xen-01]", nodeName, got)
	}
}

func mustQ(s string) resource.Quantity { return resource.MustParse(s) }
