package hostnet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// neigh-ci-machine.json is `ip -j neigh show` (iproute2 6.1) on the machine the project is
// built on: one STALE IPv4 entry and one FAILED IPv6 entry without a MAC.
func TestParseNeighborsCaptured(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "neigh-ci-machine.json"))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := ParseNeighbors(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 || ns[0].Addr.String() != "192.0.2.1" || ns[0].MAC != "02:fc:00:00:00:05" || ns[0].Dev != "eth0" {
		t.Fatalf("got %+v", ns)
	}
}

func TestParseNeighbors(t *testing.T) {
	in := `[{"dst":"192.0.2.10","dev":"xenbr0","lladdr":"00:16:3E:1A:B2:C3","state":["REACHABLE"]},
{"dst":"fe80::216:3eff:fe1a:b2c3","dev":"xenbr0","lladdr":"00:16:3e:1a:b2:c3","router":null,"state":["STALE"]},
{"dst":"192.0.2.11","dev":"xenbr0","state":["INCOMPLETE"]},
{"dst":"192.0.2.12","dev":"xenbr0","lladdr":"00:16:3e:00:00:01","state":["FAILED"]},
{"dst":"not-an-ip","dev":"xenbr0","lladdr":"00:16:3e:00:00:02","state":["STALE"]},
{"dst":"192.0.2.13","dev":"xenbr0","lladdr":"00:16:3e:00:00:03:04:05:06:07","state":["STALE"]}]`
	ns, err := ParseNeighbors([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 {
		t.Fatalf("want the two usable entries, got %+v", ns)
	}
	if ns[0].MAC != "00:16:3e:1a:b2:c3" || ns[0].Addr.String() != "192.0.2.10" || ns[1].Addr.String() != "fe80::216:3eff:fe1a:b2c3" {
		t.Fatalf("got %+v", ns)
	}
	for _, bad := range []string{"", "{}", "Object \"neigh\" is unknown", "[{"} {
		if _, err := ParseNeighbors([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	if ns, err := ParseNeighbors([]byte("[]")); err != nil || len(ns) != 0 {
		t.Errorf("empty table: %v %v", ns, err)
	}
}

func FuzzParseNeighbors(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "neigh-ci-machine.json")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`[{"dst":"192.0.2.10","dev":"xenbr0","lladdr":"00:16:3e:1a:b2:c3","state":["REACHABLE"]}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ns, err := ParseNeighbors(b)
		if err != nil {
			return
		}
		for _, n := range ns {
			if !n.Addr.IsValid() || len(n.MAC) != 17 {
				t.Fatalf("unusable entry returned: %+v", n)
			}
		}
	})
}

// monitor-ci-machine.txt is `ip monitor neigh` (iproute2 6.1) while an IPv4 and an IPv6 entry
// were added, one changed its MAC and both were deleted.
func TestParseEventCaptured(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "monitor-ci-machine.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		ev, ok := ParseEvent(line)
		if !ok {
			t.Fatalf("line %q not decoded", line)
		}
		evs = append(evs, ev)
	}
	if len(evs) != 7 {
		t.Fatalf("got %d events", len(evs))
	}
	if e := evs[0]; e.Gone || e.Addr.String() != "192.0.2.77" || e.MAC != "02:00:00:00:00:77" || e.Dev != "eth0" || e.State[0] != "REACHABLE" {
		t.Errorf("first: %+v", e)
	}
	if e := evs[2]; e.Gone || e.MAC != "02:00:00:00:00:78" {
		t.Errorf("changed: %+v", e)
	}
	for _, i := range []int{3, 4, 5, 6} {
		if !evs[i].Gone {
			t.Errorf("event %d (%+v) must be a removal", i, evs[i])
		}
	}
	for _, junk := range []string{"", "Deleted", "192.0.2.1", "x dev eth0", "192.0.2.1 dev eth0 lladdr zz STALE"} {
		if _, ok := ParseEvent(junk); ok {
			t.Errorf("%q decoded", junk)
		}
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add("192.0.2.77 dev eth0 lladdr 02:00:00:00:00:77 REACHABLE ")
	f.Add("Deleted fd00::77 dev eth0 FAILED ")
	f.Fuzz(func(t *testing.T, line string) {
		ev, ok := ParseEvent(line)
		if !ok {
			return
		}
		if !ev.Addr.IsValid() || (!ev.Gone && len(ev.MAC) != 17) {
			t.Fatalf("bad event from %q: %+v", line, ev)
		}
	})
}

// neigh-lab.json is `ip -j neigh show dev xenbr0` in the lab's dom0 (iproute2 of Debian 12)
// after two guests pinged it (hack/lab/guest/init xcnet): with a dev filter, entries name no
// dev.
func TestParseNeighborsLab(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "neigh-lab.json"))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := ParseNeighbors(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 || ns[0].Addr.String() != "192.0.2.20" || ns[1].Addr.String() != "192.0.2.21" || ns[0].MAC == "" || ns[0].State[0] != "REACHABLE" {
		t.Fatalf("got %+v", ns)
	}
}
