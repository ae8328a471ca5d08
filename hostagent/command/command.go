// Package command runs host tools (lvm, xl, losetup, mount, …) for the host agent: always an
// argument list (never a shell string), with the configured prefix (e.g. nsenter into the
// host's namespaces), the caller's context for cancellation, stderr kept for the user, and each
// run timed. Every tool wrapper of the agent goes through a Runner; tests swap the binary (a
// real tool or a simulator), not the code.
package command

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// Runner executes host commands.
type Runner struct {
	// Prefix is prepended to every command, e.g. ["nsenter", "-t", "1", "-m", "-u", "-i",
	// "-n", "-p", "--"]. Empty runs commands directly.
	Prefix []string
	// Env, when set, replaces the child's environment (e.g. LC_ALL=C for stable messages).
	Env []string
	// Observe, when set, is called after every run with the tool name, its duration and error;
	// the agent feeds a duration histogram from it.
	Observe func(tool string, took time.Duration, err error)
}

// Error is a failed host command: the full argument list, its exit code (-1 when it did not
// exit normally), and what it printed on stderr.
type Error struct {
	Args     []string
	ExitCode int
	Stderr   string
	Err      error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if len(msg) > 2000 {
		msg = msg[:2000] + "…"
	}
	if msg == "" {
		return fmt.Sprintf("%s: %v", strings.Join(e.Args, " "), e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Args, " "), e.Err, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// ExitCode returns the exit code of a failed command, or -1 if err is not an *Error or the
// command did not exit normally.
func ExitCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.ExitCode
	}
	return -1
}

// Stderr returns the stderr of a failed command, or "".
func Stderr(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Stderr
	}
	return ""
}

// Run runs name with args and returns its stdout. A non-zero exit, a failure to start, or a
// cancelled context is returned as *Error; a cancelled context also matches ctx.Err() with
// errors.Is.
func (r Runner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return r.RunWithInput(ctx, nil, name, args...)
}

// RunWithInput is Run with stdin.
func (r Runner) RunWithInput(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	cmd, argv := r.command(ctx, name, args)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr

	start := time.Now()
	err := cmd.Run()
	if r.Observe != nil {
		r.Observe(name, time.Since(start), err)
	}
	if err == nil {
		return stdout.Bytes(), nil
	}
	return stdout.Bytes(), runError(ctx, argv, stderr.String(), err)
}

// command is name with args behind the prefix, bound to ctx, with the runner's environment.
func (r Runner) command(ctx context.Context, name string, args []string) (*exec.Cmd, []string) {
	argv := make([]string, 0, len(r.Prefix)+1+len(args))
	argv = append(argv, r.Prefix...)
	argv = append(argv, name)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second // do not hang on a child that keeps our pipes open
	if r.Env != nil {
		cmd.Env = r.Env
	}
	return cmd, argv
}

// runError is a failed run as an *Error: its exit code, its stderr, and ctx's error when the
// context ended it.
func runError(ctx context.Context, argv []string, stderr string, err error) *Error {
	e := &Error{Args: argv, ExitCode: -1, Stderr: stderr, Err: err}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		e.ExitCode = exitErr.ExitCode()
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		e.Err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return e
}

// Stream runs a long-lived name with args (a watch) and calls onLine with each line it prints,
// as it prints it, until it exits or ctx ends. Its exit is returned like Run's; a cancelled
// context also matches ctx.Err(). Observe is not called: the run's length says nothing about
// the host.
func (r Runner) Stream(ctx context.Context, onLine func(string), name string, args ...string) error {
	cmd, argv := r.command(ctx, name, args)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return &Error{Args: argv, ExitCode: -1, Err: err}
	}
	if err := cmd.Start(); err != nil {
		return &Error{Args: argv, ExitCode: -1, Err: err}
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		onLine(sc.Text())
	}
	// A line too long for the buffer stops the scan: drain the rest so the tool is not blocked
	// on a full pipe while it is waited for.
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return runError(ctx, argv, stderr.String(), err)
	}
	return nil
}

// limitedBuffer keeps the first 64 KiB written to it: a long-lived tool's stderr must not
// grow without bound.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64*1024 - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
