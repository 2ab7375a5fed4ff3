//go:build linux

package socket

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func eachBackend(t *testing.T, f func(t *testing.T, eng *Engine)) {
	for _, be := range []string{BackendIOURing, BackendEpoll} {
		t.Run(be, func(t *testing.T) {
			eng, err := NewEngine(EngineConfig{Backend: be})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			f(t, eng)
		})
	}
}

// dialPeer returns a Socket connected to a fresh loopback peer, and the
// peer's side as a net.Conn, both closed when the test ends.
func dialPeer(t testing.TB, eng *Engine, opts ...Option) (*Socket, net.Conn) {
	t.Helper()
	s, p, err := dialPeerErr(eng, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); p.Close() })
	return s, p
}

// dialPeerErr is dialPeer for goroutines other than the test's: it
// returns the error instead, and the caller closes both.
func dialPeerErr(eng *Engine, opts ...Option) (*Socket, net.Conn, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	peer := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		peer <- c
	}()
	s, err := Dial("tcp", l.Addr().String(), append(opts, WithEngine(eng))...)
	if err != nil {
		return nil, nil, err // the deferred Close ends the Accept
	}
	p := <-peer
	if p == nil {
		s.Close()
		return nil, nil, errors.New("accept failed")
	}
	return s, p, nil
}

// io.Copy into a Socket (ReadFrom) moves every byte in order.
func TestWriterCopy(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		s, p := dialPeer(t, eng)
		data := make([]byte, 5<<20+123)
		for i := range data {
			data[i] = byte(rand.Uint32())
		}
		got := make(chan [32]byte, 1)
		go func() {
			h := sha256.New()
			io.Copy(h, p)
			var sum [32]byte
			copy(sum[:], h.Sum(nil))
			got <- sum
		}()
		n, err := io.Copy(s, bytes.NewReader(data))
		if err != nil || n != int64(len(data)) {
			t.Fatalf("io.Copy = %d, %v", n, err)
		}
		s.Close()
		if <-got != sha256.Sum256(data) {
			t.Fatal("receiver's SHA-256 differs")
		}
	})
}

// Concurrent Writes never interleave: every record arrives whole.
func TestWriterConcurrentNoInterleave(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		s, p := dialPeer(t, eng)
		const writers, records = 8, 300
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 9))
				for i := 0; i < records; i++ {
					n := 8 + rng.IntN(20000)
					rec := make([]byte, n)
					binary.BigEndian.PutUint32(rec, uint32(n))
					binary.BigEndian.PutUint32(rec[4:], uint32(w))
					for j := 8; j < n; j++ {
						rec[j] = byte(w)
					}
					if k, err := s.Write(rec); err != nil || k != n {
						t.Errorf("Write = %d, %v", k, err)
						return
					}
				}
			}()
		}
		done := make(chan error, 1)
		go func() {
			for i := 0; i < writers*records; i++ {
				var hdr [8]byte
				if _, err := io.ReadFull(p, hdr[:]); err != nil {
					done <- err
					return
				}
				n, w := binary.BigEndian.Uint32(hdr[:]), hdr[7]
				body := make([]byte, n-8)
				if _, err := io.ReadFull(p, body); err != nil {
					done <- err
					return
				}
				if !bytes.Equal(body, bytes.Repeat([]byte{w}, len(body))) {
					done <- errors.New("interleaved record")
					return
				}
			}
			done <- nil
		}()
		wg.Wait()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// WithMaxInflightBytes bounds what WriteAsync keeps in flight behind a
// slow reader; every callback runs once; Close releases waiters.
func TestWriteAsyncBackpressure(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		const limit = 256 << 10
		s, p := dialPeer(t, eng, WithMaxInflightBytes(limit))
		var peak atomic.Int64
		var calls atomic.Int64
		var wg sync.WaitGroup
		buf := make([]byte, 16<<10)
		go io.Copy(io.Discard, slowReader{p})
		for i := 0; i < 400; i++ {
			wg.Add(1)
			err := s.WriteAsync(buf, func(n int, err error) {
				if err != nil || n != len(buf) {
					t.Errorf("WriteAsync: %d, %v", n, err)
				}
				calls.Add(1)
				wg.Done()
			})
			if err != nil {
				t.Fatal(err)
			}
			if v := int64(s.InflightBytes()); v > peak.Load() {
				peak.Store(v)
			}
		}
		wg.Wait()
		if calls.Load() != 400 {
			t.Fatalf("%d callbacks, want 400", calls.Load())
		}
		if peak.Load() > limit {
			t.Fatalf("in flight peaked at %d bytes, limit %d", peak.Load(), limit)
		}
		if s.InflightBytes() != 0 {
			t.Fatalf("%d bytes still counted in flight", s.InflightBytes())
		}
	})
}

type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(100 * time.Microsecond)
	return s.r.Read(p[:min(len(p), 32<<10)])
}

// Write on the sync path allocates nothing in steady state.
func TestWriteAllocs(t *testing.T) {
	eng, err := NewEngine(EngineConfig{Backend: BackendIOURing})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	s, err := Dial("tcp", drainPeer(t), WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, 64)
	s.Write(buf)
	if n := testing.AllocsPerRun(1000, func() { s.Write(buf) }); n != 0 {
		t.Fatalf("%v allocs per Write", n)
	}
}

// WithWriteTimeout: a Write to a peer that stops reading fails with
// TimedOut after the timeout, reporting what it sent.
func TestWriteTimeout(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		s, _ := dialPeer(t, eng, WithWriteTimeout(150*time.Millisecond))
		start := time.Now()
		n, err := s.Write(make([]byte, 64<<20))
		if !errors.Is(err, syscall.ETIMEDOUT) {
			t.Fatalf("Write = %d, %v; want ETIMEDOUT", n, err)
		}
		if n <= 0 || n >= 64<<20 || time.Since(start) < 100*time.Millisecond {
			t.Fatalf("Write sent %d bytes after %v", n, time.Since(start))
		}
	})
}

// An empty Write or WriteAsync succeeds with 0 bytes, as io.Writer and
// net.Conn do (fmt.Fprint(s, "") writes nothing): on a stream socket it
// sends nothing, and WriteAsync calls done(0, nil) once, before it
// returns. The stream after it is intact.
func TestWriteEmpty(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		s, p := dialPeer(t, eng)
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(p)
			got <- b
		}()
		for _, b := range [][]byte{nil, {}, make([]byte, 0, 8)} {
			if n, err := s.Write(b); n != 0 || err != nil {
				t.Fatalf("Write(%#v) = %d, %v; want 0, nil", b, n, err)
			}
			calls := 0
			err := s.WriteAsync(b, func(n int, err error) {
				calls++
				if n != 0 || err != nil {
					t.Errorf("WriteAsync(%#v) done(%d, %v); want done(0, nil)", b, n, err)
				}
			})
			if err != nil || calls != 1 {
				t.Fatalf("WriteAsync(%#v) = %v with %d calls of done before it returned; want nil, 1", b, err, calls)
			}
		}
		if _, err := fmt.Fprint(s, "", "abc"); err != nil {
			t.Fatal(err)
		}
		if n, err := fmt.Fprint(s, ""); n != 0 || err != nil {
			t.Fatalf(`Fprint(s, "") = %d, %v`, n, err)
		}
		if s.InflightBytes() != 0 {
			t.Fatalf("%d bytes counted in flight", s.InflightBytes())
		}
		s.Close()
		if b := <-got; string(b) != "abc" {
			t.Fatalf("peer got %q, want %q", b, "abc")
		}
		if _, err := s.Write(nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("Write(nil) after Close: %v, want ErrClosed", err)
		}
		if err := s.WriteAsync(nil, func(int, error) { t.Error("done called after a refused WriteAsync") }); !errors.Is(err, ErrClosed) {
			t.Fatalf("WriteAsync(nil) after Close: %v, want ErrClosed", err)
		}
	})
}

// On a datagram socket an empty Write sends an empty datagram, as
// net.UDPConn's does: it is a message there.
func TestWriteEmptyDatagram(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		s, err := Dial("udp", pc.LocalAddr().String(), WithEngine(eng))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		buf := make([]byte, 16)
		for _, b := range [][]byte{nil, {}, []byte("x")} {
			if n, err := s.Write(b); n != len(b) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", b, n, err)
			}
		}
		done := make(chan error, 1)
		if err := s.WriteAsync(nil, func(n int, err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for i, want := range []string{"", "", "x", ""} {
			n, _, err := pc.ReadFrom(buf)
			if err != nil || string(buf[:n]) != want {
				t.Fatalf("datagram %d: %q, %v; want %q", i, buf[:n], err, want)
			}
		}
	})
}
