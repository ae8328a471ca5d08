// Command xl is the xl simulator as a stand-alone binary named like the real tool, so tests
// run the driver through the same exec path as on a Xen host. The state directory comes from
// $XLSIM_STATE_DIR.
package main

import (
	"os"

	"github.com/xenclone/xenclone/hostagent/xen/xlsim"
)

func main() {
	os.Exit(xlsim.Main(os.Args[1:], os.Stdout, os.Stderr))
}
