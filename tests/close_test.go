//go:build linux

package tests

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

func TestCloseIdempotent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		s, peer := tcpPair(t, eng, pairConfig{})
		r := startReader(t, peer, readOpts{})
		sendOne(t, s, shape{buf: []byte("before close")})
		if err := closeSocket(s); err != nil {
			t.Fatalf("first Close: %v", err)
		}
		for range 3 {
			if err := closeSocket(s); !errors.Is(err, socket.ErrClosed) {
				t.Fatalf("another Close: %v, want ErrClosed", err)
			}
		}
		w := newWatched(t)
		w.SetBuffer([]byte("after close"))
		if pending, err := sendAsync(s, &w.Args); !errors.Is(err, socket.ErrClosed) || pending {
			t.Fatalf("SendAsync after Close = %v, %v; want false, ErrClosed", pending, err)
		}
		w.noneRaised(t) // s's Close has returned: nothing of s is raised any more
		if n, _ := r.wait(t); n != int64(len("before close")) {
			t.Fatalf("peer received %d bytes", n)
		}
	})
}

// Concurrent Closes: exactly one returns nil.
func TestCloseConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		s, peer := tcpPair(t, eng, small)
		startReader(t, peer, readOpts{gated: true})
		tr := newTracker(t, 50)
		args := make([]sendop.Args, 50)
		for i := range args {
			args[i].SetBuffer(pool()[:32<<10])
			args[i].Completed = func(*sendop.Args) { tr.completed(i) }
			if pending, err := sendAsync(s, &args[i]); err != nil {
				t.Fatal(err)
			} else if !pending {
				tr.sync(i)
			}
		}
		var nils atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				switch err := closeSocket(s); {
				case err == nil:
					nils.Add(1)
				case !errors.Is(err, socket.ErrClosed):
					t.Errorf("Close: %v", err)
				}
			})
		}
		wg.Wait()
		if nils.Load() != 1 {
			t.Fatalf("%d concurrent Closes returned nil, want 1", nils.Load())
		}
		tr.wait() // every Close has returned: no Completed of s can follow
	})
}

// Close from inside Completed works: the handler's Close returns, and
// every send completes exactly once.
func TestCloseFromCompleted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		rng := newRand(t)
		s, peer := tcpPair(t, eng, small)
		r := startReader(t, peer, readOpts{gated: true})
		const n = 100
		tr := newTracker(t, n)
		args := make([]sendop.Args, n)
		shapes := make([]shape, n)
		closed := make(chan error, 1)
		var once sync.Once
		for i := range args {
			shapes[i] = shape{buf: poolSlice(rng, 16<<10+rng.IntN(16<<10))}
			shapes[i].apply(&args[i])
			args[i].UserToken = i
			args[i].Completed = func(e *sendop.Args) {
				once.Do(func() { closed <- closeSocket(s) })
				tr.completed(e.UserToken.(int))
			}
			pending, err := sendAsync(s, &args[i])
			if err != nil {
				t.Fatal(err)
			}
			if !pending {
				tr.sync(i)
			}
		}
		r.start()
		if err := waitChan(t, closed, closeWait(), "Close called from Completed to return (deadlock?)"); err != nil {
			t.Fatalf("Close from Completed: %v", err)
		}
		// The handler's Close returned at once; a second Close returns
		// ErrClosed once the first has finished, every Completed returned.
		tr.wait(closing(t, s, socket.ErrClosed))
		want, byErr := checkPrefixes(t, args, shapes, sendop.OperationAborted)
		t.Logf("results: %v", byErr)
		checkReceived(t, r, want)
	})
}

// engineLoad puts sends on many sockets of eng, stalled behind peers that
// do not read. It returns the sockets' trackers, args, shapes and readers.
type loadedSocket struct {
	s      *socket.Socket
	r      *reader
	tr     *tracker
	args   []sendop.Args
	shapes []shape
}

func engineLoad(t *testing.T, eng *socket.Engine, sockets, per int, hook func()) []*loadedSocket {
	rng := newRand(t)
	out := make([]*loadedSocket, sockets)
	for k := range out {
		network := "tcp"
		if k%2 == 1 {
			network = "unix"
		}
		s, peer := streamPair(t, eng, network, small)
		ls := &loadedSocket{s: s, r: startReader(t, peer, readOpts{gated: true}), tr: newTracker(t, per),
			args: make([]sendop.Args, per), shapes: make([]shape, per)}
		for i := range ls.args {
			ls.shapes[i] = randomShape(rng, 32<<10, 8)
			ls.shapes[i].apply(&ls.args[i])
			ls.args[i].UserToken = i
			ls.args[i].Completed = func(e *sendop.Args) {
				if hook != nil {
					hook()
				}
				ls.tr.completed(e.UserToken.(int))
			}
			pending, err := sendAsync(s, &ls.args[i])
			if err != nil {
				t.Fatalf("socket %d send %d: %v", k, i, err)
			}
			if !pending {
				ls.tr.sync(i)
			}
		}
		out[k] = ls
	}
	return out
}

// Engine.Close with sends pending on many sockets completes every one of
// them exactly once before it returns; the sockets are closed.
func TestEngineCloseWithPending(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		const sockets, per = 16, 40
		load := engineLoad(t, eng, sockets, per, nil)
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			g := enterAPI()
			defer leaveAPI(g)
			done <- eng.Close()
		}()
		if err := waitChan(t, done, closeWait(), "Engine.Close (deadlock?)"); err != nil {
			t.Fatalf("Engine.Close: %v", err)
		}
		t.Logf("Engine.Close took %v", time.Since(start))
		left := 0
		for _, ls := range load {
			left += int(ls.tr.left.Load())
		}
		if left != 0 {
			t.Errorf("Engine.Close returned with %d sends not yet completed", left)
		}
		aborted := 0
		for k, ls := range load {
			ls.tr.wait() // Engine.Close returned: every Completed has
			want, byErr := checkPrefixes(t, ls.args, ls.shapes, sendop.OperationAborted)
			aborted += byErr[sendop.OperationAborted]
			checkReceived(t, ls.r, want)
			if err := closeSocket(ls.s); !errors.Is(err, socket.ErrClosed) {
				t.Fatalf("socket %d: Close after Engine.Close: %v, want ErrClosed", k, err)
			}
			w := newWatched(t)
			w.SetBuffer([]byte("x"))
			if _, err := sendAsync(ls.s, &w.Args); !errors.Is(err, socket.ErrClosed) {
				t.Fatalf("socket %d: SendAsync after Engine.Close: %v, want ErrClosed", k, err)
			}
		}
		if aborted == 0 {
			t.Fatal("nothing was aborted: the peers should have stalled the queues")
		}
		t.Logf("%d sends on %d sockets, %d aborted", sockets*per, sockets, aborted)
		if err := eng.Close(); !errors.Is(err, socket.ErrClosed) {
			t.Fatalf("second Engine.Close: %v, want ErrClosed", err)
		}
	})
}

// A closed engine takes no new sockets.
func TestEngineClosedRefusesSockets(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		if err := eng.Close(); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		if s, err := socket.Dial("tcp", l.Addr().String(), socket.WithEngine(eng)); !errors.Is(err, socket.ErrClosed) {
			if s != nil {
				s.Close()
			}
			t.Fatalf("Dial on a closed engine: %v, want ErrClosed", err)
		}
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if s, err := socket.FromConn(c, socket.WithEngine(eng)); !errors.Is(err, socket.ErrClosed) {
			if s != nil {
				s.Close()
			}
			t.Fatalf("FromConn on a closed engine: %v, want ErrClosed", err)
		}
		if _, err := c.Write([]byte("still mine")); err != nil {
			t.Fatalf("the conn refused by FromConn is unusable: %v", err)
		}
	})
}

// Engine.Close from a Completed handler returns (it cannot wait for the
// goroutine it runs on) and the shutdown then finishes: every send on
// every socket completes exactly once and the engine ends up closed.
func TestEngineCloseFromCompleted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		closed := make(chan error, 1)
		var once sync.Once
		var armed atomic.Bool
		hook := func() {
			if !armed.Load() {
				return
			}
			once.Do(func() {
				g := enterAPI()
				defer leaveAPI(g)
				closed <- eng.Close()
			})
		}
		load := engineLoad(t, eng, 4, 30, hook)
		armed.Store(true)
		load[0].r.start() // the first completion from now on closes the engine
		if err := waitChan(t, closed, closeWait(), "Engine.Close called from Completed to return (deadlock?)"); err != nil {
			t.Fatalf("Engine.Close from Completed: %v", err)
		}
		for _, ls := range load {
			ls.tr.wait(closedByEngine(t, ls.s))
			want, _ := checkPrefixes(t, ls.args, ls.shapes, sendop.OperationAborted)
			checkReceived(t, ls.r, want)
		}
		deadline := time.Now().Add(longWait())
		for {
			err := lastSocketSend(load)
			if errors.Is(err, socket.ErrClosed) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a socket is still open after the engine closed from Completed: %v", err)
			}
			time.Sleep(time.Millisecond)
		}
		if err := eng.Close(); !errors.Is(err, socket.ErrClosed) {
			t.Fatalf("Engine.Close after Close from Completed: %v, want ErrClosed", err)
		}
	})
}

// lastSocketSend reports what a SendAsync on the last socket says:
// ErrClosed once the engine's shutdown has reached it.
func lastSocketSend(load []*loadedSocket) error {
	var e sendop.Args
	e.SetBuffer([]byte("x"))
	_, err := load[len(load)-1].s.SendAsync(&e)
	return err
}

// Invariant 6: closing sockets and engines returns descriptors and
// goroutines to where they were. Rounds of engines (both backends) with
// sockets of every kind, sends pending, some sockets closed by hand and
// the rest by Engine.Close.
func TestCloseReleasesFDs(t *testing.T) {
	round := func(t *testing.T) {
		for _, be := range backends {
			eng, err := socket.NewEngine(socket.EngineConfig{Backend: be})
			if err != nil {
				t.Fatal(err)
			}
			var socks []*socket.Socket
			for _, network := range []string{"tcp", "tcp-accept", "unix"} {
				s, peer := streamPair(t, eng, network, small)
				startReader(t, peer, readOpts{gated: true})
				socks = append(socks, s)
			}
			for _, network := range dgramNetworks {
				s, _ := dgramPair(t, eng, network)
				socks = append(socks, s)
			}
			// FromFD of one end of a socketpair.
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			s, err := socket.FromFD(fds[0], socket.WithEngine(eng))
			if err != nil {
				t.Fatal(err)
			}
			f := os.NewFile(uintptr(fds[1]), "peer")
			t.Cleanup(func() { f.Close() })
			socks = append(socks, s)

			for k, s := range socks {
				for range 20 {
					e := new(sendop.Args)
					e.SetBuffer(pool()[:16<<10])
					if _, err := s.SendAsync(e); err != nil {
						t.Fatalf("socket %d: %v", k, err)
					}
				}
			}
			for k, s := range socks {
				if k%2 == 0 {
					if err := s.Close(); err != nil {
						t.Fatalf("socket %d: Close: %v", k, err)
					}
				}
			}
			if err := eng.Close(); err != nil {
				t.Fatalf("Engine.Close: %v", err)
			}
		}
	}
	t.Run("warm-up", round) // the netpoller's descriptors, first-use caches
	runtime.GC()
	fds, gs := countFDs(t), runtime.NumGoroutine()
	for i := range 10 {
		t.Run(fmt.Sprintf("round%d", i), round)
	}
	deadline := time.Now().Add(scaled(5 * time.Second))
	for {
		nf, ng := countFDs(t), runtime.NumGoroutine()
		if nf <= fds && ng <= gs {
			t.Logf("descriptors %d → %d, goroutines %d → %d", fds, nf, gs, ng)
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("after 10 rounds: %d descriptors (was %d), %d goroutines (was %d)\n%s", nf, fds, ng, gs, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
