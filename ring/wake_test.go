//go:build linux

package ring

import "testing"

// One Wake's NOP at a time: Wakes while it is on its way submit nothing;
// once its CQE is harvested, the next Wake submits again.
func TestWakeOneNOPAtATime(t *testing.T) {
	r := newRing(t, Config{})
	submitted := func() uint64 { return r.Stats().Submitted }
	base := submitted()
	for range 3 {
		if err := r.Wake(); err != nil {
			t.Fatal(err)
		}
	}
	if got := submitted() - base; got != 1 {
		t.Fatalf("3 Wakes before the first NOP's CQE was seen submitted %d SQEs, want 1", got)
	}
	drainNOP(t, r)
	if err := r.Wake(); err != nil {
		t.Fatal(err)
	}
	if got := submitted() - base; got != 2 {
		t.Fatalf("a Wake after the NOP's CQE was harvested: %d SQEs in all, want 2", got)
	}
}

// An inline harvest that consumes a Wake's CQE passes the Wake on — unless
// its Handler is a WorkReporter whose reaper has nothing to do.
func TestPassWakeAsksWorkReporter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		h      Handler
		passes bool
	}{
		{"plain handler", newRecorder(), true},
		{"reporter with work", &reporter{recorder: newRecorder(), work: true}, true},
		{"reporter without work", &reporter{recorder: newRecorder(), work: false}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRing(t, Config{})
			base := r.Stats().Submitted
			if err := r.Wake(); err != nil {
				t.Fatal(err)
			}
			waitReady(t, r, 1)
			if _, ok := r.TryHarvest(tc.h); !ok {
				t.Fatal("TryHarvest did not get the completion lock")
			}
			want := uint64(1)
			if tc.passes {
				want = 2
			}
			if got := r.Stats().Submitted - base; got != want {
				t.Fatalf("SQEs submitted: %d, want %d (the Wake, and a NOP passing it on: %v)", got, want, tc.passes)
			}
		})
	}
}

type reporter struct {
	*recorder
	work bool
}

func (h *reporter) ReaperHasWork() bool { return h.work }

// drainNOP waits for the Wake's CQE and harvests it.
func drainNOP(t *testing.T, r *Ring) {
	t.Helper()
	waitReady(t, r, 1)
	var buf [4]CQE
	if n := r.PeekBatch(buf[:]); n != 0 {
		t.Fatalf("the Wake's NOP was handed over as %d CQEs", n)
	}
}
