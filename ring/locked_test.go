//go:build linux

package ring

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadHandler records, for every HandleCQEs and AfterHarvest call, the
// thread it ran on and what Reaping said.
type threadHandler struct {
	r       *Ring
	mu      sync.Mutex
	handled []handledOn
	afters  map[int32]int
	total   int
}

type handledOn struct {
	tid     int32
	reaping bool
	n       int
}

func (h *threadHandler) HandleCQEs(cqes []CQE) {
	h.mu.Lock()
	h.handled = append(h.handled, handledOn{int32(unix.Gettid()), h.r.Reaping(), len(cqes)})
	h.total += len(cqes)
	h.mu.Unlock()
}

func (h *threadHandler) AfterHarvest() {
	h.mu.Lock()
	h.afters[int32(unix.Gettid())]++
	h.mu.Unlock()
}

// By default the reaper is locked to one OS thread for its life: every
// round (HandleCQEs as the reaper, AfterHarvest) runs on ReaperThread,
// across parks in Go and waits in the kernel; an inline harvester's
// HandleCQEs sees Reaping false. A floating reaper reports no thread.
func TestReaperLockedThread(t *testing.T) {
	r := newRing(t, Config{})
	h := &threadHandler{r: r, afters: map[int32]int{}}
	startReaper(t, r, h, 4, nil)
	deadline := time.Now().Add(timeout(5 * time.Second))
	for r.ReaperThread() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the reaper never published its thread")
		}
		time.Sleep(time.Millisecond)
	}
	tid := r.ReaperThread()
	const rounds, per = 20, 50
	inline := 0
	for i := range rounds {
		submitNops(t, r, uint64(i*per), per)
		if i%2 == 0 { // the odd rounds are the reaper's alone
			if n, ok := r.TryHarvest(h); ok {
				inline += n
			}
		}
		time.Sleep(time.Millisecond) // let the reaper park between rounds
	}
	deadline = time.Now().Add(timeout(5 * time.Second))
	for {
		h.mu.Lock()
		total := h.total
		h.mu.Unlock()
		if total == rounds*per {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d CQEs handled", total, rounds*per)
		}
		time.Sleep(time.Millisecond)
	}
	closeWithin(t, r, 5*time.Second)
	h.mu.Lock()
	defer h.mu.Unlock()
	byReaper := 0
	for _, c := range h.handled {
		if c.reaping != (c.tid == tid) {
			t.Errorf("HandleCQEs on thread %d (reaper %d) with Reaping() = %v", c.tid, tid, c.reaping)
		}
		if c.reaping {
			byReaper += c.n
		}
	}
	if byReaper+inline != rounds*per || byReaper == 0 {
		t.Errorf("reaper handled %d, inline %d, of %d", byReaper, inline, rounds*per)
	}
	if len(h.afters) != 1 || h.afters[tid] == 0 {
		t.Errorf("AfterHarvest ran on threads %v, want only %d", h.afters, tid)
	}
	if r.ReaperThread() != 0 {
		t.Errorf("ReaperThread() = %d after Close, want 0", r.ReaperThread())
	}
	t.Logf("reaper thread %d: %d CQEs by the reaper, %d inline, %d rounds", tid, byReaper, inline, h.afters[tid])

	f := newRing(t, Config{FloatingReaper: true})
	fh := newRecorder()
	startReaper(t, f, fh, 0, nil)
	submitNops(t, f, 0, 10)
	fh.waitTotal(t, 10, 5*time.Second) // the reaper is running: it would have published its thread
	if got := f.ReaperThread(); got != 0 {
		t.Errorf("floating reaper: ReaperThread() = %d, want 0", got)
	}
}
