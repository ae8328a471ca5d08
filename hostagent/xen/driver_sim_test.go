package xen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/xenclone/xenclone/hostagent/command"
	// Not used directly: TestMain builds the simulator with `go build`, which go test's cache
	// cannot see. Importing it makes a change to the simulator re-run these tests.
	_ "github.com/xenclone/xenclone/hostagent/xen/xlsim"
)

// xlBin is the simulator built as a binary named xl, so the driver runs it through the same
// exec path (command.Runner) as the real tool.
var xlBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "xlsim-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	xlBin = filepath.Join(dir, "xl")
	build := exec.Command(goBin, "build", "-o", xlBin, "github.com/xenclone/xenclone/hostagent/xen/xlsim/cmd/xl")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build the xl simulator: %v\n", err)
		return 1
	}
	return m.Run()
}

// simHost is one simulated Xen host (a state directory) and a driver pointed at it.
type simHost struct {
	t    *testing.T
	dir  string
	env  []string
	drv  *Driver
	cfgs string
}

func newSimHost(t *testing.T, initArgs ...string) *simHost {
	t.Helper()
	dir := t.TempDir()
	h := &simHost{t: t, dir: dir, env: append(os.Environ(), "XLSIM_STATE_DIR="+dir), cfgs: t.TempDir()}
	h.drv = &Driver{Runner: command.Runner{Env: h.env}, XL: xlBin, Log: testr.New(t)}
	h.sim(append([]string{"sim-init"}, initArgs...)...)
	return h
}

// sim runs a simulator command directly (sim-only subcommands, or xl without the driver).
func (h *simHost) sim(args ...string) string {
	h.t.Helper()
	out, err := command.Runner{Env: h.env}.Run(context.Background(), xlBin, args...)
	if err != nil {
		h.t.Fatalf("xl %v: %v", args, err)
	}
	return string(out)
}

var uuidSeq struct {
	sync.Mutex
	n int
}

func nextUUID() string {
	uuidSeq.Lock()
	defer uuidSeq.Unlock()
	uuidSeq.n++
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", uuidSeq.n)
}

func (h *simHost) config(name string, memMiB int64, mutate ...func(*DomainConfig)) (DomainConfig, string) {
	h.t.Helper()
	c := DomainConfig{
		Name: name, UUID: nextUUID(), Type: GuestPV, MemoryMiB: memMiB, VCPUs: 1, Bootloader: "pygrub",
		Disks: []Disk{{Target: "/dev/vg0/" + name, Vdev: "xvda"}, {Target: "/var/lib/xenclone/seed/" + name + ".img", Vdev: "xvdb", ReadOnly: true}},
		VIFs:  []VIF{{MAC: "00:16:3e:00:00:01", Bridge: "xenbr0"}},
	}
	for _, m := range mutate {
		m(&c)
	}
	path, err := WriteConfigFile(h.cfgs, c)
	if err != nil {
		h.t.Fatal(err)
	}
	return c, path
}

func (h *simHost) create(name string, memMiB int64, mutate ...func(*DomainConfig)) DomainConfig {
	h.t.Helper()
	c, path := h.config(name, memMiB, mutate...)
	if err := h.drv.Create(context.Background(), name, path, CreateOptions{}); err != nil {
		h.t.Fatalf("create %s: %v", name, err)
	}
	return c
}

func (h *simHost) lookup(name string) (DomainInfo, bool) {
	h.t.Helper()
	d, found, err := h.drv.Lookup(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return d, found
}

func (h *simHost) freeMiB() int64 {
	h.t.Helper()
	info, err := h.drv.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.FreeMemoryMiB
}

func TestSimCreateListInfo(t *testing.T) {
	t.Parallel()
	h := newSimHost(t, "total_memory=4096", "dom0_memory=1024", "nr_cpus=2", "xen_version=4.17.7")
	ctx := context.Background()
	info, err := h.drv.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.TotalMemoryMiB != 4096 || info.FreeMemoryMiB != 3072 || info.NrCPUs != 2 || info.XenVersion != "4.17.7" {
		t.Fatalf("info %+v", info)
	}
	c := h.create("vm-a", 1024, func(c *DomainConfig) { c.OnReboot, c.OnCrash = ActionRestart, ActionPreserve })

	doms, err := h.drv.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(doms) != 2 || doms[0].Name != "Domain-0" || doms[1].Name != "vm-a" || doms[1].MemoryMiB != 1024 || doms[1].State.Phase() != PhaseActive {
		t.Fatalf("list %+v", doms)
	}
	long, err := h.drv.ListLong(ctx, "vm-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(long) != 1 {
		t.Fatalf("list -l %+v", long)
	}
	d := long[0]
	if d.DomID != doms[1].ID || d.UUID != c.UUID || d.Bootloader != "pygrub" || d.MemoryKiB != 1024*1024 {
		t.Errorf("list -l %+v", d)
	}
	if len(d.Disks) != 2 || d.Disks[0] != c.Disks[0] || d.Disks[1] != c.Disks[1] || len(d.VIFs) != 1 || d.VIFs[0] != c.VIFs[0] {
		t.Errorf("devices %+v %+v", d.Disks, d.VIFs)
	}
	if d.Policy != c.Policy() {
		t.Errorf("policy %+v, want %+v", d.Policy, c.Policy())
	}
	if free := h.freeMiB(); free != 2048 {
		t.Errorf("free memory %d after a 1024 MiB create, want 2048", free)
	}
}

func TestSimDuplicateName(t *testing.T) {
	t.Parallel()
	h := newSimHost(t)
	h.create("vm-dup", 256)
	_, path := h.config("vm-dup", 256)
	err := h.drv.Create(context.Background(), "vm-dup", path, CreateOptions{})
	if !errors.Is(err, ErrDomainExists) {
		t.Fatalf("want ErrDomainExists, got %v", err)
	}
	if command.ExitCode(err) != 3 || !strings.Contains(command.Stderr(err), `Domain with name "vm-dup" already exists`) {
		t.Errorf("exit %d stderr %q", command.ExitCode(err), command.Stderr(err))
	}
}

func TestSimNotEnoughMemory(t *testing.T) {
	t.Parallel()
	h := newSimHost(t, "total_memory=4096", "dom0_memory=1024")
	h.create("vm-big", 2048)
	_, path := h.config("vm-too-big", 2048)
	err := h.drv.Create(context.Background(), "vm-too-big", path, CreateOptions{})
	if !errors.Is(err, ErrNoMemory) || command.ExitCode(err) != 3 {
		t.Fatalf("want ErrNoMemory exit 3, got %v", err)
	}
	if !strings.Contains(command.Stderr(err), "can't allocate low memory for domain") {
		t.Errorf("stderr %q", command.Stderr(err))
	}
	if _, found := h.lookup("vm-too-big"); found {
		t.Error("a failed create left a domain")
	}
	if free := h.freeMiB(); free != 1024 {
		t.Errorf("free %d, want 1024", free)
	}

	h.sim("sim-knob", "autoballoon=1")
	err = h.drv.Create(context.Background(), "vm-too-big", path, CreateOptions{})
	if !errors.Is(err, ErrNoMemory) || !strings.Contains(command.Stderr(err), "failed to free memory for the domain") {
		t.Fatalf("autoballoon: want ErrNoMemory, got %v", err)
	}
}

func TestSimMissingBridge(t *testing.T) {
	t.Parallel()
	h := newSimHost(t, "bridges=xenbr0,br-storage")
	_, path := h.config("vm-net", 256, func(c *DomainConfig) {
		c.VIFs = []VIF{{MAC: "00:16:3e:00:00:01", Bridge: "br-storage"}, {MAC: "00:16:3e:00:00:02", Bridge: "xenbr9"}}
	})
	err := h.drv.Create(context.Background(), "vm-net", path, CreateOptions{})
	if !errors.Is(err, ErrMissingBridge) || !strings.Contains(command.Stderr(err), "xenbr9") {
		t.Fatalf("want ErrMissingBridge naming xenbr9, got %v", err)
	}
	if _, found := h.lookup("vm-net"); found {
		t.Error("a failed create left a domain")
	}
}

func TestSimBadConfig(t *testing.T) {
	t.Parallel()
	h := newSimHost(t)
	ctx := context.Background()
	bad := filepath.Join(t.TempDir(), "bad.cfg")
	if err := os.WriteFile(bad, []byte("name = \"vm-bad\"\nmemory = 256\ndisk = [ \"/dev/vg0/x,raw,xvda,rw\" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := h.drv.Create(ctx, "vm-bad", bad, CreateOptions{})
	if !errors.Is(err, ErrBadConfig) || command.ExitCode(err) != 1 || !strings.Contains(command.Stderr(err), "config parsing error") {
		t.Fatalf("syntax error: want ErrBadConfig exit 1, got %v", err)
	}
	if err := os.WriteFile(bad, []byte("name = \"vm-bad\"\ntype = \"xen\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.drv.Create(ctx, "vm-bad", bad, CreateOptions{}); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "Invalid domain type xen.") {
		t.Fatalf("bad type: %v", err)
	}
	if err := h.drv.Create(ctx, "vm-bad", "/nonexistent/vm-bad.cfg", CreateOptions{}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("missing file: %v", err)
	}
	if err := h.drv.Create(ctx, "12345", bad, CreateOptions{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("all-digit name must be refused before running xl: %v", err)
	}
}

func TestSimNoSuchDomain(t *testing.T) {
	t.Parallel()
	h := newSimHost(t)
	ctx := context.Background()
	err := h.drv.Destroy(ctx, "ghost")
	if !errors.Is(err, ErrNoSuchDomain) || command.ExitCode(err) != 1 || !strings.Contains(command.Stderr(err), "ghost is an invalid domain identifier (rc=-6)") {
		t.Fatalf("destroy: %v", err)
	}
	if err := h.drv.RequestShutdown(ctx, "ghost"); !errors.Is(err, ErrNoSuchDomain) {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := h.drv.ListLong(ctx, "ghost"); !errors.Is(err, ErrNoSuchDomain) {
		t.Fatalf("list -l: %v", err)
	}
	if r, err := h.drv.Stop(ctx, "ghost", time.Second, 0); err != nil || !r.AlreadyGone {
		t.Fatalf("stop: %+v %v", r, err)
	}
}

func TestSimGracefulStop(t *testing.T) {
	t.Parallel()
	h := newSimHost(t)
	h.sim("sim-knob", "shutdown_delay=300ms")
	h.create("vm-stop", 256)
	start := time.Now()
	r, err := h.drv.Stop(context.Background(), "vm-stop", 10*time.Second, 50*time.Millisecond)
	if err != nil || !r.Graceful {
		t.Fatalf("stop: %+v %v", r, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("graceful stop took %v", took)
	}
	if _, found := h.lookup("vm-stop"); found {
		t.Error("domain still listed after stop")
	}
}

// TestSimStopGuestIgnoresShutdown: the guest never acknowledges; real xl would wait 60 s. The
// driver bounds the wait by the grace period and then destroys the domain.
func TestSimStopGuestIgnoresShutdown(t *testing.T) {
	t.Parallel()
	h := newSimHost(t)
	h.create("vm-stubborn", 256)
	h.sim("sim-guest", "vm-stubborn", "behave", "ignore")
	grace := 1500 * time.Millisecond
	start := time.Now()
	r, err := h.drv.Stop(context.Background(), "vm-stubborn", grace, 100*time.Millisecond)
	took := time.Since(start)
	if err != nil || r.Graceful {
		t.Fatalf("stop: %+v %v", r, err)
	}
	if took < grace || took > grace+5*time.Second {
		t.Errorf("stop took %v with a grace of %v", took, grace)
	}
	if _, found := h.lookup("vm-stubborn"); found {
		t.Error("domain still listed: the fallback destroy did not happen")
	}

	// xl's own acknowledgement timeout (here 300ms instead of 60 s) is classified too.
	h.sim("sim-knob", "ack_timeout=300ms")
	h.create("vm-stubborn-2", 256)
	h.sim("sim-guest", "vm-stubborn-2", "behave", "ignore")
	err = h.drv.RequestShutdown(context.Background(), "vm-stubborn-2")
	if !errors.Is(err, ErrShutdownNotAcknowledged) || command.ExitCode(err) != 1 || !strings.Contains(command.Stderr(err), "guest didn't acknowledge control request: -9") {
		t.Fatalf("want ErrShutdownNotAcknowledged from xl, got %v", err)
	}
	// A guest that acknowledges but never goes down: the grace period still ends it.
	h.create("vm-hangs", 256)
	h.sim("sim-guest", "vm-hangs", "behave", "ack")
	if r, err := h.drv.Stop(context.Background(), "vm-hangs", 500*time.Millisecond, 50*time.Millisecond); err != nil || r.Graceful {
		t.Fatalf("ack-only guest: %+v %v", r, err)
	}
}

func TestSimStopWithoutPVControl(t *testing.T) {
	t.Parallel()
	h := newSimHost(t)
	h.create("vm-nopv", 256)
	h.sim("sim-guest", "vm-nopv", "behave", "nopv")
	if err := h.drv.RequestShutdown(context.Background(), "vm-nopv"); !errors.Is(err, ErrNoPVControl) {
		t.Fatalf("want ErrNoPVControl, got %v", err)
	}
	start := time.Now()
	if r, err := h.drv.Stop(context.Background(), "vm-nopv", time.Minute, 50*time.Millisecond); err != nil || r.Graceful {
		t.Fatalf("stop: %+v %v", r, err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a guest without PV control was waited on for %v", took)
	}
}

// TestSimCrashObserved: with -e nothing acts on a crash; the domain stays listed as crashed
// and DecideStep tells the agent what its policy says.
func TestSimCrashObserved(t *testing.T) {
	t.Parallel()
	h := newSimHost(t)
	ctx := context.Background()
	c := h.create("vm-crash", 256, func(c *DomainConfig) { c.OnCrash = ActionRestart })
	first, _ := h.lookup("vm-crash")
	h.sim("sim-guest", "vm-crash", "crash")

	d, found := h.lookup("vm-crash")
	if !found || d.State.Phase() != PhaseShutdown || d.State.Reason != ReasonCrash || d.State.String() != "--psc-" {
		t.Fatalf("after crash: %+v found=%v", d, found)
	}
	// The agent may restart at any point: the policy comes back from the stored config.
	long, err := h.drv.ListLong(ctx, "vm-crash")
	if err != nil {
		t.Fatal(err)
	}
	step := DecideStep(d.State, long[0].Policy)
	if step != StepRestart {
		t.Fatalf("step %s, want Restart", step)
	}
	if err := h.drv.Destroy(ctx, "vm-crash"); err != nil {
		t.Fatal(err)
	}
	if err := h.drv.Create(ctx, "vm-crash", ConfigPath(h.cfgs, "vm-crash"), CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	again, _ := h.lookup("vm-crash")
	long, _ = h.drv.ListLong(ctx, "vm-crash")
	if again.ID == first.ID || again.State.Phase() != PhaseActive || long[0].UUID != c.UUID {
		t.Errorf("restart: first %+v again %+v uuid %s", first, again, long[0].UUID)
	}

	// The default policy destroys a crashed guest.
	h.create("vm-crash-2", 256)
	h.sim("sim-guest", "vm-crash-2", "crash")
	d, _ = h.lookup("vm-crash-2")
	long, _ = h.drv.ListLong(ctx, "vm-crash-2")
	if step := DecideStep(d.State, long[0].Policy); step != StepDestroy {
		t.Errorf("default on_crash: %s", step)
	}
}

func TestSimRebootRequestObserved(t *testing.T) {
	t.Parallel()
	h := newSimHost(t)
	h.sim("sim-knob", "shutdown_delay=0s")
	c := h.create("vm-reboot", 256)
	if err := h.drv.RequestReboot(context.Background(), "vm-reboot"); err != nil {
		t.Fatal(err)
	}
	d, _ := h.lookup("vm-reboot")
	if d.State.Reason != ReasonReboot || DecideStep(d.State, c.Policy()) != StepRestart {
		t.Fatalf("after reboot request: %+v", d.State)
	}
}

// TestSimMonitorDiesWithAgent shows why the driver uses -e: a domain created with xl's monitor
// has its on_crash applied only while the monitor lives; once the monitor is gone (as when the
// agent's container restarts) a crash is left for someone else to handle.
func TestSimMonitorDiesWithAgent(t *testing.T) {
	t.Parallel()
	h := newSimHost(t)
	_, path := h.config("vm-mon", 256)
	h.sim("create", "-q", path) // no -e: monitored
	h.sim("sim-guest", "vm-mon", "crash")
	if _, found := h.lookup("vm-mon"); found {
		t.Fatal("the monitor should have destroyed the crashed domain (on_crash=destroy)")
	}
	h.sim("create", "-q", path)
	h.sim("sim-kill-monitors")
	h.sim("sim-guest", "vm-mon", "crash")
	if d, found := h.lookup("vm-mon"); !found || d.State.Reason != ReasonCrash {
		t.Fatalf("without its monitor the crashed domain should stay listed: %+v %v", d, found)
	}
}

func TestSimDyingDomainBlocksCreate(t *testing.T) {
	t.Parallel()
	h := newSimHost(t, "total_memory=2048", "dom0_memory=1024")
	ctx := context.Background()
	h.sim("sim-knob", "dying_time=800ms")
	_, path := h.config("vm-dying", 512)
	if err := h.drv.Create(ctx, "vm-dying", path, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.drv.Destroy(ctx, "vm-dying"); err != nil {
		t.Fatal(err)
	}
	d, found := h.lookup("vm-dying")
	if !found || d.State.Phase() != PhaseDying || DecideStep(d.State, LifecyclePolicy{}) != StepWait {
		t.Fatalf("after destroy: %+v %v", d, found)
	}
	if free := h.freeMiB(); free != 512 {
		t.Errorf("a dying domain's memory is not free yet: free %d, want 512", free)
	}
	if err := h.drv.Create(ctx, "vm-dying", path, CreateOptions{}); !errors.Is(err, ErrDomainExists) {
		t.Fatalf("create over a dying domain: want ErrDomainExists, got %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, found := h.lookup("vm-dying"); !found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("dying domain never went away")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := h.drv.Create(ctx, "vm-dying", path, CreateOptions{}); err != nil {
		t.Fatalf("create after the dying domain is gone: %v", err)
	}
}

func TestSimCreateAbortAfterCreating(t *testing.T) {
	t.Parallel()
	h := newSimHost(t)
	h.sim("sim-knob", "fail.create=abort")
	h.create("vm-abort", 256) // the driver checks xl list after rc 134
	if d, found := h.lookup("vm-abort"); !found || d.State.Phase() != PhaseActive {
		t.Fatalf("%+v %v", d, found)
	}
	h.sim("sim-knob", "fail.create=error")
	_, path := h.config("vm-err", 256)
	if err := h.drv.Create(context.Background(), "vm-err", path, CreateOptions{}); command.ExitCode(err) != 3 {
		t.Fatalf("injected error: %v", err)
	}
}

func TestSimInjectedDelayAndHang(t *testing.T) {
	t.Parallel()
	h := newSimHost(t)
	h.sim("sim-knob", "delay.list=300ms", "fail.info=hang")
	start := time.Now()
	if _, err := h.drv.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("delay not applied: %v", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := h.drv.Info(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung xl info: want deadline exceeded, got %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("cancellation took %v", took)
	}
}

// TestSimConcurrentCreates runs creates from many processes at once on one host: names stay
// unique, and memory is never overcommitted.
func TestSimConcurrentCreates(t *testing.T) {
	t.Parallel()
	h := newSimHost(t, "total_memory=8192", "dom0_memory=1024")
	ctx := context.Background()
	type attempt struct {
		name string
		path string
	}
	var attempts []attempt
	for _, name := range []string{"vm-race-a", "vm-race-b", "vm-race-c"} {
		for i := 0; i < 4; i++ {
			dir := t.TempDir() // one config file per process, same domain name
			c := DomainConfig{Name: name, UUID: nextUUID(), Type: GuestPV, MemoryMiB: 512, VCPUs: 1, Bootloader: "pygrub",
				Disks: []Disk{{Target: "/dev/vg0/" + name, Vdev: "xvda"}}}
			path, err := WriteConfigFile(dir, c)
			if err != nil {
				t.Fatal(err)
			}
			attempts = append(attempts, attempt{name, path})
		}
	}
	errs := make([]error, len(attempts))
	var wg sync.WaitGroup
	for i, a := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = h.drv.Create(ctx, a.name, a.path, CreateOptions{})
		}()
	}
	wg.Wait()
	wins := map[string]int{}
	for i, err := range errs {
		switch {
		case err == nil:
			wins[attempts[i].name]++
		case errors.Is(err, ErrDomainExists):
		default:
			t.Errorf("create %s: unexpected %v", attempts[i].name, err)
		}
	}
	for _, name := range []string{"vm-race-a", "vm-race-b", "vm-race-c"} {
		if wins[name] != 1 {
			t.Errorf("%s created %d times, want exactly once", name, wins[name])
		}
	}
	long, err := h.drv.ListLong(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids, uuids := map[int]bool{}, map[string]bool{}
	for _, d := range long {
		if ids[d.DomID] || uuids[d.UUID] {
			t.Errorf("duplicate domid or uuid: %+v", d)
		}
		ids[d.DomID], uuids[d.UUID] = true, true
	}
	if len(long) != 3 {
		t.Errorf("%d domains, want 3", len(long))
	}

	// 8192 - 1024 - 3*512 = 5632 MiB free: of eight concurrent 1024 MiB creates, exactly five fit.
	var mu sync.Mutex
	ok, nomem := 0, 0
	for i := 0; i < 8; i++ {
		name := fmt.Sprintf("vm-mem-%d", i)
		_, path := h.config(name, 1024)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := h.drv.Create(ctx, name, path, CreateOptions{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrNoMemory):
				nomem++
			default:
				t.Errorf("create %s: %v", name, err)
			}
		}()
	}
	wg.Wait()
	if ok != 5 || nomem != 3 {
		t.Errorf("%d created, %d out of memory; want 5 and 3", ok, nomem)
	}
	if free := h.freeMiB(); free != 512 {
		t.Errorf("free %d, want 512", free)
	}
}

func TestSimOwnership(t *testing.T) {
	t.Parallel()
	h := newSimHost(t)
	ctx := context.Background()
	c := h.create("vm-own", 256)
	if err := h.drv.DestroyOwned(ctx, "vm-own", nextUUID()); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("foreign uuid: want ErrNotOwned, got %v", err)
	}
	if _, found := h.lookup("vm-own"); !found {
		t.Fatal("a domain with another uuid was destroyed")
	}
	if err := h.drv.DestroyOwned(ctx, "vm-own", c.UUID); err != nil {
		t.Fatal(err)
	}
	if _, found := h.lookup("vm-own"); found {
		t.Fatal("owned domain not destroyed")
	}
	if err := h.drv.DestroyOwned(ctx, "vm-own", c.UUID); !errors.Is(err, ErrNoSuchDomain) {
		t.Fatalf("gone: want ErrNoSuchDomain, got %v", err)
	}
}
