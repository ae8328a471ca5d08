// Package scrub removes or resets machine-specific data in a fresh clone's filesystem before
// its first boot, the way virt-sysprep's operations of the same names do. Every path goes
// through an inroot.Root, so a guest's symlinks resolve inside the guest and non-regular
// files are refused. Every operation is idempotent (a second run changes nothing) and reports
// each path it changed.
package scrub

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/guest/inroot"
)

// Action is what an operation did to a path.
type Action string

const (
	Removed   Action = "removed"
	Truncated Action = "truncated"
	Edited    Action = "edited"
	Written   Action = "written"
	Created   Action = "created"
)

// Change is one path an operation changed, as a guest path.
type Change struct {
	Path   string `json:"path"`
	Action Action `json:"action"`
	// Detail says what changed inside the file, e.g. "HWADDR (1 line)".
	Detail string `json:"detail,omitempty"`
}

// Result is what one operation changed.
type Result struct {
	Operation v1alpha1.ScrubOperation `json:"operation"`
	Changes   []Change                `json:"changes,omitempty"`
}

// Params are the per-clone inputs of the operations.
type Params struct {
	// Hostname is the clone's host name: an RFC 1123 label, or a fully qualified name whose
	// first label is the short name. Required by the hostname operation.
	Hostname string
	// Random supplies the random-seed bytes; nil means crypto/rand (host randomness).
	Random io.Reader
}

type operation func(ctx context.Context, r *inroot.Root, p Params) ([]Change, error)

var operations = map[v1alpha1.ScrubOperation]operation{
	v1alpha1.ScrubNetHwaddr:         netHwaddr,
	v1alpha1.ScrubNetNMConn:         netNMConn,
	v1alpha1.ScrubUdevPersistentNet: udevPersistentNet,
	v1alpha1.ScrubMachineID:         machineID,
	v1alpha1.ScrubSSHHostKeys:       sshHostKeys,
	v1alpha1.ScrubDHCPClientState:   dhcpClientState,
	v1alpha1.ScrubRandomSeed:        randomSeed,
	v1alpha1.ScrubLogFiles:          logFiles,
	v1alpha1.ScrubBashHistory:       bashHistory,
	v1alpha1.ScrubHostname:          hostname,
}

// Resolve returns the operations a template asks for: its list, or the defaults when it
// lists none (nil). An explicitly empty list means no scrubbing.
func Resolve(ops []v1alpha1.ScrubOperation) []v1alpha1.ScrubOperation {
	if ops == nil {
		return append([]v1alpha1.ScrubOperation{}, v1alpha1.DefaultScrubOperations...)
	}
	return ops
}

// Validate checks the operations and their parameters before anything is attached.
func Validate(ops []v1alpha1.ScrubOperation, p Params) error {
	for _, op := range ops {
		if _, ok := operations[op]; !ok {
			return fmt.Errorf("unknown scrub operation %q", op)
		}
		if op == v1alpha1.ScrubHostname {
			if err := ValidHostname(p.Hostname); err != nil {
				return err
			}
		}
	}
	return nil
}

var label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// ValidHostname accepts lower-case RFC 1123 host names (labels of letters, digits and
// hyphens, 253 characters at most).
func ValidHostname(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("host name %q must be 1 to 253 characters", h)
	}
	for _, l := range strings.Split(h, ".") {
		if !label.MatchString(l) {
			return fmt.Errorf("host name %q: label %q must be lower-case letters, digits and hyphens, "+
				"1 to 63 characters, starting and ending with a letter or digit", h, l)
		}
	}
	return nil
}

// Run applies the operations in order. It stops at the first failure and returns the results
// so far with the error: the clone is then not prepared, and the caller may retry (every
// operation converges).
func Run(ctx context.Context, r *inroot.Root, ops []v1alpha1.ScrubOperation, p Params) ([]Result, error) {
	if err := Validate(ops, p); err != nil {
		return nil, err
	}
	log := logr.FromContextOrDiscard(ctx)
	var results []Result
	for _, op := range ops {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		changes, err := operations[op](ctx, r, p)
		results = append(results, Result{Operation: op, Changes: changes})
		if err != nil {
			return results, fmt.Errorf("scrub %s: %w", op, err)
		}
		log.V(1).Info("scrubbed", "operation", op, "changes", len(changes))
	}
	return results, nil
}

// removeGlobs removes every non-directory entry matching the patterns.
func removeGlobs(r *inroot.Root, patterns ...string) ([]Change, error) {
	var out []Change
	for _, pat := range patterns {
		matches, err := r.Glob(pat)
		if err != nil {
			return out, err
		}
		for _, m := range matches {
			st, err := r.Lstat(m)
			if err != nil {
				return out, err
			}
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				continue // a directory where files are expected: not ours to remove
			}
			ok, err := r.Remove(m)
			if err != nil {
				return out, err
			}
			if ok {
				out = append(out, Change{Path: m, Action: Removed})
			}
		}
	}
	return out, nil
}

// editFiles applies edit to every regular file matching the patterns. Entries that are not
// regular files (after following in-root links) fail the operation: a FIFO named ifcfg-eth0
// is a broken or hostile template, not something to skip silently.
func editFiles(r *inroot.Root, edit func([]byte) ([]byte, string), patterns ...string) ([]Change, error) {
	var out []Change
	for _, pat := range patterns {
		matches, err := r.Glob(pat)
		if err != nil {
			return out, err
		}
		for _, m := range matches {
			if dir, _ := r.IsDir(m); dir {
				continue
			}
			b, err := r.ReadFile(m)
			if err != nil {
				return out, err
			}
			nb, detail := edit(b)
			if detail == "" {
				continue
			}
			if err := r.WriteFile(m, nb, 0o644); err != nil {
				return out, err
			}
			out = append(out, Change{Path: m, Action: Edited, Detail: detail})
		}
	}
	return out, nil
}

// ifcfgGlobs are RHEL-family interface configs (network-scripts) and SUSE's (network/).
var ifcfgGlobs = []string{"/etc/sysconfig/network-scripts/ifcfg-*", "/etc/sysconfig/network/ifcfg-*"}

func netHwaddr(_ context.Context, r *inroot.Root, _ Params) ([]Change, error) {
	return editFiles(r, func(b []byte) ([]byte, string) {
		nb, n := RemoveShellVar(b, "HWADDR")
		if n == 0 {
			return b, ""
		}
		return nb, fmt.Sprintf("HWADDR (%d line)", n)
	}, ifcfgGlobs...)
}

func netNMConn(_ context.Context, r *inroot.Root, _ Params) ([]Change, error) {
	return editFiles(r, func(b []byte) ([]byte, string) {
		nb, keys := RemoveKeyfileMACs(b)
		if len(keys) == 0 {
			return b, ""
		}
		return nb, strings.Join(keys, ", ")
	}, "/etc/NetworkManager/system-connections/*")
}

func udevPersistentNet(_ context.Context, r *inroot.Root, _ Params) ([]Change, error) {
	return removeGlobs(r, "/etc/udev/rules.d/70-persistent-net.rules")
}

func machineID(_ context.Context, r *inroot.Root, _ Params) ([]Change, error) {
	// Truncated, not removed: an empty /etc/machine-id makes systemd generate a new one at
	// boot, while a missing one can leave a read-only root without any.
	var out []Change
	for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		changed, err := r.Truncate(p)
		if err != nil {
			return out, err
		}
		if changed {
			out = append(out, Change{Path: p, Action: Truncated})
		}
	}
	return out, nil
}

func sshHostKeys(_ context.Context, r *inroot.Root, _ Params) ([]Change, error) {
	return removeGlobs(r, "/etc/ssh/*_host_*")
}

func dhcpClientState(_ context.Context, r *inroot.Root, _ Params) ([]Change, error) {
	return removeGlobs(r,
		"/var/lib/dhclient/*", // RHEL dhclient
		"/var/lib/dhcp/*",     // Debian dhclient
		"/var/lib/dhcpcd/*",   // dhcpcd
		"/var/lib/NetworkManager/*.lease",
		"/var/lib/wicked/lease-*", // SUSE
	)
}

// randomSeeds are the seed files of systemd, Debian's sysvinit urandom script and older
// RHEL; their content is fed to the kernel pool at boot, so clones of one template would
// otherwise start from identical seeds.
var randomSeeds = []string{"/var/lib/systemd/random-seed", "/var/lib/urandom/random-seed", "/var/lib/random-seed"}

func randomSeed(_ context.Context, r *inroot.Root, p Params) ([]Change, error) {
	src := p.Random
	if src == nil {
		src = rand.Reader
	}
	var out []Change
	for _, f := range randomSeeds {
		st, err := r.Lstat(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return out, err
		}
		n := st.Size
		if n < 32 || n > 4096 {
			n = 512
		}
		seed := make([]byte, n)
		if _, err := io.ReadFull(src, seed); err != nil {
			return out, fmt.Errorf("read host randomness: %w", err)
		}
		if err := r.WriteFile(f, seed, 0o600); errors.Is(err, os.ErrNotExist) {
			continue // a link to nothing (inside the guest): no seed there
		} else if err != nil {
			return out, err
		}
		out = append(out, Change{Path: f, Action: Written, Detail: fmt.Sprintf("%d random bytes", n)})
	}
	if len(out) == 0 {
		// A systemd guest without a seed yet: give it one, as virt-sysprep does.
		if dir, _ := r.IsDir("/var/lib/systemd"); dir {
			seed := make([]byte, 512)
			if _, err := io.ReadFull(src, seed); err != nil {
				return out, fmt.Errorf("read host randomness: %w", err)
			}
			if err := r.WriteFile(randomSeeds[0], seed, 0o600); err != nil {
				return out, err
			}
			out = append(out, Change{Path: randomSeeds[0], Action: Created, Detail: "512 random bytes"})
		}
	}
	return out, nil
}

func logFiles(_ context.Context, r *inroot.Root, _ Params) ([]Change, error) {
	out, err := removeGlobs(r,
		"/var/log/*.log", "/var/log/*.log.*", "/var/log/*/*.log", "/var/log/*/*.log.*",
		"/var/log/messages*", "/var/log/secure*", "/var/log/syslog*", "/var/log/maillog*",
		"/var/log/cron*", "/var/log/dmesg*", "/var/log/wtmp*", "/var/log/btmp*", "/var/log/lastlog*",
		"/var/log/audit/*", "/var/log/apt/*", "/var/log/anaconda/*",
		"/root/anaconda-ks.cfg", "/root/original-ks.cfg", "/root/install.log*",
	)
	if err != nil {
		return out, err
	}
	// The journal keeps one folder per machine-id: remove the folders, never following links.
	ents, err := r.ReadDir("/var/log/journal")
	if err != nil {
		return out, err
	}
	for _, e := range ents {
		removed, err := r.RemoveAll(path.Join("/var/log/journal", e.Name))
		for _, p := range removed {
			out = append(out, Change{Path: p, Action: Removed})
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func bashHistory(_ context.Context, r *inroot.Root, _ Params) ([]Change, error) {
	return removeGlobs(r, "/root/.bash_history", "/home/*/.bash_history")
}

func hostname(_ context.Context, r *inroot.Root, p Params) ([]Change, error) {
	fqdn := p.Hostname
	short, _, _ := strings.Cut(fqdn, ".")
	var out []Change

	// The old names, so /etc/hosts lines that carried them can be pointed at the new ones.
	var old []string
	etcHostname, hadEtcHostname, err := readIfExists(r, "/etc/hostname")
	if err != nil {
		return out, err
	}
	if f := strings.Fields(string(etcHostname)); len(f) > 0 {
		old = append(old, f[0])
	}
	network, sysconfig, err := readIfExists(r, "/etc/sysconfig/network")
	if err != nil {
		return out, err
	}
	for _, l := range lines(network) {
		if prefix, ok := shellAssign(l, "HOSTNAME"); ok {
			old = append(old, strings.Trim(strings.TrimSpace(string(l[len(prefix):])), `"'`))
		}
	}
	for _, o := range append([]string{}, old...) {
		if s, _, ok := strings.Cut(o, "."); ok {
			old = append(old, s)
		}
	}

	// /etc/hostname: systemd guests, Debian family, RHEL ≥ 7. Written even if missing: it is
	// harmless where unused and the first place modern guests look.
	want := []byte(fqdn + "\n")
	if string(etcHostname) != string(want) || !hadEtcHostname {
		if err := r.WriteFile("/etc/hostname", want, 0o644); err != nil {
			return out, err
		}
		action := Written
		if !hadEtcHostname {
			action = Created
		}
		out = append(out, Change{Path: "/etc/hostname", Action: action})
	}

	// SUSE keeps it in /etc/HOSTNAME; only rewritten where present.
	if cur, ok, err := readIfExists(r, "/etc/HOSTNAME"); err != nil {
		return out, err
	} else if ok && string(cur) != string(want) {
		if err := r.WriteFile("/etc/HOSTNAME", want, 0o644); err != nil {
			return out, err
		}
		out = append(out, Change{Path: "/etc/HOSTNAME", Action: Written})
	}

	// RHEL ≤ 6 reads HOSTNAME= from /etc/sysconfig/network; added only where the guest has no
	// /etc/hostname (that generation), replaced wherever present.
	if sysconfig {
		nb, found, changed := SetShellVar(network, "HOSTNAME", fqdn)
		if !found && !hadEtcHostname {
			if len(nb) > 0 && nb[len(nb)-1] != '\n' {
				nb = append(nb, '\n')
			}
			nb = append(nb, "HOSTNAME="+fqdn+"\n"...)
			changed = true
		}
		if changed {
			if err := r.WriteFile("/etc/sysconfig/network", nb, 0o644); err != nil {
				return out, err
			}
			out = append(out, Change{Path: "/etc/sysconfig/network", Action: Edited, Detail: "HOSTNAME"})
		}
	}

	// ifcfg files may carry the name sent to the DHCP server.
	ch, err := editFiles(r, func(b []byte) ([]byte, string) {
		var keys []string
		for _, k := range []string{"DHCP_HOSTNAME", "HOSTNAME"} {
			var changed bool
			if b, _, changed = SetShellVar(b, k, fqdn); changed {
				keys = append(keys, k)
			}
		}
		return b, strings.Join(keys, ", ")
	}, ifcfgGlobs...)
	out = append(out, ch...)
	if err != nil {
		return out, err
	}

	if b, ok, err := readIfExists(r, "/etc/hosts"); err != nil {
		return out, err
	} else if ok {
		if nb, changed := SetHostsNames(b, old, fqdn, short); changed {
			if err := r.WriteFile("/etc/hosts", nb, 0o644); err != nil {
				return out, err
			}
			out = append(out, Change{Path: "/etc/hosts", Action: Edited})
		}
	}
	return out, nil
}

// readIfExists reads a regular file; a missing one (or a link to a missing one, inside the
// guest) is reported as absent rather than as an error.
func readIfExists(r *inroot.Root, p string) ([]byte, bool, error) {
	b, err := r.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}
