package inroot

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"
)

// guest lays out a guest tree next to a host canary: dir/guest is the root, dir/canary a file
// the guest must never reach.
func guest(t *testing.T) (root *Root, g, canary string) {
	t.Helper()
	dir := t.TempDir()
	g = filepath.Join(dir, "guest")
	canary = filepath.Join(dir, "canary")
	for _, d := range []string{"etc/ssh", "var/lib/dbus", "tmp"} {
		if err := os.MkdirAll(filepath.Join(g, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(canary, []byte("host canary\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Open(g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, g, canary
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func canaryUnchanged(t *testing.T, canary string) {
	t.Helper()
	b, err := os.ReadFile(canary)
	if err != nil || string(b) != "host canary\n" {
		t.Fatalf("host canary changed: %q, %v", b, err)
	}
}

func TestAbsoluteSymlinkResolvesInsideGuest(t *testing.T) {
	r, g, canary := guest(t)
	write(t, filepath.Join(g, "etc/shadow"), "root:*:guest\n")
	symlink(t, "/etc/shadow", filepath.Join(g, "etc/hostname"))
	// The same link, aimed at the host canary's absolute path: inside the guest that path
	// does not exist, so the write fails instead of reaching the host.
	symlink(t, canary, filepath.Join(g, "etc/motd"))

	if err := r.WriteFile("/etc/hostname", []byte("web-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(g, "etc/shadow")); string(b) != "web-1\n" {
		t.Fatalf("guest /etc/shadow = %q: the link did not resolve inside the guest", b)
	}
	if err := r.WriteFile("/etc/motd", []byte("x"), 0o644); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("write through a link to the host canary path: %v, want not-exist inside the guest", err)
	}
	if _, err := r.Truncate("/etc/motd"); err != nil {
		t.Fatalf("truncate through a dangling-in-guest link: %v", err)
	}
	canaryUnchanged(t, canary)
}

func TestDotDotAndRelativeLinksStayInside(t *testing.T) {
	r, g, canary := guest(t)
	// ../../../../canary from /etc/ssh climbs to the guest root, not to the canary's folder.
	symlink(t, "../../../../../canary", filepath.Join(g, "etc/ssh/sshd_config"))
	// A directory link that tries to leave: /etc/sysconfig -> ../../.. (the guest root).
	symlink(t, "../../..", filepath.Join(g, "etc/sysconfig"))
	write(t, filepath.Join(g, "canary"), "guest canary\n")

	if b, err := r.ReadFile("/etc/ssh/sshd_config"); err != nil || string(b) != "guest canary\n" {
		t.Fatalf("read = %q, %v; want the guest's /canary", b, err)
	}
	if err := r.WriteFile("/../../../canary", []byte("scrubbed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("/etc/sysconfig/canary", []byte("scrubbed twice\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(g, "canary")); string(b) != "scrubbed twice\n" {
		t.Fatalf("guest /canary = %q", b)
	}
	if removed, err := r.Remove("/etc/sysconfig/canary"); err != nil || !removed {
		t.Fatalf("remove: %v, %v", removed, err)
	}
	canaryUnchanged(t, canary)
}

func TestNonRegularFilesRefused(t *testing.T) {
	r, g, _ := guest(t)
	if err := syscall.Mkfifo(filepath.Join(g, "etc/hostname"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A character device like /dev/null (1:3): harmless if opened, but never a file to edit.
	if err := syscall.Mknod(filepath.Join(g, "etc/machine-id"), syscall.S_IFCHR|0o644, 1<<8|3); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(g, "etc/hosts"), 0o755); err != nil {
		t.Fatal(err)
	}
	symlink(t, "/etc/hostname", filepath.Join(g, "etc/HOSTNAME")) // a link to the FIFO

	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, name := range []string{"/etc/hostname", "/etc/HOSTNAME", "/etc/machine-id", "/etc/hosts"} {
			if err := r.WriteFile(name, []byte("x"), 0o644); !errors.Is(err, ErrNotRegular) {
				t.Errorf("WriteFile(%s) = %v, want ErrNotRegular", name, err)
			}
			if _, err := r.ReadFile(name); !errors.Is(err, ErrNotRegular) {
				t.Errorf("ReadFile(%s) = %v, want ErrNotRegular", name, err)
			}
			if _, err := r.Truncate(name); !errors.Is(err, ErrNotRegular) {
				t.Errorf("Truncate(%s) = %v, want ErrNotRegular", name, err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("blocked on a FIFO or device")
	}
	if _, err := r.Remove("/etc/hosts"); err == nil {
		t.Fatal("Remove of a directory succeeded")
	}
}

func TestRemoveNeverFollows(t *testing.T) {
	r, g, canary := guest(t)
	write(t, filepath.Join(g, "etc/ssh/ssh_host_rsa_key"), "key")
	symlink(t, canary, filepath.Join(g, "etc/ssh/ssh_host_ed25519_key"))
	if err := os.MkdirAll(filepath.Join(g, "var/lib/dhcp/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(g, "var/lib/dhcp/sub/lease"), "l")
	symlink(t, filepath.Dir(canary), filepath.Join(g, "var/lib/dhcp/hostdir")) // the canary's folder

	got, err := r.Glob("/etc/ssh/*_host_*")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("glob %v, want %v", got, want)
	}
	for _, p := range got {
		if ok, err := r.Remove(p); err != nil || !ok {
			t.Fatalf("remove %s: %v %v", p, ok, err)
		}
	}
	removed, err := r.RemoveAll("/var/lib/dhcp")
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 4 { // hostdir (the link itself), lease, sub, dhcp
		t.Fatalf("removed %v", removed)
	}
	canaryUnchanged(t, canary)
	if _, err := os.Stat(filepath.Dir(canary)); err != nil {
		t.Fatal("host folder behind the link was removed")
	}
}

func TestWriteKeepsModeAndCreates(t *testing.T) {
	r, g, _ := guest(t)
	p := filepath.Join(g, "etc/secret")
	if err := os.WriteFile(p, []byte("long old content"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("/etc/secret", []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	b, _ := os.ReadFile(p)
	if st.Mode().Perm() != 0o600 || !bytes.Equal(b, []byte("new")) {
		t.Fatalf("mode %v content %q", st.Mode(), b)
	}
	if err := r.WriteFile("/etc/new", []byte("n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, err := r.Truncate("/etc/new"); err != nil || !changed {
		t.Fatalf("truncate: %v %v", changed, err)
	}
	if changed, err := r.Truncate("/etc/new"); err != nil || changed {
		t.Fatalf("second truncate reported a change: %v %v", changed, err)
	}
	if changed, err := r.Truncate("/etc/missing"); err != nil || changed {
		t.Fatalf("truncate missing: %v %v", changed, err)
	}
}
