//go:build linux

package ring

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// counter is the cheapest Handler: it counts final CQEs and checks results.
type counter struct {
	n, bad int
}

func (c *counter) HandleCQEs(cqes []CQE) {
	for i := range cqes {
		if cqes[i].Flags()&CQEFMore == 0 {
			c.n++
		}
		if cqes[i].Result() < 0 {
			c.bad++
		}
	}
}

func (c *counter) AfterHarvest() {}

// nopSubmitReap submits one NOP and harvests inline.
func nopSubmitReap(tb testing.TB, r *Ring, h *counter, ud uint64) {
	r.LockSQ()
	sqe, err := r.GetSQE()
	if err != nil {
		r.UnlockSQ()
		tb.Fatal(err)
	}
	PrepNop(sqe)
	sqe.SetUserData(ud)
	r.UnlockSQ()
	if _, err := r.Submit(); err != nil {
		tb.Fatal(err)
	}
	r.TryHarvest(h)
}

// One NOP: take an SQE, prep, submit, harvest the CQE inline.
func BenchmarkNopSubmitReap(b *testing.B) {
	r := newRing(b, Config{})
	h := &counter{}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		nopSubmitReap(b, r, h, uint64(i))
	}
	b.StopTimer()
	for r.Inflight() > 0 {
		r.TryHarvest(h)
	}
	if h.bad != 0 {
		b.Fatalf("%d failed NOPs", h.bad)
	}
}

// 32 NOPs per io_uring_enter; ns/op is per batch, ns/nop per NOP.
func BenchmarkNopBatch32(b *testing.B) {
	r := newRing(b, Config{})
	h := &counter{}
	b.ReportAllocs()
	ud := uint64(0)
	for b.Loop() {
		r.LockSQ()
		for range 32 {
			sqe, err := r.GetSQE()
			if err != nil {
				r.UnlockSQ()
				b.Fatal(err)
			}
			PrepNop(sqe)
			sqe.SetUserData(ud)
			ud++
		}
		r.UnlockSQ()
		if _, err := r.Submit(); err != nil {
			b.Fatal(err)
		}
		r.TryHarvest(h)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ud), "ns/nop")
}

// benchPair is a socketpair with large buffers whose receiving end a
// goroutine drains until the sender shuts down.
func benchPair(b *testing.B) (send int, stop func()) {
	a, c := socketpair(b, unix.SOCK_STREAM)
	unix.SetsockoptInt(a, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	unix.SetsockoptInt(c, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 256<<10)
		for {
			if n, err := unix.Read(c, buf); n <= 0 || err != nil && err != unix.EINTR {
				return
			}
		}
	}()
	return a, func() { unix.Shutdown(a, unix.SHUT_WR); wg.Wait() }
}

// SEND of 64 bytes on a socketpair, harvested inline; compare with
// BenchmarkUnixWrite64B.
func BenchmarkSendSocketpair64B(b *testing.B) {
	r := newRing(b, Config{})
	fd, stop := benchPair(b)
	defer stop()
	msg := pattern(64, 1)
	h := &counter{}
	b.ReportAllocs()
	b.SetBytes(64)
	ud := uint64(0)
	for b.Loop() {
		r.LockSQ()
		sqe, err := r.GetSQE()
		if err != nil {
			r.UnlockSQ()
			b.Fatal(err)
		}
		PrepSend(sqe, fd, msg, unix.MSG_NOSIGNAL)
		sqe.SetUserData(ud)
		ud++
		r.UnlockSQ()
		if _, err := r.Submit(); err != nil {
			b.Fatal(err)
		}
		r.TryHarvest(h)
		// A send the receiver has not made room for completes later;
		// do not let them pile up.
		for r.Inflight() > 64 {
			r.SubmitAndWait(1, time.Millisecond)
			r.TryHarvest(h)
		}
	}
	b.StopTimer()
	for r.Inflight() > 0 {
		r.SubmitAndWait(1, time.Millisecond)
		r.TryHarvest(h)
	}
	if h.bad != 0 || h.n != int(ud) {
		b.Fatalf("%d of %d sends completed, %d failed", h.n, ud, h.bad)
	}
}

// write(2) of 64 bytes on the same kind of socketpair.
func BenchmarkUnixWrite64B(b *testing.B) {
	fd, stop := benchPair(b)
	defer stop()
	msg := pattern(64, 1)
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		if _, err := unix.Write(fd, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// The steady state allocates nothing: NOP and SEND submit + inline reap,
// Wake, and a reaper round.
func TestSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	r := newRing(t, Config{})
	h := &counter{}
	ud := uint64(0)
	if n := testing.AllocsPerRun(1000, func() { nopSubmitReap(t, r, h, ud); ud++ }); n != 0 {
		t.Errorf("NOP submit + reap: %v allocs/op", n)
	}
	a, b := socketpair(t, unix.SOCK_STREAM)
	msg := pattern(64, 1)
	rbuf := make([]byte, 64)
	if n := testing.AllocsPerRun(1000, func() {
		r.LockSQ()
		sqe, _ := r.GetSQE()
		PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL)
		sqe.SetUserData(ud)
		r.UnlockSQ()
		r.Submit()
		r.TryHarvest(h)
		unix.Read(b, rbuf)
	}); n != 0 {
		t.Errorf("SEND submit + reap: %v allocs/op", n)
	}
	if n := testing.AllocsPerRun(100, func() { r.Wake(); r.TryHarvest(h) }); n != 0 {
		t.Errorf("Wake: %v allocs/op", n)
	}

	r2 := newRing(t, Config{})
	h2 := &counter{}
	if _, err := r2.StartReaper(h2, 0, nil); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() {
		r2.LockSQ()
		sqe, _ := r2.GetSQE()
		PrepNop(sqe)
		r2.UnlockSQ()
		r2.Submit()
		for r2.Inflight() > 0 {
			time.Sleep(10 * time.Microsecond)
		}
	}); n != 0 {
		t.Errorf("NOP via the reaper: %v allocs/op", n)
	}
}
