package xen

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Garbage from xl: a fake xl (a shell script) answers each subcommand from files, and records
// every call. Whatever it prints, the driver must return a clear error, and must never destroy
// a domain whose ownership it could not prove.

const fakeXL = `#!/bin/sh
dir="$(dirname "$0")"
printf '%s\n' "$*" >>"$dir/calls"
sub="$1"
if [ "$1" = list ] && [ "$2" = -l ]; then sub=list-l; fi
[ -f "$dir/$sub.out" ] && cat "$dir/$sub.out"
[ -f "$dir/$sub.err" ] && cat "$dir/$sub.err" >&2
[ -f "$dir/$sub.rc" ] && exit "$(cat "$dir/$sub.rc")"
exit 0
`

type xlReply struct {
	out, err string
	rc       string
}

func newFakeXL(t *testing.T, replies map[string]xlReply) (*Driver, func() []string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "xl")
	if err := os.WriteFile(bin, []byte(fakeXL), 0o755); err != nil {
		t.Fatal(err)
	}
	for sub, r := range replies {
		for ext, v := range map[string]string{".out": r.out, ".err": r.err, ".rc": r.rc} {
			if v != "" {
				if err := os.WriteFile(filepath.Join(dir, sub+ext), []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	calls := func() []string {
		b, _ := os.ReadFile(filepath.Join(dir, "calls"))
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	return &Driver{XL: bin}, calls
}

func TestHostileXLOutput(t *testing.T) {
	const uuid = "5a0b3c9e-8d1f-4e2a-9b7c-1d2e3f405162"
	longJSON := string(fixture(t, "list-l-lab.json"))
	ctx := context.Background()
	destroyOwned := func(d *Driver) error { return d.DestroyOwned(ctx, "lab-domu1", uuid) }
	cases := []struct {
		name    string
		replies map[string]xlReply
		call    func(d *Driver) error
		wantErr error
		wantMsg string
		destroy bool // whether `xl destroy` may run
	}{
		{
			name:    "list: truncated table",
			replies: map[string]xlReply{"list": {out: "Name                                        ID   Mem VCPUs\tState\tTime(s)\nDomain-0    0  10"}},
			call:    func(d *Driver) error { _, err := d.List(ctx); return err },
			wantMsg: "list",
		},
		{
			name:    "list: HTML error page from a wrapper",
			replies: map[string]xlReply{"list": {out: "<html><body>502 Bad Gateway</body></html>\n"}},
			call:    func(d *Driver) error { _, err := d.List(ctx); return err },
			wantMsg: "list",
		},
		{
			name:    "list: exit 1 with escape codes and NULs on stderr",
			replies: map[string]xlReply{"list": {err: "\x1b[1mlibxl: error: \x00\xff cannot connect to xenstored\x1b[0m\n", rc: "1"}},
			call:    func(d *Driver) error { _, err := d.List(ctx); return err },
			wantMsg: "xenstored",
		},
		{
			name:    "destroy: list -l truncated → ownership unproven, nothing destroyed",
			replies: map[string]xlReply{"list-l": {out: longJSON[:len(longJSON)/3]}},
			call:    destroyOwned,
			wantMsg: "list",
		},
		{
			name:    "destroy: list -l shows another uuid for the name → not ours, nothing destroyed",
			replies: map[string]xlReply{"list-l": {out: strings.Replace(longJSON, uuid, "00000000-0000-4000-8000-000000000000", 1)}},
			call:    destroyOwned,
			wantErr: ErrNotOwned,
		},
		{
			name:    "destroy: list -l with unknown fields and our uuid → destroyed by domid",
			replies: map[string]xlReply{"list-l": {out: strings.Replace(longJSON, `"domid": 1,`, `"domid": 1, "future": {"x": [1, "y"]},`, 1)}},
			call:    destroyOwned,
			destroy: true,
		},
		{
			name:    "destroy: list -l answers an empty array → not provably ours",
			replies: map[string]xlReply{"list-l": {out: "[]\n"}},
			call:    destroyOwned,
			wantErr: ErrNotOwned,
		},
		{
			name:    "destroy: list -l uuid case-folded or padded → not ours",
			replies: map[string]xlReply{"list-l": {out: strings.Replace(longJSON, uuid, " "+strings.ToUpper(uuid), 1)}},
			call:    destroyOwned,
			wantErr: ErrNotOwned,
		},
		{
			name:    "create: exit 1 without the parsing line, odd stderr → error, not a config error",
			replies: map[string]xlReply{"create": {err: "nsenter: cannot open /proc/1/ns/mnt: Permission denied\n", rc: "1"}},
			call: func(d *Driver) error {
				return d.Create(ctx, "vm-1", "/var/lib/xenclone/domains/vm-1.cfg", CreateOptions{})
			},
			wantMsg: "Permission denied",
		},
		{
			name:    "info: garbage",
			replies: map[string]xlReply{"info": {out: "total_memory : lots\nfree_memory : -5\n"}},
			call:    func(d *Driver) error { _, err := d.Info(ctx); return err },
			wantMsg: "info",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, calls := newFakeXL(t, tc.replies)
			err := tc.call(d)
			switch {
			case tc.wantErr == nil && tc.wantMsg == "":
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
			case err == nil:
				t.Fatal("want an error, got none")
			default:
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("want %v, got %v", tc.wantErr, err)
				}
				if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("error does not say %q: %.300s", tc.wantMsg, err.Error())
				}
				if errors.Is(err, ErrBadConfig) {
					t.Errorf("classified as a bad config: %v", err)
				}
			}
			destroyed := false
			for _, c := range calls() {
				if strings.HasPrefix(c, "destroy") {
					destroyed = true
					if c != "destroy 1" {
						t.Errorf("destroy by %q, want by the listed domid: destroy 1", c)
					}
				}
			}
			if destroyed != tc.destroy {
				t.Errorf("xl destroy ran: %v, want %v (calls %v)", destroyed, tc.destroy, calls())
			}
		})
	}
}
