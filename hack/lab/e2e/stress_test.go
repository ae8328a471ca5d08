//go:build lab

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCPUStress runs hack/lab/stress (TLS, SHA-256, memmove, channels, floating point, with
// results known in advance) as two processes at once in dom0, while a domU runs, for
// XENCLONE_LAB_STRESS (default 4m). It fails on the first wrong result or runtime crash: the
// check that the QEMU CPU model and Xen options keep user-space SIMD state intact.
func TestCPUStress(t *testing.T) {
	d := 4 * time.Minute
	if v := os.Getenv("XENCLONE_LAB_STRESS"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("XENCLONE_LAB_STRESS: %v", err)
		}
	}
	share := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(share, "stress"), "./hack/lab/stress")
	build.Dir = filepath.Join("..", "..", "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build stress: %v\n%s", err, out)
	}
	copyFile(t, filepath.Join(labImages(t), "guest.img"), filepath.Join(share, "guest.img"))
	if err := os.WriteFile(filepath.Join(share, "st.cfg"), []byte(domainConfig("lab-st", "/dev/vg0/st", 128)), 0o644); err != nil {
		t.Fatal(err)
	}
	lab := Boot(t, BootOptions{Share: share})
	t.Logf("dom0 CPU:\n%s", lab.Sh(t, "grep -m1 flags /proc/cpuinfo; xl dmesg | grep -i -e xstate -e xsave -e fpu -e 'CPU Vendor' | head"))
	// A domU keeps Xen switching vCPUs between domains during the run.
	lab.Sh(t, `set -e
D=/dev/disk/by-id/virtio-labdata
pvcreate -y -ff $D >/dev/null && vgcreate vg0 $D >/dev/null
lvcreate -y -L 64M -n st vg0 >/dev/null
dd if=/lab/guest.img of=/dev/vg0/st bs=1M oflag=direct status=none
xl create /lab/st.cfg`)
	secs := int(d.Seconds())
	start := time.Now()
	out, err := lab.try(t.Context(), d+5*time.Minute, `cd /tmp
GODEBUG=${GODEBUG:-} /lab/stress -d `+d.String()+` >s1.log 2>&1 & p1=$!
/lab/stress -d `+d.String()+` >s2.log 2>&1 & p2=$!
wait $p1; r1=$?; wait $p2; r2=$?
echo "rc $r1 $r2 after `+"${SECONDS}"+`s (asked `+strconv.Itoa(secs)+`s)"; tail -n 40 s1.log; echo ---; tail -n 40 s2.log
xl list; grep -c XCID /var/log/xen/console/guest-lab-st.log || true
[ $r1 = 0 ] && [ $r2 = 0 ]`)
	t.Logf("stress (%s):\n%s", time.Since(start).Round(time.Second), out)
	if err != nil || strings.Contains(out, "STRESS-FAIL") || strings.Count(out, "STRESS-OK") != 2 {
		t.Fatalf("stress failed with -cpu %s, xen %q: %v", labCPU(), labXenArgs(), err)
	}
}
