package xlsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StateDirEnv names the directory holding the simulated host. Every xl process pointed at the
// same directory sees the same host; an flock on its lock file serialises them.
const StateDirEnv = "XLSIM_STATE_DIR"

const (
	stateFile = "host.json"
	lockFile  = "host.lock"
)

// libxl shutdown reason codes (libxl_shutdown_reason).
const (
	reasonPoweroff  = 0
	reasonReboot    = 1
	reasonSuspend   = 2
	reasonCrash     = 3
	reasonWatchdog  = 4
	reasonSoftReset = 5
)

var reasonNames = map[string]int{"poweroff": reasonPoweroff, "reboot": reasonReboot, "suspend": reasonSuspend,
	"crash": reasonCrash, "watchdog": reasonWatchdog, "soft_reset": reasonSoftReset}

// Guest behaviours on a shutdown/reboot request.
const (
	guestObey   = "obey"   // acknowledges and powers off/reboots after shutdown_delay
	guestIgnore = "ignore" // never acknowledges (a hung or unaware guest)
	guestAck    = "ack"    // acknowledges but never stops (userspace hangs on the way down)
	guestNoPV   = "nopv"   // no PV control interface (HVM without PV drivers)
)

var guestBehaviours = map[string]bool{guestObey: true, guestIgnore: true, guestAck: true, guestNoPV: true}

// host is the whole simulated host, stored as JSON in the state directory.
type host struct {
	Name       string    `json:"name"`
	TotalMiB   int64     `json:"totalMemoryMiB"`
	Dom0MiB    int64     `json:"dom0MemoryMiB"`
	NrCPUs     int       `json:"nrCPUs"`
	XenMajor   int       `json:"xenMajor"`
	XenMinor   int       `json:"xenMinor"`
	XenExtra   string    `json:"xenExtra"`
	Bridges    []string  `json:"bridges"`
	Booted     time.Time `json:"booted"`
	NextDomID  int       `json:"nextDomID"`
	NextPID    int       `json:"nextPID"`
	Knobs      knobs     `json:"knobs"`
	Domains    []*domain `json:"domains"`
	Generation int64     `json:"generation"`
}

// knobs are the simulator's injectable behaviours, set with `xl sim-knob key=value`.
type knobs struct {
	// Delays per subcommand, applied before the command does anything (outside the lock, so
	// concurrent commands overlap as they would on a real host).
	Delays map[string]duration `json:"delays,omitempty"`
	// Failures per subcommand: mode and remaining count (-1 = forever).
	Failures map[string]*failure `json:"failures,omitempty"`
	// AckTimeout is how long `xl shutdown`/`reboot` wait for a guest's acknowledgement (real xl:
	// 60 s).
	AckTimeout duration `json:"ackTimeout"`
	// ShutdownDelay is how long an obeying guest takes from the request to being shut down.
	ShutdownDelay duration `json:"shutdownDelay"`
	// DyingTime is how long a destroyed domain stays listed as dying ('d'), holding its name and
	// memory.
	DyingTime duration `json:"dyingTime"`
	// DyingName "keep" shows a dying domain under its name; "null" shows "(null)", as xl does once
	// the domain's xenstore entries are gone (the name then no longer blocks a create).
	DyingName string `json:"dyingName"`
	// GuestDefault is the behaviour of newly created guests.
	GuestDefault string `json:"guestDefault"`
	// Autoballoon selects the memory-shortage error: xl's "failed to free memory for the
	// domain" (autoballoon on) or libxc's allocation failure (off, dom0_mem set: the
	// recommended setup and the default here).
	Autoballoon bool `json:"autoballoon"`
	// CheckDisks makes create fail, as the block hotplug script does, when a disk target does
	// not exist.
	CheckDisks bool `json:"checkDisks"`
	// GuestBoot is how long a guest takes from xl create until its guest agent reports and it
	// talks to dom0 (guest.go; default 1 s).
	GuestBoot duration `json:"guestBoot,omitempty"`
	// GuestAgent: every guest runs a guest agent (as if its kernel command line had xcagent;
	// xcnoagent turns it off for one guest).
	GuestAgent bool `json:"guestAgent,omitempty"`
}

type failure struct {
	Mode  string `json:"mode"`
	Count int    `json:"count"`
}

// duration is a time.Duration stored as text in the state file.
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }
func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = duration(v)
	return err
}

// domain is one simulated domain.
type domain struct {
	DomID     int    `json:"domid"`
	Name      string `json:"name"`
	UUID      string `json:"uuid"`
	Type      string `json:"type"`
	MemMiB    int64  `json:"memoryMiB"`
	MaxMemMiB int64  `json:"maxMemoryMiB"`
	VCPUs     int    `json:"vcpus"`
	MaxVCPUs  int    `json:"maxVCPUs"`
	// Monitored is true when created without -e: an xl-<name> monitor applies on_*.
	Monitored bool      `json:"monitored"`
	Created   time.Time `json:"created"`
	Paused    bool      `json:"paused,omitempty"`
	// TargetMiB is the balloon target of the last `xl mem-set` (0: none since creation).
	TargetMiB int64 `json:"targetMiB,omitempty"`
	// Xenstore holds what was written under the domain's /local/domain/<domid>/ tree, by
	// path relative to it.
	Xenstore  map[string]string `json:"xenstore,omitempty"`
	Shutdown  bool              `json:"shutdown,omitempty"`
	Reason    int               `json:"reason,omitempty"`
	StoppedAt time.Time         `json:"stoppedAt,omitempty"`
	// DyingUntil is set once destroyed: the domain is listed as dying until then.
	DyingUntil time.Time `json:"dyingUntil,omitempty"`
	Guest      string    `json:"guest"`
	// Pending is a shutdown/reboot request the guest has accepted and acts on at PendingAt.
	Pending   string    `json:"pending,omitempty"`
	PendingAt time.Time `json:"pendingAt,omitempty"`
	// ConfigPath and ConfigData let the monitor re-create the domain on restart.
	ConfigPath string            `json:"configPath"`
	ConfigData string            `json:"configData"`
	Policy     map[string]string `json:"policy"`
	// Config is the stored libxl domain config printed by `xl list -l`.
	Config json.RawMessage `json:"config"`
	// What the simulated guest shows its host (guest.go): the kernel command line (xcagent: a
	// guest agent publishes in xenstore; xcnet: the guest talks to dom0 on its bridges), its
	// NICs and its VNC port.
	Cmdline string   `json:"cmdline,omitempty"`
	NICs    []simNIC `json:"nics,omitempty"`
	VNCPort int      `json:"vncPort,omitempty"`
}

func (d *domain) dying() bool { return !d.DyingUntil.IsZero() }

func defaultHost(now time.Time) *host {
	return &host{
		Name: "xlsim", TotalMiB: 16384, Dom0MiB: 1024, NrCPUs: 4,
		XenMajor: 4, XenMinor: 17, XenExtra: ".7",
		Bridges: []string{"xenbr0"}, Booted: now, NextDomID: 1, NextPID: 4000,
		Knobs: knobs{
			AckTimeout:    duration(60 * time.Second),
			ShutdownDelay: duration(200 * time.Millisecond),
			DyingName:     "keep",
			GuestDefault:  guestObey,
		},
	}
}

// store is an open, locked state directory.
type store struct {
	dir  string
	lock *os.File
}

func openStore(dir string) (*store, error) {
	if dir == "" {
		return nil, fmt.Errorf("%s is not set: point it at a directory for the simulated host", StateDirEnv)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	return &store{dir: dir, lock: f}, nil
}

func (s *store) close() { _ = s.lock.Close() }

// locked runs fn with the host loaded under an exclusive flock, after applying every timed
// transition that is due, and saves the host if fn returns save=true or a transition happened.
func (s *store) locked(now time.Time, fn func(h *host) (save bool, err error)) error {
	for {
		err := syscall.Flock(int(s.lock.Fd()), syscall.LOCK_EX)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("lock state: %w", err)
		}
	}
	defer func() { _ = syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN) }()
	h, err := s.load(now)
	if err != nil {
		return err
	}
	changed := h.tick(now)
	save, err := fn(h)
	if save || changed {
		if serr := s.save(h); serr != nil && err == nil {
			err = serr
		}
	}
	return err
}

func (s *store) load(now time.Time) (*host, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return defaultHost(now), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	h := defaultHost(now)
	if err := json.Unmarshal(data, h); err != nil {
		return nil, fmt.Errorf("parse state %s: %w", filepath.Join(s.dir, stateFile), err)
	}
	return h, nil
}

func (s *store) save(h *host) error {
	h.Generation++
	data, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, ".host.json.tmp-*")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.dir, stateFile)); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// tick applies every transition that is due at now: guests acting on accepted requests, dying
// domains disappearing, and monitors (domains created without -e) applying on_*.
func (h *host) tick(now time.Time) bool {
	changed := false
	var keep []*domain
	var restarts []*domain
	for _, d := range h.Domains {
		if d.dying() {
			if !now.Before(d.DyingUntil) {
				changed = true
				continue // gone: its memory is free now
			}
			keep = append(keep, d)
			continue
		}
		if d.Pending != "" && !now.Before(d.PendingAt) && !d.Shutdown {
			reason := reasonPoweroff
			if d.Pending == "reboot" {
				reason = reasonReboot
			}
			d.stop(reason, d.PendingAt)
			changed = true
		}
		if d.Shutdown && d.Monitored && d.Reason != reasonSuspend {
			action := d.Policy[policyKey(d.Reason)]
			switch action {
			case "preserve":
			case "restart", "rename-restart", "coredump-restart", "soft-reset":
				restarts = append(restarts, d)
				changed = true
				continue
			default:
				h.destroy(d, now)
				changed = true
			}
		}
		keep = append(keep, d)
	}
	h.Domains = keep
	for _, old := range restarts {
		// xl's monitor destroys the domain and creates it again from the same config under a
		// new domid (xl_vmcontrol.c handle_domain_death → "Done. Rebooting now").
		nd := *old
		nd.DomID = h.allocDomID()
		nd.Created, nd.Shutdown, nd.Reason, nd.StoppedAt = now, false, 0, time.Time{}
		nd.Pending, nd.PendingAt = "", time.Time{}
		// A new domain: a fresh xenstore tree, memory as configured.
		nd.Xenstore, nd.TargetMiB, nd.Paused = nil, 0, false
		nd.Config = append(json.RawMessage(nil), old.Config...)
		h.Domains = append(h.Domains, &nd)
	}
	if changed {
		sort.Slice(h.Domains, func(i, j int) bool { return h.Domains[i].DomID < h.Domains[j].DomID })
	}
	return changed
}

func policyKey(reason int) string {
	switch reason {
	case reasonPoweroff:
		return "on_poweroff"
	case reasonReboot:
		return "on_reboot"
	case reasonWatchdog:
		return "on_watchdog"
	case reasonSoftReset:
		return "on_soft_reset"
	default:
		return "on_crash"
	}
}

func (d *domain) stop(reason int, at time.Time) {
	d.Shutdown, d.Reason, d.StoppedAt = true, reason, at
	d.Pending, d.PendingAt = "", time.Time{}
}

// destroy starts tearing d down; it stays listed as dying for the DyingTime knob.
func (h *host) destroy(d *domain, now time.Time) {
	if d.dying() {
		return
	}
	if d.StoppedAt.IsZero() {
		d.StoppedAt = now
	}
	d.DyingUntil = now.Add(time.Duration(h.Knobs.DyingTime))
	if !d.DyingUntil.After(now) {
		d.DyingUntil = now.Add(time.Nanosecond) // gone at the next look
	}
}

func (h *host) allocDomID() int {
	// Sequential like Xen's default domid_policy, skipping ids in use, wrapping below
	// DOMID_FIRST_RESERVED (0x7FF0).
	for {
		id := h.NextDomID
		h.NextDomID++
		if h.NextDomID >= 0x7FF0 {
			h.NextDomID = 1
		}
		if h.byID(id) == nil {
			return id
		}
	}
}

func (h *host) byID(id int) *domain {
	for _, d := range h.Domains {
		if d.DomID == id {
			return d
		}
	}
	return nil
}

// visibleName is the name xl prints for d.
func (h *host) visibleName(d *domain) string {
	if d.dying() && h.Knobs.DyingName == "null" {
		return "(null)"
	}
	return d.Name
}

// findDomain resolves an xl domain qualifier as libxl_domain_qualifier_to_domid does: all
// digits is a domid (whether or not it exists), anything else a name. ok is false for an
// unknown name.
func (h *host) findDomain(q string) (id int, d *domain, ok bool) {
	if q != "" && strings.Trim(q, "0123456789") == "" {
		n, err := strconv.ParseUint(q, 10, 32)
		if err != nil {
			return 0, nil, false
		}
		return int(n), h.byID(int(n)), true
	}
	for _, d := range h.Domains {
		if h.visibleName(d) == q && q != "(null)" {
			return d.DomID, d, true
		}
	}
	return 0, nil, false
}

// usedMiB is the memory held by domains, dying and shut-down ones included: Xen frees a
// domain's memory only when it is fully gone.
func (h *host) usedMiB() int64 {
	var used int64
	for _, d := range h.Domains {
		used += d.MemMiB
	}
	return used
}

func (h *host) freeMiB() int64 {
	free := h.TotalMiB - h.Dom0MiB - h.usedMiB()
	if free < 0 {
		return 0
	}
	return free
}

// cpuSeconds is a made-up but monotonic CPU time: 2% of one CPU while the domain runs.
func (d *domain) cpuSeconds(now time.Time) float64 {
	end := now
	if !d.StoppedAt.IsZero() {
		end = d.StoppedAt
	}
	if end.Before(d.Created) {
		return 0
	}
	return end.Sub(d.Created).Seconds() * 0.02 * float64(d.VCPUs)
}

// stateLetters renders the six-letter state column.
func (d *domain) stateLetters() string {
	b := []byte("------")
	switch {
	case d.Shutdown:
		// Xen keeps a shut-down domain paused: real xl shows "--ps--" (testdata/real-lab).
		b[2] = 'p'
		b[3] = 's'
		b[4] = "-rscwS"[d.Reason]
	case d.Paused:
		b[2] = 'p'
	case !d.dying():
		b[1] = 'b' // an idle guest waits on events most of the time
	}
	if d.dying() {
		b[5] = 'd'
	}
	return string(b)
}

// takeFailure consumes one injected failure for cmd, if any.
func (h *host) takeFailure(cmd string) string {
	f := h.Knobs.Failures[cmd]
	if f == nil || f.Count == 0 {
		return ""
	}
	if f.Count > 0 {
		f.Count--
	}
	mode := f.Mode
	if f.Count == 0 {
		delete(h.Knobs.Failures, cmd)
	}
	return mode
}
