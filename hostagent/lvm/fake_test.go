package lvm

// Operation tests against a fake lvm: the test binary itself, re-executed as `lvm` (tests
// swap the binary, not the code). It records each argument list and answers from a script.
// These cover what this kernel cannot run for real — snapshot, thin and extend command lines,
// idempotent re-creation of snapshots, cancellation — and are checked against real lvm2 in
// the host lab.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xenclone/xenclone/hostagent/command"
)

const fakeEnv = "XENCLONE_FAKE_LVM"

func TestMain(m *testing.M) {
	if dir := os.Getenv(fakeEnv); dir != "" {
		os.Exit(fakeLVM(dir, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeReply is one scripted lvm answer.
type fakeReply struct {
	Stdout string        `json:"stdout"`
	Stderr string        `json:"stderr"`
	Exit   int           `json:"exit"`
	Sleep  time.Duration `json:"sleep"`
}

// fakeLVM is the fake binary: it appends its argv to dir/calls and plays reply number N.
func fakeLVM(dir string, args []string) int {
	line, _ := json.Marshal(args)
	f, err := os.OpenFile(filepath.Join(dir, "calls"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 98
	}
	fmt.Fprintf(f, "%s\n", line)
	f.Close()
	n := len(readCalls(dir)) - 1
	var script []fakeReply
	b, _ := os.ReadFile(filepath.Join(dir, "script.json"))
	if err := json.Unmarshal(b, &script); err != nil || n >= len(script) {
		fmt.Fprintf(os.Stderr, "fake lvm: unexpected call %d: %v\n", n, args)
		return 99
	}
	r := script[n]
	time.Sleep(r.Sleep)
	fmt.Fprint(os.Stdout, r.Stdout)
	fmt.Fprint(os.Stderr, r.Stderr)
	return r.Exit
}

func readCalls(dir string) [][]string {
	f, err := os.Open(filepath.Join(dir, "calls"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var calls [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var c []string
		if json.Unmarshal(sc.Bytes(), &c) == nil {
			calls = append(calls, c)
		}
	}
	return calls
}

type fake struct {
	dir    string
	client *Client
}

func newFake(t *testing.T, replies ...fakeReply) *fake {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(replies)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "script.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return &fake{dir: dir, client: &Client{
		Binary: os.Args[0],
		Runner: command.Runner{Env: append(os.Environ(), fakeEnv+"="+dir)},
	}}
}

// calls returns the recorded argument lists, with the --config argument removed (checked
// separately) so the tables read like the lvm commands.
func (f *fake) calls(t *testing.T) [][]string {
	var out [][]string
	for _, c := range readCalls(f.dir) {
		var keep []string
		for i := 0; i < len(c); i++ {
			if c[i] == "--config" {
				i++
				continue
			}
			keep = append(keep, c[i])
		}
		out = append(out, keep)
	}
	return out
}

func ok(stdout string) fakeReply { return fakeReply{Stdout: stdout} }

func fixtureReply(t *testing.T, file string) fakeReply { return ok(string(readFixture(t, file))) }

func stderrReply(t *testing.T, exit int, file string) fakeReply {
	return fakeReply{Exit: exit, Stderr: string(readFixture(t, "real/stderr/"+file))}
}

// lvsJSON is a one-LV lvs report.
func lvsJSON(name, attr, origin string, tags []string) string {
	return fmt.Sprintf(`{"report":[{"lv":[{"lv_name":%q,"vg_name":"vg0","lv_uuid":"u","lv_attr":%q,"lv_size":"1073741824","origin":%q,"lv_tags":%q}]}]}`,
		name, attr, origin, strings.Join(tags, ","))
}

func tagArgs(o Owner) []string {
	var a []string
	for _, t := range o.Tags() {
		a = append(a, "--addtag", t)
	}
	return a
}

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var lookupArgs = func(ref string) []string {
	return []string{"lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", lvFields, ref}
}

func TestFakeCreate(t *testing.T) {
	tmpl := Ref{VG: "vg0", Name: "tmpl"}
	classic := func(c *Client) (LV, error) {
		return c.CreateClassicSnapshot(context.Background(), tmpl, "c1", 1<<30, ownerA)
	}
	classicArgs := cat([]string{"lvcreate", "--yes"}, tagArgs(ownerA), []string{"-s", "-n", "c1", "-L", "1073741824b", "vg0/tmpl"})
	cases := []struct {
		name    string
		replies func(t *testing.T) []fakeReply
		call    func(c *Client) (LV, error)
		want    [][]string
		wantErr error
		wantLV  string
	}{
		{
			name: "classic snapshot",
			replies: func(t *testing.T) []fakeReply {
				return []fakeReply{ok(""), fixtureReply(t, "constructed/lvs-classic-snapshot-in-use.json")}
			},
			call:   classic,
			want:   [][]string{classicArgs, lookupArgs("vg0/c1")},
			wantLV: "c1",
		},
		{
			name: "classic snapshot exists and is ours: success",
			replies: func(t *testing.T) []fakeReply {
				return []fakeReply{stderrReply(t, 5, "name-exists.txt"), fixtureReply(t, "constructed/lvs-classic-snapshot-in-use.json")}
			},
			call:   classic,
			want:   [][]string{classicArgs, lookupArgs("vg0/c1")},
			wantLV: "c1",
		},
		{
			name: "classic snapshot exists, another owner",
			replies: func(t *testing.T) []fakeReply {
				return []fakeReply{stderrReply(t, 5, "name-exists.txt"), fixtureReply(t, "constructed/lvs-classic-snapshot-in-use.json")}
			},
			call: func(c *Client) (LV, error) {
				return c.CreateClassicSnapshot(context.Background(), tmpl, "c1", 1<<30, ownerB)
			},
			wantErr: ErrConflict,
		},
		{
			name: "classic snapshot exists, ours, other origin",
			replies: func(t *testing.T) []fakeReply {
				return []fakeReply{stderrReply(t, 5, "name-exists.txt"), fixtureReply(t, "constructed/lvs-classic-snapshot-in-use.json")}
			},
			call: func(c *Client) (LV, error) {
				return c.CreateClassicSnapshot(context.Background(), Ref{VG: "vg0", Name: "tmpl2"}, "c1", 1<<30, ownerA)
			},
			wantErr: ErrConflict,
		},
		{
			name: "classic snapshot, VG full",
			replies: func(t *testing.T) []fakeReply {
				return []fakeReply{stderrReply(t, 5, "insufficient-vg.txt")}
			},
			call:    classic,
			want:    [][]string{classicArgs},
			wantErr: ErrInsufficientSpace,
		},
		{
			name: "thin snapshot",
			replies: func(t *testing.T) []fakeReply {
				return []fakeReply{ok(""), fixtureReply(t, "constructed/lvs-thin-pool.json")}
			},
			call: func(c *Client) (LV, error) {
				return c.CreateThinSnapshot(context.Background(), Ref{VG: "vg0", Name: "tmpl-thin"}, "c2", ownerA)
			},
			want:   [][]string{cat([]string{"lvcreate", "--yes"}, tagArgs(ownerA), []string{"-s", "-n", "c2", "vg0/tmpl-thin"}), lookupArgs("vg0/c2")},
			wantLV: "c2",
		},
		{
			name: "thin snapshot of external origin",
			replies: func(t *testing.T) []fakeReply {
				return []fakeReply{ok(""), fixtureReply(t, "constructed/lvs-external-origin.json")}
			},
			call: func(c *Client) (LV, error) {
				return c.CreateThinSnapshotOfExternalOrigin(context.Background(), tmpl, "pool0", "c4", ownerA)
			},
			want: [][]string{cat([]string{"lvcreate", "--yes"}, tagArgs(ownerA),
				[]string{"-s", "--thinpool", "pool0", "-n", "c4", "vg0/tmpl"}), lookupArgs("vg0/c4")},
			wantLV: "c4",
		},
		{
			name: "external origin snapshot exists in another pool",
			replies: func(t *testing.T) []fakeReply {
				return []fakeReply{stderrReply(t, 5, "name-exists.txt"), fixtureReply(t, "constructed/lvs-external-origin.json")}
			},
			call: func(c *Client) (LV, error) {
				return c.CreateThinSnapshotOfExternalOrigin(context.Background(), tmpl, "pool9", "c4", ownerA)
			},
			wantErr: ErrConflict,
		},
		{
			name:    "bad name never reaches lvm",
			replies: func(t *testing.T) []fakeReply { return nil },
			call: func(c *Client) (LV, error) {
				return c.CreateClassicSnapshot(context.Background(), tmpl, "-rf", 1<<30, ownerA)
			},
			wantErr: ErrInvalidArgument,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.replies(t)...)
			lv, err := tc.call(f.client)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (lv.Name != tc.wantLV || !lv.OwnedBy(ownerA.UID)) {
				t.Errorf("lv = %+v", lv)
			}
			if got := f.calls(t); tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("calls:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestFakeChange(t *testing.T) {
	ctx := context.Background()
	c1 := Ref{VG: "vg0", Name: "c1"}
	snapOurs := lvsJSON("c1", "swi-aos---", "tmpl", ownerA.Tags())
	cases := []struct {
		name    string
		replies []fakeReply
		call    func(c *Client) error
		want    [][]string
		wantErr error
	}{
		{"activate ignores activation skip", []fakeReply{ok("")},
			func(c *Client) error { return c.Activate(ctx, Ref{VG: "vg0", Name: "c3"}) },
			[][]string{{"lvchange", "--yes", "-ay", "-K", "vg0/c3"}}, nil},
		{"deactivate", []fakeReply{ok("")},
			func(c *Client) error { return c.Deactivate(ctx, Ref{VG: "vg0", Name: "tmpl"}) },
			[][]string{{"lvchange", "--yes", "-an", "vg0/tmpl"}}, nil},
		{"extend by", []fakeReply{ok(snapOurs), ok("")},
			func(c *Client) error { return c.ExtendSnapshot(ctx, c1, ownerA, 100*mib) },
			[][]string{lookupArgs("vg0/c1"), {"lvextend", "--yes", "-L", "+104857600b", "vg0/c1"}}, nil},
		{"extend by rounds to sectors", []fakeReply{ok(snapOurs), ok("")},
			func(c *Client) error { return c.ExtendSnapshot(ctx, c1, ownerA, 1000) },
			[][]string{lookupArgs("vg0/c1"), {"lvextend", "--yes", "-L", "+1024b", "vg0/c1"}}, nil},
		{"extend to a larger size", []fakeReply{ok(snapOurs), ok("")},
			func(c *Client) error { return c.ExtendSnapshotTo(ctx, c1, ownerA, 2<<30) },
			[][]string{lookupArgs("vg0/c1"), {"lvextend", "--yes", "-L", "2147483648b", "vg0/c1"}}, nil},
		{"extend to a size it has: no-op", []fakeReply{ok(snapOurs)},
			func(c *Client) error { return c.ExtendSnapshotTo(ctx, c1, ownerA, 1<<30) },
			[][]string{lookupArgs("vg0/c1")}, nil},
		{"extend someone else's snapshot", []fakeReply{ok(lvsJSON("c1", "swi-aos---", "tmpl", nil))},
			func(c *Client) error { return c.ExtendSnapshot(ctx, c1, ownerA, mib) },
			[][]string{lookupArgs("vg0/c1")}, ErrNotOwned},
		{"extend our thin LV would grow the disk", []fakeReply{ok(lvsJSON("c1", "Vwi-aotz--", "tmpl", ownerA.Tags()))},
			func(c *Client) error { return c.ExtendSnapshot(ctx, c1, ownerA, mib) },
			[][]string{lookupArgs("vg0/c1")}, ErrInvalidArgument},
		{"extend without room", []fakeReply{ok(snapOurs), stderrReply(t, 5, "insufficient-extend.txt")},
			func(c *Client) error { return c.ExtendSnapshot(ctx, c1, ownerA, 1<<30) },
			nil, ErrInsufficientSpace},
		{"remove ours", []fakeReply{ok(snapOurs), ok("")},
			func(c *Client) error { return c.Remove(ctx, c1, ownerA) },
			[][]string{lookupArgs("vg0/c1"), {"lvremove", "--yes", "vg0/c1"}}, nil},
		{"remove lost a race: done", []fakeReply{ok(snapOurs), stderrReply(t, 5, "lv-not-found.txt")},
			func(c *Client) error { return c.Remove(ctx, c1, ownerA) }, nil, nil},
		{"remove of an origin is refused", []fakeReply{ok(lvsJSON("c1", "owi-aos---", "", ownerA.Tags()))},
			func(c *Client) error { return c.Remove(ctx, c1, ownerA) },
			[][]string{lookupArgs("vg0/c1")}, ErrInUse},
		{"remove of an open LV", []fakeReply{ok(snapOurs), {Exit: 5, Stderr: "  Logical volume vg0/c1 in use.\n"}},
			func(c *Client) error { return c.Remove(ctx, c1, ownerA) }, nil, ErrInUse},
		{"read-only: already", []fakeReply{ok(lvsJSON("tmpl", "ori-aos---", "", nil))},
			func(c *Client) error { return c.SetOriginReadOnly(ctx, Ref{VG: "vg0", Name: "tmpl"}) },
			[][]string{lookupArgs("vg0/tmpl")}, nil},
		{"read-only: set", []fakeReply{ok(lvsJSON("tmpl", "-wi-a-----", "", nil)), ok("")},
			func(c *Client) error { return c.SetOriginReadOnly(ctx, Ref{VG: "vg0", Name: "tmpl"}) },
			[][]string{lookupArgs("vg0/tmpl"), {"lvchange", "--yes", "-pr", "--addtag", MadeReadOnlyTag, "vg0/tmpl"}}, nil},
		{"writable again: ours", []fakeReply{ok(lvsJSON("tmpl", "ori-a-----", "", []string{MadeReadOnlyTag})), ok("")},
			func(c *Client) error { return c.RestoreOriginWritable(ctx, Ref{VG: "vg0", Name: "tmpl"}) },
			[][]string{lookupArgs("vg0/tmpl"), {"lvchange", "--yes", "--deltag", MadeReadOnlyTag, "-prw", "vg0/tmpl"}}, nil},
		{"writable again: not ours", []fakeReply{ok(lvsJSON("tmpl", "ori-a-----", "", nil))},
			func(c *Client) error { return c.RestoreOriginWritable(ctx, Ref{VG: "vg0", Name: "tmpl"}) },
			[][]string{lookupArgs("vg0/tmpl")}, ErrNotOwned},
		{"read-only: lost a race", []fakeReply{ok(lvsJSON("tmpl", "-wi-a-----", "", nil)), stderrReply(t, 5, "already-read-only.txt")},
			func(c *Client) error { return c.SetOriginReadOnly(ctx, Ref{VG: "vg0", Name: "tmpl"}) }, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.replies...)
			err := tc.call(f.client)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got := f.calls(t); tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("calls:\n got %q\nwant %q", got, tc.want)
			}
			if len(f.calls(t)) != len(tc.replies) {
				t.Errorf("%d calls for %d scripted replies", len(f.calls(t)), len(tc.replies))
			}
		})
	}
}

// TestFakeReport: one lvm call for the VG and all LVs, with the configured --config.
func TestFakeReport(t *testing.T) {
	f := newFake(t, fixtureReply(t, "real/fullreport-thick.json"))
	f.client.Config = "global{activation=0}"
	rep, err := f.client.Report(context.Background(), "xenclonefixture")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.LVs) != 3 || rep.VG.Free != 46137344 {
		t.Errorf("report = %+v", rep)
	}
	calls := readCalls(f.dir)
	want := []string{"fullreport", "--config", `global{activation=0} report{time_format="%s"}`,
		"--reportformat", "json", "--units", "b", "--nosuffix",
		"--configreport", "vg", "-o", vgFields, "--configreport", "lv", "-o", lvFields,
		"--configreport", "pv", "-o,", "--configreport", "pvseg", "-o,", "--configreport", "seg", "-o,", "xenclonefixture"}
	if len(calls) != 1 || !reflect.DeepEqual(calls[0], want) {
		t.Errorf("calls %q\nwant one %q", calls, want)
	}

	// A report of another VG than asked for (or none) is "not found", not garbage.
	f = newFake(t, fixtureReply(t, "real/fullreport-thick.json"))
	if _, err := f.client.Report(context.Background(), "vg0"); !errors.Is(err, ErrVGNotFound) {
		t.Errorf("mismatched VG: %v", err)
	}
}

// TestFakeCancel: a hung lvm (e.g. waiting for a lock) is ended by the caller's context.
func TestFakeCancel(t *testing.T) {
	f := newFake(t, fakeReply{Sleep: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := f.client.Report(ctx, "vg0")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Kind != nil {
		t.Errorf("a killed run must stay unclassified: %#v", e)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("took %v", took)
	}
}
