// Package xlsim is a simulated Xen host driven through an `xl` look-alike: Main takes xl's
// arguments and prints what xl 4.17 prints, with xl's exit codes and error texts for the
// failures the node agent classifies (duplicate name, not enough memory, unknown domain, missing
// bridge, bad config, unacknowledged shutdown). The host lives in a directory ($XLSIM_STATE_DIR)
// so every process that runs the simulator sees the same host; an flock serialises them.
//
// Supported xl subcommands: create [-e] [-p] [-q] [-n] [-F] cfg [key=value…], list [-l] [dom],
// info [key], shutdown [-w[w]] [-F] [-a] dom, reboot [-w[w]] [-F] dom, destroy [-f] dom,
// domid name, pause dom, unpause dom, mem-set dom size.
//
// Two look-alikes of the xenstore tools run through the same binary, with their real arguments
// after the tool's name (the simulated host runs `xl xenstore-write -R PATH VALUE…`):
// xenstore-write [-R] [-s] path value…, xenstore-read [-R] [-s] path…, xenstore-ls -f path…,
// xenstore-watch path… (runs until killed). Paths under /local/domain/<domid>/ of a listed
// domain are kept with that domain (and go with it); writes elsewhere are accepted and dropped.
// So does iproute2's `ip -j neigh show` and `ip monitor neigh` (guest.go): the simulated guests'
// guest agent and neighbour entries, driven by their kernel command line (xcagent, xcnet) as
// the lab's real guest is.
//
// Simulator-only subcommands (tests and the playground use them; real xl has none):
//
//	sim-init [total_memory=MiB] [dom0_memory=MiB] [nr_cpus=N] [xen_version=4.17.7] [bridges=a,b] [host=name]
//	    reset the host (all domains gone) with this hardware
//	sim-knob key=value…     set behaviours, see below
//	sim-guest DOM poweroff|reboot|crash|watchdog|suspend
//	    the guest stops by itself with that reason
//	sim-guest DOM behave obey|ignore|ack|nopv
//	    how the guest answers shutdown/reboot requests
//	sim-kill-monitors       every xl-<name> monitor dies (what an agent restart does to
//	                        monitors started in its container): on_* stop being applied
//	sim-dump                print the host state as JSON
//
// Knobs: delay.<subcommand>=<duration>; fail.<subcommand>=<mode>[:<count>|:*] with modes
// error (exit 3), nomem (create only: the memory error), abort (create only: create the domain,
// then exit 134 like the SIGABRT seen on real xl 4.17), hang (sleep until killed);
// ack_timeout=<duration> (default 60s, real xl's); shutdown_delay=<duration> (default 200ms);
// dying_time=<duration> (default 0); dying_name=keep|null; guest_default=obey|ignore|ack|nopv;
// autoballoon=0|1 (default 0); check_disks=0|1 (default 0); guest_boot=<duration> (default 1s:
// from xl create until a guest agent reports and the guest talks to dom0, see guest.go);
// guest_agent=0|1 (default 0: only guests with xcagent on their command line run one).
package xlsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

type sim struct {
	stdout, stderr io.Writer
	store          *store
	dryrun         bool
	now            func() time.Time
	sleep          func(time.Duration)
}

// Main runs one xl command. args are xl's arguments without the program name (e.g.
// ["create", "-e", "/x.cfg"]); it returns the exit status. The state directory comes from
// $XLSIM_STATE_DIR.
func Main(args []string, stdout, stderr io.Writer) int {
	return run(os.Getenv(StateDirEnv), args, stdout, stderr)
}

func run(dir string, args []string, stdout, stderr io.Writer) int {
	s := &sim{stdout: stdout, stderr: stderr, now: time.Now, sleep: time.Sleep}
	// xl's global options come before the subcommand.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-N":
			s.dryrun = true
		case "-v", "-t", "-T":
		case "-f":
			if len(args) > 1 {
				args = args[1:]
			}
		default:
			return s.usage("")
		}
		args = args[1:]
	}
	if len(args) == 0 {
		return s.usage("")
	}
	st, err := openStore(dir)
	if err != nil {
		fmt.Fprintf(stderr, "xlsim: %v\n", err)
		return 1
	}
	defer st.close()
	s.store = st

	cmd, rest := args[0], args[1:]
	if !strings.HasPrefix(cmd, "sim-") {
		if code, done := s.inject(cmd); done {
			return code
		}
	}
	switch cmd {
	case "create":
		return s.create(rest)
	case "list":
		return s.list(rest)
	case "info":
		return s.info(rest)
	case "shutdown":
		return s.pvControl("shutdown", rest)
	case "reboot":
		return s.pvControl("reboot", rest)
	case "destroy":
		return s.destroy(rest)
	case "domid":
		return s.domid(rest)
	case "pause", "unpause":
		return s.pause(cmd == "pause", rest)
	case "mem-set":
		return s.memSet(rest)
	case "xenstore-write":
		return s.xenstoreWrite(rest)
	case "xenstore-read":
		return s.xenstoreRead(rest)
	case "xenstore-ls":
		return s.xenstoreLs(rest)
	case "xenstore-watch":
		return s.xenstoreWatch(rest)
	case "ip":
		return s.ip(rest)
	case "sim-init":
		return s.simInit(rest)
	case "sim-knob":
		return s.simKnob(rest)
	case "sim-guest":
		return s.simGuest(rest)
	case "sim-kill-monitors":
		return s.simKillMonitors()
	case "sim-dump":
		return s.simDump()
	}
	fmt.Fprint(stderr, "command not implemented\n")
	return 1
}

// inject applies the delay and failure knobs of cmd. Failure modes other than create's are
// handled here; create consumes its own under the lock, since some of its modes act mid-way.
func (s *sim) inject(cmd string) (int, bool) {
	var delay time.Duration
	var mode string
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		delay = time.Duration(h.Knobs.Delays[cmd])
		if cmd != "create" {
			mode = h.takeFailure(cmd)
			return mode != "", nil
		}
		if f := h.Knobs.Failures[cmd]; f != nil && f.Mode == "hang" {
			mode = h.takeFailure(cmd)
			return true, nil
		}
		return false, nil
	})
	if delay > 0 {
		s.sleep(delay)
	}
	switch mode {
	case "":
		return 0, false
	case "hang":
		for {
			s.sleep(time.Hour)
		}
	default:
		fmt.Fprintf(s.stderr, "libxl: error: xlsim: injected failure of %s\n", cmd)
		return 3, true
	}
}

func (s *sim) usage(cmd string) int {
	if cmd == "" {
		fmt.Fprint(s.stderr, "Usage xl [-vfNtT] <subcommand> [args]\n")
	} else {
		fmt.Fprintf(s.stderr, "Usage: xl [-v] %s <args>\n", cmd)
	}
	return 2
}

// findOrFail resolves a domain qualifier like xl's find_domain, printing its error.
func (s *sim) findOrFail(h *host, q string) (int, *domain, bool) {
	id, d, ok := h.findDomain(q)
	if !ok {
		fmt.Fprintf(s.stderr, "%s is an invalid domain identifier (rc=-6)\n", q)
		return 0, nil, false
	}
	return id, d, true
}

const listHeader = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n"

func (s *sim) list(args []string) int {
	long := false
	var target []string
	for _, a := range args {
		switch a {
		case "-l", "--long":
			long = true
		case "-v", "--verbose", "-Z", "--context", "-c", "--cpupool", "-n", "--numa":
			// extra columns not simulated
		default:
			if strings.HasPrefix(a, "-") {
				return s.usage("list")
			}
			target = append(target, a)
		}
	}
	if len(target) > 1 {
		return s.usage("list")
	}
	code := 0
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		now := s.now()
		doms := h.Domains
		if len(target) == 1 {
			id, d, ok := s.findOrFail(h, target[0])
			if !ok {
				code = 1
				return false, nil
			}
			if d == nil {
				if id == 0 {
					doms = nil // Domain-0 only
				} else {
					fmt.Fprintf(s.stderr, "Error: Domain '%s' does not exist.\n", target[0])
					code = 1
					return false, nil
				}
			} else {
				doms = []*domain{d}
			}
		}
		withDom0 := len(target) == 0 || (len(doms) == 0)
		if long {
			s.printLong(doms)
			return false, nil
		}
		var b strings.Builder
		b.WriteString(listHeader)
		if withDom0 {
			fmt.Fprintf(&b, "%-40s %5d %5d %5d     %s  %8.1f\n", "Domain-0", 0, h.Dom0MiB, h.NrCPUs, "r-----",
				now.Sub(h.Booted).Seconds()*0.1)
		}
		for _, d := range doms {
			mem := d.MemMiB
			fmt.Fprintf(&b, "%-40s %5d %5d %5d     %s  %8.1f\n", h.visibleName(d), d.DomID, mem, d.VCPUs,
				d.stateLetters(), d.cpuSeconds(now))
		}
		io.WriteString(s.stdout, b.String())
		return false, nil
	})
	return code
}

// printLong prints `xl list -l`: every domain with a stored config (Domain-0 has none).
func (s *sim) printLong(doms []*domain) {
	var parts []string
	for _, d := range doms {
		parts = append(parts, fmt.Sprintf(`{"domid":%d,"config":%s}`, d.DomID, d.Config))
	}
	out, err := indentYAJL([]byte("[" + strings.Join(parts, ",") + "]"))
	if err != nil {
		fmt.Fprintf(s.stderr, "unable to format domain config as JSON (YAJL:%v)\n", err)
		return
	}
	fmt.Fprintln(s.stdout, string(out))
}

// indentYAJL pretty-prints like libxl's yajl generator (beautify, four-space indent), keeping
// key order. (yajl prints an empty object over two lines; json.Indent prints "{}".)
func indentYAJL(compact []byte) ([]byte, error) {
	var b bytes.Buffer
	if err := json.Indent(&b, compact, "", "    "); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (s *sim) info(args []string) int {
	key := ""
	for _, a := range args {
		switch {
		case a == "-n" || a == "--numa" || a == "-x" || a == "--xenstore":
		case strings.HasPrefix(a, "-"):
			return s.usage("info")
		default:
			key = a
		}
	}
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		lines := h.infoLines()
		var b strings.Builder
		for _, l := range lines {
			if key == "" {
				b.WriteString(l)
				continue
			}
			// xl's maybe_printf: a prefix match on the key prints only the value.
			if strings.HasPrefix(l, key) {
				if i := strings.IndexByte(l, ':'); i >= 0 && i+1 < len(l) && l[i+1] == ' ' {
					b.WriteString(l[i+2:])
				}
			}
		}
		io.WriteString(s.stdout, b.String())
		return false, nil
	})
	return 0
}

func (h *host) infoLines() []string {
	kv := func(k string, v any) string { return fmt.Sprintf("%-23s: %v\n", k, v) }
	ver := fmt.Sprintf("%d.%d%s", h.XenMajor, h.XenMinor, h.XenExtra)
	return []string{
		kv("host", h.Name),
		kv("release", "6.1.0-56-amd64"),
		kv("version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.153-1 (2025-09-20)"),
		kv("machine", "x86_64"),
		kv("nr_cpus", h.NrCPUs),
		kv("max_cpu_id", h.NrCPUs-1),
		kv("nr_nodes", 1),
		kv("cores_per_socket", h.NrCPUs),
		kv("threads_per_core", 1),
		kv("cpu_mhz", "2399.998"),
		kv("hw_caps", "178bf3ff:f6d8320b:2e500800:244037ff:0000000f:f1bf07a9:00405f4e:00000100"),
		"virt_caps              : pv hvm hap shadow gnttab-v1 gnttab-v2\n",
		kv("total_memory", h.TotalMiB),
		kv("free_memory", h.freeMiB()),
		kv("sharing_freed_memory", 0),
		kv("sharing_used_memory", 0),
		kv("outstanding_claims", 0),
		kv("free_cpus", 0),
		kv("xen_major", h.XenMajor),
		kv("xen_minor", h.XenMinor),
		kv("xen_extra", h.XenExtra),
		kv("xen_version", ver),
		kv("xen_caps", "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64"),
		kv("xen_scheduler", "credit2"),
		kv("xen_pagesize", 4096),
		kv("platform_params", "virt_start=0xffff800000000000"),
		kv("xen_changeset", ""),
		kv("xen_commandline", fmt.Sprintf("placeholder dom0_mem=%dM,max:%dM", h.Dom0MiB, h.Dom0MiB)),
		kv("cc_compiler", "x86_64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0"),
		kv("cc_compile_by", "pkg-xen-devel"),
		kv("cc_compile_domain", "lists.alioth.debian.org"),
		kv("cc_compile_date", "Thu Sep 25 10:00:00 UTC 2025"),
		kv("build_id", "0123456789abcdef0123456789abcdef01234567"),
		kv("xend_config_format", 4),
	}
}

// pvControl is xl shutdown / xl reboot: post the request, wait for the guest's
// acknowledgement (up to the ack_timeout knob, 60 s in real xl), optionally wait for shutdown
// (-w) or death (-ww).
func (s *sim) pvControl(what string, args []string) int {
	wait, all, fallback := 0, false, false
	var target string
	for _, a := range args {
		switch {
		case a == "-w" || a == "--wait":
			wait++
		case a == "-ww":
			wait += 2
		case a == "-a" || a == "--all":
			all = true
		case a == "-F":
			fallback = true
		case strings.HasPrefix(a, "-"):
			return s.usage(what)
		default:
			target = a
		}
	}
	if target == "" && !all {
		fmt.Fprint(s.stderr, "You must specify -a or a domain id.\n\n")
		return 1
	}
	var ids []int
	code := 0
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		if all {
			for _, d := range h.Domains {
				if !d.dying() {
					ids = append(ids, d.DomID)
				}
			}
			return false, nil
		}
		id, _, ok := s.findOrFail(h, target)
		if !ok {
			code = 1
			return false, nil
		}
		ids = []int{id}
		return false, nil
	})
	if code != 0 {
		return code
	}
	for _, id := range ids {
		if c := s.pvControlOne(what, id, fallback); c != 0 {
			return c
		}
	}
	if wait > 0 {
		s.waitForDeaths(ids, wait == 1)
	}
	return 0
}

func (s *sim) pvControlOne(what string, id int, fallback bool) int {
	verb, event := "Shutting down", "power"
	request := "poweroff"
	if what == "reboot" {
		verb, event, request = "Rebooting", "reset", "reboot"
	}
	fmt.Fprintf(s.stderr, "%s domain %d\n", verb, id)
	var behaviour string
	var ackTimeout time.Duration
	code := 0
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		d := h.byID(id)
		ackTimeout = time.Duration(h.Knobs.AckTimeout)
		if d == nil {
			fmt.Fprintf(s.stderr, "libxl: error: libxl_domain.c:733:libxl__domain_pvcontrol_available: unable to get domain type for domid=%d\n%s failed (rc=-3)\n", id, what)
			code = 1
			return false, nil
		}
		behaviour = d.Guest
		if behaviour == guestNoPV {
			if !fallback {
				fmt.Fprintf(s.stderr, "PV control interface not available: external graceful %s not possible.\n", what)
				fmt.Fprintf(s.stderr, "Use \"-F\" to fallback to ACPI %s event.\n", event)
				fmt.Fprintf(s.stderr, "%s failed (rc=-10)\n", what)
				code = 1
				return false, nil
			}
			fmt.Fprintf(s.stderr, "PV control interface not available: sending ACPI %s button event.\n", event)
			behaviour = guestObey
		}
		// A guest that is shut down, dying or paused cannot answer.
		if d.Shutdown || d.dying() || d.Paused {
			behaviour = guestIgnore
		}
		switch behaviour {
		case guestObey:
			if d.Pending == "" {
				d.Pending = request
				d.PendingAt = s.now().Add(time.Duration(h.Knobs.ShutdownDelay))
			}
			return true, nil
		case guestAck:
			return false, nil
		}
		return false, nil
	})
	if code != 0 || behaviour != guestIgnore {
		return code
	}
	// Wait for an acknowledgement that never comes, unless the domain (and with it the
	// xenstore node) goes away, which libxl reads as acknowledged.
	deadline := s.now().Add(ackTimeout)
	for s.now().Before(deadline) {
		s.sleep(50 * time.Millisecond)
		gone := false
		_ = s.store.locked(s.now(), func(h *host) (bool, error) {
			d := h.byID(id)
			gone = d == nil || d.dying()
			return false, nil
		})
		if gone {
			return 0
		}
	}
	fmt.Fprint(s.stderr, "libxl: error: libxl_domain.c:854:pvcontrol_cb: guest didn't acknowledge control request: -9\n")
	fmt.Fprintf(s.stderr, "%s failed (rc=-9)\n", what)
	return 1
}

// waitForDeaths is xl's wait_for_domain_deaths, polling the state directory.
func (s *sim) waitForDeaths(ids []int, shutdownIsEnough bool) {
	fmt.Fprintf(s.stderr, "Waiting for %d domains\n", len(ids))
	pending := map[int]bool{}
	for _, id := range ids {
		pending[id] = true
	}
	reported := map[int]bool{}
	for len(pending) > 0 {
		_ = s.store.locked(s.now(), func(h *host) (bool, error) {
			for id := range pending {
				d := h.byID(id)
				switch {
				case d == nil || d.dying():
					fmt.Fprintf(s.stderr, "Domain %d has been destroyed\n", id)
					delete(pending, id)
				case d.Shutdown && !reported[id]:
					reported[id] = true
					fmt.Fprintf(s.stderr, "Domain %d has been shut down, reason code %d\n", id, d.Reason)
					if shutdownIsEnough {
						delete(pending, id)
					} else {
						fmt.Fprintf(s.stderr, "Domain %d continue waiting for death\n", id)
					}
				}
			}
			return false, nil
		})
		if len(pending) > 0 {
			s.sleep(50 * time.Millisecond)
		}
	}
}

func (s *sim) destroy(args []string) int {
	force := false
	var target string
	for _, a := range args {
		switch {
		case a == "-f":
			force = true
		case strings.HasPrefix(a, "-"):
			return s.usage("destroy")
		default:
			target = a
		}
	}
	if target == "" {
		return s.usage("destroy")
	}
	code := 0
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		id, d, ok := s.findOrFail(h, target)
		if !ok {
			code = 1
			return false, nil
		}
		if id == 0 && !force {
			fmt.Fprint(s.stderr, "Not destroying domain 0; use -f to force.\n"+
				"This can only be done when using a disaggregated hardware domain and toolstack.\n\n")
			code = 1
			return false, nil
		}
		if d == nil {
			fmt.Fprintf(s.stderr, "libxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain %d:Non-existant domain\n"+
				"libxl: error: libxl_domain.c:1137:domain_destroy_callback: Domain %d:Unable to destroy guest\n"+
				"libxl: error: libxl_domain.c:1064:domain_destroy_cb: Domain %d:Destruction of domain failed\n"+
				"destroy failed (rc=-21)\n", id, id, id)
			code = 1
			return false, nil
		}
		h.destroy(d, s.now())
		return true, nil
	})
	return code
}

func (s *sim) domid(args []string) int {
	if len(args) != 1 {
		return s.usage("domid")
	}
	code := 0
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		if args[0] == "Domain-0" {
			fmt.Fprintln(s.stdout, 0)
			return false, nil
		}
		for _, d := range h.Domains {
			if h.visibleName(d) == args[0] {
				fmt.Fprintln(s.stdout, d.DomID)
				return false, nil
			}
		}
		fmt.Fprintf(s.stderr, "Can't get domid of domain name '%s', maybe this domain does not exist.\n", args[0])
		code = 1
		return false, nil
	})
	return code
}

func (s *sim) pause(pause bool, args []string) int {
	if len(args) != 1 {
		return s.usage("pause")
	}
	code := 0
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		_, d, ok := s.findOrFail(h, args[0])
		if !ok {
			code = 1
			return false, nil
		}
		if d != nil && !d.dying() {
			d.Paused = pause
			if !pause && d.TargetMiB > 0 {
				// The balloon driver acts on a target set while paused once it runs.
				d.MemMiB = d.ballooned(h)
			}
		}
		return true, nil
	})
	return code
}

// memSet is `xl mem-set DOM SIZE`: SIZE as xl's parse_mem_size_kb reads it (a number with an
// optional b/k/m/g/t suffix; no suffix means MiB). The simulated guest has a balloon driver
// that reaches the target at once while it runs (a real one takes a moment); a paused one
// reaches it when unpaused. Growing is limited by the host's free memory, as Xen's allocator
// limits a real balloon.
func (s *sim) memSet(args []string) int {
	if len(args) != 2 {
		return s.usage("mem-set")
	}
	kib, ok := parseMemSizeKiB(args[1])
	if !ok {
		fmt.Fprintf(s.stderr, "invalid memory size: %s\n", args[1])
		return 1
	}
	code := 0
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		_, d, ok := s.findOrFail(h, args[0])
		if !ok {
			code = 1
			return false, nil
		}
		if d == nil {
			return false, nil // Domain-0: not simulated
		}
		mib := (kib + 1023) / 1024
		if d.MaxMemMiB > 0 && mib > d.MaxMemMiB {
			// libxl_set_memory_target refuses a target above static max.
			// Real xl 4.17's words (testdata/real-lab/mem-set-above-maxmem.stderr.txt).
			fmt.Fprintf(s.stderr, "libxl: error: libxl_mem.c:278:libxl_set_memory_target: Domain %d:memory_dynamic_max must be less than or equal to memory_static_max\n\ncannot set domid %d dynamic max memory to : %s\n", d.DomID, d.DomID, args[1])
			code = 1
			return false, nil
		}
		d.TargetMiB = mib
		if !d.Paused && !d.Shutdown && !d.dying() {
			d.MemMiB = d.ballooned(h)
		}
		return true, nil
	})
	return code
}

// ballooned is the memory a running guest holds once its balloon driver has acted on its
// target: the target, or as much of it as the host's free memory allows.
func (d *domain) ballooned(h *host) int64 {
	if d.TargetMiB <= d.MemMiB {
		return d.TargetMiB
	}
	if grow := d.TargetMiB - d.MemMiB; grow > h.freeMiB() {
		return d.MemMiB + h.freeMiB()
	}
	return d.TargetMiB
}

// parseMemSizeKiB is xl's parse_mem_size_kb.
func parseMemSizeKiB(v string) (int64, bool) {
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(v[:i], 10, 64)
	if err != nil || len(v)-i > 1 {
		return 0, false
	}
	suffix := ""
	if i < len(v) {
		suffix = strings.ToLower(v[i:])
	}
	switch suffix {
	case "t":
		return n << 30, true
	case "g":
		return n << 20, true
	case "", "m":
		return n << 10, true
	case "k":
		return n, true
	case "b":
		return n >> 10, true
	}
	return 0, false
}

// domainNode splits /local/domain/<id>/<rest> into the listed domain and <rest>.
func (h *host) domainNode(path string) (*domain, string) {
	rest, ok := strings.CutPrefix(path, "/local/domain/")
	if !ok {
		return nil, ""
	}
	idText, sub, _ := strings.Cut(rest, "/")
	id, err := strconv.Atoi(idText)
	if err != nil {
		return nil, ""
	}
	d := h.byID(id)
	if d == nil || d.dying() {
		return nil, ""
	}
	return d, sub
}

// xenstoreWrite is `xenstore-write [-R] [-s] path value…`, all in one transaction.
func (s *sim) xenstoreWrite(args []string) int {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-R", "-s":
		default:
			fmt.Fprintf(s.stderr, "Usage: xenstore-write [-h] [-s] [-R] key value [...]\n")
			return 2
		}
		args = args[1:]
	}
	if len(args) == 0 || len(args)%2 != 0 {
		fmt.Fprintf(s.stderr, "Usage: xenstore-write [-h] [-s] [-R] key value [...]\n")
		return 2
	}
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		for i := 0; i < len(args); i += 2 {
			if d, sub := h.domainNode(args[i]); d != nil && sub != "" {
				if d.Xenstore == nil {
					d.Xenstore = map[string]string{}
				}
				d.Xenstore[sub] = args[i+1]
			}
		}
		return true, nil
	})
	return 0
}

// xenstoreRead is `xenstore-read [-R] [-s] path…`, one value per line.
func (s *sim) xenstoreRead(args []string) int {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		args = args[1:]
	}
	code := 0
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		for _, p := range args {
			d, sub := h.domainNode(p)
			v, ok := "", false
			if d != nil {
				v, ok = d.Xenstore[sub]
			}
			if !ok {
				fmt.Fprintf(s.stderr, "couldn't read path %s\n", p)
				code = 1
				return false, nil
			}
			fmt.Fprintln(s.stdout, v)
		}
		return false, nil
	})
	return code
}

func (s *sim) simInit(args []string) int {
	now := s.now()
	h := defaultHost(now)
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			fmt.Fprintf(s.stderr, "sim-init: want key=value, got %q\n", a)
			return 2
		}
		var err error
		switch k {
		case "total_memory":
			h.TotalMiB, err = strconv.ParseInt(v, 10, 64)
		case "dom0_memory":
			h.Dom0MiB, err = strconv.ParseInt(v, 10, 64)
		case "nr_cpus":
			h.NrCPUs, err = strconv.Atoi(v)
		case "xen_version":
			maj, rest, _ := strings.Cut(v, ".")
			min := rest
			extra := ""
			if i := strings.IndexAny(rest, ".-"); i >= 0 {
				min, extra = rest[:i], rest[i:]
			}
			if h.XenMajor, err = strconv.Atoi(maj); err == nil {
				h.XenMinor, err = strconv.Atoi(min)
				h.XenExtra = extra
			}
		case "bridges":
			h.Bridges = nil
			for _, b := range strings.Split(v, ",") {
				if b != "" {
					h.Bridges = append(h.Bridges, b)
				}
			}
		case "host":
			h.Name = v
		default:
			err = fmt.Errorf("unknown key")
		}
		if err != nil {
			fmt.Fprintf(s.stderr, "sim-init: %s: %v\n", a, err)
			return 2
		}
	}
	err := s.store.locked(now, func(old *host) (bool, error) {
		*old = *h
		return true, nil
	})
	if err != nil {
		fmt.Fprintf(s.stderr, "xlsim: %v\n", err)
		return 1
	}
	return 0
}

func (s *sim) simKnob(args []string) int {
	code := 0
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		for _, a := range args {
			if err := h.Knobs.set(a); err != nil {
				fmt.Fprintf(s.stderr, "sim-knob: %s: %v\n", a, err)
				code = 2
				return false, nil
			}
		}
		return true, nil
	})
	return code
}

func (k *knobs) set(arg string) error {
	key, v, ok := strings.Cut(arg, "=")
	if !ok {
		return fmt.Errorf("want key=value")
	}
	dur := func() (duration, error) {
		d, err := time.ParseDuration(v)
		return duration(d), err
	}
	var err error
	switch {
	case strings.HasPrefix(key, "delay."):
		var d duration
		if d, err = dur(); err == nil {
			if k.Delays == nil {
				k.Delays = map[string]duration{}
			}
			k.Delays[strings.TrimPrefix(key, "delay.")] = d
		}
	case strings.HasPrefix(key, "fail."):
		mode, count, _ := strings.Cut(v, ":")
		n := 1
		switch {
		case count == "*":
			n = -1
		case count != "":
			n, err = strconv.Atoi(count)
		}
		if mode != "error" && mode != "nomem" && mode != "abort" && mode != "hang" && mode != "none" {
			return fmt.Errorf("mode must be error, nomem, abort, hang or none")
		}
		if k.Failures == nil {
			k.Failures = map[string]*failure{}
		}
		cmd := strings.TrimPrefix(key, "fail.")
		if mode == "none" {
			delete(k.Failures, cmd)
		} else {
			k.Failures[cmd] = &failure{Mode: mode, Count: n}
		}
	case key == "ack_timeout":
		k.AckTimeout, err = dur()
	case key == "shutdown_delay":
		k.ShutdownDelay, err = dur()
	case key == "dying_time":
		k.DyingTime, err = dur()
	case key == "dying_name":
		if v != "keep" && v != "null" {
			return fmt.Errorf("want keep or null")
		}
		k.DyingName = v
	case key == "guest_default":
		if !guestBehaviours[v] {
			return fmt.Errorf("want obey, ignore, ack or nopv")
		}
		k.GuestDefault = v
	case key == "autoballoon":
		k.Autoballoon = v == "1"
	case key == "check_disks":
		k.CheckDisks = v == "1"
	case key == "guest_boot":
		k.GuestBoot, err = dur()
	case key == "guest_agent":
		k.GuestAgent = v == "1"
	default:
		return fmt.Errorf("unknown knob")
	}
	return err
}

func (s *sim) simGuest(args []string) int {
	if len(args) < 2 {
		fmt.Fprint(s.stderr, "usage: sim-guest DOM poweroff|reboot|crash|watchdog|suspend | sim-guest DOM behave obey|ignore|ack|nopv\n")
		return 2
	}
	code := 0
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		_, d, ok := s.findOrFail(h, args[0])
		if !ok || d == nil || d.dying() {
			if ok {
				fmt.Fprintf(s.stderr, "sim-guest: domain %s is not running\n", args[0])
			}
			code = 1
			return false, nil
		}
		if args[1] == "behave" {
			if len(args) != 3 || !guestBehaviours[args[2]] {
				fmt.Fprint(s.stderr, "sim-guest: behave obey|ignore|ack|nopv\n")
				code = 2
				return false, nil
			}
			d.Guest = args[2]
			return true, nil
		}
		reason, ok := reasonNames[args[1]]
		if !ok {
			fmt.Fprintf(s.stderr, "sim-guest: unknown event %q\n", args[1])
			code = 2
			return false, nil
		}
		if d.Shutdown {
			fmt.Fprintf(s.stderr, "sim-guest: domain %s is already shut down\n", args[0])
			code = 1
			return false, nil
		}
		d.stop(reason, s.now())
		h.tick(s.now()) // a monitor, if any, acts at once
		return true, nil
	})
	return code
}

func (s *sim) simKillMonitors() int {
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		for _, d := range h.Domains {
			d.Monitored = false
		}
		return true, nil
	})
	return 0
}

func (s *sim) simDump() int {
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		sort.Slice(h.Domains, func(i, j int) bool { return h.Domains[i].DomID < h.Domains[j].DomID })
		out, _ := json.MarshalIndent(h, "", "  ")
		fmt.Fprintln(s.stdout, string(out))
		return false, nil
	})
	return 0
}
