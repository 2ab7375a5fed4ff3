//go:build linux

package ring

import (
	"testing"
	"time"
)

// GetSQE on a full SQ publishes and submits what is queued and hands out
// the next entry: a caller never needs to Submit to make room.
func TestSQFullGetSQESubmits(t *testing.T) {
	r := newRing(t, Config{Entries: 8})
	r.LockSQ()
	for i := range 8 {
		sqe, err := r.GetSQE()
		if err != nil {
			t.Fatal(err)
		}
		PrepNop(sqe)
		sqe.SetUserData(uint64(i))
	}
	if st := r.Stats(); st.Submitted != 0 || r.Inflight() != 0 {
		t.Fatalf("before the SQ filled: Stats %+v, Inflight %d", st, r.Inflight())
	}
	sqe, err := r.GetSQE() // the 9th
	if err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Submitted != 8 || r.Inflight() != 8 {
		t.Fatalf("9th GetSQE on a full SQ: Stats %+v, Inflight %d; want 8 submitted", r.Stats(), r.Inflight())
	}
	PrepNop(sqe)
	sqe.SetUserData(8)
	r.UnlockSQ()
	if n, err := r.Submit(); n != 1 || err != nil {
		t.Fatalf("Submit = %d, %v; want 1", n, err)
	}
	checkOrder(t, waitCQEs(t, r, 9, 5*time.Second))
}

// Reserve makes room for a whole chain at once, so that a linked chain
// is never split across submissions.
func TestSQFullReserve(t *testing.T) {
	r := newRing(t, Config{Entries: 8})
	r.LockSQ()
	defer r.UnlockSQ()
	for _, n := range []int{0, -1, 9} {
		if err := r.Reserve(n); err == nil {
			t.Errorf("Reserve(%d) on an 8-entry SQ succeeded", n)
		}
	}
	for i := range 7 {
		sqe, _ := r.GetSQE()
		PrepNop(sqe)
		sqe.SetUserData(uint64(i))
	}
	if err := r.Reserve(2); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Submitted != 7 {
		t.Fatalf("Reserve(2) with 1 free entry: %d submitted, want 7", st.Submitted)
	}
	for i := 7; i < 9; i++ {
		sqe, _ := r.GetSQE()
		PrepNop(sqe)
		sqe.SetUserData(uint64(i))
	}
	if st := r.Stats(); st.Submitted != 7 {
		t.Fatalf("GetSQE after Reserve flushed again: %d submitted", st.Submitted)
	}
	if err := r.Reserve(8); err != nil {
		t.Fatal(err)
	}
	r.UnlockSQ()
	r.Submit()
	checkOrder(t, waitCQEs(t, r, 9, 5*time.Second))
	r.LockSQ()
}

func checkOrder(t *testing.T, cqes []CQE) {
	t.Helper()
	for i, c := range cqes {
		checkCQE(t, c, uint64(i), 0)
	}
}

// Published SQEs leave with whoever enters next: Submit of another
// goroutine, or the reaper (woken by Wake).
func TestSQPublishedSubmittedByAnyEnter(t *testing.T) {
	r := newRing(t, Config{})
	h := newRecorder()
	if _, err := r.StartReaper(h, 0, nil); err != nil {
		t.Fatal(err)
	}
	r.LockSQ()
	for i := range 5 {
		sqe, _ := r.GetSQE()
		PrepNop(sqe)
		sqe.SetUserData(uint64(i))
	}
	r.UnlockSQ()
	if p := r.Pending(); p != 5 {
		t.Fatalf("Pending() = %d, want 5", p)
	}
	if err := r.Wake(); err != nil { // its Submit takes the five along
		t.Fatal(err)
	}
	h.waitTotal(t, 5, 5*time.Second)
	_, counts := h.snapshot()
	checkExactlyOnce(t, counts, 5)
}
