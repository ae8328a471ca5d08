// Package lvm is the node agent's typed driver for lvm2: reports decoded once into VG and LV
// structs, snapshot operations that are idempotent and refuse LVs we do not own, failures
// classified into errors usable with errors.Is, and a pure usage policy that turns a report
// into decisions (extend, at risk, full).
//
// Every call runs the lvm binary through command.Runner (prefix, context, stderr kept), as
// `lvm <subcommand> …` — one multi-call binary, so a host needs only one path configured.
// Nothing here keeps state: a Client is safe for concurrent use, and lvm serializes metadata
// changes per VG with its own lock (the caller bounds its own parallelism).
package lvm

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/go-logr/logr"

	"github.com/xenclone/xenclone/hostagent/command"
)

// DefaultBinary is the lvm2 multi-call binary.
const DefaultBinary = "lvm"

// Client runs lvm2 commands.
type Client struct {
	// Runner runs every command; its Prefix (e.g. nsenter into the host's namespaces) and
	// Env apply.
	Runner command.Runner
	// Binary is the lvm binary, DefaultBinary when empty.
	Binary string
	// Config, when set, is passed as `--config` to every command, e.g.
	// `global{activation=0}` on a kernel without device-mapper (tests), or
	// `global{wait_for_locks=0}` to fail fast with ErrLockTimeout instead of queueing behind
	// another lvm command.
	Config string
}

// reportConfig pins lv_time to epoch seconds so a host's report/time_format cannot change it.
const reportConfig = `report{time_format="%s"}`

// run runs `lvm sub [--config …] args…` and classifies a failure as op.
func (c *Client) run(ctx context.Context, op string, extraConfig string, sub string, args ...string) ([]byte, error) {
	bin := c.Binary
	if bin == "" {
		bin = DefaultBinary
	}
	argv := make([]string, 0, len(args)+3)
	argv = append(argv, sub)
	if cfg := strings.TrimSpace(c.Config + " " + extraConfig); cfg != "" {
		argv = append(argv, "--config", cfg)
	}
	argv = append(argv, args...)
	r := c.Runner
	// The agent may inherit descriptors without close-on-exec (Go passes them on); lvm then
	// prints "File descriptor N leaked on lvm invocation" into the stderr we show users.
	base := r.Env
	if base == nil {
		base = os.Environ()
	}
	r.Env = append(slices.Clip(base), "LVM_SUPPRESS_FD_WARNINGS=1")
	out, err := r.Run(ctx, bin, argv...)
	if err != nil {
		return nil, classify(op, err)
	}
	return out, nil
}

// Report returns vg and all its visible LVs from ONE lvm call (`lvm fullreport`), so a
// reconcile costs one lvm run whatever the number of clones. Hidden sub-LVs (a pool's
// _tdata/_tmeta, the metadata spare) are left out, as plain lvs does without -a
// (process_each_lv_in_vg, tools/toollib.c).
func (c *Client) Report(ctx context.Context, vg string) (Report, error) {
	op := "lvm report " + vg
	if err := ValidateName(vg); err != nil {
		return Report{}, &Error{Op: op, Kind: ErrInvalidArgument, Err: err}
	}
	reps, err := c.fullReport(ctx, op, vg)
	if err != nil {
		return Report{}, err
	}
	if len(reps) != 1 || reps[0].VG.Name != vg {
		// lvm exits 5 for a missing VG; an empty answer means the same.
		return Report{}, refusal(op, ErrVGNotFound, "lvm reported no such volume group")
	}
	return reps[0], nil
}

// ReportAll returns every VG lvm sees, each with its visible LVs, from one lvm call: the
// host's capacity (XenHost status) without one call per VG.
func (c *Client) ReportAll(ctx context.Context) ([]Report, error) {
	return c.fullReport(ctx, "lvm report", "")
}

func (c *Client) fullReport(ctx context.Context, op, vg string) ([]Report, error) {
	args := []string{"--reportformat", "json", "--units", "b", "--nosuffix",
		"--configreport", "vg", "-o", vgFields,
		"--configreport", "lv", "-o", lvFields,
		// fullreport cannot leave a sub-report out; an empty field list ("-o,") keeps it empty.
		"--configreport", "pv", "-o,",
		"--configreport", "pvseg", "-o,",
		"--configreport", "seg", "-o,"}
	if vg != "" {
		args = append(args, vg)
	}
	out, err := c.run(ctx, op, reportConfig, "fullreport", args...)
	if err != nil {
		return nil, err
	}
	reps, err := ParseFullReport(out)
	if err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	return reps, nil
}

// LookupLV returns one LV (one lvm call). Use it before acting on a single LV; use Report to
// look at many.
func (c *Client) LookupLV(ctx context.Context, ref Ref) (LV, error) {
	op := "lvm lookup " + ref.String()
	if err := ref.Validate(); err != nil {
		return LV{}, &Error{Op: op, Kind: ErrInvalidArgument, Err: err}
	}
	out, err := c.run(ctx, op, reportConfig, "lvs",
		"--reportformat", "json", "--units", "b", "--nosuffix", "-o", lvFields, ref.String())
	if err != nil {
		return LV{}, err
	}
	lvs, err := ParseLVReport(out)
	if err != nil {
		return LV{}, &Error{Op: op, Err: err}
	}
	for _, lv := range lvs {
		if lv.Name == ref.Name && lv.VG == ref.VG {
			return lv, nil
		}
	}
	return LV{}, refusal(op, ErrLVNotFound, "lvm reported no such logical volume")
}

// bytesArg renders a byte count for lvm's -L/--size ("b" = bytes), rounded up to whole
// 512-byte sectors: lvm refuses anything else (real, exit 3: `Size is not a multiple of 512.
// Try using 0 or 512.`). lvm itself then rounds up to whole extents.
func bytesArg(n uint64) string { return strconv.FormatUint(roundUp(n, 512), 10) + "b" }

func logger(ctx context.Context) logr.Logger { return logr.FromContextOrDiscard(ctx) }
