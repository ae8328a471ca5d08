package main

// The control-plane run: a real kube-apiserver + etcd (envtest), the real `xenclone manager`
// in one process, K node agents on simulated hosts in another, and this process as the user —
// N clones created by parallel clients (a burst of kubectl apply), each timed from its create
// call to the watch event that shows it Running; then all deleted and timed until gone.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// ControlPlane is the result of the N-clone run.
type ControlPlane struct {
	Clones int `json:"clones"`
	Hosts  int `json:"hosts"`
	// Running is how many clones reached Running before the timeout.
	Running int `json:"running"`
	// ApplySeconds is how long the creators took to issue every create.
	ApplySeconds float64 `json:"applySeconds"`
	// CreateWallSeconds: first create call → last clone Running.
	CreateWallSeconds float64   `json:"createWallSeconds"`
	ApplyToScheduled  Quantiles `json:"applyToScheduled"`
	ApplyToRunning    Quantiles `json:"applyToRunning"`
	// DeleteWallSeconds: first delete call → last clone gone (finalizer released).
	DeleteWallSeconds float64   `json:"deleteWallSeconds"`
	DeleteLatency     Quantiles `json:"deleteLatency"`
	Create            Phase     `json:"create"`
	Delete            Phase     `json:"delete"`
	// Lifetime is the whole create → Running → delete → gone of the N clones, from just before
	// the first create to the last clone gone (it includes what was written between the two
	// phases, e.g. Ready after Running), and Writes its API writes per clone.
	Lifetime *Phase       `json:"lifetime,omitempty"`
	Writes   *WriteBudget `json:"writes,omitempty"`
	// Single is the single-clone run on the idle cluster afterwards.
	Single *SingleClone `json:"single,omitempty"`
}

// Phase is what the processes spent during one phase.
type Phase struct {
	Controller ProcSample `json:"controller"`
	Agents     ProcSample `json:"agents"`
	// APIServer and Etcd are envtest's kube-apiserver and etcd processes.
	APIServer ProcSample `json:"apiserver"`
	Etcd      ProcSample `json:"etcd"`
	// Requests are API requests by verb: the controller's (its client-go metrics), the agents'
	// (counted on their transport), the bench's own (creates/deletes/its watch), and the API
	// server's total (apiserver_request_total, every client).
	ControllerRequests RequestCounts    `json:"controllerRequests"`
	AgentRequests      RequestCounts    `json:"agentRequests"`
	BenchRequests      RequestCounts    `json:"benchRequests"`
	APIServerRequests  RequestCounts    `json:"apiserverRequests"`
	HostOps            map[string]OpSum `json:"hostOps"`
	// Reconciles of the controller, by controller.
	Reconciles map[string]float64 `json:"controllerReconciles"`
	// The same requests by verb and resource (requestKey): the agents' and the bench's from
	// their transports, the API server's from apiserver_request_total's verb, group, resource
	// and subresource labels. The controller's client-go metric has no resource label; its
	// share is the API server's minus the agents' and the bench's (see WriteBudget).
	AgentRequestsByResource     RequestCounts `json:"agentRequestsByResource,omitempty"`
	BenchRequestsByResource     RequestCounts `json:"benchRequestsByResource,omitempty"`
	APIServerRequestsByResource RequestCounts `json:"apiserverRequestsByResource,omitempty"`
	// Seconds is the phase's wall time.
	Seconds float64 `json:"seconds,omitempty"`
}

// cluster is everything the control-plane run started, stopped on every path by close.
type cluster struct {
	env        *envtest.Environment
	cfg        *rest.Config
	kubeconfig string
	c          client.Client
	benchReqs  *requestCounter
	apiserver  *kubernetes.Clientset

	controller   *child
	metricsAddr  string
	pprofAddr    string
	results      string
	name         string
	agents       *child
	agentsStats  string
	benchCache   cache.Cache
	cancelCache  context.CancelFunc
	cloneEvents  *cloneWatch
	work         string
	apiserverPid int
	etcdPid      int
}

func (cl *cluster) close() {
	if cl.cancelCache != nil {
		cl.cancelCache()
	}
	cl.agents.stop(20 * time.Second)
	cl.controller.stop(15 * time.Second)
	if cl.env != nil {
		if err := cl.env.Stop(); err != nil {
			logf("stop control plane: %v", err)
		}
	}
}

func xlSimulator(o Options) string { return filepath.Join(filepath.Dir(o.Xenclone), "xl") }

func startCluster(ctx context.Context, o Options, work string) (*cluster, error) {
	cl := &cluster{work: work, benchReqs: &requestCounter{}, results: o.Results, name: o.Name}
	cl.env = &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg, err := cl.env.Start()
	if err != nil {
		cl.env = nil
		return cl, fmt.Errorf("start kube-apiserver + etcd: %w", err)
	}
	cfg.QPS, cfg.Burst = -1, -1
	cl.cfg = cfg
	if u, err := url.Parse(cfg.Host); err == nil {
		cl.apiserverPid = findPid("kube-apiserver", "--secure-port="+u.Port())
	}
	if e := cl.env.ControlPlane.Etcd; e != nil && e.URL != nil {
		cl.etcdPid = findPid("etcd", e.URL.Host)
	}
	logf("control plane: kube-apiserver pid %d, etcd pid %d", cl.apiserverPid, cl.etcdPid)
	user, err := cl.env.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return cl, err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return cl, err
	}
	cl.kubeconfig = filepath.Join(work, "kubeconfig")
	if err := os.WriteFile(cl.kubeconfig, kc, 0o600); err != nil {
		return cl, err
	}
	if cl.apiserver, err = kubernetes.NewForConfig(cfg); err != nil {
		return cl, err
	}
	counted := rest.CopyConfig(cfg)
	counted.Wrap(cl.benchReqs.wrap)
	if cl.c, err = client.New(counted, client.Options{Scheme: newScheme()}); err != nil {
		return cl, err
	}
	for _, ns := range []string{leaseNamespace, benchNS} {
		if err := cl.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			return cl, err
		}
	}
	tpl, err := loadTemplate()
	if err != nil {
		return cl, err
	}
	if err := cl.c.Create(ctx, tpl); err != nil {
		return cl, fmt.Errorf("create template: %w", err)
	}

	// The controller: the real binary, its own process.
	if cl.metricsAddr, err = freePort(); err != nil {
		return cl, err
	}
	self, err := os.Executable()
	if err != nil {
		return cl, err
	}
	argv := []string{o.Xenclone, "manager", "--kubeconfig", cl.kubeconfig, "--metrics-bind-address", cl.metricsAddr,
		"--health-probe-bind-address", "0", "--zap-log-level", "error",
		// The only manager on the bench's own API server: nothing to elect against.
		"--leader-elect=false"}
	if o.Profile {
		if cl.pprofAddr, err = freePort(); err != nil {
			return cl, err
		}
		argv = []string{self, "controller", "--kubeconfig", cl.kubeconfig, "--metrics-bind-address", cl.metricsAddr,
			"--pprof-bind-address", cl.pprofAddr, fmt.Sprintf("--strip-managed-fields=%t", o.Strip),
			fmt.Sprintf("--max-concurrent-reconciles=%d", o.Workers)}
	}
	if cl.controller, err = startChild("manager", filepath.Join(work, "manager.log"), argv, nil); err != nil {
		return cl, err
	}
	// The agents: this binary's agents role.
	pr, pw := io.Pipe()
	lat := o.Latency
	cl.agents, err = startChild("agents", filepath.Join(work, "agents.log"), []string{self, "agents",
		"--kubeconfig", cl.kubeconfig, "--dir", filepath.Join(work, "hosts"), "--xl", xlSimulator(o),
		"--hosts", fmt.Sprint(o.Hosts), "--concurrency", fmt.Sprint(o.AgentConc),
		"--lvm-report", lat.Report.String(), "--lvm-create", lat.Create.String(), "--lvm-change", lat.Change.String(),
		"--lvm-remove", lat.Remove.String(), "--guest-prepare", lat.Prepare.String(), "--xl-create", lat.XLCreate.String(),
		"--xl-shutdown", lat.XLShutdown.String(), fmt.Sprintf("--guest-agents=%v", o.GuestAgents)}, pw)
	if err != nil {
		return cl, err
	}
	if cl.agentsStats, err = statsLine(pr, 2*time.Minute); err != nil {
		return cl, err
	}

	// The bench's own view of the clones: one informer, like `kubectl get -w`.
	cctx, cancel := context.WithCancel(ctx)
	cl.cancelCache = cancel
	watchCfg := rest.CopyConfig(cfg)
	watchCfg.Wrap(cl.benchReqs.wrap)
	if cl.benchCache, err = cache.New(watchCfg, cache.Options{Scheme: newScheme()}); err != nil {
		return cl, err
	}
	cl.cloneEvents = newCloneWatch()
	inf, err := cl.benchCache.GetInformer(cctx, &vmv1alpha1.VMClone{})
	if err != nil {
		return cl, err
	}
	if _, err := inf.AddEventHandler(cl.cloneEvents.handler()); err != nil {
		return cl, err
	}
	go func() { _ = cl.benchCache.Start(cctx) }()
	if !cl.benchCache.WaitForCacheSync(cctx) {
		return cl, errors.New("bench cache did not sync")
	}
	return cl, cl.waitForHosts(ctx, o.Hosts)
}

// waitForHosts waits until every simulated host has reported its XenHost with the template
// usable (found, not refused; it turns read-only only at the first clone) and a heartbeat Lease.
func (cl *cluster) waitForHosts(ctx context.Context, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if !cl.agents.alive() || !cl.controller.alive() {
			return fmt.Errorf("a bench process died (see %s/agents.log and manager.log)", cl.work)
		}
		var hosts vmv1alpha1.XenHostList
		var leases coordinationv1.LeaseList
		ready := 0
		if cl.c.List(ctx, &hosts) == nil && cl.c.List(ctx, &leases, client.InNamespace(leaseNamespace)) == nil {
			for _, h := range hosts.Items {
				for _, t := range h.Status.Templates {
					if t.Name == "debian12" && t.LVUUID != "" && t.Refused == "" {
						ready++
					}
				}
			}
			if ready >= n && len(leases.Items) >= n {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("the %d simulated hosts did not all report in 2 minutes", n)
}

// cloneWatch records, per clone name, when the watch first showed it scheduled, Running and
// gone.
type cloneWatch struct {
	mu                        sync.Mutex
	scheduled, running, gone  map[string]time.Time
	node                      map[string]string
	runningCount, deleteCount atomic.Int64
	changed                   chan struct{}
}

func newCloneWatch() *cloneWatch {
	return &cloneWatch{scheduled: map[string]time.Time{}, running: map[string]time.Time{}, gone: map[string]time.Time{},
		node: map[string]string{}, changed: make(chan struct{}, 1)}
}

func (w *cloneWatch) see(obj any) {
	c, ok := obj.(*vmv1alpha1.VMClone)
	if !ok {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.scheduled[c.Name]; !ok && c.Status.NodeName != "" {
		w.scheduled[c.Name] = now
	}
	if c.Status.NodeName != "" {
		w.node[c.Name] = c.Status.NodeName
	}
	if _, ok := w.running[c.Name]; !ok && c.Status.Phase == vmv1alpha1.PhaseRunning {
		w.running[c.Name] = now
		w.runningCount.Add(1)
		w.poke()
	}
}

func (w *cloneWatch) poke() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *cloneWatch) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.see(obj) },
		UpdateFunc: func(_, obj any) { w.see(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if c, ok := obj.(*vmv1alpha1.VMClone); ok {
				w.mu.Lock()
				w.gone[c.Name] = time.Now()
				w.mu.Unlock()
				w.deleteCount.Add(1)
				w.poke()
			}
		},
	}
}

// waitFor waits until count() reaches n or the timeout passes.
func (w *cloneWatch) waitFor(ctx context.Context, n int64, count func() int64, timeout time.Duration, alive func() error) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for count() < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("timed out after %s: %d of %d", timeout, count(), n)
		case <-w.changed:
		case <-tick.C:
			logf("  … %d of %d", count(), n)
			if err := alive(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (cl *cluster) alive() error {
	if !cl.agents.alive() {
		return fmt.Errorf("the agents process died (see %s/agents.log)", cl.work)
	}
	if !cl.controller.alive() {
		return fmt.Errorf("the manager process died (see %s/manager.log)", cl.work)
	}
	return nil
}

// phaseMark is the counters at a phase boundary.
type phaseMark struct {
	ctrl, agents  ProcSample
	api, etcd     ProcSample
	ctrlReqs      RequestCounts
	agentStats    AgentStats
	benchReqs     RequestCounts
	apiserverReqs RequestCounts
	reconciles    map[string]float64
	benchByRes    RequestCounts
	apiserverRes  RequestCounts
	// ctrlMetrics are the controller's histogram sums and counts by label (ctrlHistograms).
	ctrlMetrics map[string]map[string]float64
	// apiLatency is the API server's apiserver_request_duration_seconds by requestKey.
	apiLatency latencySums
	at         time.Time
}

// ctrlHistograms are the controller's histograms the claims part reads (sum and count), each
// by the label that names what it measures: the workqueues by controller name.
var ctrlHistograms = map[string]string{
	"workqueue_queue_duration_seconds": "name", "workqueue_work_duration_seconds": "name",
}

func (cl *cluster) mark(ctx context.Context) phaseMark {
	m := phaseMark{at: time.Now()}
	m.ctrl, _ = sampleProc(cl.controller.pid())
	if cl.apiserverPid != 0 {
		m.api, _ = sampleProc(cl.apiserverPid)
	}
	if cl.etcdPid != 0 {
		m.etcd, _ = sampleProc(cl.etcdPid)
	}
	if cl.agents.alive() {
		m.agents, _ = sampleProc(cl.agents.pid())
		m.agentStats, _ = getAgentStats(ctx, cl.agentsStats)
	}
	if text, err := promText(ctx, "http://"+cl.metricsAddr+"/metrics"); err == nil {
		m.ctrlReqs = countsOf(promSum(text, "rest_client_requests_total", "method"))
		m.reconciles = promSum(text, "controller_runtime_reconcile_total", "controller")
		m.ctrlMetrics = map[string]map[string]float64{}
		for h, label := range ctrlHistograms {
			for _, part := range []string{"_sum", "_count"} {
				m.ctrlMetrics[h+part] = promSum(text, h+part, label)
			}
		}
	}
	m.benchReqs, m.benchByRes = cl.benchReqs.snapshot(), cl.benchReqs.snapshotByResource()
	m.apiserverReqs, m.apiserverRes, m.apiLatency = cl.apiserverRequests(ctx)
	return m
}

// apiserverRequests is apiserver_request_total by verb, and by verb and resource, from the API
// server's own metrics, and its request latency histogram's sums and counts by verb and resource.
func (cl *cluster) apiserverRequests(ctx context.Context) (RequestCounts, RequestCounts, latencySums) {
	raw, err := cl.apiserver.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, nil, latencySums{}
	}
	return countsOf(promSum(string(raw), "apiserver_request_total", "verb")), apiserverByResource(string(raw)), apiserverLatency(string(raw))
}

func phaseBetween(a, b phaseMark) Phase {
	p := Phase{
		Controller: delta(a.ctrl, b.ctrl), Agents: delta(a.agents, b.agents),
		APIServer: delta(a.api, b.api), Etcd: delta(a.etcd, b.etcd),
		ControllerRequests: b.ctrlReqs.Sub(a.ctrlReqs), AgentRequests: b.agentStats.Requests.Sub(a.agentStats.Requests),
		BenchRequests: b.benchReqs.Sub(a.benchReqs), APIServerRequests: b.apiserverReqs.Sub(a.apiserverReqs),
		HostOps: subOps(b.agentStats.HostOps, a.agentStats.HostOps), Reconciles: map[string]float64{},
		AgentRequestsByResource: b.agentStats.RequestsByResource.Sub(a.agentStats.RequestsByResource),
		BenchRequestsByResource: b.benchByRes.Sub(a.benchByRes), APIServerRequestsByResource: b.apiserverRes.Sub(a.apiserverRes),
		Seconds: b.at.Sub(a.at).Seconds(),
	}
	for k, v := range b.reconciles {
		if d := v - a.reconciles[k]; d != 0 {
			p.Reconciles[k] = d
		}
	}
	return p
}

func runControlPlane(ctx context.Context, o Options, work string, res *Results) (*ControlPlane, *ScaleResult, error) {
	logf("control plane: starting kube-apiserver + etcd, the manager and %d simulated hosts", o.Hosts)
	cl, err := startCluster(ctx, o, work)
	defer cl.close()
	if err != nil {
		return nil, nil, err
	}
	cp := &ControlPlane{Clones: o.Clones, Hosts: o.Hosts}

	// Create: every clone from o.Creators parallel clients.
	cl.resetPeaks()
	before := cl.mark(ctx)
	lifeStart := before
	applied := make([]time.Time, o.Clones)
	start := time.Now()
	if err := parallel(ctx, o.Clones, o.Creators, func(i int) error {
		c := &vmv1alpha1.VMClone{
			ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: fmt.Sprintf("vm-%05d", i)},
			Spec:       vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: "debian12"}, RunStrategy: vmv1alpha1.RunStrategyAlways},
		}
		applied[i] = time.Now()
		return cl.c.Create(ctx, c)
	}); err != nil {
		return cp, nil, fmt.Errorf("create clones: %w", err)
	}
	cp.ApplySeconds = time.Since(start).Seconds()
	logf("control plane: %d clones applied in %.1fs; waiting for Running", o.Clones, cp.ApplySeconds)
	cl.profile(ctx, "create", "profile?seconds=30")
	werr := cl.cloneEvents.waitFor(ctx, int64(o.Clones), cl.cloneEvents.runningCount.Load, o.Timeout, cl.alive)
	after := cl.mark(ctx)
	cp.Create = phaseBetween(before, after)
	cp.Running = int(cl.cloneEvents.runningCount.Load())
	var toRun, toSched []float64
	last := start
	cl.cloneEvents.mu.Lock()
	for i := range applied {
		name := fmt.Sprintf("vm-%05d", i)
		if t, ok := cl.cloneEvents.running[name]; ok {
			toRun = append(toRun, t.Sub(applied[i]).Seconds())
			if t.After(last) {
				last = t
			}
		}
		if t, ok := cl.cloneEvents.scheduled[name]; ok {
			toSched = append(toSched, t.Sub(applied[i]).Seconds())
		}
	}
	cl.cloneEvents.mu.Unlock()
	cp.CreateWallSeconds = last.Sub(start).Seconds()
	cp.ApplyToRunning, cp.ApplyToScheduled = quantiles(toRun), quantiles(toSched)
	logf("control plane: %d of %d Running, last after %.1fs (p50 %.2fs p99 %.2fs)", cp.Running, o.Clones, cp.CreateWallSeconds, cp.ApplyToRunning.P50, cp.ApplyToRunning.P99)
	if werr != nil {
		return cp, nil, fmt.Errorf("waiting for Running: %w", werr)
	}

	// Delete: every clone, the same way; gone means the agent released its finalizer.
	cl.resetPeaks()
	before = cl.mark(ctx)
	deleted := make([]time.Time, o.Clones)
	start = time.Now()
	if err := parallel(ctx, o.Clones, o.Creators, func(i int) error {
		c := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: fmt.Sprintf("vm-%05d", i)}}
		deleted[i] = time.Now()
		return client.IgnoreNotFound(cl.c.Delete(ctx, c))
	}); err != nil {
		return cp, nil, fmt.Errorf("delete clones: %w", err)
	}
	werr = cl.cloneEvents.waitFor(ctx, int64(o.Clones), cl.cloneEvents.deleteCount.Load, o.Timeout, cl.alive)
	after = cl.mark(ctx)
	cp.Delete = phaseBetween(before, after)
	life := phaseBetween(lifeStart, after)
	cp.Lifetime, cp.Writes = &life, writeBudget(life, o.Clones, o.Hosts)
	var gone []float64
	last = start
	cl.cloneEvents.mu.Lock()
	for i := range deleted {
		if t, ok := cl.cloneEvents.gone[fmt.Sprintf("vm-%05d", i)]; ok {
			gone = append(gone, t.Sub(deleted[i]).Seconds())
			if t.After(last) {
				last = t
			}
		}
	}
	cl.cloneEvents.mu.Unlock()
	cp.DeleteWallSeconds, cp.DeleteLatency = last.Sub(start).Seconds(), quantiles(gone)
	logf("control plane: %d deleted, last gone after %.1fs", len(gone), cp.DeleteWallSeconds)
	if werr != nil {
		return cp, nil, fmt.Errorf("waiting for deletion: %w", werr)
	}
	if o.Single > 0 && !o.SkipSingle {
		sg, err := runSingle(ctx, o, cl)
		cp.Single = sg
		if err != nil {
			return cp, nil, fmt.Errorf("single clone: %w", err)
		}
	}

	// The claims part, before the scale part fills the API server with 10,000 clones.
	if !o.SkipClaims && o.Claims > 0 && o.ClaimPool > 0 {
		cr, err := runClaims(ctx, o, cl)
		res.Claims = cr
		if err != nil {
			res.Errors["claims"] = err.Error()
			logf("claims: %v", err)
		}
	}

	if o.SkipScale || o.Scale <= 0 {
		return cp, nil, nil
	}
	sc, err := runScale(ctx, o, cl)
	return cp, sc, err
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []string
	for err := range errs {
		all = append(all, err.Error())
	}
	if len(all) > 0 {
		return errors.New(strings.Join(all, "; "))
	}
	return ctx.Err()
}

// profile saves a pprof profile of the controller (only with -profile) in the background.
func (cl *cluster) profile(ctx context.Context, phase, what string) {
	if cl.pprofAddr == "" {
		return
	}
	go func() {
		path := filepath.Join(cl.results, fmt.Sprintf("%s-controller-%s.pprof", cl.name, phase))
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cl.pprofAddr+"/debug/pprof/"+what, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			logf("profile %s: %v", phase, err)
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil {
			_ = os.MkdirAll(cl.results, 0o755)
			err = os.WriteFile(path, data, 0o644)
		}
		if err != nil {
			logf("profile %s: %v", phase, err)
			return
		}
		logf("saved %s", path)
	}()
}

// resetPeaks starts every measured process's peak RSS afresh for the next phase.
func (cl *cluster) resetPeaks() {
	for _, pid := range []int{cl.controller.pid(), cl.agents.pid(), cl.apiserverPid, cl.etcdPid} {
		if pid != 0 {
			resetPeakRSS(pid)
		}
	}
}
