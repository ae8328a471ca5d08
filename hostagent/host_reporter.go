package hostagent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/lvm"
)

// HostReporter keeps this host's XenHost and heartbeat Lease current. Liveness is the Lease,
// renewed every RenewInterval like kubelet's node lease (cheap, no status churn), on its own
// goroutine so a slow host read never delays a heartbeat. The XenHost status is a coarse view
// of capacity: it is looked at every RenewInterval and after the clone reconciler pokes, at most
// once per ReportInterval however many clones change during a burst, and written only when
// something placement or an operator acts on changed (capacityMoved), or, for smaller drifts,
// once it has been inexact for ExactAfter.
type HostReporter struct {
	Client client.Client
	// Reader reads uncached (the Lease): the agent's role allows get, not list/watch.
	Reader         client.Reader
	NodeName       string
	Host           Host
	LeaseNamespace string
	RenewInterval  time.Duration
	// RenewTimeout bounds each renewal (default RenewInterval): a hung API request must not
	// stall the heartbeat, nor the fence clock, which counts from the last renewal that
	// succeeded.
	RenewTimeout time.Duration
	// LeaseDuration is advertised in the Lease; the controller's grace decides liveness.
	LeaseDuration time.Duration
	// FenceAfter is written on the Lease with every renewal (vmv1alpha1.FenceAfterAnnotation):
	// the controller moves this host's clones only once the agent must have fenced them.
	FenceAfter   time.Duration
	AgentVersion string
	Clock        clock.WithTicker
	// ReportInterval is the least time between two capacity reports (default 3 s): pokes
	// within it coalesce into one report at its end.
	ReportInterval time.Duration
	// ExactAfter is how long the XenHost may show figures that differ from the host by less
	// than capacityMoved's thresholds (default 1 minute).
	ExactAfter time.Duration

	poke chan struct{}
	// imports are this host's template import reports (TemplateImporter.Statuses); nil when
	// the agent imports nothing.
	imports func() []vmv1alpha1.HostImportStatus
	// fence learns of every renewal that succeeded (the fence clock); nil in tests of the
	// reporter alone.
	fence *Fencer
	// renew and report replace RenewLease and Report in tests of the loops.
	renew, report func(context.Context) error
	// inexactSince is when the XenHost status first differed from the host by less than the
	// thresholds, zero while it is exact (only one goroutine, the report loop, calls Report).
	inexactSince time.Time
	// protectedVGs are the volume groups that may hold an origin we made read-only: those of
	// the last report, seeded from the stored XenHost status after a restart (report loop only).
	protectedVGs map[string]bool
}

// Poke asks for a capacity report soon (after a clone's domain or disk changed).
func (h *HostReporter) Poke() {
	select {
	case h.poke <- struct{}{}:
	default:
	}
}

// NeedLeaderElection is false: every agent reports its own host.
func (h *HostReporter) NeedLeaderElection() bool { return false }

// Start runs until ctx ends.
func (h *HostReporter) Start(ctx context.Context) error {
	if h.RenewInterval == 0 {
		h.RenewInterval = DefaultRenewInterval
	}
	if h.LeaseDuration == 0 {
		h.LeaseDuration = 40 * time.Second
	}
	if h.ReportInterval == 0 {
		h.ReportInterval = 3 * time.Second
	}
	if h.ExactAfter == 0 {
		h.ExactAfter = time.Minute
	}
	if h.RenewTimeout == 0 {
		h.RenewTimeout = h.RenewInterval
	}
	if h.FenceAfter == 0 {
		h.FenceAfter = vmv1alpha1.DefaultFenceAfter
	}
	if h.Clock == nil {
		h.Clock = clock.RealClock{}
	}
	if h.poke == nil {
		h.poke = make(chan struct{}, 1)
	}
	log := log.FromContext(ctx).WithValues("node", h.NodeName)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.renewLoop(ctx, log)
	}()
	h.reportLoop(ctx, log)
	wg.Wait()
	return nil
}

// renewLoop renews the heartbeat every RenewInterval, whatever the host reads are doing: it
// touches the API server only, never the host, and each renewal has its own timeout.
func (h *HostReporter) renewLoop(ctx context.Context, log logr.Logger) {
	tick := h.Clock.NewTicker(h.RenewInterval)
	defer tick.Stop()
	for {
		h.renewOnce(ctx, log)
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
		}
	}
}

// renewOnce sends one renewal, bounded by RenewTimeout, and tells the fence clock when it
// succeeded, with the time it was sent.
func (h *HostReporter) renewOnce(ctx context.Context, log logr.Logger) {
	renew := h.RenewLease
	if h.renew != nil {
		renew = h.renew
	}
	var start time.Time
	if h.fence != nil {
		start = h.fence.renewalStarted()
	}
	rctx, cancel := context.WithTimeout(ctx, h.RenewTimeout)
	err := renew(rctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			renewFailures.WithLabelValues(h.NodeName).Inc()
			log.Error(err, "renew heartbeat lease", "timeout", h.RenewTimeout)
		}
		return
	}
	if h.fence != nil {
		h.fence.Renewed(start)
	}
}

// reportLoop reports capacity every RenewInterval and after pokes, never twice within
// ReportInterval: a burst of clones pokes once per clone, and the XenHost needs one write for
// all of them, not one each.
func (h *HostReporter) reportLoop(ctx context.Context, log logr.Logger) {
	tick := h.Clock.NewTicker(h.RenewInterval)
	defer tick.Stop()
	report := h.Report
	if h.report != nil {
		report = h.report
	}
	for {
		if err := report(ctx); err != nil {
			log.Error(err, "report host capacity")
		}
		last := h.Clock.Now()
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
		case <-h.poke:
		}
		if wait := h.ReportInterval - h.Clock.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-h.Clock.After(wait):
			}
		}
		// Pokes that came while waiting are covered by the report about to run.
		select {
		case <-h.poke:
		default:
		}
	}
}

// RenewLease creates or renews the host's Lease (named after the node).
func (h *HostReporter) RenewLease(ctx context.Context) error {
	now := metav1.NewMicroTime(h.Clock.Now())
	secs := int32(h.LeaseDuration / time.Second)
	holder := h.NodeName
	fenceAfter := h.FenceAfter
	if fenceAfter == 0 {
		fenceAfter = vmv1alpha1.DefaultFenceAfter
	}
	var lease coordinationv1.Lease
	// Read from the API server, not the cache: the agent may get its one Lease, not watch them all.
	err := h.Reader.Get(ctx, types.NamespacedName{Namespace: h.LeaseNamespace, Name: h.NodeName}, &lease)
	if apierrors.IsNotFound(err) {
		lease = coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: h.LeaseNamespace, Name: h.NodeName,
				Annotations: map[string]string{vmv1alpha1.FenceAfterAnnotation: fenceAfter.String()}},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now,
			},
		}
		if err := h.Client.Create(ctx, &lease); err != nil {
			return fmt.Errorf("create lease %s/%s: %w", h.LeaseNamespace, h.NodeName, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get lease: %w", err)
	}
	lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = &holder, &secs, &now
	// With every renewal, in the same write: the controller reads the fenceAfter of the agent
	// that renewed last (an upgrade or a changed flag takes effect at once).
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[vmv1alpha1.FenceAfterAnnotation] = fenceAfter.String()
	if err := h.Client.Update(ctx, &lease); err != nil {
		return fmt.Errorf("renew lease %s/%s: %w", h.LeaseNamespace, h.NodeName, err)
	}
	return nil
}

// Report reads the host (xl info, the templates' volume groups) and writes the XenHost status
// when it differs from what is stored.
func (h *HostReporter) Report(ctx context.Context) error {
	var host vmv1alpha1.XenHost
	err := h.Client.Get(ctx, types.NamespacedName{Name: h.NodeName}, &host)
	if apierrors.IsNotFound(err) {
		host = vmv1alpha1.XenHost{ObjectMeta: metav1.ObjectMeta{Name: h.NodeName}}
		if err := h.Client.Create(ctx, &host); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create XenHost %s: %w", h.NodeName, err)
		}
	} else if err != nil {
		return fmt.Errorf("get XenHost: %w", err)
	}
	var templates vmv1alpha1.VMTemplateList
	if err := h.Client.List(ctx, &templates); err != nil {
		return fmt.Errorf("list templates: %w", err)
	}
	bound, err := boundClones(ctx, h.Client, h.NodeName)
	if err != nil {
		return fmt.Errorf("list clones: %w", err)
	}
	phases := map[string]float64{}
	for _, c := range bound {
		phases[string(c.Status.Phase)]++
	}
	for _, p := range []vmv1alpha1.VMClonePhase{vmv1alpha1.PhasePending, vmv1alpha1.PhaseScheduled, vmv1alpha1.PhaseProvisioning,
		vmv1alpha1.PhaseStarting, vmv1alpha1.PhaseRunning, vmv1alpha1.PhaseStopping, vmv1alpha1.PhaseStopped,
		vmv1alpha1.PhaseResetting, vmv1alpha1.PhaseFailed, vmv1alpha1.PhaseUnknown, vmv1alpha1.PhaseTerminating} {
		clonesByPhase.WithLabelValues(h.NodeName, string(p)).Set(phases[string(p)])
	}
	h.seedProtectedVGs(host.Status)
	st := h.observe(ctx, templates.Items, len(bound), host.Generation)
	// Conditions keep their transition times when nothing changed.
	for i := range st.Conditions {
		if old := meta.FindStatusCondition(host.Status.Conditions, st.Conditions[i].Type); old != nil &&
			old.Status == st.Conditions[i].Status {
			st.Conditions[i].LastTransitionTime = old.LastTransitionTime
		}
	}
	if equality.Semantic.DeepEqual(host.Status, st) {
		h.inexactSince = time.Time{}
		return nil
	}
	if !capacityMoved(host.Status, st) {
		// A drift below the thresholds: placement counts its own in-flight bindings, so the
		// XenHost need not follow every clone. It is made exact once it has been off for
		// ExactAfter.
		if h.inexactSince.IsZero() {
			h.inexactSince = h.Clock.Now()
		}
		if h.Clock.Since(h.inexactSince) < h.ExactAfter {
			return nil
		}
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&st)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": vmv1alpha1.GroupVersion.String(), "kind": "XenHost",
		"metadata": map[string]any{"name": h.NodeName}, "status": obj,
	}}
	if err := h.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply XenHost %s status: %w", h.NodeName, err)
	}
	h.inexactSince = time.Time{}
	return nil
}

// seedProtectedVGs, at the first report after a start, takes the volume groups the stored
// status lists as possibly holding an origin we protected: its template may have been deleted
// while the agent was down, and no template names that volume group any more.
func (h *HostReporter) seedProtectedVGs(st vmv1alpha1.XenHostStatus) {
	if h.protectedVGs != nil {
		return
	}
	h.protectedVGs = map[string]bool{}
	for _, vg := range st.VolumeGroups {
		h.protectedVGs[vg.Name] = true
	}
}

// releaseOrigins makes writable again the origins this agent made read-only
// (lvm.MadeReadOnlyTag) that no VMTemplate names any more and that no snapshot still depends
// on. Volume groups no template names any more are read while they hold such an origin
// (remembered from earlier reports), so the last template's deletion is seen too.
func (h *HostReporter) releaseOrigins(ctx context.Context, templates []vmv1alpha1.VMTemplate, reports map[string]lvm.Report) error {
	if h.protectedVGs == nil {
		h.protectedVGs = map[string]bool{}
	}
	named := map[lvm.Ref]bool{}
	for _, t := range templates {
		named[lvm.Ref{VG: string(t.Spec.Origin.VolumeGroup), Name: string(t.Spec.Origin.LogicalVolume)}] = true
	}
	for vg := range h.protectedVGs {
		if _, ok := reports[vg]; ok {
			continue
		}
		rep, err := h.Host.Storage.Report(ctx, vg)
		if err != nil {
			if errorsIsVGNotFound(err) {
				delete(h.protectedVGs, vg)
				continue
			}
			return fmt.Errorf("volume group %s: %w", vg, err)
		}
		reports[vg] = rep
	}
	var errs []error
	for vg, rep := range reports {
		held := false
		for _, lv := range rep.LVs {
			if !lv.HasTag(lvm.MadeReadOnlyTag) {
				continue
			}
			if named[lv.Ref()] || originInUse(rep, lv.Name) {
				held = true
				continue
			}
			if err := h.Host.Storage.RestoreOriginWritable(ctx, lv.Ref()); err != nil && !errors.Is(err, lvm.ErrLVNotFound) {
				held = true
				errs = append(errs, fmt.Errorf("cannot make former template origin %s writable again: %w", lv.Ref(), err))
				continue
			}
			log.FromContext(ctx).Info("former template origin writable again", "lv", lv.Ref().String())
		}
		if held {
			h.protectedVGs[vg] = true
		} else {
			delete(h.protectedVGs, vg)
		}
	}
	return errors.Join(errs...)
}

// originInUse: some LV of the report (a classic or thin snapshot) still has name as origin.
func originInUse(rep lvm.Report, name string) bool {
	for _, lv := range rep.LVs {
		if lv.Origin == name {
			return true
		}
	}
	return false
}

// observe builds the XenHost status from the host itself.
func (h *HostReporter) observe(ctx context.Context, templates []vmv1alpha1.VMTemplate, clones int, gen int64) vmv1alpha1.XenHostStatus {
	now := metav1.NewTime(h.Clock.Now())
	st := vmv1alpha1.XenHostStatus{ObservedGeneration: gen, AgentVersion: h.AgentVersion, Clones: int32(clones)}
	ready := metav1.Condition{Type: vmv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: vmv1alpha1.ReasonHostToolsAnswer,
		Message: "xl and lvm answer", ObservedGeneration: gen, LastTransitionTime: now}
	storage := metav1.Condition{Type: vmv1alpha1.ConditionStorageHealthy, Status: metav1.ConditionTrue, Reason: vmv1alpha1.ReasonStorageOK,
		Message: "volume groups readable", ObservedGeneration: gen, LastTransitionTime: now}

	if info, err := h.Host.Hypervisor.Info(ctx); err != nil {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, vmv1alpha1.ReasonXenUnavailable, fmt.Sprintf("xl info failed: %v", err)
	} else {
		st.XenVersion, st.CPUs = info.XenVersion, int32(info.NrCPUs)
		st.Memory = vmv1alpha1.HostMemory{TotalMiB: info.TotalMemoryMiB, FreeMiB: info.FreeMemoryMiB}
	}

	reports := map[string]lvm.Report{}
	for _, t := range templates {
		vg := string(t.Spec.Origin.VolumeGroup)
		if _, done := reports[vg]; done {
			continue
		}
		rep, err := h.Host.Storage.Report(ctx, vg)
		if err != nil {
			if !errorsIsVGNotFound(err) {
				storage.Status, storage.Reason = metav1.ConditionFalse, vmv1alpha1.ReasonVolumeGroupUnreadable
				storage.Message = fmt.Sprintf("volume group %s: %v", vg, err)
			}
			continue
		}
		reports[vg] = rep
		vgs := vmv1alpha1.VolumeGroupStatus{
			Name: vg, SizeBytes: int64(rep.VG.Size), FreeBytes: int64(rep.VG.Free),
			MetadataFreeBytes: int64(rep.VG.MetadataFree), LVCount: int32(rep.VG.LVCount),
		}
		for _, lv := range rep.LVs {
			if lv.Attr.IsThinPool() {
				tp := vmv1alpha1.ThinPoolStatus{Name: lv.Name, SizeBytes: int64(lv.Size)}
				if lv.DataPercent.Valid {
					tp.DataPercent = fmt.Sprintf("%.2f", lv.DataPercent.Value)
				}
				if lv.MetadataPercent.Valid {
					tp.MetadataPercent = fmt.Sprintf("%.2f", lv.MetadataPercent.Value)
				}
				vgs.ThinPools = append(vgs.ThinPools, tp)
			}
		}
		st.VolumeGroups = append(st.VolumeGroups, vgs)
	}
	for _, t := range templates {
		rep, ok := reports[string(t.Spec.Origin.VolumeGroup)]
		if !ok {
			continue
		}
		if lv, ok := rep.LV(string(t.Spec.Origin.LogicalVolume)); ok {
			// Only reported here: the origin is made read-only by the clone reconciler right
			// before the first snapshot, so a template naming the wrong LV changes nothing.
			st.Templates = append(st.Templates, vmv1alpha1.HostTemplateStatus{
				Name: t.Name, LVUUID: lv.UUID, SizeBytes: int64(lv.Size),
				ReadOnly: lv.Attr.ReadOnly(), Thin: lv.Attr.IsThin(), Refused: TemplateOriginRefusal(&t, lv),
			})
		}
	}
	if err := h.releaseOrigins(ctx, templates, reports); err != nil {
		storage.Status, storage.Reason = metav1.ConditionFalse, vmv1alpha1.ReasonOriginNotProtected
		storage.Message = err.Error()
	}
	sort.Slice(st.VolumeGroups, func(i, j int) bool { return st.VolumeGroups[i].Name < st.VolumeGroups[j].Name })
	sort.Slice(st.Templates, func(i, j int) bool { return st.Templates[i].Name < st.Templates[j].Name })
	if h.imports != nil {
		st.Imports = h.imports()
	}
	st.Conditions = []metav1.Condition{ready, storage}
	return st
}
