package plugin

import (
	"context"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
	"k8s.io/client-go/tools/remotecommand"
)

// terminal is the local end of a console: stdin in raw mode, so Ctrl-] and Ctrl-C reach xl in
// the pod instead of this process.
type terminal struct {
	fd    int
	state *term.State
}

// rawTerminal puts in (when it is a terminal) into raw mode; ok is false when it is not one.
func rawTerminal(in io.Reader) (t *terminal, ok bool, err error) {
	f, isFile := in.(*os.File)
	if !isFile || !term.IsTerminal(int(f.Fd())) {
		return nil, false, nil
	}
	fd := int(f.Fd())
	state, err := term.MakeRaw(fd)
	if err != nil {
		return nil, false, fmt.Errorf("put the terminal in raw mode: %w", err)
	}
	return &terminal{fd: fd, state: state}, true, nil
}

// Restore undoes raw mode.
func (t *terminal) Restore() { _ = term.Restore(t.fd, t.state) }

// sizeQueue reports the terminal's size: once at the start, then at each resize (watchResize,
// per platform) until ctx ends.
type sizeQueue struct {
	ctx   context.Context
	fd    int
	sizes chan remotecommand.TerminalSize
}

// Sizes is the terminal's size queue for an exec session that lasts as long as ctx.
func (t *terminal) Sizes(ctx context.Context) remotecommand.TerminalSizeQueue {
	q := &sizeQueue{ctx: ctx, fd: t.fd, sizes: make(chan remotecommand.TerminalSize, 1)}
	q.push()
	watchResize(ctx, q.push)
	return q
}

// push queues the current size, replacing one not taken yet: only the newest size matters.
// One producer at a time (the start, then the resize watcher), so drain-then-send cannot block.
func (q *sizeQueue) push() {
	w, h, err := term.GetSize(q.fd)
	if err != nil || w <= 0 || h <= 0 {
		return
	}
	select {
	case <-q.sizes:
	default:
	}
	q.sizes <- remotecommand.TerminalSize{Width: uint16(w), Height: uint16(h)}
}

// Next blocks until the next size; nil (when the session ends) ends the queue.
func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case <-q.ctx.Done():
		return nil
	case s := <-q.sizes:
		return &s
	}
}
