//go:build lab

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hack/testenv"
)

// Names the lab node's runtime knows its images by (imported, never pulled).
const (
	labAgentImage   = "ghcr.io/xenclone/xenclone:lab"
	labSandboxImage = "registry.k8s.io/pause:lab"
	agentNamespace  = "xenclone-system"
)

// TestNodeOnRealKubelet makes the lab's dom0 a real Kubernetes node (containerd, Debian's runc
// and a kubelet, hack/lab/node-assets.sh) of a control plane here (kube-apiserver,
// kube-controller-manager, kube-scheduler: hack/testenv.StartCluster), applies config/default
// and config/admission as a user would, and waits for the real DaemonSet pod of the agent on
// that node to be Ready and to report the node's XenHost. Issue 20, step 2; the manager runs in
// no pod here (its Deployment is scaled to 0) and no clone is made yet.
func TestNodeOnRealKubelet(t *testing.T) {
	assets := os.Getenv("XENCLONE_LAB_NODE")
	if assets == "" {
		msg := "XENCLONE_LAB_NODE is not set: run hack/lab/lab.sh node"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIP (loudly): " + msg)
	}
	labImages(t) // fails or skips before anything is started
	total := time.Now()
	cl, err := testenv.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Stop)
	k := cl.Client
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	// The share: the node's binaries and images, and the kubelet's credentials (a node identity;
	// system:masters spares the lab the Node authorizer's bootstrap).
	share := t.TempDir()
	nodeDir := filepath.Join(share, "node")
	if err := os.MkdirAll(filepath.Join(nodeDir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"kubelet", "containerd", "containerd-shim-runc-v2", "ctr", "runc"} {
		copyFile(t, filepath.Join(assets, b), filepath.Join(nodeDir, b))
		if err := os.Chmod(filepath.Join(nodeDir, b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, filepath.Join("..", "node", "start-node.sh"), filepath.Join(nodeDir, "start-node.sh"))
	if err := os.Chmod(filepath.Join(nodeDir, "start-node.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nodeDir, "sandbox-image"), []byte(labSandboxImage+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	buildLabImages(t, filepath.Join(nodeDir, "images"))
	kubelet, err := cl.Environment.AddUser(envtest.User{Name: "system:node:" + node, Groups: []string{"system:nodes", "system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(share, "kubelet.kubeconfig"), kubeconfig(kubelet.Config()), 0o600); err != nil {
		t.Fatal(err)
	}

	u, err := url.Parse(cl.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	apiPort, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("API server address %q: %v", cl.Config.Host, err)
	}
	lab := Boot(t, BootOptions{APIPort: apiPort, Share: share, Timeout: 35 * time.Minute})
	dump := func() {
		out, _ := lab.Try(`echo "== kubelet"; tail -n 60 /var/log/node/kubelet.log; echo "== containerd"; tail -n 30 /var/log/node/containerd.log
echo "== crictl-less view"; ctr -n k8s.io containers ls 2>/dev/null | head; free -m`)
		t.Logf("dom0 node on failure:\n%s", out)
		var evs corev1.EventList
		_ = k.List(context.Background(), &evs)
		var lines []string
		for _, e := range evs.Items {
			lines = append(lines, fmt.Sprintf("%s %s %s/%s: %s %s", e.LastTimestamp.Format(time.TimeOnly), e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message))
		}
		sort.Strings(lines)
		t.Logf("events:\n%s\n%s", strings.Join(lines, "\n"), cl.Logs())
	}
	t.Cleanup(func() {
		if t.Failed() {
			dump()
		}
	})
	lab.Sh(t, `set -e
D=/dev/disk/by-id/virtio-labdata
pvcreate -y -ff $D >/dev/null && vgcreate vg0 $D >/dev/null`)
	start := time.Now()
	t.Log(lab.Sh(t, "NODE_NAME="+node+" /lab/node/start-node.sh"))

	// The kubelet registers the node; it is Ready once the runtime reports its network ready.
	n := &corev1.Node{}
	waitFor(ctx, t, 10*time.Minute, "node "+node+" Ready", func() (bool, string) {
		if err := k.Get(ctx, client.ObjectKey{Name: node}, n); err != nil {
			return false, err.Error()
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, c.Reason + ": " + c.Message
			}
		}
		return false, "no Ready condition"
	})
	t.Logf("node %s Ready %s after the kubelet started (kubelet %s, runtime %s)", node, time.Since(start).Round(time.Second),
		n.Status.NodeInfo.KubeletVersion, n.Status.NodeInfo.ContainerRuntimeVersion)

	// As the README's "Installing in a cluster" does: config/default, config/admission, the label.
	for _, o := range renderInstall(t) {
		if err := k.Patch(ctx, o, client.Apply, client.ForceOwnership, client.FieldOwner("kubectl")); err != nil {
			t.Fatalf("apply %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	patch := client.MergeFrom(n.DeepCopy())
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels["vm.xenclone.dev/xen-host"] = "true"
	if err := k.Patch(ctx, n, patch); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	var pod corev1.Pod
	waitFor(ctx, t, 10*time.Minute, "the agent's DaemonSet pod Ready on "+node, func() (bool, string) {
		var pods corev1.PodList
		if err := k.List(ctx, &pods, client.InNamespace(agentNamespace), client.MatchingLabels{"app.kubernetes.io/component": "hostagent"}); err != nil {
			return false, err.Error()
		}
		if len(pods.Items) != 1 {
			return false, fmt.Sprintf("%d agent pods", len(pods.Items))
		}
		pod = pods.Items[0]
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady {
				return c.Status == corev1.ConditionTrue, fmt.Sprintf("phase %s, %s %s", pod.Status.Phase, c.Reason, c.Message)
			}
		}
		return false, "phase " + string(pod.Status.Phase)
	})
	t.Logf("agent pod %s Ready %s after the label", pod.Name, time.Since(start).Round(time.Second))
	waitFor(ctx, t, 5*time.Minute, "XenHost "+node+" from the pod's agent", func() (bool, string) {
		h := &vmv1alpha1.XenHost{}
		if err := k.Get(ctx, client.ObjectKey{Name: node}, h); err != nil {
			return false, err.Error()
		}
		return h.Status.AgentVersion != "", "no agent version reported yet"
	})
	t.Logf("the DaemonSet pod's agent reported XenHost %s; %s in all", node, time.Since(total).Round(time.Second))
}

// buildLabImages writes the node's two images as OCI archives into dir: xenclone's one image
// (hack/image.sh, as `make image` builds it) and the runtime's sandbox image (hack/lab/node/pause).
func buildLabImages(t *testing.T, dir string) {
	t.Helper()
	root := filepath.Join("..", "..", "..")
	cmd := exec.Command("hack/image.sh", filepath.Join(dir, "xenclone.tar"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "IMG="+labAgentImage)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/image.sh: %v\n%s", err, out)
	}
	pause := filepath.Join(t.TempDir(), "pause")
	cmd = exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", pause, "./hack/lab/node/pause")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build pause: %v\n%s", err, out)
	}
	cmd = exec.Command("go", "run", "./hack/image", "-out", filepath.Join(dir, "pause.tar"), "-tag", labSandboxImage,
		"-entrypoint", "/pause", "-user", "65535:65535", "-file", "pause="+pause+":0755")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pause image: %v\n%s", err, out)
	}
}

// renderInstall renders config/default and config/admission as `kubectl apply -k` does, with
// what the lab needs instead of a registry and a cluster network: the images imported on the
// node (pull policy Never), the API server at the node's forwarder (127.0.0.1:6443, a name the
// envtest serving certificate carries; there is no kube-proxy for the kubernetes Service), and
// no manager pod (the lab's controller is the test's, as in TestClonesOnRealXen).
func renderInstall(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, dir := range []string{"default", "admission"} {
		objs, err := testenv.Render(filepath.Join("..", "..", "..", "config", dir))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, objs...)
	}
	for _, o := range out {
		switch o.GetKind() {
		case "Deployment":
			_ = unstructured.SetNestedField(o.Object, int64(0), "spec", "replicas")
		case "DaemonSet":
			// Walked by hand: krusty's maps hold ints, which the Nested* helpers cannot deep-copy.
			cs := o.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
			for i := range cs {
				c := cs[i].(map[string]any)
				c["image"] = labAgentImage
				c["imagePullPolicy"] = "Never"
				env, _ := c["env"].([]any)
				c["env"] = append(env,
					map[string]any{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
					map[string]any{"name": "KUBERNETES_SERVICE_PORT", "value": "6443"})
			}
		}
	}
	return out
}

// waitFor polls cond every 2 s until it holds, failing with its last word after timeout.
func waitFor(ctx context.Context, t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, why := cond()
		if ok {
			return
		}
		if why != last {
			t.Logf("waiting for %s: %s", what, why)
			last = why
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, timeout, why)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}
