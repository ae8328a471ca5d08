package imageimport

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/xenclone/xenclone/hostagent/internal/hosttest"
)

var update = flag.Bool("update", false, "rewrite testdata/qemu-img-7.2 from the real qemu-img")

// infoFixtureDir holds real `qemu-img info --output=json -f qcow2` outputs, exactly the call
// Importer makes. TestQemuInfoFixtures and the fuzz seeds read them.
const infoFixtureDir = "testdata/qemu-img-7.2"

// infoCaptures are the images captured into infoFixtureDir: how each is made (qemu-img
// arguments, run in a scratch directory so the file names in the output are stable).
var infoCaptures = []struct {
	file string
	make [][]string
}{
	{"qcow2.json", [][]string{{"convert", "-f", "raw", "-O", "qcow2", "base.raw", "img.qcow2"}}},
	{"qcow2-backing.json", [][]string{
		{"convert", "-f", "raw", "-O", "qcow2", "base.raw", "base.qcow2"},
		{"create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "img.qcow2"}}},
	{"qcow2-data-file.json", [][]string{{"create", "-f", "qcow2", "-o", "data_file=ext.raw,data_file_raw=on", "img.qcow2", "4M"}}},
	{"qcow2-10g.json", [][]string{{"create", "-f", "qcow2", "img.qcow2", "10G"}}},
	// Not a qcow2 at all: qemu-img fails, and this is what it says.
	{"raw-as-qcow2.stderr", [][]string{{"convert", "-f", "raw", "-O", "raw", "base.raw", "img.qcow2"}}},
}

// TestCaptureQemuInfoFixtures rewrites infoFixtureDir from the real qemu-img (go test -run
// CaptureQemuInfo -update). Without -update it does nothing.
func TestCaptureQemuInfoFixtures(t *testing.T) {
	if !*update {
		t.Skip("fixture generator; run with -update to recapture " + infoFixtureDir)
	}
	hosttest.RequireCommands(t, "qemu-img")
	qemuImg, _ := hosttest.LookPath("qemu-img")
	for _, c := range infoCaptures {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "base.raw"), make([]byte, 4<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		run := func(args ...string) ([]byte, []byte, error) {
			cmd := exec.Command(qemuImg, args...)
			cmd.Dir = dir
			var stderr []byte
			out, err := cmd.Output()
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			return out, stderr, err
		}
		for _, args := range c.make {
			if out, stderr, err := run(args...); err != nil {
				t.Fatalf("qemu-img %v: %v: %s%s", args, err, out, stderr)
			}
		}
		out, stderr, err := run("info", "--output=json", "-f", "qcow2", "img.qcow2")
		data := out
		if filepath.Ext(c.file) == ".stderr" {
			if err == nil {
				t.Fatalf("%s: qemu-img info succeeded, want a failure", c.file)
			}
			data = stderr
		} else if err != nil {
			t.Fatalf("%s: qemu-img info: %v: %s", c.file, err, stderr)
		}
		if err := os.WriteFile(filepath.Join(infoFixtureDir, c.file), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
