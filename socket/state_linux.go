package socket

import "sync/atomic"

// A socket's lifecycle is one word, as internal/poll's fdMutex keeps a
// descriptor's: its phase, what CloseWrite asked, which sides hold the
// close, and how many other holds there are.
//
//	        CloseWrite: wrShut (+shutPending until the queue drains)
//	            │
//	open ───────┴──────── Close ─────▶ closing
//	                                     │  holds: Close's own, one per busy
//	                                     │  side (sendHeld, rxHeld), a linger
//	                                     │  timer's while it runs
//	                                     ▼  the last hold let go
//	                                  released   descriptor closed, done closed
//	                                     │
//	                                     ▼  no Completed of it left to raise
//	                                   quiet     quiet closed
//
// Only Close moves open to closing, under Socket.mu, so that code holding
// mu (or rx.mu: Close marks the receive side after it) sees one answer
// while it decides; everything else reads the word without a lock. The
// flags wrShut and shutPending change only under Socket.mu. A side's flag
// and its hold come and go together, so whoever lets go of the last hold
// sees holds == 0 and no side flag, and releases the socket; after that
// nothing can take a hold (tryHold), so the release runs once.
type lifeWord struct{ v atomic.Uint64 }

const (
	phaseOpen     uint64 = 0
	phaseClosing  uint64 = 1
	phaseReleased uint64 = 2
	phaseQuiet    uint64 = 3
	phaseMask     uint64 = 3

	lifeWrShut      uint64 = 1 << 2 // CloseWrite: no more sends
	lifeShutPending uint64 = 1 << 3 // CloseWrite waits for the queue to drain
	lifeSendHeld    uint64 = 1 << 4 // the send side holds the close
	lifeRxHeld      uint64 = 1 << 5 // the receive side holds the close

	holdShift        = 8
	holdUnit  uint64 = 1 << holdShift
)

func (l *lifeWord) phase() uint64 { return l.v.Load() & phaseMask }

// closing reports that Close has begun (any phase after open).
func (l *lifeWord) closing() bool { return l.phase() != phaseOpen }

func (l *lifeWord) released() bool { return l.phase() >= phaseReleased }

func (l *lifeWord) has(flag uint64) bool { return l.v.Load()&flag != 0 }

// set and clear change flags; wrShut and shutPending under Socket.mu.
func (l *lifeWord) set(flag uint64)   { l.v.Or(flag) }
func (l *lifeWord) clear(flag uint64) { l.v.And(^flag) }

// beginClose moves open to closing with Close's own hold, and the send
// side's when sendBusy; false if Close had begun already. Under Socket.mu.
func (l *lifeWord) beginClose(sendBusy bool) bool {
	for {
		v := l.v.Load()
		if v&phaseMask != phaseOpen {
			return false
		}
		n := v | phaseClosing | holdUnit
		if sendBusy {
			n += lifeSendHeld + holdUnit
		}
		if l.v.CompareAndSwap(v, n) {
			return true
		}
	}
}

// holdSide takes a side's flag and its hold (Close marking a busy side).
func (l *lifeWord) holdSide(side uint64) { l.v.Add(side + holdUnit) }

// dropSide clears a side's flag and reports whether it was set; the
// caller then lets go of the side's hold (release), outside its lock.
func (l *lifeWord) dropSide(side uint64) bool { return l.v.And(^side)&side != 0 }

// tryHold takes a hold unless none is left (the socket is being released).
func (l *lifeWord) tryHold() bool {
	for {
		v := l.v.Load()
		if v>>holdShift == 0 {
			return false
		}
		if l.v.CompareAndSwap(v, v+holdUnit) {
			return true
		}
	}
}

// letGo lets go of one hold and reports whether it was the last.
func (l *lifeWord) letGo() bool { return l.v.Add(^(holdUnit-1))>>holdShift == 0 }

// advance moves the phase from one value to the next; false if another
// caller did first.
func (l *lifeWord) advance(from, to uint64) bool {
	for {
		v := l.v.Load()
		if v&phaseMask != from {
			return false
		}
		if l.v.CompareAndSwap(v, v&^phaseMask|to) {
			return true
		}
	}
}
