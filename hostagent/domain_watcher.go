package hostagent

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// domainWatcher is the agent's view of the hypervisor between reconciles: xl has no event
// stream, so one `xl list` per interval for the whole host (not one per clone) finds domains
// that changed state by themselves — a guest that powered off, rebooted or crashed — and wakes
// exactly their clones, which then apply their run strategy.
type domainWatcher struct {
	client   client.Client
	nodeName string
	hyp      Hypervisor
	interval time.Duration
	events   chan event.GenericEvent

	last map[string]string // domain name -> "id/state"
}

func (w *domainWatcher) NeedLeaderElection() bool { return false }

func (w *domainWatcher) Start(ctx context.Context) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := w.poll(ctx); err != nil {
			log.FromContext(ctx).V(1).Info("poll domains", "node", w.nodeName, "error", err.Error())
		}
	}
}

func (w *domainWatcher) poll(ctx context.Context) error {
	doms, err := w.hyp.List(ctx)
	if err != nil {
		return err
	}
	cur := make(map[string]string, len(doms))
	for _, d := range doms {
		cur[d.Name] = fmt.Sprintf("%d/%s", d.ID, d.State)
	}
	first := w.last == nil
	changed := map[string]bool{}
	for n, s := range cur {
		if w.last[n] != s {
			changed[n] = true
		}
	}
	for n := range w.last {
		if _, ok := cur[n]; !ok {
			changed[n] = true
		}
	}
	w.last = cur
	if first || len(changed) == 0 {
		return nil
	}
	bound, err := boundClones(ctx, w.client, w.nodeName)
	if err != nil {
		return err
	}
	for i := range bound {
		c := &bound[i]
		if changed[DomainName(c)] {
			select {
			case w.events <- event.GenericEvent{Object: c}:
			case <-ctx.Done():
				return nil
			}
		}
	}
	return nil
}
