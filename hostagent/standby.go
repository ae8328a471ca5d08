package hostagent

// Warm standbys (spec.pause): a clone whose guest has booted is ballooned down to
// spec.pause.memory and paused; removing spec.pause (a claim does) resumes it where it was.
//
// Pausing is level-triggered like the rest of the domain step: the host says whether the
// domain is paused (the p flag of `xl list`) and how much memory it holds, so an agent restarted
// at any point ballons, pauses or resumes again from what it sees. Resuming is the one
// latency-critical path of the agent: the spec change's watch event starts the reconcile, the
// domain is unpaused first (the guest runs from that moment) and its memory target restored
// right after, before the report is written.

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/xen"
)

const (
	// balloonWait bounds how long a standby is given to balloon down before it is paused
	// anyway: a guest without a balloon driver never gives memory back, and pausing it still
	// saves its CPU. The report then says what it holds.
	balloonWait = 15 * time.Second
	// balloonPoll is how often a ballooning standby's memory is looked at again.
	balloonPoll = time.Second
)

// balloonSlack is how close to its target a guest's memory counts as reached: a balloon
// driver stops a little above its target (pages it cannot give back), and xl list rounds.
func balloonSlack(target int64) int64 {
	return max(4, target/32)
}

// wantPaused says whether the clone is to be a paused warm standby now: spec.pause, and the
// run strategy in force keeps the domain up (Always; the API allows pause only with it).
func wantPaused(c *vmv1alpha1.VMClone) bool {
	return c.Spec.Pause != nil && effectiveStrategy(c) == vmv1alpha1.RunStrategyAlways
}

// ensureStandby brings a live domain (found, not dying, not shut down, ours) to the state the
// clone asks for: running at its memory, or paused at its pause memory after pause.after.
// It sets DomainRunning (True: Started or Paused) and reports whether the domain step is done.
func (r *CloneReconciler) ensureStandby(ctx context.Context, s *cloneScope, name string, dom xen.DomainInfo) (bool, error) {
	e := vmv1alpha1.Effective(s.clone, s.template)
	if !wantPaused(s.clone) {
		r.ballooning.Delete(s.clone.UID)
		// Memory below the start memory is a standby's the agent ballooned (or one being
		// ballooned when the agent died): setting the target back is harmless otherwise, as
		// it is the target xl create set.
		if dom.State.Paused || !s.resumed && dom.MemoryMiB+balloonSlack(e.MemoryMiB) < e.MemoryMiB {
			if err := r.resume(ctx, s, name, dom, e.MemoryMiB); err != nil {
				return false, err
			}
		}
		s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionTrue, ReasonStarted, runningMessage(name, dom.ID))
		return true, nil
	}
	if r.Host.Control == nil {
		s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionTrue, ReasonStarted,
			runningMessage(name, dom.ID)+fmt.Sprintf("; not paused: the hostagent on %s cannot pause domains (no xl pause/mem-set wired)", r.NodeName))
		return true, nil
	}
	if dom.State.Paused {
		r.ballooning.Delete(s.clone.UID)
		s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionTrue, ReasonPaused, pausedMessage(name, dom, e))
		return true, nil
	}
	// The guest boots for pause.after first, so a claim resumes a booted guest.
	now := r.Clock.Now()
	if started := s.status.Timestamps.Started; started != nil {
		if left := started.Add(e.PauseAfter).Sub(now); left > 0 {
			s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionTrue, ReasonStarted, runningMessage(name, dom.ID))
			s.requeueAfter(left)
			return true, nil
		}
	}
	if dom.MemoryMiB > e.PauseMemoryMiB+balloonSlack(e.PauseMemoryMiB) {
		v, asked := r.ballooning.Load(s.clone.UID)
		if !asked {
			if err := r.Host.Control.SetMemory(ctx, name, e.PauseMemoryMiB); err != nil {
				return false, fmt.Errorf("balloon %s down to %d MiB: %w", name, e.PauseMemoryMiB, err)
			}
			log.FromContext(ctx).V(1).Info("ballooning standby down", "domain", name, "fromMiB", dom.MemoryMiB, "toMiB", e.PauseMemoryMiB)
			r.ballooning.Store(s.clone.UID, now)
			v = now
		}
		if now.Sub(v.(time.Time)) < balloonWait {
			s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionTrue, ReasonStarted, runningMessage(name, dom.ID))
			s.requeueAfter(balloonPoll)
			return true, nil
		}
		log.FromContext(ctx).Info("standby did not balloon down in time; pausing it as it is", "domain", name,
			"holdsMiB", dom.MemoryMiB, "targetMiB", e.PauseMemoryMiB, "waited", balloonWait)
	}
	if err := r.Host.Control.Pause(ctx, name); err != nil {
		return false, fmt.Errorf("pause %s: %w", name, err)
	}
	r.ballooning.Delete(s.clone.UID)
	r.capacityChanged()
	dom.State.Paused = true
	s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionTrue, ReasonPaused, pausedMessage(name, dom, e))
	r.event(s.clone, corev1.EventTypeNormal, ReasonPaused, "PauseDomain", "%s", pausedMessage(name, dom, e))
	return true, nil
}

// resumeStandby is the claim's fast path, run before any other step: when the agent's own
// report says the domain is paused (it paused it) and spec.pause is gone, the domain is
// unpaused and its memory target restored at once, and the report written, without the volume
// and storage steps first (an lvs, about a second on a loaded host) and without an xl list
// (the report names the domain: a clone's domain name is its own, checked by UUID when the
// agent first took it up, and unpausing never harms a domain). If that fails the domain step,
// which looks at the host, resumes it instead.
func (r *CloneReconciler) resumeStandby(ctx context.Context, s *cloneScope) error {
	if wantPaused(s.clone) || !s.reportsPaused() || r.Host.Control == nil || !s.clone.DeletionTimestamp.IsZero() {
		return nil
	}
	if s.clone.Spec.ResetRequests > s.status.ObservedResetRequests {
		return nil // the reset destroys it anyway
	}
	d := s.status.Domain
	e := vmv1alpha1.Effective(s.clone, s.template)
	dom := xen.DomainInfo{Name: d.Name, ID: int(d.ID), State: xen.RunState{Paused: true}}
	if err := r.resume(ctx, s, d.Name, dom, e.MemoryMiB); err != nil {
		log.FromContext(ctx).Info("fast resume failed; the domain step looks at the host", "domain", d.Name, "error", err.Error())
		return nil
	}
	s.resumed = true
	s.status.Domain.State = xen.RunState{}.String()
	s.setCondition(vmv1alpha1.ConditionDomainRunning, metav1.ConditionTrue, ReasonStarted, runningMessage(d.Name, int(d.ID)))
	// Said now, not after the other steps: whoever waits for the guest (a claim) waits on it.
	return r.applyStatus(ctx, s)
}

// reportsPaused says whether the agent's report has the domain paused as a standby.
func (s *cloneScope) reportsPaused() bool {
	c := meta.FindStatusCondition(s.status.Conditions, vmv1alpha1.ConditionDomainRunning)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonPaused &&
		s.status.Domain != nil && s.status.Domain.Name != "" && s.status.Domain.ID > 0
}

// resume unpauses the domain and gives its memory back. Unpause comes first: from then on the
// guest runs (a claim waits for that), and xl mem-set only raises a target the balloon driver
// then follows while it runs; the other order would keep the guest frozen for one more xl call.
func (r *CloneReconciler) resume(ctx context.Context, s *cloneScope, name string, dom xen.DomainInfo, memMiB int64) error {
	if r.Host.Control == nil {
		return fmt.Errorf("resume %s: the hostagent on %s cannot unpause domains (no xl unpause wired)", name, r.NodeName)
	}
	start := time.Now()
	if dom.State.Paused {
		if err := r.Host.Control.Unpause(ctx, name); err != nil {
			return fmt.Errorf("unpause %s: %w", name, err)
		}
	}
	unpaused := time.Since(start)
	if err := r.Host.Control.SetMemory(ctx, name, memMiB); err != nil {
		// The guest runs; it gets its memory back at the next reconcile (the report still
		// says Paused, so the next look restores it).
		return fmt.Errorf("restore memory of %s to %d MiB: %w", name, memMiB, err)
	}
	r.capacityChanged()
	log.FromContext(ctx).V(1).Info("resumed standby", "domain", name, "paused", dom.State.Paused, "unpause", unpaused, "total", time.Since(start), "memoryMiB", memMiB)
	if dom.State.Paused {
		r.event(s.clone, corev1.EventTypeNormal, ReasonStarted, "ResumeDomain", "domain %s resumed (unpaused in %s), memory target back to %d MiB",
			name, unpaused.Round(time.Millisecond), memMiB)
	}
	return nil
}

func pausedMessage(name string, dom xen.DomainInfo, e vmv1alpha1.EffectiveSpec) string {
	return fmt.Sprintf("domain %s (id %d) paused as a warm standby, holding %d MiB (spec.pause.memory %d MiB, %d MiB when resumed)",
		name, dom.ID, dom.MemoryMiB, e.PauseMemoryMiB, e.MemoryMiB)
}
