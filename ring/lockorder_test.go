//go:build linux

package ring

import (
	"testing"
	"time"
)

// submittingHandler submits a NOP from HandleCQEs, as the package
// documentation allows: it holds the completion lock and takes the
// submission lock. Once Close has begun it waits a moment before it
// submits, so that Close reaches its own locking in between.
type submittingHandler struct {
	r       *Ring
	entered chan struct{}
	delay   time.Duration
}

func (h *submittingHandler) HandleCQEs(cqes []CQE) {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	for !h.r.closing() {
		time.Sleep(50 * time.Microsecond)
	}
	time.Sleep(h.delay)
	h.r.LockSQ()
	if sqe, err := h.r.GetSQE(); err == nil {
		PrepNop(sqe)
		sqe.SetUserData(1 << 40)
	}
	h.r.UnlockSQ()
}

func (h *submittingHandler) AfterHarvest() {}

// Bug: Close took the submission lock and then the completion lock, while
// a Handler that submits from HandleCQEs holds the completion lock and
// takes the submission lock. An inline harvest running the handler while
// Close locked up both deadlocked. The lock order is now cqMu → sqMu.
func TestCloseDeadlocksWithSubmittingHandler(t *testing.T) {
	for i := range 40 {
		r, err := New(Config{Entries: 8})
		if err != nil {
			t.Skip(err)
		}
		h := &submittingHandler{r: r, entered: make(chan struct{}, 1), delay: time.Duration(i%8) * 250 * time.Microsecond}
		submitNops(t, r, 0, 1)
		waitReady(t, r, 1)
		harvested := make(chan struct{})
		go func() {
			defer close(harvested)
			r.TryHarvest(h) // the NOP's CQE: inside HandleCQEs with cqMu held
		}()
		<-h.entered
		closed := make(chan error, 1)
		go func() { closed <- r.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(timeout(5 * time.Second)):
			t.Fatalf("round %d: Close deadlocked with a handler submitting from HandleCQEs", i)
		}
		select {
		case <-harvested:
		case <-time.After(timeout(5 * time.Second)):
			t.Fatalf("round %d: the handler never got the submission lock", i)
		}
	}
}

// waitReady waits until n CQEs are in the CQ.
func waitReady(t testing.TB, r *Ring, n int) {
	t.Helper()
	deadline := time.Now().Add(timeout(5 * time.Second))
	for r.Ready() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d CQEs ready before timeout", r.Ready(), n)
		}
		r.Submit()
		time.Sleep(100 * time.Microsecond)
	}
}
