package main

// The controller with many VMClones present. The clones use a template whose hostSelector
// matches no host, so every one stays Pending (Scheduled=False, Unschedulable) and the numbers
// are the controller holding and reconciling 10,000 objects — not 10,000 running domains, which
// 20 simulated hosts could not hold. The agents keep running (their caches see none of them).

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// ScaleResult is the controller with Scale VMClones present.
type ScaleResult struct {
	Clones int `json:"clones"`
	// CreateSeconds is how long the creators took; ReconciledSeconds until the controller had
	// written a Scheduled condition on every clone.
	CreateSeconds     float64 `json:"createSeconds"`
	ReconciledSeconds float64 `json:"reconciledSeconds"`
	Reconciled        int     `json:"reconciled"`
	// Controller process: RSS after settling, peak RSS during the phase, Go heap in use.
	ControllerRSSMiB     float64 `json:"controllerRssMiB"`
	ControllerPeakRSSMiB float64 `json:"controllerPeakRssMiB"`
	ControllerHeapMiB    float64 `json:"controllerHeapInuseMiB"`
	ControllerCPUSeconds float64 `json:"controllerCpuSeconds"`
	// List is a full LIST of every VMClone from the API server (no pagination), ListPaged the
	// same in pages of 500; ListBytes the size of one full list.
	List      Quantiles `json:"list"`
	ListPaged Quantiles `json:"listPaged"`
	ListBytes int       `json:"listBytes"`
	// InformerSync is a new client's list+watch until its cache has synced.
	InformerSync Quantiles `json:"informerSync"`
	// WatchDelivery is from a label patch's response to its watch event at an informer.
	WatchDelivery Quantiles `json:"watchDelivery"`
	// DeleteSeconds: deleting every clone (one DELETE each) until all are gone (no
	// finalizers: never bound).
	DeleteSeconds float64 `json:"deleteSeconds"`
	Phase         Phase   `json:"phase"`
}

const unplaceable = "bench-unplaceable"

func runScale(ctx context.Context, o Options, cl *cluster) (*ScaleResult, error) {
	sc := &ScaleResult{Clones: o.Scale}
	tpl, err := loadTemplate()
	if err != nil {
		return sc, err
	}
	tpl.Name = unplaceable
	tpl.Spec.HostSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"bench.xenclone.dev/no-such-host": "true"}}
	if err := cl.c.Create(ctx, tpl); err != nil {
		return sc, fmt.Errorf("create unplaceable template: %w", err)
	}

	var reconciled atomic.Int64
	seen := sync.Map{}
	pings := sync.Map{} // "name/value" → chan time.Time
	inf, err := cl.benchCache.GetInformer(ctx, &vmv1alpha1.VMClone{})
	if err != nil {
		return sc, err
	}
	see := func(obj any) {
		c, ok := obj.(*vmv1alpha1.VMClone)
		if !ok || c.Spec.TemplateRef.Name != unplaceable {
			return
		}
		if meta.FindStatusCondition(c.Status.Conditions, vmv1alpha1.ConditionScheduled) != nil {
			if _, loaded := seen.LoadOrStore(c.Name, true); !loaded {
				reconciled.Add(1)
				cl.cloneEvents.poke()
			}
		}
		if v := c.Labels["bench.xenclone.dev/ping"]; v != "" {
			if ch, ok := pings.Load(c.Name + "/" + v); ok {
				select {
				case ch.(chan time.Time) <- time.Now():
				default:
				}
			}
		}
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: see, UpdateFunc: func(_, o any) { see(o) }})
	if err != nil {
		return sc, err
	}
	defer func() { _ = inf.RemoveEventHandler(reg) }()

	logf("scale: creating %d VMClones (unplaceable: they stay Pending)", o.Scale)
	cl.resetPeaks()
	before := cl.mark(ctx)
	start := time.Now()
	name := func(i int) string { return fmt.Sprintf("pending-%05d", i) }
	if err := parallel(ctx, o.Scale, o.Creators, func(i int) error {
		return cl.c.Create(ctx, &vmv1alpha1.VMClone{
			ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: name(i)},
			Spec:       vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: unplaceable}},
		})
	}); err != nil {
		return sc, fmt.Errorf("create: %w", err)
	}
	sc.CreateSeconds = time.Since(start).Seconds()
	logf("scale: created in %.1fs; waiting for the controller to reconcile each", sc.CreateSeconds)
	cl.profile(ctx, "scale", "profile?seconds=30")
	werr := cl.cloneEvents.waitFor(ctx, int64(o.Scale), reconciled.Load, o.Timeout, cl.alive)
	sc.Reconciled = int(reconciled.Load())
	sc.ReconciledSeconds = time.Since(start).Seconds()
	if werr != nil {
		return sc, fmt.Errorf("waiting for the controller: %w", werr)
	}
	// Let the work queue drain and the GC run before reading memory.
	time.Sleep(15 * time.Second)
	cl.profile(ctx, "scale-heap", "heap")
	after := cl.mark(ctx)
	sc.Phase = phaseBetween(before, after)
	sc.ControllerRSSMiB, sc.ControllerPeakRSSMiB = after.ctrl.RSSMiB, after.ctrl.PeakRSSMiB
	sc.ControllerCPUSeconds = sc.Phase.Controller.CPUSeconds
	if text, err := promText(ctx, "http://"+cl.metricsAddr+"/metrics"); err == nil {
		sc.ControllerHeapMiB = promSum(text, "go_memstats_heap_inuse_bytes", "")[""] / (1 << 20)
	}
	logf("scale: controller RSS %.0f MiB (peak %.0f MiB, heap %.0f MiB)", sc.ControllerRSSMiB, sc.ControllerPeakRSSMiB, sc.ControllerHeapMiB)

	// LIST from the API server.
	path := "/apis/vm.xenclone.dev/v1alpha1/namespaces/" + benchNS + "/vmclones"
	var full, paged []float64
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		raw, err := cl.apiserver.RESTClient().Get().AbsPath(path).DoRaw(ctx)
		if err != nil {
			return sc, fmt.Errorf("list: %w", err)
		}
		full = append(full, time.Since(t0).Seconds())
		sc.ListBytes = len(raw)
	}
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		cont := ""
		for {
			var list vmv1alpha1.VMCloneList
			if err := cl.c.List(ctx, &list, client.InNamespace(benchNS), client.Limit(500), client.Continue(cont)); err != nil {
				return sc, fmt.Errorf("paged list: %w", err)
			}
			if cont = list.Continue; cont == "" {
				break
			}
		}
		paged = append(paged, time.Since(t0).Seconds())
	}
	sc.List, sc.ListPaged = quantiles(full), quantiles(paged)

	// A new watcher: list + watch until synced.
	var syncs []float64
	for i := 0; i < 3; i++ {
		c, err := cache.New(cl.cfg, cache.Options{Scheme: newScheme()})
		if err != nil {
			return sc, err
		}
		cctx, cancel := context.WithCancel(ctx)
		t0 := time.Now()
		if _, err := c.GetInformer(cctx, &vmv1alpha1.VMClone{}); err != nil {
			cancel()
			return sc, err
		}
		go func() { _ = c.Start(cctx) }()
		ok := c.WaitForCacheSync(cctx)
		syncs = append(syncs, time.Since(t0).Seconds())
		cancel()
		if !ok {
			return sc, fmt.Errorf("informer did not sync")
		}
	}
	sc.InformerSync = quantiles(syncs)

	// Watch delivery: patch a label, wait for the event.
	var deliver []float64
	for i := 0; i < 200; i++ {
		n := name(i * (o.Scale / 200))
		ch := make(chan time.Time, 1)
		v := fmt.Sprint(i + 1)
		pings.Store(n+"/"+v, ch)
		obj := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: n}}
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"bench.xenclone.dev/ping":"`+v+`"}}}`))
		if err := cl.c.Patch(ctx, obj, patch); err != nil {
			return sc, fmt.Errorf("patch: %w", err)
		}
		sent := time.Now()
		select {
		case at := <-ch:
			d := at.Sub(sent).Seconds()
			if d < 0 {
				d = 0 // the event beat the patch response
			}
			deliver = append(deliver, d)
		case <-time.After(10 * time.Second):
			return sc, fmt.Errorf("no watch event for %s in 10s", n)
		}
		pings.Delete(n + "/" + v)
	}
	sc.WatchDelivery = quantiles(deliver)
	logf("scale: list %.2fs (paged %.2fs), informer sync %.2fs, watch delivery p50 %.1fms p99 %.1fms",
		sc.List.P50, sc.ListPaged.P50, sc.InformerSync.P50, sc.WatchDelivery.P50*1000, sc.WatchDelivery.P99*1000)

	// Clean up as `kubectl delete vmclones --all` does (one DELETE per object; a single
	// DeleteAllOf of 10,000 can outlast the API server's 60 s request timeout on a busy
	// machine), then wait for every delete event.
	goneBefore := cl.cloneEvents.deleteCount.Load()
	start = time.Now()
	if err := parallel(ctx, o.Scale, o.Creators, func(i int) error {
		return client.IgnoreNotFound(cl.c.Delete(ctx, &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: name(i)}}))
	}); err != nil {
		return sc, fmt.Errorf("delete: %w", err)
	}
	werr = cl.cloneEvents.waitFor(ctx, goneBefore+int64(o.Scale), cl.cloneEvents.deleteCount.Load, o.Timeout, cl.alive)
	sc.DeleteSeconds = time.Since(start).Seconds()
	return sc, werr
}
