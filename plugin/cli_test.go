package plugin

import (
	"bytes"
	"io"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/xenclone/xenclone/hack/testenv"
)

// The commands end to end through cobra and the kubeconfig flags, short of the streams.

type streams struct{ out, errOut bytes.Buffer }

func testStreams(s *streams) genericiooptions.IOStreams {
	if s == nil {
		return genericiooptions.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}
	}
	return genericiooptions.IOStreams{In: strings.NewReader(""), Out: &s.out, ErrOut: &s.errOut}
}

func run(t *testing.T, args ...string) (*streams, error) {
	t.Helper()
	s := &streams{}
	cmd := NewCommand(testStreams(s))
	cmd.SetArgs(args)
	return s, cmd.ExecuteContext(ctxFor(t))
}

func TestCommandsThroughTheKubeconfig(t *testing.T) {
	testenv.Need(t)
	t.Parallel()
	ns, agents := newNamespace(t, "team"), newNamespace(t, "agents")
	// The kubeconfig's context names another namespace: -n must win.
	kc := kubeconfig(t, env.Config, "default")
	node := uniq("xen")
	newClone(t, ns, "web-1", placed(node, "xc-web-1"))
	newAgentPod(t, agents, node, corev1.PodRunning)

	s, err := run(t, "reset", "web-1", "--kubeconfig", kc, "-n", ns)
	if err != nil || s.out.String() != "vmclone "+ns+"/web-1: reset 1 requested (spec.resetRequests); the disk is replaced by a fresh snapshot\n" {
		t.Errorf("reset: %q, %v", s.out.String(), err)
	}
	s, err = run(t, "stop", "web-1", "--kubeconfig", kc, "--namespace", ns)
	if err != nil || !strings.HasPrefix(s.out.String(), "vmclone "+ns+"/web-1: spec.runStrategy set to Halted (was Always); ") ||
		!strings.HasPrefix(s.errOut.String(), "warning: ") {
		t.Errorf("stop: %q %q, %v", s.out.String(), s.errOut.String(), err)
	}
	s, err = run(t, "start", "web-1", "--kubeconfig", kc, "-n", ns)
	if err != nil || !strings.HasPrefix(s.out.String(), "vmclone "+ns+"/web-1: spec.runStrategy set to Always (was Halted); ") {
		t.Errorf("start: %q, %v", s.out.String(), err)
	}
	_, err = run(t, "vnc", "web-1", "--kubeconfig", kc, "-n", ns, "--agent-namespace", agents)
	if err == nil || !strings.Contains(err.Error(), "has no VNC console") {
		t.Errorf("vnc without a port: %v", err)
	}
	_, err = run(t, "ssh", "web-1", "--kubeconfig", kc, "-n", ns, "--", "-p", "2222")
	wantErr(t, err, "vmclone "+ns+"/web-1 has no address known yet: see status.guest, or kubectl get vmclone web-1 -n "+ns+" -o wide")
	_, err = run(t, "console", "--kubeconfig", kc, "-n", ns)
	if err == nil || !strings.Contains(err.Error(), "takes one VMClone NAME") {
		t.Errorf("console without NAME: %v", err)
	}
}

func TestConsoleRefusesAUserWithoutTheRole(t *testing.T) {
	testenv.Need(t)
	t.Parallel()
	ns, agents := newNamespace(t, "team"), newNamespace(t, "agents")
	cfg, _ := newUser(t, uniq("bob"))
	kc := kubeconfig(t, cfg, ns)
	_, err := run(t, "console", "web-1", "--kubeconfig", kc, "--agent-namespace", agents)
	wantErr(t, err, "you may not open consoles: creating pods/exec in namespace "+agents+" is not allowed for you; ask a cluster admin to bind the Role xenclone-console (docs/kubectl-plugin.md)")
	_, err = run(t, "vnc", "web-1", "--kubeconfig", kc, "--agent-namespace", agents)
	wantErr(t, err, "you may not open VNC consoles: creating pods/portforward in namespace "+agents+" is not allowed for you; ask a cluster admin to bind the Role xenclone-console (docs/kubectl-plugin.md)")
}
