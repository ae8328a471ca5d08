package xen

import (
	"errors"
	"testing"

	"github.com/xenclone/xenclone/hostagent/command"
)

func TestClassify(t *testing.T) {
	cmdErr := func(code int, stderr string) error {
		return &command.Error{Args: []string{"xl"}, ExitCode: code, Stderr: stderr, Err: errors.New("exit status")}
	}
	for _, tc := range []struct {
		op, stderr string
		code       int
		want       error
	}{
		{"create", "Parsing config from /c.cfg\nlibxl: error: libxl_domain.c:81:libxl__domain_rename: Domain 5:Domain with name \"vm\" already exists.\n", 3, ErrDomainExists},
		{"create", "xc: error: panic: xg_dom_boot.c:119: xc_dom_boot_mem_init: can't allocate low memory for domain: Out of memory\nlibxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain 5:Non-existant domain\n", 3, ErrNoMemory},
		{"create", "libxl: error: libxl_device.c:1337:device_hotplug_child_death_cb: script: Could not find bridge device xenbr9\n", 3, ErrMissingBridge},
		{"create", "Parsing config from /c.cfg\nsome new xl_parse complaint\n", 1, ErrBadConfig},
		{"create", "nsenter: cannot open /proc/1/ns/mnt: Permission denied\n", 1, nil},
		{"create", "Failed to read config file: /c.cfg: No such file or directory\n", 3, ErrBadConfig},
		{"destroy", "vm is an invalid domain identifier (rc=-6)\n", 1, ErrNoSuchDomain},
		{"list", "Error: Domain '42' does not exist.\n", 1, ErrNoSuchDomain},
		{"shutdown", "Shutting down domain 5\nlibxl: error: libxl_domain.c:854:pvcontrol_cb: guest didn't acknowledge control request: -9\nshutdown failed (rc=-9)\n", 1, ErrShutdownNotAcknowledged},
		{"shutdown", "Shutting down domain 5\nPV control interface not available: external graceful shutdown not possible.\n", 1, ErrNoPVControl},
		{"list", "libxl_list_domain failed.\n", 1, nil},
		// A create whose cause is not known is unclassified, never ErrNoSuchDomain: the
		// clean-up lines of the half-built domain follow every failed create.
		{"create", "Parsing config from /c.cfg\nlibxl: error: libxl_create.c:1999:some_new_step: Domain 7:something new went wrong\nlibxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain 7:Non-existant domain\nlibxl: error: libxl_domain.c:1137:domain_destroy_callback: Domain 7:Unable to destroy guest\n", 3, nil},
		{"destroy", "libxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain 7:Non-existant domain\n", 1, ErrNoSuchDomain},
	} {
		err := classify(tc.op, "vm", cmdErr(tc.code, tc.stderr))
		var xe *Error
		if !errors.As(err, &xe) || xe.Kind != tc.want {
			t.Errorf("%s %q: kind %v, want %v", tc.op, tc.stderr, xe.Kind, tc.want)
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("errors.Is(%v, %v) is false", err, tc.want)
		}
		if command.Stderr(err) != tc.stderr || command.ExitCode(err) != tc.code {
			t.Errorf("stderr/exit code lost: %v", err)
		}
	}
	if classify("list", "", nil) != nil {
		t.Error("nil error must stay nil")
	}
}
