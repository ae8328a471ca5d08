package console

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// helperEnv makes this test binary run `xenclone console` (TestMain), so a test can signal
// the session as the runtime does without signalling the test process.
const helperEnv = "XENCLONE_CONSOLE_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// signalXL writes an xl that records its pid, process group and the terminal's foreground
// group (fields 5 and 8 of /proc/self/stat), says TERM when it gets one, and otherwise stays
// attached; and a prefix that, like nsenter -p, runs it as a child and passes no signal on.
func signalXL(t *testing.T) (xl, prefix, dir string) {
	t.Helper()
	dir = t.TempDir()
	xl = filepath.Join(dir, "xl")
	script := `#!/bin/sh
trap 'echo TERM >` + dir + `/signalled; exit 0' TERM
read -r _ _ _ _ pgrp _ _ tpgid _ </proc/$$/stat
echo "$$ $pgrp $tpgid" >` + dir + `/attached.tmp && mv ` + dir + `/attached.tmp ` + dir + `/attached
while :; do sleep 0.05; done
`
	prefix = filepath.Join(dir, "prefix")
	wrapper := "#!/bin/sh\n\"$@\"\nexit $?\n"
	for path, body := range map[string]string{xl: script, prefix: wrapper} {
		if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return xl, prefix, dir
}

// waitAttached waits for the fake xl to run and returns its pid, group and the terminal's
// foreground group.
func waitAttached(t *testing.T, dir string) (pid, pgrp, tpgid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(dir, "attached"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		pid, _ = strconv.Atoi(f[0])
		pgrp, _ = strconv.Atoi(f[1])
		tpgid, _ = strconv.Atoi(f[2])
		return pid, pgrp, tpgid
	}
	t.Fatal("the fake xl never attached")
	return 0, 0, 0
}

// A SIGTERM to the session (ctr or the kubelet ending the exec, a timeout) reaches xl behind a
// prefix that does not pass signals on, the session waits for it, and the lock is free after.
func TestSigtermEndsXLBehindThePrefixAndFreesTheLock(t *testing.T) {
	xl, prefix, dir := signalXL(t)
	state := t.TempDir()
	cmd := exec.Command(os.Args[0], "--state-dir", state, "--xl", xl, "xc-web-1")
	cmd.Env = append(os.Environ(), helperEnv+"=1", PrefixEnv+"="+prefix)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	xlPID, _, _ := waitAttached(t, dir)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		_ = syscall.Kill(xlPID, syscall.SIGKILL)
		// Or it ended and the xl it left behind holds its stderr open: the hang of a ctr exec.
		t.Fatal("the session did not end within 10 s of SIGTERM")
	case err := <-done:
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 128+int(syscall.SIGTERM) {
			t.Errorf("session ended with %v (stderr %q), want exit status 143", err, errOut.String())
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "signalled")); err != nil || strings.TrimSpace(string(b)) != "TERM" {
		t.Errorf("xl was not sent SIGTERM (%v); it would stay attached with nobody holding the lock", err)
	}
	if running(xlPID) {
		_ = syscall.Kill(xlPID, syscall.SIGKILL)
		t.Errorf("xl (pid %d) still runs after the session ended", xlPID)
	}
	l, err := Acquire(filepath.Join(state, "console"), "xc-web-1")
	if err != nil {
		t.Fatalf("the next session: %v", err)
	}
	l.Release()
}

// On a terminal, xl's group is the terminal's foreground group: a background group would be
// stopped when xl sets the terminal raw.
func TestXLOwnsTheTerminalsForeground(t *testing.T) {
	ptmx, pts := openPTY(t)
	xl, prefix, dir := signalXL(t)
	cmd := exec.Command(os.Args[0], "--state-dir", t.TempDir(), "--xl", xl, "xc-web-1")
	cmd.Env = append(os.Environ(), helperEnv+"=1", PrefixEnv+"="+prefix)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	// As the runtime starts an exec with a TTY: a session of its own, the terminal its own.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, ptmx) }()
	_, pgrp, tpgid := waitAttached(t, dir)
	if pgrp == cmd.Process.Pid {
		t.Errorf("xl runs in the session's process group %d, want one of its own", pgrp)
	}
	if tpgid != pgrp {
		t.Errorf("terminal's foreground group %d, want xl's group %d", tpgid, pgrp)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err == nil {
		t.Error("the session ended 0 after SIGTERM, want 143")
	}
}

// running says whether pid is a live process: not gone, and not a zombie its new parent has
// yet to reap (xl's parent, the prefix, died of the signal).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// openPTY opens a pseudo-terminal pair (posix_openpt, unlockpt, ptsname by hand).
func openPTY(t *testing.T) (ptmx, pts *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	fd := int(ptmx.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the terminal: %v", err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptmx, pts
}
