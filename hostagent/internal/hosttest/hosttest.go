// Package hosttest holds the skip policy and fixtures shared by the host-real tests: tests
// that drive real lvm2, loop devices and mounts. Such a test may skip only outside CI, and says
// so loudly; under CI=true a missing prerequisite fails the test.
package hosttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where nothing may skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// skipOrFail skips outside CI and fails under CI.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true but a host-real prerequisite is missing: "+format, args...)
	}
	t.Skipf("SKIP (loudly, host-real test): "+format+"; run `make test` as root to run it", args...)
}

// RequireRoot skips (outside CI) or fails (in CI) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root (euid %d)", os.Geteuid())
	}
}

// RequireCommands skips (outside CI) or fails (in CI) unless every command is on PATH or in
// /sbin, /usr/sbin.
func RequireCommands(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := LookPath(n); err != nil {
			skipOrFail(t, "needs %s on PATH (hack/host-deps.sh installs it)", n)
		}
	}
}

// LookPath finds a command on PATH or in the sbin folders, which a non-login root shell may
// not have on PATH.
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return exec.LookPath(name)
}

// SparseFile creates a sparse file of size bytes in the test's temp dir.
func SparseFile(t testing.TB, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// LoopDevice attaches file to a free loop device and detaches it when the test ends, even if
// it fails.
func LoopDevice(t testing.TB, file string) string {
	t.Helper()
	RequireRoot(t)
	losetup, err := LookPath("losetup")
	if err != nil {
		skipOrFail(t, "needs losetup")
	}
	out, err := exec.Command(losetup, "--find", "--show", file).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup --find --show %s: %v: %s", file, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command(losetup, "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
		}
	})
	return dev
}
