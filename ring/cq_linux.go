package ring

import (
	"sync/atomic"
)

// LockCQ takes the completion lock: only its holder may PeekBatch.
func (r *Ring) LockCQ() { r.cqMu.Lock() }

// TryLockCQ takes the completion lock if it is free.
func (r *Ring) TryLockCQ() bool { return r.cqMu.TryLock() }

// UnlockCQ releases the completion lock.
func (r *Ring) UnlockCQ() { r.cqMu.Unlock() }

// PeekBatch copies up to len(dst) CQEs into dst, advances the CQ head past
// them and returns how many it copied. The completion lock must be held.
// Internal CQEs (wake-ups, the ring's own cancels) are consumed but not
// returned. When the CQ is empty but the kernel holds overflowed CQEs
// (IORING_SQ_CQ_OVERFLOW) it flushes them into the CQ first, so no
// completion is left behind. After Close it returns 0.
func (r *Ring) PeekBatch(dst []CQE) int {
	if r.closed() {
		return 0
	}
	n := 0
	for n < len(dst) {
		head, tail := *r.cqHead, atomic.LoadUint32(r.cqTail)
		if head == tail {
			// Flush again as long as flushing brings CQEs: the
			// overflow list may hold many CQ-fulls. One that brings
			// none (task work of another thread) ends the batch.
			if !r.refill(tail) {
				break
			}
			continue
		}
		n += r.consume(head, tail, dst[n:])
	}
	return n
}

// refill flushes overflowed CQEs and pending task work into an empty CQ
// whose tail is tail, if the kernel says it has any, and reports whether
// that brought CQEs.
func (r *Ring) refill(tail uint32) bool {
	if !r.needFlush() {
		return false
	}
	r.flush()
	return atomic.LoadUint32(r.cqTail) != tail
}

// consume copies the CQEs from head up to tail into dst, as many as fit,
// advances the CQ head past them and returns how many it copied. Internal
// CQEs are consumed but not copied; a Wake's sets wakeSeen.
func (r *Ring) consume(head, tail uint32, dst []CQE) int {
	n := 0
	var reaped uint64
	var done int64
	for ; head != tail && n < len(dst); head++ {
		c := &r.cqes[head&r.cqMask]
		reaped++
		if c.Flags()&CQEFMore == 0 {
			done++
		}
		if ud := c.UserData(); ud >= ReservedUserData {
			if ud == wakeUserData {
				r.state.And(^uint64(stateWaking))
				r.state.Or(stateWakeSeen)
			}
			continue
		}
		dst[n] = *c
		n++
	}
	atomic.StoreUint32(r.cqHead, head)
	r.stats.reaped.Add(reaped)
	r.inflight.Add(-done)
	return n
}

// Ready returns how many CQEs wait in the CQ (not counting overflowed ones).
// After Close it returns 0.
func (r *Ring) Ready() int {
	if !r.acquire() {
		return 0
	}
	defer r.release()
	return int(atomic.LoadUint32(r.cqTail) - atomic.LoadUint32(r.cqHead))
}

func (r *Ring) needFlush() bool {
	return atomic.LoadUint32(r.sqFlags)&(sqCQOverflow|sqTaskrun) != 0
}

// flush asks the kernel to move overflowed CQEs into the CQ and to run
// pending task work (IORING_SQ_TASKRUN), which posts completions.
func (r *Ring) flush() {
	if atomic.LoadUint32(r.sqFlags)&sqCQOverflow != 0 {
		r.stats.overflows.Add(1)
	}
	r.enter(0, 0, enterGetEvents, nil, 0)
}

// Lost reports whether the kernel has dropped a completion on this ring:
// an io_uring_enter answered EBADR (ErrCQELost; IORING_FEAT_NODROP kernels,
// 5.5, say so when a CQE could not even be queued as overflow), or Dropped
// is not zero. It never goes back to false, also not after Close. A lost
// CQE's request never completes: Inflight stays above zero, and a caller
// waiting for a particular completion should stop waiting.
func (r *Ring) Lost() bool {
	if r.lost.Load() {
		return true
	}
	if r.Dropped() != 0 {
		r.lost.Store(true)
		return true
	}
	return false
}

// Dropped returns the kernel's count of CQEs it could not even queue as
// overflow (allocation failure): completions that are lost for good.
// After Close it returns 0 (Lost remembers).
func (r *Ring) Dropped() uint32 {
	if !r.acquire() {
		return 0
	}
	defer r.release()
	return atomic.LoadUint32(r.cqOverflow)
}
