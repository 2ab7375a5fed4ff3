//go:build linux

package ring

import (
	"testing"
	"time"
)

// submitNops submits n NOPs with user_data base..base+n-1 without
// harvesting: GetSQE submits by itself whenever the SQ is full.
func submitNops(t testing.TB, r *Ring, base uint64, n int) {
	t.Helper()
	for i := range n {
		r.LockSQ()
		sqe, err := r.GetSQE()
		if err != nil {
			r.UnlockSQ()
			t.Fatalf("GetSQE after %d NOPs: %v", i, err)
		}
		PrepNop(sqe)
		sqe.SetUserData(base + uint64(i))
		r.UnlockSQ()
	}
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
}

// Thousands of completions into an 8-entry CQ that nobody harvests: the
// kernel keeps the excess (IORING_FEAT_NODROP) and PeekBatch brings every
// one of them back, exactly once and in order.
func TestOverflowNopsExactlyOnce(t *testing.T) {
	r := newRing(t, Config{Entries: 8, CQEntries: 8})
	if r.SQEntries() != 8 || r.CQEntries() != 8 {
		t.Fatalf("SQ %d CQ %d entries, want 8 8", r.SQEntries(), r.CQEntries())
	}
	const n = 5000
	submitNops(t, r, 0, n)
	if got := r.Ready(); got != 8 {
		t.Errorf("Ready() = %d with an overflowed 8-entry CQ, want 8", got)
	}
	if got := r.Inflight(); got != n {
		t.Errorf("Inflight() = %d before harvesting, want %d", got, n)
	}
	if r.sqFlagsNow()&sqCQOverflow == 0 {
		t.Error("IORING_SQ_CQ_OVERFLOW not set")
	}

	counts := map[uint64]int{}
	next := uint64(0)
	buf := make([]CQE, 3) // smaller than the CQ
	r.LockCQ()
	for {
		k := r.PeekBatch(buf)
		if k == 0 {
			break
		}
		for _, c := range buf[:k] {
			counts[c.UserData()]++
			if c.UserData() != next {
				t.Fatalf("CQE user_data %d, want %d: overflowed CQEs out of order", c.UserData(), next)
			}
			next++
			if c.Result() != 0 {
				t.Fatalf("NOP res %d", c.Result())
			}
		}
	}
	r.UnlockCQ()
	checkExactlyOnce(t, counts, n)
	st := r.Stats()
	if st.Overflows == 0 {
		t.Errorf("Stats().Overflows = 0 after %d CQEs into 8 slots", n)
	}
	if st.Submitted != n || st.Reaped != n {
		t.Errorf("Stats %+v: want Submitted and Reaped %d", st, n)
	}
	if got := r.Inflight(); got != 0 {
		t.Errorf("Inflight() = %d after harvesting all", got)
	}
	if d := r.Dropped(); d != 0 {
		t.Errorf("kernel dropped %d CQEs", d)
	}
	if r.sqFlagsNow()&sqCQOverflow != 0 {
		t.Error("IORING_SQ_CQ_OVERFLOW still set after harvesting all")
	}
}

// The same through TryHarvest, whose buffer is the ring's scratch.
func TestOverflowTryHarvest(t *testing.T) {
	r := newRing(t, Config{Entries: 8, CQEntries: 8})
	const n = 3000
	submitNops(t, r, 0, n)
	h := newRecorder()
	for i := 0; h.total.Load() < n; i++ {
		k, ok := r.TryHarvest(h)
		if !ok {
			t.Fatal("TryHarvest: completion lock busy with no one else harvesting")
		}
		if k == 0 {
			t.Fatalf("TryHarvest returned nothing after %d of %d", h.total.Load(), n)
		}
	}
	_, counts := h.snapshot()
	checkExactlyOnce(t, counts, n)
	if r.Stats().Overflows == 0 {
		t.Error("Stats().Overflows = 0")
	}
}

// Overflow while a slow reaper harvests a tiny CQ: nothing is lost or
// handed over twice.
func TestOverflowSlowReaper(t *testing.T) {
	r := newRing(t, Config{Entries: 8, CQEntries: 8})
	h := newRecorder()
	h.handleDelay = 200 * time.Microsecond
	batches := 0
	if _, err := r.StartReaper(h, 4, func(n int) {
		batches++
		if n > 4 {
			t.Errorf("batch of %d > batchSize 4", n)
		}
	}); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	submitNops(t, r, 0, n)
	h.waitTotal(t, n, 30*time.Second)
	_, counts := h.snapshot()
	checkExactlyOnce(t, counts, n)
	if r.Stats().Overflows == 0 {
		t.Error("Stats().Overflows = 0: the CQ never overflowed; the test proves nothing")
	}
	if r.Close() != nil || batches == 0 {
		t.Errorf("batches %d", batches)
	}
	if got := r.Inflight(); got != 0 {
		t.Errorf("Inflight() = %d after Close", got)
	}
}
