//go:build linux

// Package tests holds black-box integration tests of uringsend over real
// sockets. They use the public API only. Every test runs on both backends
// (io_uring and epoll) through forEachBackend, on engines of its own (the
// DefaultEngine is never closed, so goleak would report it).
//
// Environment:
//
//	UR_TEST_TIMEOUT_SCALE  multiplies every timeout (slow machines, -race)
//	UR_TEST_SEED           fixes the seed of the random shapes
package tests

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// Every engine, socket, reader and writer goroutine a test starts must be
// gone when the tests end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ---- time ------------------------------------------------------------------

// scaled multiplies d by UR_TEST_TIMEOUT_SCALE (default 1).
func scaled(d time.Duration) time.Duration {
	if s := os.Getenv("UR_TEST_TIMEOUT_SCALE"); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
			return time.Duration(float64(d) * f)
		}
	}
	return d
}

// longWait bounds a wait for something that must happen; graceWait is how
// long a test watches for something that must not happen (a second
// Completed, a stray signal).
func longWait() time.Duration  { return scaled(20 * time.Second) }
func graceWait() time.Duration { return scaled(50 * time.Millisecond) }

// closeWait bounds a Close, which takes milliseconds: past it, a Close is
// taken for a deadlock.
func closeWait() time.Duration { return scaled(2 * time.Second) }

// waitChan fails t if ch is not closed (or does not deliver) within d.
func waitChan[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timeout after %v waiting for %s", d, what)
		panic("unreachable")
	}
}

// ---- randomness ------------------------------------------------------------

// newRand returns a generator seeded from UR_TEST_SEED or the clock; the
// seed is logged so a failure can be replayed.
func newRand(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("UR_TEST_SEED"); s != "" {
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			seed = v
		}
	}
	t.Logf("seed %d (UR_TEST_SEED)", seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

const poolSize = 4<<20 + 13 // not a power of two: no alignment hides a reorder

var (
	poolOnce sync.Once
	poolData []byte
)

// pool is a shared block of random bytes that shapes are cut from. Nobody
// writes to it after it is made.
func pool() []byte {
	poolOnce.Do(func() {
		poolData = make([]byte, poolSize)
		r := rand.NewChaCha8([32]byte{'u', 'r', 'i', 'n', 'g'})
		r.Read(poolData)
	})
	return poolData
}

// poolSlice returns n bytes of the pool at a random offset.
func poolSlice(rng *rand.Rand, n int) []byte {
	p := pool()
	off := rng.IntN(len(p) - n + 1)
	return p[off : off+n : off+n]
}

// ---- shapes ----------------------------------------------------------------

// shape is what one send carries: a Buffer, or a BufferList (bufs != nil).
type shape struct {
	buf  []byte
	bufs [][]byte
}

func (sh shape) total() int {
	n := len(sh.buf)
	for _, b := range sh.bufs {
		n += len(b)
	}
	return n
}

// apply sets sh on e, clearing the other kind of buffer.
func (sh shape) apply(e *sendop.Args) {
	if sh.bufs != nil {
		e.SetBuffer(nil)
		e.SetBufferList(sh.bufs)
	} else {
		e.SetBufferList(nil)
		e.SetBuffer(sh.buf)
	}
}

// writePrefix writes the first n bytes of sh (all of them if n < 0) to w.
func (sh shape) writePrefix(w io.Writer, n int) {
	if n < 0 {
		n = sh.total()
	}
	if sh.bufs == nil {
		w.Write(sh.buf[:n])
		return
	}
	for _, b := range sh.bufs {
		if n == 0 {
			return
		}
		k := min(n, len(b))
		w.Write(b[:k])
		n -= k
	}
}

// bytes returns sh's data as one slice.
func (sh shape) bytes() []byte {
	out := make([]byte, 0, sh.total())
	if sh.bufs == nil {
		return append(out, sh.buf...)
	}
	for _, b := range sh.bufs {
		out = append(out, b...)
	}
	return out
}

// randomSize picks a size up to max, biased to small sends.
func randomSize(rng *rand.Rand, max int) int {
	switch r := rng.IntN(10); {
	case r < 5:
		return rng.IntN(min(max, 1<<10) + 1)
	case r < 8:
		return rng.IntN(min(max, 16<<10) + 1)
	default:
		return rng.IntN(max + 1)
	}
}

// randomShape makes a Buffer (possibly empty) or a BufferList of 1 to
// maxSegs segments (some nil or empty) of up to maxSize bytes in all, cut
// from the pool. (A list of no segments at all is tested on its own, in
// TestEmptyBuffers.)
func randomShape(rng *rand.Rand, maxSize, maxSegs int) shape {
	size := randomSize(rng, maxSize)
	if maxSegs == 0 || rng.IntN(2) == 0 {
		return shape{buf: poolSlice(rng, size)}
	}
	n := 1 + rng.IntN(maxSegs)
	bufs := make([][]byte, n)
	left := size
	for i := range bufs {
		switch {
		case rng.IntN(10) == 0:
			bufs[i] = nil
		case i == n-1:
			bufs[i] = poolSlice(rng, left)
			left = 0
		default:
			k := rng.IntN(left/max(1, n-i)*2 + 1)
			k = min(k, left)
			bufs[i] = poolSlice(rng, k)
			left -= k
		}
	}
	return shape{bufs: bufs}
}

// ---- engines ---------------------------------------------------------------

var backends = []string{socket.BackendIOURing, socket.BackendEpoll}

// newEngine starts an engine on backend and closes it when the test ends
// (unless the test closed it already). io_uring is expected to work here:
// an engine that cannot start it fails the test.
func newEngine(t testing.TB, backend string) *socket.Engine {
	t.Helper()
	eng, err := socket.NewEngine(socket.EngineConfig{Backend: backend})
	if err != nil {
		t.Fatalf("NewEngine(%s): %v", backend, err)
	}
	if got := eng.Backend(); got != backend {
		eng.Close()
		t.Fatalf("NewEngine(%s) runs on %s", backend, got)
	}
	t.Cleanup(func() {
		err := boundedClose(t, "Engine.Close", eng.Close)
		if err != nil && !errors.Is(err, socket.ErrClosed) && err != errHung {
			t.Errorf("Engine.Close: %v", err)
		}
	})
	return eng
}

var errHung = errors.New("hung")

// boundedClose runs close, giving up after closeWait: a Close that hangs
// (a deadlock the test has already reported) must not stop the rest of the
// suite. The hung goroutine is abandoned.
func boundedClose(t testing.TB, what string, close func() error) error {
	done := make(chan error, 1)
	go func() { done <- close() }()
	timer := time.NewTimer(closeWait())
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		t.Errorf("%s at the end of the test hangs for %v: abandoned", what, closeWait())
		return errHung
	}
}

// forEachBackend runs f as a subtest on an engine of each backend.
func forEachBackend(t *testing.T, f func(t *testing.T, eng *socket.Engine)) {
	t.Helper()
	for _, be := range backends {
		t.Run(be, func(t *testing.T) { f(t, newEngine(t, be)) })
	}
}

// ---- socket pairs ----------------------------------------------------------

// pairConfig shrinks kernel buffers so that a peer that does not read
// stalls the sender quickly: sndbuf on the Socket, rcvbuf on the peer.
type pairConfig struct {
	sndbuf, rcvbuf int
}

// small is a configuration under which a few hundred KiB fill the path.
var small = pairConfig{sndbuf: 4096, rcvbuf: 4096}

func setBufs(t testing.TB, fd int, cfg pairConfig, sender bool) {
	t.Helper()
	opt, n := unix.SO_RCVBUF, cfg.rcvbuf
	if sender {
		opt, n = unix.SO_SNDBUF, cfg.sndbuf
	}
	if n > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, n); err != nil {
			t.Fatalf("setsockopt: %v", err)
		}
	}
}

func controlBufs(t testing.TB, cfg pairConfig) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if cfg.rcvbuf > 0 {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, cfg.rcvbuf)
			}
		})
		return errors.Join(err, serr)
	}
}

func closeSocketAtEnd(t testing.TB, s *socket.Socket) {
	t.Cleanup(func() {
		err := boundedClose(t, "Socket.Close", s.Close)
		if err != nil && !errors.Is(err, socket.ErrClosed) && err != errHung {
			t.Errorf("Socket.Close: %v", err)
		}
	})
}

// shortTempDir returns a directory for unix socket paths (which must stay
// under 108 bytes, so not t.TempDir()).
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ur")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// streamPair returns a connected stream Socket on eng and its peer:
//
//	tcp         socket.Dial to a net.Listener
//	tcp-accept  socket.Listener.Accept of a net.Dial
//	unix        socket.Dial to a unix net.Listener
func streamPair(t testing.TB, eng *socket.Engine, network string, cfg pairConfig) (*socket.Socket, net.Conn) {
	t.Helper()
	var s *socket.Socket
	var peer net.Conn
	switch network {
	case "tcp", "unix":
		lc := net.ListenConfig{Control: controlBufs(t, cfg)}
		addr := "127.0.0.1:0"
		if network == "unix" {
			addr = filepath.Join(shortTempDir(t), "s")
		}
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
		s, err = socket.Dial(network, l.Addr().String(), socket.WithEngine(eng))
		if err != nil {
			l.Close()
			<-accepted
			t.Fatalf("socket.Dial(%s): %v", network, err)
		}
		peer = <-accepted
		if peer == nil {
			s.Close()
			t.Fatal("accept failed")
		}
	case "tcp-accept":
		l, err := socket.Listen("tcp", "127.0.0.1:0", socket.WithEngine(eng))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		d := net.Dialer{Control: controlBufs(t, cfg)}
		peer, err = d.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err = l.Accept()
		if err != nil {
			peer.Close()
			t.Fatalf("Accept: %v", err)
		}
	default:
		t.Fatalf("streamPair: unknown network %q", network)
	}
	t.Cleanup(func() { peer.Close() })
	closeSocketAtEnd(t, s)
	setBufs(t, s.FD(), cfg, true)
	return s, peer
}

func tcpPair(t testing.TB, eng *socket.Engine, cfg pairConfig) (*socket.Socket, net.Conn) {
	t.Helper()
	return streamPair(t, eng, "tcp", cfg)
}

// dgramPair returns a Socket dialed on network (udp, unixgram, unixpacket)
// and the receiving end.
func dgramPair(t testing.TB, eng *socket.Engine, network string) (*socket.Socket, net.Conn) {
	t.Helper()
	var peer net.Conn
	var addr string
	switch network {
	case "udp":
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		peer, addr = c, c.LocalAddr().String()
	case "unixgram":
		addr = filepath.Join(shortTempDir(t), "g")
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		peer = c
	case "unixpacket":
		addr = filepath.Join(shortTempDir(t), "p")
		l, err := net.Listen("unixpacket", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := l.Accept()
			accepted <- c
		}()
		s, err := socket.Dial(network, addr, socket.WithEngine(eng))
		if err != nil {
			l.Close()
			<-accepted
			t.Fatalf("socket.Dial(%s): %v", network, err)
		}
		peer = <-accepted
		t.Cleanup(func() { peer.Close() })
		closeSocketAtEnd(t, s)
		return s, peer
	default:
		t.Fatalf("dgramPair: unknown network %q", network)
	}
	t.Cleanup(func() { peer.Close() })
	s, err := socket.Dial(network, addr, socket.WithEngine(eng))
	if err != nil {
		t.Fatalf("socket.Dial(%s): %v", network, err)
	}
	closeSocketAtEnd(t, s)
	return s, peer
}

// ---- the receiving side ----------------------------------------------------

// readOpts shapes a reader: chunk bytes per Read, a pause after every
// pauseEvery reads, and gated: wait for start() before the first Read
// (a peer that does not read until told).
type readOpts struct {
	chunk      int
	pause      time.Duration
	pauseEvery int
	gated      bool
}

// reader reads a stream peer to EOF, counting and hashing what it gets.
type reader struct {
	gate    chan struct{}
	gateOne sync.Once
	stop    chan struct{}
	done    chan struct{}
	n       int64
	sum     [32]byte
	err     error
	got     []byte // kept when keep is set
	keep    bool
}

func startReader(t testing.TB, c net.Conn, o readOpts) *reader {
	return startReaderKeep(t, c, o, false)
}

// startReaderKeep is startReader that also keeps every byte read.
func startReaderKeep(t testing.TB, c net.Conn, o readOpts, keep bool) *reader {
	if o.chunk <= 0 {
		o.chunk = 256 << 10
	}
	r := &reader{gate: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}), keep: keep}
	if !o.gated {
		r.start()
	}
	go func() {
		defer close(r.done)
		select {
		case <-r.gate:
		case <-r.stop:
			r.err = errors.New("reader stopped before it started")
			return
		}
		h := sha256.New()
		buf := make([]byte, o.chunk)
		for i := 1; ; i++ {
			n, err := c.Read(buf)
			h.Write(buf[:n])
			r.n += int64(n)
			if r.keep {
				r.got = append(r.got, buf[:n]...)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				r.err = err
				break
			}
			if o.pause > 0 && o.pauseEvery > 0 && i%o.pauseEvery == 0 {
				time.Sleep(o.pause)
			}
		}
		copy(r.sum[:], h.Sum(nil))
	}()
	t.Cleanup(func() {
		close(r.stop)
		c.Close()
		<-r.done
	})
	return r
}

func (r *reader) start() { r.gateOne.Do(func() { close(r.gate) }) }

// wait returns the byte count and SHA-256 of everything read up to EOF.
func (r *reader) wait(t testing.TB) (int64, [32]byte) {
	t.Helper()
	r.start()
	waitChan(t, r.done, longWait(), "the peer to read to EOF")
	if r.err != nil {
		t.Fatalf("peer read: %v (after %d bytes)", r.err, r.n)
	}
	return r.n, r.sum
}

// expect accumulates what the peer should receive.
type expect struct {
	h hash.Hash
	n int64
}

func newExpect() *expect { return &expect{h: sha256.New()} }

func (x *expect) Write(p []byte) (int, error) {
	x.n += int64(len(p))
	return x.h.Write(p)
}

func (x *expect) sum() (s [32]byte) {
	copy(s[:], x.h.Sum(nil))
	return s
}

// checkReceived compares what r read with x.
func checkReceived(t testing.TB, r *reader, x *expect) {
	t.Helper()
	n, sum := r.wait(t)
	if n != x.n {
		t.Fatalf("peer received %d bytes, want %d", n, x.n)
	}
	if sum != x.sum() {
		t.Fatalf("peer received %d bytes as expected, but their SHA-256 differs: order or content broken", n)
	}
}

// ---- completion accounting -------------------------------------------------

// tracker counts, per send, how it completed: a synchronous return or a
// Completed. Each must total exactly 1.
type tracker struct {
	t        testing.TB
	counts   []atomic.Int32
	left     atomic.Int64
	done     chan struct{}
	syncs    atomic.Int64
	raised   atomic.Int64
	extra    atomic.Int64
	doneOnce sync.Once
}

func newTracker(t testing.TB, n int) *tracker {
	tr := &tracker{t: t, counts: make([]atomic.Int32, n), done: make(chan struct{})}
	tr.left.Store(int64(n))
	if n == 0 {
		close(tr.done)
	}
	return tr
}

func (tr *tracker) hit(i int) {
	if tr.counts[i].Add(1) != 1 {
		tr.extra.Add(1)
		tr.t.Errorf("send %d completed more than once", i)
		return
	}
	if tr.left.Add(-1) == 0 {
		tr.doneOnce.Do(func() { close(tr.done) })
	}
}

// sync records a pending == false return of send i.
func (tr *tracker) sync(i int) { tr.syncs.Add(1); tr.hit(i) }

// completed records a Completed of send i; call it from the handler.
func (tr *tracker) completed(i int) {
	if inAPICall() {
		tr.t.Errorf("send %d: Completed raised inside SendAsync or Close on the calling goroutine", i)
	}
	tr.raised.Add(1)
	tr.hit(i)
}

// refused records an error return of send i: it will never complete.
func (tr *tracker) refused(i int) { tr.hit(i) }

// wait waits until every send completed, then for each barrier in turn,
// and then checks that every count is exactly 1.
//
// A barrier is an event after which the contract allows no further
// Completed for these sends: a Close that returned (closing), the
// completion of a later send on the same socket (marker), the end of an
// Engine.Close. Without a barrier the caller states that one has already
// passed (the socket's Close returned before wait); a duplicate raised
// later still fails the test through hit, while t runs.
func (tr *tracker) wait(barriers ...func()) {
	tr.t.Helper()
	timer := time.NewTimer(longWait())
	defer timer.Stop()
	select {
	case <-tr.done:
	case <-timer.C:
		missing := 0
		first := -1
		for i := range tr.counts {
			if tr.counts[i].Load() == 0 {
				if first < 0 {
					first = i
				}
				missing++
			}
		}
		tr.t.Fatalf("timeout: %d sends never completed (first: #%d)", missing, first)
	}
	for _, b := range barriers {
		b()
	}
	tr.checkOnce()
}

// checkOnce fails the test unless every send completed exactly once.
func (tr *tracker) checkOnce() {
	tr.t.Helper()
	for i := range tr.counts {
		if n := tr.counts[i].Load(); n != 1 {
			tr.t.Fatalf("send %d completed %d times, want exactly once", i, n)
		}
	}
}

// ---- barriers ----------------------------------------------------------------

// closing returns a barrier that closes s and checks Close's result: nil
// for the first Close, or socket.ErrClosed when the socket was closed
// already (from a handler, by Engine.Close). When Close returns, every
// Completed of s has returned (a second Close waits for the first).
func closing(t testing.TB, s *socket.Socket, want error) func() {
	return func() {
		t.Helper()
		err := boundedClose(t, "Socket.Close (barrier)", func() error { return closeSocket(s) })
		if err == errHung {
			t.FailNow()
		}
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("Close: %v, want %v", err, want)
		}
	}
}

// closedByEngine returns a barrier for a socket that an Engine.Close
// started from a Completed handler is closing: it waits until s refuses
// sends (its close has begun; an empty probe sends nothing if it has
// not), then closes s, which returns ErrClosed once that close finished.
func closedByEngine(t testing.TB, s *socket.Socket) func() {
	return func() {
		t.Helper()
		deadline := time.Now().Add(longWait())
		for {
			var e sendop.Args
			e.SetBuffer([]byte{})
			if _, err := s.SendAsync(&e); errors.Is(err, socket.ErrClosed) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the engine's shutdown never reached a socket")
			}
			time.Sleep(time.Millisecond)
		}
		closing(t, s, socket.ErrClosed)()
	}
}

// marker returns a barrier for a stream socket s: it sends an empty
// Buffer on s (nothing goes on the wire) and waits for its completion.
// Completions on a socket are raised in order, on the engine's one raising
// goroutine (the ring's reaper, the epoll dispatcher): once a pending
// marker's Completed has run, every Completed of an earlier send on s has
// returned. A marker that completes synchronously only says the socket's
// queue was empty (an earlier Completed may still be on its way), so the
// barrier sends markers until one is pending — a send issued while the
// engine raises is — and, after 1000 synchronous ones, settles for the
// empty queue.
func marker(t testing.TB, s *socket.Socket) func() {
	return func() {
		t.Helper()
		for range 1000 {
			done := make(chan struct{})
			var e sendop.Args
			e.SetBuffer([]byte{})
			e.Completed = func(*sendop.Args) { close(done) }
			pending, err := sendAsync(s, &e)
			if err != nil {
				t.Fatalf("marker: SendAsync: %v", err)
			}
			if pending {
				waitChan(t, done, longWait(), "the marker's Completed")
				return
			}
		}
	}
}

// raiseBarrier returns once eng's raising goroutine (the reaper, the
// epoll dispatcher) has raised the Completed of a send made after the call
// began: 16 MiB on a side socket whose peer starts reading only once the
// send is queued, pending on either backend (more than loopback's largest
// send and receive buffers together; small buffers would do with less,
// but crawl behind delayed ACKs). A completion of another
// socket that the engine had already decided on is raised by then.
func raiseBarrier(t testing.TB, eng *socket.Engine) {
	t.Helper()
	s, peer := tcpPair(t, eng, pairConfig{})
	r := startReader(t, peer, readOpts{gated: true})
	done := make(chan struct{})
	var e sendop.Args
	e.SetBuffer(make([]byte, 16<<20))
	e.Completed = func(*sendop.Args) { close(done) }
	pending, err := sendAsync(s, &e)
	if err != nil {
		t.Fatalf("raiseBarrier: %v", err)
	}
	if !pending {
		t.Fatal("raiseBarrier: 16 MiB to a peer that does not read completed synchronously")
	}
	r.start()
	waitChan(t, done, longWait(), "the side socket's Completed")
	closing(t, s, nil)()
}

// signalBarrier returns once a SIGWINCH the process sent itself has been
// delivered to a channel. A signal raised before (a SIGPIPE of a send that
// completed before the call) is in its channel by then: the kernel
// delivers a send's SIGPIPE before the send returns, and Go's runtime
// hands pending signals to their channels lowest number first (SIGPIPE
// 13, SIGWINCH 28).
func signalBarrier(t testing.TB) {
	t.Helper()
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	defer signal.Stop(ch)
	if err := unix.Kill(os.Getpid(), unix.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	waitChan(t, ch, longWait(), "SIGWINCH")
}

// ---- goroutine identity ----------------------------------------------------

// goid returns the current goroutine's id from its stack header.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = b[len("goroutine "):]
	var id uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

// Goroutines currently inside SendAsync or Close, by id: a Completed
// raised on one of them is raised from the caller's stack.
var (
	apiMu    sync.Mutex
	apiDepth = map[uint64]int{}
)

func enterAPI() uint64 {
	g := goid()
	apiMu.Lock()
	apiDepth[g]++
	apiMu.Unlock()
	return g
}

func leaveAPI(g uint64) {
	apiMu.Lock()
	if apiDepth[g]--; apiDepth[g] == 0 {
		delete(apiDepth, g)
	}
	apiMu.Unlock()
}

func inAPICall() bool {
	g := goid()
	apiMu.Lock()
	defer apiMu.Unlock()
	return apiDepth[g] > 0
}

// sendAsync is s.SendAsync(e), marked so that a Completed raised inside it
// on the same goroutine is caught.
func sendAsync(s *socket.Socket, e *sendop.Args) (bool, error) {
	g := enterAPI()
	defer leaveAPI(g)
	return s.SendAsync(e)
}

// closeSocket is s.Close(), marked like sendAsync.
func closeSocket(s *socket.Socket) error {
	g := enterAPI()
	defer leaveAPI(g)
	return s.Close()
}

// ---- descriptors -----------------------------------------------------------

// countFDs returns the number of open descriptors of the process.
func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // the directory's own descriptor
}
