//go:build linux

package socket

import (
	"errors"
	"net"
	"testing"

	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// ErrClosed is also net.ErrClosed to errors.Is, on both backends, for
// every call that reports a closed socket; its text stays.
func TestErrClosedIsNetErrClosed(t *testing.T) {
	if ErrClosed.Error() != "socket: closed" {
		t.Fatalf("ErrClosed text %q changed", ErrClosed.Error())
	}
	if errors.Is(ErrNotConnected, net.ErrClosed) {
		t.Fatal("ErrNotConnected matches net.ErrClosed")
	}
	for _, be := range []string{BackendIOURing, BackendEpoll} {
		t.Run(be, func(t *testing.T) { closedErrors(t, newEngine(t, EngineConfig{Backend: be})) })
	}
}

func closedErrors(t *testing.T, eng *Engine) {
	s, _ := dialPeer(t, eng)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var e sendop.Args
	e.SetBuffer([]byte("x"))
	_, sendErr := s.SendAsync(&e)
	_, recvErr := s.ReceiveAsync(&e)
	_, writeErr := s.Write([]byte("x"))
	closeErr := s.Close()
	for name, err := range map[string]error{"SendAsync": sendErr, "ReceiveAsync": recvErr, "Write": writeErr, "second Close": closeErr} {
		if !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s after Close: %v; want ErrClosed, which is net.ErrClosed", name, err)
		}
	}
}

// Write's errors say where, as net.Conn's do: a *net.OpError with the
// operation, the network and both addresses, through which errors.Is and
// errors.As reach ErrClosed, net.ErrClosed, the *sendop.Error and its
// errno. FromFD's socket names its addresses from the kernel.
func TestWriteErrorSaysWhere(t *testing.T) {
	for _, be := range []string{BackendIOURing, BackendEpoll} {
		t.Run(be, func(t *testing.T) {
			eng := newEngine(t, EngineConfig{Backend: be})
			s, p := dialPeer(t, eng)
			local, remote := p.RemoteAddr().String(), p.LocalAddr().String()

			// A peer that resets: the write fails with the errno.
			p.(*net.TCPConn).SetLinger(0)
			p.Close()
			var err error
			for range 1000 { // the RST arrives after a write or two
				if _, err = s.Write(make([]byte, 1<<16)); err != nil {
					break
				}
			}
			var oe *net.OpError
			var se *sendop.Error
			if !errors.As(err, &oe) || !errors.As(err, &se) {
				t.Fatalf("Write to a reset peer: %v (%T); want a *net.OpError around a *sendop.Error", err, err)
			}
			if oe.Op != "write" || oe.Net != "tcp" || oe.Source.String() != local || oe.Addr.String() != remote {
				t.Errorf("OpError %q %q %v → %v; want write tcp %s → %s", oe.Op, oe.Net, oe.Source, oe.Addr, local, remote)
			}
			if se.Op != "send" || !errors.Is(err, se.Errno) || (se.Code != sendop.ConnectionReset && se.Code != sendop.Shutdown) {
				t.Errorf("sendop.Error %+v; want a send's ConnectionReset or Shutdown", se)
			}

			// Closed: ErrClosed, which is net.ErrClosed, inside.
			s.Close()
			_, err = s.Write([]byte("x"))
			if !errors.As(err, &oe) || oe.Op != "write" || !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after Close: %v; want a write OpError around ErrClosed", err)
			}

			// FromFD: the addresses come from the kernel.
			_, p2 := dialPeer(t, eng)
			sf := fromDupFD(t, p2.(*net.TCPConn), eng)
			defer sf.Close()
			sf.CloseWrite()
			_, err = sf.Write([]byte("x"))
			if !errors.As(err, &oe) || !errors.Is(err, ErrWriteShutdown) || oe.Net != "tcp" ||
				oe.Source == nil || oe.Source.String() != p2.LocalAddr().String() || oe.Addr == nil || oe.Addr.String() != p2.RemoteAddr().String() {
				t.Errorf("FromFD Write after CloseWrite: %v; want a write OpError from %v to %v around ErrWriteShutdown", err, p2.LocalAddr(), p2.RemoteAddr())
			}
		})
	}
}

// fromDupFD returns a Socket made by FromFD of a duplicate of c's
// descriptor (the Socket owns the duplicate; c stays the caller's).
func fromDupFD(t *testing.T, c *net.TCPConn, eng *Engine) *Socket {
	t.Helper()
	f, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err := FromFD(fd, WithEngine(eng))
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	return s
}
