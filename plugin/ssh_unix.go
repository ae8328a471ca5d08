//go:build unix

package plugin

import (
	"fmt"
	"os"
	"syscall"
)

// runSSH replaces this process with ssh, so ssh owns the terminal and its exit status is the
// command's.
func runSSH(path string, argv []string) error {
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil // not reached
}
