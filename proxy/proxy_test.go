package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/socket"
)

// forEachBackend runs f on the io_uring and the epoll backend, each with
// every receive mode: reads by the engine into its receive pool (chunks),
// reads by the engine into buffers of the proxy's own (the fallback before
// Linux 6.0, forced with RecvOwnBuffers), reads by Go's net. io_uring
// missing where it should work is not skipped: the VM runs 6.18.
func forEachBackend(t *testing.T, f func(t *testing.T, cfg Config)) {
	for _, b := range []string{socket.BackendIOURing, socket.BackendEpoll} {
		for _, mode := range []string{RecvEngine, RecvEngine + "-own", RecvNet} {
			t.Run(b+"/recv="+mode, func(t *testing.T) {
				cfg := DefaultConfig()
				cfg.Listen = "127.0.0.1:0"
				cfg.Backend = b
				cfg.Recv, _, cfg.RecvOwnBuffers = strings.Cut(mode, "-")
				f(t, cfg)
			})
		}
	}
}

// dial connects a client to p.
func dial(t testing.TB, p *Proxy) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// randomBytes returns n bytes from a seeded generator.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// writeChunks writes b in chunks of random sizes, so the proxy sees reads
// of every length.
func writeChunks(w io.Writer, b []byte, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 1))
	for len(b) > 0 {
		n := min(len(b), 1+r.IntN(200<<10))
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// hashAll reads r to EOF and returns the SHA-256 and the byte count.
func hashAll(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n, err
}

func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(scaled(limit))
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout after %v waiting for %s", scaled(limit), what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitBackedUp waits until the proxy's one connection has stopped reading
// from the client for want of completed sends to a stalled upstream
// (waitDirectionBackedUp).
func waitBackedUp(t testing.TB, p *Proxy) {
	t.Helper()
	waitDirectionBackedUp(t, p, directionIndexUp)
}

// waitDirectionBackedUp waits until the proxy's one connection has stopped
// reading for direction (directionIndexUp or directionIndexClient) for
// want of completed sends to a peer that does not read: the bytes read
// have not moved for 200 ms with buffers in flight towards that peer —
// all of MaxInflight, or with the receive pool more than half of it (a
// stream parked at its chunk limit resumes at half).
func waitDirectionBackedUp(t testing.TB, p *Proxy, direction int) {
	t.Helper()
	var last uint64
	var since time.Time
	waitFor(t, "the proxy to stop reading with MaxInflight in flight", 10*time.Second, func() bool {
		cs := p.snapshot()
		if len(cs) != 1 {
			return false
		}
		full := int64(p.cfg.slots()) * int64(p.cfg.BufferSize)
		if cs[0].chunked {
			full = full/2 + 1
		}
		d := &cs[0].up
		if direction == directionIndexClient {
			d = &cs[0].down
		}
		read := d.bytes.Load()
		if read != last || d.held.Load() < full {
			last, since = read, time.Now()
			return false
		}
		return time.Since(since) >= 200*time.Millisecond
	})
}

// ends returns the count of connections that ended for reason r.
func ends(p *Proxy, r endReason) uint64 { return p.stats.ends[r].Load() }

// TestTransferBothWays sends large random payloads both directions at
// once through several connections and compares SHA-256 at both ends.
func TestTransferBothWays(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		size := 24 << 20
		if raceEnabled {
			size = 6 << 20
		}
		transferBothWays(t, cfg, 3, size)
	})
}

// transferBothWays starts a proxy with cfg in front of an upstream that
// hashes what arrives and sends its own payload, chosen by the first 8
// bytes the client sends (its seed); conns clients send size random bytes
// each and read as many back, at once; both ends compare SHA-256, and
// every connection must end with EOF. It returns the proxy.
func transferBothWays(t *testing.T, cfg Config, conns, size int) *Proxy {
	t.Helper()
	type result struct {
		sum [32]byte
		n   int64
	}
	upGot := make(chan result, conns)
	cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
		var seed [8]byte
		if _, err := io.ReadFull(c, seed[:]); err != nil {
			t.Error(err)
			return
		}
		s := uint64(seed[0])
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := writeChunks(c, randomBytes(s+100, size), s+100); err != nil {
				t.Errorf("upstream write: %v", err)
			}
			c.CloseWrite()
		}()
		sum, n, err := hashAll(c)
		if err != nil {
			t.Errorf("upstream read: %v", err)
		}
		<-done
		upGot <- result{sum, n}
	})
	p := startProxy(t, cfg)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			s := uint64(i + 1)
			c := dial(t, p)
			payload := randomBytes(s, size)
			werr := make(chan error, 1)
			go func() {
				err := writeChunks(c, append([]byte{byte(s), 0, 0, 0, 0, 0, 0, 0}, payload...), s)
				c.CloseWrite()
				werr <- err
			}()
			sum, n, err := hashAll(c)
			if err != nil {
				t.Errorf("client read: %v", err)
			}
			if err := <-werr; err != nil {
				t.Errorf("client write: %v", err)
			}
			if want := sha256.Sum256(randomBytes(s+100, size)); n != int64(size) || sum != want {
				t.Errorf("conn %d: client got %d bytes, sha256 %x; want %d, %x", i, n, sum[:8], size, want[:8])
			}
		})
	}
	wg.Wait()
	want := map[[32]byte]bool{}
	for i := range conns {
		want[sha256.Sum256(randomBytes(uint64(i+1), size))] = true
	}
	for range conns {
		r := <-upGot
		if r.n != int64(size) || !want[r.sum] {
			t.Errorf("upstream got %d bytes, sha256 %x: not one of the payloads sent", r.n, r.sum[:8])
		}
	}
	waitFor(t, "connections to end with eof", 10*time.Second, func() bool { return ends(p, endEOF) == uint64(conns) })
	return p
}

// TestHalfClose: a FIN from one side reaches the other only after the
// data before it, and the other direction keeps working.
func TestHalfClose(t *testing.T) {
	reply := randomBytes(7, 3<<20)
	request := randomBytes(8, 1<<20)
	t.Run("client first", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, cfg Config) {
			cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
				// Everything up to the client's FIN, then the reply.
				got, err := io.ReadAll(c)
				if err != nil || !bytes.Equal(got, request) {
					t.Errorf("upstream read %d bytes (%v); want the %d-byte request then EOF", len(got), err, len(request))
				}
				if _, err := c.Write(reply); err != nil {
					t.Errorf("upstream reply after FIN: %v", err)
				}
			})
			p := startProxy(t, cfg)
			c := dial(t, p)
			if _, err := c.Write(request); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, reply) {
				t.Fatalf("client read %d bytes (%v); want the %d-byte reply then EOF", len(got), err, len(reply))
			}
			waitFor(t, "the connection to end with eof", 5*time.Second, func() bool { return ends(p, endEOF) == 1 })
		})
	})
	t.Run("upstream first", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, cfg Config) {
			upstreamGot := make(chan []byte, 1)
			cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
				if _, err := c.Write(reply); err != nil {
					t.Errorf("upstream write: %v", err)
				}
				c.CloseWrite()
				got, _ := io.ReadAll(c)
				upstreamGot <- got
			})
			p := startProxy(t, cfg)
			c := dial(t, p)
			got, err := io.ReadAll(c) // until the upstream's FIN
			if err != nil || !bytes.Equal(got, reply) {
				t.Fatalf("client read %d bytes (%v); want %d then EOF", len(got), err, len(reply))
			}
			// The client still sends after the upstream's FIN.
			if _, err := c.Write(request); err != nil {
				t.Fatal(err)
			}
			c.CloseWrite()
			select {
			case got := <-upstreamGot:
				if !bytes.Equal(got, request) {
					t.Fatalf("upstream read %d bytes after its FIN; want the %d-byte request", len(got), len(request))
				}
			case <-time.After(scaled(10 * time.Second)):
				t.Fatal("upstream never got the request and EOF")
			}
		})
	})
}

// TestResetPropagation: an RST from either side makes the proxy reset the
// other side.
func TestResetPropagation(t *testing.T) {
	t.Run("client resets", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, cfg Config) {
			upErr := make(chan error, 1)
			cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
				_, err := io.Copy(io.Discard, c)
				upErr <- err
			})
			p := startProxy(t, cfg)
			c := dial(t, p)
			if _, err := c.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the bytes to reach the proxy", 5*time.Second, func() bool { return p.stats.snapshotBytes(0) == 5 })
			c.SetLinger(0)
			c.Close()
			select {
			case err := <-upErr:
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("upstream read ended with %v; want ECONNRESET", err)
				}
			case <-time.After(scaled(5 * time.Second)):
				t.Fatal("upstream still connected after the client's RST")
			}
			waitFor(t, "the connection to end with reset", 5*time.Second, func() bool { return ends(p, endReset) == 1 })
		})
	})
	t.Run("upstream resets", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, cfg Config) {
			cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
				buf := make([]byte, 5)
				io.ReadFull(c, buf)
				c.SetLinger(0)
			})
			p := startProxy(t, cfg)
			c := dial(t, p)
			if _, err := c.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(scaled(5 * time.Second)))
			_, err := io.Copy(io.Discard, c)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("client read ended with %v; want ECONNRESET", err)
			}
			waitFor(t, "the connection to end with reset", 5*time.Second, func() bool { return ends(p, endReset) == 1 })
		})
	})
}

// TestSendTimeout: a peer that stops reading is dropped (RST) once a send
// has waited SendTimeout, and so are its sends in flight.
func TestSendTimeout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		cfg.SendTimeout = 300 * time.Millisecond
		cfg.IdleTimeout = 0
		stall := make(chan struct{})
		defer close(stall)
		upErr := make(chan error, 1)
		cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
			c.SetReadBuffer(64 << 10)
			<-stall // never reads
			_, err := io.Copy(io.Discard, c)
			upErr <- err
		})
		p := startProxy(t, cfg)
		c := dial(t, p)
		start := time.Now()
		werr := make(chan error, 1)
		go func() {
			_, err := c.Write(make([]byte, 256<<20))
			werr <- err
		}()
		select {
		case err := <-werr:
			if err == nil {
				t.Fatal("a 256 MiB write to a stalled upstream succeeded")
			}
		case <-time.After(scaled(10 * time.Second)):
			t.Fatal("the client's write still blocks 10 s after the upstream stopped reading")
		}
		took := time.Since(start)
		waitFor(t, "the connection to end with send_timeout", 5*time.Second, func() bool { return ends(p, endSendTimeout) == 1 })
		t.Logf("dropped after %v", took.Round(time.Millisecond))
		if took < cfg.SendTimeout {
			t.Fatalf("dropped after %v, before the send timeout %v", took, cfg.SendTimeout)
		}
	})
}

// TestSendTimeoutAfterProgress: an upstream that reads for a while and
// then stops is dropped too (the send that times out is not the first one
// that had to wait).
func TestSendTimeoutAfterProgress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		cfg.SendTimeout = 300 * time.Millisecond
		cfg.IdleTimeout = 0
		stall := make(chan struct{})
		defer close(stall)
		cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
			c.SetReadBuffer(64 << 10)
			io.CopyN(io.Discard, c, 64<<20)
			<-stall
			io.Copy(io.Discard, c)
		})
		p := startProxy(t, cfg)
		c := dial(t, p)
		werr := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := c.Write(make([]byte, 256<<20))
			werr <- err
		}()
		select {
		case <-werr:
			t.Logf("dropped after %v", time.Since(start))
		case <-time.After(5 * time.Second):
			t.Fatal("still connected 5 s after the upstream stopped reading")
		}
	})
}

// TestIdleTimeout closes a connection on which nothing moves.
func TestIdleTimeout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		cfg.IdleTimeout = 200 * time.Millisecond
		cfg.Upstream = echoServer(t, func(c *net.TCPConn) { io.Copy(c, c) })
		p := startProxy(t, cfg)
		c := dial(t, p)
		// Traffic keeps it open past the timeout...
		buf := make([]byte, 4)
		for i := range 6 {
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatal(err)
			}
			if i < 5 {
				time.Sleep(cfg.IdleTimeout / 2)
			}
		}
		// ...silence closes it.
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(scaled(5 * time.Second)))
		if n, err := c.Read(buf); err != io.EOF {
			t.Fatalf("Read after silence: %d, %v; want EOF", n, err)
		}
		if took := time.Since(start); took < cfg.IdleTimeout {
			t.Fatalf("closed after %v of silence, before the idle timeout %v", took, cfg.IdleTimeout)
		}
		waitFor(t, "the connection to end with idle_timeout", 5*time.Second, func() bool { return ends(p, endIdle) == 1 })
	})
}

// TestIdleDefaultKeeps: with the defaults the proxy has no idle timeout
// (issue 14: a pooled or pub/sub redis client idle for 32 s got EOF
// through the proxy and +PONG directly), so a connection silent for
// longer than the sweeper would take to notice is still served.
// TestIdleTimeout shows the mechanism when it is set.
func TestIdleDefaultKeeps(t *testing.T) {
	if d := DefaultConfig().IdleTimeout; d != 0 {
		t.Fatalf("DefaultConfig().IdleTimeout = %v; want 0 (off)", d)
	}
	forEachBackend(t, func(t *testing.T, cfg Config) {
		cfg.Upstream = echoServer(t, func(c *net.TCPConn) { io.Copy(c, c) })
		p := startProxy(t, cfg)
		c := dial(t, p)
		buf := make([]byte, 4)
		for i := range 2 {
			if i > 0 {
				time.Sleep(2 * time.Second)
			}
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			c.SetReadDeadline(time.Now().Add(scaled(5 * time.Second)))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("read %d after silence: %q, %v", i, buf, err)
			}
		}
		if n := ends(p, endIdle); n != 0 {
			t.Fatalf("%d connections ended with idle_timeout; want none", n)
		}
	})
}

// TestGoroutinesPerConnection: a live connection costs the proxy no
// goroutine in receive mode engine on io_uring with the receive pool (the
// one that dialed it has returned; another closes it at the end), one
// with buffers of its own (that one, which will close it), and two in
// receive mode net (one per direction).
func TestGoroutinesPerConnection(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		const conns = 50
		hold := make(chan struct{})
		cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
			buf := make([]byte, 4)
			io.ReadFull(c, buf)
			c.Write(buf)
			<-hold // one goroutine per connection on the upstream's side
		})
		defer close(hold)
		p := startProxy(t, cfg)
		before := runtime.NumGoroutine()
		for range conns {
			c := dial(t, p)
			c.Write([]byte("ping"))
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatal(err)
			}
		}
		per := 2
		switch {
		case p.RecvMode() == RecvNet:
		case p.Backend() == socket.BackendIOURing && p.RecvPool():
			per = 0 // the connection's goroutine returned once it started the streams
		case p.Backend() == socket.BackendIOURing:
			per = 1
		case p.RecvPool():
			// A stream receive on the epoll backend is a reader
			// goroutine of the engine's per socket.
			per = 2
		default:
			// The epoll backend's receives wait on goroutines of the
			// engine's (one per socket with a receive out): 3.
			per = 3
		}
		got := runtime.NumGoroutine() - before - conns // less the upstream's
		t.Logf("%d goroutines for %d connections (recv %s, pool %v)", got, conns, p.RecvMode(), p.RecvPool())
		if got > per*conns+2 {
			t.Fatalf("%d goroutines for %d connections; want at most %d each", got, conns, per)
		}
	})
}

// TestShutdownDrains: Shutdown stops reading but delivers every byte the
// proxy has read before it closes, with FIN.
func TestShutdownDrains(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		cfg.MaxInflight = 1 << 20
		cfg.BufferSize = 64 << 10
		release := make(chan struct{})
		var once sync.Once
		unblock := func() { once.Do(func() { close(release) }) }
		defer unblock() // before the upstream's cleanup waits for it
		upGot := make(chan int64, 1)
		cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
			c.SetReadBuffer(64 << 10)
			<-release
			n, err := io.Copy(io.Discard, c)
			if err != nil {
				t.Errorf("upstream read: %v (want a clean EOF)", err)
			}
			upGot <- n
		})
		p, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- p.Serve() }()
		c := dial(t, p)
		go c.Write(make([]byte, 64<<20)) // fails when the proxy closes
		// Wait until the proxy's sends to the stalled upstream are
		// backed up: the pump stops reading at MaxInflight.
		waitBackedUp(t, p)
		read := p.stats.snapshotBytes(0)
		shut := make(chan error, 1)
		go func() { shut <- p.Shutdown(context.Background()) }()
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned (%v) before its sends could drain", err)
		case <-time.After(200 * time.Millisecond):
		}
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Fatalf("Serve: %v; want ErrClosed", err)
		}
		if _, err := net.Dial("tcp", p.Addr().String()); err == nil {
			t.Fatal("the proxy still accepts during Shutdown")
		}
		unblock()
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if n := <-upGot; n != int64(read) {
			t.Fatalf("upstream got %d bytes; the proxy had read %d", n, read)
		}
		if got := ends(p, endShutdown); got != 1 {
			t.Fatalf("%d connections ended by shutdown; want 1", got)
		}
	})
}

// TestShutdownDeadline: when the context ends first, Shutdown closes what
// is left at once and says so.
func TestShutdownDeadline(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		stall := make(chan struct{})
		cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
			c.SetReadBuffer(64 << 10)
			<-stall
		})
		defer close(stall)
		p, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- p.Serve() }()
		c := dial(t, p)
		go c.Write(make([]byte, 64<<20))
		waitBackedUp(t, p)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v; want DeadlineExceeded", err)
		}
		<-served
		if err := p.Close(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Close after Shutdown: %v; want ErrClosed", err)
		}
	})
}

// TestShutdownSendTimeout: while Shutdown drains, a send to a peer that
// has stopped reading is still bounded by SendTimeout (in receive mode
// engine by the sweeper, which must outlive the listener): the
// connection is reset for send_timeout and Shutdown returns long before
// its context ends.
func TestShutdownSendTimeout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		cfg.SendTimeout = time.Second
		cfg.IdleTimeout = 0
		stall := make(chan struct{})
		cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
			c.SetReadBuffer(64 << 10)
			<-stall
		})
		defer close(stall)
		p, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- p.Serve() }()
		c := dial(t, p)
		go c.Write(make([]byte, 64<<20))
		waitBackedUp(t, p)
		ctx, cancel := context.WithTimeout(context.Background(), scaled(20*time.Second))
		defer cancel()
		start := time.Now()
		if err := p.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v after %v; want nil within about SendTimeout %v", err, time.Since(start).Round(time.Millisecond), cfg.SendTimeout)
		}
		took := time.Since(start)
		<-served
		t.Logf("Shutdown returned after %v", took.Round(time.Millisecond))
		if took > scaled(5*cfg.SendTimeout) {
			t.Fatalf("Shutdown took %v with SendTimeout %v", took, cfg.SendTimeout)
		}
		if got := ends(p, endSendTimeout); got != 1 {
			t.Fatalf("%d connections ended by send_timeout (%d by shutdown); want 1", got, ends(p, endShutdown))
		}
	})
}

// TestDialError: a client of an unreachable upstream is reset at once.
func TestDialError(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Upstream = ln.Addr().String()
	ln.Close() // nothing listens there now
	p := startProxy(t, cfg)
	// The proxy may reset the client before its connect returns.
	c, err := net.Dial("tcp", p.Addr().String())
	if err == nil {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(scaled(5 * time.Second)))
		_, err = c.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client: %v; want ECONNRESET", err)
	}
	waitFor(t, "a dial_error end", 5*time.Second, func() bool { return ends(p, endDialError) == 1 })
}

// TestCloseReleases: after Close every goroutine (TestMain's goleak) and
// every descriptor is gone, with connections busy in both directions.
func TestCloseReleases(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		cfg.Upstream = echoServer(t, func(c *net.TCPConn) { io.Copy(c, c) })
		before := countFDs(t)
		p, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- p.Serve() }()
		var cs []net.Conn
		for range 8 {
			c, err := net.Dial("tcp", p.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
			go c.Write(make([]byte, 4<<20)) // echoed, never read: both ways back up
		}
		waitFor(t, "8 connections", 5*time.Second, func() bool { return len(p.snapshot()) == 8 })
		time.Sleep(50 * time.Millisecond)
		if err := p.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Fatalf("Serve: %v", err)
		}
		for _, c := range cs {
			c.Close()
		}
		waitFor(t, "descriptors to return", 5*time.Second, func() bool { return countFDs(t) <= before })
	})
}

// countFDs counts the process's descriptors, except pipes: Go's splice
// (io.Copy between TCP connections in the test servers) keeps a pool of
// them that only the garbage collector closes.
func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && !strings.HasPrefix(l, "pipe:") {
			n++
		}
	}
	return n
}
