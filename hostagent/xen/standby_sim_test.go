package xen

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xenclone/xenclone/hostagent/command"
)

// TestSimStandby: a domain is ballooned down (xl mem-set) and paused, as the agent makes a warm
// standby; xl list shows the p flag and the smaller memory, the host's free memory grows by what
// the guest gave back; unpause and mem-set give it back, same domid.
func TestSimStandby(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newSimHost(t, "total_memory=4096", "dom0_memory=1024")
	h.create("vm-warm", 1024)
	before, _ := h.lookup("vm-warm")
	freeBefore := h.freeMiB()
	if err := h.drv.SetMemory(ctx, "vm-warm", 128); err != nil {
		t.Fatal(err)
	}
	if err := h.drv.Pause(ctx, "vm-warm"); err != nil {
		t.Fatal(err)
	}
	d, _ := h.lookup("vm-warm")
	if !d.State.Paused || d.State.Phase() != PhasePaused || d.MemoryMiB != 128 || d.ID != before.ID {
		t.Fatalf("standby: %+v (state %s)", d, d.State)
	}
	if got := h.freeMiB(); got != freeBefore+896 {
		t.Errorf("free memory %d MiB, want %d", got, freeBefore+896)
	}
	// A graceful stop of a paused domain destroys it at once: its guest cannot answer.
	if step, _ := NextStopStep(true, d.State, time.Now(), time.Now(), time.Minute); step != StopDestroy {
		t.Errorf("stop of a paused domain: %s, want Destroy", step)
	}

	if err := h.drv.Unpause(ctx, "vm-warm"); err != nil {
		t.Fatal(err)
	}
	if err := h.drv.SetMemory(ctx, "vm-warm", 1024); err != nil {
		t.Fatal(err)
	}
	d, _ = h.lookup("vm-warm")
	if d.State.Paused || d.MemoryMiB != 1024 || d.ID != before.ID {
		t.Fatalf("resumed: %+v (state %s)", d, d.State)
	}
	// Above maxmem (= memory here) xl refuses the target, as libxl does.
	if err := h.drv.SetMemory(ctx, "vm-warm", 2048); err == nil {
		t.Error("mem-set above maxmem succeeded")
	}
	if err := h.drv.Pause(ctx, "no-such"); !errors.Is(err, ErrNoSuchDomain) {
		t.Errorf("pause of an unknown domain: %v, want ErrNoSuchDomain", err)
	}
	r, err := h.drv.Stop(ctx, "vm-warm", time.Minute, 20*time.Millisecond)
	if err != nil || r.AlreadyGone {
		t.Fatalf("stop: %+v %v", r, err)
	}
}

// TestSimMemSetWhilePaused: a target set while paused is reached once the guest runs (its
// balloon driver is what gives memory back).
func TestSimMemSetWhilePaused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newSimHost(t)
	h.create("vm-p", 512)
	if err := h.drv.Pause(ctx, "vm-p"); err != nil {
		t.Fatal(err)
	}
	if err := h.drv.SetMemory(ctx, "vm-p", 256); err != nil {
		t.Fatal(err)
	}
	if d, _ := h.lookup("vm-p"); d.MemoryMiB != 512 {
		t.Errorf("paused guest ballooned: %d MiB", d.MemoryMiB)
	}
	if err := h.drv.Unpause(ctx, "vm-p"); err != nil {
		t.Fatal(err)
	}
	if d, _ := h.lookup("vm-p"); d.MemoryMiB != 256 {
		t.Errorf("after unpause: %d MiB, want 256", d.MemoryMiB)
	}
}

// TestSimXenstore: entries written under a listed domain's tree are read back raw; the tree
// goes with the domain; bad paths, oversized values and dead domids are refused before any
// command runs; the error of a failed write does not carry the values (they may be secrets).
func TestSimXenstore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newSimHost(t)
	h.create("vm-x", 256)
	d, _ := h.lookup("vm-x")
	// The simulator is the xl binary; its xenstore-write look-alike takes the tool's name first.
	xs := &Xenstore{Runner: command.Runner{Prefix: []string{xlBin}, Env: h.env}}
	entries := []XenstoreEntry{{Path: "data/xenclone/token", Value: `a\nb c`}, {Path: "data/xenclone/ready", Value: "v1"}}
	if err := xs.WriteDomain(ctx, d.ID, entries); err != nil {
		t.Fatal(err)
	}
	out := h.sim("xenstore-read", "-R", pathOf(d.ID, "data/xenclone/token"), pathOf(d.ID, "data/xenclone/ready"))
	if out != "a\\nb c\nv1\n" {
		t.Errorf("read back %q", out)
	}
	for _, bad := range [][]XenstoreEntry{
		{{Path: "/local/domain/0/x", Value: "v"}},
		{{Path: "data/../x", Value: "v"}},
		{{Path: "data/x", Value: strings.Repeat("v", MaxXenstoreValue+1)}},
		{{Path: "data/x", Value: "a\x00b"}},
	} {
		if err := xs.WriteDomain(ctx, d.ID, bad); err == nil {
			t.Errorf("%q accepted", bad[0].Path)
		}
	}
	if err := xs.WriteDomain(ctx, 0, entries); err == nil {
		t.Error("write into dom0's tree accepted")
	}
	broken := &Xenstore{Runner: xs.Runner, Write: "no-such-tool"}
	if err := broken.WriteDomain(ctx, d.ID, []XenstoreEntry{{Path: "data/x", Value: "s3cret"}}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("failed write: %v (must fail, without the value)", err)
	}
	if err := h.drv.Destroy(ctx, "vm-x"); err != nil {
		t.Fatal(err)
	}
	if _, err := (command.Runner{Env: h.env}).Run(ctx, xlBin, "xenstore-read", pathOf(d.ID, "data/xenclone/ready")); err == nil {
		t.Error("the destroyed domain's xenstore tree is still there")
	}
}

func pathOf(domid int, p string) string {
	return "/local/domain/" + strconv.Itoa(domid) + "/" + p
}
