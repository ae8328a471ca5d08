package plugin

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hack/testenv"
)

// wantErr fails unless err's message is want (a full line the user reads).
func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	if err.Error() != want {
		t.Errorf("error\n  %q\nwant\n  %q", err, want)
	}
}

func TestResolveConsoleFollowsCloneToItsNodesAgentPod(t *testing.T) {
	testenv.Need(t)
	t.Parallel()
	ctx, ns, agents := ctxFor(t), newNamespace(t, "team"), newNamespace(t, "agents")
	nodeA, nodeB := uniq("xen-a"), uniq("xen-b")
	newAgentPod(t, agents, nodeA, corev1.PodRunning)
	// On node B an old pod has failed and its replacement runs: the running one is the agent.
	newAgentPod(t, agents, nodeB, corev1.PodFailed)
	want := newAgentPod(t, agents, nodeB, corev1.PodRunning)
	newClone(t, ns, "web-1", placed(nodeB, "xc-web-1"))

	got, err := ResolveConsole(ctx, admin, ns, "web-1", agents)
	if err != nil {
		t.Fatal(err)
	}
	if got.Pod.Name != want.Name || got.Node != nodeB || got.Domain.Name != "xc-web-1" || got.Ref() != ns+"/web-1" {
		t.Errorf("target pod %s node %s domain %s ref %s, want pod %s node %s domain xc-web-1", got.Pod.Name, got.Node, got.Domain.Name, got.Ref(), want.Name, nodeB)
	}
	if argv := strings.Join(ConsoleCommand(got.Pod, got.Domain.Name), " "); argv != "/usr/local/bin/xenclone console --state-dir=/var/lib/xenclone xc-web-1" {
		t.Errorf("console command %q", argv)
	}
}

func TestResolveExplainsWhatIsMissing(t *testing.T) {
	testenv.Need(t)
	t.Parallel()
	ctx, ns, agents := ctxFor(t), newNamespace(t, "team"), newNamespace(t, "agents")
	node := uniq("xen")

	_, err := ResolveConsole(ctx, admin, ns, "nope", agents)
	wantErr(t, err, "vmclone "+ns+"/nope not found (kubectl get vmclones -n "+ns+" lists them)")

	newClone(t, ns, "unbound", nil)
	_, err = ResolveConsole(ctx, admin, ns, "unbound", agents)
	wantErr(t, err, "vmclone "+ns+"/unbound is not placed on a host yet; see kubectl describe vmclone unbound -n "+ns)

	bound := placed(node, "")
	bound.Domain, bound.ObservedBindingGeneration, bound.Phase = nil, 0, vmv1alpha1.PhasePending
	newClone(t, ns, "nodomain", bound)
	_, err = ResolveConsole(ctx, admin, ns, "nodomain", agents)
	wantErr(t, err, "vmclone "+ns+"/nodomain has no Xen domain on host "+node+" yet (phase Pending); see kubectl describe vmclone nodomain -n "+ns)

	// Moved to another host: the old host's report (and its domain) does not count.
	moved := placed(node, "xc-moved")
	moved.BindingGeneration = 2
	newClone(t, ns, "moved", moved)
	_, err = ResolveConsole(ctx, admin, ns, "moved", agents)
	wantErr(t, err, "vmclone "+ns+"/moved has no Xen domain on host "+node+" yet (phase Running); see kubectl describe vmclone moved -n "+ns)

	newClone(t, ns, "novnc", placed(node, "xc-novnc"))
	_, err = ResolveVNC(ctx, admin, ns, "novnc", agents)
	wantErr(t, err, "vmclone "+ns+"/novnc has no VNC console (status.domain.vncPort is empty): its template does not enable one (spec.domain.vnc.enabled), or domain xc-novnc has not published its port yet")
}

func TestResolveVNCGivesThePort(t *testing.T) {
	testenv.Need(t)
	t.Parallel()
	ctx, ns, agents := ctxFor(t), newNamespace(t, "team"), newNamespace(t, "agents")
	node := uniq("xen")
	pod := newAgentPod(t, agents, node, corev1.PodRunning)
	st := placed(node, "xc-web-1")
	st.Domain.VNCPort = 5901
	newClone(t, ns, "web-1", st)
	got, err := ResolveVNC(ctx, admin, ns, "web-1", agents)
	if err != nil {
		t.Fatal(err)
	}
	if got.Domain.VNCPort != 5901 || got.Pod.Name != pod.Name {
		t.Errorf("vnc port %d on pod %s, want 5901 on %s", got.Domain.VNCPort, got.Pod.Name, pod.Name)
	}
}

func TestAgentPodMustRun(t *testing.T) {
	testenv.Need(t)
	t.Parallel()
	ctx, ns, agents := ctxFor(t), newNamespace(t, "team"), newNamespace(t, "agents")
	node := uniq("xen")
	pod := newAgentPod(t, agents, node, corev1.PodPending)
	newClone(t, ns, "web-1", placed(node, "xc-web-1"))
	_, err := ResolveConsole(ctx, admin, ns, "web-1", agents)
	wantErr(t, err, "hostagent pod "+agents+"/"+pod.Name+" on node "+node+" is Pending, not Running; see kubectl describe pod "+pod.Name+" -n "+agents)
}

func TestNoAgentPodSaysWhy(t *testing.T) {
	testenv.Need(t)
	t.Parallel()
	ctx, ns, agents := ctxFor(t), newNamespace(t, "team"), newNamespace(t, "agents")

	// The playground: the host reports (XenHost) but its agent is a process, not a pod.
	sim := uniq("sim")
	newXenHost(t, sim)
	newClone(t, ns, "web-1", placed(sim, "xc-web-1"))
	_, err := ResolveConsole(ctx, admin, ns, "web-1", agents)
	wantErr(t, err, "no hostagent pod on node "+sim+" in namespace "+agents+": consoles go through the hostagent DaemonSet's pod (kubectl apply -k config/default); the playground runs its agents as processes and has none")

	// A node nothing is known of: the DaemonSet is missing or elsewhere.
	bare := uniq("xen")
	newClone(t, ns, "web-2", placed(bare, "xc-web-2"))
	_, err = ResolveConsole(ctx, admin, ns, "web-2", agents)
	wantErr(t, err, "no hostagent pod on node "+bare+" in namespace "+agents+": is the hostagent DaemonSet deployed (kubectl get daemonset -n "+agents+")? --agent-namespace names another namespace")

	// An agent pod in another namespace is not the one asked for.
	newAgentPod(t, newNamespace(t, "other"), bare, corev1.PodRunning)
	_, err = ResolveConsole(ctx, admin, ns, "web-2", agents)
	if err == nil || !strings.HasPrefix(err.Error(), "no hostagent pod on node "+bare) {
		t.Errorf("pod in another namespace was used: %v", err)
	}
}

func TestConsoleNeedsTheConsoleRole(t *testing.T) {
	testenv.Need(t)
	t.Parallel()
	ctx, agents := ctxFor(t), newNamespace(t, "agents")
	user := uniq("alice")
	_, c := newUser(t, user)

	wantErr(t, CheckAccess(ctx, c, agents, ExecPermission),
		"you may not open consoles: creating pods/exec in namespace "+agents+" is not allowed for you; ask a cluster admin to bind the Role xenclone-console (docs/kubectl-plugin.md)")
	wantErr(t, CheckAccess(ctx, c, agents, PortForwardPermission),
		"you may not open VNC consoles: creating pods/portforward in namespace "+agents+" is not allowed for you; ask a cluster admin to bind the Role xenclone-console (docs/kubectl-plugin.md)")

	installConsoleRole(t, agents, user)
	eventually(t, "exec allowed after the RoleBinding", func() error { return CheckAccess(ctx, c, agents, ExecPermission) })
	if err := CheckAccess(ctx, c, agents, PortForwardPermission); err != nil {
		t.Errorf("port-forward with the console Role: %v", err)
	}
	// The Role finds the agent pod (get, list pods) ...
	node := uniq("xen")
	pod := newAgentPod(t, agents, node, corev1.PodRunning)
	got, err := AgentPod(ctx, c, agents, node)
	if err != nil || got.Name != pod.Name {
		t.Errorf("agent pod as %s: %v", user, err)
	}
	// ... and is the agent namespace's only: exec anywhere else stays closed.
	if err := CheckAccess(ctx, c, newNamespace(t, "elsewhere"), ExecPermission); err == nil {
		t.Error("the console Role allowed exec outside its namespace")
	}
}
