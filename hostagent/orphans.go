package hostagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/lvm"
	"github.com/xenclone/xenclone/hostagent/xen"
	"github.com/xenclone/xenclone/hostagent/xen/xlcfg"
)

// orphansGauge counts host objects of ours that no VMClone on this host owns any more.
var orphansGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "xenclone_hostagent_orphans",
	Help: "Host objects (kind=volume|domain|seed) created by xenclone whose VMClone is gone or bound elsewhere; removed after the grace period.",
}, []string{"node", "kind"})

func init() { metrics.Registry.MustRegister(orphansGauge) }

// OrphanCollector finds what the agent created on this host and no VMClone bound here owns
// any more — LVs with our owner tag, domains whose xl.cfg we wrote (same name and UUID), seed
// images — reports them (event on the XenHost, metric) and removes them once they have stayed
// orphaned for Grace. Everything else on the host, tagged or not by someone else, is never
// looked at twice. Orphans appear when a VMClone's finalizer was force-removed, a clone was
// rebound after its host was lost, or an agent died between creating and recording.
type OrphanCollector struct {
	Client   client.Client
	NodeName string
	Host     Host
	Interval time.Duration
	Grace    time.Duration
	Recorder events.EventRecorder
	Clock    clock.WithTicker
	// rebound, if set, destroys at once the domains of clones bound to another host, before
	// the grace period (see rebound.go); their disks keep the grace.
	rebound *Fencer

	mu        sync.Mutex
	firstSeen map[string]time.Time
}

// NeedLeaderElection is false: every agent collects on its own host.
func (o *OrphanCollector) NeedLeaderElection() bool { return false }

// Start runs until ctx ends.
func (o *OrphanCollector) Start(ctx context.Context) error {
	tick := o.Clock.NewTicker(o.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C():
		}
		if err := o.Collect(ctx); err != nil {
			log.FromContext(ctx).Error(err, "collect orphans", "node", o.NodeName)
		}
	}
}

// orphan is one host object without an owner.
type orphan struct {
	kind, key, desc string
	remove          func(context.Context) error
}

// Collect makes one pass.
func (o *OrphanCollector) Collect(ctx context.Context) error {
	if o.rebound != nil {
		// A copy of a clone now running elsewhere gets no grace: it is not an orphan but a
		// duplicate. Its disk and config are left to the pass below.
		if err := o.rebound.StopReboundCopies(ctx); err != nil {
			log.FromContext(ctx).Error(err, "stop copies of clones rebound to other hosts", "node", o.NodeName)
		}
	}
	bound, err := boundClones(ctx, o.Client, o.NodeName)
	if err != nil {
		return fmt.Errorf("list clones: %w", err)
	}
	uids, uuids := map[string]bool{}, map[string]bool{}
	for _, c := range bound {
		uids[string(c.UID)] = true
		if c.Status.UUID != "" {
			uuids[c.Status.UUID] = true
		}
	}
	var templates vmv1alpha1.VMTemplateList
	if err := o.Client.List(ctx, &templates); err != nil {
		return fmt.Errorf("list templates: %w", err)
	}

	found, err := o.find(ctx, templates.Items, uids, uuids)
	if err != nil {
		return err
	}
	now := o.Clock.Now()
	counts := map[string]float64{"volume": 0, "domain": 0, "seed": 0}
	o.mu.Lock()
	seen := map[string]time.Time{}
	for _, f := range found {
		first, ok := o.firstSeen[f.key]
		if !ok {
			first = now
			o.event(corev1.EventTypeWarning, "OrphanFound", "%s has no VMClone on %s; it is removed in %s unless one claims it", f.desc, o.NodeName, o.Grace)
		}
		seen[f.key] = first
		counts[f.kind]++
	}
	o.firstSeen = seen
	o.mu.Unlock()
	for kind, n := range counts {
		orphansGauge.WithLabelValues(o.NodeName, kind).Set(n)
	}

	var errs []error
	// Domains first: a running domain holds its disk open.
	for _, kind := range []string{"domain", "volume", "seed"} {
		for _, f := range found {
			if f.kind != kind || now.Sub(seen[f.key]) < o.Grace {
				continue
			}
			if err := f.remove(ctx); err != nil {
				errs = append(errs, fmt.Errorf("remove orphan %s: %w", f.desc, err))
				continue
			}
			o.event(corev1.EventTypeNormal, "OrphanRemoved", "removed %s (no VMClone for %s)", f.desc, o.Grace)
			o.mu.Lock()
			delete(o.firstSeen, f.key)
			o.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

func (o *OrphanCollector) find(ctx context.Context, templates []vmv1alpha1.VMTemplate, uids, uuids map[string]bool) ([]orphan, error) {
	var out []orphan
	vgs := map[string]bool{}
	for _, t := range templates {
		vg := string(t.Spec.Origin.VolumeGroup)
		if vgs[vg] {
			continue
		}
		vgs[vg] = true
		rep, err := o.Host.Storage.Report(ctx, vg)
		if errors.Is(err, lvm.ErrVGNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("report %s: %w", vg, err)
		}
		for _, lv := range rep.LVs {
			uid := ownerUID(lv)
			if !lv.Managed() || uid == "" || uids[uid] {
				continue
			}
			lv := lv
			out = append(out, orphan{kind: "volume", key: "lv/" + lv.UUID, desc: "LV " + lv.Ref().String(),
				remove: func(ctx context.Context) error {
					return o.Host.Storage.Remove(ctx, lv.Ref(), lvm.Owner{UID: uid})
				}})
		}
	}

	// A domain is ours when the xl.cfg we wrote for it is still here with the same UUID.
	entries, err := os.ReadDir(o.Host.ConfigDir)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read %s: %w", o.Host.ConfigDir, err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".cfg")
		if !ok || e.IsDir() {
			continue
		}
		uuid, err := configUUID(filepath.Join(o.Host.ConfigDir, e.Name()))
		if err != nil || uuid == "" || uuids[uuid] {
			continue
		}
		out = append(out, orphan{kind: "domain", key: "dom/" + uuid, desc: "domain " + name,
			remove: func(ctx context.Context) error {
				if err := o.Host.Hypervisor.DestroyOwned(ctx, name, uuid); err != nil &&
					!errors.Is(err, xen.ErrNoSuchDomain) && !errors.Is(err, xen.ErrNotOwned) {
					return err
				}
				return xen.RemoveConfigFile(o.Host.ConfigDir, name)
			}})
	}

	seeds, err := o.Host.Guest.Seeds(ctx)
	if err != nil {
		return nil, fmt.Errorf("list seeds: %w", err)
	}
	for _, uid := range seeds {
		if uids[uid] {
			continue
		}
		out = append(out, orphan{kind: "seed", key: "seed/" + uid, desc: "cloud-init seed of " + uid,
			remove: func(ctx context.Context) error { return o.Host.Guest.RemoveSeed(ctx, uid) }})
	}
	return out, nil
}

// ownerUID reads the owner UID from an LV's tags.
func ownerUID(lv lvm.LV) string {
	for _, t := range lv.Tags {
		if uid, ok := strings.CutPrefix(t, lvm.OwnerUIDTagPrefix); ok {
			return uid
		}
	}
	return ""
}

// configUUID reads the uuid of an xl.cfg we rendered.
func configUUID(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	f, err := xlcfg.Parse(data)
	if err != nil {
		return "", err
	}
	uuid, _ := f.String("uuid")
	return uuid, nil
}

func (o *OrphanCollector) event(typ, reason, msgf string, args ...any) {
	if o.Recorder == nil {
		return
	}
	host := &vmv1alpha1.XenHost{}
	if err := o.Client.Get(context.Background(), types.NamespacedName{Name: o.NodeName}, host); err != nil {
		return
	}
	o.Recorder.Eventf(host, nil, typ, reason, "CollectOrphans", msgf, args...)
}
