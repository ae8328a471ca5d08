//go:build lab

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestLabHold boots the lab and keeps it up for interactive debugging (lab.sh hold): it writes
// the lab-rpc port to $XENCLONE_LAB_HOLD/port and the serial log path to $XENCLONE_LAB_HOLD/serial,
// then waits until $XENCLONE_LAB_HOLD/stop exists or 30 minutes have passed. Send scripts with
// hack/lab/rpc.sh. Files put in $XENCLONE_LAB_HOLD/share appear at /lab in dom0.
func TestLabHold(t *testing.T) {
	dir := os.Getenv("XENCLONE_LAB_HOLD")
	if dir == "" {
		t.Skip("XENCLONE_LAB_HOLD is not set: run hack/lab/lab.sh hold")
	}
	share := filepath.Join(dir, "share")
	if err := os.MkdirAll(share, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(labImages(t), "guest.img"), filepath.Join(share, "guest.img"))
	lab := Boot(t, BootOptions{Share: share, Timeout: 40 * time.Minute})
	_ = os.Remove(filepath.Join(dir, "stop"))
	for name, v := range map[string]string{"port": strconv.Itoa(lab.port), "serial": lab.Serial} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("lab up: hack/lab/rpc.sh %d 'xl list'; touch %s to stop", lab.port, filepath.Join(dir, "stop"))
	deadline := time.Now().Add(30 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(dir, "stop")); err == nil {
			break
		}
		select {
		case err := <-lab.done:
			lab.done <- err
			t.Fatalf("QEMU exited: %v", err)
		case <-time.After(2 * time.Second):
		}
	}
	_ = os.Remove(filepath.Join(dir, "port"))
}
