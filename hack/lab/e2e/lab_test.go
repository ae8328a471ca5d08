//go:build lab

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Lab is one boot of the host lab: Xen 4.17 with a PV dom0 under QEMU TCG. The dom0 root is a
// copy-on-write overlay of the cached image, so every boot starts from the same state. The host
// reaches dom0 only through QEMU's hostfwd on 127.0.0.1 (lab-rpc, port 7000 in dom0); dom0
// reaches the host's API server only through guestfwd 10.0.2.100:6443 → 127.0.0.1:<APIPort>.
type Lab struct {
	Images string // cached images folder (lab.sh build)
	Dir    string // this boot's scratch folder
	Serial string // QEMU serial: Xen's and dom0's console
	port   int
	cmd    *exec.Cmd
	done   chan error
}

// BootOptions says what the boot needs beyond the images.
type BootOptions struct {
	// APIPort, when set, forwards dom0's 10.0.2.100:6443 to 127.0.0.1:APIPort.
	APIPort int
	// ImagePort, when set, forwards dom0's 10.0.2.101:80 to 127.0.0.1:ImagePort: the test's
	// image server, which template sources (spec.source) download from.
	ImagePort int
	// Share is a folder whose files appear read-only at /lab in dom0.
	Share string
	// Timeout bounds the whole QEMU run.
	Timeout time.Duration
}

func labImages(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("XENCLONE_LAB_IMAGES")
	if dir == "" {
		msg := "XENCLONE_LAB_IMAGES is not set: run the lab tests with `make test-e2e` (hack/lab/lab.sh test)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIP (loudly): " + msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "done")); err != nil {
		t.Fatalf("lab images in %s are incomplete: run hack/lab/lab.sh build", dir)
	}
	return dir
}

// labCPU is QEMU's -cpu model: XENCLONE_LAB_CPU, or max without SMAP/SMEP (with them, Xen
// crashes dom0 at its first instruction under TCG; docs/host-lab.md).
func labCPU() string {
	if c := os.Getenv("XENCLONE_LAB_CPU"); c != "" {
		return c
	}
	return "max,-smap,-smep"
}

// labXenArgs is appended to Xen's command line: XENCLONE_LAB_XEN_ARGS if set (even empty), else
// spec-ctrl=eager-fpu. Xen's default on this emulated (AMD) CPU is lazy FPU switching, which
// relies on CR0.TS and #NM; under QEMU 7.2 TCG that loses user-space XMM state across vCPU
// switches: TestCPUStress fails within 2 s without it and passes 4 minutes with it
// (docs/host-lab.md, "CPU model").
func labXenArgs() string {
	if a, ok := os.LookupEnv("XENCLONE_LAB_XEN_ARGS"); ok {
		return a
	}
	return "spec-ctrl=eager-fpu"
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Boot starts QEMU and waits until dom0's lab-init reports LAB-READY.
func Boot(t *testing.T, opts BootOptions) *Lab {
	t.Helper()
	images := labImages(t)
	l := &Lab{Images: images, Dir: t.TempDir(), port: freePort(t), done: make(chan error, 1)}
	l.Serial = filepath.Join(l.Dir, "serial.log")
	if opts.Timeout == 0 {
		opts.Timeout = 20 * time.Minute
	}
	root := filepath.Join(l.Dir, "root.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", filepath.Join(images, "root.img"), "-F", "raw", root)
	data := filepath.Join(l.Dir, "data.img")
	run(t, "truncate", "-s", "4G", data)
	share := filepath.Join(l.Dir, "share.img")
	if opts.Share == "" {
		opts.Share = t.TempDir()
	}
	run(t, "mkfs.ext4", "-q", "-F", "-L", "labshare", "-d", opts.Share, share, "512M")

	netdev := fmt.Sprintf("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:7000", l.port)
	if opts.APIPort != 0 {
		netdev += fmt.Sprintf(",guestfwd=tcp:10.0.2.100:6443-cmd:socat - TCP:127.0.0.1:%d", opts.APIPort)
	}
	if opts.ImagePort != 0 {
		netdev += fmt.Sprintf(",guestfwd=tcp:10.0.2.101:80-cmd:socat - TCP:127.0.0.1:%d", opts.ImagePort)
	}
	args := []string{"-k", "10", strconv.Itoa(int(opts.Timeout.Seconds())), "qemu-system-x86_64",
		"-accel", "tcg,thread=multi", "-cpu", labCPU(), "-smp", "2", "-m", "3072",
		"-display", "none", "-monitor", "none", "-no-reboot", "-serial", "file:" + l.Serial,
		"-kernel", filepath.Join(images, "xen"),
		"-append", strings.TrimSpace("console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=2 loglvl=all guest_loglvl=all console_timestamps=boot " + labXenArgs()),
		// The dom0 command line must not contain commas: they separate -initrd's modules.
		"-initrd", filepath.Join(images, "vmlinuz") + " console=hvc0 earlyprintk=xen root=LABEL=labroot rw init=/sbin/lab-init loglevel=4 panic=-1," + filepath.Join(images, "initrd.img"),
		"-drive", "file=" + root + ",if=none,id=d0,format=qcow2,cache=unsafe", "-device", "virtio-blk-pci,drive=d0",
		"-drive", "file=" + data + ",if=none,id=d1,format=raw,cache=unsafe", "-device", "virtio-blk-pci,drive=d1,serial=labdata",
		"-drive", "file=" + share + ",if=none,id=d2,format=raw,readonly=on", "-device", "virtio-blk-pci,drive=d2,serial=labshare",
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
	}
	l.cmd = exec.Command("timeout", args...)
	l.cmd.Stdout, l.cmd.Stderr = os.Stderr, os.Stderr
	// Own process group: killing it takes QEMU down with `timeout`, never orphaning it.
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Logf("lab: qemu -cpu %s, xen %q", labCPU(), labXenArgs())
	start := time.Now()
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { l.done <- l.cmd.Wait() }()
	t.Cleanup(func() { l.Shutdown(t) })

	deadline := time.Now().Add(5 * time.Minute)
	for {
		b, _ := os.ReadFile(l.Serial)
		switch {
		case bytes.Contains(b, []byte("LAB-READY")):
			// lab-rpc answers a no-op before anything real is sent: a script is never retried.
			for i := 0; ; i++ {
				if _, err := l.try(context.Background(), 20*time.Second, "true"); err == nil {
					break
				} else if i == 30 {
					t.Fatalf("lab: lab-rpc does not answer: %v", err)
				}
				time.Sleep(2 * time.Second)
			}
			t.Logf("lab: dom0 ready after %s", time.Since(start).Round(100*time.Millisecond))
			return l
		case bytes.Contains(b, []byte("LAB-FAILED")):
			t.Fatalf("lab: dom0 failed to come up:\n%s", tail(b, 60))
		case time.Now().After(deadline):
			t.Fatalf("lab: dom0 not ready after 5 minutes:\n%s", tail(b, 60))
		}
		select {
		case err := <-l.done:
			l.done <- err
			t.Fatalf("lab: QEMU exited before dom0 was ready (%v):\n%s", err, tail(b, 60))
		case <-time.After(time.Second):
		}
	}
}

// Shutdown powers dom0 (and so Xen and QEMU) off, killing QEMU if it does not exit in time.
func (l *Lab) Shutdown(t *testing.T) {
	if l.cmd == nil || l.cmd.Process == nil {
		return
	}
	select {
	case err := <-l.done:
		l.done <- err
		return
	default:
	}
	_, _ = l.try(context.Background(), 20*time.Second, "sync; (sleep 1; busybox poweroff -f) >/dev/null 2>&1 &")
	select {
	case <-l.done:
	case <-time.After(60 * time.Second):
		t.Logf("lab: QEMU did not exit after poweroff; killing pid %d", l.cmd.Process.Pid)
		_ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
		<-l.done
	}
	if t.Failed() {
		b, _ := os.ReadFile(l.Serial)
		t.Logf("lab serial console (tail):\n%s", tail(b, 80))
	}
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// try runs a shell script in dom0 as root and returns its combined output and exit status.
func (l *Lab) try(ctx context.Context, timeout time.Duration, script string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", l.port))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, base64.StdEncoding.EncodeToString([]byte(script))+"\n"); err != nil {
		return "", err
	}
	out, err := io.ReadAll(bufio.NewReader(conn))
	if err != nil {
		return string(out), fmt.Errorf("lab-rpc: %w", err)
	}
	s := strings.TrimRight(string(out), "\n")
	i := strings.LastIndex(s, "__LAB_RC=")
	if i < 0 {
		return s, fmt.Errorf("lab-rpc: reply without an exit status")
	}
	rc, _ := strconv.Atoi(strings.TrimSpace(s[i+len("__LAB_RC="):]))
	s = strings.TrimSuffix(s[:i], "\n")
	if rc != 0 {
		return s, fmt.Errorf("exit status %d", rc)
	}
	return s, nil
}

// Sh runs script in dom0 and fails the test if it fails; it logs how long it took.
func (l *Lab) Sh(t *testing.T, script string) string {
	t.Helper()
	start := time.Now()
	out, err := l.try(context.Background(), 5*time.Minute, script)
	if err != nil {
		t.Fatalf("dom0: %s: %v\n%s", firstLine(script), err, out)
	}
	t.Logf("dom0 (%s): %s", time.Since(start).Round(10*time.Millisecond), firstLine(script))
	return out
}

// Try is Sh without failing.
func (l *Lab) Try(script string) (string, error) {
	return l.try(context.Background(), 5*time.Minute, script)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return s
}
