package plugin

import (
	"bytes"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Tests without a control plane: argv building and what is read from a clone.

func TestSSHArgv(t *testing.T) {
	cases := []struct {
		user string
		args []string
		want string
	}{
		{"", nil, "ssh 10.0.0.5"},
		{"debian", nil, "ssh -l debian 10.0.0.5"},
		{"root", []string{"-i", "/k", "-p", "2222"}, "ssh -l root -i /k -p 2222 10.0.0.5"},
	}
	for _, c := range cases {
		if got := strings.Join(SSHArgv(c.user, c.args, "10.0.0.5"), " "); got != c.want {
			t.Errorf("SSHArgv(%q, %q): %q, want %q", c.user, c.args, got, c.want)
		}
	}
}

func TestSplitSSHArgs(t *testing.T) {
	name, extra, err := SplitSSHArgs([]string{"web-1", "-p", "2222"}, 1)
	if err != nil || name != "web-1" || strings.Join(extra, " ") != "-p 2222" {
		t.Errorf("with --: %q %q %v", name, extra, err)
	}
	if name, extra, err := SplitSSHArgs([]string{"web-1"}, -1); err != nil || name != "web-1" || len(extra) != 0 {
		t.Errorf("without --: %q %q %v", name, extra, err)
	}
	for _, bad := range []struct {
		args []string
		dash int
	}{{[]string{"web-1", "uptime"}, -1}, {[]string{"-p", "22"}, 0}} {
		if _, _, err := SplitSSHArgs(bad.args, bad.dash); err == nil {
			t.Errorf("%q (dash %d) accepted", bad.args, bad.dash)
		}
	}
}

func cloneWithIP(ip string) *vmv1alpha1.VMClone {
	return &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1"},
		Status: vmv1alpha1.VMCloneStatus{Guest: &vmv1alpha1.GuestStatus{IP: ip}}}
}

func TestGuestIPTakesOnlyPlainAddresses(t *testing.T) {
	for ip, want := range map[string]string{"10.0.0.5": "10.0.0.5", "fd00::5": "fd00::5"} {
		if got, err := GuestIP(cloneWithIP(ip)); err != nil || got != want {
			t.Errorf("%q: %q, %v", ip, got, err)
		}
	}
	// The guest can write its own address: nothing that ssh would read as an option or a
	// host alias passes.
	for _, ip := range []string{"-oProxyCommand=sh", "web.example", "fe80::1%eth0", "10.0.0.5 -v"} {
		if got, err := GuestIP(cloneWithIP(ip)); err == nil {
			t.Errorf("%q accepted as %q", ip, got)
		}
	}
	_, err := GuestIP(cloneWithIP(""))
	wantErr(t, err, "vmclone default/web-1 has no address known yet: see status.guest, or kubectl get vmclone web-1 -n default -o wide")
	_, err = GuestIP(&vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1"}})
	if err == nil {
		t.Error("no status.guest accepted")
	}
}

func TestConsoleCommandCarriesTheAgentsFlags(t *testing.T) {
	pod := func(args ...string) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "sidecar", Args: []string{"--xl=/nope"}},
			{Name: AgentContainer, Args: args},
		}}}
	}
	cases := []struct {
		args []string
		want string
	}{
		{nil, "/usr/local/bin/xenclone console d1"},
		{[]string{"hostagent", "--command-prefix=nsenter -t 1 --", "--state-dir=/srv/xc"}, "/usr/local/bin/xenclone console --state-dir=/srv/xc d1"},
		{[]string{"hostagent", "-state-dir", "/srv/xc", "--xl=/usr/sbin/xl"}, "/usr/local/bin/xenclone console --state-dir=/srv/xc --xl=/usr/sbin/xl d1"},
		{[]string{"hostagent", "--state-dir-extra=/x"}, "/usr/local/bin/xenclone console d1"},
	}
	for _, c := range cases {
		if got := strings.Join(ConsoleCommand(pod(c.args...), "d1"), " "); got != c.want {
			t.Errorf("agent args %q: %q, want %q", c.args, got, c.want)
		}
	}
}

func TestRunStrategyReportWarnsAboutGitOps(t *testing.T) {
	var out, errOut bytes.Buffer
	reportRunStrategy(&out, &errOut, "default/web-1", vmv1alpha1.RunStrategyHalted, vmv1alpha1.RunStrategyAlways, true, "the domain stops")
	if out.String() != "vmclone default/web-1: spec.runStrategy set to Halted (was Always); the domain stops\n" {
		t.Errorf("out %q", out.String())
	}
	if !strings.HasPrefix(errOut.String(), "warning: a GitOps tool") || strings.Count(errOut.String(), "\n") != 1 {
		t.Errorf("warning %q", errOut.String())
	}
	out.Reset()
	errOut.Reset()
	reportRunStrategy(&out, &errOut, "default/web-1", vmv1alpha1.RunStrategyHalted, vmv1alpha1.RunStrategyHalted, false, "")
	if out.String() != "vmclone default/web-1: spec.runStrategy is already Halted; nothing changed\n" || errOut.Len() != 0 {
		t.Errorf("unchanged: out %q err %q", out.String(), errOut.String())
	}
}

func TestHelpNamesEveryCommandWithAnExample(t *testing.T) {
	cmd := NewCommand(testStreams(nil))
	for _, sub := range cmd.Commands() {
		if sub.Example == "" || sub.Short == "" {
			t.Errorf("%s has no example or short help", sub.Name())
		}
	}
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kubectl xenclone [command]", "console", "vnc", "reset", "stop", "start", "ssh", "--namespace", "--kubeconfig", "--context"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}
