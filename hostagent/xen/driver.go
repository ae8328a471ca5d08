// Package xen drives the Xen toolstack of a dom0 through the `xl` command: it renders a
// domain's xl.cfg (Render, WriteConfigFile), creates, shuts down and destroys domains, and reads
// their state (`xl list`), stored configs (`xl list -l`) and the host's capacity (`xl info`).
//
// # Who applies on_poweroff / on_reboot / on_crash
//
// Plain `xl create` forks a monitor process, `xl-<name>`, and only that process carries out the
// on_* actions. Started from the agent's container it lives in the container's cgroup and dies
// on every agent restart, silently leaving domains without their lifecycle handling. So Create
// always runs `xl create -e` (no monitor), and the node agent is the monitor: it reads the state
// column of `xl list` (a shut-down domain stays listed as "---s?-" with its reason until someone
// destroys it) and applies the clone's policy with DecideStep. Because the decision is made from
// what the host shows now, it is level-triggered and survives agent restarts, including a
// restart that happens between the guest's shutdown and the action. docs/xen-monitor.md has the
// full reasoning and the alternatives considered.
package xen

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-logr/logr"

	"github.com/xenclone/xenclone/hostagent/command"
)

// Driver runs xl. The zero value runs "xl" from PATH with no prefix; set Runner.Prefix to reach
// the host's xl from a container (e.g. nsenter into PID 1's namespaces).
type Driver struct {
	Runner command.Runner
	// XL is the xl binary (name or path); default "xl".
	XL string
	// Log receives V(1) step logs; the zero Logger discards them.
	Log logr.Logger
}

func (d *Driver) xl() string {
	if d.XL == "" {
		return "xl"
	}
	return d.XL
}

func (d *Driver) run(ctx context.Context, op, domain string, args ...string) ([]byte, error) {
	out, err := d.Runner.Run(ctx, d.xl(), append([]string{op}, args...)...)
	if err != nil {
		return out, classify(op, domain, err)
	}
	return out, nil
}

// CreateOptions tune Create.
type CreateOptions struct {
	// Paused leaves the domain paused after creation (xl create -p).
	Paused bool
	// MemoryMiB is the memory the domain starts with. xl does not need it (it is in the
	// config); a caller that keeps a snapshot of the host's free memory uses it to move that
	// snapshot by the create instead of reading `xl info` again.
	MemoryMiB int64
}

// sigabrtExit is the exit status a shell-like runner reports for SIGABRT; Go's ExitCode reports
// -1 for a signal, so both are checked.
const sigabrtExit = 134

// Create starts the domain named name from the xl.cfg at cfgPath with `xl create -e`: no
// monitor process (see the package doc), so the caller applies on_* itself through DecideStep.
// It returns when the domain has been started, not when the guest has booted.
//
// name must be the name inside the config; it is used to check the outcome when xl dies
// abnormally: real xl 4.17 was seen to abort (SIGABRT, rc 134) after creating the domain, so an
// abort is a success if the domain is listed and alive afterwards.
func (d *Driver) Create(ctx context.Context, name, cfgPath string, opts CreateOptions) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if !filepath.IsAbs(cfgPath) {
		return fmt.Errorf("xl create %s: config path %q must be absolute", name, cfgPath)
	}
	// No -q: the "Parsing config from" line tells a config error from other exit-1 failures.
	args := []string{"-e"}
	if opts.Paused {
		args = append(args, "-p")
	}
	args = append(args, cfgPath)
	d.Log.V(1).Info("creating domain", "domain", name, "config", cfgPath)
	_, err := d.run(ctx, "create", name, args...)
	if err == nil {
		return nil
	}
	var ce *command.Error
	if errors.As(err, &ce) && ctx.Err() == nil && (ce.ExitCode == sigabrtExit || ce.ExitCode == -1) {
		dom, found, lerr := d.Lookup(ctx, name)
		if lerr == nil && found && dom.State.Phase() != PhaseDying && dom.State.Phase() != PhaseShutdown {
			d.Log.Info("xl create ended abnormally but the domain is running; treating it as created",
				"domain", name, "domid", dom.ID, "error", err.Error())
			return nil
		}
	}
	return err
}

// RequestShutdown asks the guest to power off (`xl shutdown`, no -w) and returns once the guest
// has acknowledged the request. xl itself waits up to 60 s for the acknowledgement; give ctx a
// shorter deadline to bound it. ErrShutdownNotAcknowledged means no acknowledgement yet (the
// request stays posted); ErrNoPVControl means the guest cannot be asked. Either way, observe
// the domain with Lookup and destroy it when the grace period is over (NextStopStep).
func (d *Driver) RequestShutdown(ctx context.Context, name string) error {
	return d.pvControl(ctx, "shutdown", name)
}

// RequestReboot asks the guest to reboot (`xl reboot`). With Create's -e the guest then shows as
// shut down with reason reboot and the agent restarts it (DecideStep → StepRestart).
func (d *Driver) RequestReboot(ctx context.Context, name string) error {
	return d.pvControl(ctx, "reboot", name)
}

func (d *Driver) pvControl(ctx context.Context, op, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	d.Log.V(1).Info("requesting guest "+op, "domain", name)
	_, err := d.run(ctx, op, name, name)
	if err != nil && ctx.Err() != nil {
		var xe *Error
		if errors.As(err, &xe) && xe.Kind == nil {
			// Our deadline cut xl's wait for the acknowledgement: the request is posted.
			xe.Kind = ErrShutdownNotAcknowledged
		}
	}
	return err
}

// Destroy kills the domain immediately (`xl destroy`). Its memory is freed asynchronously and a
// dying domain may stay listed for a moment. Returns ErrNoSuchDomain if there is none.
func (d *Driver) Destroy(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	d.Log.V(1).Info("destroying domain", "domain", name)
	_, err := d.run(ctx, "destroy", name, name)
	return err
}

// Owner returns the stored config of domain name after checking that it carries uuid: the
// agent's ownership rule (it only changes domains it created, recognised by the clone's UUID).
// ErrNoSuchDomain if there is no such domain, ErrNotOwned if its UUID differs.
func (d *Driver) Owner(ctx context.Context, name, uuid string) (DomainDetail, error) {
	doms, err := d.ListLong(ctx, name)
	if err != nil {
		return DomainDetail{}, err
	}
	for _, dom := range doms {
		if dom.Name == name && dom.UUID == uuid {
			return dom, nil
		}
	}
	if len(doms) == 0 {
		// Listed but without a stored config (e.g. dying): we cannot prove it is ours.
		return DomainDetail{}, &Error{Op: "list", Domain: name, Kind: ErrNotOwned, Err: fmt.Errorf("no stored config to check uuid %s", uuid)}
	}
	return DomainDetail{}, &Error{Op: "list", Domain: name, Kind: ErrNotOwned, Err: fmt.Errorf("uuid is %s, not %s", doms[0].UUID, uuid)}
}

// DestroyOwned destroys domain name only if it carries uuid (see Owner). It destroys by domid,
// so a same-named domain created in between by someone else is not hit.
func (d *Driver) DestroyOwned(ctx context.Context, name, uuid string) error {
	dom, err := d.Owner(ctx, name, uuid)
	if err != nil {
		return err
	}
	d.Log.V(1).Info("destroying domain", "domain", name, "domid", dom.DomID, "uuid", uuid)
	_, err = d.run(ctx, "destroy", name, strconv.Itoa(dom.DomID))
	return err
}

// List returns every domain on the host, Domain-0 included, with its run state.
func (d *Driver) List(ctx context.Context) ([]DomainInfo, error) {
	out, err := d.run(ctx, "list", "")
	if err != nil {
		return nil, err
	}
	doms, err := ParseList(out)
	if err != nil {
		return nil, &Error{Op: "list", Err: err}
	}
	return doms, nil
}

// Lookup returns the listed domain named name. If several rows carry the name (a dying domain
// and its re-created successor), the live one wins.
func (d *Driver) Lookup(ctx context.Context, name string) (DomainInfo, bool, error) {
	doms, err := d.List(ctx)
	if err != nil {
		return DomainInfo{}, false, err
	}
	var best DomainInfo
	found := false
	for _, dom := range doms {
		if dom.Name != name {
			continue
		}
		if !found || (best.State.Dying && !dom.State.Dying) {
			best, found = dom, true
		}
	}
	return best, found, nil
}

// ListLong returns the stored configs of the named domains (`xl list -l NAME`), or of all
// domains with a stored config when no name is given. Domains without a stored config (e.g.
// Domain-0) are left out by xl.
func (d *Driver) ListLong(ctx context.Context, names ...string) ([]DomainDetail, error) {
	if len(names) > 1 {
		// xl list takes at most one domain.
		var all []DomainDetail
		for _, n := range names {
			part, err := d.ListLong(ctx, n)
			if err != nil {
				return nil, err
			}
			all = append(all, part...)
		}
		return all, nil
	}
	args := []string{"-l"}
	domain := ""
	if len(names) == 1 {
		if err := ValidateName(names[0]); err != nil {
			return nil, err
		}
		domain = names[0]
		args = append(args, domain)
	}
	out, err := d.run(ctx, "list", domain, args...)
	if err != nil {
		return nil, err
	}
	doms, err := ParseListLong(out)
	if err != nil {
		return nil, &Error{Op: "list", Domain: domain, Err: err}
	}
	return doms, nil
}

// Info returns the host's capacity (`xl info`).
func (d *Driver) Info(ctx context.Context) (HostInfo, error) {
	out, err := d.run(ctx, "info", "")
	if err != nil {
		return HostInfo{}, err
	}
	info, err := ParseInfo(out)
	if err != nil {
		return HostInfo{}, &Error{Op: "info", Err: err}
	}
	return info, nil
}

// StopStep is the next step of a graceful stop.
type StopStep string

const (
	// StopDone: the domain is gone (or only dying, which needs nothing more from us).
	StopDone StopStep = "Done"
	// StopWait: the guest is shutting down and the grace period is not over; look again later.
	StopWait StopStep = "Wait"
	// StopDestroy: destroy now, because the guest has shut down (with -e nobody else removes
	// it) or the grace period is over.
	StopDestroy StopStep = "Destroy"
)

// NextStopStep decides a graceful stop from what `xl list` shows, without blocking: request the
// shutdown once (RequestShutdown) and record when, then call this on every reconcile and requeue
// after the returned wait while it says StopWait. A paused domain is destroyed at once: its
// guest cannot see the request (don't send one).
func NextStopStep(found bool, st RunState, requestedAt, now time.Time, grace time.Duration) (StopStep, time.Duration) {
	switch {
	case !found || st.Dying:
		return StopDone, 0
	case st.Shutdown, st.Paused:
		// A paused guest cannot act on the request: waiting would only use up the grace.
		return StopDestroy, 0
	}
	left := requestedAt.Add(grace).Sub(now)
	if left <= 0 {
		return StopDestroy, 0
	}
	return StopWait, left
}

// StopResult says how Stop ended.
type StopResult struct {
	// Graceful is true if the guest shut itself down before the grace period ended.
	Graceful bool
	// AlreadyGone is true if there was no such domain to begin with.
	AlreadyGone bool
}

// Stop is the blocking form of a graceful stop, for callers that can afford to wait (tests,
// the agent's shutdown path): request a shutdown, watch the domain every poll interval, destroy
// it when it has shut down or when grace has passed. ctx bounds the whole call. Reconcilers
// should use RequestShutdown + NextStopStep and requeue instead.
func (d *Driver) Stop(ctx context.Context, name string, grace, poll time.Duration) (StopResult, error) {
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	dom, found, err := d.Lookup(ctx, name)
	if err != nil {
		return StopResult{}, err
	}
	if !found {
		return StopResult{AlreadyGone: true}, nil
	}
	requestedAt := time.Now()
	noPV := false
	if !dom.State.Shutdown && !dom.State.Dying && !dom.State.Paused {
		// xl waits up to 60 s for the guest's acknowledgement; never longer than our grace.
		reqCtx, cancel := context.WithTimeout(ctx, grace)
		err := d.RequestShutdown(reqCtx, name)
		cancel()
		switch {
		case err == nil, errors.Is(err, ErrShutdownNotAcknowledged), errors.Is(err, ErrNoPVControl):
			if err != nil {
				d.Log.V(1).Info("shutdown request not acknowledged", "domain", name, "reason", err.Error())
			}
			noPV = errors.Is(err, ErrNoPVControl)
		case errors.Is(err, ErrNoSuchDomain):
			return StopResult{AlreadyGone: true}, nil
		default:
			return StopResult{}, err
		}
	}
	graceful := false
	for {
		step, wait := NextStopStep(found, dom.State, requestedAt, time.Now(), grace)
		if noPV && step == StopWait {
			step = StopDestroy // nothing will come of waiting
		}
		switch step {
		case StopDone:
			return StopResult{Graceful: graceful}, nil
		case StopDestroy:
			graceful = dom.State.Shutdown
			if derr := d.Destroy(ctx, name); derr != nil && !errors.Is(derr, ErrNoSuchDomain) {
				return StopResult{}, derr
			}
			d.Log.V(1).Info("domain stopped", "domain", name, "graceful", graceful)
			return StopResult{Graceful: graceful}, nil
		}
		if wait > poll {
			wait = poll
		}
		select {
		case <-ctx.Done():
			return StopResult{}, fmt.Errorf("stop %s: %w", name, ctx.Err())
		case <-time.After(wait):
		}
		dom, found, err = d.Lookup(ctx, name)
		if err != nil {
			return StopResult{}, err
		}
		if !found {
			graceful = true // it went away by itself (e.g. a monitor destroyed it)
		}
	}
}

// Pause stops the domain's vCPUs (`xl pause`): it keeps its memory and devices and shows the
// `p` flag in `xl list` until Unpause. A paused guest cannot answer a shutdown request, and its
// clock does not see the time it spent paused until it runs again.
func (d *Driver) Pause(ctx context.Context, name string) error {
	return d.simple(ctx, "pause", name)
}

// Unpause lets a paused domain run again (`xl unpause`); unpausing a running domain is a no-op
// for Xen (it counts pauses, and xl's unpause of an unpaused domain succeeds).
func (d *Driver) Unpause(ctx context.Context, name string) error {
	return d.simple(ctx, "unpause", name)
}

func (d *Driver) simple(ctx context.Context, op, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	d.Log.V(1).Info(op+" domain", "domain", name)
	_, err := d.run(ctx, op, name, name)
	return err
}

// SetMemory sets the domain's balloon target (`xl mem-set NAME <MiB>m`). It returns once Xen
// has the new target; the guest's balloon driver then gives memory back (or takes it) at its
// own pace, so `xl list` shows the change only when the guest has done it, and a guest without
// a balloon driver keeps what it has. The target cannot exceed the domain's maxmem.
func (d *Driver) SetMemory(ctx context.Context, name string, mib int64) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if mib < 1 {
		return fmt.Errorf("xl mem-set %s: memory %d MiB must be positive", name, mib)
	}
	d.Log.V(1).Info("setting domain memory target", "domain", name, "MiB", mib)
	// An explicit unit: without one xl reads MiB, but a bare number reads like KiB elsewhere.
	_, err := d.run(ctx, "mem-set", name, name, strconv.FormatInt(mib, 10)+"m")
	return err
}
