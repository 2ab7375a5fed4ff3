//go:build linux

package tests

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// Completed may call SendAsync again with the same Args: a chain of 1000
// sends, each started from the previous one's completion (or, when one
// completes synchronously, from the same loop), arrives in order.
func TestResendFromCompleted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, network := range []string{"tcp", "unix"} {
			t.Run(network, func(t *testing.T) {
				rng := newRand(t)
				s, peer := streamPair(t, eng, network, pairConfig{sndbuf: 32 << 10, rcvbuf: 32 << 10})
				r := startReader(t, peer, readOpts{chunk: 8 << 10, pause: time.Millisecond, pauseEvery: 16})
				const n = 1000
				shapes := make([]shape, n)
				want := newExpect()
				for i := range shapes {
					shapes[i] = randomShape(rng, 32<<10, 8)
					shapes[i].writePrefix(want, -1)
				}
				var (
					e            sendop.Args
					cur          int // the send in flight; handed over through SendAsync/Completed
					syncs, async atomic.Int64
					finished     = make(chan struct{})
				)
				check := func() {
					if e.SocketError() != sendop.Success || e.BytesTransferred() != shapes[cur].total() {
						t.Errorf("send %d: %v, %d of %d bytes", cur, e.Err(), e.BytesTransferred(), shapes[cur].total())
					}
				}
				// chain sends from cur+1 on until one is pending or all are done.
				chain := func() {
					for cur+1 < n {
						cur++
						shapes[cur].apply(&e)
						pending, err := sendAsync(s, &e)
						if err != nil {
							t.Errorf("send %d: SendAsync: %v", cur, err)
							break
						}
						if pending {
							return
						}
						syncs.Add(1)
						check()
					}
					close(finished)
				}
				e.Completed = func(got *sendop.Args) {
					if got != &e {
						t.Errorf("Completed with another Args")
					}
					if inAPICall() {
						t.Errorf("send %d: Completed raised inside SendAsync on the same goroutine", cur)
					}
					async.Add(1)
					check()
					chain()
				}
				cur = -1
				chain()
				waitChan(t, finished, longWait(), "the chain to finish")
				if got := syncs.Load() + async.Load(); got != n {
					t.Fatalf("%d completions for %d sends", got, n)
				}
				t.Logf("%d sends: %d synchronous, %d from Completed", n, syncs.Load(), async.Load())
				if err := closeSocket(s); err != nil {
					t.Fatal(err)
				}
				checkReceived(t, r, want)
			})
		}
	})
}

// Several chains share one socket, each resending from Completed: every
// send completes once and the byte count adds up.
func TestResendChainsShareSocket(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		rng := newRand(t)
		s, peer := tcpPair(t, eng, pairConfig{sndbuf: 16 << 10, rcvbuf: 16 << 10})
		r := startReader(t, peer, readOpts{chunk: 4 << 10, pause: time.Millisecond, pauseEvery: 32})
		const chains, per = 8, 250
		tr := newTracker(t, chains*per)
		args := make([]sendop.Args, chains)
		next := make([]int, chains)
		var total atomic.Int64
		sizes := make([]int, chains*per)
		for i := range sizes {
			sizes[i] = rng.IntN(8 << 10)
			total.Add(int64(sizes[i]))
		}
		step := func(c int) {
			e := &args[c]
			for next[c] < per {
				i := c*per + next[c]
				next[c]++
				e.SetBuffer(pool()[:sizes[i]])
				e.UserToken = i
				pending, err := sendAsync(s, e)
				if err != nil {
					t.Errorf("send %d: %v", i, err)
					tr.refused(i)
					continue
				}
				if pending {
					return
				}
				tr.sync(i)
			}
		}
		for c := range args {
			args[c].Completed = func(e *sendop.Args) {
				i := e.UserToken.(int)
				if e.SocketError() != sendop.Success || e.BytesTransferred() != sizes[i] {
					t.Errorf("send %d: %v, %d of %d bytes", i, e.Err(), e.BytesTransferred(), sizes[i])
				}
				tr.completed(i)
				step(c)
			}
		}
		for c := range args {
			step(c)
		}
		tr.wait(closing(t, s, nil))
		if got, _ := r.wait(t); got != total.Load() {
			t.Fatalf("peer received %d bytes, want %d", got, total.Load())
		}
	})
}
