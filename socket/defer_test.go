//go:build linux

package socket

import (
	"bytes"
	"crypto/sha256"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
)

// A send started from a Completed handler, on an idle socket, is not
// entered into the kernel on its own: it returns pending and goes out in
// the reaper's next io_uring_enter. It completes exactly once with all its
// bytes, and the peer receives them in call order.
func TestSendFromHandlerDeferredToReaper(t *testing.T) {
	eng, err := NewEngine(EngineConfig{Backend: BackendIOURing})
	if err != nil {
		t.Skip(err)
	}
	defer eng.Close()
	la, _ := net.Listen("tcp", "127.0.0.1:0")
	defer la.Close()
	lb, _ := net.Listen("tcp", "127.0.0.1:0")
	defer lb.Close()
	_ = hashPeer(t, la, false)
	gotB := hashPeer(t, lb, false)
	a, err := Dial("tcp", la.Addr().String(), WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Dial("tcp", lb.Addr().String(), WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}

	const N = 2000
	want := sha256.New()
	payload := make([][]byte, N)
	for i := range payload {
		payload[i] = bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 1+i%50)
		want.Write(payload[i])
	}
	var (
		bArgs            = make([]sendop.Args, N)
		completed        = make([]atomic.Int32, N)
		syncInHandler    atomic.Int32
		pendingInHandler atomic.Int32
		wg               sync.WaitGroup
	)
	wg.Add(N)
	for i := range bArgs {
		bArgs[i].SetBuffer(payload[i])
		bArgs[i].Completed = func(e *sendop.Args) {
			if e.SocketError() != sendop.Success || e.BytesTransferred() != len(payload[i]) {
				t.Errorf("send %d: %v, %d bytes", i, e.SocketError(), e.BytesTransferred())
			}
			completed[i].Add(1)
			wg.Done()
		}
	}
	// a's pipeline drives b: each of a's completions sends the next
	// message on b from the reaper.
	next := 0
	var ea sendop.Args
	ea.SetBuffer([]byte("x"))
	ea.Completed = func(e *sendop.Args) {
		if next == N {
			return
		}
		i := next
		next++
		pending, err := b.SendAsync(&bArgs[i])
		switch {
		case err != nil:
			t.Errorf("send %d on b: %v", i, err)
			wg.Done()
		case pending:
			pendingInHandler.Add(1)
		default:
			syncInHandler.Add(1)
			completed[i].Add(1)
			wg.Done()
		}
		if _, err := a.SendAsync(e); err != nil {
			t.Errorf("a: %v", err)
		}
	}
	a.mu.Lock()
	a.opts.batch = true // a's sends always complete on the reaper
	a.mu.Unlock()
	if _, err := a.SendAsync(&ea); err != nil {
		t.Fatal(err)
	}
	waitTimeout(t, &wg, 20*time.Second)
	if n := syncInHandler.Load(); n != 0 {
		t.Errorf("%d sends from a handler completed inline; want every one deferred to the reaper", n)
	}
	if n := pendingInHandler.Load(); n != N {
		t.Errorf("%d of %d sends pending", n, N)
	}
	for i := range completed {
		if c := completed[i].Load(); c != 1 {
			t.Fatalf("send %d completed %d times", i, c)
		}
	}
	b.Close()
	if sum := <-gotB; !bytes.Equal(sum[:], want.Sum(nil)) {
		t.Fatal("peer's SHA-256 differs: bytes lost, duplicated or out of order")
	}
}

// A send deferred to the reaper on a socket that is closed at once (from
// the same handler) completes exactly once: aborted, or sent if the reaper
// got to it first.
func TestDeferredSendThenCloseCompletesOnce(t *testing.T) {
	eng, l := uringListener(t)
	a, err := Dial("tcp", l.Addr().String(), WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	const rounds = 200
	var wg sync.WaitGroup
	var raised, pendingN atomic.Int32
	socks := make([]*Socket, rounds)
	for i := range socks {
		socks[i], err = Dial("tcp", l.Addr().String(), WithEngine(eng))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := l.Accept()
			if err == nil {
				c.Close()
			}
		}()
	}
	args := make([]sendop.Args, rounds)
	for i := range args {
		args[i].SetBuffer(make([]byte, 100))
		args[i].Completed = func(e *sendop.Args) {
			if se := e.SocketError(); se != sendop.Success && se != sendop.OperationAborted {
				t.Errorf("round %d: %v", i, se)
			}
			raised.Add(1)
			wg.Done()
		}
	}
	wg.Add(rounds)
	round := 0
	var ea sendop.Args
	ea.SetBuffer([]byte("y"))
	ea.Completed = func(e *sendop.Args) {
		if round == rounds {
			return
		}
		i := round
		round++
		pending, err := socks[i].SendAsync(&args[i])
		if err != nil || !pending {
			t.Errorf("round %d: pending %v, err %v; want deferred", i, pending, err)
			wg.Done()
		} else {
			pendingN.Add(1)
		}
		socks[i].Close() // from the handler: does not wait
		a.SendAsync(e)
	}
	a.mu.Lock()
	a.opts.batch = true
	a.mu.Unlock()
	if _, err := a.SendAsync(&ea); err != nil {
		t.Fatal(err)
	}
	waitTimeout(t, &wg, 20*time.Second)
	// Each socket was closed from a handler: a second Close returns
	// ErrClosed once that close finished, every Completed of the socket
	// returned — a second Completed would have shown by then.
	for i, s := range socks {
		if err := s.Close(); err != ErrClosed {
			t.Fatalf("round %d: Close after the handler's: %v, want ErrClosed", i, err)
		}
	}
	if r, p := raised.Load(), pendingN.Load(); r != p || p != rounds {
		t.Fatalf("%d pending, %d raised; want %d each", p, r, rounds)
	}
}

func waitTimeout(t *testing.T, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatal("completions missing")
	}
}

// A socket's buffers sent again and again are pinned once, by its cache;
// the cache is emptied when the socket closes.
func TestPinCacheAcrossSends(t *testing.T) {
	eng, l := uringListener(t)
	s, err := Dial("tcp", l.Addr().String(), WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	bufs := [][]byte{make([]byte, 64), make([]byte, 64), make([]byte, 64)}
	var e sendop.Args
	for i := range 300 {
		e.SetBuffer(bufs[i%3])
		pending, err := s.SendAsync(&e)
		if err != nil || pending {
			t.Fatalf("send %d: pending %v, err %v (an idle socket completes inline)", i, pending, err)
		}
	}
	s.mu.Lock()
	n := s.pins.Len()
	s.mu.Unlock()
	if n != 3 {
		t.Fatalf("cache holds %d pointers after 300 sends of 3 buffers; want 3", n)
	}
	s.Close()
	if n := s.pins.Len(); n != 0 {
		t.Fatalf("closed socket's cache holds %d", n)
	}
}

// uringListener returns an io_uring engine and a loopback listener whose
// first connection is drained by a peer; both close when the test ends.
func uringListener(t *testing.T) (*Engine, net.Listener) {
	t.Helper()
	eng, err := NewEngine(EngineConfig{Backend: BackendIOURing})
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { eng.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	_ = hashPeer(t, l, false)
	return eng, l
}
