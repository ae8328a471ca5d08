package xen

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "xl", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseListLab(t *testing.T) {
	doms, err := ParseList(fixture(t, "list-lab.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := []DomainInfo{
		{Name: "Domain-0", ID: 0, MemoryMiB: 1024, VCPUs: 2, State: RunState{Running: true}, CPUSeconds: 38.4},
		{Name: "lab-domu1", ID: 1, MemoryMiB: 128, VCPUs: 1, State: RunState{Blocked: true}, CPUSeconds: 2.1},
	}
	if !reflect.DeepEqual(doms, want) {
		t.Fatalf("got %+v\nwant %+v", doms, want)
	}
}

func TestParseListLongNames(t *testing.T) {
	doms, err := ParseList(fixture(t, "list-long-names.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]DomainInfo{}
	for _, d := range doms {
		got[d.Name] = d
	}
	long := got["xc-team-a-web-01-3f2504e0-4f89-41d3-9a0c-0305e82c3301"]
	if long.ID != 7 || long.MemoryMiB != 1024 || long.VCPUs != 2 || !long.State.Blocked || long.CPUSeconds != 57.3 {
		t.Errorf("long name row: %+v", long)
	}
	if d := got["exactly-forty-characters-long-name-00001"]; d.ID != 8 || d.State.Phase() != PhaseActive {
		t.Errorf("40-char row: %+v", d)
	}
	if d := got["x"]; d.ID != 32751 || d.VCPUs != 16 || d.CPUSeconds != 99999.9 {
		t.Errorf("max domid row: %+v", d)
	}
	if d, ok := got["name with spaces 5 7 -b----"]; !ok || d.ID != 9 {
		t.Errorf("name with spaces: %+v (all: %v)", d, got)
	}
	if len(doms) != 5 {
		t.Errorf("%d rows", len(doms))
	}
}

func TestParseListStates(t *testing.T) {
	doms, err := ParseList(fixture(t, "list-states.txt"))
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		phase  Phase
		reason ShutdownReason
		step   Step // with the default policy destroy/restart/destroy
	}
	wants := map[string]want{
		"Domain-0":          {PhaseActive, "", StepNone},
		"vm-running":        {PhaseActive, "", StepNone},
		"vm-blocked":        {PhaseActive, "", StepNone},
		"vm-paused":         {PhasePaused, "", StepNone},
		"vm-poweroff":       {PhaseShutdown, ReasonPoweroff, StepDestroy},
		"vm-rebooted":       {PhaseShutdown, ReasonReboot, StepRestart},
		"vm-crashed":        {PhaseShutdown, ReasonCrash, StepDestroy},
		"vm-watchdog":       {PhaseShutdown, ReasonWatchdog, StepDestroy},
		"vm-dying":          {PhaseDying, "", StepWait},
		"(null)":            {PhaseDying, ReasonPoweroff, StepWait},
		"vm-unknown-reason": {PhaseShutdown, ReasonUnknown, StepDestroy},
	}
	if len(doms) != len(wants) {
		t.Fatalf("%d rows, want %d", len(doms), len(wants))
	}
	for _, d := range doms {
		w, ok := wants[d.Name]
		if !ok {
			t.Errorf("unexpected row %q", d.Name)
			continue
		}
		if d.State.Phase() != w.phase || d.State.Reason != w.reason {
			t.Errorf("%s: phase %s reason %q, want %s %q", d.Name, d.State.Phase(), d.State.Reason, w.phase, w.reason)
		}
		if s := DecideStep(d.State, LifecyclePolicy{}); s != w.step {
			t.Errorf("%s: step %s, want %s", d.Name, s, w.step)
		}
	}
}

func TestParseListRejectsGarbage(t *testing.T) {
	for _, bad := range []string{
		"vm 1 2 3 -b---- x\n",        // time not a number
		"vm 1 2 3 -x---- 1.0\n",      // bad state letter
		"vm 1 2 3 -b--- 1.0\n",       // 5-letter state
		"vm -1 2 3 -b---- 1.0\n",     // negative id
		"1 2 3 -b---- 1.0\n",         // no name
		"Domain-0 0 1024 2 r-----\n", // no time
	} {
		if _, err := ParseList([]byte(bad)); err == nil {
			t.Errorf("%q: want error", bad)
		}
	}
	if doms, err := ParseList([]byte("Name                                        ID   Mem VCPUs\tState\tTime(s)\n")); err != nil || len(doms) != 0 {
		t.Errorf("header only: %v %v", doms, err)
	}
}

func TestParseStateRoundTrip(t *testing.T) {
	for _, s := range []string{"r-----", "-b----", "--p---", "---s--", "---sr-", "---sc-", "---ss-", "---sw-", "---sS-", "---s?-", "-----d", "--ps-d", "------"} {
		st, err := ParseState(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if st.String() != s {
			t.Errorf("%s -> %+v -> %s", s, st, st.String())
		}
	}
}

func TestParseListLongLab(t *testing.T) {
	doms, err := ParseListLong(fixture(t, "list-l-lab.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []DomainDetail{{
		DomID: 1, Name: "lab-domu1", UUID: "5a0b3c9e-8d1f-4e2a-9b7c-1d2e3f405162", Type: GuestPV,
		MaxMemoryKiB: 131072, MemoryKiB: 131072, MaxVCPUs: 1,
		Kernel: "/boot/vmlinuz-6.1.0-56-amd64", Ramdisk: "/lab/domu-initrd.gz", Cmdline: "console=hvc0 rdinit=/init quiet",
		Disks:  []Disk{{Target: "/dev/vg0/snap1", Vdev: "xvda"}},
		Policy: LifecyclePolicy{OnPoweroff: ActionDestroy, OnReboot: ActionRestart, OnCrash: ActionDestroy},
	}}
	if !reflect.DeepEqual(doms, want) {
		t.Fatalf("got  %+v\nwant %+v", doms, want)
	}
}

func TestParseListLongMixed(t *testing.T) {
	doms, err := ParseListLong(fixture(t, "list-l-mixed.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(doms) != 2 {
		t.Fatalf("%d domains", len(doms))
	}
	c := doms[0]
	if c.DomID != 12 || c.Bootloader != "pygrub" || c.MaxMemoryKiB != 2097152 || c.MemoryKiB != 1048576 || c.MaxVCPUs != 4 {
		t.Errorf("clone: %+v", c)
	}
	if len(c.Disks) != 2 || c.Disks[0].ReadOnly || !c.Disks[1].ReadOnly {
		t.Errorf("disks: %+v (the seed has no readwrite key: read-only)", c.Disks)
	}
	if !reflect.DeepEqual(c.VIFs, []VIF{{MAC: "00:16:3e:1a:2b:3c", Bridge: "xenbr0"}, {MAC: "02:00:00:00:00:02", Bridge: "br-storage"}}) {
		t.Errorf("vifs: %+v", c.VIFs)
	}
	if c.Policy != (LifecyclePolicy{OnPoweroff: ActionPreserve, OnReboot: ActionRenameRestart, OnCrash: ActionCoredumpRestart}) {
		t.Errorf("policy: %+v", c.Policy)
	}
	h := doms[1]
	// No on_* keys at all: libxl's init value for every action is destroy.
	if h.Type != GuestHVM || h.Policy != (LifecyclePolicy{OnPoweroff: ActionDestroy, OnReboot: ActionDestroy, OnCrash: ActionDestroy}) {
		t.Errorf("hvm: %+v", h)
	}
}

func TestParseListLongEdgeCases(t *testing.T) {
	if doms, err := ParseListLong([]byte("[\n]\n")); err != nil || len(doms) != 0 {
		t.Errorf("empty array: %v %v", doms, err)
	}
	if doms, err := ParseListLong(nil); err != nil || len(doms) != 0 {
		t.Errorf("no output: %v %v", doms, err)
	}
	doms, err := ParseListLong([]byte(`[{"domid":null,"config":{"c_info":{"name":"dry"}}}]`))
	if err != nil || doms[0].DomID != -1 {
		t.Errorf("null domid: %+v %v", doms, err)
	}
	for _, bad := range []string{`{`, `[{"domid":1,"config":{"c_info":{}}}]`, `[{"domid":1,"config":{"c_info":{"name":"a"},"on_crash":"explode"}}]`} {
		if _, err := ParseListLong([]byte(bad)); err == nil {
			t.Errorf("%s: want error", bad)
		}
	}
}

func TestParseInfo(t *testing.T) {
	info, err := ParseInfo(fixture(t, "info-4.17.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if info.TotalMemoryMiB != 3071 || info.FreeMemoryMiB != 1916 || info.NrCPUs != 2 || info.XenVersion != "4.17.7" || info.Host != "dom0-lab" {
		t.Errorf("%+v", info)
	}
	if info.Fields["xen_commandline"] == "" || info.Fields["xen_changeset"] != "" {
		t.Errorf("fields: %q %q", info.Fields["xen_commandline"], info.Fields["xen_changeset"])
	}
	numa, err := ParseInfo(fixture(t, "info-numa.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if numa.NrCPUs != 64 || numa.FreeMemoryMiB != 410223 || numa.OutstandingClaimsMiB != 1024 || numa.XenVersion != "4.17.7" {
		t.Errorf("numa: %+v", numa)
	}
	for _, bad := range []string{"", "nr_cpus : 2\n", "total_memory : x\nfree_memory : 1\nnr_cpus : 1\nxen_version : 4.17.7\n"} {
		if _, err := ParseInfo([]byte(bad)); err == nil {
			t.Errorf("%q: want error", bad)
		}
	}
}

func TestDecideStepPolicy(t *testing.T) {
	crashed := RunState{Shutdown: true, Reason: ReasonCrash}
	for action, want := range map[LifecycleAction]Step{
		ActionDestroy: StepDestroy, ActionRestart: StepRestart, ActionRenameRestart: StepRestart,
		ActionPreserve: StepNone, ActionCoredumpDestroy: StepDestroy, ActionCoredumpRestart: StepRestart,
	} {
		if got := DecideStep(crashed, LifecyclePolicy{OnCrash: action}); got != want {
			t.Errorf("on_crash=%s: %s, want %s", action, got, want)
		}
	}
	if got := DecideStep(RunState{Shutdown: true, Reason: ReasonSuspend}, LifecyclePolicy{}); got != StepNone {
		t.Errorf("suspended: %s", got)
	}
	if got := DecideStep(RunState{Shutdown: true, Reason: ReasonPoweroff}, LifecyclePolicy{OnPoweroff: ActionRestart}); got != StepRestart {
		t.Errorf("poweroff with restart policy: %s", got)
	}
}

func TestNextStopStep(t *testing.T) {
	t0 := time.Unix(1000, 0)
	grace := 30 * time.Second
	if s, _ := NextStopStep(false, RunState{}, t0, t0, grace); s != StopDone {
		t.Errorf("gone: %s", s)
	}
	if s, _ := NextStopStep(true, RunState{Dying: true}, t0, t0, grace); s != StopDone {
		t.Errorf("dying: %s", s)
	}
	if s, _ := NextStopStep(true, RunState{Shutdown: true}, t0, t0, grace); s != StopDestroy {
		t.Errorf("shut down: %s", s)
	}
	if s, wait := NextStopStep(true, RunState{Blocked: true}, t0, t0.Add(10*time.Second), grace); s != StopWait || wait != 20*time.Second {
		t.Errorf("running in grace: %s %v", s, wait)
	}
	if s, _ := NextStopStep(true, RunState{Blocked: true}, t0, t0.Add(grace), grace); s != StopDestroy {
		t.Errorf("grace over: %s", s)
	}
}

func FuzzParseList(f *testing.F) {
	for _, name := range []string{"list-lab.txt", "list-long-names.txt", "list-states.txt"} {
		f.Add(fixture(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doms, err := ParseList(data)
		if err != nil {
			return
		}
		for _, d := range doms {
			if d.Name == "" || d.ID < 0 || d.MemoryMiB < 0 || d.VCPUs < 0 {
				t.Fatalf("accepted a bad row: %+v", d)
			}
			if _, err := ParseState(d.State.String()); err != nil {
				t.Fatalf("state does not round-trip: %+v", d.State)
			}
		}
	})
}

func FuzzParseState(f *testing.F) {
	for _, s := range []string{"r-----", "---sc-", "--ps-d", "------"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseState(s)
		if err != nil {
			return
		}
		if st.String() != s {
			t.Fatalf("%q -> %q", s, st.String())
		}
	})
}

func FuzzParseListLong(f *testing.F) {
	for _, name := range []string{"list-l-lab.json", "list-l-mixed.json"} {
		f.Add(fixture(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doms, err := ParseListLong(data)
		if err != nil {
			return
		}
		for _, d := range doms {
			if d.Name == "" {
				t.Fatalf("accepted a domain without a name: %+v", d)
			}
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	for _, name := range []string{"info-4.17.txt", "info-numa.txt"} {
		f.Add(fixture(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseInfo(data)
		if err != nil {
			return
		}
		if info.XenVersion == "" || info.TotalMemoryMiB < 0 || info.FreeMemoryMiB < 0 {
			t.Fatalf("accepted bad info: %+v", info)
		}
	})
}
