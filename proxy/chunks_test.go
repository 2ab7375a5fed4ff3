package proxy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/socket"
)

// Receive mode engine with the engine's receive pool (chunks.go), and its
// fallback. The suite's other tests run every mode (forEachBackend); these
// are about what the pool changes.

// forEachEngine runs f on both backends in receive mode engine, with the
// receive pool (own false) and with buffers of the proxy's own.
func forEachEngine(t *testing.T, f func(t *testing.T, cfg Config)) {
	for _, b := range []string{socket.BackendIOURing, socket.BackendEpoll} {
		for _, own := range []bool{false, true} {
			name := b + "/pool"
			if own {
				name = b + "/own-buffers"
			}
			t.Run(name, func(t *testing.T) {
				cfg := DefaultConfig()
				cfg.Listen = "127.0.0.1:0"
				cfg.Backend = b
				cfg.Recv = RecvEngine
				cfg.RecvOwnBuffers = own
				f(t, cfg)
			})
		}
	}
}

// heldBuffers is the proxy's gauge of buffers held by its connections.
func heldBuffers(p *Proxy) int64 {
	var n int64
	for _, c := range p.snapshot() {
		n += int64(c.up.holding.Load() + c.down.holding.Load())
	}
	return n
}

// TestIdleConnectionsHoldNoBuffer: 200 proxied connections, each after one
// request and its reply, then idle: with the receive pool they hold no
// buffer — none of the pool's chunks is out and the proxy holds none of
// its own — and, on io_uring, no goroutine. With buffers of its own
// (-recv-own-buffers, the fallback) each direction keeps one posted.
func TestIdleConnectionsHoldNoBuffer(t *testing.T) {
	forEachEngine(t, func(t *testing.T, cfg Config) {
		const conns = 200
		cfg.MetricsAddr = "127.0.0.1:0"
		cfg.Upstream = echoServer(t, func(c *net.TCPConn) { io.Copy(c, c) })
		p := startProxy(t, cfg)
		if p.RecvPool() == cfg.RecvOwnBuffers {
			t.Fatalf("RecvPool() = %v with RecvOwnBuffers %v", p.RecvPool(), cfg.RecvOwnBuffers)
		}
		runtime.GC()
		before := runtime.NumGoroutine()
		buf := make([]byte, 5)
		for range conns {
			c := dial(t, p)
			if _, err := c.Write([]byte("PING\n")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "PING\n" {
				t.Fatalf("echo: %q, %v", buf, err)
			}
		}
		want := int64(0)
		if cfg.RecvOwnBuffers {
			want = 2 * conns
		}
		// The last sends' completions may still be on their way.
		waitFor(t, fmt.Sprintf("%d buffers held by %d idle connections, none in sends", want, conns), 5*time.Second, func() bool {
			var inSends int64
			for _, c := range p.snapshot() {
				inSends += c.up.held.Load() + c.down.held.Load()
			}
			return len(p.snapshot()) == conns && heldBuffers(p) == want && inSends == 0
		})
		body := get(t, p.MetricsURL())
		if re := fmt.Sprintf(`(?m)^uringsend_proxy_held_buffers %d$`, want); !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("metrics do not match %s", re)
		}
		if !regexp.MustCompile(`(?m)^uringsend_proxy_inflight_buffer_bytes 0$`).MatchString(body) {
			t.Errorf("metrics: inflight buffer bytes not 0 with every connection idle")
		}
		// Less the upstream's goroutine per connection.
		extra := runtime.NumGoroutine() - before - conns
		t.Logf("%d idle connections: %d buffers held, %d goroutines of the proxy's", conns, heldBuffers(p), extra)
		if p.RecvPool() && p.Backend() == socket.BackendIOURing && extra > 10 {
			t.Errorf("%d goroutines for %d idle connections; want none (a few of the test's and the runtime's)", extra, conns)
		}
	})
}

// TestChunksExactBytesSmallPool moves random payloads both ways through
// several connections at once over a receive pool far smaller than what
// they would hold (64 buffers of 4 KiB for 8 directions of 8 buffers
// each): streams park on the empty pool (ENOBUFS) and resume as sends
// complete; every byte arrives once, in order (SHA-256 at both ends).
func TestChunksExactBytesSmallPool(t *testing.T) {
	for _, b := range []string{socket.BackendIOURing, socket.BackendEpoll} {
		t.Run(b, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Listen, cfg.Backend, cfg.Recv = "127.0.0.1:0", b, RecvEngine
			cfg.BufferSize, cfg.MaxInflight, cfg.RecvPool = 4<<10, 32<<10, 64
			size := 8 << 20
			if raceEnabled {
				size = 2 << 20
			}
			if p := transferBothWays(t, cfg, 4, size); !p.RecvPool() {
				t.Fatal("the proxy does not use the receive pool")
			}
		})
	}
}

// TestChunksCloseWhileHeld: connections whose sends hold buffers (their
// upstream stopped reading) end — one reset by the send timeout, one by
// Close — and every buffer goes back: their pumps hold nothing, the pool
// serves the next connection with exact bytes, and Close leaves no
// goroutine (TestMain) or descriptor behind.
func TestChunksCloseWhileHeld(t *testing.T) {
	forEachEngine(t, func(t *testing.T, cfg Config) {
		stall := make(chan struct{})
		var once sync.Once
		unstall := func() { once.Do(func() { close(stall) }) }
		defer unstall()
		cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
			var b [1]byte
			if _, err := io.ReadFull(c, b[:]); err != nil {
				return
			}
			if b[0] == 's' { // stall: read nothing more
				c.SetReadBuffer(64 << 10)
				<-stall
				return
			}
			io.Copy(c, c)
		})
		stalledClient := func(p *Proxy) *net.TCPConn {
			c := dial(t, p)
			go func() {
				c.Write([]byte{'s'})
				c.Write(make([]byte, 64<<20)) // fails when the proxy resets it
			}()
			return c
		}
		fds := countFDs(t)

		// The send timeout resets a connection holding buffers.
		cfg.SendTimeout = 300 * time.Millisecond
		p := startProxy(t, cfg)
		stalledClient(p)
		waitFor(t, "a connection holding buffers", 10*time.Second, func() bool { return heldBuffers(p) > 0 })
		stalled := p.snapshot()[0]
		waitFor(t, "the connection to end with send_timeout", 10*time.Second, func() bool { return ends(p, endSendTimeout) == 1 })
		if n, b := stalled.up.holding.Load(), stalled.up.held.Load(); n != 0 || b != 0 {
			t.Fatalf("after the reset the connection still holds %d buffers (%d bytes)", n, b)
		}
		// The pool is whole: a new connection moves exact bytes.
		c := dial(t, p)
		data := append([]byte{'e'}, randomBytes(9, 4<<20)...)
		go func() {
			writeChunks(c, data, 9)
			c.CloseWrite()
		}()
		if sum, n, err := hashAll(c); err != nil || sum != sha256.Sum256(data[1:]) { // the upstream keeps the 'e'
			t.Fatalf("after the reset, echo: %d of %d bytes (%v), sha256 differs", n, len(data)-1, err)
		}
		p.Close()

		// Close with a connection backed up.
		cfg.SendTimeout = 0
		p, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- p.Serve() }()
		stalledClient(p)
		waitBackedUp(t, p)
		held := p.snapshot()[0]
		t.Logf("backed up: %d buffers held", held.up.holding.Load())
		if err := p.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Fatalf("Serve: %v", err)
		}
		if n := held.up.holding.Load() + held.down.holding.Load(); n != 0 {
			t.Fatalf("after Close the connection holds %d buffers", n)
		}
		unstall()
		// The test's own clients are still open: 3 of them.
		waitFor(t, "descriptors to return", 5*time.Second, func() bool { return countFDs(t) <= fds+3 })
	})
}

// TestChunksFallback: on a kernel without multishot receive (the probe
// made to say so) the proxy reads into buffers of its own and works as
// before: exact bytes both ways, half-close.
func TestChunksFallback(t *testing.T) {
	probe := probeChunks
	probeChunks = func(*socket.Engine) error {
		return fmt.Errorf("receive pool: %w", ring.ErrNotSupported)
	}
	defer func() { probeChunks = probe }()
	for _, b := range []string{socket.BackendIOURing, socket.BackendEpoll} {
		t.Run(b, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Listen, cfg.Backend, cfg.Recv = "127.0.0.1:0", b, RecvEngine
			reply := randomBytes(5, 3<<20)
			cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
				sum, n, err := hashAll(c)
				if want := sha256.Sum256(randomBytes(6, 5<<20)); err != nil || sum != want {
					t.Errorf("upstream got %d bytes (%v), sha256 differs", n, err)
				}
				c.Write(reply)
			})
			p := startProxy(t, cfg)
			if p.RecvPool() || p.RecvMode() != RecvEngine {
				t.Fatalf("RecvPool() %v, RecvMode() %s; want false, engine", p.RecvPool(), p.RecvMode())
			}
			c := dial(t, p)
			if err := writeChunks(c, randomBytes(6, 5<<20), 6); err != nil {
				t.Fatal(err)
			}
			c.CloseWrite()
			sum, n, err := hashAll(c)
			if err != nil || sum != sha256.Sum256(reply) {
				t.Fatalf("client got %d bytes (%v), sha256 differs", n, err)
			}
			waitFor(t, "the connection to end with eof", 5*time.Second, func() bool { return ends(p, endEOF) == 1 })
		})
	}
}

// TestChunksNoAllocations: in steady state a chunk costs the proxy no heap
// allocation (its send's Args come from a pool), measured over the whole
// process while 64 MiB go through one connection and come back.
func TestChunksNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, b := range []string{socket.BackendIOURing, socket.BackendEpoll} {
		t.Run(b, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Listen, cfg.Backend, cfg.Recv = "127.0.0.1:0", b, RecvEngine
			cfg.BufferSize = 16 << 10
			cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
				buf := make([]byte, 256<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
			p := startProxy(t, cfg)
			c := dial(t, p)
			out := make([]byte, 256<<10)
			in := make([]byte, 256<<10)
			round := func(total int) {
				done := make(chan struct{})
				go func() {
					defer close(done)
					for got := 0; got < total; {
						n, err := c.Read(in)
						if err != nil {
							t.Error(err)
							return
						}
						got += n
					}
				}()
				for sent := 0; sent < total; sent += len(out) {
					if _, err := c.Write(out); err != nil {
						t.Fatal(err)
					}
				}
				<-done
			}
			round(64 << 20) // warm: pools, stacks, the engine's queues
			conn := p.snapshot()[0]
			completed := func() uint64 {
				// The peer may have read the last bytes before their
				// sends' completions were counted.
				var last uint64
				waitFor(t, "the last completions", 5*time.Second, func() bool {
					n := conn.up.chunk.completed.Load() + conn.down.chunk.completed.Load()
					if n == last && conn.up.chunkQuiet() && conn.down.chunkQuiet() {
						return true
					}
					last = n
					time.Sleep(10 * time.Millisecond)
					return false
				})
				return last
			}
			// The fewest of 3 rounds: a round may still make a chunkSend
			// or two more, when more chunks than ever before are in
			// flight at once.
			best := -1.0
			for range 3 {
				chunks0 := completed()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				round(64 << 20)
				runtime.ReadMemStats(&m1)
				chunks := completed() - chunks0
				if min := uint64(2 * (64 << 20) / cfg.BufferSize); chunks < min {
					t.Fatalf("%d chunks for 2 × 64 MiB in buffers of %v; want at least %d", chunks, cfg.BufferSize, min)
				}
				per := float64(m1.Mallocs-m0.Mallocs) / float64(chunks)
				t.Logf("%d allocations over %d chunks: %.4f per chunk", m1.Mallocs-m0.Mallocs, chunks, per)
				if best < 0 || per < best {
					best = per
				}
			}
			// A round's own few (its reader goroutine) are 0.0005 a chunk.
			if best > 0.002 {
				t.Errorf("%.4f allocations per chunk; want 0", best)
			}
		})
	}
}

// TestChunksShutdownDropsLateBytes: after Shutdown stops reading, bytes the
// kernel still hands over are dropped like those left unread, and not
// counted read: the upstream gets exactly what the proxy had read.
// (TestShutdownDrains covers it with a stalled upstream; here the stream
// is still live when Shutdown comes.)
func TestChunksShutdownDropsLateBytes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, cfg Config) {
		upGot := make(chan int64, 1)
		cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
			n, _ := io.Copy(io.Discard, c)
			upGot <- n
		})
		p := startProxy(t, cfg)
		c := dial(t, p)
		go func() {
			buf := make([]byte, 64<<10)
			for {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
		waitFor(t, "bytes through", 5*time.Second, func() bool { return p.stats.snapshotBytes(directionIndexUp) > 1<<20 })
		if err := p.Shutdown(t.Context()); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		read := p.stats.snapshotBytes(directionIndexUp)
		select {
		case n := <-upGot:
			if n != int64(read) {
				t.Fatalf("upstream got %d bytes; the proxy counted %d read", n, read)
			}
		case <-time.After(scaled(10 * time.Second)):
			t.Fatal("the upstream never saw the end")
		}
		if got := ends(p, endShutdown); got != 1 {
			t.Fatalf("%d connections ended by shutdown; want 1", got)
		}
	})
}

// TestStatsLint: the proxy's metrics pass Prometheus' linter.
func TestStatsLint(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen, cfg.Upstream = "127.0.0.1:0", "127.0.0.1:1"
	p := startProxy(t, cfg)
	problems, err := testutil.CollectAndLint(p.stats)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("%s: %s", pr.Metric, pr.Text)
	}
}
