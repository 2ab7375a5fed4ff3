//go:build linux

package ring

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Regression tests, each named after the bug it pins down.

// Bug: after Close unmapped the rings, UnlockSQ (the error path of every
// GetSQE that returned ErrClosed), Submit, Ready, PeekBatch, TryHarvest and
// Reserve read the unmapped head/tail words and the process died with
// SIGSEGV ("unexpected fault address").
func TestUseAfterCloseFaults(t *testing.T) {
	r, err := New(Config{})
	if err != nil {
		t.Skip(err)
	}
	r.Close()
	r.LockSQ()
	if err := r.Reserve(2); !errors.Is(err, ErrClosed) {
		t.Errorf("Reserve after Close: %v, want ErrClosed", err)
	}
	if _, err := r.GetSQE(); !errors.Is(err, ErrClosed) {
		t.Errorf("GetSQE after Close: %v, want ErrClosed", err)
	}
	r.UnlockSQ()
	if _, err := r.Submit(); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Close: %v, want ErrClosed", err)
	}
	if _, err := r.SubmitAndWait(1, time.Millisecond); !errors.Is(err, ErrClosed) {
		t.Errorf("SubmitAndWait after Close: %v, want ErrClosed", err)
	}
	if err := r.Wake(); !errors.Is(err, ErrClosed) {
		t.Errorf("Wake after Close: %v, want ErrClosed", err)
	}
	if _, err := r.StartReaper(newRecorder(), 0, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("StartReaper after Close: %v, want ErrClosed", err)
	}
	if n := r.Ready(); n != 0 {
		t.Errorf("Ready after Close = %d", n)
	}
	if n := r.Dropped(); n != 0 {
		t.Errorf("Dropped after Close = %d", n)
	}
	if n := r.Pending(); n != 0 {
		t.Errorf("Pending after Close = %d", n)
	}
	r.LockCQ()
	if n := r.PeekAndHandle(newRecorder()); n != 0 {
		t.Errorf("PeekAndHandle after Close = %d", n)
	}
	r.UnlockCQ()
	if n, ok := r.TryHarvest(newRecorder()); n != 0 || !ok {
		t.Errorf("TryHarvest after Close = %d, %v", n, ok)
	}
	r.LockCQ()
	if n := r.PeekBatch(make([]CQE, 4)); n != 0 {
		t.Errorf("PeekBatch after Close = %d", n)
	}
	r.UnlockCQ()
}

// The same, racing: submitters and inline harvesters keep going while
// another goroutine closes the ring. They must see ErrClosed, not a fault.
func TestUseDuringCloseFaults(t *testing.T) {
	for range 20 {
		r, err := New(Config{Entries: 8})
		if err != nil {
			t.Skip(err)
		}
		h := newRecorder()
		if _, err := r.StartReaper(h, 0, nil); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var stop atomic.Bool
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					r.LockSQ()
					sqe, err := r.GetSQE()
					if err == nil {
						PrepNop(sqe)
						sqe.SetUserData(uint64(g)<<32 | uint64(i))
					}
					r.UnlockSQ()
					r.Submit()
					r.Ready()
					r.TryHarvest(h)
				}
			}()
		}
		time.Sleep(2 * time.Millisecond)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		stop.Store(true)
		wg.Wait()
	}
}

// Bug: Close decided whether to cancel from Inflight read outside the
// submission lock. An SQE taken before Close began but published while it
// ran (its submitter still held the lock) was never cancelled: a send
// blocked on a full socket kept the reaper waiting, Close gave up after
// its drain budget and then waited for the reaper forever.
func TestCloseMissesSQEPublishedDuringClose(t *testing.T) {
	r := newRing(t, Config{})
	h := newRecorder()
	if _, err := r.StartReaper(h, 0, nil); err != nil {
		t.Fatal(err)
	}
	a, b := socketpair(t, unix.SOCK_STREAM)
	fillSocket(t, a, b)
	msg := pattern(100, 1)

	r.LockSQ()
	sqe, err := r.GetSQE()
	if err != nil {
		t.Fatal(err)
	}
	PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL)
	sqe.SetUserData(1)
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	for !r.closing() {
		time.Sleep(100 * time.Microsecond)
	}
	time.Sleep(5 * time.Millisecond) // let Close look at Inflight
	r.UnlockSQ()
	r.Submit()

	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(timeout(3 * time.Second)):
		t.Fatalf("Close did not return: the send published during Close was not cancelled (Inflight %d)", r.Inflight())
	}
	cqes, _ := h.snapshot()
	if len(cqes) != 1 || cqes[0].UserData() != 1 || cqes[0].Result() != -int32(unix.ECANCELED) {
		t.Fatalf("handler got %s, want the send once with -ECANCELED", fmtCQEs(cqes))
	}
}

// Bug: Close posted its wake-up NOP after cancelling. When the reaper had
// already harvested the cancelled requests and left (nothing in flight),
// nobody harvested that NOP and Inflight stayed 1 after Close.
func TestCloseLeavesWakeupInflight(t *testing.T) {
	for i := range 30 {
		r, err := New(Config{})
		if err != nil {
			t.Skip(err)
		}
		h := newRecorder()
		if _, err := r.StartReaper(h, 0, nil); err != nil {
			t.Fatal(err)
		}
		a, b := socketpair(t, unix.SOCK_STREAM)
		fillSocket2(t, a, b)
		msg := pattern(100, 1)
		submit1(t, r, 1, func(sqe *SQE) { PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL) })
		closeWithin(t, r, 5*time.Second)
		if n := r.Inflight(); n != 0 {
			t.Fatalf("round %d: Inflight() = %d after Close", i, n)
		}
		if h.total.Load() != 1 {
			t.Fatalf("round %d: %d completions handed over, want 1", i, h.total.Load())
		}
	}
}

// fillSocket2 is fillSocket without the wait for TCP to settle: enough
// for AF_UNIX.
func fillSocket2(t testing.TB, fd, peer int) {
	t.Helper()
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	chunk := make([]byte, 4096)
	for {
		if _, err := unix.SendmsgN(fd, chunk, nil, nil, unix.MSG_DONTWAIT); err != nil {
			if err != unix.EAGAIN {
				t.Fatal(err)
			}
			return
		}
	}
}

// Bug: the reaper left as soon as Close had begun and nothing was in
// flight. A submitter that had taken an SQE before Close began published
// it afterwards; Close cancelled it, but nobody was left to hand its CQE
// to the Handler: the operation never completed.
func TestReaperLeavesBeforeLastSQE(t *testing.T) {
	r := newRing(t, Config{})
	gate := make(chan struct{})
	h := &gatedHandler{recorder: newRecorder(), gateUD: 100, gate: gate, entered: make(chan struct{})}
	if _, err := r.StartReaper(h, 0, nil); err != nil {
		t.Fatal(err)
	}
	a, b := socketpair(t, unix.SOCK_STREAM)
	fillSocket2(t, a, b)
	msg := pattern(100, 1)

	submit1(t, r, 100, PrepNop)
	<-h.entered // the reaper is inside HandleCQEs
	r.LockSQ()
	sqe, err := r.GetSQE()
	if err != nil {
		t.Fatal(err)
	}
	PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL)
	sqe.SetUserData(1)
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	for !r.closing() {
		time.Sleep(100 * time.Microsecond)
	}
	close(gate)                      // the reaper finishes its round: nothing in flight
	time.Sleep(5 * time.Millisecond) // and would leave
	r.UnlockSQ()
	r.Submit()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(timeout(5 * time.Second)):
		t.Fatal("Close did not return")
	}
	_, counts := h.snapshot()
	if counts[1] != 1 || counts[100] != 1 {
		t.Fatalf("completions per user_data %v: want the send and the NOP once each", counts)
	}
}

type gatedHandler struct {
	*recorder
	gateUD  uint64
	gate    chan struct{}
	entered chan struct{}
}

func (h *gatedHandler) HandleCQEs(cqes []CQE) {
	for _, c := range cqes {
		if c.UserData() == h.gateUD {
			close(h.entered)
			<-h.gate
		}
	}
	h.recorder.HandleCQEs(cqes)
}

// Bug: Close woke the reaper with one NOP. An inline harvester
// (TryHarvest) could consume that CQE between the reaper's last look at
// the ring and its sleep in io_uring_enter; the reaper then slept with
// nothing left to wake it, Close gave up after its drain budget and waited
// for the reaper forever.
func TestCloseHangsWhenWakeupStolen(t *testing.T) {
	for i := range 50 {
		r, err := New(Config{})
		if err != nil {
			t.Skip(err)
		}
		h := newRecorder()
		if _, err := r.StartReaper(h, 0, nil); err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					r.TryHarvest(h)
				}
			}()
		}
		submitNops(t, r, 0, 4)
		done := make(chan error, 1)
		go func() { done <- r.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(timeout(3 * time.Second)):
			stop.Store(true)
			t.Fatalf("round %d: Close did not return", i)
		}
		stop.Store(true)
		wg.Wait()
		if h.total.Load() != 4 {
			t.Fatalf("round %d: %d completions, want 4", i, h.total.Load())
		}
	}
}

// Bug: when a request outlived Close's drain budget, Close unmapped the
// rings and closed the fd while the reaper still slept in io_uring_enter,
// which holds the file, and then waited for the reaper forever (or the
// reaper read the unmapped SQ tail). A NOP with IOSQE_CQE_SKIP_SUCCESS
// posts no CQE, so it stays in flight for good.
func TestCloseHangsAfterDrainBudget(t *testing.T) {
	defer func(d time.Duration) { drainBudget = d }(drainBudget)
	drainBudget = 100 * time.Millisecond
	r := newRing(t, Config{Unrestricted: true})
	if r.Features()&FeatCQESkip == 0 {
		t.Skip("no IOSQE_CQE_SKIP_SUCCESS")
	}
	rp, err := r.StartReaper(newRecorder(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	submit1(t, r, 1, func(sqe *SQE) {
		PrepNop(sqe)
		sqe.SetFlags(sqeCQESkipSuccess)
	})
	closeWithin(t, r, 3*time.Second)
	select {
	case <-rp.done:
	default:
		t.Fatal("reaper still running after Close")
	}
}

// Bug: SubmitAndWait kept the timeout's timespec on the stack and passed
// its address to the kernel as a number inside io_uring_getevents_arg. A
// stack growth in any call between taking the address and the system call
// moves the stack without updating that number, so the kernel read the
// timespec from the old stack. (The old stack usually still holds the
// same bytes, so this test rarely failed before the fix; it walks the
// stack depth across growth boundaries and checks every timed wait.)
func TestSubmitAndWaitTimespecOnMovingStack(t *testing.T) {
	r := newRing(t, Config{})
	if r.Features()&FeatExtArg == 0 {
		t.Skip("no IORING_FEAT_EXT_ARG")
	}
	const d = 2 * time.Millisecond
	for depth := range 200 {
		errc := make(chan error, 1)
		go func() { errc <- atDepth(depth, func() error { return timedWait(r, d) }) }()
		if err := <-errc; err != nil {
			t.Fatalf("depth %d: %v", depth, err)
		}
	}
	// The heap copies are recycled: a timed wait allocates nothing.
	if n := testing.AllocsPerRun(100, func() { r.SubmitAndWait(1, time.Microsecond) }); n != 0 && !raceEnabled {
		t.Errorf("SubmitAndWait with a timeout: %v allocs", n)
	}
}

func timedWait(r *Ring, d time.Duration) error {
	start := time.Now()
	_, err := r.SubmitAndWait(1, d)
	if took := time.Since(start); err != unix.ETIME || took < d || took > d+timeout(time.Second) {
		return fmt.Errorf("SubmitAndWait(1, %v) = %v after %v, want ETIME after the timeout", d, err, took)
	}
	return nil
}

// atDepth calls f under depth frames of 128 bytes each.
//
//go:noinline
func atDepth(depth int, f func() error) error {
	var pad [128]byte
	if depth > 0 {
		pad[depth%128] = byte(depth)
		return atDepth(depth-1, f)
	}
	_ = pad
	return f()
}

// Bug: PeekBatch flushed the kernel's overflow list into the CQ only once
// per call. With dst larger than the CQ it returned after two CQ-fulls
// although more completions waited, and harvestLocked (TryHarvest, the
// reaper), seeing a short batch, took the CQ for empty.
func TestPeekBatchStopsAfterOneOverflowFlush(t *testing.T) {
	r := newRing(t, Config{Entries: 8, CQEntries: 8})
	const n = 100
	submitNops(t, r, 0, n)
	buf := make([]CQE, 256)
	r.LockCQ()
	got := r.PeekBatch(buf)
	r.UnlockCQ()
	if got != n {
		t.Fatalf("PeekBatch into %d slots returned %d of %d waiting CQEs", len(buf), got, n)
	}
	h := newRecorder()
	submitNops(t, r, n, n)
	if k, _ := r.TryHarvest(h); k != n {
		t.Fatalf("TryHarvest harvested %d of %d", k, n)
	}
}
