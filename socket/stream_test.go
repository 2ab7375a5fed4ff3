//go:build linux

package socket

import (
	"bytes"
	"crypto/sha256"
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

	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/sendop"
)

// streamEngine is an engine of backend whose stream receives work here,
// or a skip.
func streamEngine(t *testing.T, backend string, cfg EngineConfig) *Engine {
	t.Helper()
	cfg.Backend = backend
	eng := newEngine(t, cfg)
	if backend == BackendIOURing {
		s, _ := rxPair(t, eng)
		if err := s.ReceiveChunks(func(c *Chunk, err error) {
			if c != nil {
				c.Release()
			}
		}); errors.Is(err, ring.ErrNotSupported) {
			t.Skip(err)
		} else if err != nil {
			t.Fatal(err)
		}
	}
	return eng
}

// chunkSink collects a stream receive: its bytes (hashed), its chunk
// count, and the one last call.
type chunkSink struct {
	mu     sync.Mutex
	h      hashWriter
	n      int64
	chunks int
	held   []*Chunk
	keep   bool // hold chunks instead of releasing them
	maxOut int
	ends   int
	end    error
	ended  chan struct{}
}

type hashWriter struct{ b bytes.Buffer }

func newChunkSink() *chunkSink { return &chunkSink{ended: make(chan struct{})} }

func (k *chunkSink) handle(c *Chunk, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c == nil {
		k.ends++
		k.end = err
		if k.ends == 1 {
			close(k.ended)
		}
		return
	}
	k.h.b.Write(c.Bytes())
	k.n += int64(len(c.Bytes()))
	k.chunks++
	if k.keep {
		k.held = append(k.held, c)
		k.maxOut = max(k.maxOut, len(k.held))
		return
	}
	c.Release()
}

// releaseAll lets go of the held chunks and stops holding.
func (k *chunkSink) releaseAll() {
	k.mu.Lock()
	held := k.held
	k.held, k.keep = nil, false
	k.mu.Unlock()
	for _, c := range held {
		c.Release()
	}
}

func (k *chunkSink) waitEnd(t *testing.T) error {
	t.Helper()
	select {
	case <-k.ended:
	case <-time.After(10 * time.Second):
		k.mu.Lock()
		defer k.mu.Unlock()
		t.Fatalf("the stream never ended (%d bytes, %d chunks)", k.n, k.chunks)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.end
}

func eachStreamBackend(t *testing.T, cfg EngineConfig, f func(t *testing.T, eng *Engine)) {
	for _, b := range []string{BackendIOURing, BackendEpoll} {
		t.Run(b, func(t *testing.T) { f(t, streamEngine(t, b, cfg)) })
	}
}

// Every byte arrives once, in order (sha256), in chunks of the pool's
// buffers; the peer's shutdown ends the stream with io.EOF, once.
func TestReceiveChunksExactBytes(t *testing.T) {
	eachStreamBackend(t, EngineConfig{}, func(t *testing.T, eng *Engine) {
		s, p := rxPair(t, eng)
		k := newChunkSink()
		if err := s.ReceiveChunks(k.handle); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, 8<<20)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		for off := 0; off < len(data); {
			n := min(1+rng.IntN(100<<10), len(data)-off)
			if _, err := p.Write(data[off : off+n]); err != nil {
				t.Fatal(err)
			}
			off += n
		}
		p.CloseWrite()
		if err := k.waitEnd(t); err != io.EOF {
			t.Fatalf("end: %v, want io.EOF", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		if sha256.Sum256(k.h.b.Bytes()) != sha256.Sum256(data) || k.n != int64(len(data)) {
			t.Fatalf("got %d bytes, hash differs: %v", k.n, k.n == int64(len(data)))
		}
		if k.ends != 1 {
			t.Fatalf("%d last calls", k.ends)
		}
		t.Logf("%d bytes in %d chunks", k.n, k.chunks)
	})
}

// A handler that holds its limit of chunks stops the socket; releasing
// them lets the rest of the stream through, in order, nothing lost.
func TestReceiveChunksLimit(t *testing.T) {
	eachStreamBackend(t, EngineConfig{RecvBufferSize: 4096}, func(t *testing.T, eng *Engine) {
		chunkLimitCase(t, eng, false)
		if eng.Backend() == BackendIOURing {
			t.Run("without a byte budget", func(t *testing.T) { chunkLimitCase(t, eng, true) })
		}
	})
}

// chunkLimitCase holds a stream's chunks at its limit, then lets it go;
// noBudget arms io_uring's requests as on kernels before 6.15, where only
// the cancel at the limit stops them.
func chunkLimitCase(t *testing.T, eng *Engine, noBudget bool) {
	{
		const limit = 4
		s, p := dialPeer(t, eng, WithChunkLimit(limit))
		pool, err := eng.chunkPool(s)
		if err != nil {
			t.Fatal(err)
		}
		pool.noBudget.Store(noBudget)
		defer pool.noBudget.Store(false)
		k := newChunkSink()
		k.keep = true
		if err := s.ReceiveChunks(k.handle); err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
		go func() {
			p.Write(data)
			p.(*net.TCPConn).CloseWrite()
		}()
		// The handler holds what it got; wait until the socket stopped
		// at its limit.
		deadline := time.Now().Add(5 * time.Second)
		for {
			k.mu.Lock()
			n := len(k.held)
			k.mu.Unlock()
			if n >= limit {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d chunks held", n)
			}
			time.Sleep(time.Millisecond)
		}
		// Stopped: the stream cannot end while the chunks are held (1 MiB
		// does not fit in limit × 4 KiB), and a release lets it go on.
		select {
		case <-k.ended:
			t.Fatal("the stream ended while its chunks were held")
		default:
		}
		k.releaseAll()
		if err := k.waitEnd(t); err != io.EOF {
			t.Fatalf("end: %v", err)
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		if !bytes.Equal(k.h.b.Bytes(), data) {
			t.Fatalf("got %d of %d bytes, or out of order", k.n, len(data))
		}
		// With a byte budget (6.15) or on epoll the limit is exact for
		// full buffers. Without one the kernel may fill more buffers for
		// the socket before it sees the cancel: a multishot receive takes
		// up to 32 in one wake-up (MULTISHOT_MAX_RETRY), and a burst
		// already in the socket is taken at once. Never the pool (1024).
		want := limit
		if noBudget {
			want = 512
		}
		if k.maxOut > want {
			t.Fatalf("held %d chunks with a limit of %d (no budget: %v)", k.maxOut, limit, noBudget)
		}
		t.Logf("held at most %d (limit %d), %d chunks", k.maxOut, limit, k.chunks)
	}
}

// A pool of 4 buffers shared by sockets that hold them: ENOBUFS parks
// the streams, buffers coming back resume them, and every byte arrives in
// order on each.
func TestReceiveChunksPoolExhausted(t *testing.T) {
	eachStreamBackend(t, EngineConfig{RecvBuffers: 4, RecvBufferSize: 4096}, func(t *testing.T, eng *Engine) {
		const conns = 3
		var wg sync.WaitGroup
		var rel sync.WaitGroup
		type side struct {
			s    *Socket
			k    *chunkSink
			data []byte
		}
		sides := make([]side, conns)
		for i := range sides {
			s, p := dialPeer(t, eng, WithChunkLimit(64))
			k := newChunkSink()
			data := bytes.Repeat([]byte{byte('a' + i)}, 256<<10)
			data[len(data)-1] = '!'
			sides[i] = side{s, k, data}
			// Hold each chunk for a moment on another goroutine.
			h := func(c *Chunk, err error) {
				if c == nil {
					k.handle(nil, err)
					return
				}
				k.mu.Lock()
				k.h.b.Write(c.Bytes())
				k.n += int64(len(c.Bytes()))
				k.chunks++
				k.mu.Unlock()
				rel.Add(1)
				go func() { defer rel.Done(); time.Sleep(50 * time.Microsecond); c.Release() }()
			}
			if err := s.ReceiveChunks(h); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				p.Write(data)
				p.(*net.TCPConn).CloseWrite()
			})
		}
		wg.Wait()
		for i, sd := range sides {
			if err := sd.k.waitEnd(t); err != io.EOF {
				t.Fatalf("conn %d: end %v", i, err)
			}
			sd.k.mu.Lock()
			ok := bytes.Equal(sd.k.h.b.Bytes(), sd.data)
			n := sd.k.n
			sd.k.mu.Unlock()
			if !ok {
				t.Fatalf("conn %d: %d of %d bytes, or out of order", i, n, len(sd.data))
			}
		}
		rel.Wait()
	})
}

// Close ends a stream receive with ErrClosed before it returns — armed and
// idle, or parked at its limit — and a chunk released after Close is fine.
func TestReceiveChunksClose(t *testing.T) {
	eachStreamBackend(t, EngineConfig{RecvBufferSize: 4096}, func(t *testing.T, eng *Engine) {
		for _, parked := range []bool{false, true} {
			s, p := dialPeer(t, eng, WithChunkLimit(2))
			k := newChunkSink()
			k.keep = true
			if err := s.ReceiveChunks(k.handle); err != nil {
				t.Fatal(err)
			}
			if parked {
				p.Write(make([]byte, 64<<10))
				for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
					k.mu.Lock()
					n := len(k.held)
					k.mu.Unlock()
					if n >= 2 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("never parked")
					}
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-k.ended: // before Close returned
			default:
				t.Fatalf("parked %v: Close returned before the stream's last call", parked)
			}
			if k.end != ErrClosed || !errors.Is(k.end, net.ErrClosed) {
				t.Fatalf("parked %v: end %v", parked, k.end)
			}
			k.releaseAll()
			if k.ends != 1 {
				t.Fatalf("%d last calls", k.ends)
			}
		}
	})
}

// After the peer's half-close ends the stream, the socket still sends.
func TestReceiveChunksHalfClose(t *testing.T) {
	eachStreamBackend(t, EngineConfig{}, func(t *testing.T, eng *Engine) {
		s, p := rxPair(t, eng)
		k := newChunkSink()
		if err := s.ReceiveChunks(k.handle); err != nil {
			t.Fatal(err)
		}
		p.Write([]byte("request"))
		p.CloseWrite()
		if err := k.waitEnd(t); err != io.EOF {
			t.Fatalf("end %v", err)
		}
		if _, err := s.Write([]byte("response")); err != nil {
			t.Fatal(err)
		}
		s.CloseWrite()
		got, err := io.ReadAll(p)
		if err != nil || string(got) != "response" || k.h.b.String() != "request" {
			t.Fatalf("peer got %q (%v); socket got %q", got, err, k.h.b.String())
		}
	})
}

// Bad calls get their own errors, and nothing starts.
func TestReceiveChunksErrors(t *testing.T) {
	eachStreamBackend(t, EngineConfig{}, func(t *testing.T, eng *Engine) {
		s, _ := rxPair(t, eng)
		if err := s.ReceiveChunks(nil); err != ErrNilHandler {
			t.Fatalf("nil handler: %v", err)
		}
		k := newChunkSink()
		if err := s.ReceiveChunks(k.handle); err != nil {
			t.Fatal(err)
		}
		if err := s.ReceiveChunks(k.handle); err != ErrReceiving {
			t.Fatalf("second ReceiveChunks: %v", err)
		}
		var e sendop.Args
		e.SetBuffer(make([]byte, 8))
		if _, err := s.ReceiveAsync(&e); err != ErrReceiving {
			t.Fatalf("ReceiveAsync while streaming: %v", err)
		}
		if _, err := s.ReceiveAsync(&e); err != ErrReceiving { // e is free again
			t.Fatalf("ReceiveAsync again: %v", err)
		}
		s.Close()
		if err := s.ReceiveChunks(k.handle); err != ErrClosed {
			t.Fatalf("after Close: %v", err)
		}

		// A receive pending on another socket: ReceiveChunks refuses.
		s2, _ := rxPair(t, eng)
		var e2 sendop.Args
		e2.SetBuffer(make([]byte, 8))
		e2.Completed = func(*sendop.Args) {}
		if p, err := s2.ReceiveAsync(&e2); err != nil || !p {
			t.Fatalf("ReceiveAsync: %v %v", p, err)
		}
		if err := s2.ReceiveChunks(k.handle); err != ErrReceiving {
			t.Fatalf("ReceiveChunks with a receive pending: %v", err)
		}

		u := dialUDP(t, eng, "udp4", "127.0.0.1:9")
		if err := u.ReceiveChunks(k.handle); err != ErrNotStream {
			t.Fatalf("UDP: %v", err)
		}
	})
}

// Release twice is a bug the engine reports at once.
func TestChunkReleaseTwicePanics(t *testing.T) {
	eachStreamBackend(t, EngineConfig{}, func(t *testing.T, eng *Engine) {
		s, p := rxPair(t, eng)
		got := make(chan *Chunk, 1)
		if err := s.ReceiveChunks(func(c *Chunk, err error) {
			if c != nil {
				got <- c
			}
		}); err != nil {
			t.Fatal(err)
		}
		p.Write([]byte("x"))
		c := <-got
		c.Release()
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		c.Release()
	})
}

// Sockets with a stream receive armed and no data hold no buffer.
func TestReceiveChunksIdleHoldsNoBuffer(t *testing.T) {
	eachStreamBackend(t, EngineConfig{}, func(t *testing.T, eng *Engine) {
		var calls atomic.Int64
		var socks []*Socket
		for range 50 {
			s, _ := rxPair(t, eng)
			if err := s.ReceiveChunks(func(c *Chunk, err error) { calls.Add(1) }); err != nil {
				t.Fatal(err)
			}
			socks = append(socks, s)
		}
		pool, _ := eng.chunkPool(socks[0])
		if out := pool.out.Load(); out != 0 || calls.Load() != 0 {
			t.Fatalf("%d buffers out, %d calls, with 50 idle streams", out, calls.Load())
		}
		for _, s := range socks {
			s.Close()
		}
		if calls.Load() != 50 {
			t.Fatalf("%d last calls for 50 closed streams", calls.Load())
		}
	})
}

// A relay: each chunk is sent on another socket and released from that
// send's Completed — the bytes the far peer gets are exactly the near
// peer's, with no copy in user space.
func TestReceiveChunksRelay(t *testing.T) {
	eachStreamBackend(t, EngineConfig{RecvBufferSize: 8192}, func(t *testing.T, eng *Engine) {
		in, pin := rxPair(t, eng)
		out, pout := rxPair(t, eng)
		var argsPool sync.Pool
		argsPool.New = func() any {
			a := &sendop.Args{}
			a.Completed = func(a *sendop.Args) {
				a.UserToken.(*Chunk).Release()
				a.UserToken = nil
				argsPool.Put(a)
			}
			return a
		}
		done := make(chan error, 1)
		err := in.ReceiveChunks(func(c *Chunk, err error) {
			if c == nil {
				out.CloseWrite()
				done <- err
				return
			}
			a := argsPool.Get().(*sendop.Args)
			a.SetBuffer(c.Bytes())
			a.UserToken = c
			pending, err := out.SendAsync(a)
			if err != nil {
				t.Error(err)
			}
			if !pending {
				a.Completed(a)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, 4<<20)
		rng := rand.New(rand.NewPCG(3, 4))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		go func() { pin.Write(data); pin.CloseWrite() }()
		got, err := io.ReadAll(pout)
		if err != nil {
			t.Fatal(err)
		}
		if e := <-done; e != io.EOF {
			t.Fatalf("end %v", e)
		}
		if sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatalf("relayed %d of %d bytes, hash differs", len(got), len(data))
		}
	})
}

// A chunk is not Go memory: sending it on pins nothing, and the sending
// socket's pin cache (which would keep a small entry past the send)
// stays empty.
func TestChunkSendPinsNothing(t *testing.T) {
	eachStreamBackend(t, EngineConfig{}, func(t *testing.T, eng *Engine) {
		in, pin := rxPair(t, eng)
		out, pout := rxPair(t, eng)
		sent := make(chan error, 1)
		a := &sendop.Args{Completed: func(a *sendop.Args) {
			a.UserToken.(*Chunk).Release()
			sent <- a.Err()
		}}
		err := in.ReceiveChunks(func(c *Chunk, err error) {
			if c == nil {
				return
			}
			a.SetBuffer(c.Bytes())
			a.UserToken = c
			if pending, err := out.SendAsync(a); err != nil || !pending {
				a.Completed(a)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pin.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 5)
		if _, err := io.ReadFull(pout, got); err != nil || string(got) != "hello" {
			t.Fatalf("peer read %q, %v", got, err)
		}
		out.mu.Lock()
		n := out.pins.Len()
		out.mu.Unlock()
		if n != 0 {
			t.Fatalf("the sending socket caches %d pins after sending a chunk, want 0", n)
		}
	})
}

// A peer that resets the connection ends the stream with the reset, as a
// *net.OpError that Is ECONNRESET, after every byte it sent before.
func TestReceiveChunksPeerReset(t *testing.T) {
	eachStreamBackend(t, EngineConfig{}, func(t *testing.T, eng *Engine) {
		s, p := rxPair(t, eng)
		k := newChunkSink()
		if err := s.ReceiveChunks(k.handle); err != nil {
			t.Fatal(err)
		}
		p.Write([]byte("before the reset"))
		// Wait for the bytes, so that the RST is not what drops them.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			k.mu.Lock()
			n := k.n
			k.mu.Unlock()
			if n == int64(len("before the reset")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("got %d bytes", n)
			}
		}
		p.SetLinger(0)
		p.Close()
		err := k.waitEnd(t)
		var oe *net.OpError
		if !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &oe) {
			t.Fatalf("end %v (%T), want a *net.OpError that Is ECONNRESET", err, err)
		}
		if k.h.b.String() != "before the reset" || k.ends != 1 {
			t.Fatalf("got %q, %d last calls", k.h.b.String(), k.ends)
		}
	})
}

// AF_UNIX streams end with io.EOF every time, with every byte: on io_uring
// their requests are single-shot (a multishot RECV there can miss a
// shutdown racing the last data and stay armed).
func TestReceiveChunksUnixEOF(t *testing.T) {
	eachStreamBackend(t, EngineConfig{RecvBufferSize: 4096}, func(t *testing.T, eng *Engine) {
		dir := t.TempDir()
		for round := range 40 {
			l, err := net.Listen("unix", fmt.Sprintf("%s/%d", dir, round))
			if err != nil {
				t.Fatal(err)
			}
			peer := make(chan net.Conn, 1)
			go func() { c, _ := l.Accept(); peer <- c }()
			c, err := net.Dial("unix", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			p := <-peer
			l.Close()
			s, err := FromConn(c, WithEngine(eng))
			if err != nil {
				t.Fatal(err)
			}
			k := newChunkSink()
			if err := s.ReceiveChunks(k.handle); err != nil {
				t.Fatal(err)
			}
			data := bytes.Repeat([]byte{byte(round), 1, 2, 3}, 64<<10) // 256 KiB
			go func() { p.Write(data); p.(*net.UnixConn).CloseWrite() }()
			if err := k.waitEnd(t); err != io.EOF {
				t.Fatalf("round %d: end %v", round, err)
			}
			if !bytes.Equal(k.h.b.Bytes(), data) {
				t.Fatalf("round %d: %d of %d bytes, or out of order", round, k.n, len(data))
			}
			s.Close()
			c.Close()
			p.Close()
		}
	})
}

// The io_uring pool's memory outlives the engine until the last chunk out
// is released, then goes.
func TestReceiveChunksPoolFreedAfterLastRelease(t *testing.T) {
	eng, err := NewEngine(EngineConfig{Backend: BackendIOURing})
	if err != nil {
		t.Skip(err)
	}
	s, p := rxPair(t, eng)
	got := make(chan *Chunk, 1)
	if err := s.ReceiveChunks(func(c *Chunk, err error) {
		if c != nil {
			got <- c
		}
	}); errors.Is(err, ring.ErrNotSupported) {
		eng.Close()
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	p.Write([]byte("held across the engine's close"))
	c := <-got
	pool, _ := eng.chunkPool(s)
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if pool.freed.Load() || string(c.Bytes()) != "held across the engine's close" {
		t.Fatalf("freed %v, bytes %q", pool.freed.Load(), c.Bytes())
	}
	c.Release()
	if !pool.freed.Load() {
		t.Fatal("the pool outlived its last chunk")
	}
}
