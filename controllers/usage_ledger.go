package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// usageLedger keeps, per host, what the clones bound to it in the controller's cache take:
// how many there are and the memory and COW space still in flight. Placement used to list
// every clone from the cache and turn each into a Binding for every decision — O(clones) per
// placement, which was half the controller's CPU at 10,000 clones (docs/performance.md). The
// ledger is fed by the VMClone informer's events instead, so a placement costs O(hosts) plus
// the clones that changed since the previous one.
//
// Events only record which clone object is current (the informer's objects are never mutated,
// so keeping the pointer is safe); contributions are computed lazily by usage(), under the
// placement lock, with the templates the placement already read. A template whose memory or
// COW size changes later leaves clones already accounted with their old figures until they
// change themselves — in flight is a matter of seconds, and the clone count does not depend on
// templates.
type usageLedger struct {
	mu sync.Mutex
	// dirty: clones changed (nil: deleted) since the last usage().
	dirty map[types.UID]*vmv1alpha1.VMClone
	// applied: what each bound clone currently contributes to hosts.
	applied map[types.UID]Binding
	hosts   map[string]*HostUsage
}

func newUsageLedger() *usageLedger {
	return &usageLedger{
		dirty:   map[types.UID]*vmv1alpha1.VMClone{},
		applied: map[types.UID]Binding{},
		hosts:   map[string]*HostUsage{},
	}
}

// handler returns the informer event handler that feeds the ledger.
func (l *usageLedger) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { l.changed(obj, false) },
		UpdateFunc: func(_, obj any) { l.changed(obj, false) },
		DeleteFunc: func(obj any) { l.changed(obj, true) },
	}
}

func (l *usageLedger) changed(obj any, deleted bool) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj, deleted = tomb.Obj, true
	}
	c, ok := obj.(*vmv1alpha1.VMClone)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if deleted {
		l.dirty[c.UID] = nil
		return
	}
	l.dirty[c.UID] = c
}

// usage folds the changed clones in and returns a copy of the per-host usage without the
// contribution of clone exclude. templates resolves a clone's template (nil if unknown).
func (l *usageLedger) usage(templates func(name string) *vmv1alpha1.VMTemplate, exclude types.UID) map[string]HostUsage {
	l.mu.Lock()
	defer l.mu.Unlock()
	for uid, c := range l.dirty {
		if old, ok := l.applied[uid]; ok {
			l.add(old, -1)
			delete(l.applied, uid)
		}
		if c != nil && c.Status.NodeName != "" {
			b := bindingOf(c, templates(c.Spec.TemplateRef.Name))
			l.applied[uid] = b
			l.add(b, 1)
		}
		delete(l.dirty, uid)
	}
	out := make(map[string]HostUsage, len(l.hosts))
	for h, u := range l.hosts {
		out[h] = *u
	}
	if own, ok := l.applied[exclude]; ok {
		u := out[own.Host]
		u.add(own, -1)
		out[own.Host] = u
	}
	return out
}

// boundTo says whether clone uid was counted on host as of the last usage(). The host matters:
// a clone moved off a lost host is still counted there until the cache shows it on its new
// host, and meanwhile its new binding must be counted from the reservations, or every clone
// of a mass reschedule would see the new host empty.
func (l *usageLedger) boundTo(uid types.UID, host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.applied[uid]
	return ok && b.Host == host
}

// add adds (sign 1) or removes (sign -1) a binding's contribution to its host.
func (l *usageLedger) add(b Binding, sign int64) {
	u := l.hosts[b.Host]
	if u == nil {
		u = &HostUsage{}
		l.hosts[b.Host] = u
	}
	u.add(b, sign)
	if *u == (HostUsage{}) {
		delete(l.hosts, b.Host)
	}
}
