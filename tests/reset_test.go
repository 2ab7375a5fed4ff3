//go:build linux

package tests

import (
	"net"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// Invariant 6 (no signals) and invariant 1 under a peer that goes away:
// hundreds of sends queued when the peer resets (TCP: SO_LINGER 0 and
// close) or closes with unread data (unix): no SIGPIPE, every send
// completes exactly once, with Success or an error that says the
// connection is gone, and BytesTransferred is sane.
func TestResetByPeer(t *testing.T) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, network := range []string{"tcp", "unix"} {
			t.Run(network, func(t *testing.T) {
				rng := newRand(t)
				s, peer := streamPair(t, eng, network, small)
				const n = 300
				tr := newTracker(t, n)
				args := make([]sendop.Args, n)
				shapes := make([]shape, n)
				for i := range args {
					shapes[i] = randomShape(rng, 64<<10, 8)
					if shapes[i].total() == 0 {
						shapes[i] = shape{buf: poolSlice(rng, 1000)}
					}
					shapes[i].apply(&args[i])
					args[i].UserToken = i
					args[i].Completed = func(e *sendop.Args) { tr.completed(e.UserToken.(int)) }
					pending, err := sendAsync(s, &args[i])
					if err != nil {
						t.Fatalf("send %d: %v", i, err)
					}
					if !pending {
						tr.sync(i)
					}
				}
				if tc, ok := peer.(*net.TCPConn); ok {
					if err := tc.SetLinger(0); err != nil {
						t.Fatal(err)
					}
				}
				peer.Close()
				// Everything completes without Close: the queue fails fast.
				tr.wait(marker(t, s)) // s is used again below
				_, byErr := checkPrefixes(t, args, shapes, sendop.ConnectionReset, sendop.Shutdown, sendop.OperationAborted)
				t.Logf("results: %v", byErr)
				if byErr[sendop.ConnectionReset]+byErr[sendop.Shutdown] == 0 {
					t.Fatal("no send saw the reset")
				}

				// Sends after the reset are accepted and fail, once each.
				for i := range 20 {
					w := newWatched(t)
					w.SetBuffer(poolSlice(rng, 100+i))
					pending, err := sendAsync(s, &w.Args)
					if err != nil {
						t.Fatalf("send after reset: SendAsync: %v", err)
					}
					if pending {
						waitChan(t, w.ch, longWait(), "Completed")
					}
					switch w.SocketError() {
					case sendop.ConnectionReset, sendop.Shutdown:
					default:
						t.Fatalf("send after reset: %v (%v)", w.SocketError(), w.Err())
					}
					if w.BytesTransferred() != 0 {
						t.Fatalf("send after reset: %d bytes transferred", w.BytesTransferred())
					}
				}
				if err := closeSocket(s); err != nil {
					t.Fatalf("Close: %v", err)
				}
				// A SIGPIPE of any of the sends above is in sigs once a
				// signal raised after them has been delivered.
				signalBarrier(t)
				select {
				case sig := <-sigs:
					t.Fatalf("%v delivered: MSG_NOSIGNAL missing", sig)
				default:
				}
			})
		}
	})
}
