package hostagent

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// maxStatusAddresses is the CRD's bound on a NIC's addresses.
const maxStatusAddresses = 20

// GuestUpTimeout is how long after its start a guest may take to pass its readiness probe
// before GuestReady says it is not responding (it stays False until the probe passes).
const GuestUpTimeout = 5 * time.Minute

// GuestStatusFrom is a clone's status.guest from what the watcher observed: per NIC, the guest
// agent's addresses if it reports any, else the neighbour table's. nil when nothing is known.
func GuestStatusFrom(o guestObservation, nics []vmv1alpha1.InterfaceStatus) *vmv1alpha1.GuestStatus {
	g := &vmv1alpha1.GuestStatus{AgentVersion: o.Report.AgentVersion, OS: o.Report.OS, Kernel: o.Report.Kernel}
	var first4, first6 string
	for _, nic := range nics {
		var addrs []netip.Addr
		src := vmv1alpha1.AddressFromGuestAgent
		if a, ok := o.Report.NICs[int(nic.Index)]; ok {
			addrs = append(append(addrs, a.IPv4...), a.IPv6...)
		} else if n := o.Neighbors[int(nic.Index)]; len(n) > 0 {
			src = vmv1alpha1.AddressFromNeighborTable
			addrs = sortFamilies(n)
		}
		if len(addrs) == 0 {
			continue
		}
		gi := vmv1alpha1.GuestInterfaceStatus{Index: nic.Index, MAC: nic.MAC, Source: src}
		for _, a := range addrs {
			if len(gi.IPAddresses) == maxStatusAddresses {
				break
			}
			gi.IPAddresses = append(gi.IPAddresses, a.String())
			switch {
			case a.Is4() && first4 == "":
				first4 = a.String()
			case a.Is6() && first6 == "" && !a.IsLinkLocalUnicast():
				first6 = a.String()
			}
		}
		g.Interfaces = append(g.Interfaces, gi)
	}
	g.IP = first4
	if g.IP == "" {
		g.IP = first6
	}
	if g.IP == "" && len(g.Interfaces) == 0 && g.AgentVersion == "" && g.OS == "" && g.Kernel == "" {
		return nil
	}
	return g
}

// sortFamilies puts IPv4 addresses first, keeping the order within each family.
func sortFamilies(in []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(in))
	for _, v6 := range []bool{false, true} {
		for _, a := range in {
			if a.Is6() == v6 {
				out = append(out, a)
			}
		}
	}
	return out
}

// readinessOf is the template's probe (DomainRunning when unset).
func readinessOf(t *vmv1alpha1.VMTemplate) (vmv1alpha1.GuestProbe, int32) {
	if t == nil || t.Spec.Domain.Readiness == nil || t.Spec.Domain.Readiness.Probe == "" {
		return vmv1alpha1.GuestProbeDomainRunning, 0
	}
	return t.Spec.Domain.Readiness.Probe, t.Spec.Domain.Readiness.Port
}

// guestReadyDecision is a GuestReady condition and when to look again without an event.
type guestReadyDecision struct {
	Status  metav1.ConditionStatus
	Reason  string
	Message string
	Recheck time.Duration
}

// DecideGuestReady says whether a running guest is up as its probe defines. Once up, a guest
// stays up for the life of its domain (wasUp: the last report said so for the same domid): the
// probe is a startup check, and a paused standby cannot answer one.
func DecideGuestReady(probe vmv1alpha1.GuestProbe, port int32, o guestObservation, g *vmv1alpha1.GuestStatus, started, now time.Time, wasUp *metav1.Condition) guestReadyDecision {
	if wasUp != nil && wasUp.Status == metav1.ConditionTrue {
		return guestReadyDecision{Status: metav1.ConditionTrue, Reason: wasUp.Reason, Message: wasUp.Message}
	}
	up := func(msg string) guestReadyDecision {
		return guestReadyDecision{Status: metav1.ConditionTrue, Reason: ReasonGuestUp, Message: msg}
	}
	waiting, timeout := "", ""
	switch probe {
	case vmv1alpha1.GuestProbeGuestAgent:
		if o.Report.AgentReported() {
			msg := "the guest agent reported"
			if o.Report.AgentVersion != "" {
				msg += " (version " + o.Report.AgentVersion + ")"
			}
			return up(msg)
		}
		waiting = "waiting for a guest agent's first report in the domain's xenstore (attr/PVAddons or attr/vif): the guest is booting"
		timeout = fmt.Sprintf("no guest agent has reported in %s since the domain started: install and start xen-guest-agent (or xe-guest-utilities) in the template's guest, or set spec.domain.readiness.probe: DomainRunning", GuestUpTimeout)
	case vmv1alpha1.GuestProbeTCP:
		if o.TCPUp {
			return up(fmt.Sprintf("port %d answers (%s)", port, o.TCPAddr))
		}
		if g == nil || g.IP == "" {
			waiting = fmt.Sprintf("waiting for the guest's address to probe port %d (from a guest agent or dom0's neighbour table)", port)
		} else {
			waiting = fmt.Sprintf("port %d on %s does not answer yet", port, g.IP)
		}
		timeout = fmt.Sprintf("port %d has not answered in %s since the domain started (%s): check the service and the firewall in the guest, or change spec.domain.readiness", port, GuestUpTimeout, waiting)
	default:
		return up("the domain runs (readiness probe DomainRunning: the guest itself is not checked)")
	}
	if o.Trouble != "" {
		waiting += "; " + o.Trouble
		timeout += "; " + o.Trouble
	}
	left := started.Add(GuestUpTimeout).Sub(now)
	if started.IsZero() || left > 0 {
		d := guestReadyDecision{Status: metav1.ConditionFalse, Reason: ReasonWaitingForGuest, Message: waiting, Recheck: left}
		if d.Recheck <= 0 {
			d.Recheck = GuestUpTimeout
		}
		return d
	}
	return guestReadyDecision{Status: metav1.ConditionFalse, Reason: ReasonGuestNotResponding, Message: timeout}
}

// lastGuestReady is the GuestReady of the last report, if it describes the same domain run.
func lastGuestReady(last *vmv1alpha1.VMCloneStatus, domid int32) *metav1.Condition {
	if last == nil || last.Domain == nil || last.Domain.ID != domid || domid == 0 {
		return nil
	}
	return meta.FindStatusCondition(last.Conditions, vmv1alpha1.ConditionGuestReady)
}

func (r *CloneReconciler) guestEvents() chan event.GenericEvent {
	if r.guests != nil {
		return r.guests.events
	}
	return make(chan event.GenericEvent)
}

// ensureGuestReady reports what the running guest tells of itself (status.guest) and whether it
// is up (GuestReady). It never holds up the steps after it.
func (r *CloneReconciler) ensureGuestReady(_ context.Context, s *cloneScope) (bool, error) {
	dr := meta.FindStatusCondition(s.status.Conditions, vmv1alpha1.ConditionDomainRunning)
	if dr == nil || dr.Status != metav1.ConditionTrue || s.status.Domain == nil || s.status.Domain.ID <= 0 {
		r.guestWhenDown(s)
		return true, nil
	}
	probe, port := readinessOf(s.template)
	var started time.Time
	if ts := s.status.Timestamps; ts != nil && ts.Started != nil {
		started = ts.Started.Time
	}
	var obs guestObservation
	if r.guests != nil {
		obs = r.guests.Observe(guestTarget{
			Key: client.ObjectKeyFromObject(s.clone), Domain: s.status.Domain.Name, DomID: int(s.status.Domain.ID),
			NICs: s.clone.Status.Interfaces, Probe: probe, Port: port, Started: started,
		})
	} else if probe != vmv1alpha1.GuestProbeDomainRunning {
		obs.Trouble = "this host's agent does not look into its guests (no xenstore tools wired)"
	}
	g := GuestStatusFrom(obs, s.clone.Status.Interfaces)
	if g == nil && !obs.Known && s.last.Domain != nil && s.last.Domain.ID == s.status.Domain.ID {
		// Restarted, and not looked yet: what was reported for this domain run still holds.
		g = s.last.Guest.DeepCopy()
	}
	s.status.Guest = g
	if obs.ReportRead {
		s.status.Domain.VNCPort = int32(obs.Report.VNCPort)
	}
	d := DecideGuestReady(probe, port, obs, g, started, r.Clock.Now(), lastGuestReady(&s.last, s.status.Domain.ID))
	s.setCondition(vmv1alpha1.ConditionGuestReady, d.Status, d.Reason, d.Message)
	if d.Recheck > 0 {
		s.requeueAfter(d.Recheck)
	}
	return true, nil
}

// guestWhenDown drops status.guest and GuestReady once the domain does not run: they describe
// a running guest.
func (r *CloneReconciler) guestWhenDown(s *cloneScope) {
	dr := meta.FindStatusCondition(s.status.Conditions, vmv1alpha1.ConditionDomainRunning)
	if dr != nil && dr.Status == metav1.ConditionTrue {
		return
	}
	s.status.Guest = nil
	meta.RemoveStatusCondition(&s.status.Conditions, vmv1alpha1.ConditionGuestReady)
	if r.guests != nil {
		r.guests.Forget(client.ObjectKeyFromObject(s.clone))
	}
}
