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
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/xenclone/xenclone/hostagent/atomicfile"
)

// fenceJournal is the file's content.
type fenceJournal struct {
	// LastRenewal is the send time of the last renewal that succeeded, on the agent's clock.
	LastRenewal time.Time `json:"lastRenewal"`
	// Clones are the clones with onNodeLost: Reschedule bound here at that renewal.
	Clones []fenceTarget `json:"clones"`
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

// writeFenceJournal replaces the file atomically: a crash leaves the old one or the new.
func writeFenceJournal(path string, j fenceJournal) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write fence journal: %w", err)
	}
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return fmt.Errorf("fence journal: %w", err)
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
	j := fenceJournal{LastRenewal: last, Clones: fenceTargets(clones)}
	// Written with every renewal, and when the clones change between two (a fake clock in
	// tests does not move).
	if !fresh && slices.EqualFunc(j.Clones, f.journaledClones, fenceTarget.equal) {
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
			f.stopTargets(ctx, jr.Clones, since, now)
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
