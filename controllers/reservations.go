package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// reservations remember decisions the controller made but its cache does not show yet: a
// binding written a moment ago, MACs just drawn. Without them a burst of clones reconciled
// back to back would all see the same free memory and overcommit a host, or two clones could
// draw the same MAC (kube-scheduler's "assume" cache solves the same lag). An entry is dropped
// as soon as the cache shows the clone's own status carrying it, or when the clone is gone.
type reservations struct {
	mu sync.Mutex
	// placing serializes placement decisions: read usage, decide, reserve.
	placing  sync.Mutex
	bindings map[types.UID]Binding
	macs     map[string]reservedMAC
	byName   map[types.NamespacedName]types.UID
}

type reservedMAC struct {
	uid   types.UID
	clone string
}

func newReservations() *reservations {
	return &reservations{
		bindings: map[types.UID]Binding{},
		macs:     map[string]reservedMAC{},
		byName:   map[types.NamespacedName]types.UID{},
	}
}

func (r *reservations) reserveBinding(key types.NamespacedName, uid types.UID, b Binding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bindings[uid] = b
	r.byName[key] = uid
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

// pendingBindings returns the reserved bindings whose clones the cache does not show bound.
func (r *reservations) pendingBindings(boundInCache func(types.UID) bool) map[types.UID]Binding {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[types.UID]Binding{}
	for uid, b := range r.bindings {
		if !boundInCache(uid) {
			out[uid] = b
		}
	}
	return out
}

// observed drops what the cache now shows for clone uid: its binding once bound, its MACs
// once they are in its status.
func (r *reservations) observed(uid types.UID, bound bool, macs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if bound {
		delete(r.bindings, uid)
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
	for m, v := range r.macs {
		if v.uid == uid {
			delete(r.macs, m)
		}
	}
}
