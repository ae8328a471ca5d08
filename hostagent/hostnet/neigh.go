// Package hostnet reads what dom0's network stack knows of its guests: the neighbour table
// (`ip -j neigh show`, iproute2), where a guest that has talked to dom0 on a bridge appears with
// its MAC and the address it used. It is the source of a clone's addresses when its guest runs
// no guest agent.
package hostnet

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/xenclone/xenclone/hostagent/command"
)

// Neighbor is one entry of the neighbour table that has a link-layer address.
type Neighbor struct {
	Addr netip.Addr
	// Dev is the interface the entry is on (a bridge such as xenbr0).
	Dev string
	// MAC is lowercase, colon-separated.
	MAC string
	// State is the entry's NUD states, e.g. [REACHABLE] or [STALE].
	State []string
}

// Table reads the neighbour table with `ip -j neigh show`.
type Table struct {
	Runner command.Runner
	// IP is the ip binary (default "ip").
	IP string
}

// Neighbors returns the entries that name a MAC (FAILED and INCOMPLETE ones do not).
func (t *Table) Neighbors(ctx context.Context) ([]Neighbor, error) {
	bin := t.IP
	if bin == "" {
		bin = "ip"
	}
	out, err := t.Runner.Run(ctx, bin, "-j", "neigh", "show")
	if err != nil {
		return nil, fmt.Errorf("ip -j neigh show: exit %d: %s", command.ExitCode(err), strings.TrimSpace(command.Stderr(err)))
	}
	return ParseNeighbors(out)
}

type neighJSON struct {
	Dst    string   `json:"dst"`
	Dev    string   `json:"dev"`
	LLAddr string   `json:"lladdr"`
	State  []string `json:"state"`
}

// ParseNeighbors decodes `ip -j neigh show`. Entries without a MAC, with an address or MAC that
// does not parse, or in state FAILED are left out; output that is not the tool's JSON array is
// an error.
func ParseNeighbors(out []byte) ([]Neighbor, error) {
	var raw []neighJSON
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("ip -j neigh show: not a JSON array of entries: %w", err)
	}
	var ns []Neighbor
	for _, e := range raw {
		if e.LLAddr == "" || slices.Contains(e.State, "FAILED") || slices.Contains(e.State, "INCOMPLETE") {
			continue
		}
		addr, err := netip.ParseAddr(e.Dst)
		if err != nil {
			continue
		}
		hw, err := net.ParseMAC(e.LLAddr)
		if err != nil || len(hw) != 6 {
			continue
		}
		ns = append(ns, Neighbor{Addr: addr, Dev: e.Dev, MAC: hw.String(), State: e.State})
	}
	return ns, nil
}

// Event is one line of `ip monitor neigh`: an entry that appeared or changed (with its MAC), or
// one that went away (Gone: deleted, or FAILED and so without a MAC).
type Event struct {
	Neighbor
	Gone bool
}

// ParseEvent decodes one line of `ip monitor neigh` (iproute2 prints it as text even with -j):
//
//	192.0.2.10 dev xenbr0 lladdr 00:16:3e:1a:b2:c3 REACHABLE
//	Deleted 192.0.2.10 dev xenbr0 lladdr 00:16:3e:1a:b2:c3 STALE
//	192.0.2.10 dev xenbr0 FAILED
//
// ok is false for lines that are no neighbour entry (the tool's other output).
func ParseEvent(line string) (ev Event, ok bool) {
	f := strings.Fields(line)
	if len(f) > 0 && f[0] == "Deleted" {
		ev.Gone = true
		f = f[1:]
	}
	if len(f) < 3 || f[1] != "dev" {
		return Event{}, false
	}
	addr, err := netip.ParseAddr(f[0])
	if err != nil {
		return Event{}, false
	}
	ev.Addr, ev.Dev = addr, f[2]
	for i := 3; i < len(f); i++ {
		switch {
		case f[i] == "lladdr" && i+1 < len(f):
			hw, err := net.ParseMAC(f[i+1])
			if err != nil || len(hw) != 6 {
				return Event{}, false
			}
			ev.MAC = hw.String()
			i++
		case f[i] == "FAILED" || f[i] == "INCOMPLETE":
			ev.State = append(ev.State, f[i])
			ev.Gone = true
		case isNUDState(f[i]):
			ev.State = append(ev.State, f[i])
		}
	}
	if ev.MAC == "" {
		ev.Gone = true
	}
	return ev, true
}

func isNUDState(s string) bool {
	switch s {
	case "REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP", "NONE":
		return true
	}
	return false
}

// Watch runs `ip monitor neigh` and calls onEvent for each entry that changes, until ctx ends or
// the tool exits (returned as an error).
func (t *Table) Watch(ctx context.Context, onEvent func(Event)) error {
	bin := t.IP
	if bin == "" {
		bin = "ip"
	}
	err := t.Runner.Stream(ctx, func(line string) {
		if ev, ok := ParseEvent(line); ok {
			onEvent(ev)
		}
	}, bin, "monitor", "neigh")
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("ip monitor neigh: exit %d: %s", command.ExitCode(err), strings.TrimSpace(command.Stderr(err)))
	}
	return fmt.Errorf("ip monitor neigh exited")
}
