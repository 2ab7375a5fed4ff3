package op

import (
	"fmt"
	"sync/atomic"
)

// An Args moves through the states below, held in one atomic word (as Go's
// internal/poll fd mutex holds its state). SendAsync is "the caller"; the
// goroutine that harvests the final CQE — the engine's reaper, or a caller
// peeking inline — is "the harvester".
//
//	free ──Claim──▶ pending ───────────────────Finish──▶ free, Completed raised
//	                   │                 ▲
//	                   └─Inline─▶ inline ┴─Decide (SendAsync returns pending)
//	                                │
//	                                └─Finish──▶ harvested ──Decide──▶ free, SendAsync returns false
//
// A claimed op is pending at once: until SendAsync queues it or submits it
// inline nobody else can reach it, and a queued op needs no transition of
// its own (each costs a locked instruction per send).
//
// The race at the heart of SendAsync's contract is the pair of CASes out of inline: Decide
// (inline→pending, by the caller) and Finish (inline→harvested, by the
// harvester). Exactly one wins, so a send completes exactly once: either
// SendAsync returns false or Completed is raised, never both, never neither.
const (
	stateFree      uint32 = iota // not in use; SendAsync may claim it
	stateInline                  // on the wire, submitted inline; SendAsync has not decided
	statePending                 // claimed by SendAsync, queued or on the wire; SendAsync returns pending
	stateHarvested               // finished before SendAsync decided: it will return false
)

var stateNames = [...]string{"free", "inline", "pending", "harvested"}

type opState struct{ v atomic.Uint32 }

func (s *opState) load() uint32 { return s.v.Load() }

// claim moves free → pending; false means the Args is in use.
func (s *opState) claim() bool { return s.v.CompareAndSwap(stateFree, statePending) }

// set moves the state from "from" to "to" for the single owner of "from";
// any other current state is a bug.
func (s *opState) set(from, to uint32) {
	if !s.v.CompareAndSwap(from, to) {
		panic(fmt.Sprintf("op: inconsistent op state: want %s→%s, have %s", name(from), name(to), name(s.v.Load())))
	}
}

// decide is the caller's side of the race: true (pending) if it moved
// inline → pending; false if the harvester finished first, in which case
// the Args is free again.
func (s *opState) decide() (pending bool) {
	if s.v.CompareAndSwap(stateInline, statePending) {
		return true
	}
	s.set(stateHarvested, stateFree)
	return false
}

// finish is the harvester's side: it returns true when Completed must be
// raised (the caller returned pending), false when the caller will report
// the result itself (inline → harvested).
func (s *opState) finish() (raise bool) {
	// Load first: most ops finish pending, and a failed CAS costs as much
	// as a successful one.
	st := s.v.Load()
	if st == stateInline {
		if s.v.CompareAndSwap(stateInline, stateHarvested) {
			return false
		}
		st = s.v.Load() // the caller decided: pending
	}
	if st != statePending {
		panic(fmt.Sprintf("op: finishing an op in state %s", name(st)))
	}
	return true
}

func name(st uint32) string {
	if int(st) < len(stateNames) {
		return stateNames[st]
	}
	return fmt.Sprintf("state(%d)", st)
}
