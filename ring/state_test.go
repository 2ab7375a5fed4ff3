//go:build linux

package ring

import (
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Tests of the lifecycle word (state_linux.go): each transition and
// wake-up of its comment.

// Close moves the phase through closing and sealed to closed and leaves
// no flag and no user behind.
func TestStatePhases(t *testing.T) {
	r, err := New(Config{})
	if err != nil {
		t.Skip(err)
	}
	if p := r.phase(); p != phaseOpen {
		t.Fatalf("new ring in phase %s", phaseNames[p])
	}
	startReaper(t, r, newRecorder(), 0, nil)
	if r.state.Load()&stateReaper == 0 {
		t.Error("StartReaper did not set the reaper flag")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	s := r.state.Load()
	if phaseOf(s) != phaseClosed || usersOf(s) != 0 || s&(stateParked|stateCloseWait) != 0 {
		t.Fatalf("state after Close: phase %s, users %d, flags %#x", phaseNames[phaseOf(s)], usersOf(s), s&^phaseMask)
	}
}

// Close waits for a lock-free user (acquire) to release before it
// unmaps, and the release wakes it.
func TestCloseWaitsForUser(t *testing.T) {
	r, err := New(Config{})
	if err != nil {
		t.Skip(err)
	}
	if !r.acquire() {
		t.Fatal("acquire on an open ring failed")
	}
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	deadline := time.Now().Add(timeout(5 * time.Second))
	for r.state.Load()&stateCloseWait == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Close does not wait for the user (state %#x)", r.state.Load())
		}
		time.Sleep(100 * time.Microsecond)
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a user still read the rings")
	case <-time.After(10 * time.Millisecond):
	}
	if r.Ready() != 0 || r.acquire() {
		t.Error("a new user got in after the ring was closed")
	}
	r.release()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(timeout(5 * time.Second)):
		t.Fatal("the last release did not wake Close")
	}
}

func TestReleaseWithoutAcquirePanics(t *testing.T) {
	r := newRing(t, Config{})
	defer func() {
		if recover() == nil {
			t.Fatal("release without acquire did not panic")
		}
		r.state.Add(userUnit) // undo, so that Close does not wait for it
	}()
	r.release()
}

// Close calls racing one another: one closes, the others wait for it; all
// return nil and the ring is closed when any returns.
func TestCloseConcurrent(t *testing.T) {
	for range 20 {
		r, err := New(Config{})
		if err != nil {
			t.Skip(err)
		}
		startReaper(t, r, newRecorder(), 0, nil)
		a, b := socketpair(t, unix.SOCK_STREAM)
		fillSocket2(t, a, b)
		msg := pattern(100, 1)
		submit1(t, r, 1, func(sqe *SQE) { PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL) })
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.Close(); err != nil {
					t.Error(err)
				}
				if !r.closed() {
					t.Error("Close returned before the ring was closed")
				}
			}()
		}
		wg.Wait()
	}
}

// StartReaper racing Close: either it fails with ErrClosed, or the reaper
// it started has left when Close returns (goleak in TestMain checks that
// no goroutine is left either way).
func TestStartReaperRacesClose(t *testing.T) {
	for range 50 {
		r, err := New(Config{})
		if err != nil {
			t.Skip(err)
		}
		started := make(chan *Reaper, 1)
		go func() {
			rp, err := r.StartReaper(newRecorder(), 0, nil)
			if err != nil && !errors.Is(err, ErrClosed) {
				t.Error(err)
			}
			started <- rp
		}()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if rp := <-started; rp != nil {
			select {
			case <-rp.done:
			case <-time.After(timeout(5 * time.Second)):
				t.Fatal("the reaper outlived Close")
			}
		}
	}
}
