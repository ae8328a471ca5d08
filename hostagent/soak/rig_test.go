package soak

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/controllers"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/sim"
)

// proc is one manager process as the soak sees it: started with its own context, killed by
// cancelling it. A killed manager leaves whatever it was doing half done, like a SIGKILLed pod
// (its in-flight host commands are cancelled too).
type proc struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *proc) kill() {
	if p == nil {
		return
	}
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
	}
}

func managerOptions() ctrl.Options {
	return ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Several generations of the same controllers live in one test process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
}

// Timings shortened so a soak sees many heartbeats, losses and orphan passes. A host that is
// away has fenced its Reschedule clones (fenceAfter after its last renewal) well before the
// controller moves them (heartbeatGrace + rescheduleAfter after the last renewal it saw): the
// controller's rule heartbeatGrace + rescheduleAfter >= fenceAfter + fenceMargin holds
// (14 s >= 8 s), and fenceAfter is three renewals and more.
const (
	heartbeatGrace  = 6 * time.Second
	rescheduleAfter = 8 * time.Second
	renewInterval   = time.Second
	orphanGrace     = 3 * time.Second
	fenceAfter      = 5 * time.Second
	// fenceMargin is the controller's Options.FenceMargin (with the default 20 s no clone
	// would move within a host's absence here).
	fenceMargin = 3 * time.Second
)

func startController() (*proc, error) {
	mgr, err := ctrl.NewManager(cfg, managerOptions())
	if err != nil {
		return nil, fmt.Errorf("controller manager: %w", err)
	}
	if err := controllers.SetupWithManager(mgr, controllers.Options{
		LeaseNamespace: leaseNamespace, HeartbeatGrace: heartbeatGrace, NodeLostRescheduleAfter: rescheduleAfter,
		FenceMargin: fenceMargin,
	}); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	return startManager(mgr), nil
}

func startManager(mgr ctrl.Manager) *proc {
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		_ = mgr.Start(ctx)
	}()
	return p
}

// host is one simulated dom0 and its agent.
type host struct {
	name string
	sim  *sim.Host

	mu    sync.Mutex
	agent *proc
	// awayUntil is set while the host is cut off: its agent runs on, but none of its API
	// requests gets through (no lease renewal), so it must fence.
	awayUntil time.Time
	// cuts are the host's absences so far, from the cut to its return.
	cuts []cut
	// net is the host's link to the API server.
	net *sim.Network
	// skew is how far the host's clock is off (its agent's clock, every time it writes):
	// liveness must not depend on it.
	skew time.Duration
}

// cut is one absence. A long one holds off controller kills, so the controller sees the
// host silent for its whole reschedule delay and moves the host's Reschedule clones.
type cut struct {
	from, to time.Time
	long     bool
}

// skewedClock is a dom0 clock set wrong by a constant: ticks and timers run at the real
// rate, only the time read is off.
type skewedClock struct {
	clock.RealClock
	skew time.Duration
}

func (c skewedClock) Now() time.Time                  { return time.Now().Add(c.skew) }
func (c skewedClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

func newHost(ctx context.Context, name string) (*host, error) {
	h, err := sim.NewHost(ctx, name, filepath.Join(workDir, name), sim.HostOptions{
		MemoryMiB: 64 << 10, VGSize: 512 << 30,
		Templates: map[string]uint64{"debian12": 4 << 30}, XL: []string{xlBinary},
	})
	if err != nil {
		return nil, err
	}
	return &host{name: name, sim: h, net: &sim.Network{}}, nil
}

func (h *host) startAgent() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.agent != nil {
		return nil
	}
	mgr, err := ctrl.NewManager(h.net.Config(cfg), func() ctrl.Options {
		o := managerOptions()
		o.Cache = hostagent.CacheOptions(h.name)
		o.MapperProvider = hostagent.MapperProvider
		return o
	}())
	if err != nil {
		return fmt.Errorf("agent manager %s: %w", h.name, err)
	}
	if err := hostagent.SetupWithManager(mgr, hostagent.Options{
		NodeName: h.name, Host: h.sim.AgentHost(), LeaseNamespace: leaseNamespace,
		RenewInterval: renewInterval, FenceAfter: fenceAfter, ShutdownGrace: 2 * time.Second, UsageResync: 2 * time.Second,
		CommandTimeout: 5 * time.Second,
		OrphanInterval: 500 * time.Millisecond, OrphanGrace: orphanGrace,
		Clock: skewedClock{skew: h.skew},
	}); err != nil {
		return fmt.Errorf("agent %s: %w", h.name, err)
	}
	h.agent = startManager(mgr)
	return nil
}

func (h *host) killAgent() {
	h.mu.Lock()
	p := h.agent
	h.agent = nil
	h.mu.Unlock()
	p.kill()
}

func (h *host) configFiles() []string {
	entries, _ := os.ReadDir(h.sim.AgentHost().ConfigDir)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// forgetHost removes a host's XenHost and heartbeat Lease, as an administrator does for a
// decommissioned host. A test's host left behind would count as a lost host in every later
// test's view (the controller pauses rescheduling while most hosts look lost).
func forgetHost(name string) {
	ctx := context.Background()
	_ = k8s.Delete(ctx, &vmv1alpha1.XenHost{ObjectMeta: metav1.ObjectMeta{Name: name}})
	_ = k8s.Delete(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: leaseNamespace, Name: name}})
}
