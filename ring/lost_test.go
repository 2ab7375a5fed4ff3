//go:build linux

package ring

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// failEnter makes every io_uring_enter of r fail with errno until t ends.
func failEnter(t *testing.T, r *Ring, errno syscall.Errno) {
	t.Helper()
	r.enterFault.Store(uint32(errno))
	t.Cleanup(func() { r.enterFault.Store(0) })
}

// Whichever call hears EBADR from the kernel, Lost stays true from then on:
// the engine may stop waiting for completions that will never come.
func TestLostOnEBADR(t *testing.T) {
	for _, c := range []struct {
		name string
		call func(t *testing.T, r *Ring) error
	}{
		{"Submit", func(t *testing.T, r *Ring) error {
			r.LockSQ()
			sqe, _ := r.GetSQE()
			PrepNop(sqe)
			r.UnlockSQ()
			_, err := r.Submit()
			return err
		}},
		{"SubmitAndWait", func(t *testing.T, r *Ring) error {
			_, err := r.SubmitAndWait(1, time.Millisecond)
			return err
		}},
		{"GetSQE on a full SQ", func(t *testing.T, r *Ring) error {
			r.LockSQ()
			defer r.UnlockSQ()
			for range r.SQEntries() {
				sqe, _ := r.GetSQE()
				PrepNop(sqe)
			}
			_, err := r.GetSQE()
			return err
		}},
		{"GetSQEPair on a full SQ", func(t *testing.T, r *Ring) error {
			r.LockSQ()
			defer r.UnlockSQ()
			for range r.SQEntries() {
				sqe, _ := r.GetSQE()
				PrepNop(sqe)
			}
			_, _, err := r.GetSQEPair()
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRing(t, Config{Entries: 8})
			if r.Lost() {
				t.Fatal("a new ring is Lost")
			}
			failEnter(t, r, unix.EBADR)
			if err := c.call(t, r); !errors.Is(err, ErrCQELost) {
				t.Errorf("%s with EBADR: %v, want ErrCQELost", c.name, err)
			}
			r.enterFault.Store(0)
			if !r.Lost() {
				t.Fatalf("Lost() = false after %s heard EBADR", c.name)
			}
			r.Close()
			if !r.Lost() {
				t.Fatal("Lost() = false after Close")
			}
		})
	}
}

// The reaper hears EBADR in its own wait.
func TestLostOnEBADRInReaper(t *testing.T) {
	r := newRing(t, Config{})
	h := newRecorder()
	if _, err := r.StartReaper(h, 0, nil); err != nil {
		t.Fatal(err)
	}
	failEnter(t, r, unix.EBADR)
	r.LockSQ()
	sqe, _ := r.GetSQE()
	PrepNop(sqe)
	r.UnlockSQ()
	r.Wake() // the reaper enters (and fails) whether parked or not
	deadline := time.Now().Add(timeout(5 * time.Second))
	for !r.Lost() {
		if time.Now().After(deadline) {
			t.Fatal("Lost() = false although the reaper's io_uring_enter fails with EBADR")
		}
		time.Sleep(time.Millisecond)
	}
	r.enterFault.Store(0)
	h.waitTotal(t, 1, 5*time.Second)
}

// CQEs the kernel counted as dropped (its cq overflow word) make the ring
// Lost too, also when no call heard EBADR, and it stays so after Close.
func TestLostOnDropped(t *testing.T) {
	r := newRing(t, Config{})
	if r.Lost() || r.Dropped() != 0 {
		t.Fatalf("new ring: Lost %v, Dropped %d", r.Lost(), r.Dropped())
	}
	atomic.StoreUint32(r.cqOverflow, 1) // as the kernel does when it drops one
	if !r.Lost() || r.Dropped() != 1 {
		t.Fatalf("after a drop: Lost %v, Dropped %d", r.Lost(), r.Dropped())
	}
	atomic.StoreUint32(r.cqOverflow, 0)
	if !r.Lost() {
		t.Fatal("Lost() is not sticky")
	}

	r2 := newRing(t, Config{})
	atomic.StoreUint32(r2.cqOverflow, 1)
	r2.Close() // nobody asked before Close
	if !r2.Lost() {
		t.Fatal("Lost() = false after Close of a ring that dropped a CQE")
	}
}
