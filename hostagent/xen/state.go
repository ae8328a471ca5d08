package xen

import (
	"fmt"
)

// ShutdownReason is why a shut-down domain stopped (libxl_shutdown_reason, shown as the fifth
// letter of the `xl list` state column).
type ShutdownReason string

const (
	ReasonNone      ShutdownReason = ""
	ReasonPoweroff  ShutdownReason = "poweroff"
	ReasonReboot    ShutdownReason = "reboot"
	ReasonSuspend   ShutdownReason = "suspend"
	ReasonCrash     ShutdownReason = "crash"
	ReasonWatchdog  ShutdownReason = "watchdog"
	ReasonSoftReset ShutdownReason = "soft_reset"
	ReasonUnknown   ShutdownReason = "unknown"
)

// reasonLetters is xl's shutdown_reason_letters ("-rscwS", indexed by reason code) plus '?' for
// out-of-range codes.
var reasonLetters = map[byte]ShutdownReason{'-': ReasonPoweroff, 'r': ReasonReboot, 's': ReasonSuspend,
	'c': ReasonCrash, 'w': ReasonWatchdog, 'S': ReasonSoftReset, '?': ReasonUnknown}

// RunState is the decoded six-letter state column of `xl list` ("r-----", "-b----",
// "---sc-", "-----d"): the only place xl reports a domain's run state.
type RunState struct {
	Running  bool
	Blocked  bool
	Paused   bool
	Shutdown bool
	// Reason is set only when Shutdown is true.
	Reason ShutdownReason
	Dying  bool
}

// ParseState decodes a state column. Positions are fixed: r, b, p, s, reason, d.
func ParseState(s string) (RunState, error) {
	if len(s) != 6 {
		return RunState{}, fmt.Errorf("xl state %q: want 6 letters", s)
	}
	flag := func(i int, want byte) (bool, error) {
		switch s[i] {
		case want:
			return true, nil
		case '-':
			return false, nil
		}
		return false, fmt.Errorf("xl state %q: position %d is %q, want %q or '-'", s, i, s[i], want)
	}
	var st RunState
	var err error
	if st.Running, err = flag(0, 'r'); err != nil {
		return RunState{}, err
	}
	if st.Blocked, err = flag(1, 'b'); err != nil {
		return RunState{}, err
	}
	if st.Paused, err = flag(2, 'p'); err != nil {
		return RunState{}, err
	}
	if st.Shutdown, err = flag(3, 's'); err != nil {
		return RunState{}, err
	}
	reason, ok := reasonLetters[s[4]]
	if !ok {
		return RunState{}, fmt.Errorf("xl state %q: unknown shutdown reason letter %q", s, s[4])
	}
	switch {
	case st.Shutdown:
		st.Reason = reason
	case s[4] != '-':
		// xl prints the reason letter only for a shut-down domain (shutdown_reason is 0,
		// printed '-', otherwise).
		return RunState{}, fmt.Errorf("xl state %q: shutdown reason without shutdown flag", s)
	}
	if st.Dying, err = flag(5, 'd'); err != nil {
		return RunState{}, err
	}
	return st, nil
}

// Lifecycle is the state without the scheduler's view of the moment: whether a vCPU is on a
// CPU (r) or waiting (b) flips many times a second for a live guest and says nothing about its
// life, so what watches and reports domains compares this.
func (s RunState) Lifecycle() RunState {
	s.Running, s.Blocked = false, false
	return s
}

// String renders the state as xl prints it.
func (s RunState) String() string {
	b := []byte("------")
	if s.Running {
		b[0] = 'r'
	}
	if s.Blocked {
		b[1] = 'b'
	}
	if s.Paused {
		b[2] = 'p'
	}
	if s.Shutdown {
		b[3] = 's'
		for l, r := range reasonLetters {
			if r == s.Reason {
				b[4] = l
			}
		}
	}
	if s.Dying {
		b[5] = 'd'
	}
	return string(b)
}

// Phase is the coarse state the node agent acts on.
type Phase string

const (
	// PhaseActive: the domain runs (running, blocked on I/O, or runnable and waiting: "------").
	PhaseActive Phase = "Active"
	// PhasePaused: paused (e.g. created with -p).
	PhasePaused Phase = "Paused"
	// PhaseShutdown: the guest stopped itself (see Reason) and the domain waits for someone to
	// apply on_poweroff/on_reboot/on_crash. With `xl create -e` that someone is the agent.
	PhaseShutdown Phase = "Shutdown"
	// PhaseDying: destroyed and being torn down; its name still blocks a new create and its
	// memory is not free yet. Wait and look again.
	PhaseDying Phase = "Dying"
)

// Phase returns the coarse phase. Dying wins over everything; shutdown over paused.
func (s RunState) Phase() Phase {
	switch {
	case s.Dying:
		return PhaseDying
	case s.Shutdown:
		return PhaseShutdown
	case s.Paused:
		return PhasePaused
	default:
		return PhaseActive
	}
}

// LifecyclePolicy is what to do when the guest powers off, reboots or crashes.
type LifecyclePolicy struct {
	OnPoweroff LifecycleAction
	OnReboot   LifecycleAction
	OnCrash    LifecycleAction
}

func (p LifecyclePolicy) withDefaults() LifecyclePolicy {
	if p.OnPoweroff == "" {
		p.OnPoweroff = ActionDestroy
	}
	if p.OnReboot == "" {
		p.OnReboot = ActionRestart
	}
	if p.OnCrash == "" {
		p.OnCrash = ActionDestroy
	}
	return p
}

// Step is what the node agent does next for an observed domain.
type Step string

const (
	// StepNone: nothing to do (running, paused, or preserved on purpose).
	StepNone Step = "None"
	// StepWait: the domain is dying; requeue and look again.
	StepWait Step = "Wait"
	// StepDestroy: destroy the domain and leave it gone.
	StepDestroy Step = "Destroy"
	// StepRestart: destroy the domain, wait until its name is gone from `xl list` (a dying
	// same-named domain blocks create), then create it again from the same config.
	StepRestart Step = "Restart"
)

// DecideStep is the agent's replacement for xl's monitor (handle_domain_death in
// xl_vmcontrol.c), applied level-triggered to whatever `xl list` shows now. It is pure, so it is
// safe to run again after an agent restart: the domain's state still says what happened.
//
// Differences from xl, on purpose: coredump-* actions do not dump core (we have nowhere safe to
// put guest memory), rename-restart restarts without keeping a renamed copy, a watchdog or
// soft_reset shutdown is treated as a crash and a reboot respectively, and a suspended domain is
// left alone (someone is saving it).
func DecideStep(s RunState, p LifecyclePolicy) Step {
	p = p.withDefaults()
	switch s.Phase() {
	case PhaseDying:
		return StepWait
	case PhaseShutdown:
	default:
		return StepNone
	}
	var a LifecycleAction
	switch s.Reason {
	case ReasonSuspend:
		return StepNone
	case ReasonPoweroff:
		a = p.OnPoweroff
	case ReasonReboot, ReasonSoftReset:
		a = p.OnReboot
	case ReasonCrash, ReasonWatchdog:
		a = p.OnCrash
	default:
		// An unknown reason: the guest is not running and will not run again by itself.
		a = ActionDestroy
	}
	switch a {
	case ActionPreserve:
		return StepNone
	case ActionRestart, ActionRenameRestart, ActionCoredumpRestart:
		return StepRestart
	default:
		return StepDestroy
	}
}
