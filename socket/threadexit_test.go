//go:build linux

package socket

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
)

// A send submitted by a thread that then exits (a goroutine that locked
// its OS thread and returned) is cancelled by the kernel when its poll
// fires: io_uring runs the request's task work for a dead task with
// -ECANCELED. The socket is open: the engine resubmits it, and the send
// completes with all its bytes (it completed OperationAborted before, and
// the sends behind it went on: a hole in the stream).
func TestSendSubmittedByExitedThread(t *testing.T) {
	for _, recv := range []bool{false, true} {
		eng, err := NewEngine(EngineConfig{Backend: BackendIOURing})
		if err != nil {
			t.Fatal(err)
		}
		defer eng.Close()
		a, b := tcpPair(t)
		defer b.Close()
		s, err := FromConn(a, WithEngine(eng))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		defer s.Close()
		// Fill the socket so the next send waits for POLLOUT.
		filler := make([]byte, 8<<20)
		var e sendop.Args
		done := make(chan *sendop.Args, 2)
		e.Completed = func(e *sendop.Args) { done <- e }
		e.SetBuffer(filler)
		var r sendop.Args
		r.SetBuffer(make([]byte, 16))
		r.Completed = func(e *sendop.Args) { done <- e }
		pending := onExitingThread(t, func() bool {
			p, err := s.SendAsync(&e)
			if err != nil {
				t.Error(err)
			}
			if recv {
				if _, err := s.ReceiveAsync(&r); err != nil {
					t.Error(err)
				}
			}
			return p
		})
		if !pending {
			t.Fatal("the send completed at once: the peer's buffers took 8 MiB")
		}
		go io.Copy(io.Discard, b)
		if recv {
			b.Write([]byte("ping"))
		}
		want := 1 + map[bool]int{true: 1}[recv]
		for i := 0; i < want; i++ {
			select {
			case got := <-done:
				if got.Err() != nil {
					t.Fatalf("recv=%v: %v after %d bytes", recv, got.Err(), got.BytesTransferred())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no completion")
			}
		}
		_ = net.IPv4len
	}
}
