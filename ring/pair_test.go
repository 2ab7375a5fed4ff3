//go:build linux

package ring

import (
	"errors"
	"testing"
	"time"
)

// closeWhileLocked starts Close while the caller holds the submission lock
// and returns once Close has begun (it then waits for the lock).
func closeWhileLocked(t *testing.T, r *Ring) <-chan error {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	for !r.closing() {
		time.Sleep(50 * time.Microsecond)
	}
	return closed
}

func waitClosed(t *testing.T, closed <-chan error) {
	t.Helper()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(timeout(5 * time.Second)):
		t.Fatal("Close did not return")
	}
}

// Bug: a send with a linked timeout did Reserve(2) and two GetSQEs. When
// Close began between them, the second GetSQE returned ErrClosed after the
// first had been taken, and the send went out with IOSQE_IO_LINK and no
// timeout. SQEs covered by a Reserve are now handed out even once closing
// has begun (Close's cancel, which waits for the submission lock, still
// covers them).
func TestReserveSplitByClose(t *testing.T) {
	r, err := New(Config{Entries: 8})
	if err != nil {
		t.Skip(err)
	}
	r.LockSQ()
	if err := r.Reserve(2); err != nil {
		r.UnlockSQ()
		t.Fatal(err)
	}
	first, err := r.GetSQE()
	if err != nil {
		r.UnlockSQ()
		t.Fatal(err)
	}
	PrepNop(first)
	first.SetUserData(1)
	closed := closeWhileLocked(t, r)
	second, err := r.GetSQE()
	if err == nil {
		PrepNop(second)
		second.SetUserData(2)
	}
	r.UnlockSQ()
	waitClosed(t, closed)
	if err != nil {
		t.Fatalf("second GetSQE of a Reserve(2) after Close began: %v (the first was taken)", err)
	}
	// Beyond the reservation GetSQE refuses again.
	r.LockSQ()
	if _, err := r.GetSQE(); !errors.Is(err, ErrClosed) {
		t.Errorf("GetSQE beyond the reservation after Close: %v, want ErrClosed", err)
	}
	r.UnlockSQ()
}

// A reservation not used up by the time UnlockSQ is called is gone.
func TestReserveEndsAtUnlock(t *testing.T) {
	r, err := New(Config{Entries: 8})
	if err != nil {
		t.Skip(err)
	}
	r.LockSQ()
	if err := r.Reserve(2); err != nil {
		r.UnlockSQ()
		t.Fatal(err)
	}
	r.UnlockSQ()
	r.LockSQ()
	closed := closeWhileLocked(t, r)
	_, err = r.GetSQE()
	r.UnlockSQ()
	waitClosed(t, closed)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("GetSQE after Close began, reservation released: %v, want ErrClosed", err)
	}
}

// GetSQEPair after Close has begun returns ErrClosed and takes nothing.
func TestGetSQEPairClosing(t *testing.T) {
	r, err := New(Config{Entries: 8})
	if err != nil {
		t.Skip(err)
	}
	r.LockSQ()
	closed := closeWhileLocked(t, r)
	tail := r.localTail
	a, b, err := r.GetSQEPair()
	if !errors.Is(err, ErrClosed) || a != nil || b != nil {
		t.Errorf("GetSQEPair after Close began = %p, %p, %v; want nil, nil, ErrClosed", a, b, err)
	}
	if r.localTail != tail {
		t.Errorf("GetSQEPair after Close began took %d entries", r.localTail-tail)
	}
	r.UnlockSQ()
	waitClosed(t, closed)
	r.LockSQ()
	if _, _, err := r.GetSQEPair(); !errors.Is(err, ErrClosed) {
		t.Errorf("GetSQEPair after Close: %v, want ErrClosed", err)
	}
	r.UnlockSQ()
}

// GetSQEPair on an SQ with one free entry submits what is queued and
// hands out two adjacent, zeroed entries; both leave in one submission.
func TestGetSQEPairFlushesNearlyFullSQ(t *testing.T) {
	r := newRing(t, Config{Entries: 8})
	r.LockSQ()
	// Dirty every entry first so that zeroing is checked on reused slots.
	for i := range 8 {
		sqe, _ := r.GetSQE()
		PrepNop(sqe)
		sqe.SetFlags(SQEAsync)
		sqe.SetUserData(uint64(100 + i))
	}
	r.UnlockSQ()
	waitCQEs(t, r, 8, 5*time.Second)

	r.LockSQ()
	for i := range 7 {
		sqe, err := r.GetSQE()
		if err != nil {
			r.UnlockSQ()
			t.Fatal(err)
		}
		PrepNop(sqe)
		sqe.SetUserData(uint64(i))
	}
	before := r.Stats().Submitted
	a, b, err := r.GetSQEPair()
	if err != nil {
		r.UnlockSQ()
		t.Fatalf("GetSQEPair with one free entry: %v", err)
	}
	if got := r.Stats().Submitted - before; got != 7 {
		t.Errorf("GetSQEPair with one free entry submitted %d, want the 7 queued", got)
	}
	if *a != (SQE{}) || *b != (SQE{}) {
		t.Errorf("GetSQEPair handed out entries that are not zeroed: %+v %+v", *a, *b)
	}
	PrepNop(a)
	a.SetUserData(7)
	PrepNop(b)
	b.SetUserData(8)
	r.UnlockSQ()
	if n, err := r.Submit(); n != 2 || err != nil {
		t.Fatalf("Submit of the pair = %d, %v; want 2 in one submission", n, err)
	}
	checkOrder(t, waitCQEs(t, r, 9, 5*time.Second))
}

// A one-entry SQ can never hold a pair.
func TestGetSQEPairTooSmall(t *testing.T) {
	r := newRing(t, Config{Entries: 1, CQEntries: 4})
	r.LockSQ()
	defer r.UnlockSQ()
	if r.SQEntries() >= 2 {
		t.Skipf("kernel made a %d-entry SQ", r.SQEntries())
	}
	if _, _, err := r.GetSQEPair(); err == nil {
		t.Fatal("GetSQEPair on a one-entry SQ succeeded")
	}
}
