// Command kubectl-xenclone is the xenclone kubectl plugin: on PATH, kubectl runs it as
// `kubectl xenclone`. The commands are in package plugin.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/xenclone/xenclone/plugin"
)

func main() {
	// Ctrl-C ends a VNC forward cleanly; a console's terminal is raw, so there it goes to xl.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := plugin.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}).ExecuteContext(ctx)
	stop()
	var exit *plugin.ExitCodeError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.Code)
	case err != nil:
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}
