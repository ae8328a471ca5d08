package lvm

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// realFixtureVG is the fixed VG name of the captured fixtures, so they are stable.
const realFixtureVG = "xenclonefixture"

// stderrCaptures are the failures captured from the real lvm2 into testdata/real/stderr,
// with the class each must get. TestClassifyRealStderr reads them back.
var stderrCaptures = []struct {
	file   string
	kind   error
	exit   int
	config string // added to the test's --config
	args   []string
}{
	{"vg-not-found.txt", ErrVGNotFound, 5, "", []string{"lvs", "xenclonefixture_missing"}},
	{"lv-not-found.txt", ErrLVNotFound, 5, "", []string{"lvremove", "--yes", "xenclonefixture/nope"}},
	{"origin-not-found.txt", ErrOriginNotFound, 5, "", []string{"lvcreate", "--yes", "-s", "-n", "c9", "-L", "4m", "xenclonefixture/nope"}},
	{"pool-not-found.txt", ErrThinPoolNotFound, 5, "", []string{"lvcreate", "--yes", "-s", "--thinpool", "pool0", "-n", "c9", "xenclonefixture/tmpl"}},
	{"name-exists.txt", ErrNameExists, 5, "", []string{"lvcreate", "--yes", "-n", "tmpl", "-L", "4m", "xenclonefixture"}},
	{"insufficient-vg.txt", ErrInsufficientSpace, 5, "", []string{"lvcreate", "--yes", "-n", "big", "-L", "1g", "xenclonefixture"}},
	{"insufficient-extend.txt", ErrInsufficientSpace, 5, "", []string{"lvextend", "--yes", "-L", "+1g", "xenclonefixture/clone-a"}},
	{"no-dm-snapshot.txt", ErrNoDeviceMapper, 5, "", []string{"lvcreate", "--yes", "-s", "-n", "c9", "-L", "4m", "xenclonefixture/tmpl"}},
	{"no-dm-thin-pool.txt", ErrNoDeviceMapper, 5, "", []string{"lvcreate", "--yes", "--type", "thin-pool", "-n", "pool0", "-L", "8m", "xenclonefixture"}},
	{"no-dm-activate.txt", ErrNoDeviceMapper, 5, "global{activation=1}", []string{"lvchange", "-ay", "xenclonefixture/clone-a"}},
	{"already-read-only.txt", nil, 5, "", []string{"lvchange", "--yes", "-pr", "xenclonefixture/tmpl"}},
	{"bad-tag.txt", ErrInvalidArgument, 3, "", []string{"lvchange", "--addtag", "bad tag", "xenclonefixture/clone-a"}},
	{"size-not-sectors.txt", ErrInvalidArgument, 3, "", []string{"lvcreate", "--yes", "-n", "odd", "-L", "1b", "xenclonefixture"}},
}

// TestHostCaptureFixtures rewrites testdata/real from the real lvm2 (go test -run
// CaptureFixtures -update, as root). Without -update it does nothing: the other tests read
// what it wrote.
func TestHostCaptureFixtures(t *testing.T) {
	if !*update {
		t.Skip("fixture generator; run with -update as root to recapture testdata/real")
	}
	h := newHostVG(t, realFixtureVG)
	dir := filepath.Join("testdata", "real")
	if err := os.MkdirAll(filepath.Join(dir, "stderr"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	report := func(sub string, args ...string) string {
		argv := []string{"--reportformat", "json", "--units", "b", "--nosuffix"}
		return h.raw(t, sub, append(argv, args...)...)
	}
	full := func() string {
		out, _, err := h.rawConfig(reportConfig, "fullreport", "--reportformat", "json", "--units", "b", "--nosuffix",
			"--configreport", "vg", "-o", vgFields, "--configreport", "lv", "-o", lvFields,
			"--configreport", "pv", "-o,", "--configreport", "pvseg", "-o,", "--configreport", "seg", "-o,", realFixtureVG)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	write("fullreport-empty-vg.json", full())

	h.raw(t, "vgchange", "--addtag", "site=lab1", "--addtag", "rack/7", realFixtureVG)
	h.raw(t, "lvcreate", "--yes", "-n", "tmpl", "-L", "8m", realFixtureVG)
	h.raw(t, "lvchange", "-pr", realFixtureVG+"/tmpl")
	for _, c := range []struct {
		name  string
		owner Owner
	}{{"clone-a", ownerA}, {"clone-b", ownerB}} {
		args := []string{"--yes", "-n", c.name, "-L", "4m"}
		for _, tag := range c.owner.Tags() {
			args = append(args, "--addtag", tag)
		}
		h.raw(t, "lvcreate", append(args, realFixtureVG)...)
	}

	write("vgs.json", report("vgs", "-o", vgFields, realFixtureVG))
	write("lvs-thick-tags.json", report("lvs", "-o", lvFields, realFixtureVG))
	write("fullreport-thick.json", full())

	for _, c := range stderrCaptures {
		_, stderr, err := h.rawConfig(c.config, c.args[0], c.args[1:]...)
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != c.exit {
			t.Errorf("%s: lvm %v: %v, want exit %d", c.file, c.args, err, c.exit)
		}
		write(filepath.Join("stderr", c.file), stderr)
	}
	// A lock held by "another lvm command", and lvm told not to wait.
	unlock := holdVGLock(t, h)
	_, stderr, err := h.rawConfig("global{wait_for_locks=0}", "lvs", realFixtureVG)
	if err == nil {
		t.Errorf("lvs under a held lock succeeded")
	}
	unlock()
	write(filepath.Join("stderr", "lock-nowait.txt"), stderr)
}
