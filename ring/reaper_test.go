//go:build linux

package ring

import (
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func startReaper(t testing.TB, r *Ring, h Handler, batch int, onBatch func(int)) *Reaper {
	t.Helper()
	rp, err := r.StartReaper(h, batch, onBatch)
	if err != nil {
		t.Fatalf("StartReaper: %v", err)
	}
	return rp
}

func TestReaperDelivers(t *testing.T) {
	r := newRing(t, Config{})
	h := newRecorder()
	var batched atomic.Int64
	startReaper(t, r, h, 16, func(n int) {
		if n <= 0 || n > 16 {
			t.Errorf("onBatch(%d)", n)
		}
		batched.Add(int64(n))
	})
	const n = 1000
	submitNops(t, r, 0, n)
	h.waitTotal(t, n, 10*time.Second)
	_, counts := h.snapshot()
	checkExactlyOnce(t, counts, n)
	closeWithin(t, r, 5*time.Second) // onBatch runs after HandleCQEs: wait for the reaper
	if got := batched.Load(); got != n {
		t.Errorf("onBatch saw %d CQEs, want %d", got, n)
	}
	if h.afters.Load() == 0 {
		t.Error("AfterHarvest never called")
	}
	if got := r.Inflight(); got != 0 {
		t.Errorf("Inflight() = %d", got)
	}
}

// A send that completes after the reaper went to sleep wakes it.
func TestReaperDeliversLateCompletion(t *testing.T) {
	r := newRing(t, Config{})
	h := newRecorder()
	startReaper(t, r, h, 0, nil)
	a, b := socketpair(t, unix.SOCK_STREAM)
	filled := fillSocket(t, a, b)
	msg := pattern(1000, 1)
	submit1(t, r, 3, func(sqe *SQE) { PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL) })
	time.Sleep(20 * time.Millisecond)
	if h.total.Load() != 0 {
		t.Fatal("blocked send delivered before the receiver read")
	}
	readN(t, b, filled)
	h.waitTotal(t, 1, 10*time.Second)
	cqes, _ := h.snapshot()
	if cqes[0].UserData() != 3 || cqes[0].Result() <= 0 {
		t.Fatalf("CQE %s", fmtCQEs(cqes))
	}
	checkBytes(t, readN(t, b, int(cqes[0].Result())), msg[:cqes[0].Result()])
}

// Wake makes a sleeping reaper run a round (AfterHarvest) without
// handing anything to HandleCQEs.
func TestReaperWake(t *testing.T) {
	r := newRing(t, Config{})
	h := newRecorder()
	startReaper(t, r, h, 0, nil)
	time.Sleep(10 * time.Millisecond) // let it block in io_uring_enter
	before := h.afters.Load()
	for i := range 3 {
		if err := r.Wake(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(timeout(5 * time.Second))
		for h.afters.Load() <= before+int64(i) {
			if time.Now().After(deadline) {
				t.Fatalf("Wake %d: reaper did not run a round", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if h.total.Load() != 0 {
		t.Errorf("wake-up CQEs handed to the handler: %d", h.total.Load())
	}
	deadline := time.Now().Add(timeout(5 * time.Second))
	for r.Inflight() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := r.Inflight(); got != 0 {
		t.Errorf("Inflight() = %d after wake-ups", got)
	}
}

// The Handler may submit: a chain of NOPs, each submitted by the handler
// of the previous one.
func TestReaperHandlerSubmits(t *testing.T) {
	r := newRing(t, Config{Entries: 8})
	const n = 500
	h := &chainHandler{r: r, n: n, done: make(chan struct{})}
	startReaper(t, r, h, 0, nil)
	submit1(t, r, 0, PrepNop)
	select {
	case <-h.done:
	case <-time.After(timeout(10 * time.Second)):
		t.Fatalf("chain stopped at %d of %d", h.seen.Load(), n)
	}
	if err := h.err.Load(); err != nil {
		t.Fatal(*err)
	}
}

type chainHandler struct {
	r    *Ring
	n    uint64
	seen atomic.Uint64
	err  atomic.Pointer[error]
	done chan struct{}
}

func (h *chainHandler) HandleCQEs(cqes []CQE) {
	for _, c := range cqes {
		if c.UserData() != h.seen.Load() {
			err := errors.New("out of order")
			h.err.Store(&err)
		}
		next := h.seen.Add(1)
		if next == h.n {
			close(h.done)
			return
		}
		h.r.LockSQ()
		sqe, err := h.r.GetSQE()
		if err == nil {
			PrepNop(sqe)
			sqe.SetUserData(next)
		}
		h.r.UnlockSQ()
		if err == nil {
			_, err = h.r.Submit()
		}
		if err != nil {
			h.err.Store(&err)
		}
	}
}

func (h *chainHandler) AfterHarvest() {}

// Close with sends in flight on a full socket: each is handed to the
// handler exactly once, cancelled (or with its real result), and Close
// returns.
func TestReaperCloseCancelsInflight(t *testing.T) {
	r := newRing(t, Config{})
	h := newRecorder()
	startReaper(t, r, h, 0, nil)
	a, b := socketpair(t, unix.SOCK_STREAM)
	fillSocket(t, a, b)
	const n = 20
	msg := pattern(512, 1)
	for i := range n {
		submit1(t, r, uint64(i), func(sqe *SQE) { PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL) })
	}
	time.Sleep(10 * time.Millisecond)
	if got := r.Inflight(); got != n {
		t.Fatalf("Inflight() = %d before Close, want %d", got, n)
	}
	closeWithin(t, r, 5*time.Second)
	cqes, counts := h.snapshot()
	checkExactlyOnce(t, counts, n)
	for _, c := range cqes {
		if res := c.Result(); res != -int32(unix.ECANCELED) && res != int32(len(msg)) {
			t.Errorf("user_data %d: res %d (%v), want -ECANCELED or %d", c.UserData(), res, errnoOf(res), len(msg))
		}
	}
	if got := r.Inflight(); got != 0 {
		t.Errorf("Inflight() = %d after Close", got)
	}
}

// Close of a ring that has no reaper waits for cancelled sends and
// discards their CQEs.
func TestCloseWithoutReaperCancelsInflight(t *testing.T) {
	r := newRing(t, Config{})
	a, b := socketpair(t, unix.SOCK_STREAM)
	fillSocket(t, a, b)
	msg := pattern(512, 1)
	for i := range 5 {
		submit1(t, r, uint64(i), func(sqe *SQE) { PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL) })
	}
	closeWithin(t, r, 5*time.Second)
	if got := r.Inflight(); got != 0 {
		t.Errorf("Inflight() = %d after Close", got)
	}
}

// Zero-copy sends cancelled by Close still complete exactly once (their
// notification is the final CQE).
func TestReaperCloseCancelsZeroCopy(t *testing.T) {
	r := newRing(t, Config{})
	skipUnlessSupported(t, r, OpSendZC)
	h := newRecorder()
	startReaper(t, r, h, 0, nil)
	a, b := tcpPair(t)
	fillSocket(t, a, b)
	const n = 10
	msg := pattern(4096, 1)
	for i := range n {
		submit1(t, r, uint64(i), func(sqe *SQE) { PrepSendZC(sqe, a, msg, unix.MSG_NOSIGNAL, 0) })
	}
	closeWithin(t, r, 5*time.Second)
	_, counts := h.snapshot()
	checkExactlyOnce(t, counts, n)
}

func closeWithin(t testing.TB, r *Ring, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(timeout(d)):
		t.Fatalf("Close did not return within %v (Inflight %d)", d, r.Inflight())
	}
}

func TestCloseTwice(t *testing.T) {
	for _, withReaper := range []bool{false, true} {
		r, err := New(Config{})
		if err != nil {
			t.Skip(err)
		}
		if withReaper {
			startReaper(t, r, newRecorder(), 0, nil)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("first Close: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
}

func TestStartReaperTwice(t *testing.T) {
	r := newRing(t, Config{})
	startReaper(t, r, newRecorder(), 0, nil)
	if _, err := r.StartReaper(newRecorder(), 0, nil); err == nil {
		t.Fatal("second StartReaper succeeded")
	}
}

// Creating and closing rings, with and without reapers, gives back every
// file descriptor (goleak in TestMain checks the goroutines).
func TestCloseReleasesFDs(t *testing.T) {
	before := countFDs(t)
	for i := range 100 {
		r, err := New(Config{Entries: 16})
		if err != nil {
			t.Skip(err)
		}
		if i%2 == 0 {
			startReaper(t, r, newRecorder(), 0, nil)
			submitNops(t, r, 0, 10)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if after := countFDs(t); after != before {
		t.Fatalf("open fds: %d before, %d after 100 rings", before, after)
	}
}

func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
