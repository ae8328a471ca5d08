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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hack/testenv"
)

// The lab's dom0 is a real Kubernetes node (containerd, Debian's runc and a kubelet,
// hack/lab/node-assets.sh) of the control plane the test starts (kube-apiserver,
// kube-controller-manager, kube-scheduler: hack/testenv.StartCluster); the agent runs there as
// the DaemonSet pod that config/default ships, installed by hack/lab/node/install.

// Names the lab node's runtime knows its images by (imported, never pulled).
const (
	labAgentImage = "ghcr.io/xenclone/xenclone:lab"
	// labAgentNext is a second build of the same tree with another version stamp (so another
	// binary and image digest): the image a DaemonSet upgrade moves to.
	labAgentNext = "ghcr.io/xenclone/xenclone:lab-next"
	// labVersion and labNextVersion are the two builds' version stamps, which the agent
	// reports in its XenHost's status.agentVersion.
	labVersion, labNextVersion = "lab", "lab-next"
	labSandboxImage            = "registry.k8s.io/pause:lab"
	agentNamespace             = "xenclone-system"
	agentSelector              = "app.kubernetes.io/component"
	// nodeCtr is containerd's CLI in dom0, on the share: lab-rpc's PATH does not have it.
	nodeCtr = "/lab/node/ctr -n k8s.io"
)

// nodeAssets is the folder hack/lab/node-assets.sh filled (the kubelet, containerd, runc).
func nodeAssets(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("XENCLONE_LAB_NODE")
	if dir == "" {
		msg := "XENCLONE_LAB_NODE is not set: run the lab tests with `make test-e2e` (hack/lab/lab.sh test)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIP (loudly): " + msg)
	}
	return dir
}

// shareNode puts into the lab's share what dom0 needs to become a node: the binaries, the two
// images as OCI archives, start-node.sh and the kubelet's credentials (a node identity;
// system:masters spares the lab the Node authorizer's bootstrap).
func shareNode(t *testing.T, cl *testenv.Cluster, assets, share string) {
	t.Helper()
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
	start := time.Now()
	buildLabImages(t, filepath.Join(nodeDir, "images"))
	t.Logf("images built in %s", time.Since(start).Round(time.Second))
	kubelet, err := cl.Environment.AddUser(envtest.User{Name: "system:node:" + node, Groups: []string{"system:nodes", "system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(share, "kubelet.kubeconfig"), kubeconfig(kubelet.Config()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// apiPort is the port of the test's API server on 127.0.0.1.
func apiPort(t *testing.T, cl *testenv.Cluster) int {
	t.Helper()
	u, err := url.Parse(cl.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("API server address %q: %v", cl.Config.Host, err)
	}
	return p
}

// startNode makes dom0 a Ready node and installs xenclone as a user would (kubectl apply -k of
// hack/lab/node/install); no agent pod runs until startAgent labels the node.
func (e *env) startNode() {
	t := e.t
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpNode()
		}
	})
	start := time.Now()
	t.Log(e.lab.Sh(t, "NODE_NAME="+node+" /lab/node/start-node.sh"))
	ctx := context.Background()
	n := &corev1.Node{}
	waitFor(ctx, t, 10*time.Minute, "node "+node+" Ready", func() (bool, string) {
		if err := e.k.Get(ctx, client.ObjectKey{Name: node}, n); err != nil {
			return false, err.Error()
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, c.Reason + ": " + c.Message
			}
		}
		return false, "no Ready condition"
	})
	t.Logf("node %s Ready %s after start-node.sh began (kubelet %s, runtime %s)", node, time.Since(start).Round(time.Second),
		n.Status.NodeInfo.KubeletVersion, n.Status.NodeInfo.ContainerRuntimeVersion)
	objs, err := testenv.Render(filepath.Join("..", "node", "install"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := e.k.Patch(ctx, o, client.Apply, client.ForceOwnership, client.FieldOwner("kubectl")); err != nil {
			t.Fatalf("apply %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

// startAgent labels the node as a Xen host, as the README says; the DaemonSet controller and
// the scheduler then place the agent's pod there. It waits for the pod to be Ready and for its
// agent's XenHost.
func (e *env) startAgent() {
	e.t.Helper()
	ctx := context.Background()
	n := &corev1.Node{}
	if err := e.k.Get(ctx, client.ObjectKey{Name: node}, n); err != nil {
		e.t.Fatal(err)
	}
	patch := client.MergeFrom(n.DeepCopy())
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels["vm.xenclone.dev/xen-host"] = "true"
	if err := e.k.Patch(ctx, n, patch); err != nil {
		e.t.Fatal(err)
	}
	start := time.Now()
	pod := e.waitAgentPod("")
	e.t.Logf("agent pod %s Ready %s after the label", pod.Name, time.Since(start).Round(time.Second))
	e.waitHost()
}

// waitAgentPod waits for exactly one agent pod, Ready, whose UID is not old.
func (e *env) waitAgentPod(old string) corev1.Pod {
	e.t.Helper()
	ctx := context.Background()
	var pod corev1.Pod
	waitFor(ctx, e.t, 10*time.Minute, "the agent's DaemonSet pod Ready on "+node, func() (bool, string) {
		var pods corev1.PodList
		if err := e.k.List(ctx, &pods, client.InNamespace(agentNamespace), client.MatchingLabels{agentSelector: "hostagent"}); err != nil {
			return false, err.Error()
		}
		if len(pods.Items) != 1 {
			return false, fmt.Sprintf("%d agent pods", len(pods.Items))
		}
		pod = pods.Items[0]
		if string(pod.UID) == old {
			return false, "the old pod " + pod.Name + " still runs"
		}
		if pod.Spec.NodeName != node {
			return false, "agent pod on node " + pod.Spec.NodeName
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady {
				return c.Status == corev1.ConditionTrue, fmt.Sprintf("phase %s, %s %s", pod.Status.Phase, c.Reason, c.Message)
			}
		}
		return false, "phase " + string(pod.Status.Phase)
	})
	return pod
}

// rolloutRestart is `kubectl rollout restart daemonset/xenclone-hostagent`: a new pod template
// (kubectl's restartedAt annotation), so the DaemonSet controller replaces the running pod. It
// returns once the new pod is Ready.
func (e *env) rolloutRestart() {
	e.t.Helper()
	old, pod, took := e.replaceAgentPod(fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`,
		time.Now().Format(time.RFC3339)))
	e.t.Logf("rollout restart: pod %s replaced by %s, Ready after %s", old.Name, pod.Name, took.Round(time.Second))
}

// replaceAgentPod applies a strategic merge patch to the agent's DaemonSet that changes its pod
// template, and waits for the DaemonSet controller's new pod to be Ready. It checks the old
// pod's log for refusals first: that log goes with the pod.
func (e *env) replaceAgentPod(patch string) (old, pod corev1.Pod, took time.Duration) {
	e.t.Helper()
	old = e.waitAgentPod("")
	e.expectNoRefusals()
	obj := &appsv1.DaemonSet{}
	obj.Namespace, obj.Name = agentNamespace, "xenclone-hostagent"
	if err := e.k.Patch(context.Background(), obj, client.RawPatch(types.StrategicMergePatchType, []byte(patch))); err != nil {
		e.t.Fatal(err)
	}
	start := time.Now()
	pod = e.waitAgentPod(string(old.UID))
	return old, pod, time.Since(start)
}

// upgradeAgent is `kubectl set image daemonset/xenclone-hostagent hostagent=IMAGE`: the
// DaemonSet controller replaces the pod with one of the new image (imported into the node's
// containerd with the first). It waits for the new pod to be Ready with that image, running
// another image than the old pod's (by digest), and for the new agent to report its version.
func (e *env) upgradeAgent(image, version string) {
	e.t.Helper()
	ctx := context.Background()
	old, pod, took := e.replaceAgentPod(fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"hostagent","image":%q}]}}}}`, image))
	if len(pod.Status.ContainerStatuses) == 0 || len(old.Status.ContainerStatuses) == 0 {
		e.t.Fatalf("agent pods without container status: old %+v, new %+v", old.Status.ContainerStatuses, pod.Status.ContainerStatuses)
	}
	was, now := old.Status.ContainerStatuses[0], pod.Status.ContainerStatuses[0]
	if pod.Spec.Containers[0].Image != image || now.ImageID == was.ImageID {
		e.t.Fatalf("upgraded agent pod runs %s (%s), the old one %s (%s): want %s, another digest",
			pod.Spec.Containers[0].Image, now.ImageID, old.Spec.Containers[0].Image, was.ImageID, image)
	}
	start := time.Now().Add(-took)
	waitFor(ctx, e.t, stepTimeout, "the upgraded agent to report version "+version+" in XenHost "+node, func() (bool, string) {
		h := &vmv1alpha1.XenHost{}
		if err := e.k.Get(ctx, client.ObjectKey{Name: node}, h); err != nil {
			return false, err.Error()
		}
		return h.Status.AgentVersion == version, "agentVersion " + h.Status.AgentVersion
	})
	e.t.Logf("image change: pod %s (%s) replaced by %s (%s), Ready and reporting version %s after %s",
		old.Name, was.ImageID, pod.Name, now.ImageID, version, time.Since(start).Round(time.Second))
}

// agentLogFile is a dom0 shell line that sets $f to the running agent container's log (the
// kubelet's CRI log files under /var/log/pods; the newest file is the current container's).
const agentLogFile = `f=$(ls -t /var/log/pods/` + agentNamespace + `_*/hostagent/*.log 2>/dev/null | head -n1); [ -n "$f" ] || { echo "no agent pod log under /var/log/pods"; exit 1; }`

// agentLogScript prints the last n lines of the running agent container's log.
func agentLogScript(n int) string {
	return agentLogFile + fmt.Sprintf(`; tail -n %d "$f" | cut -d' ' -f4-`, n)
}

// expectNoRefusals fails the test if the running agent's log shows a request that the API
// server refused for want of a permission (RBAC) or that the admission policy denied: the pod
// runs with exactly the generated RBAC and config/admission, and a missing grant must fail the
// e2e even where the agent would retry around it. No log at all fails it too.
func (e *env) expectNoRefusals() {
	e.t.Helper()
	out, err := e.lab.try(context.Background(), time.Minute, agentLogFile+`
echo "lines: $(wc -l <"$f")"
! grep -E 'is forbidden|denied request|ValidatingAdmissionPolicy' "$f" | head -n 5 | grep .`)
	if err != nil {
		e.t.Fatalf("the agent's pod was refused a request (a permission config/ lacks?), or its log is missing: %v\n%s", err, out)
	}
	e.t.Logf("agent pod log: no RBAC or admission refusal (%s)", strings.TrimSpace(out))
}

// agentContainer is a dom0 shell line that sets $cid to the running agent container's ID.
const agentContainer = `cid=$(` + nodeCtr + ` tasks ls | awk -v c="$(` + nodeCtr + ` containers ls -q 'labels."io.kubernetes.container.name"==hostagent' | tr '\n' ' ')" '$3=="RUNNING" && index(c, $1) {print $1; exit}'); [ -n "$cid" ] || { echo "no running agent container"; exit 1; }`

// inAgent is a dom0 shell command that runs `xenclone args` in the agent container $cid
// (agentContainer), as `kubectl exec` does through the kubelet and the runtime: the
// container's own environment, XENCLONE_COMMAND_PREFIX included. id tells concurrent sessions
// apart.
func inAgent(id, args string) string {
	return nodeCtr + ` tasks exec --exec-id ` + id + ` "$cid" /usr/local/bin/xenclone ` + args
}

func (e *env) dumpNode() {
	out, _ := e.lab.Try(`echo "== kubelet"; tail -n 60 /var/log/node/kubelet.log; echo "== containerd"; tail -n 30 /var/log/node/containerd.log
echo "== containers"; ` + nodeCtr + ` containers ls 2>/dev/null | head; ` + nodeCtr + ` tasks ls 2>/dev/null; free -m`)
	e.t.Logf("dom0 node on failure:\n%s", out)
	var evs corev1.EventList
	_ = e.k.List(context.Background(), &evs)
	var lines []string
	for _, ev := range evs.Items {
		lines = append(lines, fmt.Sprintf("%s %s %s/%s: %s %s", ev.LastTimestamp.Format(time.TimeOnly), ev.Type, ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Reason, ev.Message))
	}
	sort.Strings(lines)
	if len(lines) > 80 {
		lines = lines[len(lines)-80:]
	}
	e.t.Logf("events:\n%s\n%s", strings.Join(lines, "\n"), e.cl.Logs())
}

// buildLabImages writes the node's two images as OCI archives into dir: xenclone's one image
// (hack/image.sh, as `make image` builds it) and the runtime's sandbox image (hack/lab/node/pause).
func buildLabImages(t *testing.T, dir string) {
	t.Helper()
	root := filepath.Join("..", "..", "..")
	for _, img := range []struct{ file, tag, version string }{
		{"xenclone.tar", labAgentImage, labVersion},
		{"xenclone-next.tar", labAgentNext, labNextVersion},
	} {
		cmd := exec.Command("hack/image.sh", filepath.Join(dir, img.file))
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "IMG="+img.tag, "VERSION="+img.version)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("hack/image.sh (%s): %v\n%s", img.tag, err, out)
		}
	}
	pause := filepath.Join(t.TempDir(), "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", pause, "./hack/lab/node/pause")
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
