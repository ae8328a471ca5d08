//go:build !unix

package plugin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// runSSH runs ssh as a child with this terminal (no exec(2) here); its exit status becomes
// the plugin's.
func runSSH(path string, argv []string) error {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return &ExitCodeError{Code: exitErr.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", path, err)
	}
	return nil
}
