//go:build linux

package socket

import (
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
)

// A send to a peer that stops reading completes with TimedOut after its
// Timeout, reporting the bytes that did go out; a send that finishes in
// time is not affected; the socket stays usable for Close.
func TestSendTimeout(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		s, p := dialPeer(t, eng)
		done := make(chan *sendop.Args, 2)
		quick := &sendop.Args{Timeout: time.Second, Completed: func(e *sendop.Args) { done <- e }}
		quick.SetBuffer(make([]byte, 1000))
		if pending, err := s.SendAsync(quick); err != nil {
			t.Fatal(err)
		} else if !pending {
			done <- quick
		}
		if e := <-done; e.SocketError() != sendop.Success || e.BytesTransferred() != 1000 {
			t.Fatalf("quick send: %v %d", e.SocketError(), e.BytesTransferred())
		}
		const total = 64 << 20 // far more than loopback buffers hold
		slow := &sendop.Args{Timeout: 200 * time.Millisecond, Completed: func(e *sendop.Args) { done <- e }}
		slow.SetBuffer(make([]byte, total))
		start := time.Now()
		if pending, err := s.SendAsync(slow); err != nil {
			t.Fatal(err)
		} else if !pending {
			done <- slow
		}
		var e *sendop.Args
		select {
		case e = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a send with a 200 ms Timeout is still pending after 10 s")
		}
		took := time.Since(start)
		if e.SocketError() != sendop.TimedOut || !errors.Is(e.Err(), syscall.ETIMEDOUT) {
			t.Fatalf("result %v (%v), want TimedOut", e.SocketError(), e.Err())
		}
		if n := e.BytesTransferred(); n <= 0 || n >= total {
			t.Fatalf("BytesTransferred %d, want some but not all of %d", n, total)
		}
		if took < 150*time.Millisecond {
			t.Fatalf("timed out after %v, before its Timeout", took)
		}
		// The peer received exactly what was reported (plus the quick send).
		s.Close()
		n, _ := io.Copy(io.Discard, p)
		if n != int64(1000+e.BytesTransferred()) {
			t.Fatalf("peer got %d bytes, reports say %d", n, 1000+e.BytesTransferred())
		}
	})
}
