package console

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSecondSessionIsTurnedAway(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "console")
	first, err := Acquire(dir, "xc-web-1")
	if err != nil {
		t.Fatalf("first session: %v", err)
	}
	// flock locks belong to the open file, so a second open in this process conflicts exactly
	// as another process's would.
	_, err = Acquire(dir, "xc-web-1")
	var b *BusyError
	if !errors.As(err, &b) {
		t.Fatalf("second session: got %v, want a *BusyError", err)
	}
	if b.PID != os.Getpid() || time.Since(b.Since) > time.Minute {
		t.Errorf("busy error names pid %d since %s, want pid %d, now", b.PID, b.Since, os.Getpid())
	}
	want := "another console session is attached to domain xc-web-1 (pid " + strconv.Itoa(os.Getpid()) + " since "
	if !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "); detach it first (Ctrl-])") {
		t.Errorf("message %q, want %q…; detach it first (Ctrl-])", err, want)
	}

	// Another domain's console is independent.
	other, err := Acquire(dir, "xc-web-2")
	if err != nil {
		t.Fatalf("another domain: %v", err)
	}
	other.Release()

	first.Release()
	again, err := Acquire(dir, "xc-web-1")
	if err != nil {
		t.Fatalf("after the first detached: %v", err)
	}
	again.Release()
}

func TestBusyWithoutRecordSaysHolderUnknown(t *testing.T) {
	e := &BusyError{Domain: "d1"}
	if got := e.Error(); !strings.Contains(got, "(holder unknown)") {
		t.Errorf("%q does not say the holder is unknown", got)
	}
}

func TestCommandPutsThePrefixFirst(t *testing.T) {
	got := Command(strings.Fields("nsenter -t 1 -m -u -i -n -p --"), "xl", "xc-web-1")
	want := "nsenter -t 1 -m -u -i -n -p -- xl console xc-web-1"
	if strings.Join(got, " ") != want {
		t.Errorf("argv %q, want %q", got, want)
	}
	if got := Command(nil, "/usr/sbin/xl", "d1"); strings.Join(got, " ") != "/usr/sbin/xl console d1" {
		t.Errorf("without a prefix: %q", got)
	}
}

// fakeXL writes a script that prints its arguments, as xl console would attach.
func fakeXL(t *testing.T, exit int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "xl")
	script := "#!/bin/sh\necho \"xl $*\"\nexit " + strconv.Itoa(exit) + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMainRunsXLBehindThePrefixFromTheEnvironment(t *testing.T) {
	xl, state := fakeXL(t, 0), t.TempDir()
	// env(1) as the prefix: it runs the rest of the line, as nsenter would.
	t.Setenv(PrefixEnv, "env XC_TEST=1")
	var out, errOut bytes.Buffer
	code := Main([]string{"--state-dir", state, "--xl", xl, "xc-web-1"}, strings.NewReader(""), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if got := out.String(); got != "xl console xc-web-1\n" {
		t.Errorf("xl ran as %q", got)
	}
	if _, err := os.Stat(filepath.Join(state, "console", "xc-web-1.lock")); err != nil {
		t.Errorf("lock file: %v", err)
	}
}

func TestRunRefusesWhileAnotherSessionIsAttached(t *testing.T) {
	state := t.TempDir()
	held, err := Acquire(filepath.Join(state, "console"), "xc-web-1")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	var out, errOut bytes.Buffer
	code := Run(Options{Domain: "xc-web-1", StateDir: state, XL: fakeXL(t, 0)}, strings.NewReader(""), &out, &errOut)
	if code != 1 || out.Len() != 0 {
		t.Fatalf("exit %d, stdout %q: want 1 and xl not run", code, out.String())
	}
	if !strings.Contains(errOut.String(), "another console session is attached to domain xc-web-1 (pid ") {
		t.Errorf("stderr %q", errOut.String())
	}
}

func TestRunRefusesNamesXLWouldMisread(t *testing.T) {
	for _, name := range []string{"12345", "-h", "a b", "../etc", ""} {
		var out, errOut bytes.Buffer
		code := Run(Options{Domain: name, StateDir: t.TempDir(), XL: fakeXL(t, 0)}, strings.NewReader(""), &out, &errOut)
		if code != 1 || out.Len() != 0 || !strings.Contains(errOut.String(), "domain name") {
			t.Errorf("domain %q: exit %d, stdout %q, stderr %q; want refused", name, code, out.String(), errOut.String())
		}
	}
}

func TestRunPassesXLsExitStatusOn(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Run(Options{Domain: "xc-web-1", StateDir: t.TempDir(), XL: fakeXL(t, 3)}, strings.NewReader(""), &out, &errOut)
	if code != 3 {
		t.Errorf("exit %d, want xl's 3", code)
	}
}

func TestMainUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main(nil, strings.NewReader(""), &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage: xenclone console") {
		t.Errorf("no domain: exit %d, stderr %q", code, errOut.String())
	}
}
