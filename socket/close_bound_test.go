//go:build linux

package socket

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// stalledPair returns a socket on eng connected over TCP loopback to a peer
// that never reads (closed at cleanup), with small buffers so that sends
// stay on the wire.
func stalledPair(t *testing.T, eng *Engine, opts ...Option) *Socket {
	t.Helper()
	s, p := dialPeer(t, eng, opts...)
	p.(*net.TCPConn).SetReadBuffer(4096)
	return s
}

// sendUntilStuck sends 64 KiB buffers on s until n of them are pending
// and returns the Args and a WaitGroup done once per completion, sync or
// raised, with count[i] the times send i completed.
func sendUntilStuck(t *testing.T, s *Socket, n int) ([]sendop.Args, []atomic.Int32, *sync.WaitGroup) {
	t.Helper()
	args := make([]sendop.Args, n)
	counts := make([]atomic.Int32, n)
	var wg sync.WaitGroup
	buf := make([]byte, 64<<10)
	for i := range args {
		args[i].UserToken = i
		args[i].SetBuffer(buf)
		args[i].Completed = func(e *sendop.Args) {
			counts[e.UserToken.(int)].Add(1)
			wg.Done()
		}
		wg.Add(1)
		pending, err := s.SendAsync(&args[i])
		if err != nil {
			t.Fatal(err)
		}
		if !pending {
			counts[i].Add(1)
			wg.Done()
		}
	}
	return args, counts, &wg
}

// waitQueued waits until s's kernel send queue holds bytes (SIOCOUTQ).
func waitQueued(t *testing.T, s *Socket) {
	t.Helper()
	t0 := time.Now()
	for {
		n, err := unix.IoctlGetInt(s.FD(), unix.SIOCOUTQ)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Since(t0) > 2*time.Second {
			t.Fatal("no byte of the sends reached the kernel's send queue in 2 s")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// newEngine makes an engine for the test, closed at its end; it skips the
// test where the backend cannot run.
func newEngine(t *testing.T, cfg EngineConfig) *Engine {
	t.Helper()
	eng, err := NewEngine(cfg)
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

func zeroCopyKernel(t *testing.T) {
	t.Helper()
	probe, err := ring.New(ring.Config{Entries: 2})
	if err != nil {
		t.Skip(err)
	}
	defer probe.Close()
	if !probe.Supports(ring.OpSendZC) {
		t.Skip("kernel without IORING_OP_SEND_ZC (6.0)")
	}
}

// Issue 13, item 1: Close of a zero-copy socket whose peer stopped reading
// returned only when the peer closed (a SEND_ZC completes with its
// notification, after the peer's ACK). Now it resets the connection after
// the linger and returns in bounded time; every send completes once, and
// the buffers are handed back only after the notifications.
func TestCloseZeroCopyStalledPeerBounded(t *testing.T) {
	zeroCopyKernel(t)
	eng := newEngine(t, EngineConfig{Backend: BackendIOURing, ZeroCopy: ZeroCopyOn, ZeroCopyThreshold: 4096})
	var worst time.Duration
	for round := 0; round < 3; round++ {
		s := stalledPair(t, eng)
		const N = 64
		args, counts, wg := sendUntilStuck(t, s, N)
		// The close must find a zero-copy wire whose bytes the kernel
		// holds: wait until the first wire has put some in (a Close
		// within microseconds of the sends can find it not yet tried,
		// and cancel it with nothing to notify).
		waitQueued(t, s)
		zc0 := eng.ZeroCopySends()
		start := time.Now()
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close of a zero-copy socket with a stalled peer still blocked after 5 s")
		}
		d := time.Since(start)
		worst = max(worst, d)
		// Close returned: every Completed has returned too.
		aborted := 0
		for i := range counts {
			if c := counts[i].Load(); c != 1 {
				t.Fatalf("round %d: send %d completed %d times", round, i, c)
			}
			if args[i].SocketError() == sendop.OperationAborted {
				aborted++
			}
		}
		wg.Wait()
		if aborted == 0 {
			t.Fatalf("round %d: no send was aborted: the peer was not stalled", round)
		}
		if eng.ZeroCopySends() == zc0 {
			t.Errorf("round %d: no notification came after the reset", round)
		}
		if d > 2*time.Second {
			t.Errorf("round %d: Close took %v", round, d)
		}
	}
	t.Logf("worst Close with a stalled zero-copy peer: %v (target 100 ms)", worst)
}

// Close from a Completed handler does not block the reaper: another socket
// of the same engine keeps completing sends while the first one's
// zero-copy wire waits for its reset.
func TestCloseZeroCopyFromHandlerDoesNotBlockReaper(t *testing.T) {
	zeroCopyKernel(t)
	eng := newEngine(t, EngineConfig{Backend: BackendIOURing, ZeroCopy: ZeroCopyOn, ZeroCopyThreshold: 4096})
	stuck := stalledPair(t, eng)
	_, counts, wg := sendUntilStuck(t, stuck, 32)

	// A healthy socket whose peer reads everything.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			buf := make([]byte, 64<<10)
			for {
				if _, err := c.Read(buf); err != nil {
					c.Close()
					return
				}
			}
		}
	}()
	healthy, err := Dial("tcp", l.Addr().String(), WithEngine(eng), WithBatching())
	if err != nil {
		t.Fatal(err)
	}
	defer healthy.Close()

	// The first healthy completion closes the stuck socket from the
	// reaper; the next 200 must still complete, promptly.
	var closeTook atomic.Int64
	var raised atomic.Int32
	done := make(chan struct{})
	var e sendop.Args
	e.SetBuffer(make([]byte, 100))
	e.Completed = func(e *sendop.Args) {
		switch n := raised.Add(1); {
		case n == 1:
			t0 := time.Now()
			if err := stuck.Close(); err != nil {
				t.Errorf("Close from a handler: %v", err)
			}
			closeTook.Store(int64(time.Since(t0)))
		case n == 200:
			close(done)
			return
		}
		if _, err := healthy.SendAsync(e); err != nil {
			t.Error(err)
		}
	}
	start := time.Now()
	if _, err := healthy.SendAsync(&e); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("the reaper is blocked: %d of 200 completions in 5 s", raised.Load())
	}
	if d := time.Duration(closeTook.Load()); d > 10*time.Millisecond {
		t.Errorf("Close from a handler took %v on the reaper", d)
	}
	t.Logf("200 completions of another socket in %v while the closed one waited for its reset", time.Since(start))
	waitTimeout(t, wg, 5*time.Second)
	for i := range counts {
		if c := counts[i].Load(); c != 1 {
			t.Fatalf("send %d completed %d times", i, c)
		}
	}
	// The release (descriptor closed) follows: a second Close waits for it.
	if err := stuck.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
}

// Close of an idle socket makes no cancel and arms no timer; with a send
// on the wire it makes one cancel. Both backends, stalled peer: bounded.
func TestCloseStalledPeerBothBackends(t *testing.T) {
	for _, be := range []string{BackendIOURing, BackendEpoll} {
		t.Run(be, func(t *testing.T) {
			eng, err := NewEngine(EngineConfig{Backend: be, ZeroCopy: ZeroCopyOff})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			s := stalledPair(t, eng)
			_, counts, _ := sendUntilStuck(t, s, 64)
			var before ring.Stats
			if s.u != nil {
				before = s.u.r.Stats()
			}
			t0 := time.Now()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			d := time.Since(t0)
			for i := range counts {
				if c := counts[i].Load(); c != 1 {
					t.Fatalf("send %d completed %d times", i, c)
				}
			}
			if s.u != nil {
				// One ASYNC_CANCEL, submitted once; the cancelled send's
				// CQE and the cancel's.
				if n := s.u.r.Stats().Submitted - before.Submitted; n != 1 {
					t.Errorf("Close submitted %d SQEs, want 1 (one cancel)", n)
				}
			}
			if d > time.Second {
				t.Errorf("Close took %v", d)
			}
			t.Logf("Close with a send on the wire: %v", d)
		})
	}
}

// Issue 13, item 3: a failed FromFD left the caller's fd to an *os.File
// whose finalizer closed it after a GC. The caller keeps it, open.
func TestFromFDFailureKeepsCallersFD(t *testing.T) {
	for _, be := range []string{BackendIOURing, BackendEpoll} {
		t.Run(be, func(t *testing.T) {
			eng, err := NewEngine(EngineConfig{Backend: be})
			if err != nil {
				t.Fatal(err)
			}
			eng.Close() // FromFD now fails in Engine.add
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fds[0])
			defer unix.Close(fds[1])
			for i := 0; i < 10; i++ {
				if _, err := FromFD(fds[0], WithEngine(eng)); !errors.Is(err, ErrClosed) {
					t.Fatalf("FromFD on a closed engine: %v, want ErrClosed", err)
				}
			}
			for i := 0; i < 3; i++ {
				runtime.GC()
			}
			// Finalizers run on their own goroutine: make sure they have.
			done := make(chan struct{})
			runtime.AddCleanup(new([64]byte), func(c chan struct{}) { close(c) }, done)
			runtime.GC()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("cleanups did not run")
			}
			var st unix.Stat_t
			if err := unix.Fstat(fds[0], &st); err != nil {
				t.Fatalf("the caller's fd after a failed FromFD and a GC: %v", err)
			}
		})
	}
}

// Issue 13, item 6: the epoll backend set and cleared deadlines on a
// FromConn connection the caller owns. Now it works on a duplicate: a
// deadline the caller set survives the Socket's Close.
func TestFromConnEpollLeavesCallersDeadlines(t *testing.T) {
	eng := newEngine(t, EngineConfig{Backend: BackendEpoll})
	a, b := tcpPair(t)
	defer b.Close()
	defer a.Close()
	s, err := FromConn(a, WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	// A receive waits in the reader goroutine; Close must wake it without
	// touching a's deadlines.
	var e sendop.Args
	e.SetBuffer(make([]byte, 16))
	done := make(chan sendop.SocketError, 1)
	e.Completed = func(e *sendop.Args) { done <- e.SocketError() }
	if pending, err := s.ReceiveAsync(&e); err != nil || !pending {
		t.Fatalf("ReceiveAsync: pending %v, %v", pending, err)
	}
	if err := a.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != sendop.OperationAborted {
		t.Fatalf("receive: %v, want OperationAborted", got)
	}
	// a is open, and its deadline is still the caller's.
	t0 := time.Now()
	_, err = a.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("caller's Read after Close: %v, want its own deadline", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("caller's Read took %v", d)
	}
	a.SetReadDeadline(time.Time{})
	if _, err := b.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("caller's Read: %d, %v", n, err)
	}
}

func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

// Issue 13, item 6: generations were (gen & mask) | 1, so 2k and 2k+1
// gave the same user_data. Consecutive generations differ, and none is 0.
func TestNextGenUsesWholeSpace(t *testing.T) {
	var u uring
	seen := make(map[uint32]bool)
	for i := 0; i < 1000; i++ {
		g := u.nextGen()
		if g == 0 || g&^genMask != 0 {
			t.Fatalf("generation %#x", g)
		}
		if seen[g] {
			t.Fatalf("generation %#x repeated after %d", g, i)
		}
		seen[g] = true
	}
	u.gen.Store(genMask) // the next wraps
	if g := u.nextGen(); g != 1 {
		t.Fatalf("after the wrap: %#x, want 1", g)
	}
}

// A send's own syscall.Errno comes through Close: nothing here but the
// errors.Is contract of the abort.
func TestCloseAbortIsCanceled(t *testing.T) {
	eng := newEngine(t, EngineConfig{Backend: BackendIOURing})
	s := stalledPair(t, eng, WithBatching())
	args, _, wg := sendUntilStuck(t, s, 8)
	s.Close()
	wg.Wait()
	for i := range args {
		if err := args[i].Err(); err != nil && !errors.Is(err, syscall.ECANCELED) {
			t.Fatalf("send %d: %v", i, err)
		}
	}
}

// Issue 13, item 8: EngineConfig{Entries: 1} was accepted, and every send
// with a Timeout then failed with a bare EIO. It is refused, clearly.
func TestEngineEntriesOneRefused(t *testing.T) {
	for _, be := range []string{BackendAuto, BackendIOURing, BackendEpoll} {
		if _, err := NewEngine(EngineConfig{Backend: be, Entries: 1}); !errors.Is(err, ErrBadEntries) {
			t.Fatalf("%s: NewEngine(Entries: 1): %v, want ErrBadEntries", be, err)
		}
	}
	eng := newEngine(t, EngineConfig{Backend: BackendIOURing, Entries: 2})
	s := stalledPair(t, eng)
	var e sendop.Args
	e.SetBuffer(make([]byte, 100))
	e.Timeout = time.Second
	if pending, err := s.SendAsync(&e); err != nil || pending || e.Err() != nil {
		t.Fatalf("a timed send on a 2-entry ring: pending %v, %v, %v", pending, err, e.Err())
	}
	s.Close()
}

// Issue 13, item 10: Close aborts what is queued (10,000 sends on a
// batching socket then Close gave 8,070 sent, 1,930 aborted). CloseWrite
// lets every queued send go out, then sends FIN: the peer reads exactly
// the bytes, then EOF; SendAsync afterwards is refused.
func TestCloseWriteFlushesQueuedSends(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		a, b := tcpPair(t)
		defer b.Close()
		s, err := FromConn(a, WithEngine(eng), WithBatching())
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		const N, size = 10000, 100
		want := sha256.New()
		args := make([]sendop.Args, N)
		var ok, other atomic.Int32
		var wg sync.WaitGroup
		for i := range args {
			buf := make([]byte, size)
			for j := range buf {
				buf[j] = byte(i + j)
			}
			want.Write(buf)
			args[i].SetBuffer(buf)
			args[i].Completed = func(e *sendop.Args) {
				if e.Err() == nil {
					ok.Add(1)
				} else {
					other.Add(1)
				}
				wg.Done()
			}
			wg.Add(1)
			pending, err := s.SendAsync(&args[i])
			if err != nil {
				t.Fatal(err)
			}
			if !pending {
				ok.Add(1)
				wg.Done()
			}
		}
		if err := s.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		var e sendop.Args
		e.SetBuffer([]byte("late"))
		if _, err := s.SendAsync(&e); !errors.Is(err, ErrWriteShutdown) {
			t.Fatalf("SendAsync after CloseWrite: %v, want ErrWriteShutdown", err)
		}
		got := sha256.New()
		b.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := io.Copy(got, b) // to EOF: the FIN came after the bytes
		if err != nil {
			t.Fatalf("peer read %d bytes, then %v", n, err)
		}
		if n != N*size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Fatalf("peer got %d bytes (want %d), hash equal %v", n, N*size, bytes.Equal(got.Sum(nil), want.Sum(nil)))
		}
		waitTimeout(t, &wg, 10*time.Second)
		if ok.Load() != N || other.Load() != 0 {
			t.Fatalf("%d Success, %d other, want %d Success", ok.Load(), other.Load(), N)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// Issue 13, item 9: every feature the engine uses is probed, and each
// fallback works — forced off here on a kernel that has them all.
func TestFeatureFallbacks(t *testing.T) {
	zeroCopyKernel(t)
	t.Run("no POLL_FIRST: epoll", func(t *testing.T) {
		cfg := EngineConfig{Ring: ring.Config{DisableFeatures: []ring.Feature{ring.FeaturePollFirst}}}
		eng, err := NewEngine(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer eng.Close()
		if eng.Backend() != BackendEpoll || !errors.Is(eng.FallbackReason(), ring.ErrNotSupported) {
			t.Fatalf("backend %s, reason %v; want epoll for lack of POLL_FIRST", eng.Backend(), eng.FallbackReason())
		}
		cfg.Backend = BackendIOURing
		if _, err := NewEngine(cfg); !errors.Is(err, ring.ErrNotSupported) {
			t.Fatalf("io_uring without POLL_FIRST: %v", err)
		}
	})
	for _, c := range []struct {
		name string
		cfg  ring.Config
		mode string
		zc   bool
	}{
		{"no SENDMSG_ZC", ring.Config{DisableOps: []uint8{ring.OpSendmsgZC}}, ZeroCopyOn, true},
		{"no REPORT_USAGE, on", ring.Config{DisableFeatures: []ring.Feature{ring.FeatureZCReportUsage}}, ZeroCopyOn, true},
		{"no REPORT_USAGE, auto", ring.Config{DisableFeatures: []ring.Feature{ring.FeatureZCReportUsage}}, ZeroCopyAuto, false},
		{"no CANCEL_FD/ANY", ring.Config{DisableFeatures: []ring.Feature{ring.FeatureCancelFD, ring.FeatureCancelAny}}, ZeroCopyOff, false},
		{"no restrictions", ring.Config{DisableFeatures: []ring.Feature{ring.FeatureRestrictions}}, ZeroCopyOff, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			eng, err := NewEngine(EngineConfig{Backend: BackendIOURing, Ring: c.cfg, ZeroCopy: c.mode, ZeroCopyThreshold: 4096})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			a, b := tcpPair(t)
			defer b.Close()
			s, err := FromConn(a, WithEngine(eng), WithBatching())
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if s.zcable != c.zc {
				t.Fatalf("zero-copy %v, want %v", s.zcable, c.zc)
			}
			got := make(chan []byte, 1)
			go func() {
				h := sha256.New()
				io.Copy(h, b)
				got <- h.Sum(nil)
			}()
			want := sha256.New()
			args := make([]sendop.Args, 200)
			var wg sync.WaitGroup
			for i := range args {
				buf := make([]byte, 8192)
				for j := range buf {
					buf[j] = byte(i * j)
				}
				want.Write(buf)
				if i%2 == 0 {
					args[i].SetBuffer(buf)
				} else {
					args[i].SetBufferList([][]byte{buf[:100], buf[100:]})
				}
				args[i].Completed = func(e *sendop.Args) {
					if e.Err() != nil {
						t.Error(e.Err())
					}
					wg.Done()
				}
				wg.Add(1)
				if pending, err := s.SendAsync(&args[i]); err != nil {
					t.Fatal(err)
				} else if !pending {
					wg.Done()
				}
			}
			waitTimeout(t, &wg, 10*time.Second)
			if err := s.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if h := <-got; !bytes.Equal(h, want.Sum(nil)) {
				t.Fatal("the peer's SHA-256 differs")
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A FromConn socket whose peer reset the connection before its first send
// reports the reset on the send (ConnectionReset or Shutdown), not
// ErrNotConnected: it was connected (found by the soak).
func TestFromConnResetBeforeFirstSend(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		a, b := tcpPair(t)
		defer a.Close()
		s, err := FromConn(a, WithEngine(eng))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		b.SetLinger(0)
		b.Close() // RST
		// The RST has arrived once a read sees it.
		deadline := time.Now().Add(5 * time.Second)
		for {
			var st unix.TCPInfo
			if info, err := unix.GetsockoptTCPInfo(s.FD(), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				st = *info
			}
			if st.State == 7 /* TCP_CLOSE */ || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		var e sendop.Args
		e.SetBuffer([]byte("after the reset"))
		done := make(chan struct{})
		e.Completed = func(*sendop.Args) { close(done) }
		pending, err := s.SendAsync(&e)
		if err != nil {
			t.Fatalf("SendAsync after the peer's reset: %v, want the send to fail with the reset", err)
		}
		if pending {
			<-done
		}
		if code := e.SocketError(); code != sendop.ConnectionReset && code != sendop.Shutdown {
			t.Fatalf("send after the peer's reset: %v", code)
		}
	})
}
