package lvm

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Garbage from lvm itself: a broken or hostile lvm (a wrapper script, a version that changed
// its JSON, a disk full while writing the report) must give a clear error and never lead to a
// write. The fake lvm records every call, so "nothing written" is checked exactly.

func isWrite(args []string) bool {
	switch args[0] {
	case "lvcreate", "lvremove", "lvchange", "lvextend", "lvresize", "vgchange":
		return true
	}
	return false
}

func TestHostileLVMOutput(t *testing.T) {
	ref := Ref{VG: "vg0", Name: "c1"}
	mine := lvsJSON("c1", "swi-a-s---", "tmpl", ownerA.Tags())
	cases := []struct {
		name    string
		replies []fakeReply
		call    func(c *Client) error
		// wantErr is matched with errors.Is when set; wantMsg must appear in the message.
		wantErr error
		wantMsg string
		// writes is the number of write commands (lvcreate, lvremove, …) allowed to run.
		writes int
	}{
		{
			name:    "report: truncated JSON",
			replies: []fakeReply{{Stdout: `{"report":[{"vg":[{"vg_name":"vg0","vg_size":"1073`}},
			call:    func(c *Client) error { _, err := c.Report(context.Background(), "vg0"); return err },
			wantMsg: "lvm report vg0",
		},
		{
			name:    "report: not JSON at all, exit 0",
			replies: []fakeReply{{Stdout: "  WARNING: Running as a non-root user. Functionality may be unavailable.\n"}},
			call:    func(c *Client) error { _, err := c.Report(context.Background(), "vg0"); return err },
			wantMsg: "lvm report vg0",
		},
		{
			name:    "report: size overflows uint64",
			replies: []fakeReply{{Stdout: `{"report":[{"vg":[{"vg_name":"vg0","vg_size":"18446744073709551616","vg_free":"0","vg_extent_size":"4194304","vg_extent_count":"1","vg_free_count":"0"}],"lv":[]}]}`}},
			call:    func(c *Client) error { _, err := c.Report(context.Background(), "vg0"); return err },
			wantMsg: "vg_size",
		},
		{
			name:    "report: an empty report (no VG) for the VG asked",
			replies: []fakeReply{{Stdout: `{"report":[]}`}},
			call:    func(c *Client) error { _, err := c.Report(context.Background(), "vg0"); return err },
			wantErr: ErrVGNotFound,
		},
		{
			name:    "non-zero exit with binary and escape codes on stderr",
			replies: []fakeReply{{Exit: 5, Stderr: "\x1b[31m\x00\xff\xfe  Internal error: Unreleased memory pool(s) found.\x1b[0m\n"}},
			call:    func(c *Client) error { _, err := c.Report(context.Background(), "vg0"); return err },
			wantMsg: "Internal error: Unreleased memory pool",
		},
		{
			name:    "non-zero exit with 1 MiB of stderr",
			replies: []fakeReply{{Exit: 3, Stderr: strings.Repeat("x", 1<<20)}},
			call:    func(c *Client) error { _, err := c.Report(context.Background(), "vg0"); return err },
			wantMsg: "…", // cut, not a megabyte in a Kubernetes condition
		},
		{
			name:    "remove: lookup answers garbage → nothing removed",
			replies: []fakeReply{{Stdout: `{"report":[{"lv":[{"lv_name":"c1","vg_name":"vg0","lv_attr":"swi-a-s---","lv_size":"-1"`}},
			call:    func(c *Client) error { return c.Remove(context.Background(), ref, ownerA) },
			wantMsg: "lookup vg0/c1",
		},
		{
			name:    "remove: lookup answers another LV than asked → not found, nothing removed",
			replies: []fakeReply{{Stdout: lvsJSON("other", "-wi-a-----", "", ownerA.Tags())}},
			call:    func(c *Client) error { return c.Remove(context.Background(), ref, ownerA) },
		},
		{
			name:    "remove: lookup answers an unknown lv_attr → refused",
			replies: []fakeReply{{Stdout: lvsJSON("c1", "?!?", "", ownerA.Tags())}},
			call:    func(c *Client) error { return c.Remove(context.Background(), ref, ownerA) },
			wantMsg: "lv_attr",
		},
		{
			name: "remove: owner tag split across tags by a comma trick → not ours, nothing removed",
			replies: []fakeReply{{Stdout: lvsJSON("c1", "-wi-a-----", "",
				[]string{"xenclone.managed", "note=" + OwnerUIDTagPrefix + ownerA.UID + "x"})}},
			call:    func(c *Client) error { return c.Remove(context.Background(), ref, ownerA) },
			wantErr: ErrNotOwned,
		},
		{
			name:    "remove: unexpected fields in the report are ignored, ownership still checked",
			replies: []fakeReply{{Stdout: strings.Replace(mine, `"lv_name"`, `"lv_future_field":{"nested":[1,2]},"lv_name"`, 1)}, ok("")},
			call:    func(c *Client) error { return c.Remove(context.Background(), ref, ownerA) },
			writes:  1,
		},
		{
			name:    "tag: lookup truncated → nothing tagged",
			replies: []fakeReply{{Stdout: mine[:len(mine)/2]}},
			call:    func(c *Client) error { return c.AddTag(context.Background(), ref, ownerA, "xenclone.prepared") },
			wantMsg: "lookup vg0/c1",
		},
		{
			name:    "create: lvcreate ok, read back is garbage → clear error (the LV carries our tags for the orphan collector)",
			replies: []fakeReply{ok(""), {Stdout: "{"}},
			call: func(c *Client) error {
				_, err := c.CreateClassicSnapshot(context.Background(), Ref{VG: "vg0", Name: "tmpl"}, "c1", 1<<30, ownerA)
				return err
			},
			wantMsg: "created, but reading it back failed",
			writes:  1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.replies...)
			err := tc.call(f.client)
			if tc.wantErr == nil && tc.wantMsg == "" {
				if err != nil && !strings.Contains(tc.name, "not found") {
					t.Fatalf("want success, got %v", err)
				}
			} else {
				if err == nil {
					t.Fatal("want an error, got none")
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("want %v, got %v", tc.wantErr, err)
				}
				if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("error does not say %q: %.300s", tc.wantMsg, err.Error())
				}
				if len(err.Error()) > 4096 {
					t.Errorf("error is %d bytes: too long for a condition message", len(err.Error()))
				}
			}
			writes := 0
			for _, c := range f.calls(t) {
				if isWrite(c) {
					writes++
				}
			}
			if writes != tc.writes {
				t.Errorf("%d write commands ran, want %d: %v", writes, tc.writes, f.calls(t))
			}
		})
	}
}
