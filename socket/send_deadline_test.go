//go:build linux

package socket

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// sendResult sends e on s and returns it once it has completed.
func sendResult(t *testing.T, s *Socket, e *sendop.Args, done chan *sendop.Args, limit time.Duration) *sendop.Args {
	t.Helper()
	pending, err := s.SendAsync(e)
	if err != nil {
		t.Fatal(err)
	}
	if !pending {
		return e
	}
	select {
	case e := <-done:
		return e
	case <-time.After(limit):
		t.Fatalf("send still pending after %v", limit)
		return nil
	}
}

// A reused Args does not inherit the deadline of its previous send: an
// Args whose send waited on a paused peer and then succeeded, sent again
// after that send's deadline has passed, to a peer that pauses again,
// gets its full Timeout. The epoll backend kept the deadline keyed on the
// Args and completed the second send TimedOut at once.
func TestSendTimeoutReusedArgsFreshDeadline(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		s, p := dialPeer(t, eng)
		smallBuffers(t, s, p)
		const size = 2 << 20 // far more than the shrunk buffers hold
		const timeout = time.Second
		buf := make([]byte, size)
		for i := range buf {
			buf[i] = streamByte(i)
		}
		// The peer reads one send's bytes each time it is told to.
		resume := make(chan struct{}, 2)
		got := make(chan [32]byte, 1)
		go func() {
			h := sha256.New()
			for range 2 {
				<-resume
				if _, err := io.CopyN(h, p, size); err != nil {
					break // the test failed and closed p
				}
			}
			got <- [32]byte(h.Sum(nil))
		}()
		done := make(chan *sendop.Args, 1)
		e := &sendop.Args{Timeout: timeout, Completed: func(e *sendop.Args) { done <- e }}
		e.SetBuffer(buf)
		for round := range 2 {
			start := time.Now()
			// The send waits on the paused peer, then the peer drains it
			// well within its Timeout.
			time.AfterFunc(timeout/5, func() { resume <- struct{}{} })
			r := sendResult(t, s, e, done, 10*time.Second)
			if r.SocketError() != sendop.Success || r.BytesTransferred() != size {
				t.Fatalf("round %d: %v (%v), %d bytes after %v; want Success, %d",
					round, r.SocketError(), r.Err(), r.BytesTransferred(), time.Since(start), size)
			}
			if round == 0 {
				// Past the first send's deadline before the next starts.
				time.Sleep(time.Until(start.Add(timeout + timeout/10)))
			}
		}
		want := sha256.New()
		want.Write(buf)
		want.Write(buf)
		if <-got != [32]byte(want.Sum(nil)) {
			t.Fatal("receiver's SHA-256 differs")
		}
	})
}

// A send's Timeout bounds the whole send once, however many pieces it
// goes out in: an 8 MiB BufferList of 8192 buffers (8 pieces of IOV_MAX)
// to a peer reading about 6 MiB/s, each piece taking well under the
// Timeout, completes TimedOut about Timeout after SendAsync with the bytes
// it sent — the peer receives exactly those.
func TestSendTimeoutBoundsWholeSend(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		s, p := dialSmallPeer(t, eng)
		const (
			timeout = 400 * time.Millisecond
			pieces  = 8192
			bufLen  = 1 << 10
			total   = pieces * bufLen
			rate    = 6 << 20 // bytes per second
		)
		stream := make([]byte, total)
		for i := range stream {
			stream[i] = streamByte(i)
		}
		bufs := make([][]byte, pieces)
		for i := range bufs {
			bufs[i] = stream[i*bufLen : (i+1)*bufLen]
		}
		stop := make(chan struct{})
		got := make(chan []byte, 1)
		go func() {
			rx := make([]byte, 0, total)
			chunk := make([]byte, 64<<10)
			t0 := time.Now()
			paced := true
			for {
				if paced {
					select {
					case <-stop:
						paced = false
					default:
					}
				}
				want := len(chunk)
				if paced {
					want = min(want, int(time.Since(t0).Seconds()*rate)-len(rx))
					if want <= 0 {
						time.Sleep(time.Millisecond)
						continue
					}
				}
				n, err := p.Read(chunk[:want])
				rx = append(rx, chunk[:n]...)
				if err != nil {
					got <- rx
					return
				}
			}
		}()
		done := make(chan *sendop.Args, 1)
		e := &sendop.Args{Timeout: timeout, Completed: func(e *sendop.Args) { done <- e }}
		e.SetBufferList(bufs)
		start := time.Now()
		r := sendResult(t, s, e, done, 10*time.Second)
		took := time.Since(start)
		close(stop)
		n := r.BytesTransferred()
		t.Logf("%s: %v (%v) after %v with %d of %d bytes", eng.Backend(), r.SocketError(), r.Err(), took, n, total)
		if r.SocketError() != sendop.TimedOut || !errors.Is(r.Err(), syscall.ETIMEDOUT) {
			t.Fatalf("result %v (%v) after %v, want TimedOut", r.SocketError(), r.Err(), took)
		}
		if n <= 0 || n >= total {
			t.Fatalf("BytesTransferred %d, want some but not all of %d", n, total)
		}
		// The send kept pace with the reader until its time was up (a
		// quarter of the pace, for a loaded machine): a timed send does
		// not stall once the socket buffer is full.
		if min := int(timeout.Seconds() * rate / 4); n < min {
			t.Errorf("BytesTransferred %d after %v, want >= %d at the peer's %d bytes/s", n, took, min, rate)
		}
		// Generous: scheduling on a loaded machine, not precision, is
		// what is allowed for; a deadline restarted per piece ends far
		// later or not at all.
		if took < timeout || took > timeout*7/4 {
			t.Fatalf("timed out after %v, want [%v, %v]", took, timeout, timeout*7/4)
		}
		s.Close()
		rx := <-got
		if len(rx) != n || sha256.Sum256(rx) != sha256.Sum256(stream[:n]) {
			t.Fatalf("peer got %d bytes (SHA-256 match %v), the send reported %d",
				len(rx), len(rx) <= n && sha256.Sum256(rx) == sha256.Sum256(stream[:len(rx)]), n)
		}
	})
}

// Close wakes a send waiting with a Timeout far off, just after it
// started: Close returns without ErrCloseIncomplete and the send
// completes OperationAborted. (On epoll the writer setting its deadline
// just as Close cancels is the case to cover; the window is too narrow to
// hit on purpose, so this guards the common paths.)
func TestCloseBeatsSendDeadline(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		buf := make([]byte, 4<<20)
		for i := range 200 {
			s, p := dialPeer(t, eng)
			smallBuffers(t, s, p)
			done := make(chan *sendop.Args, 1)
			e := &sendop.Args{Timeout: time.Minute, Completed: func(e *sendop.Args) { done <- e }}
			e.SetBuffer(buf)
			pending, err := s.SendAsync(e)
			if err != nil || !pending {
				t.Fatalf("SendAsync = %v, %v; want pending", pending, err)
			}
			start := time.Now()
			if err := s.Close(); err != nil {
				t.Fatalf("iteration %d: Close = %v after %v", i, err, time.Since(start))
			}
			if r := <-done; r.SocketError() != sendop.OperationAborted {
				t.Fatalf("iteration %d: send %v (%v), want OperationAborted", i, r.SocketError(), r.Err())
			}
			p.Close()
		}
	})
}

// dialSmallPeer is dialPeer with 16 KiB socket buffers on both ends. The
// peer's receive buffer is set on the listener, before the handshake: set
// on the accepted connection (smallBuffers), it shrinks a window already
// advertised, and loopback TCP can then sit in zero-window probes for
// longer than a send's Timeout (a send stopped at 98,223 bytes for 400 ms
// on both backends).
func dialSmallPeer(t *testing.T, eng *Engine) (*Socket, net.Conn) {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<10) })
	}}
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		peer <- c
	}()
	s, err := Dial("tcp", l.Addr().String(), WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	p := <-peer
	if p == nil {
		s.Close()
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { s.Close(); p.Close() })
	if err := unix.SetsockoptInt(s.FD(), unix.SOL_SOCKET, unix.SO_SNDBUF, 16<<10); err != nil {
		t.Fatal(err)
	}
	return s, p
}
