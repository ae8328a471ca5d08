package main

// The "agents" role: K node agents, each a controller-runtime manager with its own cache
// (hostagent.CacheOptions) driving its own simulated host, all in this one process so their
// CPU and memory can be read from /proc as one number. Every API request they make is counted
// by a RoundTripper on the rest.Config, and every host operation is timed, so the report can
// say how much of an agent's time is host work and how much is ours.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/sim"
)

const leaseNamespace = "xenclone-system"

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(vmv1alpha1.AddToScheme(s))
	return s
}

// hostName is the i-th simulated host's name (1-based).
func hostName(i int) string { return fmt.Sprintf("xen-%02d", i) }

// simHost builds one simulated dom0 with the bench's latencies (not sim's Realistic switch,
// so each is a flag).
func simHost(ctx context.Context, name, dir string, xl []string, lat Latency, guestAgents bool) (*sim.Host, error) {
	h, err := sim.NewHost(ctx, name, dir, sim.HostOptions{
		MemoryMiB: 65536, CPUs: 32, VGSize: 4 << 40, GuestAgents: guestAgents,
		Templates: map[string]uint64{templateLV: 10 << 30}, XL: xl,
	})
	if err != nil {
		return nil, err
	}
	h.Storage.Latency = sim.StorageLatency{Report: lat.Report, Create: lat.Create, Change: lat.Change, Remove: lat.Remove}
	h.Guest.Latency = lat.Prepare
	if err := h.XL(ctx, "sim-knob", "delay.create="+lat.XLCreate.String(), "shutdown_delay="+lat.XLShutdown.String()); err != nil {
		return nil, err
	}
	return h, nil
}

func agentsMain(args []string) int {
	fs := flag.NewFlagSet("bench agents", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server")
	dir := fs.String("dir", "", "folder for the simulated hosts")
	xl := fs.String("xl", "", "xl simulator binary")
	hosts := fs.Int("hosts", 20, "simulated hosts")
	conc := fs.Int("concurrency", 4, "each agent's MaxConcurrent")
	statsAddr := fs.String("stats", "127.0.0.1:0", "address of the /stats endpoint")
	lat := defaultOptions().Latency
	fs.DurationVar(&lat.Report, "lvm-report", lat.Report, "")
	fs.DurationVar(&lat.Create, "lvm-create", lat.Create, "")
	fs.DurationVar(&lat.Change, "lvm-change", lat.Change, "")
	fs.DurationVar(&lat.Remove, "lvm-remove", lat.Remove, "")
	fs.DurationVar(&lat.Prepare, "guest-prepare", lat.Prepare, "")
	fs.DurationVar(&lat.XLCreate, "xl-create", lat.XLCreate, "")
	fs.DurationVar(&lat.XLShutdown, "xl-shutdown", lat.XLShutdown, "")
	guestAgents := fs.Bool("guest-agents", false, "every guest runs a guest agent")
	_ = fs.Parse(args)
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapErrorLevel)))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runAgents(ctx, *kubeconfig, *dir, *xl, *hosts, *conc, *statsAddr, lat, *guestAgents); err != nil {
		fmt.Fprintln(os.Stderr, "agents:", err)
		return 1
	}
	return 0
}

// AgentStats is what the agents process reports on /stats.
type AgentStats struct {
	Requests RequestCounts    `json:"requests"`
	HostOps  map[string]OpSum `json:"hostOps"`
	// RequestsByResource are the same requests by verb and resource (see requestKey).
	RequestsByResource RequestCounts `json:"requestsByResource,omitempty"`
	// HostOpsByHost are HostOps per simulated host.
	HostOpsByHost map[string]map[string]OpSum `json:"hostOpsByHost,omitempty"`
}

func runAgents(ctx context.Context, kubeconfig, dir, xl string, n, conc int, statsAddr string, lat Latency, guestAgents bool) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	// As ctrl.GetConfig does: no client-side rate limit, API priority and fairness decides.
	cfg.QPS, cfg.Burst = -1, -1
	counter := &requestCounter{}
	cfg.Wrap(counter.wrap)
	ops := &opStats{}

	errs := make(chan error, n)
	for i := 1; i <= n; i++ {
		name := hostName(i)
		h, err := simHost(ctx, name, filepath.Join(dir, name), []string{xl}, lat, guestAgents)
		if err != nil {
			return fmt.Errorf("simulated host %s: %w", name, err)
		}
		mgr, err := ctrl.NewManager(rest.CopyConfig(cfg), ctrl.Options{
			Scheme: newScheme(), Cache: hostagent.CacheOptions(name), MapperProvider: hostagent.MapperProvider,
			Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		})
		if err != nil {
			return fmt.Errorf("agent manager for %s: %w", name, err)
		}
		if err := hostagent.SetupWithManager(mgr, hostagent.Options{
			NodeName: name, Host: timedHost(h.AgentHost(), ops.host(name)), LeaseNamespace: leaseNamespace,
			RenewInterval: 10 * time.Second, ShutdownGrace: 20 * time.Second, MaxConcurrent: conc, AgentVersion: "bench",
		}); err != nil {
			return fmt.Errorf("agent for %s: %w", name, err)
		}
		go func() { errs <- mgr.Start(ctx) }()
	}

	ln, err := net.Listen("tcp", statsAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(AgentStats{Requests: counter.snapshot(), HostOps: ops.snapshot(),
			RequestsByResource: counter.snapshotByResource(), HostOpsByHost: ops.snapshotByHost()})
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	// The orchestrator reads this line to find the stats endpoint.
	fmt.Printf("STATS %s\n", ln.Addr())

	select {
	case <-ctx.Done():
		return nil
	case err := <-errs:
		return err
	}
}

// RequestCounts are API requests by verb (watch counted apart from get).
type RequestCounts map[string]int64

func (r RequestCounts) Total() int64 {
	var t int64
	for _, v := range r {
		t += v
	}
	return t
}

func (r RequestCounts) Sub(o RequestCounts) RequestCounts {
	out := RequestCounts{}
	for k, v := range r {
		if d := v - o[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// requestCounter counts requests through the rest.Config's transport, by verb (n) and by verb
// and resource (byRes, keyed by requestKey).
type requestCounter struct {
	mu    sync.Mutex
	n     RequestCounts
	byRes RequestCounts
}

type countingTransport struct {
	c  *requestCounter
	rt http.RoundTripper
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	verb := req.Method
	if req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1" {
		verb = "WATCH"
	}
	key := requestKey(verb, req.URL.Path, req.Header.Get("Content-Type"))
	t.c.mu.Lock()
	if t.c.n == nil {
		t.c.n, t.c.byRes = RequestCounts{}, RequestCounts{}
	}
	t.c.n[verb]++
	t.c.byRes[key]++
	t.c.mu.Unlock()
	return t.rt.RoundTrip(req)
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return countingTransport{c: c, rt: rt}
}

func (c *requestCounter) snapshot() RequestCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

func (c *requestCounter) snapshotByResource() RequestCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.byRes)
}

// requestKey names a request by verb and resource the way the API server's
// apiserver_request_total labels it, so the two can be subtracted: "VERB resource.group/sub",
// e.g. "APPLY vmclones.vm.xenclone.dev/status", "POST events.events.k8s.io", "PUT leases.coordination.k8s.io",
// "DELETE vmclones.vm.xenclone.dev" (core resources have no group: "POST events"). The verb is
// the HTTP method, except WATCH (watch=true), LIST (a GET of a collection) and APPLY (a PATCH
// with a server-side apply body). Paths that name no resource (/metrics, discovery) are
// "VERB <path>".
func requestKey(verb, path, contentType string) string {
	group, res, name, sub, ok := parseResourcePath(path)
	if !ok {
		return verb + " " + path
	}
	switch {
	case verb == "GET" && name == "":
		verb = "LIST"
	case verb == "PATCH" && strings.HasPrefix(contentType, "application/apply-patch"):
		verb = "APPLY"
	}
	return resourceKey(verb, group, res, sub)
}

func resourceKey(verb, group, res, sub string) string {
	k := verb + " " + res
	if group != "" {
		k += "." + group
	}
	if sub != "" {
		k += "/" + sub
	}
	return k
}

// parseResourcePath splits /api/v1/[namespaces/<ns>/]<resource>[/<name>[/<sub>]] and
// /apis/<group>/<version>/[namespaces/<ns>/]<resource>[/<name>[/<sub>]].
func parseResourcePath(path string) (group, res, name, sub string, ok bool) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(seg) >= 3 && seg[0] == "api":
		seg = seg[2:]
	case len(seg) >= 4 && seg[0] == "apis":
		group, seg = seg[1], seg[3:]
	default:
		return "", "", "", "", false
	}
	// namespaces/<ns>/<resource>/... unless it is the namespace itself (namespaces/<ns>[/status|/finalize]).
	if len(seg) >= 3 && seg[0] == "namespaces" && !(len(seg) == 3 && (seg[2] == "status" || seg[2] == "finalize")) {
		seg = seg[2:]
	}
	res = seg[0]
	if len(seg) > 1 {
		name = seg[1]
	}
	if len(seg) > 2 {
		sub = strings.Join(seg[2:], "/")
	}
	return group, res, name, sub, true
}
