//go:build unix

package plugin

import (
	"context"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// watchResize calls resized on every SIGWINCH until ctx ends.
func watchResize(ctx context.Context, resized func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGWINCH)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				resized()
			}
		}
	}()
}
