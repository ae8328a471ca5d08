//go:build !unix

package plugin

import "context"

// watchResize has no resize signal to watch here: the console keeps its first size.
func watchResize(context.Context, func()) {}
