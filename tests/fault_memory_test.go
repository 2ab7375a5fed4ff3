//go:build linux

package tests

import (
	"math/rand/v2"
	"net"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// Memory pressure: GOGC=1 (debug.SetGCPercent(1)), the collector forced in
// a loop, freed memory scribbled over, while sends of random shapes —
// BufferLists of up to 1500 segments among them, past IOV_MAX — are made
// from memory the caller drops at once: fresh Args, fresh buffers, fresh
// lists, reachable only through the send. Chains resend from Completed
// with fresh memory too. Plain, batching (coalesced SENDMSG) and
// zero-copy (SEND_ZC, pinned until the notification) sockets. Every peer
// receives exactly the bytes sent, in order.
func TestFaultMemoryPressure(t *testing.T) {
	old := debug.SetGCPercent(1)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	sends := 300
	if testing.Short() {
		sends = 60
	}
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		zc := newEngineCfg(t, socket.EngineConfig{Backend: eng.Backend(), ZeroCopy: socket.ZeroCopyOn, ZeroCopyThreshold: 2048})
		stop := make(chan struct{})
		var bg sync.WaitGroup
		var gcs atomic.Int64
		bg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				runtime.GC()
				gcs.Add(1)
				junk := make([]byte, 256<<10)
				for i := range junk {
					junk[i] = 0xEE
				}
				time.Sleep(100 * time.Microsecond)
			}
		})
		defer func() {
			close(stop)
			bg.Wait()
		}()
		type conn struct {
			name   string
			s      *socket.Socket
			r      *peerReader
			close  func() error
			mu     sync.Mutex
			want   []byte // the bytes in the order they were accepted
			chains sync.WaitGroup
		}
		var conns []*conn
		add := func(name string, s *socket.Socket, r *peerReader, close func() error) {
			conns = append(conns, &conn{name: name, s: s, r: r, close: close})
		}
		for _, network := range []string{"tcp", "unix"} {
			s, peer := streamPair(t, eng, network, pairConfig{sndbuf: 16 << 10, rcvbuf: 16 << 10})
			add(network, s, startPeerReader(t, peer, peerOpts{chunk: 8 << 10, slow: 20 * time.Microsecond}), func() error { return closeSocket(s) })
		}
		s, r, closeB := streamPairOpts(t, eng, "tcp", true, nil)
		add("tcp-batching", s, r, closeB)
		s, peer := streamPair(t, zc, "tcp", pairConfig{sndbuf: 64 << 10})
		add("tcp-zerocopy", s, startPeerReader(t, peer, peerOpts{chunk: 8 << 10, slow: 20 * time.Microsecond}), func() error { return closeSocket(s) })

		seed := newRand(t).Uint64()
		var failures atomic.Int64
		var wg sync.WaitGroup
		for ci, c := range conns {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed, uint64(ci)))
				// fresh copies a shape into memory nobody else references.
				fresh := func() (shape, int) {
					var src shape
					if rng.IntN(20) == 0 {
						src = randomShape(rng, 64<<10, 1500)
					} else {
						src = randomShape(rng, 64<<10, 24)
					}
					var sh shape
					if src.bufs == nil {
						sh.buf = append(make([]byte, 0, len(src.buf)), src.buf...)
					} else {
						sh.bufs = make([][]byte, len(src.bufs))
						for k, b := range src.bufs {
							if b != nil {
								sh.bufs[k] = append(make([]byte, 0, len(b)), b...)
							}
						}
					}
					return sh, src.total()
				}
				// send starts one send of fresh memory; a chain resends from
				// Completed, with fresh memory, until left runs out.
				var send func(left int)
				send = func(left int) {
					c.mu.Lock() // guards rng and want
					sh, total := fresh()
					e := new(sendop.Args)
					sh.apply(e)
					check := func(e *sendop.Args) bool {
						if e.SocketError() != sendop.Success || e.BytesTransferred() != total {
							failures.Add(1)
							t.Errorf("%s: send: %v, %d of %d bytes", c.name, e.Err(), e.BytesTransferred(), total)
							return false
						}
						return true
					}
					e.Completed = func(e *sendop.Args) {
						if check(e) && left > 0 {
							send(left - 1)
							return
						}
						c.chains.Done()
					}
					sh.writePrefix(appender{&c.want}, -1)
					pending, err := c.s.SendAsync(e)
					c.mu.Unlock()
					switch {
					case err != nil:
						t.Errorf("%s: SendAsync: %v", c.name, err)
						c.chains.Done()
					case !pending:
						if check(e) && left > 0 {
							send(left - 1) // not recursion through the engine
							return
						}
						c.chains.Done()
					}
				}
				for i := 0; i < sends; i += 5 {
					c.chains.Add(1)
					send(4) // a chain of 5 sends
					if i%20 == 0 {
						runtime.GC()
					}
				}
			})
		}
		wg.Wait()
		for _, c := range conns {
			done := make(chan struct{})
			go func() { c.chains.Wait(); close(done) }()
			waitChan(t, done, longWait(), c.name+": the chains to finish")
			if err := c.close(); err != nil {
				t.Fatalf("%s: Close: %v", c.name, err)
			}
			got, err := c.r.wait(t)
			if err != nil || len(got) != len(c.want) || sha(got) != sha(c.want) {
				t.Fatalf("%s: peer read %d bytes (%v), want %d; first difference at %d", c.name, len(got), err, len(c.want), firstDiff(got, c.want))
			}
		}
		if failures.Load() > 0 {
			t.Fatalf("%d sends failed", failures.Load())
		}
		t.Logf("%d connections × %d sends; %d forced collections; %d zero-copy wires", len(conns), sends, gcs.Load(), zc.ZeroCopySends())
		if zc.Backend() == socket.BackendIOURing && zc.ZeroCopySends() == 0 {
			t.Error("the zero-copy engine sent nothing with SEND_ZC")
		}
	})
}

// appender is an io.Writer appending to a slice.
type appender struct{ b *[]byte }

func (a appender) Write(p []byte) (int, error) {
	*a.b = append(*a.b, p...)
	return len(p), nil
}

// Closed sockets are garbage: nothing the engine keeps — its tables, a
// runtime.Pinner holding a coalescing wire's iovecs and msghdr — holds a
// Socket once it is closed. Each socket here coalesces (sends queue behind
// a head the stalled peer holds up) before it is closed; then every
// reference is dropped and the collector must reclaim every Socket. A
// leak here grows the heap by a Socket and its 16 KiB iovec array per
// connection, for good.
func TestFaultClosedSocketsCollected(t *testing.T) {
	const n = 16
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		var collected atomic.Int32
		for i := range n {
			func() {
				s, peer := unownedPair(t, eng, []string{"tcp", "unix"}[i%2])
				gate := make(chan struct{})
				r := startPeerReader(t, peer, peerOpts{gate: gate})
				shapes := randomShapes(t, 40, 16<<10, 4, true)
				tr := newTracker(t, len(shapes))
				queueAll(t, s, shapes, tr, nil)
				close(gate)
				waitTrackersAfter(t, []func(){closing(t, s, nil)}, tr)
				r.wait(t)
				runtime.AddCleanup(s, func(*atomic.Int32) { collected.Add(1) }, &collected)
			}()
		}
		deadline := time.Now().Add(scaled(5 * time.Second))
		for collected.Load() < n && time.Now().Before(deadline) {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
		if got := collected.Load(); got < n {
			t.Fatalf("BUG: %d of %d closed sockets were never collected (still pinned or referenced by the engine)", n-int(got), n)
		}
	})
}

// unownedPair is streamPair (small buffers) without a cleanup that holds
// the Socket: the test closes it and drops it.
func unownedPair(t *testing.T, eng *socket.Engine, network string) (*socket.Socket, net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(shortTempDir(t), "u")
	}
	lc := net.ListenConfig{Control: controlBufs(t, small)}
	l, err := lc.Listen(t.Context(), network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	s, err := socket.Dial(network, l.Addr().String(), socket.WithEngine(eng))
	if err != nil {
		l.Close()
		<-accepted
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		s.Close()
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { peer.Close() })
	setBufs(t, s.FD(), small, true)
	return s, peer
}
