package hostagent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/imageimport"
	"github.com/xenclone/xenclone/hostagent/lvm"
)

// ImportSuffix names an import's temporary LV: <origin>_xcimport. It gets the origin's name
// only once its data is verified.
const ImportSuffix = "_xcimport"

// TemplateImporter imports the sources of the templates that select this host (spec.source)
// into their origin LVs, one at a time on this host and only while the controller grants the
// host a slot (status.importGrants). It is the only writer of this host's import reports, which
// the host reporter publishes in the XenHost status (status.imports).
type TemplateImporter struct {
	Client   client.Client
	NodeName string
	// Storage reads the volume groups (the shared view); Images changes them.
	Storage Storage
	Images  ImageStore
	Fetch   *imageimport.Importer
	Clock   clock.Clock
	// Changed pokes the host reporter.
	Changed func()
	// Recorder, when set, records an event on the template for each finished attempt, so
	// `kubectl describe vmt` tells what each host did and when.
	Recorder events.EventRecorder
	// RetryBase and RetryMax bound the backoff between failed attempts (10 s doubling up to
	// 5 min by default).
	RetryBase, RetryMax time.Duration

	mu      sync.Mutex
	base    context.Context
	state   map[string]*importState
	running string // the template whose import runs, "" when none
	wake    chan event.GenericEvent
}

type importState struct {
	owner  lvm.TemplateOwner
	vg     string
	status vmv1alpha1.HostImportStatus
	cancel context.CancelFunc
	// failures counts consecutive failed attempts, for the backoff.
	failures int
}

// Statuses are this host's import reports, sorted by template, for the XenHost status.
func (t *TemplateImporter) Statuses() []vmv1alpha1.HostImportStatus {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]vmv1alpha1.HostImportStatus, 0, len(t.state))
	for _, s := range t.state {
		out = append(out, *s.status.DeepCopy())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Template < out[j].Template })
	return out
}

// Start keeps the manager's context, which the imports run under (they outlive a reconcile).
func (t *TemplateImporter) Start(ctx context.Context) error {
	t.mu.Lock()
	t.base = ctx
	t.mu.Unlock()
	if t.Fetch != nil {
		if err := t.Fetch.RemoveScratch(); err != nil {
			log.FromContext(ctx).Error(err, "remove scratch files of an earlier agent")
		}
	}
	// Imports of templates deleted while no agent ran are found by a sweep.
	tick := time.NewTicker(5 * time.Minute)
	defer tick.Stop()
	for {
		t.sweep(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// sweep removes imported LVs whose template no longer exists, from the volume groups of the
// templates and of this host's last report. It never touches an LV without ImportedTag, and
// RemoveImport refuses one that snapshots still use.
func (t *TemplateImporter) sweep(ctx context.Context) {
	if t.Images == nil {
		return
	}
	logger := log.FromContext(ctx).WithValues("node", t.NodeName)
	var list vmv1alpha1.VMTemplateList
	if err := t.Client.List(ctx, &list); err != nil {
		return
	}
	uids, vgs := map[string]bool{}, map[string]bool{}
	for i := range list.Items {
		uids[string(list.Items[i].UID)] = true
		vgs[string(list.Items[i].Spec.Origin.VolumeGroup)] = true
	}
	var h vmv1alpha1.XenHost
	if err := t.Client.Get(ctx, types.NamespacedName{Name: t.NodeName}, &h); err == nil {
		for _, vg := range h.Status.VolumeGroups {
			vgs[vg.Name] = true
		}
	}
	t.mu.Lock()
	for _, st := range t.state {
		uids[st.owner.UID] = true // an import that runs was started for a template that exists
	}
	t.mu.Unlock()
	for vg := range vgs {
		rep, err := t.Storage.Report(ctx, vg)
		if err != nil {
			continue
		}
		for _, lv := range rep.LVs {
			uid := lv.ImportTemplateUID()
			if uid == "" || uids[uid] {
				continue
			}
			owner := lvm.TemplateOwner{UID: uid, Name: "(deleted)"}
			if err := t.Images.RemoveImport(ctx, lv.Ref(), owner); err != nil {
				logger.V(1).Info("imported LV of a deleted template not removed yet", "lv", lv.Ref().String(), "error", err.Error())
				continue
			}
			logger.Info("removed the imported origin of a deleted template", "lv", lv.Ref().String(), "templateUID", uid)
		}
	}
}

// NeedLeaderElection is false: every agent imports for its own host.
func (t *TemplateImporter) NeedLeaderElection() bool { return false }

// SetupWithManager adds the importer and its template reconciler.
func (t *TemplateImporter) SetupWithManager(mgr ctrl.Manager) error {
	if t.Clock == nil {
		t.Clock = clock.RealClock{}
	}
	if t.RetryBase == 0 {
		t.RetryBase = 10 * time.Second
	}
	if t.RetryMax == 0 {
		t.RetryMax = 5 * time.Minute
	}
	t.state = map[string]*importState{}
	t.wake = make(chan event.GenericEvent, 64)
	if err := mgr.Add(t); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("hostagent-vmtemplate-import").
		For(&vmv1alpha1.VMTemplate{}).
		// A template's selector may start or stop matching when the host's labels change.
		// Its own status writes (every few seconds while it imports) change no label.
		Watches(&vmv1alpha1.XenHost{}, handler.EnqueueRequestsFromMapFunc(t.ownHostChanged),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Channel(t.wake, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: ptr.To(true)}).
		Complete(t)
}

func (t *TemplateImporter) ownHostChanged(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetName() != t.NodeName {
		return nil
	}
	var list vmv1alpha1.VMTemplateList
	if err := t.Client.List(ctx, &list); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if list.Items[i].Spec.Source != nil {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}})
		}
	}
	return out
}

// Reconcile decides, for one template, what this host does about its source: nothing, report
// it imported, wait for a slot, or start (or finish) an import.
func (t *TemplateImporter) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx).WithValues("vmtemplate", req.Name, "node", t.NodeName)
	tmpl := &vmv1alpha1.VMTemplate{}
	if err := t.Client.Get(ctx, req.NamespacedName, tmpl); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		return t.forget(ctx, logger, req.Name)
	}
	if irrelevant := tmpl.Spec.Source == nil || !t.selected(ctx, tmpl); irrelevant || !tmpl.DeletionTimestamp.IsZero() {
		// A template being deleted takes no new imports; its origin goes once it is gone.
		t.stop(req.Name, irrelevant)
		return ctrl.Result{}, nil
	}
	if t.Images == nil || t.Fetch == nil {
		t.set(tmpl, func(s *vmv1alpha1.HostImportStatus) {
			s.Phase, s.Reason, s.Message = vmv1alpha1.ImportFailed, vmv1alpha1.ReasonImportFailed, "this host's agent cannot import images (no image store configured)"
		})
		return ctrl.Result{}, nil
	}

	vg, origin := string(tmpl.Spec.Origin.VolumeGroup), string(tmpl.Spec.Origin.LogicalVolume)
	owner := lvm.TemplateOwner{UID: string(tmpl.UID), Name: tmpl.Name}
	rep, err := t.Storage.Report(ctx, vg)
	if err != nil {
		t.set(tmpl, func(s *vmv1alpha1.HostImportStatus) {
			s.Phase, s.Reason, s.Message = vmv1alpha1.ImportFailed, vmv1alpha1.ReasonImportStorageError, fmt.Sprintf("cannot read volume group %s: %v", vg, err)
		})
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	if lv, ok := rep.LV(origin); ok {
		if why := TemplateOriginRefusal(tmpl, lv); why != "" && lv.ImportTemplateUID() != string(tmpl.UID) {
			t.set(tmpl, func(s *vmv1alpha1.HostImportStatus) {
				s.Phase, s.Reason, s.Message = vmv1alpha1.ImportFailed, vmv1alpha1.ReasonImportNameTaken, why
			})
			// What unblocks it (a person renames the LV) is no event the agent watches.
			return ctrl.Result{RequeueAfter: 5 * time.Minute}, nil
		}
		t.set(tmpl, func(s *vmv1alpha1.HostImportStatus) {
			s.Phase, s.Message = vmv1alpha1.ImportSucceeded, fmt.Sprintf("origin %s imported and verified", lv.Ref())
			clearFailure(s)
			s.Checksum, s.SizeBytes, s.NextAttemptTime = lv.ImageChecksum(), int64(lv.Size), nil
			if s.CompletionTime == nil {
				s.CompletionTime = &metav1.Time{Time: lv.Created}
			}
		})
		return ctrl.Result{}, nil
	}

	t.mu.Lock()
	st := t.entry(tmpl)
	switch {
	case t.base == nil:
		t.mu.Unlock()
		return ctrl.Result{RequeueAfter: time.Second}, nil
	case st.cancel != nil:
		t.mu.Unlock()
		return ctrl.Result{}, nil // running
	case st.status.NextAttemptTime != nil && t.Clock.Now().Before(st.status.NextAttemptTime.Time):
		wait := st.status.NextAttemptTime.Sub(t.Clock.Now())
		t.mu.Unlock()
		return ctrl.Result{RequeueAfter: wait}, nil
	case !granted(tmpl, t.NodeName):
		t.waiting(st, "waiting for an import slot: the controller lets --max-parallel-imports hosts import at once")
		t.mu.Unlock()
		t.changed()
		return ctrl.Result{}, nil // the grant comes as a template status change
	case t.running != "":
		t.waiting(st, fmt.Sprintf("waiting for the import of template %s on this host to finish", t.running))
		t.mu.Unlock()
		t.changed()
		return ctrl.Result{}, nil // woken when it ends
	}
	runCtx, cancel := context.WithCancel(t.base)
	st.cancel, st.vg, st.owner = cancel, vg, owner
	t.running = tmpl.Name
	now := metav1.NewTime(t.Clock.Now())
	st.status = vmv1alpha1.HostImportStatus{Template: tmpl.Name, Phase: vmv1alpha1.ImportImporting, Attempts: st.status.Attempts + 1,
		StartTime: &now, Message: "downloading " + imageimport.Redact(tmpl.Spec.Source.URL)}
	t.mu.Unlock()
	t.changed()

	src := imageimport.SourceFromSpec(*tmpl.Spec.Source)
	go t.run(log.IntoContext(runCtx, logger), tmpl.DeepCopy(), src, lvm.Ref{VG: vg, Name: origin + ImportSuffix}, origin, owner)
	return ctrl.Result{}, nil
}

// run is one import attempt.
func (t *TemplateImporter) run(ctx context.Context, tmpl *vmv1alpha1.VMTemplate, src imageimport.Source, tmp lvm.Ref, origin string, owner lvm.TemplateOwner) {
	logger := log.FromContext(ctx)
	started := t.Clock.Now()
	logger.Info("importing template image", "source", imageimport.Redact(src.URL), "format", src.Format, "lv", tmp.String())
	fetch := *t.Fetch
	fetch.Progress = func(p imageimport.Progress) {
		t.update(tmpl.Name, func(s *vmv1alpha1.HostImportStatus) {
			s.BytesDone, s.BytesTotal, s.BytesPerSecond = p.Done, p.Total, p.BytesPerSecond
			if p.Phase != imageimport.PhaseDownloading {
				s.Message = p.Phase + " " + imageimport.Redact(src.URL)
			}
		})
	}
	vol := &importVolume{t: t, tmp: tmp, origin: origin, owner: owner,
		inactive: tmpl.Spec.Snapshot.Mode == vmv1alpha1.SnapshotThin && tmpl.Spec.Snapshot.ThinPool != ""}
	// An earlier attempt's volume (an agent killed mid-import) is ours to drop first.
	err := t.Images.RemoveImport(ctx, tmp, owner)
	var res imageimport.Result
	if err == nil {
		res, err = fetch.Import(ctx, src, vol)
	}

	t.mu.Lock()
	st := t.state[tmpl.Name]
	if t.running == tmpl.Name {
		t.running = ""
	}
	others := make([]string, 0, len(t.state))
	for name := range t.state {
		others = append(others, name)
	}
	if st != nil && st.owner.UID == owner.UID {
		st.cancel = nil
		now := metav1.NewTime(t.Clock.Now())
		switch {
		case err == nil:
			st.failures = 0
			st.status.Phase = vmv1alpha1.ImportSucceeded
			clearFailure(&st.status)
			// The same words as the report a later reconcile makes from the LV, so that one
			// writes nothing new.
			st.status.Message = fmt.Sprintf("origin %s/%s imported and verified", tmp.VG, origin)
			st.status.Checksum, st.status.SizeBytes, st.status.CompletionTime, st.status.BytesDone = res.Checksum, res.Size, &now, res.Downloaded
			st.status.BytesPerSecond = 0
			logger.Info("imported template image", "lv", tmp.VG+"/"+origin, "bytes", res.Downloaded, "took", now.Sub(started).String())
			t.event(tmpl, corev1.EventTypeNormal, vmv1alpha1.ReasonImported, "on %s: origin %s/%s imported and verified (%s, %d bytes) in %s",
				t.NodeName, tmp.VG, origin, res.Checksum, res.Downloaded, now.Sub(started).Round(time.Second))
		case errors.Is(err, context.Canceled):
			st.status.Phase, st.status.Message, st.status.BytesPerSecond = vmv1alpha1.ImportWaiting, "the import was stopped (the agent stops, the template is being deleted or no longer selects this host)", 0
		default:
			st.failures++
			next := metav1.NewTime(now.Add(t.backoff(st.failures)))
			st.status.Phase, st.status.Reason, st.status.NextAttemptTime, st.status.BytesPerSecond = vmv1alpha1.ImportFailed, imageimport.Reason(err), &next, 0
			st.status.Message = importMessage(err)
			logger.Info("template image import failed", "reason", st.status.Reason, "error", st.status.Message, "retryAt", next.Time)
			t.event(tmpl, corev1.EventTypeWarning, st.status.Reason, "on %s (attempt %d, next at %s): %s",
				t.NodeName, st.status.Attempts, next.UTC().Format(time.RFC3339), st.status.Message)
		}
	}
	t.mu.Unlock()
	t.changed()
	for _, name := range append(others, tmpl.Name) {
		select {
		case t.wake <- event.GenericEvent{Object: &vmv1alpha1.VMTemplate{ObjectMeta: metav1.ObjectMeta{Name: name}}}:
		default:
		}
	}
}

func (t *TemplateImporter) event(tmpl *vmv1alpha1.VMTemplate, typ, reason, msgf string, args ...any) {
	if t.Recorder != nil {
		t.Recorder.Eventf(tmpl, nil, typ, reason, "ImportTemplate", msgf, args...)
	}
}

// importMessage is an import error for people; imageimport keeps URL credentials out of it.
func importMessage(err error) string {
	var e *imageimport.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

func (t *TemplateImporter) backoff(failures int) time.Duration {
	d := t.RetryBase
	for i := 1; i < failures && d < t.RetryMax; i++ {
		d *= 2
	}
	return min(d, t.RetryMax)
}

// forget handles a deleted template: its import stops, and the origin and any temporary
// volume imported for it go as soon as no clone's snapshot uses them.
func (t *TemplateImporter) forget(ctx context.Context, logger logr.Logger, name string) (ctrl.Result, error) {
	t.mu.Lock()
	st := t.state[name]
	if st != nil && st.cancel != nil {
		st.cancel()
	}
	t.mu.Unlock()
	if st == nil || st.owner.UID == "" || t.Images == nil {
		t.drop(name)
		return ctrl.Result{}, nil
	}
	var errs []error
	rep, err := t.Storage.Report(ctx, st.vg)
	if err != nil {
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	for _, lv := range rep.LVs {
		if lv.ImportTemplateUID() != st.owner.UID {
			continue
		}
		if err := t.Images.RemoveImport(ctx, lv.Ref(), st.owner); err != nil {
			errs = append(errs, err)
			continue
		}
		logger.Info("removed the imported origin of a deleted template", "lv", lv.Ref().String())
	}
	if len(errs) > 0 {
		// A snapshot of it still exists (a clone not yet cleaned up): try again later.
		logger.Info("the imported origin of a deleted template is still in use", "error", errors.Join(errs...).Error())
		return ctrl.Result{RequeueAfter: 30 * time.Second}, nil
	}
	t.drop(name)
	return ctrl.Result{}, nil
}

func (t *TemplateImporter) drop(name string) {
	t.mu.Lock()
	_, had := t.state[name]
	delete(t.state, name)
	t.mu.Unlock()
	if had {
		t.changed()
	}
}

// stop cancels a running import of name; forget drops its report too.
func (t *TemplateImporter) stop(name string, forget bool) {
	t.mu.Lock()
	st := t.state[name]
	if st != nil && st.cancel != nil {
		st.cancel()
	}
	if forget {
		delete(t.state, name)
	}
	t.mu.Unlock()
	if st != nil {
		t.changed()
	}
}

// selected: the template's hostSelector matches this host's XenHost labels.
func (t *TemplateImporter) selected(ctx context.Context, tmpl *vmv1alpha1.VMTemplate) bool {
	if tmpl.Spec.HostSelector == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(tmpl.Spec.HostSelector)
	if err != nil {
		return false
	}
	var h vmv1alpha1.XenHost
	if err := t.Client.Get(ctx, types.NamespacedName{Name: t.NodeName}, &h); err != nil {
		return false
	}
	return sel.Matches(labels.Set(h.Labels))
}

func granted(tmpl *vmv1alpha1.VMTemplate, node string) bool {
	for _, n := range tmpl.Status.ImportGrants {
		if n == node {
			return true
		}
	}
	return false
}

// entry is the state of tmpl's import, made on first use; a template recreated under the same
// name starts afresh. Called with t.mu held.
func (t *TemplateImporter) entry(tmpl *vmv1alpha1.VMTemplate) *importState {
	st := t.state[tmpl.Name]
	if st == nil || st.owner.UID != string(tmpl.UID) {
		st = &importState{owner: lvm.TemplateOwner{UID: string(tmpl.UID), Name: tmpl.Name}, vg: string(tmpl.Spec.Origin.VolumeGroup),
			status: vmv1alpha1.HostImportStatus{Template: tmpl.Name, Phase: vmv1alpha1.ImportWaiting}}
		t.state[tmpl.Name] = st
	}
	return st
}

func (t *TemplateImporter) waiting(st *importState, msg string) {
	if st.status.Phase == vmv1alpha1.ImportFailed {
		return // the failure stays visible until the next attempt starts
	}
	st.status.Phase, st.status.Message = vmv1alpha1.ImportWaiting, msg
}

// set changes tmpl's report.
func (t *TemplateImporter) set(tmpl *vmv1alpha1.VMTemplate, fn func(*vmv1alpha1.HostImportStatus)) {
	t.mu.Lock()
	st := t.entry(tmpl)
	before := st.status.DeepCopy()
	fn(&st.status)
	same := equality.Semantic.DeepEqual(*before, st.status)
	t.mu.Unlock()
	if !same {
		t.changed()
	}
}

// update changes the report of a running import.
func (t *TemplateImporter) update(name string, fn func(*vmv1alpha1.HostImportStatus)) {
	t.mu.Lock()
	if st := t.state[name]; st != nil {
		fn(&st.status)
	}
	t.mu.Unlock()
	t.changed()
}

// clearFailure drops the last failure from a report once an attempt succeeded.
func clearFailure(s *vmv1alpha1.HostImportStatus) {
	var none vmv1alpha1.HostImportStatus
	s.Reason, s.NextAttemptTime = none.Reason, nil
}

func (t *TemplateImporter) changed() {
	if t.Changed != nil {
		t.Changed()
	}
}

// importVolume is imageimport's Volume over the host's ImageStore.
type importVolume struct {
	t      *TemplateImporter
	tmp    lvm.Ref
	origin string
	owner  lvm.TemplateOwner
	// inactive: the committed origin is left inactive, as a thin pool's external origin must
	// be before its first thin snapshot (a Thin template with spec.snapshot.thinPool).
	inactive bool
}

// Create checks the VG's free space first, so a full VG is reported with both numbers.
func (v *importVolume) Create(ctx context.Context, size int64) (imageimport.Target, error) {
	rep, err := v.t.Storage.Report(ctx, v.tmp.VG)
	if err != nil {
		return imageimport.Target{}, err
	}
	need := uint64(size)
	if ext := rep.VG.ExtentSize; ext > 0 {
		need = (need + ext - 1) / ext * ext
	}
	if rep.VG.Free < need {
		return imageimport.Target{}, &imageimport.Error{Reason: vmv1alpha1.ReasonImportOutOfSpace,
			Message: fmt.Sprintf("volume group %s has %d bytes free, the origin needs %d: free space or extend the VG", v.tmp.VG, rep.VG.Free, need)}
	}
	lv, err := v.t.Images.CreateImportVolume(ctx, v.tmp, uint64(size), v.owner)
	if errors.Is(err, lvm.ErrInsufficientSpace) {
		return imageimport.Target{}, &imageimport.Error{Reason: vmv1alpha1.ReasonImportOutOfSpace, Err: err,
			Message: fmt.Sprintf("volume group %s: no room for %d bytes: %v", v.tmp.VG, need, err)}
	}
	if errors.Is(err, lvm.ErrConflict) {
		return imageimport.Target{}, &imageimport.Error{Reason: vmv1alpha1.ReasonImportNameTaken, Err: err,
			Message: fmt.Sprintf("%s exists and is not an import of this template; it is left untouched: %v", v.tmp, err)}
	}
	if err != nil {
		return imageimport.Target{}, err
	}
	return v.t.Images.ImportTarget(lv), nil
}

// Discard removes the temporary volume; it runs on a fresh context so a cancelled import
// still leaves nothing behind.
func (v *importVolume) Discard(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	return v.t.Images.RemoveImport(dctx, v.tmp, v.owner)
}

// Commit names the verified volume the origin; an LV of that name that appeared meanwhile is
// someone else's and stays.
func (v *importVolume) Commit(ctx context.Context, checksum string) error {
	if lv, err := v.t.Storage.Report(ctx, v.tmp.VG); err == nil {
		if o, ok := lv.LV(v.origin); ok && !o.ImportedFor(v.owner.UID) {
			return &imageimport.Error{Reason: vmv1alpha1.ReasonImportNameTaken,
				Message: fmt.Sprintf("%s/%s appeared during the import and is not ours; it is left untouched: rename or remove it", v.tmp.VG, v.origin)}
		}
	}
	if err := v.t.Images.CommitImport(ctx, v.tmp, v.origin, v.owner, checksum); err != nil {
		return err
	}
	if v.inactive {
		return v.t.Images.DeactivateImport(ctx, lvm.Ref{VG: v.tmp.VG, Name: v.origin}, v.owner)
	}
	return nil
}
