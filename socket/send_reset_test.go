//go:build linux

package socket

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// A send waiting in the kernel for room (io_uring: armed on POLLOUT; epoll:
// the writer on the netpoller) whose peer resets completes at once, not
// at some timeout: with ConnectionReset (ECONNRESET), or Shutdown (EPIPE)
// when the kernel had taken part of it first and the engine's continuation
// finds the connection gone — once, with the bytes it sent.
func TestSendPendingPeerReset(t *testing.T) {
	rxBackends(t, func(t *testing.T, eng *Engine) {
		s, p := rxPair(t, eng)
		p.SetReadBuffer(64 << 10)
		if err := unix.SetsockoptInt(s.FD(), unix.SOL_SOCKET, unix.SO_SNDBUF, 64<<10); err != nil {
			t.Fatal(err)
		}
		const size = 16 << 20
		e, ch, calls := rxArgs(size) // rxArgs' Completed reports any op
		pending, err := s.SendAsync(e)
		if err != nil || !pending {
			t.Fatalf("SendAsync: %v, pending %v; want a send that waits", err, pending)
		}
		// Parked: what the kernel holds for the peer has stopped growing.
		var last int
		for settled := time.Now(); time.Since(settled) < 100*time.Millisecond; time.Sleep(5 * time.Millisecond) {
			n, err := unix.IoctlGetInt(s.FD(), unix.SIOCOUTQ)
			if err != nil {
				t.Fatal(err)
			}
			if n != last {
				last, settled = n, time.Now()
			}
		}
		select {
		case r := <-ch:
			t.Fatalf("the send completed (%+v) with the peer reading nothing", r)
		default:
		}
		p.SetLinger(0)
		start := time.Now()
		p.Close()
		r := waitRx(t, ch, 2*time.Second)
		took := time.Since(start)
		switch {
		case r.code == sendop.ConnectionReset && errors.Is(r.err, syscall.ECONNRESET):
		case r.code == sendop.Shutdown && errors.Is(r.err, syscall.EPIPE) && r.n > 0:
		default:
			t.Fatalf("got %+v; want ConnectionReset (ECONNRESET), or Shutdown (EPIPE) after some bytes", r)
		}
		if r.n >= size {
			t.Fatalf("%d bytes sent of %d to a peer that read none", r.n, size)
		}
		raiseBarrier(t, eng) // a second Completed would have been raised by now
		if n := calls.Load(); n != 1 {
			t.Fatalf("Completed raised %d times, want 1", n)
		}
		t.Logf("%v (%d bytes sent, %d queued in the kernel) %v after the peer's RST", r.code, r.n, last, took.Round(time.Microsecond))
	})
}
