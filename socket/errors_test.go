//go:build linux

package socket

import (
	"errors"
	"net"
	"testing"

	"github.com/uringsend/uringsend/sendop"
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
