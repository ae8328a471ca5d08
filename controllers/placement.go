package controllers

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Binding is a clone already placed on a host, as placement accounts for it.
type Binding struct {
	// Clone is namespace/name, for messages.
	Clone string
	Host  string
	// MemoryMiB and COWBytes are what the clone takes on the host once it runs.
	MemoryMiB int64
	COWBytes  int64
	// MemoryInFlight is true while the clone's memory is not yet visible in the host's
	// reported free memory (bound but not started): placement subtracts it itself.
	MemoryInFlight bool
	// StorageInFlight is true while the clone's COW area is not yet allocated in the VG.
	StorageInFlight bool
}

// PlacementInput is everything a placement decision depends on. The reconciler gathers it
// from the cache; Place itself reads nothing else, so it is table-tested.
type PlacementInput struct {
	Clone    *vmv1alpha1.VMClone
	Template *vmv1alpha1.VMTemplate
	Hosts    []vmv1alpha1.XenHost
	// Heartbeats are the hosts' heartbeats as the controller sees them, by host name (a host
	// missing here has no Lease).
	Heartbeats map[string]Heartbeat
	// Usage is what the clones already bound take per host (this clone excluded), as
	// accounted by the controller's ledger; Bindings are added on top of it.
	Usage map[string]HostUsage
	// Bindings are the clones already bound (or assumed bound) to hosts that Usage does not
	// count, this clone excluded.
	Bindings []Binding
	// Now is the controller's clock, for how long ago a stale host's last renewal was seen.
	Now time.Time
	// DefaultStrategy applies when the clone names none.
	DefaultStrategy vmv1alpha1.PlacementStrategy
}

// PlacementResult is the chosen host, or why there is none.
type PlacementResult struct {
	// Host is empty when no host fits.
	Host string
	// Message says where the clone went and why, or why no host fits, per class of host.
	Message string
}

// CloneRequest is what one clone needs from a host.
type CloneRequest struct {
	MemoryMiB   int64
	Mode        vmv1alpha1.SnapshotMode
	VolumeGroup string
	// COWBytes is the classic snapshot's COW area (0 for thin).
	COWBytes int64
	// ThinPool is the pool thin snapshots go to ("" = the origin's own pool).
	ThinPool           string
	DataPercentMax     int32
	MetadataPercentMax int32
	TemplateName       string
	NodeName           string
	CloneSelector      *metav1.LabelSelector
	TemplateSelector   *metav1.LabelSelector
	Strategy           vmv1alpha1.PlacementStrategy
}

// RequestFor derives what a clone needs from its spec and its template's defaults.
func RequestFor(clone *vmv1alpha1.VMClone, tmpl *vmv1alpha1.VMTemplate) CloneRequest {
	e := vmv1alpha1.Effective(clone, tmpl)
	req := CloneRequest{
		MemoryMiB:          e.MemoryMiB,
		Mode:               e.Mode,
		VolumeGroup:        e.VolumeGroup,
		COWBytes:           e.COWBytes,
		ThinPool:           e.ThinPool,
		DataPercentMax:     e.PoolDataPercent,
		MetadataPercentMax: e.PoolMetadataPercent,
		TemplateName:       tmpl.Name,
		TemplateSelector:   tmpl.Spec.HostSelector,
	}
	if p := clone.Spec.Placement; p != nil {
		req.NodeName = p.NodeName
		req.CloneSelector = p.HostSelector
		req.Strategy = p.Strategy
	}
	return req
}

// cloneMemoryMiB and cloneCOWBytes are what a bound clone takes on its host. They stay as
// functions so bindingOf (in the reconciler) needs no change to count what the agent allocates.
func cloneMemoryMiB(clone *vmv1alpha1.VMClone, tmpl *vmv1alpha1.VMTemplate) int64 {
	return vmv1alpha1.Effective(clone, tmpl).MemoryMiB
}

func cloneCOWBytes(clone *vmv1alpha1.VMClone, tmpl *vmv1alpha1.VMTemplate) int64 {
	return vmv1alpha1.Effective(clone, tmpl).COWBytes
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// rejection classes, in the order hosts are filtered; the message lists them in this order.
type rejection int

const (
	rejectSelector rejection = iota
	rejectNoLease
	rejectStale
	rejectCordoned
	rejectNoTemplate
	rejectTemplateRefused
	rejectMaxClones
	rejectMemory
	rejectNoVG
	rejectVGSpace
	rejectThinPool
	rejectionCount
)

// HostUsage is what the clones bound to one host take that its own report may not show yet.
type HostUsage struct {
	// Clones bound to the host.
	Clones int
	// InFlightMemMiB is the memory of bound clones whose domains do not run yet.
	InFlightMemMiB int64
	// InFlightCOWBytes is the COW space of bound clones whose volumes are not created yet.
	InFlightCOWBytes int64
}

// add adds (sign 1) or removes (sign -1) what binding b takes on its host.
func (u *HostUsage) add(b Binding, sign int64) {
	u.Clones += int(sign)
	if b.MemoryInFlight {
		u.InFlightMemMiB += sign * b.MemoryMiB
	}
	if b.StorageInFlight {
		u.InFlightCOWBytes += sign * b.COWBytes
	}
}

// Place chooses a host for a clone, or explains per class of host why none fits.
func Place(in PlacementInput) PlacementResult {
	req := RequestFor(in.Clone, in.Template)
	strategy := req.Strategy
	if strategy == "" {
		strategy = in.DefaultStrategy
	}
	if strategy == "" {
		strategy = vmv1alpha1.PlacementSpread
	}

	usage := make(map[string]*HostUsage, len(in.Usage))
	for h, u := range in.Usage {
		u := u
		usage[h] = &u
	}
	for _, b := range in.Bindings {
		u := usage[b.Host]
		if u == nil {
			u = &HostUsage{}
			usage[b.Host] = u
		}
		u.add(b, 1)
	}

	cloneSel, err := selectorOrEverything(req.CloneSelector)
	if err != nil {
		return PlacementResult{Message: fmt.Sprintf("spec.placement.hostSelector is invalid: %v", err)}
	}
	tmplSel, err := selectorOrEverything(req.TemplateSelector)
	if err != nil {
		return PlacementResult{Message: fmt.Sprintf("VMTemplate %s spec.hostSelector is invalid: %v", req.TemplateName, err)}
	}

	type candidate struct {
		name      string
		freeAfter int64
		clones    int
	}
	var (
		candidates []candidate
		counts     [rejectionCount]int
		// best[r] is the most favourable figure seen among hosts rejected for r, so the
		// message can say how far the closest host is from fitting.
		best       [rejectionCount]int64
		bestSet    [rejectionCount]bool
		considered int
		pinnedSeen bool
	)
	note := func(r rejection, v int64, higherIsBetter bool) {
		counts[r]++
		if !bestSet[r] || (higherIsBetter && v > best[r]) || (!higherIsBetter && v < best[r]) {
			best[r], bestSet[r] = v, true
		}
	}

	for i := range in.Hosts {
		h := &in.Hosts[i]
		if req.NodeName != "" && h.Name != req.NodeName {
			continue
		}
		pinnedSeen = true
		considered++
		hl := labels.Set(h.Labels)
		if !cloneSel.Matches(hl) || !tmplSel.Matches(hl) {
			counts[rejectSelector]++
			continue
		}
		hb, ok := in.Heartbeats[h.Name]
		if !ok || hb.LeaseMissing || hb.LastRenewalSeen.IsZero() {
			counts[rejectNoLease]++
			continue
		}
		if !hb.Live {
			note(rejectStale, int64(in.Now.Sub(hb.LastRenewalSeen)/time.Second), false)
			continue
		}
		if h.Spec.Unschedulable {
			counts[rejectCordoned]++
			continue
		}
		ht := hostTemplate(h, req.TemplateName)
		if ht == nil {
			counts[rejectNoTemplate]++
			continue
		}
		if ht.Refused != "" {
			// The agent refuses the LV as the origin (hostagent.OriginRefusal); a writable
			// one it may use is made read-only by the agent before the first snapshot.
			counts[rejectTemplateRefused]++
			continue
		}
		u := usage[h.Name]
		if u == nil {
			u = &HostUsage{}
		}
		if h.Spec.MaxClones > 0 && u.Clones >= int(h.Spec.MaxClones) {
			counts[rejectMaxClones]++
			continue
		}
		free := h.Status.Memory.FreeMiB - reservedMiB(h) - u.InFlightMemMiB
		if free < req.MemoryMiB {
			note(rejectMemory, free, true)
			continue
		}
		vg := hostVG(h, req.VolumeGroup)
		if vg == nil {
			counts[rejectNoVG]++
			continue
		}
		switch req.Mode {
		case vmv1alpha1.SnapshotThin:
			pool := thinPool(vg, req.ThinPool)
			if pool != nil {
				data, meta := parsePercent(pool.DataPercent), parsePercent(pool.MetadataPercent)
				if data >= float64(req.DataPercentMax) || meta >= float64(req.MetadataPercentMax) {
					note(rejectThinPool, int64(max(data, meta)), false)
					continue
				}
			}
		default:
			vgFree := vg.FreeBytes - u.InFlightCOWBytes
			if vgFree < req.COWBytes {
				note(rejectVGSpace, vgFree, true)
				continue
			}
		}
		candidates = append(candidates, candidate{name: h.Name, freeAfter: free - req.MemoryMiB, clones: u.Clones})
	}

	if len(candidates) == 0 {
		if req.NodeName != "" && !pinnedSeen {
			return PlacementResult{Message: fmt.Sprintf("spec.placement.nodeName pins host %s, which has no XenHost: start the hostagent there or change the pin", req.NodeName)}
		}
		if considered == 0 {
			return PlacementResult{Message: "no XenHost exists yet: deploy the hostagent DaemonSet on the Xen hosts"}
		}
		return PlacementResult{Message: explain(considered, counts, best, req)}
	}

	sort.Slice(candidates, func(i, j int) bool {
		a, b := candidates[i], candidates[j]
		if a.freeAfter != b.freeAfter {
			if strategy == vmv1alpha1.PlacementPack {
				return a.freeAfter < b.freeAfter
			}
			return a.freeAfter > b.freeAfter
		}
		if a.clones != b.clones {
			if strategy == vmv1alpha1.PlacementPack {
				return a.clones > b.clones
			}
			return a.clones < b.clones
		}
		return a.name < b.name
	})
	c := candidates[0]
	return PlacementResult{
		Host: c.name,
		Message: fmt.Sprintf("placed on %s (%s, %d of %d hosts fit, %d MiB free after this clone)",
			c.name, strategy, len(candidates), considered, c.freeAfter),
	}
}

// explain renders "0/3 hosts fit: 2 lack template debian12, 1 has 200 MiB free < 512 MiB".
func explain(considered int, counts [rejectionCount]int, best [rejectionCount]int64, req CloneRequest) string {
	var parts []string
	add := func(r rejection, one, many string, args ...any) {
		n := counts[r]
		if n == 0 {
			return
		}
		verb := many
		if n == 1 {
			verb = one
		}
		parts = append(parts, fmt.Sprintf("%d %s", n, fmt.Sprintf(verb, args...)))
	}
	add(rejectSelector, "does not match the hostSelector", "do not match the hostSelector")
	add(rejectNoLease, "has no heartbeat Lease (hostagent not running)", "have no heartbeat Lease (hostagent not running)")
	add(rejectStale, "has a stale heartbeat (last renewal seen %ds ago)", "have a stale heartbeat (freshest renewal seen %ds ago)", best[rejectStale])
	add(rejectCordoned, "is cordoned (spec.unschedulable)", "are cordoned (spec.unschedulable)")
	add(rejectNoTemplate, "lacks template %s", "lack template %s", req.TemplateName)
	add(rejectTemplateRefused, "refuses the LV of template %s as its origin (see the template's status.hosts)", "refuse the LV of template %s as its origin (see the template's status.hosts)", req.TemplateName)
	add(rejectMaxClones, "is at spec.maxClones", "are at spec.maxClones")
	add(rejectMemory, "has %d MiB free < %d MiB", "have at most %d MiB free < %d MiB", best[rejectMemory], req.MemoryMiB)
	add(rejectNoVG, "lacks volume group %s", "lack volume group %s", req.VolumeGroup)
	add(rejectVGSpace, "has %d MiB free in VG %s < %d MiB COW", "have at most %d MiB free in VG %s < %d MiB COW",
		best[rejectVGSpace]>>20, req.VolumeGroup, ceilDiv(req.COWBytes, 1<<20))
	add(rejectThinPool, "has its thin pool at %d%% (limits data %d%%, metadata %d%%)", "have their thin pool at %d%% or more (limits data %d%%, metadata %d%%)",
		best[rejectThinPool], req.DataPercentMax, req.MetadataPercentMax)
	return fmt.Sprintf("0/%d hosts fit: %s", considered, strings.Join(parts, ", "))
}

func selectorOrEverything(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

func hostTemplate(h *vmv1alpha1.XenHost, name string) *vmv1alpha1.HostTemplateStatus {
	for i := range h.Status.Templates {
		if h.Status.Templates[i].Name == name {
			return &h.Status.Templates[i]
		}
	}
	return nil
}

func hostVG(h *vmv1alpha1.XenHost, name string) *vmv1alpha1.VolumeGroupStatus {
	for i := range h.Status.VolumeGroups {
		if h.Status.VolumeGroups[i].Name == name {
			return &h.Status.VolumeGroups[i]
		}
	}
	return nil
}

// thinPool finds the pool thin snapshots go to: the named one, or the VG's only pool when the
// origin is itself thin (the agent reports no origin→pool link; with several pools placement
// cannot tell which one and leaves the check to the agent).
func thinPool(vg *vmv1alpha1.VolumeGroupStatus, name string) *vmv1alpha1.ThinPoolStatus {
	for i := range vg.ThinPools {
		if vg.ThinPools[i].Name == name {
			return &vg.ThinPools[i]
		}
	}
	if name == "" && len(vg.ThinPools) == 1 {
		return &vg.ThinPools[0]
	}
	return nil
}

func reservedMiB(h *vmv1alpha1.XenHost) int64 {
	if h.Spec.ReservedMemory == nil {
		return 0
	}
	return ceilDiv(h.Spec.ReservedMemory.Value(), 1<<20)
}

// parsePercent reads lvs' percent strings ("41.20"); an unreadable value counts as full so a
// broken report never attracts clones.
func parsePercent(s string) float64 {
	if s == "" {
		return 0
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 100
	}
	return f
}
