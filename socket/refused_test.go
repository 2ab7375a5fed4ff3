//go:build linux

package socket

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// refusedFD is a TCP socket whose non-blocking connect the peer refused
// (RST in answer to the SYN): it never had a peer.
func refusedFD(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nobody listens there now: the SYN is answered with RST
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != unix.EINPROGRESS && err != unix.ECONNREFUSED {
		unix.Close(fd)
		t.Fatalf("connect: %v", err)
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for deadline := time.Now().Add(5 * time.Second); pfd[0].Revents&unix.POLLHUP == 0; {
		if time.Now().After(deadline) {
			unix.Close(fd)
			t.Fatal("the connect was never refused")
		}
		unix.Poll(pfd, 10)
	}
	return fd
}

// A stream socket whose connect was refused never had a peer: SendAsync,
// ReceiveAsync and ReceiveChunks must fail with ErrNotConnected, as
// socket/errors.go documents ("a stream socket that is not connected")
// and as they do for a socket that never connected at all. (Found by the
// session-6 review: hadPeer counted the refusing RST as a segment from a
// peer, so the first send completed with ConnectionRefused, the next with
// Shutdown, and a receive read 0 bytes with Success — a clean end of
// stream from a peer that never existed.)
func TestFromFDRefusedConnectNotConnected(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		s, err := FromFD(refusedFD(t), WithEngine(eng))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for i := range 2 {
			done := make(chan struct{})
			e := &sendop.Args{Completed: func(*sendop.Args) { close(done) }}
			e.SetBuffer([]byte("hello"))
			pending, err := s.SendAsync(e)
			if pending {
				<-done
			}
			if !errors.Is(err, ErrNotConnected) {
				t.Errorf("SendAsync %d: err %v (completed with %v), want ErrNotConnected", i, err, e.SocketError())
			}
		}
		done := make(chan struct{})
		r := &sendop.Args{Completed: func(*sendop.Args) { close(done) }}
		r.SetBuffer(make([]byte, 16))
		pending, err := s.ReceiveAsync(r)
		if pending {
			<-done
		}
		if !errors.Is(err, ErrNotConnected) {
			t.Errorf("ReceiveAsync: err %v (completed with %d bytes, %v), want ErrNotConnected", err, r.BytesTransferred(), r.SocketError())
		}
		if err := s.ReceiveChunks(func(c *Chunk, err error) {
			if c != nil {
				c.Release()
			}
		}); !errors.Is(err, ErrNotConnected) {
			t.Errorf("ReceiveChunks: %v, want ErrNotConnected", err)
		}
	})
}
