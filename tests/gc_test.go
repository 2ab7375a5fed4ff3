//go:build linux

package tests

import (
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// Invariant 5: a send's buffers, iovecs and msghdr stay reachable and in
// place until the kernel is done with them, though the caller keeps no
// reference: each Args and its buffers are dropped right after SendAsync,
// the collector runs all the time, and freed memory is reused and
// scribbled over. The peer must still receive every byte as sent.
func TestGCPressure(t *testing.T) {
	old := debug.SetGCPercent(1)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		rng := newRand(t)
		s, peer := tcpPair(t, eng, pairConfig{sndbuf: 16 << 10, rcvbuf: 16 << 10})
		r := startReader(t, peer, readOpts{chunk: 8 << 10, pause: time.Millisecond, pauseEvery: 4})

		// Collect and scribble while sends are in flight.
		stop := make(chan struct{})
		var bg sync.WaitGroup
		bg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				runtime.GC()
				junk := make([]byte, 64<<10)
				for i := range junk {
					junk[i] = 0xEE
				}
				time.Sleep(200 * time.Microsecond)
			}
		})
		defer func() {
			select {
			case <-stop:
			default:
				close(stop)
			}
			bg.Wait()
		}()

		const n = 300
		tr := newTracker(t, n)
		totals := make([]int, n)
		want := newExpect()
		for i := range n {
			// Fresh memory for every send, reachable only through the Args.
			src := randomShape(rng, 64<<10, 16)
			totals[i] = src.total()
			src.writePrefix(want, -1)
			var sh shape
			if src.bufs == nil {
				sh.buf = append(make([]byte, 0, len(src.buf)), src.buf...)
			} else {
				sh.bufs = make([][]byte, len(src.bufs))
				for k, b := range src.bufs {
					if b != nil {
						sh.bufs[k] = append(make([]byte, 0, len(b)), b...)
					}
				}
			}
			e := new(sendop.Args)
			sh.apply(e)
			e.UserToken = i
			e.Completed = func(e *sendop.Args) {
				i := e.UserToken.(int)
				if e.SocketError() != sendop.Success || e.BytesTransferred() != totals[i] {
					t.Errorf("send %d: %v, %d of %d bytes", i, e.Err(), e.BytesTransferred(), totals[i])
				}
				tr.completed(i)
			}
			pending, err := sendAsync(s, e)
			if err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			if !pending {
				if e.SocketError() != sendop.Success || e.BytesTransferred() != totals[i] {
					t.Errorf("send %d: %v, %d of %d bytes", i, e.Err(), e.BytesTransferred(), totals[i])
				}
				tr.sync(i)
			}
			sh, e = shape{}, nil
			if i%25 == 0 {
				runtime.GC()
			}
		}
		tr.wait(closing(t, s, nil))
		close(stop)
		bg.Wait()
		t.Logf("%d sends, %d bytes: %d synchronous", n, want.n, tr.syncs.Load())
		checkReceived(t, r, want)
	})
}
