package main

// The claims part (issue 17): on the control-plane run's cluster (the same kube-apiserver,
// `xenclone manager` and simulated hosts), a VMClonePool of -claim-pool warm members; once all
// are warm, -claims VMClaims created at once by -creators parallel clients, each timed from
// just before its create call to the first watch event that shows status.cloneName set (bound)
// and Ready True; the controller's own status.bindMilliseconds beside it; the pool's refill back
// to full, timed from the first claim; then -claim-cold cold claims (spec.templateRef) timed the
// same way, with their clone's apply → Running, for the side-by-side. The claim path's API
// writes are counted per claim (the handover patch of the member, the claim's status applies,
// its finalizer, its Events). Then -claims-paced claims one after another, each Ready before
// the next: a claim's latency when it does not queue behind a burst.

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Targets of issue 17 (claim → bound, at the controller against a real API server).
const (
	targetBindP50 = 0.100 // seconds
	targetBindP99 = 0.500
)

const (
	claimPoolName = "warm"
	resVMClaim    = "vmclaims.vm.xenclone.dev"
	resVMPool     = "vmclonepools.vm.xenclone.dev"
)

// ClaimsResult is the claims part.
type ClaimsResult struct {
	PoolSize  int    `json:"poolSize"`
	Claims    int    `json:"claims"`
	Hosts     int    `json:"hosts"`
	WarmState string `json:"warmState"`
	MaxMaking int    `json:"maxMaking"`
	// FillSeconds: pool created → status.readyReplicas == PoolSize.
	FillSeconds float64 `json:"fillSeconds"`
	// CreateSeconds: how long the clients took to issue every claim's create.
	CreateSeconds float64 `json:"createSeconds"`
	Bound         int     `json:"bound"`
	Ready         int     `json:"ready"`
	// ClaimToBound: create call sent → the bench's watch shows status.cloneName.
	ClaimToBound Quantiles `json:"claimToBound"`
	// BindMilliseconds is the controller's status.bindMilliseconds (its first sight of the
	// claim → its bind), in seconds like the others.
	BindMilliseconds Quantiles `json:"bindSeconds"`
	// ClaimToReady: create call sent → the watch shows Ready True.
	ClaimToReady Quantiles `json:"claimToReady"`
	// LastBoundSeconds: first create call → last claim bound.
	LastBoundSeconds float64 `json:"lastBoundSeconds"`
	// Warm and Cold count the claims by status.source; PoolWarmHits and PoolColdClaims are the
	// pool's status.warmHits / coldClaims once all were bound.
	Warm           int   `json:"warm"`
	Cold           int   `json:"cold"`
	PoolWarmHits   int32 `json:"poolWarmHits"`
	PoolColdClaims int32 `json:"poolColdClaims"`
	// RefillSeconds: first create call → the pool's readyReplicas back at PoolSize;
	// MinReady is the lowest readyReplicas the watch saw in between.
	RefillSeconds float64 `json:"refillSeconds"`
	MinReady      int32   `json:"minReady"`
	// PacedRun is the claims one at a time after the refill.
	PacedRun *PacedClaims `json:"pacedRun,omitempty"`
	// ColdRun is the cold claims after the refill.
	ColdRun *ColdClaims `json:"coldRun,omitempty"`
	// Writes is the claim path's API writes per claim.
	Writes *ClaimWrites `json:"writes,omitempty"`
	// Bind is the claim window (first create → all Ready), Refill the window after it until
	// the pool is full again.
	Bind   Phase `json:"bind"`
	Refill Phase `json:"refill"`
	// Controller is the controller's own view of the bind window (its metrics).
	Controller ClaimController `json:"controller"`
	// CleanupSeconds: delete of every claim and the pool → no VMClone left.
	CleanupSeconds float64 `json:"cleanupSeconds"`
}

// PacedClaims is N claims made one after another against the full pool, each waited for
// before the next: the latency of a claim that does not queue behind 199 others.
type PacedClaims struct {
	N            int       `json:"n"`
	ClaimToBound Quantiles `json:"claimToBound"`
	// BindMilliseconds is the controller's status.bindMilliseconds, in seconds.
	BindMilliseconds Quantiles `json:"bindSeconds"`
	ClaimToReady     Quantiles `json:"claimToReady"`
}

// ColdClaims is N claims of the template (no pool), created at once.
type ColdClaims struct {
	N              int       `json:"n"`
	ClaimToBound   Quantiles `json:"claimToBound"`
	ClaimToReady   Quantiles `json:"claimToReady"`
	ApplyToRunning Quantiles `json:"applyToRunning"`
}

// ClaimWrites is the claim path's writes over first claim → pool refilled, per claim: the
// controller's writes to VMClaims (finalizer patch, status applies) and its PATCHes of VMClones
// (the handover, conflicting attempts included: only the claim controller patches clones that
// are not being deleted), and the Events with the claim reasons. Everything else the refill
// wrote is in RefillWrites.
type ClaimWrites struct {
	Claims int `json:"claims"`
	// Writes by requestKey, whole window (controller only: the bench's creates taken out).
	Writes       RequestCounts `json:"writes"`
	PerClaim     float64       `json:"perClaim"`
	EventsByKind RequestCounts `json:"eventsByReason"`
	// ClaimEvents are the Events of the claim path (reasons ClaimedWarm,
	// ColdFallback), per claim.
	ClaimEventsPerClaim float64 `json:"claimEventsPerClaim"`
	// RefillWrites are every other write of controller + agents in the window.
	RefillWrites RequestCounts `json:"refillWrites"`
}

// ClaimController is where the bind window's time went: the controller's vmclaim workqueue
// (mean wait in the queue, mean reconcile, from its metrics) and the API server's own time
// for the claim path's requests (apiserver_request_duration_seconds, every client).
type ClaimController struct {
	Reconciles       float64 `json:"reconciles"`
	QueueWaitMeanSec float64 `json:"queueWaitMeanSeconds"`
	WorkMeanSec      float64 `json:"workMeanSeconds"`
	// APIMeanByKey and APICountByKey: the API server's mean time and count per requestKey.
	APIMeanByKey  map[string]float64 `json:"apiserverMeanSecondsByRequest"`
	APICountByKey map[string]float64 `json:"apiserverCountByRequest"`
	// Handed is how many clones carry the claim label after the burst (one per claim), and
	// HandedClaims how many distinct claims they name.
	Handed       int `json:"handedOver"`
	HandedClaims int `json:"handedOverClaims"`
}

// claimWatch records, per claim, when the bench's watch first showed it bound and Ready.
type claimWatch struct {
	mu           sync.Mutex
	bound, ready map[string]time.Time
	bindMs       map[string]int64
	source       map[string]vmv1alpha1.ClaimSource
	clone        map[string]string
	changed      chan struct{}
}

func newClaimWatch() *claimWatch {
	return &claimWatch{bound: map[string]time.Time{}, ready: map[string]time.Time{}, bindMs: map[string]int64{},
		source: map[string]vmv1alpha1.ClaimSource{}, clone: map[string]string{}, changed: make(chan struct{}, 1)}
}

func (w *claimWatch) see(obj any) {
	c, ok := obj.(*vmv1alpha1.VMClaim)
	if !ok {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.bound[c.Name]; !ok && c.Status.CloneName != "" {
		w.bound[c.Name] = now
		w.clone[c.Name] = c.Status.CloneName
		w.source[c.Name] = c.Status.Source
		if c.Status.BindMilliseconds != nil {
			w.bindMs[c.Name] = *c.Status.BindMilliseconds
		}
	}
	if _, ok := w.ready[c.Name]; !ok && meta.IsStatusConditionTrue(c.Status.Conditions, vmv1alpha1.ConditionReady) {
		w.ready[c.Name] = now
	}
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *claimWatch) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{AddFunc: w.see, UpdateFunc: func(_, o any) { w.see(o) }}
}

func (w *claimWatch) count(m func(*claimWatch) map[string]time.Time, names []string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := int64(0)
	for _, name := range names {
		if _, ok := m(w)[name]; ok {
			n++
		}
	}
	return n
}

// poolWatch follows the pool's status.readyReplicas.
type poolWatch struct {
	mu        sync.Mutex
	ready     int32
	status    vmv1alpha1.VMClonePoolStatus
	armed     bool // set at the first claim: from then on the lowest and the refill are tracked
	dropped   bool
	min       int32
	full      int32
	refilled  time.Time
	changed   chan struct{}
	onRefill  chan struct{}
	refillSet bool
}

func newPoolWatch(full int32) *poolWatch {
	return &poolWatch{full: full, min: full, changed: make(chan struct{}, 1), onRefill: make(chan struct{})}
}

func (w *poolWatch) see(obj any) {
	p, ok := obj.(*vmv1alpha1.VMClonePool)
	if !ok || p.Name != claimPoolName {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ready, w.status = p.Status.ReadyReplicas, *p.Status.DeepCopy()
	if w.armed {
		if w.ready < w.min {
			w.min = w.ready
		}
		if w.ready < w.full {
			w.dropped = true
		}
		if w.dropped && w.ready >= w.full && !w.refillSet {
			w.refilled, w.refillSet = now, true
			close(w.onRefill)
		}
	}
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *poolWatch) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{AddFunc: w.see, UpdateFunc: func(_, o any) { w.see(o) }}
}

func (w *poolWatch) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = true
}

func (w *poolWatch) readyNow() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int64(w.ready)
}

// waitCount waits until count() reaches n, waking on changed, or the timeout passes.
func waitCount(ctx context.Context, what string, n int64, count func() int64, changed <-chan struct{}, timeout time.Duration, alive func() error) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for count() < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("%s: timed out after %s: %d of %d", what, timeout, count(), n)
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		case <-tick.C:
			logf("  … %s: %d of %d", what, count(), n)
			if err := alive(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (o Options) claimPoolSpec() *vmv1alpha1.VMClonePool {
	p := &vmv1alpha1.VMClonePool{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: claimPoolName},
		Spec: vmv1alpha1.VMClonePoolSpec{
			Replicas:  ptr.To(int32(o.ClaimPool)),
			WarmState: vmv1alpha1.WarmState(o.ClaimState),
			Template: vmv1alpha1.VMCloneTemplateSpec{Spec: vmv1alpha1.VMCloneSpec{
				TemplateRef: vmv1alpha1.LocalObjectReference{Name: "debian12"}}},
		},
	}
	if o.ClaimMaxMaking > 0 {
		p.Spec.MaxMaking = ptr.To(int32(o.ClaimMaxMaking))
	}
	return p
}

func runClaims(ctx context.Context, o Options, cl *cluster) (*ClaimsResult, error) {
	res := &ClaimsResult{PoolSize: o.ClaimPool, Claims: o.Claims, Hosts: o.Hosts, WarmState: o.ClaimState, MaxMaking: o.ClaimMaxMaking}
	if res.MaxMaking <= 0 {
		res.MaxMaking = 10 // the CRD's default (controllers.DefaultPoolMaxMaking)
	}
	cw, pw := newClaimWatch(), newPoolWatch(int32(o.ClaimPool))
	for obj, h := range map[client.Object]toolscache.ResourceEventHandler{&vmv1alpha1.VMClaim{}: cw.handler(), &vmv1alpha1.VMClonePool{}: pw.handler()} {
		inf, err := cl.benchCache.GetInformer(ctx, obj)
		if err != nil {
			return res, err
		}
		if _, err := inf.AddEventHandler(h); err != nil {
			return res, err
		}
	}

	// The pool, filled.
	logf("claims: pool %s of %d members (warmState %s, maxMaking %d) on %d hosts", claimPoolName, o.ClaimPool, o.ClaimState, res.MaxMaking, o.Hosts)
	start := time.Now()
	if err := cl.c.Create(ctx, o.claimPoolSpec()); err != nil {
		return res, fmt.Errorf("create pool: %w", err)
	}
	if err := waitCount(ctx, "pool warm", int64(o.ClaimPool), pw.readyNow, pw.changed, o.Timeout, cl.alive); err != nil {
		return res, err
	}
	res.FillSeconds = time.Since(start).Seconds()
	logf("claims: %d members warm after %.1fs; %d claims from %d clients", o.ClaimPool, res.FillSeconds, o.Claims, o.Creators)

	// The claims, all at once.
	names := make([]string, o.Claims)
	for i := range names {
		names[i] = fmt.Sprintf("claim-%04d", i)
	}
	before := cl.mark(ctx)
	pw.arm()
	sent := make([]time.Time, o.Claims)
	start = time.Now()
	if err := parallel(ctx, o.Claims, o.Creators, func(i int) error {
		c := &vmv1alpha1.VMClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: names[i]},
			Spec:       vmv1alpha1.VMClaimSpec{PoolRef: &vmv1alpha1.LocalObjectReference{Name: claimPoolName}},
		}
		sent[i] = time.Now()
		return cl.c.Create(ctx, c)
	}); err != nil {
		return res, fmt.Errorf("create claims: %w", err)
	}
	res.CreateSeconds = time.Since(start).Seconds()
	boundMap := func(w *claimWatch) map[string]time.Time { return w.bound }
	readyMap := func(w *claimWatch) map[string]time.Time { return w.ready }
	berr := waitCount(ctx, "claims bound", int64(o.Claims), func() int64 { return cw.count(boundMap, names) }, cw.changed, o.Timeout, cl.alive)
	rerr := error(nil)
	if berr == nil {
		rerr = waitCount(ctx, "claims Ready", int64(o.Claims), func() int64 { return cw.count(readyMap, names) }, cw.changed, o.Timeout, cl.alive)
	}
	bound := cl.mark(ctx)
	res.Bind = phaseBetween(before, bound)
	res.Controller = claimController(before, bound)
	res.Controller.Handed, res.Controller.HandedClaims = handedOver(ctx, cl)
	var toBound, toReady, bindSec []float64
	last := start
	cw.mu.Lock()
	for i, n := range names {
		if t, ok := cw.bound[n]; ok {
			toBound = append(toBound, t.Sub(sent[i]).Seconds())
			if t.After(last) {
				last = t
			}
			if ms, ok := cw.bindMs[n]; ok {
				bindSec = append(bindSec, float64(ms)/1000)
			}
			switch cw.source[n] {
			case vmv1alpha1.SourceWarm:
				res.Warm++
			case vmv1alpha1.SourceCold:
				res.Cold++
			}
		}
		if t, ok := cw.ready[n]; ok {
			toReady = append(toReady, t.Sub(sent[i]).Seconds())
		}
	}
	res.Bound, res.Ready = len(toBound), len(toReady)
	cw.mu.Unlock()
	res.ClaimToBound, res.ClaimToReady, res.BindMilliseconds = quantiles(toBound), quantiles(toReady), quantiles(bindSec)
	res.LastBoundSeconds = last.Sub(start).Seconds()
	logf("claims: %d bound (p50 %.0f ms, p99 %.0f ms, max %.0f ms; controller p50 %.0f ms), %d Ready, %d warm / %d cold",
		res.Bound, res.ClaimToBound.P50*1000, res.ClaimToBound.P99*1000, res.ClaimToBound.Max*1000, res.BindMilliseconds.P50*1000, res.Ready, res.Warm, res.Cold)
	if berr != nil {
		return res, berr
	}
	if rerr != nil {
		return res, rerr
	}

	// The refill back to full.
	select {
	case <-pw.onRefill:
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(o.Timeout):
		return res, fmt.Errorf("pool refill: timed out after %s at %d of %d warm", o.Timeout, pw.readyNow(), o.ClaimPool)
	}
	refilled := cl.mark(ctx)
	res.Refill = phaseBetween(bound, refilled)
	pw.mu.Lock()
	res.RefillSeconds, res.MinReady = pw.refilled.Sub(start).Seconds(), pw.min
	res.PoolWarmHits, res.PoolColdClaims = pw.status.WarmHits, pw.status.ColdClaims
	pw.mu.Unlock()
	logf("claims: pool back to %d warm %.1fs after the first claim (lowest %d); pool counts %d warm hits, %d cold",
		o.ClaimPool, res.RefillSeconds, res.MinReady, res.PoolWarmHits, res.PoolColdClaims)
	res.Writes = claimWrites(ctx, cl, phaseBetween(before, refilled), o.Claims, before.at)

	// Claims one at a time, the pool full again.
	var pacedNames []string
	if o.ClaimsPaced > 0 {
		pr, pn, err := runPacedClaims(ctx, o, cl, cw)
		res.PacedRun, pacedNames = pr, pn
		if err != nil {
			return res, err
		}
	}

	// Cold claims, the same way, for the side-by-side.
	var coldNames []string
	if o.ClaimCold > 0 {
		cr, cn, err := runColdClaims(ctx, o, cl, cw)
		res.ColdRun, coldNames = cr, cn
		if err != nil {
			return res, err
		}
	}

	// Clean up: every claim (their clones go with them) and the pool.
	start = time.Now()
	for _, n := range append(append(names, pacedNames...), coldNames...) {
		if err := client.IgnoreNotFound(cl.c.Delete(ctx, &vmv1alpha1.VMClaim{ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: n}})); err != nil {
			return res, fmt.Errorf("delete claim %s: %w", n, err)
		}
	}
	if err := client.IgnoreNotFound(cl.c.Delete(ctx, o.claimPoolSpec())); err != nil {
		return res, fmt.Errorf("delete pool: %w", err)
	}
	deadline := time.Now().Add(o.Timeout)
	for {
		var clones vmv1alpha1.VMCloneList
		var claims vmv1alpha1.VMClaimList
		if err := cl.benchCache.List(ctx, &clones, client.InNamespace(benchNS)); err != nil {
			return res, err
		}
		if err := cl.benchCache.List(ctx, &claims, client.InNamespace(benchNS)); err != nil {
			return res, err
		}
		if len(clones.Items) == 0 && len(claims.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("cleanup: %d clones, %d claims left after %s", len(clones.Items), len(claims.Items), o.Timeout)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	res.CleanupSeconds = time.Since(start).Seconds()
	logf("claims: cleaned up in %.1fs", res.CleanupSeconds)
	return res, nil
}

// runPacedClaims creates o.ClaimsPaced claims of the pool one after another, each after the
// previous one is Ready, and times them like the burst.
func runPacedClaims(ctx context.Context, o Options, cl *cluster, cw *claimWatch) (*PacedClaims, []string, error) {
	pr := &PacedClaims{N: o.ClaimsPaced}
	names := make([]string, o.ClaimsPaced)
	for i := range names {
		names[i] = fmt.Sprintf("paced-%03d", i)
	}
	logf("claims: %d claims one at a time", o.ClaimsPaced)
	readyMap := func(w *claimWatch) map[string]time.Time { return w.ready }
	var toBound, toReady, bindSec []float64
	for _, n := range names {
		c := &vmv1alpha1.VMClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: n},
			Spec:       vmv1alpha1.VMClaimSpec{PoolRef: &vmv1alpha1.LocalObjectReference{Name: claimPoolName}},
		}
		sent := time.Now()
		if err := cl.c.Create(ctx, c); err != nil {
			return pr, names, fmt.Errorf("create claim %s: %w", n, err)
		}
		if err := waitCount(ctx, "paced claim Ready", 1, func() int64 { return cw.count(readyMap, []string{n}) }, cw.changed, o.Timeout, cl.alive); err != nil {
			return pr, names, err
		}
		cw.mu.Lock()
		toBound = append(toBound, cw.bound[n].Sub(sent).Seconds())
		toReady = append(toReady, cw.ready[n].Sub(sent).Seconds())
		if ms, ok := cw.bindMs[n]; ok {
			bindSec = append(bindSec, float64(ms)/1000)
		}
		cw.mu.Unlock()
	}
	pr.ClaimToBound, pr.ClaimToReady, pr.BindMilliseconds = quantiles(toBound), quantiles(toReady), quantiles(bindSec)
	logf("claims: one at a time: bound p50 %.0f ms, p99 %.0f ms (controller p50 %.0f ms), Ready p50 %.0f ms",
		pr.ClaimToBound.P50*1000, pr.ClaimToBound.P99*1000, pr.BindMilliseconds.P50*1000, pr.ClaimToReady.P50*1000)
	return pr, names, nil
}

// runColdClaims creates o.ClaimCold claims of the template at once and times them like the
// warm ones, and their clones' apply (the claim's create) → Running.
func runColdClaims(ctx context.Context, o Options, cl *cluster, cw *claimWatch) (*ColdClaims, []string, error) {
	cr := &ColdClaims{N: o.ClaimCold}
	names := make([]string, o.ClaimCold)
	for i := range names {
		names[i] = fmt.Sprintf("cold-%03d", i)
	}
	logf("claims: %d cold claims (spec.templateRef) at once", o.ClaimCold)
	sent := make([]time.Time, len(names))
	if err := parallel(ctx, len(names), o.Creators, func(i int) error {
		c := &vmv1alpha1.VMClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: names[i]},
			Spec:       vmv1alpha1.VMClaimSpec{TemplateRef: &vmv1alpha1.LocalObjectReference{Name: "debian12"}},
		}
		sent[i] = time.Now()
		return cl.c.Create(ctx, c)
	}); err != nil {
		return cr, names, fmt.Errorf("create cold claims: %w", err)
	}
	readyMap := func(w *claimWatch) map[string]time.Time { return w.ready }
	err := waitCount(ctx, "cold claims Ready", int64(len(names)), func() int64 { return cw.count(readyMap, names) }, cw.changed, o.Timeout, cl.alive)
	var toBound, toReady, toRun []float64
	cw.mu.Lock()
	cl.cloneEvents.mu.Lock()
	for i, n := range names {
		if t, ok := cw.bound[n]; ok {
			toBound = append(toBound, t.Sub(sent[i]).Seconds())
		}
		if t, ok := cw.ready[n]; ok {
			toReady = append(toReady, t.Sub(sent[i]).Seconds())
		}
		if t, ok := cl.cloneEvents.running[cw.clone[n]]; ok && cw.clone[n] != "" {
			toRun = append(toRun, t.Sub(sent[i]).Seconds())
		}
	}
	cl.cloneEvents.mu.Unlock()
	cw.mu.Unlock()
	cr.ClaimToBound, cr.ClaimToReady, cr.ApplyToRunning = quantiles(toBound), quantiles(toReady), quantiles(toRun)
	logf("claims: cold claim → Ready p50 %.2fs (clone Running p50 %.2fs)", cr.ClaimToReady.P50, cr.ApplyToRunning.P50)
	return cr, names, err
}

// handedOver counts the clones that carry a claim's label, and the distinct claims they name:
// with every claim bound, both are the claim count unless a claim got two clones.
func handedOver(ctx context.Context, cl *cluster) (int, int) {
	var clones vmv1alpha1.VMCloneList
	if err := cl.benchCache.List(ctx, &clones, client.InNamespace(benchNS), client.HasLabels{vmv1alpha1.ClaimLabel}); err != nil {
		return 0, 0
	}
	claims := map[string]bool{}
	for _, c := range clones.Items {
		claims[c.Labels[vmv1alpha1.ClaimLabel]] = true
	}
	return len(clones.Items), len(claims)
}

// claimController reads the controller's vmclaim workqueue and request latencies over a window.
func claimController(a, b phaseMark) ClaimController {
	var cc ClaimController
	d := func(m string, key string) float64 { return b.ctrlMetrics[m][key] - a.ctrlMetrics[m][key] }
	cc.Reconciles = b.reconciles["vmclaim"] - a.reconciles["vmclaim"]
	if n := d("workqueue_queue_duration_seconds_count", "vmclaim"); n > 0 {
		cc.QueueWaitMeanSec = d("workqueue_queue_duration_seconds_sum", "vmclaim") / n
	}
	if n := d("workqueue_work_duration_seconds_count", "vmclaim"); n > 0 {
		cc.WorkMeanSec = d("workqueue_work_duration_seconds_sum", "vmclaim") / n
	}
	cc.APIMeanByKey, cc.APICountByKey = map[string]float64{}, map[string]float64{}
	for k, c := range b.apiLatency.Count {
		verb, res := splitKey(k)
		if !(res == resVMClaim || (res == resVMClone && (verb == "PATCH" || verb == "POST")) || isEvent(res)) {
			continue
		}
		if n := c - a.apiLatency.Count[k]; n > 0 {
			cc.APICountByKey[k] = n
			cc.APIMeanByKey[k] = (b.apiLatency.Sum[k] - a.apiLatency.Sum[k]) / n
		}
	}
	return cc
}

// claimPathReasons are the Events the claim path records.
var claimPathReasons = map[string]bool{vmv1alpha1.ReasonClaimedWarm: true, vmv1alpha1.ReasonColdFallback: true}

// claimWrites splits the window's writes (controller + agents; the bench's creates taken out)
// into the claim path's and the rest, and counts the window's Events by reason.
func claimWrites(ctx context.Context, cl *cluster, p Phase, claims int, since time.Time) *ClaimWrites {
	cw := splitClaimWrites(p, claims)
	if cw == nil {
		return nil
	}
	evs, err := cl.apiserver.EventsV1().Events(benchNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		logf("claims: list events: %v", err)
		return cw
	}
	claimEvents := 0
	for _, e := range evs.Items {
		at := e.EventTime.Time
		if at.IsZero() {
			at = e.CreationTimestamp.Time
		}
		if at.Before(since.Add(-time.Second)) {
			continue
		}
		n := 1
		if e.Series != nil && e.Series.Count > 1 {
			n = int(e.Series.Count)
		}
		cw.EventsByKind[e.Regarding.Kind+" "+e.Reason] += int64(n)
		if claimPathReasons[e.Reason] {
			claimEvents += n
		}
	}
	cw.ClaimEventsPerClaim = float64(claimEvents) / float64(claims)
	return cw
}

// splitClaimWrites is claimWrites without the Events: the controller's writes to VMClaims and
// its PATCHes of VMClones are the claim path's, everything else (controller + agents) the
// refill's.
func splitClaimWrites(p Phase, claims int) *ClaimWrites {
	if claims == 0 || p.APIServerRequestsByResource == nil {
		return nil
	}
	all := func(string) bool { return true }
	ours := writesOf(p.APIServerRequestsByResource, all).Sub(writesOf(p.BenchRequestsByResource, all))
	agents := writesOf(p.AgentRequestsByResource, all)
	ctrlOnly := ours.Sub(agents)
	cw := &ClaimWrites{Claims: claims, Writes: RequestCounts{}, RefillWrites: RequestCounts{}, EventsByKind: RequestCounts{}}
	for k, v := range ours {
		verb, res := splitKey(k)
		switch {
		case res == resVMClaim && ctrlOnly[k] > 0:
			cw.Writes[k] = ctrlOnly[k]
		case res == resVMClone && verb == "PATCH" && ctrlOnly[k] > 0:
			cw.Writes[k] = ctrlOnly[k]
			if rest := v - ctrlOnly[k]; rest > 0 {
				cw.RefillWrites[k] = rest
			}
		case isEvent(res):
		default:
			cw.RefillWrites[k] = v
		}
	}
	cw.PerClaim = float64(cw.Writes.Total()) / float64(claims)
	return cw
}

// printClaims prints the claims part.
func printClaims(w io.Writer, r *Results) {
	c := r.Claims
	if c == nil {
		return
	}
	pr := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	q3 := func(q Quantiles) string {
		return fmt.Sprintf("%s / %s / %s / %s", ms(q.P50), ms(q.P90), ms(q.P99), ms(q.Max))
	}
	pr("### Claims: %d claims against a pool of %d warm members (warmState %s, maxMaking %d) on %d hosts\n\n", c.Claims, c.PoolSize, c.WarmState, c.MaxMaking, c.Hosts)
	pr("| measure | value |\n|---|---|\n")
	pr("| pool created → %d warm (readyReplicas) | %s |\n", c.PoolSize, sec(c.FillSeconds))
	pr("| create of all claims (%d parallel clients) | %s |\n", r.Options.Creators, ms(c.CreateSeconds))
	pr("| claims bound / Ready | %d / %d of %d |\n", c.Bound, c.Ready, c.Claims)
	pr("| claim → bound (create sent → watch shows status.cloneName) p50 / p90 / p99 / max | %s |\n", q3(c.ClaimToBound))
	pr("| controller's status.bindMilliseconds (its informer got the claim → bind) p50 / p90 / p99 / max | %s |\n", q3(c.BindMilliseconds))
	pr("| claim → Ready (a Running member: the write round trip; a Paused one: its resume too) p50 / p90 / p99 / max | %s |\n", q3(c.ClaimToReady))
	pr("| first claim sent → last bound | %s |\n", ms(c.LastBoundSeconds))
	pr("| warm hits / cold misses (claims' status.source) | %d / %d |\n", c.Warm, c.Cold)
	pr("| pool status warmHits / coldClaims | %d / %d |\n", c.PoolWarmHits, c.PoolColdClaims)
	pr("| first claim → pool back to %d warm (refill) | %s (lowest readyReplicas seen %d) |\n", c.PoolSize, sec(c.RefillSeconds), c.MinReady)
	if p := c.PacedRun; p != nil {
		pr("| %d claims one at a time (each Ready before the next): claim → bound p50 / p90 / p99 / max | %s |\n", p.N, q3(p.ClaimToBound))
		pr("| one at a time: controller's status.bindMilliseconds p50 / p90 / p99 / max | %s |\n", q3(p.BindMilliseconds))
		pr("| one at a time: claim → Ready p50 / p90 / p99 / max | %s |\n", q3(p.ClaimToReady))
	}
	if cr := c.ColdRun; cr != nil {
		pr("| %d cold claims (spec.templateRef) at once: claim → bound p50 / max | %s / %s |\n", cr.N, ms(cr.ClaimToBound.P50), ms(cr.ClaimToBound.Max))
		pr("| cold: claim → Ready p50 / p90 / max | %s / %s / %s |\n", ms(cr.ClaimToReady.P50), ms(cr.ClaimToReady.P90), ms(cr.ClaimToReady.Max))
		pr("| cold: claim (the clone's apply) → clone Running p50 / max | %s / %s |\n", ms(cr.ApplyToRunning.P50), ms(cr.ApplyToRunning.Max))
		if cr.ClaimToReady.P50 > 0 && c.ClaimToReady.P50 > 0 {
			pr("| warm vs cold, claim → Ready p50 | %s vs %s (%.0f× faster) |\n", ms(c.ClaimToReady.P50), ms(cr.ClaimToReady.P50), cr.ClaimToReady.P50/c.ClaimToReady.P50)
		}
	}
	pr("| delete of every claim and the pool → no clone left | %s |\n\n", sec(c.CleanupSeconds))

	cc := c.Controller
	pr("Where the bind time goes (controller metrics over first claim → all Ready, %s): %.0f vmclaim reconciles (%.1f per claim, %d workers), mean wait in the vmclaim workqueue %s, mean reconcile %s; the API server's own time per request (every client, mean): %s. Clones handed over: %d, to %d distinct claims.\n\n",
		sec(c.Bind.Seconds), cc.Reconciles, cc.Reconciles/float64(max(c.Claims, 1)), ctrlWorkers(r.Options), ms(cc.QueueWaitMeanSec), ms(cc.WorkMeanSec), verbMeans(cc), cc.Handed, cc.HandedClaims)
	pr("| process, window | CPU s | peak RSS | API requests |\n|---|---|---|---|\n")
	for _, ph := range []struct {
		name string
		p    Phase
	}{{"bind (first claim → all Ready)", c.Bind}, {"refill (→ pool full)", c.Refill}} {
		pr("| controller, %s | %.1f | %.0f MiB | %s |\n", ph.name, ph.p.Controller.CPUSeconds, ph.p.Controller.PeakRSSMiB, counts(ph.p.ControllerRequests))
		pr("| agents, %s | %.1f (+%.1f xl simulator) | %.0f MiB | %s |\n", ph.name, ph.p.Agents.CPUSeconds, ph.p.Agents.ChildCPUSeconds, ph.p.Agents.PeakRSSMiB, counts(ph.p.AgentRequests))
		pr("| kube-apiserver, %s | %.1f | %.0f MiB | %s |\n", ph.name, ph.p.APIServer.CPUSeconds, ph.p.APIServer.PeakRSSMiB, counts(ph.p.APIServerRequests))
		pr("| etcd, %s | %.1f | %.0f MiB | – |\n", ph.name, ph.p.Etcd.CPUSeconds, ph.p.Etcd.PeakRSSMiB)
	}
	pr("\n")
	if cw := c.Writes; cw != nil {
		n := float64(cw.Claims)
		pr("API writes of the claim path, first claim → pool refilled, per claim (controller; the bench's %d creates not counted):\n\n", cw.Claims)
		pr("| write | what | per claim |\n|---|---|---|\n")
		for _, k := range sortedKeys(cw.Writes) {
			pr("| %s | %s | %.2f |\n", k, claimWriteWhat(k), float64(cw.Writes[k])/n)
		}
		var evs []string
		for _, k := range sortedKeys(cw.EventsByKind) {
			_, reason, _ := strings.Cut(k, " ")
			if claimPathReasons[reason] {
				evs = append(evs, fmt.Sprintf("%s %.2f", k, float64(cw.EventsByKind[k])/n))
			}
		}
		pr("| **claim writes** | | %.2f |\n", cw.PerClaim)
		pr("| Events of the claim path | %s | %.2f |\n", strings.Join(evs, ", "), cw.ClaimEventsPerClaim)
		pr("| **with Events** | | %.2f |\n\n", cw.PerClaim+cw.ClaimEventsPerClaim)
		var rest []string
		for _, k := range sortedKeys(cw.RefillWrites) {
			rest = append(rest, fmt.Sprintf("%s %.2f", k, float64(cw.RefillWrites[k])/n))
		}
		var other []string
		for _, k := range sortedKeys(cw.EventsByKind) {
			if _, reason, _ := strings.Cut(k, " "); !claimPathReasons[reason] {
				other = append(other, fmt.Sprintf("%s %d", k, cw.EventsByKind[k]))
			}
		}
		pr("The refill's writes in the same window (controller + agents), per claim: %s. Its Events: %s.\n\n", strings.Join(rest, ", "), strings.Join(other, ", "))
	}
}

func claimWriteWhat(k string) string {
	verb, res := splitKey(k)
	switch {
	case res == resVMClaim && strings.HasSuffix(k, "/status"):
		return "the claim's status (Bound, Ready, the clone's node/domain/NICs)"
	case res == resVMClaim && verb == "APPLY":
		return "the claim's finalizer, server-side applied by the reconcile after the binding"
	case res == resVMClaim && verb == "PATCH":
		return "the claim's finalizer removed on delete"
	case res == resVMClone && verb == "PATCH":
		return "the handover of the member (resourceVersion-preconditioned; conflicting attempts included)"
	}
	return ""
}

func verbMeans(cc ClaimController) string {
	var parts []string
	for _, k := range sortedKeys(cc.APIMeanByKey) {
		parts = append(parts, fmt.Sprintf("%s %.0f × %.1f ms", k, cc.APICountByKey[k], cc.APIMeanByKey[k]*1000))
	}
	if len(parts) == 0 {
		return "not measured"
	}
	return strings.Join(parts, ", ")
}

func ctrlWorkers(o Options) int {
	if o.Workers > 0 {
		return o.Workers
	}
	return 16 // controllers.DefaultMaxConcurrentReconciles, what the manager binary runs with
}

// claimsMustShow is issue 17's list.
func claimsMustShow(r *Results) []shown {
	c := r.Claims
	if c == nil {
		return nil
	}
	all := c.Bound == c.Claims
	out := []shown{
		{fmt.Sprintf("claim → bound p50, %d claims vs %d warm members on %d hosts (create sent → watch shows the clone)", c.Claims, c.PoolSize, c.Hosts), "< 100 ms",
			ms(c.ClaimToBound.P50), verdict(all && c.ClaimToBound.P50 < targetBindP50)},
		{"claim → bound p99", "< 500 ms", fmt.Sprintf("%s (max %s)", ms(c.ClaimToBound.P99), ms(c.ClaimToBound.Max)), verdict(all && c.ClaimToBound.P99 < targetBindP99)},
		{"controller's status.bindMilliseconds p50 / p99", "< 100 ms / < 500 ms", fmt.Sprintf("%s / %s", ms(c.BindMilliseconds.P50), ms(c.BindMilliseconds.P99)),
			verdict(all && c.BindMilliseconds.P50 < targetBindP50 && c.BindMilliseconds.P99 < targetBindP99)},
		{"clones handed over / distinct claims they went to (one each)", fmt.Sprintf("%d / %d", c.Claims, c.Claims),
			fmt.Sprintf("%d / %d", c.Controller.Handed, c.Controller.HandedClaims), verdict(c.Controller.Handed == c.Claims && c.Controller.HandedClaims == c.Claims)},
		{"warm hits / cold misses with the pool full", fmt.Sprintf("%d / 0", c.Claims), fmt.Sprintf("%d / %d", c.Warm, c.Cold), verdict(c.Warm == c.Claims && c.Cold == 0)},
	}
	if pr := c.PacedRun; pr != nil {
		out = append(out,
			shown{fmt.Sprintf("claim → bound p50 / p99, %d claims one at a time (create sent → watch shows the clone)", pr.N), "< 100 ms / < 500 ms",
				fmt.Sprintf("%s / %s", ms(pr.ClaimToBound.P50), ms(pr.ClaimToBound.P99)), verdict(pr.ClaimToBound.N == pr.N && pr.ClaimToBound.P50 < targetBindP50 && pr.ClaimToBound.P99 < targetBindP99)},
			shown{"controller's status.bindMilliseconds p50 / p99, one at a time", "< 100 ms / < 500 ms",
				fmt.Sprintf("%s / %s", ms(pr.BindMilliseconds.P50), ms(pr.BindMilliseconds.P99)), verdict(pr.BindMilliseconds.N == pr.N && pr.BindMilliseconds.P50 < targetBindP50 && pr.BindMilliseconds.P99 < targetBindP99)})
	}
	if cr := c.ColdRun; cr != nil {
		out = append(out, shown{"side by side: claim → Ready, warm p50 vs cold p50", "reported", fmt.Sprintf("%s vs %s", ms(c.ClaimToReady.P50), ms(cr.ClaimToReady.P50)), "–"})
	}
	out = append(out, shown{fmt.Sprintf("refill: first claim → pool back to %d warm (maxMaking %d)", c.PoolSize, c.MaxMaking), "timed", sec(c.RefillSeconds), "–"})
	if cw := c.Writes; cw != nil {
		out = append(out, shown{"API writes per claim: claim path / with its Events", "reported", fmt.Sprintf("%.2f / %.2f", cw.PerClaim, cw.PerClaim+cw.ClaimEventsPerClaim), "–"})
	}
	return out
}
