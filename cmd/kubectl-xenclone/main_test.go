package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The test binary plays kubectl-xenclone when asked to, so the exit status and the stderr
// line are checked as a user's shell sees them.
func TestMain(m *testing.M) {
	if os.Getenv("XENCLONE_PLUGIN_MAIN") == "1" {
		os.Args = append([]string{"kubectl-xenclone"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runPlugin(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "XENCLONE_PLUGIN_MAIN=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func TestAnErrorIsOneLineAndExitStatus1(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-kubeconfig")
	_, stderr, code := runPlugin(t, "reset", "web-1", "--kubeconfig", missing)
	if code != 1 || !strings.HasPrefix(stderr, "error: ") || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "no-kubeconfig") {
		t.Errorf("exit %d, stderr %q: want 1 and one line \"error: …\" naming the kubeconfig", code, stderr)
	}
	_, stderr, code = runPlugin(t, "reset")
	if code != 1 || stderr != "error: reset takes one VMClone NAME, got 0 arguments; see kubectl xenclone reset --help\n" {
		t.Errorf("no NAME: exit %d, stderr %q", code, stderr)
	}
}

func TestHelpExitsZero(t *testing.T) {
	stdout, _, code := runPlugin(t, "console", "--help")
	if code != 0 || !strings.Contains(stdout, "kubectl xenclone console NAME") || !strings.Contains(stdout, "Ctrl-]") {
		t.Errorf("exit %d, help %q", code, stdout)
	}
}
