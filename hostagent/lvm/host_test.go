package lvm

// Host-real tests: the real lvm2 on loop devices made by the test, as root. They skip loudly
// outside CI and must run under CI=true (hosttest). This kernel has no device-mapper, so
// every command runs with activation disabled; lvm then still reads and writes VG metadata
// (create, tag, extend, remove, report) but cannot create snapshots or thin pools — those
// tests assert the real ErrNoDeviceMapper refusal, and the snapshot paths get their real run
// in the host lab (device-mapper kernel under QEMU).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xenclone/xenclone/hostagent/command"
	"github.com/xenclone/xenclone/hostagent/internal/hosttest"
)

var update = flag.Bool("update", false, "rewrite testdata/real from the real lvm2 (host-real, root)")

const (
	mib = 1 << 20
	// A 64 MiB loop device gives a VG of 15 extents of 4 MiB (lvm keeps the first MiB for
	// its label and metadata area and rounds down to whole extents): observed here.
	testDiskSize   = 64 * mib
	testExtentSize = 4 * mib
	testVGSize     = 15 * testExtentSize
)

// hostVG is a real VG on a loop device, for one test.
type hostVG struct {
	name   string
	dev    string
	lvm    string // path of the real binary
	config string // activation off, only our loop device visible, no /etc/lvm backups
	client *Client
}

// newHostVG makes a loop device and a VG on it. Everything is undone when the test ends,
// also when it fails: the VG and PV are removed, the loop device detached, and lvm must not
// see the VG any more.
func newHostVG(t *testing.T, name string) *hostVG {
	t.Helper()
	if name == "" {
		name = "xenclonetest_" + randHex(t)
	}
	vg := hosttest.NewVG(t, name, testDiskSize)
	return &hostVG{name: vg.Name, dev: vg.Dev, lvm: vg.LVM, config: vg.Config,
		client: &Client{Binary: vg.LVM, Config: vg.Config}}
}

// raw runs the real lvm directly (not through the package under test), for set-up.
func (h *hostVG) raw(t *testing.T, sub string, args ...string) string {
	t.Helper()
	out, err := h.rawErr(sub, args...)
	if err != nil {
		t.Fatalf("lvm %s %s: %v", sub, strings.Join(args, " "), err)
	}
	return out
}

func (h *hostVG) rawErr(sub string, args ...string) (string, error) {
	out, _, err := h.rawConfig("", sub, args...)
	return out, err
}

// rawConfig runs the real lvm with extra --config text (lvm takes --config only once) and
// returns stdout and stderr.
func (h *hostVG) rawConfig(extra, sub string, args ...string) (string, string, error) {
	argv := append([]string{sub, "--config", h.config + " " + extra}, args...)
	cmd := exec.Command(h.lvm, argv...)
	cmd.Env = append(os.Environ(), "LVM_SUPPRESS_FD_WARNINGS=1")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), stderr.String(), fmt.Errorf("%w: %s", err, stderr.String())
	}
	return stdout.String(), stderr.String(), nil
}

func (h *hostVG) rawCleanup(t *testing.T, sub string, args ...string) {
	if _, err := h.rawErr(sub, args...); err != nil {
		t.Errorf("cleanup: lvm %s %s: %v", sub, strings.Join(args, " "), err)
	}
}

func (h *hostVG) ref(name string) Ref { return Ref{VG: h.name, Name: name} }

func randHex(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var (
	ownerA = Owner{UID: "3f1c2a9e-7b44-4d0e-9a51-1d2f0c6e8b7a", Namespace: "team-a", Name: "box-1"}
	ownerB = Owner{UID: "c0ffee00-1111-4222-8333-444455556666", Namespace: "team-b", Name: "runner.7"}
)

func TestHostReportEmptyVG(t *testing.T) {
	h := newHostVG(t, "")
	rep, err := h.client.Report(testCtx(t), h.name)
	if err != nil {
		t.Fatal(err)
	}
	vg := rep.VG
	if vg.Name != h.name || vg.UUID == "" {
		t.Errorf("vg = %+v", vg)
	}
	if vg.ExtentSize != testExtentSize || vg.Size != testVGSize || vg.ExtentCount*vg.ExtentSize != vg.Size {
		t.Errorf("size %d extent %d × %d, want %d = %d × …", vg.Size, vg.ExtentCount, vg.ExtentSize, testVGSize, testExtentSize)
	}
	if vg.Free != vg.Size || vg.FreeCount != vg.ExtentCount || vg.LVCount != 0 || len(rep.LVs) != 0 {
		t.Errorf("empty VG: free %d/%d extents %d/%d, %d LVs (%d)", vg.Free, vg.Size, vg.FreeCount, vg.ExtentCount, vg.LVCount, len(rep.LVs))
	}
	if vg.MetadataSize == 0 || vg.MetadataFree == 0 || vg.MetadataFree > vg.MetadataSize {
		t.Errorf("metadata area %d free of %d", vg.MetadataFree, vg.MetadataSize)
	}
	// Only this test's PV is visible through the test's device filter.
	all, err := h.client.ReportAll(testCtx(t))
	if err != nil || len(all) != 1 || !reflect.DeepEqual(all[0], rep) {
		t.Errorf("ReportAll = %+v, %v; want [%+v]", all, err, rep)
	}
	if p := vg.MetadataUsedPercent(); p <= 0 || p > 1 {
		t.Errorf("empty VG uses %.3f%% of its metadata capacity", p)
	}
	t.Logf("VG %s: %d bytes, %d extents of %d, metadata %d free of %d usable (%d area, %.2f%% used)", vg.Name, vg.Size,
		vg.ExtentCount, vg.ExtentSize, vg.MetadataFree, vg.MetadataCapacity(), vg.MetadataSize, vg.MetadataUsedPercent())
}

// TestHostCreateReportRemove covers create, report (one call for VG + LVs), tags and
// free-space accounting, and removal, against the real lvm2.
func TestHostCreateReportRemove(t *testing.T) {
	h := newHostVG(t, "")
	ctx := testCtx(t)
	start := time.Now().Add(-time.Second)

	// lvm rounds sizes up to whole extents.
	cases := []struct {
		name     string
		size     uint64
		wantSize uint64
		owner    Owner
	}{
		{"c-one-byte", 1, testExtentSize, ownerA},
		{"c-one-extent", testExtentSize, testExtentSize, ownerA},
		{"c-extent-plus-1", testExtentSize + 1, 2 * testExtentSize, ownerB},
		{"c-odd", 5_000_000, 2 * testExtentSize, ownerB},
	}
	var used uint64
	for _, tc := range cases {
		lv, err := h.client.CreateLinear(ctx, h.ref(tc.name), tc.size, tc.owner)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		used += tc.wantSize
		if lv.Name != tc.name || lv.VG != h.name || lv.UUID == "" || lv.Size != tc.wantSize {
			t.Errorf("%s: got %+v, want size %d", tc.name, lv, tc.wantSize)
		}
		// Activation is off here, so lvm cannot know the kernel state: 'X'.
		if a := lv.Attr; a.Type != TypePlain || a.Permission != PermWrite || a.State != StateUnknown || a.Open != OpenUnknown || lv.Active {
			t.Errorf("%s: attr %s (%+v) active=%v", tc.name, a, a, lv.Active)
		}
		if !lv.OwnedBy(tc.owner.UID) || !lv.Managed() || lv.OwnerUID() != tc.owner.UID {
			t.Errorf("%s: tags %q do not show owner %s", tc.name, lv.Tags, tc.owner.UID)
		}
		if want := tc.owner.Tags(); !sameSet(lv.Tags, want) {
			t.Errorf("%s: tags %q, want %q", tc.name, lv.Tags, want)
		}
		if lv.Created.Before(start) || lv.Created.After(time.Now().Add(time.Second)) {
			t.Errorf("%s: created %v, test started %v", tc.name, lv.Created, start)
		}
	}

	rep, err := h.client.Report(ctx, h.name)
	if err != nil {
		t.Fatal(err)
	}
	if rep.VG.Free != testVGSize-used || rep.VG.FreeCount != (testVGSize-used)/testExtentSize || rep.VG.LVCount != len(cases) || len(rep.LVs) != len(cases) {
		t.Errorf("after create: free %d (%d extents), %d LVs (%d reported); want free %d, %d LVs",
			rep.VG.Free, rep.VG.FreeCount, rep.VG.LVCount, len(rep.LVs), testVGSize-used, len(cases))
	}
	for _, tc := range cases {
		lv, ok := rep.LV(tc.name)
		if !ok || lv.Size != tc.wantSize || !lv.OwnedBy(tc.owner.UID) {
			t.Errorf("report: %s = %+v, %v", tc.name, lv, ok)
		}
	}

	// Remove refuses another owner's LV, then removes ours; removing again is a no-op.
	if err := h.client.Remove(ctx, h.ref("c-odd"), ownerA); !errors.Is(err, ErrNotOwned) {
		t.Errorf("remove ownerB's LV as ownerA: %v, want ErrNotOwned", err)
	}
	for _, tc := range cases {
		for range 2 {
			if err := h.client.Remove(ctx, h.ref(tc.name), tc.owner); err != nil {
				t.Errorf("remove %s: %v", tc.name, err)
			}
		}
	}
	rep, err = h.client.Report(ctx, h.name)
	if err != nil {
		t.Fatal(err)
	}
	if rep.VG.Free != testVGSize || rep.VG.LVCount != 0 || len(rep.LVs) != 0 {
		t.Errorf("after remove: free %d, %d LVs %v", rep.VG.Free, rep.VG.LVCount, rep.LVs)
	}
}

func TestHostNameCollision(t *testing.T) {
	h := newHostVG(t, "")
	ctx := testCtx(t)
	first, err := h.client.CreateLinear(ctx, h.ref("clone"), testExtentSize, ownerA)
	if err != nil {
		t.Fatal(err)
	}
	h.raw(t, "lvcreate", "--yes", "-n", "untagged", "-L", "4m", h.name)

	cases := []struct {
		name    string
		lv      string
		owner   Owner
		wantErr error
	}{
		// Same name, same owner: the earlier create (e.g. before an agent restart) counts.
		{"same owner is success", "clone", ownerA, nil},
		{"other owner conflicts", "clone", ownerB, ErrConflict},
		{"untagged LV conflicts", "untagged", ownerA, ErrConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lv, err := h.client.CreateLinear(ctx, h.ref(tc.lv), 2*testExtentSize, tc.owner)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && lv.UUID != first.UUID {
				t.Errorf("got LV %s, want the existing %s", lv.UUID, first.UUID)
			}
		})
	}

	// A classic snapshot named like our plain LV: lvm checks the name before anything needs
	// device-mapper, so this is the real idempotency path; ours but not a snapshot: conflict.
	if _, err := h.client.CreateClassicSnapshot(ctx, h.ref("untagged"), "clone", testExtentSize, ownerA); !errors.Is(err, ErrConflict) {
		t.Errorf("snapshot over our plain LV: %v, want ErrConflict", err)
	}
	rep, err := h.client.Report(ctx, h.name)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.LVs) != 2 {
		t.Errorf("collisions changed the VG: %v", rep.LVs)
	}
}

func TestHostInsufficientSpace(t *testing.T) {
	h := newHostVG(t, "")
	ctx := testCtx(t)
	_, err := h.client.CreateLinear(ctx, h.ref("too-big"), testVGSize+1, ownerA)
	if !errors.Is(err, ErrInsufficientSpace) {
		t.Fatalf("err = %v, want ErrInsufficientSpace", err)
	}
	// The user sees lvm's own words and the command.
	var ce *command.Error
	if !errors.As(err, &ce) || ce.ExitCode != 5 || !strings.Contains(ce.Stderr, "insufficient free space") ||
		!strings.Contains(strings.Join(ce.Args, " "), "lvcreate") {
		t.Errorf("command error not kept: %#v", ce)
	}
	// Exactly the VG's size still fits.
	if _, err := h.client.CreateLinear(ctx, h.ref("all"), testVGSize, ownerA); err != nil {
		t.Fatalf("create the whole VG: %v", err)
	}
	if _, err := h.client.CreateLinear(ctx, h.ref("one-more"), 1, ownerA); !errors.Is(err, ErrInsufficientSpace) {
		t.Errorf("full VG: err = %v, want ErrInsufficientSpace", err)
	}
}

func TestHostRemoveRefusesUntagged(t *testing.T) {
	h := newHostVG(t, "")
	ctx := testCtx(t)
	h.raw(t, "lvcreate", "--yes", "-n", "template", "-L", "4m", h.name)
	h.raw(t, "lvcreate", "--yes", "-n", "foreign", "-L", "4m", "--addtag", "owner=someone-else", h.name)
	for _, name := range []string{"template", "foreign"} {
		err := h.client.Remove(ctx, h.ref(name), ownerA)
		if !errors.Is(err, ErrNotOwned) {
			t.Errorf("remove %s: %v, want ErrNotOwned", name, err)
		}
		if err := h.client.ExtendSnapshot(ctx, h.ref(name), ownerA, testExtentSize); !errors.Is(err, ErrNotOwned) {
			t.Errorf("extend %s: %v, want ErrNotOwned", name, err)
		}
		if _, err := h.client.LookupLV(ctx, h.ref(name)); err != nil {
			t.Errorf("%s gone after refused remove: %v", name, err)
		}
	}
	// Ours, but not a classic snapshot: extending would grow a guest's disk.
	if _, err := h.client.CreateLinear(ctx, h.ref("ours"), testExtentSize, ownerA); err != nil {
		t.Fatal(err)
	}
	if err := h.client.ExtendSnapshotTo(ctx, h.ref("ours"), ownerA, 2*testExtentSize); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("extend plain LV: %v, want ErrInvalidArgument", err)
	}
}

func TestHostNotFound(t *testing.T) {
	h := newHostVG(t, "")
	ctx := testCtx(t)
	missingVG := "xenclonetest_missing_" + randHex(t)
	h.raw(t, "lvcreate", "--yes", "-n", "tmpl", "-L", "4m", h.name)
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"report of missing VG", func() error { _, err := h.client.Report(ctx, missingVG); return err }, ErrVGNotFound},
		{"lookup in missing VG", func() error { _, err := h.client.LookupLV(ctx, Ref{missingVG, "x"}); return err }, ErrVGNotFound},
		{"create in missing VG", func() error {
			_, err := h.client.CreateLinear(ctx, Ref{missingVG, "x"}, testExtentSize, ownerA)
			return err
		}, ErrVGNotFound},
		{"lookup of missing LV", func() error { _, err := h.client.LookupLV(ctx, h.ref("nope")); return err }, ErrLVNotFound},
		{"remove of missing LV is done", func() error { return h.client.Remove(ctx, h.ref("nope"), ownerA) }, nil},
		{"read-only of missing origin", func() error { return h.client.SetOriginReadOnly(ctx, h.ref("nope")) }, ErrLVNotFound},
		{"snapshot of missing origin", func() error {
			_, err := h.client.CreateClassicSnapshot(ctx, h.ref("nope"), "c1", testExtentSize, ownerA)
			return err
		}, ErrOriginNotFound},
		{"external-origin snapshot into missing pool", func() error {
			_, err := h.client.CreateThinSnapshotOfExternalOrigin(ctx, h.ref("tmpl"), "pool0", "c1", ownerA)
			return err
		}, ErrThinPoolNotFound},
		// Without device-mapper lvm refuses snapshots outright (the real refusal here).
		{"classic snapshot needs device-mapper", func() error {
			_, err := h.client.CreateClassicSnapshot(ctx, h.ref("tmpl"), "c1", testExtentSize, ownerA)
			return err
		}, ErrNoDeviceMapper},
		{"invalid name never reaches lvm", func() error { _, err := h.client.LookupLV(ctx, h.ref("--all")); return err }, ErrInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == ErrOriginNotFound || tc.want == ErrThinPoolNotFound {
				if !errors.Is(err, ErrLVNotFound) {
					t.Errorf("%v should also be ErrLVNotFound", err)
				}
			}
		})
	}
}

func TestHostSetOriginReadOnly(t *testing.T) {
	h := newHostVG(t, "")
	ctx := testCtx(t)
	h.raw(t, "lvcreate", "--yes", "-n", "tmpl", "-L", "4m", h.name)
	for i := range 2 { // the second call is a no-op
		if err := h.client.SetOriginReadOnly(ctx, h.ref("tmpl")); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		lv, err := h.client.LookupLV(ctx, h.ref("tmpl"))
		if err != nil {
			t.Fatal(err)
		}
		if !lv.Attr.ReadOnly() || !slices.Equal(lv.Tags, []string{MadeReadOnlyTag}) {
			t.Errorf("call %d: attr %s tags %q, want read-only and only %s", i, lv.Attr, lv.Tags, MadeReadOnlyTag)
		}
	}
	// Activation is a no-op with activation disabled; it must not fail.
	if err := h.client.Activate(ctx, h.ref("tmpl")); err != nil {
		t.Errorf("activate: %v", err)
	}
	// What we set we revert, tag and all.
	if err := h.client.RestoreOriginWritable(ctx, h.ref("tmpl")); err != nil {
		t.Fatalf("restore: %v", err)
	}
	lv, err := h.client.LookupLV(ctx, h.ref("tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	if lv.Attr.ReadOnly() || len(lv.Tags) != 0 {
		t.Errorf("after restore: attr %s tags %q, want writable and untagged", lv.Attr, lv.Tags)
	}
}

// TestHostReadOnlyFlagOfAnAdministratorIsKept: an origin made read-only by someone else is
// neither tagged nor ever made writable by us.
func TestHostReadOnlyFlagOfAnAdministratorIsKept(t *testing.T) {
	h := newHostVG(t, "")
	ctx := testCtx(t)
	h.raw(t, "lvcreate", "--yes", "-n", "golden", "-L", "4m", h.name)
	h.raw(t, "lvchange", "--yes", "-pr", h.name+"/golden")
	if err := h.client.SetOriginReadOnly(ctx, h.ref("golden")); err != nil {
		t.Fatal(err)
	}
	if err := h.client.RestoreOriginWritable(ctx, h.ref("golden")); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("restore of an administrator's read-only LV: %v, want ErrNotOwned", err)
	}
	lv, err := h.client.LookupLV(ctx, h.ref("golden"))
	if err != nil {
		t.Fatal(err)
	}
	if !lv.Attr.ReadOnly() || len(lv.Tags) != 0 {
		t.Errorf("attr %s tags %q, want read-only and untagged, as the administrator left it", lv.Attr, lv.Tags)
	}
}

// TestHostLock holds lvm's own VG lock the way another lvm command would (flock on
// <locking_dir>/V_<vg>, lib/locking/file_locking.c).
func TestHostLock(t *testing.T) {
	h := newHostVG(t, "")
	defer holdVGLock(t, h)()

	// wait_for_locks=0: lvm gives up at once.
	noWait := &Client{Binary: h.lvm, Config: h.config + " global{wait_for_locks=0}"}
	_, err := noWait.Report(testCtx(t), h.name)
	if !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("no-wait report under lock: %v, want ErrLockTimeout", err)
	}
	t.Logf("real stderr: %q", command.Stderr(err))

	// Default: lvm waits forever; the caller's deadline ends it (the process is killed).
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err = h.client.Report(ctx, h.name)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrLockTimeout) {
		t.Fatalf("waiting report: %v, want context.DeadlineExceeded only", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("cancel took %v", took)
	}
}

// holdVGLock takes lvm's own lock of the VG as another lvm command would: flock on
// <locking_dir>/V_<vg> (lib/locking/file_locking.c). It returns the release.
func holdVGLock(t *testing.T, h *hostVG) func() {
	t.Helper()
	out := h.raw(t, "lvmconfig", "--typeconfig", "full", "global/locking_dir")
	dir := strings.Trim(strings.TrimPrefix(strings.TrimSpace(out), "locking_dir="), `"`)
	f, err := os.OpenFile(filepath.Join(dir, "V_"+h.name), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestHostAddTag: the agent marks a prepared disk with a tag on the real lvm; an LV we do not
// own keeps its tags.
func TestHostAddTag(t *testing.T) {
	h := newHostVG(t, "")
	ctx := testCtx(t)
	if _, err := h.client.CreateLinear(ctx, h.ref("ours"), testExtentSize, ownerA); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second call is a no-op
		if err := h.client.AddTag(ctx, h.ref("ours"), ownerA, "xenclone.prepared"); err != nil {
			t.Fatalf("add tag (call %d): %v", i+1, err)
		}
	}
	lv, err := h.client.LookupLV(ctx, h.ref("ours"))
	if err != nil {
		t.Fatal(err)
	}
	if !lv.HasTag("xenclone.prepared") || !lv.OwnedBy(ownerA.UID) {
		t.Errorf("tags after AddTag: %v", lv.Tags)
	}
	h.raw(t, "lvcreate", "--yes", "-n", "foreign", "-L", "4m", "--addtag", "owner=someone-else", h.name)
	if err := h.client.AddTag(ctx, h.ref("foreign"), ownerA, "xenclone.prepared"); !errors.Is(err, ErrNotOwned) {
		t.Errorf("tag foreign LV: %v, want ErrNotOwned", err)
	}
	if err := h.client.AddTag(ctx, h.ref("ours"), ownerA, "bad tag"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad tag: %v, want ErrInvalidArgument", err)
	}
	foreign, _ := h.client.LookupLV(ctx, h.ref("foreign"))
	if len(foreign.Tags) != 1 || foreign.Tags[0] != "owner=someone-else" {
		t.Errorf("foreign LV tags changed: %v", foreign.Tags)
	}
}
