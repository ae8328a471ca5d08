package lvm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/xenclone/xenclone/hostagent/command"
)

func lvmFailure(exit int, stderr string) error {
	return &command.Error{Args: []string{"lvm", "lvcreate", "vg0"}, ExitCode: exit, Stderr: stderr,
		Err: fmt.Errorf("exit status %d", exit)}
}

// TestClassifyRealStderr classifies what the real lvm2 printed (testdata/real/stderr).
func TestClassifyRealStderr(t *testing.T) {
	captures := append(stderrCaptures, struct {
		file   string
		kind   error
		exit   int
		config string
		args   []string
	}{"lock-nowait.txt", ErrLockTimeout, 5, "", nil})
	for _, c := range captures {
		t.Run(c.file, func(t *testing.T) {
			stderr := string(readFixture(t, "real/stderr/"+c.file))
			err := classify("op", lvmFailure(c.exit, stderr))
			var e *Error
			if !errors.As(err, &e) || e.Kind != c.kind {
				t.Fatalf("classified as %v, want %v; stderr:\n%s", e.Kind, c.kind, stderr)
			}
			if command.Stderr(err) != stderr || command.ExitCode(err) != c.exit {
				t.Errorf("command error lost: %q %d", command.Stderr(err), command.ExitCode(err))
			}
		})
	}
}

// TestClassifySourceStderr covers texts taken from lvm2's source (lvmteam/lvm2 d804677)
// that this machine cannot produce.
func TestClassifySourceStderr(t *testing.T) {
	cases := []struct {
		stderr string
		want   error
	}{
		{"  Giving up waiting for lock.\n  Can't get lock for vg0.\n", ErrLockTimeout},
		{"  Logical volume vg0/c1 in use.\n", ErrInUse},
		{"  Logical volume vg0/c1 contains a filesystem in use.\n", ErrInUse},
		{"  Can't remove logical volume vg0/tmpl under snapshot.\n", ErrInUse},
		{"  Can't remove external origin logical volume vg0/tmpl.\n", ErrInUse},
		{"  Free space in pool vg0/pool0 is above threshold, new volumes are not allowed.\n", ErrInsufficientSpace},
		{"  Insufficient suitable allocatable extents for logical volume c1: 10 more required\n", ErrInsufficientSpace},
		{"  Logical volume c1 already exists in Volume group vg0.\n", ErrNameExists},
		{"  Pool pool0 not found in Volume group vg0.\n", ErrThinPoolNotFound},
		{"  Origin volume tmpl not found in Volume group vg0.\n", ErrOriginNotFound},
		{"  Couldn't find origin volume 'vg0/tmpl'.\n", ErrOriginNotFound},
		{"  Cannot use active LV for the external origin.\n", ErrInUse},
		{"  Cannot use writable volume vg0/tmpl as external origin.\n", ErrInvalidArgument},
		{"  Please specify either size or extents with snapshots.\n", ErrInvalidArgument},
		{"  Logical volume vg0/data is not a thin pool volume.\n", ErrInvalidArgument},
		{"  snapshot: Required device-mapper target(s) not detected in your kernel.\n", ErrNoDeviceMapper},
		// A specific failure wins over the generic device-mapper lines a dm-less host adds.
		{"  /dev/mapper/control: open failed: No such device\n  Failure to communicate with kernel device-mapper driver.\n  Volume group \"vg9\" not found\n", ErrVGNotFound},
		{"  something new\n", nil},
	}
	for _, tc := range cases {
		err := classify("op", lvmFailure(5, tc.stderr))
		var e *Error
		if !errors.As(err, &e) || e.Kind != tc.want {
			t.Errorf("%q: kind %v, want %v", tc.stderr, e.Kind, tc.want)
		}
	}
}

func TestErrorChain(t *testing.T) {
	err := classify("create classic snapshot vg0/c1 of vg0/tmpl", lvmFailure(5, "  Snapshot origin LV tmpl not found in Volume group vg0.\n"))
	for _, target := range []error{ErrOriginNotFound, ErrLVNotFound} {
		if !errors.Is(err, target) {
			t.Errorf("not %v: %v", target, err)
		}
	}
	if errors.Is(err, ErrThinPoolNotFound) || errors.Is(err, ErrVGNotFound) {
		t.Errorf("too many kinds: %v", err)
	}
	var ce *command.Error
	if !errors.As(err, &ce) || ce.Args[1] != "lvcreate" {
		t.Errorf("command error not reachable: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"create classic snapshot vg0/c1", "snapshot origin not found", "lvm lvcreate vg0", "Snapshot origin LV tmpl not found"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}

	// A killed lvm (context over while it waited for a lock) is not classified from stderr.
	killed := &command.Error{Args: []string{"lvm", "lvs"}, ExitCode: -1, Stderr: "  Giving up waiting for lock.\n",
		Err: fmt.Errorf("%w (signal: killed)", context.DeadlineExceeded)}
	err = classify("op", killed)
	if errors.Is(err, ErrLockTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("killed run: %v", err)
	}

	refused := refusal("remove vg0/x", ErrNotOwned, "vg0/x has no xenclone owner tag")
	if !errors.Is(refused, ErrNotOwned) || !strings.Contains(refused.Error(), "no xenclone owner tag") {
		t.Errorf("refusal: %v", refused)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		err  error
	}{
		{"vg0", ValidateName("vg0")},
		{"-x", ValidateName("-x")},
		{"..", ValidateName("..")},
		{"a b", ValidateName("a b")},
		{"long", ValidateName(strings.Repeat("a", 128))},
		{"max", ValidateName(strings.Repeat("a", 127))},
		{"snapshot1", ValidateLVName("snapshot1")},
		{"x_tmeta", ValidateLVName("x_tmeta")},
		{"clone-1.a+b_c", ValidateLVName("clone-1.a+b_c")},
		{"tag", ValidateTag("xenclone.clone=ns/name:#&!+")},
		{"tag space", ValidateTag("a b")},
		{"tag comma", ValidateTag("a,b")},
		{"owner", ownerA.Validate()},
		{"owner no uid", Owner{Namespace: "a", Name: "b"}.Validate()},
	}
	wantErr := map[string]bool{"-x": true, "..": true, "a b": true, "long": true, "snapshot1": true, "x_tmeta": true,
		"tag space": true, "tag comma": true, "owner no uid": true}
	for _, tc := range cases {
		if (tc.err != nil) != wantErr[tc.name] {
			t.Errorf("%s: err = %v", tc.name, tc.err)
		}
		if tc.err != nil && tc.name != "owner no uid" && !errors.Is(tc.err, ErrInvalidArgument) {
			t.Errorf("%s: %v is not ErrInvalidArgument", tc.name, tc.err)
		}
	}
}
