//go:build linux

package tests

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// Invariant 3: sends on one socket leave in the order SendAsync was
// called and never interleave; with invariant 2, the peer of a stream
// socket receives exactly the concatenation of every send, in call order.

// orderShape is randomShape with, now and then, a BufferList of more
// segments than one sendmsg takes.
func orderShape(rng *rand.Rand) shape {
	if rng.IntN(40) == 0 {
		bufs := make([][]byte, sendop.IOVMax+1+rng.IntN(600))
		for i := range bufs {
			bufs[i] = poolSlice(rng, rng.IntN(64))
		}
		return shape{bufs: bufs}
	}
	return randomShape(rng, 256<<10, 64)
}

func TestOrderRandomShapes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, network := range []string{"tcp", "tcp-accept", "unix"} {
			t.Run(network, func(t *testing.T) {
				rng := newRand(t)
				s, peer := streamPair(t, eng, network, pairConfig{sndbuf: 64 << 10, rcvbuf: 64 << 10})
				// Reads of any size, with a pause after every 64 KiB or so
				// (never fewer than 16 reads): pausing every 16 reads of a
				// 15-byte chunk read 200 KB/s and left a 15 MB test
				// unfinished at its deadline.
				chunk := 1 + rng.IntN(64<<10)
				r := startReader(t, peer, readOpts{chunk: chunk, pause: time.Millisecond, pauseEvery: max(16, (64<<10)/chunk)})
				const n = 300
				tr := newTracker(t, n)
				args := make([]sendop.Args, n)
				shapes := make([]shape, n)
				want := newExpect()
				completed := func(e *sendop.Args) {
					i := e.UserToken.(int)
					if e.SocketError() != sendop.Success || e.BytesTransferred() != shapes[i].total() {
						t.Errorf("send %d: %v, %d of %d bytes", i, e.Err(), e.BytesTransferred(), shapes[i].total())
					}
					tr.completed(i)
				}
				for i := range args {
					e := &args[i]
					shapes[i] = orderShape(rng)
					shapes[i].writePrefix(want, -1)
					shapes[i].apply(e)
					e.UserToken = i
					e.Completed = completed
					if i < n-1 && rng.IntN(10) == 0 {
						e.Flags = unix.MSG_MORE // not coalesced with its neighbours
					}
					pending, err := sendAsync(s, e)
					if err != nil {
						t.Fatalf("send %d: %v", i, err)
					}
					if !pending {
						completed(e)
						tr.raised.Add(-1)
						tr.syncs.Add(1)
					}
				}
				tr.wait(closing(t, s, nil))
				t.Logf("%d sends, %d bytes: %d synchronous", n, want.n, tr.syncs.Load())
				checkReceived(t, r, want)
			})
		}
	})
}
