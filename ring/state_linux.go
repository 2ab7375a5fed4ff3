package ring

import "fmt"

// A Ring's lifecycle is one atomic word, r.state, as Go's internal/poll
// fd mutex holds an fd's: a phase that only moves forward, four flags, and
// a count of lock-free users of the mappings. Close is "the closer"; the
// reaper goroutine is "the reaper"; a goroutine that makes the reaper
// run again (Submit, Wake, an inline harvest, Close) is "a waker".
//
//	bits 0–2    phase
//	bit 3       reaper
//	bit 4       parked
//	bit 5       wakeSeen
//	bit 6       closeWait
//	bits 32–63  users
//
// The phases, moved only by the closer:
//
//	       Close            Close, holding sqMu         Close, holding cqMu and sqMu
//	open ─────────▶ closing ───────────────────▶ sealed ─────────────────────────────▶ closed
//	                                               │                                   ▲
//	                                               └─ drain budget spent ─▶ abandoned ─┘
//
//	open       GetSQE, GetSQEPair, Reserve and StartReaper work.
//	closing    Close has begun: they return ErrClosed (GetSQE still hands
//	           out what a Reserve covers). The reaper no longer parks.
//	sealed     Close held the submission lock: every caller's SQE is
//	           published and counted in Inflight, and none can follow.
//	           The reaper leaves once Inflight is zero.
//	abandoned  Close's drain budget ran out: the reaper leaves at once;
//	           what is still in flight is left to the kernel.
//	closed     The rings are (about to be) unmapped and the fd closed:
//	           acquire fails, and the methods that hold a lock see closed.
//
// The flags, each set and cleared by an atomic or/and whose old value
// tells the caller whether it was the one that changed it:
//
//	reaper     StartReaper started the reaper (set once, while open).
//	parked     the reaper sleeps in Go on r.unpark: nothing is in flight or
//	           published. It sets the flag and looks again; a waker that
//	           clears it owns the wake-up and sends on r.unpark. Exactly
//	           one of them acts: the reaper stays up, or one waker wakes it.
//	wakeSeen   PeekBatch consumed a Wake's CQE. The reaper clears it after
//	           each round (it is awake); an inline harvester that clears it
//	           passes the Wake on (passWake), since the reaper may be about
//	           to sleep in io_uring_enter waiting for that very CQE —
//	           unless its Handler, a WorkReporter, says the reaper has
//	           nothing to do.
//	closeWait  the closer waits on r.drained for the users to go; the
//	           release that brings them to zero and clears it sends.
//	waking     a Wake's NOP is in the kernel or the CQ: the Wake that sets
//	           it submits one, a Wake that finds it set has nothing to do
//	           (the reaper will see the NOP's CQE), and whoever harvests
//	           the CQE clears it.
//
// Parking, the one handshake with two sides (park and unparkReaper):
//
//	reaper  idle ─▶ set parked ─▶ still idle ─────────────────────────▶ wait on unpark ─▶ round
//	                                   └─ busy: clear parked ─┬─ cleared ─────────────────▶ round
//	                                                          └─ a waker cleared it first ─▶ wait on unpark
//	waker   clear parked ─┬─ cleared ─▶ send on unpark
//	                      └─ was not set: nothing to do (the reaper is up)
//
// Wake-ups, each a channel that exactly one side sends on or closes:
//
//	r.unpark      waker → parked reaper (capacity 1; see parked)
//	r.drained     last user → closer (capacity 1; see closeWait)
//	r.reaperDone  closed by the reaper as it leaves → closer (waitReaper)
//	r.closeDone   closed by the closer once the ring is closed → any
//	              other Close call, which waits for it and returns nil
//
// Inflight (SQEs published whose final CQE has not been seen) is a
// counter of its own: it moves with every SQE and CQE, while the word
// moves with the ring's life. The reaper reads both to decide to leave.
const (
	phaseOpen uint64 = iota
	phaseClosing
	phaseSealed
	phaseAbandoned
	phaseClosed

	phaseMask = 1<<3 - 1

	stateReaper    = 1 << 3
	stateParked    = 1 << 4
	stateWakeSeen  = 1 << 5
	stateCloseWait = 1 << 6
	stateWaking    = 1 << 7

	userShift = 32
	userUnit  = 1 << userShift // one lock-free user (acquire)
)

var phaseNames = [...]string{"open", "closing", "sealed", "abandoned", "closed"}

func phaseOf(s uint64) uint64 { return s & phaseMask }

func usersOf(s uint64) uint64 { return s >> userShift }

// phase returns the ring's phase now.
func (r *Ring) phase() uint64 { return phaseOf(r.state.Load()) }

// closing reports whether Close has begun.
func (r *Ring) closing() bool { return r.phase() >= phaseClosing }

// closed reports whether Close has reached the mappings. Methods that hold
// the submission or the completion lock may rely on it: Close sets it
// holding both.
func (r *Ring) closed() bool { return r.phase() >= phaseClosed }

// advance moves the phase forward to "to"; only the closer calls it, and
// only in the order of the diagram.
func (r *Ring) advance(to uint64) {
	for {
		s := r.state.Load()
		if phaseOf(s) >= to {
			panic(fmt.Sprintf("ring: inconsistent ring state: want %s, have %s", phaseNames[to], phaseNames[phaseOf(s)]))
		}
		if r.state.CompareAndSwap(s, s&^phaseMask|to) {
			return
		}
	}
}

// clear clears flag and reports whether this call did (it was set): of
// goroutines clearing the same flag, exactly one gets true.
func (r *Ring) clear(flag uint64) bool {
	return r.state.Load()&flag != 0 && r.state.And(^flag)&flag != 0
}

// beginClose moves open → closing. first is false when another Close
// began before; reaper reports whether StartReaper started one (it cannot
// any more).
func (r *Ring) beginClose() (first, reaper bool) {
	for {
		s := r.state.Load()
		if phaseOf(s) != phaseOpen {
			return false, false
		}
		if r.state.CompareAndSwap(s, s|phaseClosing) {
			return true, s&stateReaper != 0
		}
	}
}

// claimReaper sets the reaper flag for StartReaper.
func (r *Ring) claimReaper() error {
	for {
		s := r.state.Load()
		switch {
		case phaseOf(s) != phaseOpen:
			return ErrClosed
		case s&stateReaper != 0:
			return errorf("reaper already started")
		}
		if r.state.CompareAndSwap(s, s|stateReaper) {
			return nil
		}
	}
}

// acquire marks a use of the ring's mappings and fd by a method that holds
// neither the submission nor the completion lock (Submit, Ready, ...). It
// fails once the ring is closed; Close waits for every use that succeeded
// to release before it unmaps.
func (r *Ring) acquire() bool {
	if phaseOf(r.state.Add(userUnit)) >= phaseClosed {
		r.release()
		return false
	}
	return true
}

// release ends a use begun by acquire, and wakes the closer if it was the
// last one the closer waits for.
func (r *Ring) release() {
	s := r.state.Add(^uint64(userUnit - 1)) // minus one user
	if usersOf(s) == 1<<(64-userShift)-1 {
		panic("ring: inconsistent ring state: release without acquire")
	}
	if usersOf(s) == 0 && s&stateCloseWait != 0 && r.clear(stateCloseWait) {
		r.drained <- struct{}{}
	}
}

// waitUsers waits, once the ring is closed, until every acquire has been
// released.
func (r *Ring) waitUsers() {
	for {
		s := r.state.Load()
		if usersOf(s) == 0 {
			return
		}
		if r.state.CompareAndSwap(s, s|stateCloseWait) {
			<-r.drained
			return
		}
	}
}

// idle reports that nothing is published, in the kernel, or being closed.
func (r *Ring) idle() bool {
	return r.inflight.Load() <= 0 && r.pending() == 0 && r.phase() == phaseOpen
}

// park blocks the reaper while the ring is idle and reports whether it
// parked. The flag is set before the second look, and wakers clear it
// before they send, so a waker either sees the reaper parked and wakes it,
// or the reaper sees the waker's work and stays up.
func (r *Ring) park() bool {
	if !r.idle() {
		return false
	}
	r.state.Or(stateParked)
	if !r.idle() && r.clear(stateParked) {
		return false
	}
	<-r.unpark // from the waker that cleared the flag
	r.stats.parks.Add(1)
	return true
}

// unparkReaper wakes a parked reaper; it reports whether one was parked.
func (r *Ring) unparkReaper() bool {
	if r.clear(stateParked) {
		r.unpark <- struct{}{}
		return true
	}
	return false
}

// unparkForInflight wakes a reaper parked in Go when requests are in
// flight: someone must hand over what they leave in the CQ or the kernel.
func (r *Ring) unparkForInflight() {
	if r.state.Load()&stateParked != 0 && r.inflight.Load() > 0 {
		r.unparkReaper()
	}
}

// passWake wakes the reaper again if an inline harvest consumed the CQE of
// a Wake meant for it: a reaper about to sleep in io_uring_enter would
// otherwise sleep through the event the Wake announced — unless h, a
// WorkReporter, says the reaper has nothing to do and the ring is open
// (Close's Wakes always pass on). Called without the completion lock
// (Wake may have to wait for the SQ).
func (r *Ring) passWake(h Handler) {
	if !r.clear(stateWakeSeen) {
		return
	}
	if w, ok := h.(WorkReporter); ok && r.phase() == phaseOpen && !w.ReaperHasWork() {
		return
	}
	r.Wake()
}

// reaperLeaves reports whether the reaper's work is done: Close has sealed
// the SQ and everything published has been handed over, or Close gave up
// on what is left.
func (r *Ring) reaperLeaves() bool {
	p := r.phase()
	return p >= phaseAbandoned || p >= phaseSealed && r.inflight.Load() <= 0
}
