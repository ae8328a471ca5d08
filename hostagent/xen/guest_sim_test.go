package xen

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xenclone/xenclone/hostagent/command"
)

// TestSimGuestAgent holds the simulator's guest to what the lab's real guest shows
// (TestLabGuestReport decodes the real capture with the same checks): a guest started with
// xcagent publishes its agent keys and addresses once booted, xenstore-watch fires for them,
// and a dying domain's tree is gone.
func TestSimGuestAgent(t *testing.T) {
	h := newSimHost(t)
	h.sim("sim-knob", "guest_boot=300ms")
	xs := &Xenstore{Runner: command.Runner{Prefix: []string{xlBin}, Env: h.env}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	var fired []string
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- xs.WatchPaths(ctx, func(p string) {
			mu.Lock()
			fired = append(fired, p)
			mu.Unlock()
		}, "/local/domain")
	}()

	h.create("g1", 128, func(c *DomainConfig) { c.Cmdline = "console=hvc0 xcagent"; c.VNC = true })
	d, _ := h.lookup("g1")
	tree, err := xs.ReadTree(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := GuestReportFrom(tree); r.AgentReported() || r.VNCPort != 5900+d.ID || tree["name"] != "g1" {
		t.Fatalf("before boot: %+v name %q", r, tree["name"])
	}
	deadline := time.Now().Add(10 * time.Second)
	var r GuestReport
	for time.Now().Before(deadline) {
		tree, err = xs.ReadTree(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r = GuestReportFrom(tree); r.AgentReported() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkGuestAgentReport(t, r, "10.0.0.1")

	for time.Now().Before(deadline) {
		mu.Lock()
		got := strings.Join(fired, "\n")
		mu.Unlock()
		if strings.HasPrefix(got, "/local/domain\n") && strings.Contains(got, "/attr/vif/0/ipv4/0") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	got := strings.Join(fired, "\n")
	mu.Unlock()
	if !strings.HasPrefix(got, "/local/domain\n") || !strings.Contains(got, "/local/domain/"+strconv.Itoa(d.ID)+"/attr/vif/0/ipv4/0") {
		t.Fatalf("watch fired %q: want the path itself first, then the guest agent's keys", got)
	}

	if err := h.drv.DestroyOwned(ctx, "g1", tree["vm"][len("/vm/"):]); err != nil {
		t.Fatal(err)
	}
	if _, err := xs.ReadTree(ctx, d.ID); err == nil || !strings.Contains(err.Error(), ErrNoSuchPath.Error()) {
		t.Fatalf("a destroyed domain's tree: %v", err)
	}
	cancel()
	if err := <-watchDone; err != context.Canceled {
		t.Fatalf("watch ended with %v", err)
	}
}

// checkGuestAgentReport is what a booted lab guest (hack/lab/guest/init with xcagent) and the
// simulator's both publish: a version, an OS, and one IPv4 address on NIC 0.
func checkGuestAgentReport(t *testing.T, r GuestReport, ip string) {
	t.Helper()
	if !r.AgentReported() || r.AgentVersion == "" || r.OS == "" || r.Kernel == "" {
		t.Errorf("agent fields: %+v", r)
	}
	if n := r.NICs[0]; len(n.IPv4) != 1 || n.IPv4[0].String() != ip {
		t.Errorf("NIC 0: %+v, want %s", n, ip)
	}
}
