package xlsim

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The simulated guests' side of the host: what a guest agent inside them writes to xenstore and
// what dom0's neighbour table learns from their traffic. A guest does what the lab's real guest
// (hack/lab/guest/init) does with the same kernel command line words: with xcagent (or the knob
// guest_agent=1, unless the guest has xcnoagent) it publishes
// a guest agent's keys (attr/PVAddons, attr/vif/<n>/ipv4/0, data/os_name, data/os_uname) once
// it has booted; with xcnet it talks to dom0 on each NIC's bridge, so dom0's neighbour table
// has its address. A guest boots in the knob guest_boot (default 1 s) after xl create. Its
// address on NIC n is 10.<the last three bytes of the NIC's MAC>.

// simNIC is one vif of a simulated domain.
type simNIC struct {
	Index  int    `json:"index"`
	MAC    string `json:"mac"`
	Bridge string `json:"bridge"`
}

func simNICs(vifs []map[string]string) []simNIC {
	var out []simNIC
	for i, v := range vifs {
		b := v["bridge"]
		if b == "" {
			b = "xenbr0"
		}
		out = append(out, simNIC{Index: i, MAC: strings.ToLower(v["mac"]), Bridge: b})
	}
	return out
}

// vncPort is where QEMU's VNC server of domid listens (xl's vncunused picks the first free
// port from 5900; domids are unique, so 5900+domid is free).
func vncPort(vnc bool, domid int) int {
	if !vnc {
		return 0
	}
	return 5900 + domid
}

const defaultGuestBoot = time.Second

func (h *host) guestBoot() time.Duration {
	if h.Knobs.GuestBoot > 0 {
		return time.Duration(h.Knobs.GuestBoot)
	}
	return defaultGuestBoot
}

func (d *domain) flag(word string) bool { return slices.Contains(strings.Fields(d.Cmdline), word) }

// up: the guest has booted and runs.
func (h *host) up(d *domain, now time.Time) bool {
	return !d.dying() && !d.Shutdown && !now.Before(d.Created.Add(h.guestBoot()))
}

// simIP is the guest's address on a NIC with this MAC: 10.x.y.z from its last three bytes.
func simIP(mac string) string {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return ""
	}
	return fmt.Sprintf("10.%d.%d.%d", hw[3], hw[4], hw[5])
}

// tree is the domain's xenstore tree, paths relative to /local/domain/<domid>/.
func (h *host) tree(d *domain, now time.Time) map[string]string {
	t := map[string]string{"name": d.Name, "domid": strconv.Itoa(d.DomID), "vm": "/vm/" + d.UUID}
	for _, n := range d.NICs {
		t[fmt.Sprintf("device/vif/%d/mac", n.Index)] = n.MAC
	}
	if d.VNCPort > 0 {
		t["console/vnc-port"] = strconv.Itoa(d.VNCPort)
	}
	if (d.flag("xcagent") || h.Knobs.GuestAgent && !d.flag("xcnoagent")) && h.up(d, now) {
		for k, v := range map[string]string{"MajorVersion": "1", "MinorVersion": "0", "MicroVersion": "0", "BuildVersion": "xlsim"} {
			t["attr/PVAddons/"+k] = v
		}
		t["data/os_name"], t["data/os_uname"] = "xlsim guest", "6.1.0-xlsim"
		for _, n := range d.NICs {
			if ip := simIP(n.MAC); ip != "" {
				t[fmt.Sprintf("attr/vif/%d/ipv4/0", n.Index)] = ip
			}
		}
	}
	for k, v := range d.Xenstore {
		t[k] = v
	}
	// Every ancestor of a node is a node too (a directory, value "").
	for k := range t {
		for i := strings.LastIndex(k, "/"); i > 0; i = strings.LastIndex(k[:i], "/") {
			if _, ok := t[k[:i]]; !ok {
				t[k[:i]] = ""
			}
		}
	}
	return t
}

// allNodes is every simulated node under /local/domain, by full path.
func (h *host) allNodes(now time.Time) map[string]string {
	all := map[string]string{}
	for _, d := range h.Domains {
		if d.dying() {
			continue
		}
		base := "/local/domain/" + strconv.Itoa(d.DomID)
		all[base] = ""
		for k, v := range h.tree(d, now) {
			all[base+"/"+k] = v
		}
	}
	return all
}

// sanitise quotes a value as xenstore-ls does (tools/xs-clients/xenstore_client.c).
func sanitise(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= ' ' && c <= '~' && c != '\\':
			b.WriteByte(c)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\\':
			b.WriteString(`\\`)
		case c < 010:
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

// xenstoreLs is `xenstore-ls -f path…`: every node below each path, parents first.
func (s *sim) xenstoreLs(args []string) int {
	flat := false
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		if args[0] != "-f" {
			fmt.Fprintf(s.stderr, "Usage: xenstore-ls [-h] [-f] [-p] [path]\n")
			return 1
		}
		flat = true
		args = args[1:]
	}
	if !flat || len(args) == 0 {
		fmt.Fprintf(s.stderr, "xlsim: xenstore-ls is simulated with -f and a path only\n")
		return 1
	}
	code := 0
	_ = s.store.locked(s.now(), func(h *host) (bool, error) {
		all := h.allNodes(s.now())
		for _, root := range args {
			root = strings.TrimSuffix(root, "/")
			if _, ok := all[root]; !ok && root != "/local/domain" {
				fmt.Fprintf(s.stderr, "xenstore-ls: xs_directory (%s): No such file or directory\n", root)
				code = 1
				return false, nil
			}
			var paths []string
			for p := range all {
				if strings.HasPrefix(p, root+"/") {
					paths = append(paths, p)
				}
			}
			slices.SortFunc(paths, func(a, b string) int { return slices.Compare(strings.Split(a, "/"), strings.Split(b, "/")) })
			for _, p := range paths {
				fmt.Fprintf(s.stdout, "%s = \"%s\"\n", p, sanitise(all[p]))
			}
		}
		return false, nil
	})
	return code
}

// watchPoll is how often the simulated watch tools look at the host. Each look that finds the
// state file changed decodes it, and during a burst it changes all the time: a real xenstored
// watch costs its host nothing, so the simulated one must not cost the bench's CPU much either.
const watchPoll = 500 * time.Millisecond

// watchLoop calls look with the host every watchPoll, but only when the state file changed or
// a guest's boot is due (the simulated host changes at those moments only), until look says
// stop. It reads the state without the lock and applies no timed transition: the file is
// replaced by rename, so a read sees one whole state, and the watch tools only read (the xl
// commands that run anyway apply the transitions). It is how the simulated watch tools see the
// host change without a daemon.
func (s *sim) watchLoop(look func(h *host, now time.Time) (stop bool)) {
	var lastMod time.Time
	var lastSize int64 = -1
	var due time.Time
	first := true
	path := filepath.Join(s.store.dir, stateFile)
	for {
		fi, err := os.Stat(path)
		now := s.now()
		changed := err == nil && (!fi.ModTime().Equal(lastMod) || fi.Size() != lastSize)
		if first || changed || (!due.IsZero() && !now.Before(due)) {
			first = false
			if err == nil {
				lastMod, lastSize = fi.ModTime(), fi.Size()
			}
			h, lerr := s.store.load(now)
			if lerr == nil {
				if look(h, now) {
					return
				}
				due = time.Time{}
				for _, d := range h.Domains {
					if b := d.Created.Add(h.guestBoot()); b.After(now) && (due.IsZero() || b.Before(due)) {
						due = b
					}
				}
			}
		}
		s.sleep(watchPoll)
	}
}

// xenstoreWatch is `xenstore-watch [-n NR] path…`: each path once when its watch is set up,
// then the path of each node at or below a watched path that changes, until killed.
func (s *sim) xenstoreWatch(args []string) int {
	limit := -1
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch {
		case args[0] == "-n" && len(args) > 1:
			n, err := strconv.Atoi(args[1])
			if err != nil {
				fmt.Fprintf(s.stderr, "Usage: xenstore-watch [-h] [-n NR] key\n")
				return 1
			}
			limit = n
			args = args[2:]
		default:
			fmt.Fprintf(s.stderr, "Usage: xenstore-watch [-h] [-n NR] key\n")
			return 1
		}
	}
	if len(args) == 0 {
		fmt.Fprintf(s.stderr, "Usage: xenstore-watch [-h] [-n NR] key\n")
		return 1
	}
	events := 0
	emit := func(p string) bool {
		fmt.Fprintln(s.stdout, p)
		events++
		return limit >= 0 && events >= limit
	}
	for _, w := range args {
		if emit(w) {
			return 0
		}
	}
	var last map[string]string
	s.watchLoop(func(h *host, now time.Time) bool {
		cur := h.allNodes(now)
		if last != nil {
			var fired []string
			for p, v := range cur {
				if old, ok := last[p]; !ok || old != v {
					fired = append(fired, p)
				}
			}
			for p := range last {
				if _, ok := cur[p]; !ok {
					fired = append(fired, p)
				}
			}
			slices.Sort(fired)
			for _, p := range fired {
				for _, w := range args {
					if p == w || strings.HasPrefix(p, strings.TrimSuffix(w, "/")+"/") {
						if emit(p) {
							return true
						}
						break
					}
				}
			}
		}
		last = cur
		return false
	})
	return 0
}

type simNeighbor struct {
	Dst    string   `json:"dst"`
	Dev    string   `json:"dev"`
	LLAddr string   `json:"lladdr"`
	State  []string `json:"state"`
}

// neighbors is dom0's neighbour table: one entry per NIC of each booted xcnet guest.
func (h *host) neighbors(now time.Time) []simNeighbor {
	var out []simNeighbor
	for _, d := range h.Domains {
		if !d.flag("xcnet") || !h.up(d, now) {
			continue
		}
		for _, n := range d.NICs {
			if ip := simIP(n.MAC); ip != "" {
				out = append(out, simNeighbor{Dst: ip, Dev: n.Bridge, LLAddr: n.MAC, State: []string{"REACHABLE"}})
			}
		}
	}
	return out
}

// ip is iproute2's `ip -j neigh show` and `ip monitor neigh` (which prints text, as
// iproute2 6.1 does even with -j).
func (s *sim) ip(args []string) int {
	jsonOut := false
	for len(args) > 0 && (args[0] == "-j" || args[0] == "-json") {
		jsonOut = true
		args = args[1:]
	}
	switch {
	case len(args) >= 1 && args[0] == "neigh" && (len(args) == 1 || args[1] == "show"):
		var out []simNeighbor
		_ = s.store.locked(s.now(), func(h *host) (bool, error) {
			out = h.neighbors(s.now())
			return false, nil
		})
		if !jsonOut {
			for _, n := range out {
				fmt.Fprintf(s.stdout, "%s dev %s lladdr %s %s\n", n.Dst, n.Dev, n.LLAddr, strings.Join(n.State, " "))
			}
			return 0
		}
		if out == nil {
			out = []simNeighbor{}
		}
		b, _ := json.Marshal(out)
		fmt.Fprintf(s.stdout, "%s\n", b)
		return 0
	case len(args) == 2 && args[0] == "monitor" && args[1] == "neigh":
		last := map[string]simNeighbor{}
		s.watchLoop(func(h *host, now time.Time) bool {
			cur := map[string]simNeighbor{}
			for _, n := range h.neighbors(now) {
				cur[n.Dst+" "+n.Dev] = n
			}
			for k, n := range cur {
				if old, ok := last[k]; !ok || old.LLAddr != n.LLAddr {
					fmt.Fprintf(s.stdout, "%s dev %s lladdr %s REACHABLE \n", n.Dst, n.Dev, n.LLAddr)
				}
			}
			for k, n := range last {
				if _, ok := cur[k]; !ok {
					fmt.Fprintf(s.stdout, "Deleted %s dev %s lladdr %s STALE \n", n.Dst, n.Dev, n.LLAddr)
				}
			}
			last = cur
			return false
		})
		return 0
	}
	fmt.Fprintf(s.stderr, "xlsim: only `ip -j neigh show` and `ip monitor neigh` are simulated\n")
	return 1
}
