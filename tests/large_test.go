//go:build linux

package tests

import (
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// Invariant 2 at size: a stream send completes with all its bytes, however
// many short sends it takes.

// bigData returns n bytes cut from the pool, shifted on every repeat.
func bigData(n int) []byte {
	p := pool()
	b := make([]byte, n)
	for off, shift := 0, 0; off < n; shift = (shift + 4099) % len(p) {
		off += copy(b[off:], p[shift:])
	}
	return b
}

// sendOne sends sh on s with a fresh Args and waits for its result, which
// must be a full success.
func sendOne(t *testing.T, s *socket.Socket, sh shape) *watched {
	t.Helper()
	w := newWatched(t)
	sh.apply(&w.Args)
	pending, err := sendAsync(s, &w.Args)
	if err != nil {
		t.Fatalf("SendAsync: %v", err)
	}
	if pending {
		waitChan(t, w.ch, longWait(), "Completed")
	}
	if w.SocketError() != sendop.Success || w.BytesTransferred() != sh.total() {
		t.Fatalf("send: %v, %d of %d bytes", w.Err(), w.BytesTransferred(), sh.total())
	}
	if want := map[bool]int32{false: 0, true: 1}[pending]; w.raised.Load() != want {
		t.Fatalf("pending=%v but Completed raised %d times", pending, w.raised.Load())
	}
	return w
}

func TestLarge64MiBSlowReader(t *testing.T) {
	const size = 64 << 20
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		data := bigData(size)
		s, peer := tcpPair(t, eng, pairConfig{rcvbuf: 64 << 10})
		r := startReader(t, peer, readOpts{chunk: 16 << 10, pause: time.Millisecond, pauseEvery: 32})
		want := newExpect()
		want.Write(data)
		sendOne(t, s, shape{buf: data})
		closeSocket(s)
		checkReceived(t, r, want)
	})
}

func TestLargeBufferList5000(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, network := range []string{"tcp", "unix"} {
			t.Run(network, func(t *testing.T) {
				rng := newRand(t)
				bufs := make([][]byte, 5000)
				for i := range bufs {
					if rng.IntN(50) != 0 {
						bufs[i] = poolSlice(rng, rng.IntN(4<<10))
					}
				}
				sh := shape{bufs: bufs}
				s, peer := streamPair(t, eng, network, pairConfig{sndbuf: 64 << 10, rcvbuf: 64 << 10})
				r := startReader(t, peer, readOpts{chunk: 32 << 10, pause: time.Millisecond, pauseEvery: 16})
				want := newExpect()
				sh.writePrefix(want, -1)
				// A small send before and after: the list neither overtakes
				// nor interleaves with its neighbours.
				before, after := shape{buf: poolSlice(rng, 100)}, shape{buf: poolSlice(rng, 100)}
				x := newExpect()
				before.writePrefix(x, -1)
				sh.writePrefix(x, -1)
				after.writePrefix(x, -1)
				tr := newTracker(t, 3)
				args := make([]sendop.Args, 3)
				for i, part := range []shape{before, sh, after} {
					part.apply(&args[i])
					args[i].UserToken = i
					args[i].Completed = func(e *sendop.Args) {
						if e.SocketError() != sendop.Success || e.BytesTransferred() != part.total() {
							t.Errorf("send %d: %v, %d of %d bytes", i, e.Err(), e.BytesTransferred(), part.total())
						}
						tr.completed(i)
					}
					pending, err := sendAsync(s, &args[i])
					if err != nil {
						t.Fatal(err)
					}
					if !pending {
						if args[i].SocketError() != sendop.Success || args[i].BytesTransferred() != part.total() {
							t.Errorf("send %d: %v, %d of %d bytes", i, args[i].Err(), args[i].BytesTransferred(), part.total())
						}
						tr.sync(i)
					}
				}
				tr.wait(closing(t, s, nil))
				checkReceived(t, r, x)
			})
		}
	})
}
