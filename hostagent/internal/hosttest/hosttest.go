// Package hosttest holds the skip policy and fixtures shared by the host-real tests: tests
// that drive real lvm2, loop devices and mounts. Such a test may skip only outside CI, and says
// so loudly; under CI=true a missing prerequisite fails the test.
package hosttest

import (
	"fmt"
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

// VG is a real volume group on a loop device, made for one test.
type VG struct {
	Name, Dev string
	// LVM is the real lvm binary.
	LVM string
	// Config is lvm --config text for it: activation off (this kernel may have no
	// device-mapper), only its loop device visible, no /etc/lvm backups.
	Config string
}

// NewVG makes a loop device of size bytes and a VG named name on it. Everything is undone when
// the test ends, also when it fails: the VG and PV are removed, the loop device detached, and
// lvm must not see the VG any more.
func NewVG(t testing.TB, name string, size int64) VG {
	t.Helper()
	RequireRoot(t)
	RequireCommands(t, "lvm", "losetup")
	lvmPath, err := LookPath("lvm")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last (after the loop device is detached): lvm scanning
	// every loop device (where the VG could only be) must not find it any more.
	t.Cleanup(func() {
		out, _ := exec.Command(lvmPath, "vgs", "--config", `global{activation=0} devices{global_filter=["a|^/dev/loop|","r|.*|"]}`,
			"--noheadings", "-o", "vg_name").CombinedOutput()
		for _, l := range strings.Fields(string(out)) {
			if l == name {
				t.Errorf("volume group %s still visible to lvm after the test", name)
			}
		}
	})
	dev := LoopDevice(t, SparseFile(t, size))
	// The filter keeps lvm away from every other block device on this shared machine (other
	// tests' loop devices) and makes the tests independent of them.
	vg := VG{Name: name, Dev: dev, LVM: lvmPath,
		Config: `global{activation=0} devices{global_filter=["a|^` + dev + `$|","r|.*|"] obtain_device_list_from_udev=0} backup{backup=0 archive=0}`}
	vg.run(t, "pvcreate", "--yes", dev)
	t.Cleanup(func() { vg.cleanup(t, "pvremove", "--yes", "-ff", dev) })
	vg.run(t, "vgcreate", name, dev)
	t.Cleanup(func() { vg.cleanup(t, "vgremove", "--yes", "-f", name) })
	return vg
}

// Run runs the real lvm on the VG's config (set-up by a test, not the code under test).
func (vg VG) Run(sub string, args ...string) ([]byte, error) {
	cmd := exec.Command(vg.LVM, append([]string{sub, "--config", vg.Config}, args...)...)
	cmd.Env = append(os.Environ(), "LVM_SUPPRESS_FD_WARNINGS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("lvm %s %s: %w: %s", sub, strings.Join(args, " "), err, out)
	}
	return out, nil
}

func (vg VG) run(t testing.TB, sub string, args ...string) {
	t.Helper()
	if _, err := vg.Run(sub, args...); err != nil {
		t.Fatal(err)
	}
}

func (vg VG) cleanup(t testing.TB, sub string, args ...string) {
	if _, err := vg.Run(sub, args...); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}
