//go:build linux

package tests

import (
	"net"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// Faults on the peer's side of a stream: a reset in the middle of the
// stream, a half-close, a peer that stops reading and later resumes.

// A peer that has been reading resets the connection (TCP: SO_LINGER 0 and
// close, so RST; unix: close with data unread) while hundreds of sends are
// queued. Without any Close on our side every send completes exactly once,
// with Success, ConnectionReset or Shutdown (errno ECONNRESET / EPIPE);
// the bytes the peer read are a prefix of the bytes reported transferred;
// sends after the reset fail the same way with nothing transferred; no
// SIGPIPE.
func TestFaultPeerResetMidStream(t *testing.T) {
	noSIGPIPE(t)
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, network := range []string{"tcp", "tcp-accept", "unix"} {
			t.Run(network, func(t *testing.T) {
				const n = 400
				s, peer := streamPair(t, eng, network, small)
				shapes := randomShapes(t, n, 32<<10, 8, true)
				// Reset once about a quarter of the data has arrived.
				total := 0
				for _, sh := range shapes {
					total += sh.total()
				}
				r := startPeerReader(t, peer, peerOpts{chunk: 4 << 10, slow: 50 * time.Microsecond, resetAt: int64(total / 4)})
				tr := newTracker(t, n)
				args := queueAll(t, s, shapes, tr, nil)
				tr.wait(marker(t, s)) // s is used again below
				got, rerr := r.wait(t)
				if !r.reset {
					t.Fatalf("the peer stopped after %d bytes without resetting: %v", len(got), rerr)
				}
				want, byErr := checkResults(t, args, shapes, sendop.ConnectionReset, sendop.Shutdown)
				t.Logf("peer read %d bytes, %d reported sent; results %v", len(got), len(want), byErr)
				if byErr[sendop.ConnectionReset]+byErr[sendop.Shutdown] == 0 {
					t.Fatal("no send saw the reset")
				}
				if !isPrefix(got, want) {
					t.Fatalf("the peer's %d bytes are not a prefix of the %d sent: first difference at %d", len(got), len(want), firstDiff(got, want))
				}

				// The connection is dead: later sends fail, once each.
				var l sendLog
				after := make([]sendop.Args, 20)
				for i := range after {
					after[i].Completed = l.completed
					if _, err := l.send(s, &after[i], shape{buf: pool()[i : 100+i]}); err != nil {
						t.Fatalf("send after the reset: %v", err)
					}
				}
				l.waitAll(t)
				if _, byErr := l.check(t, closing(t, s, nil), sendop.ConnectionReset, sendop.Shutdown); byErr[sendop.Success] > 0 {
					t.Fatalf("sends after the reset: %v", byErr)
				}
			})
		}
	})
}

// The peer half-closes. CloseWrite (its FIN reaches us) leaves our
// direction alone: every send succeeds and every byte arrives in order.
// CloseRead (shutdown(SHUT_RD)) may refuse what follows: the sends keep
// working or fail cleanly (Shutdown, ConnectionReset), exactly once each,
// with no gap in what is reported sent. When the peer then closes for
// good, sends fail cleanly.
func TestFaultPeerHalfClose(t *testing.T) {
	noSIGPIPE(t)
	type halfCloser interface {
		net.Conn
		CloseRead() error
		CloseWrite() error
	}
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, network := range []string{"tcp", "unix"} {
			t.Run(network+"/CloseWrite", func(t *testing.T) {
				s, peer := streamPair(t, eng, network, small)
				if err := peer.(halfCloser).CloseWrite(); err != nil {
					t.Fatal(err)
				}
				r := startPeerReader(t, peer, peerOpts{chunk: 8 << 10})
				shapes := randomShapes(t, 300, 32<<10, 8, false)
				tr := newTracker(t, len(shapes))
				args := queueAll(t, s, shapes, tr, nil)
				tr.wait(closing(t, s, nil))
				// io_uring (bug): IORING_OP_SENDMSG on a non-blocking
				// socket whose peer sent FIN completes short and then
				// with -EAGAIN, and the queue goes on after it.
				if n := countResults(args, sendop.WouldBlock); n > 0 {
					got, _ := r.wait(t)
					full := 0
					for _, sh := range shapes {
						full += sh.total()
					}
					t.Fatalf("BUG: %d of %d sends completed with WouldBlock (EAGAIN) after the peer's FIN; the peer got %d bytes, "+
						"exactly the reported prefixes of each send (%v), instead of the %d queued: the stream has gaps",
						n, len(args), len(got), string(got) == string(deliveredStream(args, shapes)), full)
				}
				want, _ := checkResults(t, args, shapes) // Success only
				got, err := r.wait(t)
				if err != nil || string(got) != string(want) {
					t.Fatalf("peer read %d bytes (%v), want the %d sent; first difference at %d", len(got), err, len(want), firstDiff(got, want))
				}
			})
			t.Run(network+"/CloseRead", func(t *testing.T) {
				s, peer := streamPair(t, eng, network, small)
				r := startPeerReader(t, peer, peerOpts{chunk: 8 << 10})
				shapes := randomShapes(t, 300, 32<<10, 8, true)
				tr := newTracker(t, len(shapes))
				args := make([]sendop.Args, len(shapes))
				// The first half is read; then the peer shuts its read side.
				queueRange(t, s, args, shapes, tr, 0, 150, nil)
				deadline := time.Now().Add(longWait())
				for tr.left.Load() > int64(len(shapes)-150) && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				if err := peer.(halfCloser).CloseRead(); err != nil {
					t.Fatal(err)
				}
				queueRange(t, s, args, shapes, tr, 150, len(shapes), nil)
				// Completion is not guaranteed while the peer holds the
				// data unread (TCP keeps accepting it): close the peer
				// for good, which must finish everything.
				time.Sleep(scaled(20 * time.Millisecond))
				got, _ := r.wait(t)
				resetConn(peer)
				tr.wait(marker(t, s)) // s is used again below
				want, byErr := checkResults(t, args, shapes, sendop.ConnectionReset, sendop.Shutdown)
				t.Logf("peer read %d bytes of %d sent; results %v", len(got), len(want), byErr)
				if !isPrefix(got, want) {
					t.Fatalf("the peer's %d bytes are not a prefix of the %d sent", len(got), len(want))
				}
				// Closed for good: a send fails within a few tries.
				failed := false
				for i := 0; i < 50 && !failed; i++ {
					w := newWatched(t)
					w.SetBuffer(pool()[:1000])
					pending, err := sendAsync(s, &w.Args)
					if err != nil {
						t.Fatal(err)
					}
					if pending {
						waitChan(t, w.ch, longWait(), "Completed")
					}
					if msg := resultError(&w.Args); msg != "" {
						t.Fatal(msg)
					}
					switch w.SocketError() {
					case sendop.Success:
						time.Sleep(time.Millisecond)
					case sendop.ConnectionReset, sendop.Shutdown:
						failed = true
					default:
						t.Fatalf("send to a closed peer: %v", w.Err())
					}
				}
				if !failed {
					t.Fatal("sends to a peer that closed keep succeeding")
				}
				if err := closeSocket(s); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

// A peer that stops reading: its receive window closes and the sender's
// queue backs up, while more sends keep being queued; then it resumes.
// Every send succeeds, exactly once, and every byte arrives in order.
func TestFaultZeroWindow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, network := range []string{"tcp", "unix"} {
			t.Run(network, func(t *testing.T) {
				s, peer := streamPair(t, eng, network, small)
				shapes := randomShapes(t, 400, 32<<10, 8, true)
				r := startPeerReader(t, peer, peerOpts{chunk: 16 << 10, pauseAt: 256 << 10})
				tr := newTracker(t, len(shapes))
				args := make([]sendop.Args, len(shapes))
				queue := func(from, to int) { queueRange(t, s, args, shapes, tr, from, to, nil) }
				queue(0, 200)
				waitChan(t, r.paused, longWait(), "the peer to stop reading")
				// The window is closed: completions (nearly) stop while sends
				// wait. (The kernel may still take a little now and then:
				// window probes, receive queue collapsing.)
				stalled := func() bool {
					before := tr.left.Load()
					time.Sleep(scaled(30 * time.Millisecond))
					return before-tr.left.Load() <= 2 && before > 0
				}
				deadline := time.Now().Add(longWait())
				for !stalled() {
					if time.Now().After(deadline) {
						t.Fatal("completions never stalled behind a peer that stopped reading")
					}
				}
				queue(200, len(shapes)) // keep queuing into the closed window
				// Not a fixed sleep, which a loaded machine may spend
				// without running the engine: the engine must have raised
				// a completion queued after these sends.
				raiseBarrier(t, eng)
				if left := tr.left.Load(); left < int64(len(shapes)-200) {
					t.Fatalf("only %d sends wait while the peer is not reading", left)
				}
				left := tr.left.Load()
				close(r.resume)
				tr.wait(closing(t, s, nil))
				want, _ := checkResults(t, args, shapes)
				got, err := r.wait(t)
				if err != nil || len(got) != len(want) || sha(got) != sha(want) {
					t.Fatalf("peer read %d bytes (%v), want the %d sent; first difference at %d", len(got), err, len(want), firstDiff(got, want))
				}
				t.Logf("%d bytes; %d sends were waiting when the peer resumed", len(want), left)
			})
		}
	})
}
