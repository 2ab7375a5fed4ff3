package socket

import (
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// sysCounters counts the epoll path's system calls. Each is one atomic
// add beside a system call that costs a hundred times more.
type sysCounters struct {
	sends, recvs, eagain atomic.Uint64
}

// count records one call of kind c and whether it would have blocked.
func (k *sysCounters) count(c *atomic.Uint64, errno syscall.Errno) {
	c.Add(1)
	if errno == unix.EAGAIN {
		k.eagain.Add(1)
	}
}

// Stats returns a snapshot of the engine's counters. It allocates nothing:
// a load generator may read it every interval.
func (e *Engine) Stats() EngineStats {
	st := EngineStats{
		Backend:    e.backend,
		SendCalls:  e.sys.sends.Load(),
		RecvCalls:  e.sys.recvs.Load(),
		WouldBlock: e.sys.eagain.Load(),
	}
	for _, u := range e.rings {
		r := u.r.Stats()
		st.Enters += r.Enters
		st.Submitted += r.Submitted
		st.Reaped += r.Reaped
		st.Waits += r.Waits
		st.Parks += r.Parks
		st.SQFull += r.SQFull
		st.Overflows += r.Overflows
		st.ZeroCopySends += u.zcNotifs.Load()
		st.StaleCompletions += u.stale.Load()
	}
	return st
}
