//go:build linux

package socket

import (
	"net"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// A socket adopted with FromFD after its peer reset it reports the reset
// on its first receive (ConnectionReset), as the kernel would: making
// sure it had been connected must not consume the error, which would turn
// the reset into a clean end of stream (0 bytes, Success) — a relay would
// pass a FIN on for a connection that was torn down.
func TestFromFDAfterResetReportsReset(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		for _, side := range []string{"dialed", "accepted"} {
			t.Run(side, func(t *testing.T) { testAdoptedAfterReset(t, eng, side == "accepted") })
		}
	})
}

// testAdoptedAfterReset adopts one end of a TCP connection (the dialed
// one, or the accepted one) after the other end reset it.
func testAdoptedAfterReset(t *testing.T, eng *Engine, accepted bool) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if accepted {
		a, c = c, a
	}
	a.(*net.TCPConn).SetLinger(0)
	a.Close() // RST
	s := fromDupFD(t, c.(*net.TCPConn), eng)
	defer s.Close()
	// The RST has arrived once the socket hangs up.
	pfd := []unix.PollFd{{Fd: int32(s.FD()), Events: unix.POLLIN}}
	deadline := time.Now().Add(5 * time.Second)
	for pfd[0].Revents&unix.POLLHUP == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the RST never arrived")
		}
		unix.Poll(pfd, 10)
	}
	done := make(chan struct{})
	e := &sendop.Args{Completed: func(*sendop.Args) { close(done) }}
	e.SetBuffer(make([]byte, 64))
	pending, err := s.ReceiveAsync(e)
	if err != nil {
		t.Fatalf("ReceiveAsync: %v", err)
	}
	if pending {
		waitChanT(t, done)
	}
	if e.SocketError() != sendop.ConnectionReset {
		t.Fatalf("receive after the peer's reset: %v, %d bytes; want ConnectionReset", e.SocketError(), e.BytesTransferred())
	}
}

func waitChanT(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Completed never ran")
	}
}
