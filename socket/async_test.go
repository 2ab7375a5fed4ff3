//go:build linux

package socket

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
)

// WithAsyncCompletions: every SendAsync and ReceiveAsync returns pending
// and Completed reports each exactly once, with every byte in order — on
// an idle socket too, where a send would otherwise complete inline. The
// echo peer sends back what it gets; the test receives it through the
// same socket, one Args per direction, each restarted from its Completed.
func TestAsyncCompletions(t *testing.T) {
	eng := newEngine(t, EngineConfig{Backend: BackendIOURing})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	s, err := Dial("tcp", l.Addr().String(), WithEngine(eng), WithAsyncCompletions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	const n, size = 200, 700
	payload, want := randomPayload(7, n*size)
	var sends, recvs, inline atomic.Int64
	sent := make(chan error, 1)
	var se sendop.Args
	next := 0
	se.Completed = func(e *sendop.Args) {
		sends.Add(1)
		if err := e.Err(); err != nil || e.BytesTransferred() != size {
			sent <- e.Err()
			return
		}
		if next++; next == n {
			sent <- nil
			return
		}
		e.SetBuffer(payload[next*size : (next+1)*size])
		if pending, err := s.SendAsync(e); err != nil || !pending {
			inline.Add(1)
			sent <- err
		}
	}
	got := make(chan []byte, 1)
	var re sendop.Args
	buf := make([]byte, 4096)
	var received []byte
	re.SetBuffer(buf)
	re.Completed = func(e *sendop.Args) {
		recvs.Add(1)
		received = append(received, buf[:e.BytesTransferred()]...)
		if e.Err() != nil || e.BytesTransferred() == 0 || len(received) == len(payload) {
			got <- received
			return
		}
		if pending, err := s.ReceiveAsync(e); err != nil || !pending {
			inline.Add(1)
			got <- received
		}
	}
	if pending, err := s.ReceiveAsync(&re); err != nil || !pending {
		t.Fatalf("ReceiveAsync: pending %v, %v; want pending", pending, err)
	}
	time.Sleep(10 * time.Millisecond) // the socket is idle: an inline send would complete at once
	se.SetBuffer(payload[:size])
	if pending, err := s.SendAsync(&se); err != nil || !pending {
		t.Fatalf("first SendAsync on an idle socket: pending %v, %v; want pending", pending, err)
	}
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sends did not complete")
	}
	var r []byte
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("echo not received")
	}
	if sha256.Sum256(r) != want || !bytes.Equal(r, payload) {
		t.Fatalf("received %d of %d bytes, hash mismatch", len(r), len(payload))
	}
	if sends.Load() != n || inline.Load() != 0 {
		t.Fatalf("%d Completed for %d sends, %d completed inline", sends.Load(), n, inline.Load())
	}
	if recvs.Load() < 1 {
		t.Fatal("no receive completed")
	}
}
