//go:build !linux

package loadgen

import "github.com/uringsend/uringsend/socket"

// engineInfo: no engine runs on this platform (NewEngine fails first).
func engineInfo(*socket.Engine) (backend string, fallback error) { return "none", nil }
