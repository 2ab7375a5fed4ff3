//go:build linux

package socket

// Adversarial tests of the raiser identity, the lifecycle word, Engine.Stats
// and ReceiveChunks (commits 314305f, 81c64f4, 2010897, 494c9c9). Each test
// fails on the bug it names; those that find a bug not yet fixed are
// skipped with "BUG:" and the reason.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// advWait polls cond until it holds, failing with what after d.
func advWait(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", d, what)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func advRandom(n int, seed uint64) []byte {
	data := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	return data
}

// --- ReceiveChunks: the cancel at the limit ---

// A handler that holds its limit stops the socket: on io_uring onStream
// cancels the multishot receive "now, not at the next enter". The cancel
// must reach the kernel even when nothing else happens on the ring — the
// stream parks (its request ended), and no more buffers are taken.
func TestAdvChunkLimitCancelReachesKernel(t *testing.T) {
	eng := streamEngine(t, BackendIOURing, EngineConfig{RecvBufferSize: 4096})
	s, p := rxPair(t, eng, WithChunkLimit(1))
	k := newChunkSink()
	k.keep = true
	if err := s.ReceiveChunks(k.handle); err != nil {
		t.Fatal(err)
	}
	data := advRandom(64<<10, 1)
	if _, err := p.Write(data[:4096]); err != nil {
		t.Fatal(err)
	}
	advWait(t, 5*time.Second, "first chunk", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.chunks >= 1
	})
	// The handler holds its limit: the multishot receive must end (the
	// cancel completes) and the stream park, with nothing else on the ring.
	st := s.rx.stream
	advWait(t, 5*time.Second, "the stream never parked at its limit: the cancel did not reach the kernel", st.parked.Load)
	// Parked: more data stays in the socket until a release.
	if _, err := p.Write(data[4096:]); err != nil {
		t.Fatal(err)
	}
	k.releaseAll()
	p.CloseWrite()
	if err := k.waitEnd(t); err != io.EOF {
		t.Fatalf("end %v", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if sha256.Sum256(k.h.b.Bytes()) != sha256.Sum256(data) {
		t.Fatalf("got %d of %d bytes, hash differs", k.n, len(data))
	}
}

// --- ReceiveChunks: buffers after Engine.Close ---

// A Chunk's bytes "stay valid until Release". A handler that still holds a
// chunk when its engine closes (a relay whose other side is slower) must be
// able to read it and Release it afterwards.
func TestAdvChunkBytesValidAfterEngineClose(t *testing.T) {
	for _, backend := range []string{BackendIOURing, BackendEpoll} {
		t.Run(backend, func(t *testing.T) {
			eng := streamEngine(t, backend, EngineConfig{RecvBufferSize: 4096})
			s, p := rxPair(t, eng)
			got := make(chan *Chunk, 1)
			if err := s.ReceiveChunks(func(c *Chunk, err error) {
				if c != nil {
					got <- c
				}
			}); err != nil {
				t.Fatal(err)
			}
			msg := []byte("held across Engine.Close")
			if _, err := p.Write(msg); err != nil {
				t.Fatal(err)
			}
			var c *Chunk
			select {
			case c = <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("no chunk")
			}
			if err := eng.Close(); err != nil {
				t.Fatal(err)
			}
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			var sum [32]byte
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("reading a held chunk after Engine.Close faulted: %v", r)
					}
				}()
				sum = sha256.Sum256(c.Bytes())
			}()
			if sum != sha256.Sum256(msg) {
				t.Fatalf("a held chunk changed after Engine.Close: %q", c.Bytes())
			}
			c.Release()
		})
	}
}

// --- ReceiveChunks: a Release racing the park at the limit ---

// The reader stops at the limit and parks unless the handler has already
// let go of enough chunks; a Release resumes a parked stream. A Release
// landing between streamStopped's look at held and its store of parked
// must not leave the stream parked with nothing held: nothing would ever
// resume it. Limit 1 on epoll, each chunk released at once by the handler
// on the dispatcher while the reader goes on: every byte must arrive. (The
// window is a few instructions; -race widens it enough to hit it within a
// round or two.)
func TestAdvChunkParkRacesRelease(t *testing.T) {
	eng := newEngine(t, EngineConfig{Backend: BackendEpoll, RecvBufferSize: 512})
	for r := range 4 {
		s, p := rxPair(t, eng, WithChunkLimit(1))
		h := sha256.New()
		var n atomic.Int64
		ended := make(chan error, 1)
		if err := s.ReceiveChunks(func(c *Chunk, err error) {
			if c == nil {
				ended <- err
				return
			}
			h.Write(c.Bytes()) // the dispatcher only
			n.Add(int64(len(c.Bytes())))
			c.Release()
		}); err != nil {
			t.Fatal(err)
		}
		data := advRandom(4<<20, uint64(r)+7)
		go func() {
			for off := 0; off < len(data); off += 700 {
				p.Write(data[off:min(off+700, len(data))])
			}
			p.CloseWrite()
		}()
		st := s.rx.stream
		last, lastAt := int64(-1), time.Now()
	wait:
		for {
			select {
			case err := <-ended:
				if err != io.EOF {
					t.Fatalf("round %d: end %v", r, err)
				}
				break wait
			case <-time.After(50 * time.Millisecond):
			}
			if cur := n.Load(); cur != last {
				last, lastAt = cur, time.Now()
			} else if time.Since(lastAt) > 5*time.Second {
				t.Fatalf("round %d: stalled at %d of %d bytes: parked %v with %d chunks held", r, cur, len(data), st.parked.Load(), st.held.Load())
			}
		}
		if n.Load() != int64(len(data)) || !bytes.Equal(h.Sum(nil), sum256(data)) {
			t.Fatalf("round %d: %d of %d bytes, hash differs", r, n.Load(), len(data))
		}
		s.Close()
	}
}

func sum256(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// --- ReceiveChunks: the cap cancel and the submission lock ---

// onStream's cancel at the limit takes an SQE. It runs on the reaper (or
// an inline harvester) while other goroutines take SQEs under the
// submission lock — here, Releases on other goroutines re-arming the
// stream and a sender on another socket of the ring. Run with -race: an
// SQE taken without the lock is a data race on the SQ (and two takers may
// get the same entry).
func TestAdvChunkLimitCancelSQRace(t *testing.T) {
	eng := streamEngine(t, BackendIOURing, EngineConfig{RecvBufferSize: 512})
	s, p := rxPair(t, eng, WithChunkLimit(1))
	o, po := rxPair(t, eng)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(io.Discard, po) })
	wg.Go(func() {
		msg := []byte("x")
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := o.Write(msg); err != nil {
				return
			}
		}
	})
	rel := make(chan *Chunk, 4096)
	var relWG sync.WaitGroup
	for range 2 {
		relWG.Go(func() {
			for c := range rel {
				c.Release()
			}
		})
	}
	h := sha256.New()
	var n int64
	ended := make(chan error, 1)
	if err := s.ReceiveChunks(func(c *Chunk, err error) {
		if c == nil {
			ended <- err
			return
		}
		h.Write(c.Bytes()) // the engine's goroutine only
		n += int64(len(c.Bytes()))
		rel <- c
	}); err != nil {
		t.Fatal(err)
	}
	data := advRandom(2<<20, 11)
	go func() {
		for off := 0; off < len(data); off += 700 {
			p.Write(data[off:min(off+700, len(data))])
		}
		p.CloseWrite()
	}()
	var end error
	select {
	case end = <-ended:
	case <-time.After(30 * time.Second):
		t.Fatalf("stalled: parked %v, held %d", s.rx.stream.parked.Load(), s.rx.stream.held.Load())
	}
	close(stop)
	close(rel)
	relWG.Wait()
	o.Close()
	po.Close()
	wg.Wait()
	if end != io.EOF {
		t.Fatalf("end %v", end)
	}
	if n != int64(len(data)) || !bytes.Equal(h.Sum(nil), sum256(data)) {
		t.Fatalf("%d of %d bytes, hash differs", n, len(data))
	}
}

// --- ReceiveChunks: Close of a parked stream wakes a parked reaper ---

// A stream parked on an empty pool has nothing in the kernel, so the
// reaper may sleep in Go. Close (from a goroutine that is not the raiser)
// queues the stream's last call: it must wake the reaper, and return only
// after that call has returned.
func TestAdvChunkCloseParkedWakesReaper(t *testing.T) {
	probe := streamEngine(t, BackendIOURing, EngineConfig{})
	probe.Close()
	// No probe stream on this engine: nothing stays armed, the reaper parks.
	eng := newEngine(t, EngineConfig{Backend: BackendIOURing, RecvBuffers: 2, RecvBufferSize: 4096})
	for i := range 20 {
		s, p := rxPair(t, eng, WithChunkLimit(64))
		k := newChunkSink()
		k.keep = true
		var lastDone atomic.Bool
		if err := s.ReceiveChunks(func(c *Chunk, err error) {
			k.handle(c, err)
			if c == nil {
				lastDone.Store(true)
			}
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Write(make([]byte, 3*4096)); err != nil {
			t.Fatal(err)
		}
		st := s.rx.stream
		advWait(t, 5*time.Second, "parked on the empty pool", func() bool {
			k.mu.Lock()
			defer k.mu.Unlock()
			return st.parked.Load() && len(k.held) == 2
		})
		// Nothing of the engine is in the kernel: its reaper parks in Go.
		advWait(t, 5*time.Second, "the reaper parked", func() bool { return goroutineIn("ring.(*Ring).park(") })
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("round %d: Close: %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Close of a parked stream never returned (reaper not woken for its last call)", i)
		}
		if !lastDone.Load() {
			t.Fatalf("round %d: Close returned before the stream's last call returned", i)
		}
		if k.ends != 1 || k.end != ErrClosed {
			t.Fatalf("round %d: %d last calls, end %v", i, k.ends, k.end)
		}
		k.releaseAll()
		if out := st.pool.out.Load(); out != 0 {
			t.Fatalf("round %d: %d buffers out after every release", i, out)
		}
	}
}

// --- ReceiveChunks: deliveries harvested by an inline peek ---

// A SendAsync's peek may harvest another socket's stream CQE: the chunk is
// queued for the reaper, which must be woken for it even though nothing
// else happens. Each round's byte must be delivered.
func TestAdvChunkHarvestedInline(t *testing.T) {
	eng := newEngine(t, EngineConfig{Backend: BackendIOURing})
	y, py := rxPair(t, eng)
	x, px := rxPair(t, eng)
	go io.Copy(io.Discard, px)
	got := make(chan byte, 1)
	if err := y.ReceiveChunks(func(c *Chunk, err error) {
		if c != nil {
			for _, b := range c.Bytes() {
				got <- b
			}
			c.Release()
		}
	}); errors.Is(err, ring.ErrNotSupported) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	msg := []byte("m")
	for i := range 2000 {
		if _, err := py.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := x.Write(msg); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-got:
			if b != byte(i) {
				t.Fatalf("round %d: got byte %d", i, b)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the chunk never reached the handler", i)
		}
	}
}

// --- ReceiveChunks: CQ overflow ---

// A small CQ and many streams receiving bursts at once: the kernel ends
// multishot receives it cannot post for, and may overflow. Every stream
// still gets exactly its bytes, in order, and ends once with io.EOF.
func TestAdvChunksSmallCQ(t *testing.T) {
	eng := streamEngine(t, BackendIOURing, EngineConfig{Entries: 4, CQEntries: 8, RecvBufferSize: 1024})
	const conns = 24
	type side struct {
		k    *chunkSink
		p    *net.TCPConn
		data []byte
	}
	sides := make([]side, conns)
	for i := range sides {
		s, p := rxPair(t, eng)
		k := newChunkSink()
		if err := s.ReceiveChunks(k.handle); err != nil {
			t.Fatal(err)
		}
		sides[i] = side{k, p, advRandom(256<<10, uint64(100+i))}
	}
	var wg sync.WaitGroup
	for _, sd := range sides {
		wg.Go(func() {
			for off := 0; off < len(sd.data); off += 16 << 10 {
				sd.p.Write(sd.data[off:min(off+16<<10, len(sd.data))])
			}
			sd.p.CloseWrite()
		})
	}
	wg.Wait()
	for i, sd := range sides {
		if err := sd.k.waitEnd(t); err != io.EOF {
			t.Fatalf("conn %d: end %v", i, err)
		}
		sd.k.mu.Lock()
		ok := sha256.Sum256(sd.k.h.b.Bytes()) == sha256.Sum256(sd.data)
		n, ends := sd.k.n, sd.k.ends
		sd.k.mu.Unlock()
		if !ok || ends != 1 {
			t.Fatalf("conn %d: %d of %d bytes (hash ok %v), %d last calls", i, n, len(sd.data), ok, ends)
		}
	}
	t.Logf("stats %+v", eng.Stats())
}

// --- ReceiveChunks: Release after Close, concurrently ---

// Chunks held when the socket closes are released afterwards from many
// goroutines at once: the pool gets every buffer back, the stream stays
// ended (no re-arm after Close), and Close waited for the last call.
func TestAdvChunkConcurrentReleaseAfterClose(t *testing.T) {
	eachStreamBackend(t, EngineConfig{RecvBufferSize: 1024}, func(t *testing.T, eng *Engine) {
		const limit = 32
		s, p := dialPeer(t, eng, WithChunkLimit(limit))
		k := newChunkSink()
		k.keep = true
		if err := s.ReceiveChunks(k.handle); err != nil {
			t.Fatal(err)
		}
		go p.Write(make([]byte, 256<<10))
		st := s.rx.stream
		advWait(t, 5*time.Second, "a few chunks held", func() bool {
			k.mu.Lock()
			defer k.mu.Unlock()
			return len(k.held) >= 8
		})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		k.mu.Lock()
		held := k.held
		k.held, k.keep = nil, false
		ends, end := k.ends, k.end
		k.mu.Unlock()
		if ends != 1 || end != ErrClosed {
			t.Fatalf("after Close: %d last calls, end %v", ends, end)
		}
		var wg sync.WaitGroup
		for _, c := range held {
			wg.Go(c.Release)
		}
		wg.Wait()
		if h := st.held.Load(); h != 0 {
			t.Fatalf("held %d after every release", h)
		}
		if out := st.pool.out.Load(); out != 0 {
			t.Fatalf("%d buffers out after every release", out)
		}
		if s.rx.wire || s.rx.reading {
			t.Fatalf("a closed stream was armed again by a release (wire %v, reading %v)", s.rx.wire, s.rx.reading)
		}
	})
}

// --- the raiser's identity ---

// Close from a handler that locks and unlocks its own OS thread (a
// handler calling into cgo, say) is still known as the raiser: the lock
// count is nested, so the raiser stays wired and returns at once.
func TestAdvCloseFromHandlerThatLocksItsThread(t *testing.T) {
	for _, backend := range []string{BackendIOURing, BackendEpoll} {
		t.Run(backend, func(t *testing.T) {
			eng := newEngine(t, EngineConfig{Backend: backend})
			a, pa := rxPair(t, eng)
			c, _ := rxPair(t, eng)
			cDone := make(chan struct{})
			var ec sendop.Args
			ec.SetBuffer(make([]byte, 8))
			ec.Completed = func(*sendop.Args) { close(cDone) }
			if p, err := c.ReceiveAsync(&ec); err != nil || !p {
				t.Fatalf("c: %v %v", p, err)
			}
			res := make(chan error, 1)
			var ea sendop.Args
			ea.SetBuffer(make([]byte, 8))
			ea.Completed = func(*sendop.Args) {
				runtime.LockOSThread()
				runtime.UnlockOSThread()
				res <- c.Close() // c's receive is to be raised by this goroutine
			}
			if p, err := a.ReceiveAsync(&ea); err != nil || !p {
				t.Fatalf("a: %v %v", p, err)
			}
			pa.Write([]byte("x"))
			select {
			case err := <-res:
				if err != nil {
					t.Fatalf("Close from the handler: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close from a handler that locked its thread waited for itself")
			}
			select {
			case <-cDone:
			case <-time.After(5 * time.Second):
				t.Fatal("c's receive never completed")
			}
		})
	}
}

// A goroutine started by a handler is not the raiser: its Close waits for
// the socket's Completed, which the raiser runs only after the handler
// returns. So that Close returns after both.
func TestAdvCloseFromGoroutineOfHandlerWaits(t *testing.T) {
	for _, backend := range []string{BackendIOURing, BackendEpoll} {
		t.Run(backend, func(t *testing.T) {
			eng := newEngine(t, EngineConfig{Backend: backend})
			a, pa := rxPair(t, eng)
			c, _ := rxPair(t, eng)
			var seq atomic.Int32
			var cAt, handlerAt, closeAt atomic.Int32
			var ec sendop.Args
			ec.SetBuffer(make([]byte, 8))
			ec.Completed = func(*sendop.Args) { cAt.Store(seq.Add(1)) }
			if p, err := c.ReceiveAsync(&ec); err != nil || !p {
				t.Fatalf("c: %v %v", p, err)
			}
			closed := make(chan error, 1)
			var ea sendop.Args
			ea.SetBuffer(make([]byte, 8))
			ea.Completed = func(*sendop.Args) {
				go func() {
					err := c.Close()
					closeAt.Store(seq.Add(1))
					closed <- err
				}()
				// Hold the raiser until that Close waits (or wrongly returned).
				for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
					if closeAt.Load() != 0 || goroutineIn("(*Socket).awaitClose") {
						break
					}
				}
				handlerAt.Store(seq.Add(1))
			}
			if p, err := a.ReceiveAsync(&ea); err != nil || !p {
				t.Fatalf("a: %v %v", p, err)
			}
			pa.Write([]byte("x"))
			select {
			case err := <-closed:
				if err != nil {
					t.Fatalf("Close: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Close never returned")
			}
			if !(handlerAt.Load() != 0 && cAt.Load() != 0 && closeAt.Load() > handlerAt.Load() && closeAt.Load() > cAt.Load()) {
				t.Fatalf("order: handler %d, c's Completed %d, Close returned %d", handlerAt.Load(), cAt.Load(), closeAt.Load())
			}
		})
	}
}

// Engine.Close and Socket.Close from a stream's handler (the delivery
// queue runs on the raiser too) return at once; the stream's last call
// follows, once.
func TestAdvCloseFromChunkHandler(t *testing.T) {
	for _, engineClose := range []bool{false, true} {
		name := "socket"
		if engineClose {
			name = "engine"
		}
		t.Run(name, func(t *testing.T) {
			eachStreamBackend(t, EngineConfig{}, func(t *testing.T, eng *Engine) {
				s, p := rxPair(t, eng)
				res := make(chan error, 1)
				ended := make(chan error, 2)
				var calls atomic.Int32
				if err := s.ReceiveChunks(func(c *Chunk, err error) {
					if c == nil {
						ended <- err
						return
					}
					c.Release()
					if calls.Add(1) == 1 {
						if engineClose {
							res <- eng.Close()
						} else {
							res <- s.Close()
						}
					}
				}); err != nil {
					t.Fatal(err)
				}
				p.Write([]byte("go"))
				select {
				case err := <-res:
					if err != nil {
						t.Fatalf("Close from the chunk handler: %v", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("Close from the chunk handler did not return")
				}
				select {
				case err := <-ended:
					if err != ErrClosed {
						t.Fatalf("end %v", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("no last call after Close from the handler")
				}
				if !engineClose {
					if err := s.Close(); err != ErrClosed {
						t.Fatalf("second Close: %v", err)
					}
				} else {
					if err := eng.Close(); err != ErrClosed {
						t.Fatalf("second Engine.Close: %v", err)
					}
				}
				select {
				case err := <-ended:
					t.Fatalf("a second last call: %v", err)
				default:
				}
			})
		})
	}
}

// --- the lifecycle word ---

// Many Closes at once, with receives and sends in flight: one returns the
// close's result, the others ErrClosed, and each returns only after every
// Completed of the socket has.
func TestAdvConcurrentCloses(t *testing.T) {
	for _, backend := range []string{BackendIOURing, BackendEpoll} {
		t.Run(backend, func(t *testing.T) {
			eng := newEngine(t, EngineConfig{Backend: backend})
			for round := range 50 {
				s, p := rxPair(t, eng)
				var completed atomic.Int32
				var er sendop.Args
				er.SetBuffer(make([]byte, 8))
				er.Completed = func(*sendop.Args) { completed.Add(1) }
				rp, err := s.ReceiveAsync(&er)
				if err != nil {
					t.Fatal(err)
				}
				sends := make([]sendop.Args, 8)
				inline := 0
				if !rp {
					inline++ // nothing was written to it: not expected
				}
				for i := range sends {
					sends[i].SetBuffer(make([]byte, 256<<10))
					sends[i].Completed = func(*sendop.Args) { completed.Add(1) }
					pending, err := s.SendAsync(&sends[i])
					if err != nil {
						t.Fatal(err)
					}
					if !pending {
						inline++
					}
				}
				const closers = 6
				errs := make(chan error, closers)
				var bad atomic.Int32
				for range closers {
					go func() {
						err := s.Close()
						if completed.Load() != int32(len(sends)+1-inline) {
							bad.Add(1)
						}
						errs <- err
					}()
				}
				nilErrs := 0
				for range closers {
					switch err := <-errs; {
					case err == nil:
						nilErrs++
					case errors.Is(err, ErrClosed):
					default:
						t.Fatalf("round %d: Close: %v", round, err)
					}
				}
				if nilErrs != 1 || bad.Load() != 0 {
					t.Fatalf("round %d: %d Closes returned nil; %d returned before every Completed (%d of %d)", round, nilErrs, bad.Load(), completed.Load(), len(sends)+1-inline)
				}
				p.Close()
			}
		})
	}
}

// CloseWrite racing Close, with sends queued: CloseWrite returns nil or
// ErrClosed, every send completes exactly once, Close returns nil, and the
// peer sees the stream end (FIN or reset), never a hang.
func TestAdvCloseWriteRacesClose(t *testing.T) {
	for _, backend := range []string{BackendIOURing, BackendEpoll} {
		t.Run(backend, func(t *testing.T) {
			eng := newEngine(t, EngineConfig{Backend: backend})
			for round := range 100 {
				s, p := rxPair(t, eng)
				counts := make([]atomic.Int32, 16)
				sends := make([]sendop.Args, len(counts))
				var pendingN int
				for i := range sends {
					sends[i].SetBuffer(make([]byte, 64<<10))
					sends[i].Completed = func(*sendop.Args) { counts[i].Add(1) }
					pending, err := s.SendAsync(&sends[i])
					if err != nil {
						t.Fatal(err)
					}
					if pending {
						pendingN++
					} else {
						counts[i].Add(1)
					}
				}
				cw := make(chan error, 1)
				go func() { cw <- s.CloseWrite() }()
				if round%2 == 0 {
					runtime.Gosched()
				}
				if err := s.Close(); err != nil {
					t.Fatalf("round %d: Close: %v", round, err)
				}
				if err := <-cw; err != nil && !errors.Is(err, ErrClosed) {
					t.Fatalf("round %d: CloseWrite: %v", round, err)
				}
				for i := range counts {
					if n := counts[i].Load(); n != 1 {
						t.Fatalf("round %d: send %d completed %d times", round, i, n)
					}
				}
				p.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.Copy(io.Discard, p); err != nil && !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("round %d: peer: %v", round, err)
				}
				p.Close()
			}
		})
	}
}

// --- Engine.Stats ---

// On epoll every recvfrom of a stream receive is counted: the ones that
// received (one per chunk), the one that read the end of the stream, and
// the EAGAINs (WouldBlock).
func TestAdvStatsEpollStreamRecvCalls(t *testing.T) {
	eng := newEngine(t, EngineConfig{Backend: BackendEpoll, RecvBufferSize: 4096})
	s, p := rxPair(t, eng)
	before := eng.Stats()
	k := newChunkSink()
	if err := s.ReceiveChunks(k.handle); err != nil {
		t.Fatal(err)
	}
	data := advRandom(1<<20, 5)
	go func() { p.Write(data); p.CloseWrite() }()
	if err := k.waitEnd(t); err != io.EOF {
		t.Fatalf("end %v", err)
	}
	st := eng.Stats()
	calls, wb := st.RecvCalls-before.RecvCalls, st.WouldBlock-before.WouldBlock
	k.mu.Lock()
	chunks := k.chunks
	k.mu.Unlock()
	if calls-wb != uint64(chunks)+1 {
		t.Fatalf("%d recv calls, %d would block; want %d that returned (%d chunks and the end)", calls, wb, chunks+1, chunks)
	}
	if st.SendCalls != before.SendCalls {
		t.Fatalf("send calls moved: %d → %d", before.SendCalls, st.SendCalls)
	}
}

// An io_uring engine sends AF_UNIX datagrams on the epoll path: those
// sendmsg calls are counted, and nothing else of the epoll path is.
func TestAdvStatsIOURingUnixgramCounted(t *testing.T) {
	eng := newEngine(t, EngineConfig{Backend: BackendIOURing})
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	s, err := FromFD(fds[0], WithEngine(eng))
	if err != nil {
		unix.Close(fds[0])
		t.Fatal(err)
	}
	defer s.Close()
	before := eng.Stats()
	const n = 50
	buf := make([]byte, 64)
	for i := range n {
		if _, err := s.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if m, err := unix.Read(fds[1], buf); err != nil || m != 1 || buf[0] != byte(i) {
			t.Fatalf("datagram %d: %d bytes %v", i, m, err)
		}
	}
	st := eng.Stats()
	if got := st.SendCalls - before.SendCalls - (st.WouldBlock - before.WouldBlock); got != n {
		t.Fatalf("%d send calls that sent, want %d", got, n)
	}
	if st.RecvCalls != before.RecvCalls {
		t.Fatalf("recv calls moved")
	}
}

// --- ReceiveChunks without recv bundles (kernels 6.0–6.9) ---

// Without bundles a CQE names one buffer and nothing of the ring package
// orders a Release on one goroutine before the reaper's reuse of the same
// Chunk struct for the next delivery of that buffer (the kernel does, which
// the race detector cannot see). Forced here on a kernel that has bundles:
// run with -race, a relay releasing on other goroutines must be race-free
// and exact.
func TestAdvChunkNoBundleReleaseOrdering(t *testing.T) {
	eng := streamEngine(t, BackendIOURing, EngineConfig{RecvBuffers: 4, RecvBufferSize: 1024})
	// The limit above the pool: the stream parks on ENOBUFS, never on the
	// limit (whose cancel is TestAdvChunkLimitCancelSQRace's).
	s, p := rxPair(t, eng, WithChunkLimit(64))
	pool, err := eng.chunkPool(s)
	if err != nil {
		t.Fatal(err)
	}
	pool.bundle = false // what a kernel without recv bundles gets
	rel := make(chan *Chunk, 64)
	var wg sync.WaitGroup
	wg.Go(func() {
		for c := range rel {
			c.Release()
		}
	})
	h := sha256.New()
	var n int64
	ended := make(chan error, 1)
	if err := s.ReceiveChunks(func(c *Chunk, err error) {
		if c == nil {
			ended <- err
			return
		}
		h.Write(c.Bytes())
		n += int64(len(c.Bytes()))
		rel <- c
	}); err != nil {
		t.Fatal(err)
	}
	if s.rx.stream.bundle {
		t.Fatal("stream still uses bundles")
	}
	data := advRandom(1<<20, 21)
	go func() { p.Write(data); p.CloseWrite() }()
	select {
	case err := <-ended:
		if err != io.EOF {
			t.Fatalf("end %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stalled")
	}
	close(rel)
	wg.Wait()
	if n != int64(len(data)) || !bytes.Equal(h.Sum(nil), sum256(data)) {
		t.Fatalf("%d of %d bytes, hash differs", n, len(data))
	}
}

// Release itself after Engine.Close (not touching the bytes) is safe on
// both backends: the buffer goes back to a pool that is gone or closed,
// and the count of buffers out returns to 0.
func TestAdvChunkReleaseAfterEngineClose(t *testing.T) {
	eachStreamBackend(t, EngineConfig{RecvBufferSize: 1024}, func(t *testing.T, eng *Engine) {
		s, p := dialPeer(t, eng, WithChunkLimit(4))
		k := newChunkSink()
		k.keep = true
		if err := s.ReceiveChunks(k.handle); err != nil {
			t.Fatal(err)
		}
		go p.Write(make([]byte, 64<<10))
		advWait(t, 5*time.Second, "chunks held", func() bool {
			k.mu.Lock()
			defer k.mu.Unlock()
			return len(k.held) >= 2
		})
		st := s.rx.stream
		if err := eng.Close(); err != nil {
			t.Fatal(err)
		}
		if k.ends != 1 || k.end != ErrClosed {
			t.Fatalf("%d last calls, end %v", k.ends, k.end)
		}
		k.releaseAll()
		if out, held := st.pool.out.Load(), st.held.Load(); out != 0 || held != 0 {
			t.Fatalf("after every release: %d buffers out, %d held", out, held)
		}
	})
}
