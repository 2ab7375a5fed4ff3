package loadgen

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// shortSleep sleeps about d (under a few milliseconds) in nanosleep(2):
// the pacer's waits are shorter than the runtime timers' millisecond
// granularity, and its lateness counts as latency. The goroutine's thread
// blocks meanwhile; the runtime lends its P to others.
func shortSleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
}

// punctualThread locks the calling goroutine to its thread and sets the
// thread's timer slack to 1 ns (default 50 µs), so that shortSleep wakes
// on time. The goroutine must not unlock: when it returns, the thread
// exits with it and the setting does not leak to other goroutines.
func punctualThread() {
	runtime.LockOSThread()
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
}
