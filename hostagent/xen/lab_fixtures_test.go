package xen

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenclone/xenclone/hostagent/command"
)

// The real-lab fixtures are Xen 4.17's own xl output: captured by `make lab-fixtures`
// (hack/lab/e2e TestCaptureFixtures) in the QEMU host lab's dom0, with one PV domU (lab-fx1)
// running from an LVM snapshot. See testdata/real-lab/README.md.

func readLab(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "real-lab", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLabList(t *testing.T) {
	doms, err := ParseList(readLab(t, "list.txt"))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]DomainInfo{}
	for _, d := range doms {
		byName[d.Name] = d
	}
	if d0, ok := byName["Domain-0"]; !ok || d0.ID != 0 || d0.VCPUs != 2 || d0.MemoryMiB < 900 || !(d0.State.Running || d0.State.Blocked) {
		t.Errorf("Domain-0: %+v", d0)
	}
	d, ok := byName["lab-fx1"]
	if !ok || d.ID <= 0 || d.VCPUs != 1 || d.MemoryMiB != 128 || d.State.Shutdown || d.State.Dying || d.State.Paused {
		t.Errorf("lab-fx1: %+v (found %v)", d, ok)
	}
	// Taken right after `xl shutdown -w lab-fx1` returned: the guest had powered off and, as
	// Xen shows every shut-down domain, it is paused too ("--ps--"): shut down wins (see
	// README.md; an earlier capture caught it still running, blocked).
	after, err := ParseList(readLab(t, "list-after-shutdown.txt"))
	if err != nil || len(after) != 2 || after[0].Name != "Domain-0" || after[1].Name != "lab-fx1" {
		t.Fatalf("after shutdown: %+v %v", after, err)
	}
	if st := after[1].State; !st.Shutdown || !st.Paused || st.Reason != ReasonPoweroff || st.Phase() != PhaseShutdown {
		t.Errorf("after shutdown: state %s decoded as %+v, phase %s; want shut down (poweroff), not paused", st, st, st.Phase())
	}
}

// TestLabStandby decodes a warm standby as real xl shows it: ballooned down with xl mem-set
// (the memory column follows the guest's balloon driver), then paused (the p flag alone), then
// unpaused with its memory back; the same domain id throughout.
func TestLabStandby(t *testing.T) {
	find := func(file string) DomainInfo {
		t.Helper()
		doms, err := ParseList(readLab(t, file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, d := range doms {
			if d.Name == "lab-fx1" {
				return d
			}
		}
		t.Fatalf("%s: no lab-fx1", file)
		return DomainInfo{}
	}
	running, ballooned, paused, restored := find("list.txt"), find("list-ballooned.txt"), find("list-paused.txt"), find("list-restored.txt")
	if running.MemoryMiB != 128 || ballooned.MemoryMiB != 96 || paused.MemoryMiB != 96 || restored.MemoryMiB != 128 {
		t.Errorf("memory running/ballooned/paused/restored = %d/%d/%d/%d MiB, want 128/96/96/128",
			running.MemoryMiB, ballooned.MemoryMiB, paused.MemoryMiB, restored.MemoryMiB)
	}
	if ballooned.State.Paused || ballooned.State.Phase() != PhaseActive {
		t.Errorf("ballooned: %s (%s), want active", ballooned.State, ballooned.State.Phase())
	}
	if st := paused.State; st.String() != "--p---" || !st.Paused || st.Shutdown || st.Phase() != PhasePaused {
		t.Errorf("paused: %s decoded as %+v (%s)", st, st, st.Phase())
	}
	if DecideStep(paused.State, LifecyclePolicy{}) != StepNone {
		t.Errorf("a paused domain must need nothing from the monitor")
	}
	if restored.State.Paused || restored.ID != paused.ID || paused.ID != running.ID {
		t.Errorf("restored: %+v (ids %d/%d/%d)", restored, running.ID, paused.ID, restored.ID)
	}
	// dom0's writes under the guest's data/ are owned by the guest (n<domid>: the guest may
	// read and write them, other guests nothing), values as given with -R.
	xs := string(readLab(t, "xenstore-data.txt"))
	for _, want := range []string{`token=[a\nb c]`, "ready=[v1]", fmt.Sprintf("(n%d)", running.ID)} {
		if !strings.Contains(xs, want) {
			t.Errorf("xenstore-data.txt lacks %q:\n%s", want, xs)
		}
	}
}

func TestLabListLong(t *testing.T) {
	for _, file := range []string{"list-l.json", "list-l-domain.json"} {
		doms, err := ParseListLong(readLab(t, file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var d *DomainDetail
		for i := range doms {
			if doms[i].Name == "lab-fx1" {
				d = &doms[i]
			}
		}
		if d == nil {
			t.Fatalf("%s: no lab-fx1 in %+v", file, doms)
		}
		if d.DomID <= 0 || d.Type != GuestPV || d.MemoryKiB != 128<<10 || d.Kernel != "/boot/vmlinuz-domu" ||
			d.Ramdisk != "/var/lib/xclab/domu-initrd.gz" || !strings.Contains(d.Cmdline, "console=hvc0") || len(d.UUID) != 36 {
			t.Errorf("%s: lab-fx1 %+v", file, *d)
		}
		if len(d.Disks) != 1 || d.Disks[0].Target != "/dev/vg0/clone-a" || d.Disks[0].Vdev != "xvda" || d.Disks[0].ReadOnly {
			t.Errorf("%s: disks %+v", file, d.Disks)
		}
		if len(d.VIFs) != 1 || d.VIFs[0].MAC != "00:16:3e:1a:b2:c3" || d.VIFs[0].Bridge != "xenbr0" {
			t.Errorf("%s: vifs %+v", file, d.VIFs)
		}
	}
}

func TestLabInfo(t *testing.T) {
	info, err := ParseInfo(readLab(t, "info.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.XenVersion, "4.17") || info.NrCPUs != 2 || info.TotalMemoryMiB < 2900 ||
		info.FreeMemoryMiB <= 0 || info.FreeMemoryMiB >= info.TotalMemoryMiB || info.Host != "labdom0" ||
		!strings.Contains(info.XenCaps, "xen-3.0-x86_64") {
		t.Errorf("xl info: %+v", info)
	}
}

// TestLabErrors classifies xl's real stderr for each failure, as the driver does.
func TestLabErrors(t *testing.T) {
	for _, tc := range []struct {
		file, op string
		want     error
	}{
		{"create-duplicate-name", "create", ErrDomainExists},
		{"create-not-enough-memory", "create", ErrNoMemory},
		// The hotplug scripts were killed after libxl's 40 s; the clean-up lines that follow
		// ("Non-existant domain") must not make it "no such domain".
		{"create-hotplug-timeout", "create", ErrDeviceSetup},
		{"destroy-unknown-domain", "destroy", ErrNoSuchDomain},
		{"shutdown-unknown-domain", "shutdown", ErrNoSuchDomain},
		{"list-unknown-domain", "list", ErrNoSuchDomain},
		{"pause-unknown-domain", "pause", ErrNoSuchDomain},
	} {
		t.Run(tc.file, func(t *testing.T) {
			stderr := string(readLab(t, tc.file+".stderr.txt"))
			var rc int
			if _, err := fmt.Sscanf(string(readLab(t, tc.file+".rc.txt")), "exit status %d", &rc); err != nil || rc == 0 {
				t.Fatalf("exit status %d (%v): a failure must exit non-zero", rc, err)
			}
			err := classify(tc.op, "lab-fx1", &command.Error{Args: []string{"xl", tc.op}, ExitCode: rc, Stderr: stderr, Err: errors.New("exit")})
			if tc.op == "create" && errors.Is(err, ErrNoSuchDomain) {
				t.Errorf("a failed create classified as no such domain: %v", err)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("classified as %v, want %v; stderr:\n%s", err, tc.want, stderr)
			}
		})
	}
}

// TestLabGuestReport decodes a real domain tree (`xenstore-ls -f /local/domain/<id>` in the
// lab's dom0) after the lab guest wrote a guest agent's keys (hack/lab/guest/init xcagent):
// the same checks as the simulator's guest (TestSimGuestAgent).
func TestLabGuestReport(t *testing.T) {
	b := readLab(t, "xenstore-ls-guest-agent.txt")
	root := strings.SplitN(strings.TrimPrefix(string(b), "/local/domain/"), "/", 2)[0]
	tree, err := ParseXenstoreLs(b, "/local/domain/"+root)
	if err != nil {
		t.Fatal(err)
	}
	r := GuestReportFrom(tree)
	checkGuestAgentReport(t, r, "192.0.2.20")
	if r.AgentVersion != "1.0.0-xclab" || r.OS != "xclab guest" || !strings.HasPrefix(r.Kernel, "6.1.0-") {
		t.Errorf("report: %+v", r)
	}
	if tree["name"] == "" || tree["console/tty"] == "" {
		t.Errorf("the tree lacks the nodes libxl and xenconsoled write: name %q tty %q", tree["name"], tree["console/tty"])
	}
	if r.VNCPort != 0 {
		t.Errorf("no VNC in the lab's domain, got port %d", r.VNCPort)
	}
}
