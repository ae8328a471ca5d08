package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/command"
	"github.com/xenclone/xenclone/hostagent/guest/seed"
	"github.com/xenclone/xenclone/hostagent/hostnet"
	"github.com/xenclone/xenclone/hostagent/imageimport"
	"github.com/xenclone/xenclone/hostagent/xen"
	"github.com/xenclone/xenclone/hostagent/xen/xlsim"
)

// Guest is a simulated guest preparer: Prepare takes time and records what it would scrub
// (a simulated disk has no filesystem to mount); BuildSeed renders the real NoCloud files with
// the seed package and writes them into a folder, since the playground may lack mkfs.vfat.
type Guest struct {
	Dir     string
	Latency time.Duration

	mu            sync.Mutex
	prepared      map[string]int
	fail          []error
	beforePrepare func()
}

// BeforePrepare runs fn at the start of the next Prepare (a test can kill the agent there).
func (g *Guest) BeforePrepare(fn func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.beforePrepare = fn
}

// Prepare implements hostagent.Guest.
func (g *Guest) Prepare(ctx context.Context, device string, req hostagent.PrepareRequest) (hostagent.PrepareReport, error) {
	g.mu.Lock()
	hook := g.beforePrepare
	g.beforePrepare = nil
	g.mu.Unlock()
	if hook != nil {
		hook()
	}
	if err := sleep(ctx, g.Latency); err != nil {
		return hostagent.PrepareReport{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.fail) > 0 {
		err := g.fail[0]
		g.fail = g.fail[1:]
		return hostagent.PrepareReport{}, fmt.Errorf("prepare %s: %w", device, err)
	}
	if g.prepared == nil {
		g.prepared = map[string]int{}
	}
	g.prepared[device]++
	rep := hostagent.PrepareReport{}
	for _, op := range req.Operations {
		rep.Changed = append(rep.Changed, string(op))
	}
	return rep, nil
}

// InjectFault makes the next Prepare fail with err.
func (g *Guest) InjectFault(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fail = append(g.fail, err)
}

// Prepared says how often the disk at device was prepared.
func (g *Guest) Prepared(device string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.prepared[device]
}

func (g *Guest) seedDir(uid string) string { return filepath.Join(g.Dir, "seed", uid) }

// BuildSeed implements hostagent.Guest.
func (g *Guest) BuildSeed(ctx context.Context, req hostagent.SeedRequest) (string, error) {
	spec := seed.Spec{InstanceID: req.UID, Hostname: req.Hostname, UserData: req.UserData, NetworkConfig: req.NetworkConfig}
	for i, mac := range req.MACs {
		spec.Interfaces = append(spec.Interfaces, seed.Interface{Name: fmt.Sprintf("eth%d", i), MAC: mac})
	}
	files, err := seed.Render(spec)
	if err != nil {
		return "", err
	}
	dir := g.seedDir(req.UID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// RemoveSeed implements hostagent.Guest.
func (g *Guest) RemoveSeed(_ context.Context, uid string) error {
	return os.RemoveAll(g.seedDir(uid))
}

// Seeds implements hostagent.Guest.
func (g *Guest) Seeds(context.Context) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(g.Dir, "seed"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out, err
}

// HostOptions shape a simulated host.
type HostOptions struct {
	// MemoryMiB is the host's total memory; dom0 keeps 1024 MiB of it.
	MemoryMiB int64
	CPUs      int
	// VGSize is the size of vg0.
	VGSize uint64
	// Templates are origin LVs to create in vg0, name → size.
	Templates map[string]uint64
	// Realistic turns on latencies measured on real hosts; off, everything is instant.
	Realistic bool
	// GuestAgents makes every guest run a guest agent that publishes its address and OS in
	// xenstore once booted (the simulator's guest_agent knob); off, only guests with xcagent on
	// their kernel command line do.
	GuestAgents bool
	// XL is the command that runs the xl simulator: a binary built from
	// hostagent/xen/xlsim/cmd/xl, or the xenclone binary with its "xlsim" role.
	XL []string
}

// Host is one simulated dom0.
type Host struct {
	Name    string
	Dir     string
	Storage *Storage
	Guest   *Guest
	Xen     *xen.Driver
	// Xenstore writes through the simulator's xenstore-write look-alike (xl xenstore-write).
	Xenstore *xen.Xenstore
}

// NewHost creates a simulated dom0 whose state lives in dir.
func NewHost(ctx context.Context, name, dir string, o HostOptions) (*Host, error) {
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 65536
	}
	if o.CPUs == 0 {
		o.CPUs = 16
	}
	if o.VGSize == 0 {
		o.VGSize = 2 << 40
	}
	if len(o.XL) == 0 {
		return nil, fmt.Errorf("simulated host %s: no xl simulator command given", name)
	}
	dir, err := filepath.Abs(dir) // xl.cfg disk targets must be absolute
	if err != nil {
		return nil, err
	}
	xlDir := filepath.Join(dir, "xl")
	if err := os.MkdirAll(xlDir, 0o755); err != nil {
		return nil, err
	}
	h := &Host{Name: name, Dir: dir, Storage: NewStorage(), Guest: &Guest{Dir: dir}}
	h.Storage.DataDir = dir
	h.Xen = &xen.Driver{
		Runner: command.Runner{Prefix: o.XL[:len(o.XL)-1], Env: append(os.Environ(), xlsim.StateDirEnv+"="+xlDir)},
		XL:     o.XL[len(o.XL)-1],
	}
	// The simulator's xenstore tools run as `<xl> xenstore-write …`: the same binary, the
	// tool's name as its first argument.
	h.Xenstore = &xen.Xenstore{Runner: command.Runner{Prefix: o.XL, Env: h.Xen.Runner.Env}}
	if o.Realistic {
		h.Storage.Latency = RealisticStorageLatency
		h.Guest.Latency = 1200 * time.Millisecond // mount, edit, unmount of a small guest
	}
	if err := h.xl(ctx, "sim-init", fmt.Sprintf("total_memory=%d", o.MemoryMiB), "dom0_memory=1024",
		fmt.Sprintf("nr_cpus=%d", o.CPUs), "host="+name, "bridges=xenbr0,xenbr1"); err != nil {
		return nil, err
	}
	if o.GuestAgents {
		if err := h.xl(ctx, "sim-knob", "guest_agent=1"); err != nil {
			return nil, err
		}
	}
	if o.Realistic {
		// xl create of a PV domain measured ~0.5 s; shutdown acknowledged after ~1 s.
		if err := h.xl(ctx, "sim-knob", "delay.create=500ms", "shutdown_delay=1s"); err != nil {
			return nil, err
		}
	}
	h.Storage.AddVG("vg0", o.VGSize)
	for t, size := range o.Templates {
		if err := h.Storage.AddOrigin("vg0", t, size); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func (h *Host) xl(ctx context.Context, args ...string) error {
	if _, err := h.Xen.Runner.Run(ctx, h.Xen.XL, args...); err != nil {
		return fmt.Errorf("xl simulator %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// XL runs a simulator-only command, e.g. XL(ctx, "sim-guest", "xc-default-web-1", "crash").
func (h *Host) XL(ctx context.Context, args ...string) error { return h.xl(ctx, args...) }

// AgentHost is the host boundary the agent drives.
func (h *Host) AgentHost() hostagent.Host {
	return hostagent.Host{Storage: h.Storage, Images: h.Storage, Importer: &imageimport.Importer{ScratchDir: filepath.Join(h.Dir, "imports")},
		Guest: h.Guest, Hypervisor: h.Xen, Control: hostagent.NewDomainControl(h.Xen, h.Xenstore),
		Guests:    hostagent.NewGuestSource(h.Xenstore, &hostnet.Table{Runner: h.Xenstore.Runner}),
		ConfigDir: filepath.Join(h.Dir, "domains")}
}

// XenstoreRead reads a path of the simulated xenstore (what a guest would read), e.g.
// /local/domain/3/data/xenclone/ready; ok is false when nothing is there.
func (h *Host) XenstoreRead(ctx context.Context, path string) (string, bool, error) {
	out, err := h.Xenstore.Runner.Run(ctx, "xenstore-read", "-R", path)
	if err != nil {
		if command.ExitCode(err) == 1 {
			return "", false, nil
		}
		return "", false, fmt.Errorf("xenstore-read %s: %w", path, err)
	}
	return strings.TrimSuffix(string(out), "\n"), true, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
