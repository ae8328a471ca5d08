package hostagent

// The fence journal. The Fencer works from the agent's cache, and a cache syncs only once the
// API server answers: an agent (re)started while its host is cut off (a crash, an OOM kill, an
// upgrade during a partition) would fence nothing, and its Reschedule clones' domains would run
// on while the controller moves them. So with every renewal that succeeds the agent writes,
// on the host, when that renewal was sent and which domains it would fence. An agent that
// starts and cannot reach the API server fences from that file, fence-after after the last
// renewal before it started: the fence clock runs on across agent restarts.
//
// What it cannot cover: an agent that is down itself while its host runs (only a watchdog
// outside the agent would), and a host clock stepped between two agent runs (the journal's
// time is the agent's wall clock; a step back delays the fence by the step).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/log"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// fenceJournal is the file's content.
type fenceJournal struct {
	// LastRenewal is the send time of the last renewal that succeeded, on the agent's clock.
	LastRenewal time.Time `json:"lastRenewal"`
	// Clones are the clones with onNodeLost: Reschedule bound here at that renewal.
	Clones []journalClone `json:"clones"`
}

type journalClone struct {
	Namespace         string    `json:"namespace"`
	Name              string    `json:"name"`
	UID               types.UID `json:"uid"`
	BindingGeneration int64     `json:"bindingGeneration"`
	// UUID is the domain's UUID: a destroy checks it, so a namesake is never touched.
	UUID    string   `json:"uuid"`
	Domains []string `json:"domains"`
}

func readFenceJournal(path string) (fenceJournal, bool, error) {
	var j fenceJournal
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return j, false, nil
	}
	if err != nil {
		return j, false, fmt.Errorf("read fence journal: %w", err)
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return j, false, fmt.Errorf("fence journal %s: %w", path, err)
	}
	return j, true, nil
}

// writeFenceJournal replaces the file in one rename, so a crash leaves the old one or the new.
func writeFenceJournal(path string, j fenceJournal) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write fence journal: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write fence journal: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write fence journal: %w", err)
	}
	return nil
}

// journal records the last renewal and the Reschedule clones bound here, once per renewal
// that succeeded (the Fencer's loop calls it while not fenced).
func (f *Fencer) journal(ctx context.Context) {
	if f.Journal == "" {
		return
	}
	f.mu.Lock()
	last, renewed, fresh := f.lastRenewal, f.renewed, f.lastRenewal.After(f.journaled)
	f.mu.Unlock()
	if !renewed {
		return
	}
	clones, err := boundClones(ctx, f.Client, f.NodeName)
	if err != nil {
		log.FromContext(ctx).Error(err, "fence journal: list clones from the cache")
		return
	}
	j := fenceJournal{LastRenewal: last}
	for i := range clones {
		c := &clones[i]
		if !vmv1alpha1.ReschedulesOnNodeLoss(c) || c.Status.UUID == "" {
			continue
		}
		j.Clones = append(j.Clones, journalClone{Namespace: c.Namespace, Name: c.Name, UID: c.UID,
			BindingGeneration: c.Status.BindingGeneration, UUID: c.Status.UUID, Domains: hostDomainNames(c)})
	}
	// Written with every renewal, and when the clones change between two (a fake clock in
	// tests does not move).
	if !fresh && slices.EqualFunc(j.Clones, f.journaledClones, journalCloneEqual) {
		return
	}
	if err := writeFenceJournal(f.Journal, j); err != nil {
		log.FromContext(ctx).Error(err, "fence journal: an agent restarted while cut off would not fence these clones")
		return
	}
	f.mu.Lock()
	if last.After(f.journaled) {
		f.journaled = last
	}
	f.journaledClones = j.Clones
	f.mu.Unlock()
}

func journalCloneEqual(a, b journalClone) bool {
	return a.UID == b.UID && a.BindingGeneration == b.BindingGeneration && a.UUID == b.UUID && slices.Equal(a.Domains, b.Domains)
}

// takenOver says whether the Fencer itself runs: its cache synced and the rebound-copy sweep
// ran, or a renewal succeeded. The journal is not needed from then on.
func (f *Fencer) takenOver() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.swept || f.renewed
}

// journalFencer fences from the journal while the agent's cache has not synced. It is one of
// the manager's cache runnables (GetCache), because those start before the cache has synced;
// every other runnable waits for that, which never happens while the host is cut off.
type journalFencer struct {
	f     *Fencer
	cache cache.Cache
}

func (j *journalFencer) GetCache() cache.Cache { return j.cache }

func (j *journalFencer) Start(ctx context.Context) error {
	f := j.f
	logger := log.FromContext(ctx).WithValues("node", f.NodeName)
	jr, ok, err := readFenceJournal(f.Journal)
	if err != nil {
		// The agent's own file, unreadable: say so, and fence nothing rather than guess.
		logger.Error(err, "fence journal unreadable: while the API server cannot be reached, this agent fences nothing")
		return nil
	}
	if !ok || len(jr.Clones) == 0 {
		return nil
	}
	start := f.Clock.Now()
	since := jr.LastRenewal
	if since.After(start) {
		since = start // the clock went back: count from now, never from the future
	}
	// A reachable API server gets one renew interval to let the Fencer take over (its live
	// sweep knows better than the journal); the controller's margin covers that interval.
	earliest := start.Add(f.Interval)
	tick := f.Clock.NewTicker(f.Interval)
	defer tick.Stop()
	for {
		if f.takenOver() {
			return nil
		}
		if now := f.Clock.Now(); !now.Before(earliest) && now.Sub(since) >= f.FenceAfter {
			logger.Info("no heartbeat renewal for fence-after and the API server cannot be reached since the agent started: stopping the domains of the clones with onNodeLost: Reschedule in the fence journal",
				"lastRenewal", since, "fenceAfter", f.FenceAfter, "clones", len(jr.Clones))
			f.fenceJournaled(ctx, jr.Clones, since, now)
			// Nothing starts a domain while the cache has not synced: once is enough.
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C():
		}
	}
}

// fenceJournaled destroys the journal's domains, in parallel, and holds their clones as fence
// does, so none starts again before a live read says it is still bound here.
func (f *Fencer) fenceJournaled(ctx context.Context, clones []journalClone, since, now time.Time) {
	var wg sync.WaitGroup
	for _, jc := range clones {
		key := types.NamespacedName{Namespace: jc.Namespace, Name: jc.Name}
		f.mu.Lock()
		h := f.held[key]
		if h == nil || h.uid != jc.UID {
			h = &fenceHold{uid: jc.UID, bindingGeneration: jc.BindingGeneration, since: since, at: now}
			f.held[key] = h
		}
		f.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, n := range jc.Domains {
				destroyed, err := f.destroy(ctx, n, jc.UUID)
				if err != nil {
					log.FromContext(ctx).Error(err, "fence from journal: destroy domain", "vmclone", key.String(), "domain", n)
					continue
				}
				if !destroyed {
					continue
				}
				fencedDomains.WithLabelValues(f.NodeName).Inc()
				f.mu.Lock()
				h.destroyed = n
				f.mu.Unlock()
				log.FromContext(ctx).Info("fenced from journal: domain destroyed", "vmclone", key.String(), "domain", n,
					"lastRenewal", since, "fenceAfter", f.FenceAfter)
			}
		}()
	}
	wg.Wait()
}
