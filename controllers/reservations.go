package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// reservations remember decisions the controller made but its cache does not show yet: a
// binding written a moment ago, MACs just drawn. Without them a burst of clones reconciled
// back to back would all see the same free memory and overcommit a host, or two clones could
// draw the same MAC (kube-scheduler's "assume" cache solves the same lag). An entry is dropped
// as soon as the cache shows the clone's own status carrying it, or when the clone is gone.
//
// They also keep a clone's own decisions stable: a reconcile woken by an event older than the
// controller's last status write (its own label write, say) finds the host and MACs decided
// moments ago here instead of deciding again.
type reservations struct {
	mu sync.Mutex
	// placing serializes placement decisions: read usage, decide, reserve.
	placing  sync.Mutex
	bindings map[types.UID]reservedBinding
	// confirmed: bindings the cache shows but the usage ledger may not count yet (the ledger
	// is fed by the informer's event handlers, which run just after the cache is updated).
	// Placement keeps counting them until the ledger does, or for confirmedFor at most.
	confirmed map[types.UID]reservedBinding
	ifaces    map[types.UID][]vmv1alpha1.InterfaceStatus
	macs      map[string]reservedMAC
	byName    map[types.NamespacedName]types.UID
}

type reservedBinding struct {
	Binding
	key types.NamespacedName
	// domain is the clone's Xen domain name: the domain-name index holds only bound clones, so
	// a binding the cache does not show yet holds its name here.
	domain     string
	message    string
	generation int64
	at         time.Time
	// written is set once the status write carrying the binding succeeded.
	written bool
}

type reservedMAC struct {
	uid   types.UID
	clone string
}

func newReservations() *reservations {
	return &reservations{
		bindings:  map[types.UID]reservedBinding{},
		confirmed: map[types.UID]reservedBinding{},
		ifaces:    map[types.UID][]vmv1alpha1.InterfaceStatus{},
		macs:      map[string]reservedMAC{},
		byName:    map[types.NamespacedName]types.UID{},
	}
}

func (r *reservations) reserveBinding(key types.NamespacedName, uid types.UID, domain string, b Binding, message string, generation int64, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bindings[uid] = reservedBinding{Binding: b, key: key, domain: domain, message: message, generation: generation, at: at}
	r.byName[key] = uid
}

// domainHolder returns the clone other than uid whose binding under domain the cache does not
// show yet. It scans the bindings in flight, a burst's worth at most.
func (r *reservations) domainHolder(domain string, uid types.UID) (reservedBinding, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for u, b := range r.bindings {
		if u != uid && b.domain == domain {
			return b, true
		}
	}
	return reservedBinding{}, false
}

// bindingFor returns the binding decided for uid that the cache does not show yet.
func (r *reservations) bindingFor(uid types.UID) (reservedBinding, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.bindings[uid]
	return b, ok
}

// bindingWritten records that uid's reserved binding is stored: a reconcile that still reads
// the clone unbound is behind that write and must not write it again.
func (r *reservations) bindingWritten(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.bindings[uid]; ok {
		b.written = true
		r.bindings[uid] = b
	}
}

func (r *reservations) reserveInterfaces(key types.NamespacedName, uid types.UID, ifaces []vmv1alpha1.InterfaceStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ifaces[uid] = ifaces
	r.byName[key] = uid
}

// interfacesFor returns the interfaces allocated to uid that the cache does not show yet.
func (r *reservations) interfacesFor(uid types.UID) []vmv1alpha1.InterfaceStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ifaces[uid]
}

func (r *reservations) reserveMAC(key types.NamespacedName, uid types.UID, mac string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.macs[mac] = reservedMAC{uid: uid, clone: key.String()}
	r.byName[key] = uid
}

// macOwner returns the clone that reserved mac, unless it is uid itself.
func (r *reservations) macOwner(mac string, uid types.UID) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.macs[mac]; ok && m.uid != uid {
		return m.clone
	}
	return ""
}

// confirmedFor bounds how long a confirmed binding waits for the ledger; the informer's
// handlers lag the cache by milliseconds.
const confirmedFor = 30 * time.Second

// pendingBindings returns the reserved bindings that the usage ledger does not count yet on
// their host. counted(uid, host) says whether the ledger counts clone uid on host: a ledger that
// counts the clone on another host (the lost one it was moved off) does not count this binding.
func (r *reservations) pendingBindings(counted func(uid types.UID, host string) bool, now time.Time) map[types.UID]Binding {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[types.UID]Binding{}
	for uid, b := range r.bindings {
		if !counted(uid, b.Host) {
			out[uid] = b.Binding
		}
	}
	for uid, b := range r.confirmed {
		if counted(uid, b.Host) || now.Sub(b.at) > confirmedFor {
			delete(r.confirmed, uid)
			continue
		}
		if _, ok := out[uid]; !ok {
			out[uid] = b.Binding
		}
	}
	if len(r.confirmed) == 0 {
		r.confirmed = map[types.UID]reservedBinding{} // release a burst's buckets
	}
	return out
}

// observed drops what the cache now shows for clone key (uid): its binding once bound to the
// reserved host, its interfaces and MACs once they are in its status, and its name once
// nothing is reserved for it any more.
func (r *reservations) observed(key types.NamespacedName, uid types.UID, node string, macs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.tidy(key, uid)
	if b, ok := r.bindings[uid]; ok && node != "" && b.Host == node {
		delete(r.bindings, uid)
		b.at = time.Now()
		r.confirmed[uid] = b
	}
	if len(macs) > 0 {
		delete(r.ifaces, uid)
	}
	for _, m := range macs {
		if r.macs[m].uid == uid {
			delete(r.macs, m)
		}
	}
}

// forget drops everything reserved for a clone that no longer exists.
func (r *reservations) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	uid, ok := r.byName[key]
	if !ok {
		return
	}
	delete(r.byName, key)
	delete(r.bindings, uid)
	delete(r.confirmed, uid)
	delete(r.ifaces, uid)
	for m, v := range r.macs {
		if v.uid == uid {
			delete(r.macs, m)
		}
	}
	r.shrink()
}

// tidy forgets key's name once nothing is reserved for uid (confirmed bindings wait for
// the ledger in pendingBindings, which does not need the name), so a burst of 10,000 clones
// leaves no per-clone entries behind. The caller holds r.mu.
func (r *reservations) tidy(key types.NamespacedName, uid types.UID) {
	if r.byName[key] != uid {
		return
	}
	if _, ok := r.bindings[uid]; ok {
		return
	}
	if _, ok := r.ifaces[uid]; ok {
		return
	}
	for _, m := range r.macs {
		if m.uid == uid {
			return
		}
	}
	delete(r.byName, key)
	r.shrink()
}

// shrink replaces emptied maps with new ones: a Go map keeps the buckets of its largest size,
// and after a burst these are sized for every clone of the burst. The caller holds r.mu.
func (r *reservations) shrink() {
	if len(r.bindings) == 0 {
		r.bindings = map[types.UID]reservedBinding{}
	}
	if len(r.ifaces) == 0 {
		r.ifaces = map[types.UID][]vmv1alpha1.InterfaceStatus{}
	}
	if len(r.macs) == 0 {
		r.macs = map[string]reservedMAC{}
	}
	if len(r.byName) == 0 {
		r.byName = map[types.NamespacedName]types.UID{}
	}
}
