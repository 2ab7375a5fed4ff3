//go:build linux

package ring

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Many goroutines submit NOPs and sends at once while the reaper harvests
// and the submitters peek inline: every operation completes exactly once.
func TestConcurrentSubmitters(t *testing.T) {
	for _, cfg := range []Config{
		{Entries: 256},
		{Entries: 16, CQEntries: 16}, // SQ full and CQ overflow all the time
	} {
		t.Run(fmt.Sprintf("sq%d_cq%d", cfg.Entries, cfg.CQEntries), func(t *testing.T) {
			testConcurrent(t, cfg, 8, 2000)
		})
	}
}

func testConcurrent(t *testing.T, cfg Config, goroutines, perG int) {
	r := newRing(t, cfg)
	h := newRecorder()
	if _, err := r.StartReaper(h, 32, nil); err != nil {
		t.Fatal(err)
	}
	const msgSize = 32
	var wg, readers sync.WaitGroup
	received := make([]int, goroutines)
	senders := make([]int, goroutines)
	errs := make(chan error, goroutines)
	for g := range goroutines {
		a, b := socketpair(t, unix.SOCK_STREAM)
		senders[g] = a
		readers.Add(1)
		go func() { // the receiver of goroutine g's sends
			defer readers.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := unix.Read(b, buf)
				if n <= 0 || err != nil {
					return
				}
				received[g] += n
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := pattern(msgSize, byte(g))
			for i := range perG {
				ud := uint64(g*perG + i)
				r.LockSQ()
				sqe, err := r.GetSQE()
				if err != nil {
					r.UnlockSQ()
					errs <- fmt.Errorf("goroutine %d op %d: GetSQE: %v", g, i, err)
					return
				}
				if i%2 == 0 {
					PrepNop(sqe)
				} else {
					PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL)
				}
				sqe.SetUserData(ud)
				r.UnlockSQ()
				if i%4 == 1 { // sometimes leave it to the next enter
					continue
				}
				if _, err := r.Submit(); err != nil {
					errs <- fmt.Errorf("goroutine %d: Submit: %v", g, err)
					return
				}
				if i%3 == 0 {
					r.TryHarvest(h)
				}
			}
			if _, err := r.Submit(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Published SQEs nobody submitted yet are submitted by the reaper's
	// next enter; Wake makes one.
	if err := r.Wake(); err != nil {
		t.Fatal(err)
	}
	total := int64(goroutines * perG)
	h.waitTotal(t, total, 30*time.Second)
	cqes, counts := h.snapshot()
	checkExactlyOnce(t, counts, goroutines*perG)
	for _, c := range cqes {
		ud := c.UserData()
		want := int32(0)
		if ud%uint64(perG)%2 == 1 {
			want = msgSize
		}
		if c.Result() != want {
			t.Fatalf("user_data %d: res %d, want %d", ud, c.Result(), want)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := r.Inflight(); got != 0 {
		t.Errorf("Inflight() = %d", got)
	}
	for _, a := range senders {
		unix.Shutdown(a, unix.SHUT_WR)
	}
	readers.Wait()
	for g, n := range received {
		if want := perG / 2 * msgSize; n != want {
			t.Errorf("receiver %d got %d bytes, want %d", g, n, want)
		}
	}
}
