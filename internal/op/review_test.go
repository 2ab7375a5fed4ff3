//go:build linux

package op

import (
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Review of 2a4d013 (Claim takes the snapshot, Begin no longer does).

// Claim takes the snapshot: buffers, flags and timeout changed after Claim
// (before or after Begin) do not reach the op; a refused second Claim of
// an op in use changes none of them; the next Claim takes the new values.
func TestReviewClaimSnapshot(t *testing.T) {
	var e testArgs
	a := []byte("first buffer")
	e.SetBuffer(a)
	e.Flags = unix.MSG_MORE
	e.Timeout = time.Second
	o := &e.op
	must(t, e.claim())
	// The caller changes its Args between SendAsync's Claim and Begin.
	e.SetBuffer(nil)
	e.SetBufferList([][]byte{[]byte("zz")})
	e.Flags = 0
	e.Timeout = 0
	o.Begin(true, nil)
	check := func(when string) {
		t.Helper()
		buf, msg, flags := o.SendmsgArgs()
		if msg != nil || unsafe.SliceData(buf) != unsafe.SliceData(a) || len(buf) != len(a) || o.Total() != len(a) {
			t.Fatalf("%s: the op sends %q (msg %v, total %d), want the snapshot %q", when, buf, msg, o.Total(), a)
		}
		if flags != unix.MSG_MORE|unix.MSG_NOSIGNAL || o.Timeout() != time.Second || o.Coalescable() {
			t.Fatalf("%s: flags %#x timeout %v coalescable %v; want the snapshot's", when, flags, o.Timeout(), o.Coalescable())
		}
	}
	check("after Begin")
	if err := e.claim(); !errors.Is(err, ErrInProgress) {
		t.Fatalf("Claim of an op in use = %v", err)
	}
	check("after a refused Claim")
	o.MarkQueued()
	if o.Advance(int32(len(a))) != true {
		t.Fatal("a whole send is not done")
	}
	if !o.Complete(0) {
		t.Fatal("a queued op completed without a raise")
	}
	e.raise()
	// The next Claim takes what the Args holds now.
	must(t, e.claim())
	o.Begin(true, nil)
	if _, msg, flags := o.SendmsgArgs(); msg == nil || flags != unix.MSG_NOSIGNAL || o.Timeout() != 0 || o.Total() != 2 || !o.Coalescable() {
		t.Fatalf("second send: msg %v flags %#x timeout %v total %d", msg, flags, o.Timeout(), o.Total())
	}
	o.Abandon()
	if o.state.load() != stateFree || o.buf != nil || o.bufs != nil {
		t.Fatal("Abandon left the op in use or holding buffers")
	}
}

// A Claim refused by validation changes nothing of the previous result
// and leaves the op free; Begin resets Recv and the result.
func TestReviewClaimRefusedKeepsResult(t *testing.T) {
	var e testArgs
	o := &e.op
	e.SetBuffer(make([]byte, 10))
	must(t, e.claim())
	o.Begin(true, nil)
	o.Recv = true
	o.MarkInline()
	o.Advance(4)
	o.Advance(-int32(syscall.EPIPE))
	if o.Complete(0) {
		t.Fatal("an inline op raised")
	}
	if o.Decide() {
		t.Fatal("a harvested op is pending")
	}
	e.Flags = unix.MSG_DONTWAIT
	if err := e.claim(); !errors.Is(err, ErrBadFlags) {
		t.Fatalf("Claim = %v", err)
	}
	if o.state.load() != stateFree || e.BytesTransferred() != 4 || e.Errno() != syscall.EPIPE || !o.Recv {
		t.Fatalf("after a refused Claim: state %d, %d bytes, %v, recv %v", o.state.load(), e.BytesTransferred(), e.Errno(), o.Recv)
	}
	e.Flags = 0
	must(t, e.claim())
	o.Begin(true, nil)
	if e.BytesTransferred() != 0 || e.Errno() != 0 || o.Recv {
		t.Fatal("Begin kept the previous result")
	}
	o.Abandon()
}

// Claim and the race out of inline under contention: many goroutines
// Claim one op; exactly one wins each round, and the op completes exactly
// once (Decide false or one raise) whichever side wins.
func TestReviewClaimContention(t *testing.T) {
	var e testArgs
	raised := 0
	e.Completed = func(*testArgs) { raised++ }
	e.SetBuffer(make([]byte, 8))
	o := &e.op
	for round := range 500 {
		var wins sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for range 4 {
			wins.Add(1)
			go func() {
				defer wins.Done()
				err := e.op.Claim(e.buf, nil, 0, 0)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case !errors.Is(err, ErrInProgress):
					t.Errorf("round %d: Claim = %v", round, err)
				}
			}()
		}
		wins.Wait()
		if won != 1 {
			t.Fatalf("round %d: %d Claims won", round, won)
		}
		o.Begin(true, nil)
		o.MarkInline()
		before := raised
		var harvested bool
		done := make(chan struct{})
		go func() { // the harvester
			o.Advance(8)
			if o.Complete(0) {
				e.raise()
			} else {
				harvested = true
			}
			close(done)
		}()
		pending := o.Decide()
		<-done
		if n := raised - before + map[bool]int{false: 1, true: 0}[pending]; n != 1 || harvested == pending {
			t.Fatalf("round %d: %d completions (pending %v, harvested %v)", round, n, pending, harvested)
		}
		if o.state.load() != stateFree {
			t.Fatalf("round %d: op not free after completing", round)
		}
	}
}
