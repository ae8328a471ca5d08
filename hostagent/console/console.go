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
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

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
// status (1 for a refusal, with the reason on stderr; 128+n after signal n ended the session).
func Run(opts Options, stdin io.Reader, stdout, stderr io.Writer) int {
	if err := xen.ValidateName(opts.Domain); err != nil {
		fmt.Fprintf(stderr, "xenclone console: %v\n", err)
		return 1
	}
	// Caught before the lock is taken: from here on a SIGTERM (the runtime ending the exec, or
	// a timeout) must not kill this process alone, which would leave xl attached with nobody
	// holding the lock.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGHUP, unix.SIGINT)
	defer signal.Stop(sigs)
	lock, err := Acquire(filepath.Join(opts.StateDir, "console"), opts.Domain)
	if err != nil {
		fmt.Fprintf(stderr, "xenclone console: %v\n", err)
		return 1
	}
	defer lock.Release()
	// A signal that kills the prefix orphans xl; as its subreaper this process can tell when
	// it is gone (see endGroup). Best effort: without it the wait only ends later.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	argv := Command(opts.Prefix, opts.XL, opts.Domain)
	cmd := exec.Command(argv[0], argv[1:]...)
	// The session's own files, not copies through pipes: xl puts its stdin (the pod's TTY) in
	// raw mode and reads Ctrl-] from it.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	// xl runs in a process group of its own, so a signal reaches all of it: the prefix's
	// nsenter forks xl into the host's PID namespace and does not pass signals on. On a
	// terminal that group is made the foreground one: xl sets the terminal raw (a background
	// group would be stopped by SIGTTOU) and gets the window-size changes.
	tty, isTTY := terminal(stdin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Foreground: isTTY, Ctty: tty}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "xenclone console: run %s: %v\n", strings.Join(argv, " "), err)
		return 1
	}
	if isTTY {
		defer takeForeground(tty)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var got os.Signal
	var kill <-chan time.Time
	var deadline time.Time
	for {
		select {
		case sig := <-sigs:
			if got == nil {
				got, deadline = sig, time.Now().Add(stopGrace)
				kill = time.After(time.Until(deadline))
			}
			// A terminal's hangup or ^C already went to xl's group; a signal sent to this
			// process alone did not.
			_ = unix.Kill(-cmd.Process.Pid, sig.(unix.Signal))
		case <-kill:
			_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		case err := <-exited:
			if got != nil {
				// The prefix is gone, but xl, its child, may still be detaching.
				endGroup(cmd.Process.Pid, deadline)
				return 128 + int(got.(unix.Signal))
			}
			if err != nil {
				var exitErr *exec.ExitError
				if errors.As(err, &exitErr) && exitErr.ExitCode() > 0 {
					return exitErr.ExitCode()
				}
				fmt.Fprintf(stderr, "xenclone console: run %s: %v\n", strings.Join(argv, " "), err)
				return 1
			}
			return 0
		}
	}
}

// stopGrace is how long xl has to detach after a signal before its group is killed.
const stopGrace = 5 * time.Second

// endGroup waits for the process group pgid to be empty and kills what is left of it at the
// deadline (which may have passed). The orphans of the group (xl, once the prefix died of the
// signal) are this process's to reap (it is their subreaper): a zombie still counts as a member.
func endGroup(pgid int, deadline time.Time) {
	for {
		for {
			if pid, _ := unix.Wait4(-pgid, nil, unix.WNOHANG, nil); pid <= 0 {
				break
			}
		}
		if unix.Kill(-pgid, 0) != nil {
			return
		}
		if !time.Now().Before(deadline) {
			_ = unix.Kill(-pgid, unix.SIGKILL)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// terminal returns stdin's descriptor when it is a terminal.
func terminal(stdin io.Reader) (int, bool) {
	f, ok := stdin.(*os.File)
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		return 0, false
	}
	return fd, true
}

// takeForeground gives the terminal back to this process's group once xl's has ended, so what
// this process writes or reads next is not stopped. A background group's tcsetpgrp raises
// SIGTTOU, which is ignored for the call.
func takeForeground(tty int) {
	signal.Ignore(unix.SIGTTOU)
	defer signal.Reset(unix.SIGTTOU)
	_ = unix.IoctlSetPointerInt(tty, unix.TIOCSPGRP, unix.Getpgrp())
}

// Command is the argv of one console session: the host prefix, then `xl console DOMAIN`.
func Command(prefix []string, xl, domain string) []string {
	argv := append([]string{}, prefix...)
	return append(argv, xl, "console", domain)
}
