package xlsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

type testHost struct {
	t   *testing.T
	dir string
}

func newHost(t *testing.T, init ...string) *testHost {
	h := &testHost{t: t, dir: t.TempDir()}
	h.ok(append([]string{"sim-init"}, init...)...)
	return h
}

func (h *testHost) xl(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(h.dir, args, &out, &errb)
	return code, out.String(), errb.String()
}

func (h *testHost) ok(args ...string) string {
	h.t.Helper()
	code, out, errs := h.xl(args...)
	if code != 0 {
		h.t.Fatalf("xl %v: exit %d: %s", args, code, errs)
	}
	return out
}

func (h *testHost) cfg(name string, lines ...string) string {
	h.t.Helper()
	body := fmt.Sprintf("name = %q\nmemory = 256\nbootloader = \"pygrub\"\ndisk = [ \"format=raw,vdev=xvda,access=rw,target=/dev/vg0/%s\" ]\n", name, name)
	body += strings.Join(lines, "\n") + "\n"
	path := filepath.Join(h.t.TempDir(), name+".cfg")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return path
}

// xl's list_domains row format, "%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f".
var rowRE = regexp.MustCompile(`^(.{40,}) ([ \d]{5,}) ([ \d]{5,}) ([ \d]{5,})     ([r-][b-][p-][s-][-rscwS?][d-])  ([ \d.]{8,})$`)

func TestListFormat(t *testing.T) {
	h := newHost(t, "nr_cpus=4", "dom0_memory=2048")
	h.ok("create", "-q", "-e", h.cfg("a-name-that-is-much-longer-than-forty-characters-x"))
	h.ok("create", "-q", "-e", "-p", h.cfg("short"))
	out := h.ok("list")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] != "Name                                        ID   Mem VCPUs\tState\tTime(s)" {
		t.Errorf("header %q", lines[0])
	}
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	for _, l := range lines[1:] {
		if !rowRE.MatchString(l) {
			t.Errorf("row does not follow xl's format: %q", l)
		}
	}
	if !strings.HasPrefix(lines[1], "Domain-0                                     0  2048     4     r-----  ") {
		t.Errorf("dom0 row %q", lines[1])
	}
	if !strings.Contains(lines[3], "short                                        2   256     1     --p---") {
		t.Errorf("paused row %q", lines[3])
	}
	h.ok("unpause", "short")
	if out := h.ok("list", "short"); !strings.Contains(out, "-b----") || strings.Contains(out, "Domain-0") {
		t.Errorf("list short:\n%s", out)
	}
}

func TestInfoFormat(t *testing.T) {
	h := newHost(t, "total_memory=8192", "dom0_memory=1024", "xen_version=4.17.7")
	out := h.ok("info")
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if len(l) < 25 || l[23:25] != ": " && l[23:24] != ":" {
			t.Errorf("key not padded to 23 columns: %q", l)
		}
	}
	if !strings.Contains(out, "free_memory            : 7168\n") || !strings.Contains(out, "xen_version            : 4.17.7\n") {
		t.Errorf("info:\n%s", out)
	}
	if got := h.ok("info", "free_memory"); got != "7168\n" {
		t.Errorf("info free_memory = %q", got)
	}
	if got := h.ok("info", "xen_m"); got != "4\n17\n" {
		t.Errorf("prefix match = %q", got)
	}
}

func TestListLongJSON(t *testing.T) {
	h := newHost(t)
	h.ok("create", "-q", "-e", h.cfg("vm-j", `vif = [ "mac=00:16:3e:00:00:09,bridge=xenbr0", "bridge=xenbr0" ]`, `on_crash = "rename-restart"`, `vfb = [ "vnc=1,vnclisten=127.0.0.1" ]`))
	out := h.ok("list", "-l")
	if !strings.HasPrefix(out, "[\n    {\n        \"domid\": 1,\n        \"config\": {\n            \"c_info\": {\n") {
		t.Errorf("not in yajl's layout:\n%s", out)
	}
	var v []struct {
		DomID  int `json:"domid"`
		Config struct {
			Nics []struct {
				MAC string `json:"mac"`
			} `json:"nics"`
			Vfbs    []any  `json:"vfbs"`
			OnCrash string `json:"on_crash"`
			OnPower string `json:"on_poweroff"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	c := v[0].Config
	if len(c.Nics) != 2 || c.Nics[0].MAC != "00:16:3e:00:00:09" || !strings.HasPrefix(c.Nics[1].MAC, "00:16:3e:") {
		t.Errorf("nics %+v (a vif without mac gets a random 00:16:3e one)", c.Nics)
	}
	if c.OnCrash != "restart_rename" || c.OnPower != "" || len(c.Vfbs) != 1 {
		t.Errorf("config %+v", c)
	}
	if code, _, errs := h.xl("list", "-l", "nope"); code != 1 || errs != "nope is an invalid domain identifier (rc=-6)\n" {
		t.Errorf("list -l nope: %d %q", code, errs)
	}
	if code, _, errs := h.xl("list", "42"); code != 1 || errs != "Error: Domain '42' does not exist.\n" {
		t.Errorf("list 42: %d %q", code, errs)
	}
}

func TestCreateOptions(t *testing.T) {
	h := newHost(t, "total_memory=2048", "dom0_memory=1024")
	path := h.cfg("vm-o")
	// key=value arguments override the file, as in xl.
	if code, _, errs := h.xl("create", path, "memory=64", "-e"); code != 0 {
		t.Fatalf("create: %s", errs)
	}
	if out := h.ok("list", "vm-o"); !strings.Contains(out, "vm-o                                         1    64") {
		t.Errorf("override ignored:\n%s", out)
	}
	if code, _, errs := h.xl("create", path, "-e"); code != 3 || !strings.Contains(errs, "Parsing config from "+path) {
		t.Errorf("duplicate without -q: %d %q", code, errs)
	}
	// The failed create used up domid 2, as libxl does.
	h.ok("destroy", "vm-o")
	h.ok("create", "-q", "-e", path)
	if out := h.ok("domid", "vm-o"); out != "3\n" {
		t.Errorf("domid %q", out)
	}
	if code, out, _ := h.xl("-N", "create", path); code != 0 || !strings.Contains(out, `"name": "vm-o"`) {
		t.Errorf("dry run: %d %s", code, out)
	}
	if code, _, errs := h.xl("domid", "ghost"); code != 1 || !strings.Contains(errs, "Can't get domid of domain name 'ghost'") {
		t.Errorf("domid ghost: %d %q", code, errs)
	}
	if code, _, errs := h.xl("destroy", "0"); code != 1 || !strings.Contains(errs, "Not destroying domain 0") {
		t.Errorf("destroy 0: %d %q", code, errs)
	}
	if code, _, _ := h.xl("frobnicate"); code != 1 {
		t.Errorf("unknown command: %d", code)
	}
	if code, _, _ := h.xl("create", "-Z"); code != 2 {
		t.Errorf("bad option: %d", code)
	}
}

func TestBadConfigs(t *testing.T) {
	h := newHost(t)
	for body, want := range map[string]string{
		"name = \"x\"\nmemory = \n":              "config parsing error near",
		"memory = 256\n":                         "Domain name must be specified.",
		"name = \"x\"\ntype = \"kvm\"\n":         "Invalid domain type kvm.",
		"name = \"x\"\nuuid = \"nope\"\n":        "Failed to parse UUID: nope",
		"name = \"x\"\ndisk = [ \"/x,raw\" ]\n":  "config parsing error in disk specification",
		"name = \"x\"\nvif = [ \"evil\" ]\n":     "config parsing error in vif",
		"name = \"x\"\non_crash = \"explode\"\n": `Unknown on_crash "explode" specified`,
	} {
		path := filepath.Join(t.TempDir(), "c.cfg")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errs := h.xl("create", "-q", "-e", path)
		if code != 1 || !strings.Contains(errs, want) {
			t.Errorf("%q: exit %d stderr %q, want 1 and %q", body, code, errs, want)
		}
	}
	if code, _, errs := h.xl("create", "/nope.cfg"); code != 3 || !strings.Contains(errs, "Failed to read config file: /nope.cfg: No such file or directory") {
		t.Errorf("missing file: %d %q", code, errs)
	}
}

func TestMonitoredRebootRestartsWithNewDomid(t *testing.T) {
	h := newHost(t)
	h.ok("sim-knob", "shutdown_delay=0s")
	h.ok("create", "-q", h.cfg("vm-m")) // monitored
	code, _, errs := h.xl("reboot", "-w", "vm-m")
	if code != 0 || !strings.Contains(errs, "Rebooting domain 1\nWaiting for 1 domains\nDomain 1 has been") {
		t.Fatalf("reboot -w: %d %q", code, errs)
	}
	if out := h.ok("domid", "vm-m"); out != "2\n" {
		t.Errorf("after a monitored reboot the domain should run again under a new domid: %q", out)
	}
	// Shutdown -w on an -e domain: it stays shut down and -w returns on the shutdown.
	h.ok("create", "-q", "-e", h.cfg("vm-e"))
	code, _, errs = h.xl("shutdown", "-w", "vm-e")
	if code != 0 || !strings.Contains(errs, "has been shut down, reason code 0") {
		t.Fatalf("shutdown -w: %d %q", code, errs)
	}
	if out := h.ok("list", "vm-e"); !strings.Contains(out, "--ps--") {
		t.Errorf("not left shut down:\n%s", out)
	}
}

func TestShutdownTimesOutAndKnobs(t *testing.T) {
	h := newHost(t)
	h.ok("sim-knob", "ack_timeout=200ms", "guest_default=ignore")
	h.ok("create", "-q", "-e", h.cfg("vm-i"))
	start := time.Now()
	code, _, errs := h.xl("shutdown", "vm-i")
	if code != 1 || errs != "Shutting down domain 1\nlibxl: error: libxl_domain.c:854:pvcontrol_cb: guest didn't acknowledge control request: -9\nshutdown failed (rc=-9)\n" {
		t.Errorf("shutdown: %d %q", code, errs)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("did not wait for the acknowledgement: %v", took)
	}
	for _, bad := range []string{"nope=1", "delay.create=soon", "fail.create=explode", "guest_default=maybe", "novalue"} {
		if code, _, _ := h.xl("sim-knob", bad); code != 2 {
			t.Errorf("sim-knob %s: exit %d", bad, code)
		}
	}
	if code, _, _ := h.xl("sim-guest", "vm-i", "explode"); code != 2 {
		t.Errorf("sim-guest unknown event: %d", code)
	}
	if out := h.ok("sim-dump"); !strings.Contains(out, `"name": "vm-i"`) {
		t.Errorf("dump:\n%s", out)
	}
}

func TestFailureCountsAndStateDirRequired(t *testing.T) {
	h := newHost(t)
	h.ok("sim-knob", "fail.list=error:2")
	for i := 0; i < 2; i++ {
		if code, _, _ := h.xl("list"); code != 3 {
			t.Errorf("injected failure %d: exit %d", i, code)
		}
	}
	h.ok("list")
	var out, errb bytes.Buffer
	if code := run("", []string{"list"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), StateDirEnv) {
		t.Errorf("no state dir: %d %q", code, errb.String())
	}
}
