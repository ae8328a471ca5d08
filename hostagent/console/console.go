// Package console is the agent side of `kubectl xenclone console`: the plugin execs
// `xenclone console DOMAIN` in the host agent's pod, and this runs `xl console DOMAIN` in the
// host's namespaces with the session's terminal attached. One session per domain, so two
// people never type into one console: a lock file in the agent's state folder turns the second
// session away, saying which process holds the console and since when.
package console

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/xenclone/xenclone/hostagent/guest"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// PrefixEnv names the environment variable with the host command prefix (the DaemonSet sets
// it to the agent's --command-prefix): an exec'd process gets no flags from the pod spec.
const PrefixEnv = "XENCLONE_COMMAND_PREFIX"

// Options are one console session's settings.
type Options struct {
	// Domain is the Xen domain name; only names xen.ValidateName accepts are run.
	Domain string
	// StateDir is the agent's state folder; the locks are in its console/ subfolder.
	StateDir string
	// XL is the xl binary (on the host, behind Prefix).
	XL string
	// Prefix runs XL in the host's namespaces (e.g. nsenter …); empty runs it directly.
	Prefix []string
}

// Main is `xenclone console [flags] DOMAIN`; it returns the process's exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xenclone console", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := Options{Prefix: strings.Fields(os.Getenv(PrefixEnv))}
	fs.StringVar(&opts.StateDir, "state-dir", guest.DefaultStateDir, "The agent's state folder (console locks go to its console/ subfolder).")
	fs.StringVar(&opts.XL, "xl", "xl", "xl binary on the host.")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: xenclone console [flags] DOMAIN\n\nAttaches this terminal to the Xen console of DOMAIN (xl console, behind $%s). Detach with Ctrl-].\n\n", PrefixEnv)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	opts.Domain = fs.Arg(0)
	return Run(opts, stdin, stdout, stderr)
}

// Run holds the domain's console lock for the length of one `xl console` and returns its exit
// status (1 for a refusal, with the reason on stderr).
func Run(opts Options, stdin io.Reader, stdout, stderr io.Writer) int {
	if err := xen.ValidateName(opts.Domain); err != nil {
		fmt.Fprintf(stderr, "xenclone console: %v\n", err)
		return 1
	}
	lock, err := Acquire(filepath.Join(opts.StateDir, "console"), opts.Domain)
	if err != nil {
		fmt.Fprintf(stderr, "xenclone console: %v\n", err)
		return 1
	}
	defer lock.Release()
	argv := Command(opts.Prefix, opts.XL, opts.Domain)
	cmd := exec.Command(argv[0], argv[1:]...)
	// The session's own files, not copies through pipes: xl puts its stdin (the pod's TTY) in
	// raw mode and reads Ctrl-] from it.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) && exitErr.ExitCode() > 0 {
			return exitErr.ExitCode()
		}
		fmt.Fprintf(stderr, "xenclone console: run %s: %v\n", strings.Join(argv, " "), err)
		return 1
	}
	return 0
}

// Command is the argv of one console session: the host prefix, then `xl console DOMAIN`.
func Command(prefix []string, xl, domain string) []string {
	argv := append([]string{}, prefix...)
	return append(argv, xl, "console", domain)
}
