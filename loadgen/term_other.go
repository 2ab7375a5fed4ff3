//go:build !linux

package loadgen

import "io"

// isTerminal: status lines are never redrawn off Linux.
func isTerminal(io.Writer) bool { return false }
