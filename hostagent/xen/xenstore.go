package xen

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	"github.com/go-logr/logr"

	"github.com/xenclone/xenclone/hostagent/command"
)

// Xenstore writes into a domain's xenstore tree with `xenstore-write`, the Xen tools' client
// (package xen-utils / xenstore-utils in dom0). dom0 may write anywhere; a guest reads (and may
// write) its own /local/domain/<domid>/ tree, where a relative path such as data/x resolves.
// Nodes created under a guest's data/ inherit data/'s permissions, which libxl gives the guest.
type Xenstore struct {
	Runner command.Runner
	// Write is the xenstore-write binary (name or path); default "xenstore-write".
	Write string
	// Ls and Watch are the xenstore-ls and xenstore-watch binaries (defaults by those names).
	Ls    string
	Watch string
	// Log receives V(1) step logs; the zero Logger discards them.
	Log logr.Logger
}

// XenstoreEntry is one key and value under a domain's tree.
type XenstoreEntry struct {
	// Path is relative to /local/domain/<domid>/, e.g. data/xenclone/token.
	Path  string
	Value string
}

// xenstorePath is what xenstore allows in a path (docs/misc/xenstore.txt: alphanumerics and
// -/_@, at most 3072 bytes in all); we allow less: no leading '/' and no '@'.
var xenstorePath = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$`)

// MaxXenstoreValue is the largest value one xenstore write carries (XENSTORE_PAYLOAD_MAX is
// 4096 bytes for path and value together; 2048 leaves room for any path we write).
const MaxXenstoreValue = 2048

// WriteDomain writes entries under /local/domain/<domid>/ with one xenstore-write, which runs
// all its writes in one xenstore transaction (retried by the tool on conflict): a guest watching
// the last key sees every earlier one. -R writes each value as given (without it the tool
// expands backslash escapes). Values must not contain NUL bytes (an argument cannot).
//
// dom0 may write under any domid, even a dead one's (xenstored creates the nodes), so the
// caller passes the domid it has just seen listed for the domain it owns.
func (x *Xenstore) WriteDomain(ctx context.Context, domid int, entries []XenstoreEntry) error {
	if domid <= 0 {
		return fmt.Errorf("xenstore-write: domid %d is not a guest", domid)
	}
	if len(entries) == 0 {
		return nil
	}
	args := []string{"-R"}
	base := "/local/domain/" + strconv.Itoa(domid) + "/"
	for _, e := range entries {
		if !xenstorePath.MatchString(e.Path) {
			return fmt.Errorf("xenstore-write: path %q: only letters, digits, '-' and '_' separated by '/'", e.Path)
		}
		if len(e.Value) > MaxXenstoreValue {
			return fmt.Errorf("xenstore-write: value of %s is %d bytes, more than %d", e.Path, len(e.Value), MaxXenstoreValue)
		}
		for i := 0; i < len(e.Value); i++ {
			if e.Value[i] == 0 {
				return fmt.Errorf("xenstore-write: value of %s contains a NUL byte", e.Path)
			}
		}
		args = append(args, base+e.Path, e.Value)
	}
	bin := x.Write
	if bin == "" {
		bin = "xenstore-write"
	}
	x.Log.V(1).Info("writing xenstore entries", "domid", domid, "entries", len(entries))
	if _, err := x.Runner.Run(ctx, bin, args...); err != nil {
		// The values may be secrets: the error names the paths only (command.Error would
		// print the whole argument list).
		paths := make([]string, 0, len(entries))
		for _, e := range entries {
			paths = append(paths, e.Path)
		}
		return fmt.Errorf("xenstore-write %v under %s: exit %d: %s", paths, base, command.ExitCode(err), command.Stderr(err))
	}
	return nil
}
