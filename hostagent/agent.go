package hostagent

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Options configure a node agent.
type Options struct {
	NodeName string
	Host     Host
	// LeaseNamespace holds the hosts' heartbeat Leases (the controller's --lease-namespace).
	LeaseNamespace string
	// RenewInterval is how often the Lease is renewed and capacity looked at (default
	// DefaultRenewInterval).
	RenewInterval time.Duration
	// FenceAfter: an agent that could not renew its Lease for this long destroys the domains
	// of its clones with onNodeLost: Reschedule (default vmv1alpha1.DefaultFenceAfter; at least
	// three renew intervals). See fence.go.
	FenceAfter time.Duration
	// ShutdownGrace bounds a graceful domain stop before destroy.
	ShutdownGrace time.Duration
	// CommandTimeout bounds each slow host operation (snapshot, guest preparation, xl create):
	// a hung xl or lvm must not hold a worker, or the clone's deletion, for good.
	CommandTimeout time.Duration
	// DomainPoll is how often one `xl list` looks for domains that stopped by themselves.
	DomainPoll time.Duration
	// UsageResync is how often a running clone's COW usage is looked at.
	UsageResync   time.Duration
	MaxConcurrent int
	// OrphanInterval is how often the host is searched for objects of ours no clone owns;
	// OrphanGrace how long one must stay orphaned before it is removed.
	OrphanInterval time.Duration
	OrphanGrace    time.Duration
	AgentVersion   string
	Clock          clock.WithTicker
	// HostReadMaxAge, if set, bounds how old a shared host read (lvs report, xl list, xl info)
	// may be when a reconcile is served from it (defaults: DefaultStorageMaxAge and the others;
	// see HostView).
	HostReadMaxAge time.Duration
	// CapacityReportInterval is the least time between two XenHost capacity reports (default
	// 3 s): the pokes of a burst of clones coalesce into one.
	CapacityReportInterval time.Duration

	// FenceJournal is where the agent keeps, on the host, its last renewal and the domains it
	// would fence, so an agent restarted while cut off still fences (default: fence-journal.json
	// beside Host.ConfigDir).
	FenceJournal string

	// fenceClock, if set, is the fence clock instead of Clock (tests step it alone).
	fenceClock clock.WithTicker
}

// Validate checks the options a person sets; its errors name the agent's flags.
func (o Options) Validate() error {
	renew := o.RenewInterval
	if renew == 0 {
		renew = DefaultRenewInterval
	}
	fenceAfter := o.FenceAfter
	if fenceAfter == 0 {
		fenceAfter = vmv1alpha1.DefaultFenceAfter
	}
	if fenceAfter < 3*renew {
		// Fewer renewals than that per fence-after and one slow or lost request fences the
		// host: its clones' domains would be destroyed for a hiccup.
		return fmt.Errorf("--fence-after %s is shorter than three heartbeat renewals (3 × %s): raise it to at least %s", fenceAfter, renew, 3*renew)
	}
	return nil
}

// CacheOptions restricts an agent's cache to the VMClones bound to its node, so a host's watch
// carries only its own clones however large the fleet (as KubeVirt's virt-handler does). It
// selects on status.nodeName, a selectable field of the CRD, so the controller's binding write
// is all it takes for a clone to reach its host.
func CacheOptions(nodeName string) cache.Options {
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&vmv1alpha1.VMClone{}: {Field: fields.OneTermEqualSelector(vmv1alpha1.NodeNameField, nodeName)},
		},
	}
}

// SetupWithManager adds the agent's reconciler and host reporter to mgr, whose cache must be
// built with CacheOptions(o.NodeName).
func SetupWithManager(mgr ctrl.Manager, o Options) error {
	if o.NodeName == "" {
		return fmt.Errorf("node agent: empty node name")
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.LeaseNamespace == "" {
		o.LeaseNamespace = "xenclone-system"
	}
	if err := o.Validate(); err != nil {
		return err
	}
	if o.RenewInterval == 0 {
		o.RenewInterval = DefaultRenewInterval
	}
	if o.FenceAfter == 0 {
		o.FenceAfter = vmv1alpha1.DefaultFenceAfter
	}
	if o.fenceClock == nil {
		o.fenceClock = o.Clock
	}
	if err := os.MkdirAll(o.Host.ConfigDir, 0o700); err != nil {
		return fmt.Errorf("create domain config folder: %w", err)
	}
	// One view of the host for everyone in this agent: a change made around it would not
	// invalidate what it holds.
	view := NewHostView(o.Host, HostViewOptions{StorageMaxAge: o.HostReadMaxAge, DomainMaxAge: o.HostReadMaxAge,
		InfoMaxAge: o.HostReadMaxAge, Clock: o.Clock})
	host := view.Host(o.Host)
	recorder := mgr.GetEventRecorder("xenclone-hostagent")
	// The fencer destroys through the shared view, so the reconciler's next look sees it.
	if o.FenceJournal == "" {
		o.FenceJournal = filepath.Join(filepath.Dir(o.Host.ConfigDir), "fence-journal.json")
	}
	fencer := NewFencer(&Fencer{
		Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), NodeName: o.NodeName, Hypervisor: view, ConfigDir: o.Host.ConfigDir,
		Journal: o.FenceJournal, FenceAfter: o.FenceAfter, Interval: o.RenewInterval, Clock: o.fenceClock, Recorder: recorder,
		wakeClones: make(chan event.GenericEvent, 256),
	})
	if err := mgr.Add(fencer); err != nil {
		return fmt.Errorf("add fencer: %w", err)
	}
	if err := mgr.Add(&journalFencer{f: fencer, cache: mgr.GetCache()}); err != nil {
		return fmt.Errorf("add journal fencer: %w", err)
	}
	reporter := &HostReporter{
		Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), NodeName: o.NodeName, Host: host, LeaseNamespace: o.LeaseNamespace,
		RenewInterval: o.RenewInterval, FenceAfter: o.FenceAfter, AgentVersion: o.AgentVersion, Clock: o.Clock,
		ReportInterval: o.CapacityReportInterval, poke: make(chan struct{}, 1), fence: fencer,
	}
	if err := mgr.Add(reporter); err != nil {
		return fmt.Errorf("add host reporter: %w", err)
	}
	importer := &TemplateImporter{Client: mgr.GetClient(), NodeName: o.NodeName, Storage: host.Storage, Images: host.Images,
		Fetch: o.Host.Importer, Clock: o.Clock, Changed: reporter.Poke, Recorder: recorder}
	reporter.imports = importer.Statuses
	if err := importer.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("add template importer: %w", err)
	}
	if o.OrphanInterval == 0 {
		o.OrphanInterval = time.Minute
	}
	if o.OrphanGrace == 0 {
		o.OrphanGrace = 10 * time.Minute
	}
	// The collector removes what it finds, so it reads the host itself (see HostView.Fresh).
	collector := &OrphanCollector{
		Client: mgr.GetClient(), NodeName: o.NodeName, Host: view.Fresh(o.Host), Interval: o.OrphanInterval,
		Grace: o.OrphanGrace, Recorder: recorder, Clock: o.Clock, rebound: fencer,
	}
	if err := mgr.Add(collector); err != nil {
		return fmt.Errorf("add orphan collector: %w", err)
	}
	if o.DomainPoll == 0 {
		o.DomainPoll = 5 * time.Second
	}
	watcher := &domainWatcher{client: mgr.GetClient(), nodeName: o.NodeName, hyp: view,
		interval: o.DomainPoll, events: make(chan event.GenericEvent, 256)}
	if err := mgr.Add(watcher); err != nil {
		return fmt.Errorf("add domain watcher: %w", err)
	}
	var guests *guestWatcher
	if o.Host.Guests != nil {
		guests = newGuestWatcher(o.Host.Guests, o.Clock)
		if err := mgr.Add(guests); err != nil {
			return fmt.Errorf("add guest watcher: %w", err)
		}
	}
	r := &CloneReconciler{
		Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), NodeName: o.NodeName, Host: host,
		LeaseNamespace: o.LeaseNamespace,
		Recorder:       recorder, Clock: o.Clock,
		ShutdownGrace: o.ShutdownGrace, UsageResync: o.UsageResync, MaxConcurrent: o.MaxConcurrent,
		CommandTimeout: o.CommandTimeout,
		changed:        reporter.Poke,
		domainEvents:   watcher.events,
		expectDomain:   watcher.Expect,
		fence:          fencer,
		guests:         guests,
	}
	return r.SetupWithManager(mgr)
}
