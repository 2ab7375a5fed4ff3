//go:build !linux

package loadgen

import "time"

// shortSleep sleeps about d.
func shortSleep(d time.Duration) { time.Sleep(d) }

// punctualThread does nothing off Linux.
func punctualThread() {}
