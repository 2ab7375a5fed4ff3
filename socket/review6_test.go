//go:build linux

package socket

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// threadSwitches is the number of context switches (voluntary and not) of
// thread tid of this process.
func threadSwitches(t *testing.T, tid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/self/task/%d/status", tid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.HasSuffix(k, "ctxt_switches") {
			x, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			n += x
		}
	}
	return n
}

// wakesOfCaller starts ReceiveChunks from a goroutine locked to its
// thread, which then sleeps in read(2); it returns how often that thread
// was woken while rounds messages were received one at a time. With
// resume, the stream first parks at its limit (2) and the goroutine
// resumes it by releasing the chunks it holds before it sleeps.
func wakesOfCaller(t *testing.T, cfg EngineConfig, resume bool, rounds int) int {
	eng := streamEngine(t, BackendIOURing, cfg)
	s, p := rxPair(t, eng, WithChunkLimit(2))
	got := make(chan *Chunk, rounds+4)
	var holding atomic.Bool
	holding.Store(resume)
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pipe[0])
	defer unix.Close(pipe[1])
	tidc := make(chan int, 1)
	errc := make(chan error, 1)
	held := make(chan *Chunk, 2)
	var nheld atomic.Int32
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := s.ReceiveChunks(func(c *Chunk, err error) {
			if c == nil {
				return
			}
			if holding.Load() {
				nheld.Add(1)
				held <- c
				return
			}
			got <- nil
			c.Release()
		})
		if err != nil {
			errc <- err
			return
		}
		if resume {
			c1, c2 := <-held, <-held
			for deadline := time.Now().Add(5 * time.Second); !s.rx.stream.parked.Load(); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					errc <- errors.New("the stream never parked at its limit")
					return
				}
			}
			holding.Store(false)
			c1.Release() // resumes it, from this thread
			c2.Release()
		}
		tidc <- unix.Gettid()
		var b [1]byte
		for { // blocks in the kernel until the test writes
			n, err := unix.Read(pipe[0], b[:])
			if err == unix.EINTR {
				continue
			}
			if n == 1 || err != nil {
				break
			}
		}
		errc <- nil
	}()
	if resume {
		for i := range int32(2) {
			p.Write([]byte("x"))
			for deadline := time.Now().Add(5 * time.Second); nheld.Load() <= i; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("no chunk")
				}
			}
		}
	}
	var tid int
	select {
	case tid = <-tidc:
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("the receiving goroutine never got going")
	}
	wait := func() {
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("no chunk")
		}
	}
	// The first message: the stream is armed, the thread asleep.
	p.Write([]byte("x"))
	wait()
	time.Sleep(10 * time.Millisecond)
	before := threadSwitches(t, tid)
	for range rounds {
		p.Write([]byte("x"))
		wait()
	}
	after := threadSwitches(t, tid)
	unix.Write(pipe[1], []byte{1})
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return after - before
}

// Stream receives are armed by the reaper, on its locked thread: a
// goroutine that starts one (ReceiveChunks) or resumes a parked one
// (Release) on its own thread is never woken by the receives that follow
// (io_uring runs each one's task work on the thread that submitted the
// request). With a floating reaper the same goroutine arms the request
// itself and its thread is woken about once per receive, which shows the
// count measures what it should. No other test checks where stream
// receives are armed.
func TestReview6StreamArmedOffCallerThread(t *testing.T) {
	const rounds = 50
	for _, resume := range []bool{false, true} {
		floating := wakesOfCaller(t, EngineConfig{RecvBufferSize: 4096, Ring: ring.Config{FloatingReaper: true}}, resume, rounds)
		locked := wakesOfCaller(t, EngineConfig{RecvBufferSize: 4096}, resume, rounds)
		t.Logf("resume %v: the caller's thread was woken %d times with a floating reaper, %d with a locked one", resume, floating, locked)
		if floating < rounds/2 {
			t.Fatalf("resume %v: floating reaper: the caller's thread woke %d times in %d receives; the measure sees nothing", resume, floating, rounds)
		}
		if locked != 0 {
			t.Errorf("resume %v: the caller's thread woke %d times in %d receives armed by the reaper, want 0", resume, locked, rounds)
		}
	}
}

// countDir is the number of entries of a /proc directory.
func countDir(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// ReceiveChunks from many goroutines, each racing the socket's Close from
// another: the arm is handed to the reaper (armQ) and may still be
// queued when Close runs. Close returns in bounded time, the handler's
// last call comes exactly once, with ErrClosed, before Close returns; no
// chunk stays out.
func TestReview6ReceiveChunksRacingClose(t *testing.T) {
	eng := streamEngine(t, BackendIOURing, EngineConfig{RecvBufferSize: 4096})
	const workers, per = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				s, p, err := dialPeerErr(eng)
				if err != nil {
					errs <- err
					return
				}
				var ends, chunks atomic.Int32
				var end atomic.Value
				if i%2 == 0 {
					p.Write([]byte("data before the arm"))
				}
				err = s.ReceiveChunks(func(c *Chunk, err error) {
					if c != nil {
						chunks.Add(1)
						c.Release()
						return
					}
					ends.Add(1)
					end.Store(err)
				})
				if err != nil {
					errs <- fmt.Errorf("worker %d: ReceiveChunks: %v", w, err)
					return
				}
				closed := make(chan error, 1)
				go func() { closed <- s.Close() }()
				if i%3 == 0 {
					p.Write([]byte("data racing the close"))
				}
				select {
				case err := <-closed:
					if err != nil {
						errs <- fmt.Errorf("Close: %v", err)
						return
					}
				case <-time.After(5 * time.Second):
					errs <- fmt.Errorf("worker %d round %d: Close did not return", w, i)
					return
				}
				if n := ends.Load(); n != 1 {
					errs <- fmt.Errorf("worker %d round %d: %d last calls when Close returned", w, i, n)
					return
				}
				if e, _ := end.Load().(error); !errors.Is(e, ErrClosed) {
					errs <- fmt.Errorf("worker %d round %d: stream ended with %v, want ErrClosed", w, i, e)
					return
				}
				p.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, u := range eng.rings {
		if u.pool != nil && u.pool.out.Load() != 0 {
			t.Errorf("ring %d: %d chunks out after every stream ended", i, u.pool.out.Load())
		}
	}
}

// endRecorder counts a stream's last calls and keeps the first's error.
type endRecorder struct {
	ends   atomic.Int32
	chunks atomic.Int32
	end    atomic.Value
	done   chan struct{}
}

func newEndRecorder() *endRecorder { return &endRecorder{done: make(chan struct{})} }

func (r *endRecorder) handle(c *Chunk, err error) {
	if c != nil {
		r.chunks.Add(1)
		c.Release()
		return
	}
	if r.ends.Add(1) == 1 {
		r.end.Store(err)
		close(r.done)
	}
}

func (r *endRecorder) check(t *testing.T, what string) {
	t.Helper()
	if n := r.ends.Load(); n != 1 {
		t.Errorf("%s: %d last calls, want 1", what, n)
		return
	}
	if e, _ := r.end.Load().(error); !errors.Is(e, ErrClosed) {
		t.Errorf("%s: the stream ended with %v, want ErrClosed", what, e)
	}
}

// armQLen is how many stream arms wait for u's reaper.
func (u *uring) armQLen() int {
	u.flushMu.Lock()
	defer u.flushMu.Unlock()
	return len(u.armQ)
}

// blockReaper makes eng's reaper (one ring) run a handler that waits for
// release: it returns once the reaper is inside it.
func blockReaper(t *testing.T, eng *Engine) (release func()) {
	t.Helper()
	s, p := rxPair(t, eng)
	in, out := make(chan struct{}), make(chan struct{})
	var once sync.Once
	if err := s.ReceiveChunks(func(c *Chunk, err error) {
		if c == nil {
			return
		}
		c.Release()
		once.Do(func() {
			close(in)
			<-out
		})
	}); err != nil {
		t.Fatal(err)
	}
	p.Write([]byte("block"))
	select {
	case <-in:
	case <-time.After(5 * time.Second):
		t.Fatal("the reaper never ran the handler")
	}
	var ronce sync.Once
	release = func() { ronce.Do(func() { close(out) }) }
	t.Cleanup(release)
	return release
}

// Streams whose arms wait in armQ (the reaper is busy in a handler) when
// their sockets are closed, by Socket.Close, Engine.Close or a Close from
// a handler: a Close outside the reaper waits while the arm is queued (the
// descriptor must not be closed, and its number reused, before the reaper
// publishes a receive on it), each returns once the reaper has come back,
// a Close from a handler returns at once; the last call comes once with
// ErrClosed, nothing stays queued or out.
func TestReview6CloseWithArmQueued(t *testing.T) {
	for _, how := range []string{"socket", "engine", "fromHandler"} {
		t.Run(how, func(t *testing.T) {
			eng := streamEngine(t, BackendIOURing, EngineConfig{RecvBufferSize: 4096})
			u := eng.rings[0]
			release := blockReaper(t, eng)
			const n = 16
			socks := make([]*Socket, n)
			recs := make([]*endRecorder, n)
			for i := range socks {
				s, p := rxPair(t, eng)
				if i%2 == 0 {
					p.Write([]byte("waiting in the socket"))
				}
				recs[i] = newEndRecorder()
				if err := s.ReceiveChunks(recs[i].handle); err != nil {
					t.Fatal(err)
				}
				socks[i] = s
			}
			if q := u.armQLen(); q != n {
				t.Fatalf("%d arms queued for the busy reaper, want %d", q, n)
			}
			closed := make(chan error, n)
			switch how {
			case "socket":
				for _, s := range socks {
					go func() { closed <- s.Close() }()
				}
				time.Sleep(20 * time.Millisecond)
				if len(closed) != 0 {
					t.Fatal("a Close returned while its stream's arm was still queued")
				}
				release()
				for range n {
					select {
					case err := <-closed:
						if err != nil {
							t.Errorf("Close: %v", err)
						}
					case <-time.After(5 * time.Second):
						t.Fatal("a Close never returned")
					}
				}
			case "engine":
				go func() { closed <- eng.Close() }()
				time.Sleep(20 * time.Millisecond)
				if len(closed) != 0 {
					t.Fatal("Engine.Close returned while stream arms were still queued")
				}
				release()
				select {
				case err := <-closed:
					if err != nil {
						t.Errorf("Engine.Close: %v", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("Engine.Close never returned")
				}
			case "fromHandler":
				// A handler (on the reaper) closes them: Close returns at once.
				x, px := rxPair(t, eng)
				ran := make(chan struct{})
				if err := x.ReceiveChunks(func(c *Chunk, err error) {
					if c == nil {
						return
					}
					c.Release()
					for _, s := range socks {
						if err := s.Close(); err != nil {
							t.Errorf("Close from a handler: %v", err)
						}
					}
					close(ran)
				}); err != nil {
					t.Fatal(err)
				}
				px.Write([]byte("go"))
				release()
				select {
				case <-ran:
				case <-time.After(5 * time.Second):
					t.Fatal("the closing handler never ran")
				}
				for i, s := range socks {
					if err := s.Close(); !errors.Is(err, ErrClosed) {
						t.Errorf("socket %d: second Close: %v, want ErrClosed", i, err)
					}
				}
			}
			for i, r := range recs {
				select {
				case <-r.done:
				case <-time.After(5 * time.Second):
					t.Fatalf("socket %d: no last call", i)
				}
				r.check(t, fmt.Sprintf("socket %d", i))
			}
			if q := u.armQLen(); q != 0 {
				t.Errorf("%d arms left in armQ", q)
			}
			eng.Close()
			if u.pool.out.Load() != 0 {
				t.Errorf("%d chunks out", u.pool.out.Load())
			}
		})
	}
}

// Engines with a locked reaper each, made and closed one after another,
// with a stream receive armed from the test goroutine: their threads and
// descriptors come back (a reaper that left its thread locked would end
// it; one that kept its ring fd registered would keep the ring alive).
func TestReview6EngineChurnThreadsAndFDs(t *testing.T) {
	cycle := func() {
		eng, err := NewEngine(EngineConfig{Backend: BackendIOURing, RecvBufferSize: 4096, RecvBuffers: 8})
		if err != nil {
			t.Skip(err)
		}
		s, p, err := dialPeerErr(eng)
		if err != nil {
			t.Fatal(err)
		}
		r := newEndRecorder()
		if err := s.ReceiveChunks(r.handle); errors.Is(err, ring.ErrNotSupported) {
			t.Skip(err)
		} else if err != nil {
			t.Fatal(err)
		}
		p.Write([]byte("x"))
		for deadline := time.Now().Add(5 * time.Second); r.chunks.Load() == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no chunk")
			}
		}
		if err := eng.Close(); err != nil {
			t.Fatal(err)
		}
		p.Close()
		r.check(t, "engine's stream")
	}
	cycle() // the runtime's threads for this test's shape exist now
	time.Sleep(10 * time.Millisecond)
	threads, fds := countDir(t, "/proc/self/task"), countDir(t, "/proc/self/fd")
	const rounds = 40
	for range rounds {
		cycle()
	}
	time.Sleep(10 * time.Millisecond)
	threads2, fds2 := countDir(t, "/proc/self/task"), countDir(t, "/proc/self/fd")
	t.Logf("threads %d → %d, fds %d → %d over %d engines", threads, threads2, fds, fds2, rounds)
	if fds2 != fds {
		t.Errorf("descriptors: %d before, %d after %d engines", fds, fds2, rounds)
	}
	if threads2 > threads+2 {
		t.Errorf("threads: %d before, %d after %d engines", threads, threads2, rounds)
	}
}

// An engine with two rings: streams are started from a handler running on
// the other ring's reaper (their arms handed over to the right reaper),
// relay each chunk to a socket of the other ring, and are closed from
// handlers on the other ring's reaper (Close returns at once there); every
// byte arrives in order, every stream ends once with ErrClosed, nothing
// stays out. (No other test runs an io_uring engine with Rings > 1.)
func TestReview6TwoRingsCrossRingStreams(t *testing.T) {
	eng := streamEngine(t, BackendIOURing, EngineConfig{Rings: 2, RecvBufferSize: 1024, RecvBuffers: 64})
	if len(eng.rings) != 2 {
		t.Fatalf("%d rings", len(eng.rings))
	}
	const n = 6
	type pair struct {
		in, out   *Socket
		pin, pout net.Conn
		rec       *endRecorder
	}
	var pairs []*pair
	for len(pairs) < n {
		in, pin := dialPeer(t, eng)
		out, pout := dialPeer(t, eng)
		if in.u == out.u {
			continue // want them on different rings
		}
		pairs = append(pairs, &pair{in: in, out: out, pin: pin, pout: pout, rec: newEndRecorder()})
	}
	var relayErrs atomic.Int32
	start := func(pp *pair) error {
		return pp.in.ReceiveChunks(func(c *Chunk, err error) {
			if c == nil {
				pp.rec.handle(nil, err)
				return
			}
			pp.rec.chunks.Add(1)
			a := &sendop.Args{UserToken: c}
			a.Completed = func(a *sendop.Args) {
				if a.Err() != nil && !errors.Is(a.Err(), syscall.ECANCELED) {
					relayErrs.Add(1)
				}
				a.UserToken.(*Chunk).Release()
			}
			a.SetBuffer(c.Bytes())
			if pending, err := pp.out.SendAsync(a); err != nil || !pending {
				if err != nil && !errors.Is(err, ErrClosed) {
					relayErrs.Add(1)
				}
				c.Release()
			}
		})
	}
	// A starter socket on each ring: its handler's first call starts the
	// streams of the relays whose input is on the other ring, its second
	// closes their sockets.
	type starter struct {
		s    *Socket
		p    net.Conn
		step atomic.Int32
		done chan error
	}
	starters := make(map[*uring]*starter)
	for len(starters) < 2 {
		s, p := dialPeer(t, eng)
		if starters[s.u] == nil {
			starters[s.u] = &starter{s: s, p: p, done: make(chan error, 1)}
		}
	}
	for u, st := range starters {
		var mine []*pair
		for _, pp := range pairs {
			if pp.in.u != u {
				mine = append(mine, pp)
			}
		}
		if err := st.s.ReceiveChunks(func(c *Chunk, err error) {
			if c == nil {
				return
			}
			c.Release()
			var first error
			switch st.step.Add(1) {
			case 1:
				for _, pp := range mine {
					if err := start(pp); err != nil && first == nil {
						first = fmt.Errorf("ReceiveChunks on the other ring's reaper: %w", err)
					}
				}
			case 2:
				for _, pp := range mine {
					for _, s := range []*Socket{pp.in, pp.out} {
						if err := s.Close(); err != nil && first == nil {
							first = fmt.Errorf("Close on the other ring's reaper: %w", err)
						}
					}
				}
			default:
				return
			}
			st.done <- first
		}); err != nil {
			t.Fatal(err)
		}
	}
	step := func() {
		for _, st := range starters {
			st.p.Write([]byte("x"))
		}
		for _, st := range starters {
			select {
			case err := <-st.done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("a starter's handler never ran")
			}
		}
	}
	step()
	// Every relay carries 256 KiB in order.
	const size = 256 << 10
	var wg sync.WaitGroup
	for i, pp := range pairs {
		wg.Add(2)
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(i*7 + j*13)
		}
		go func() {
			defer wg.Done()
			pp.pin.Write(data)
		}()
		go func() {
			defer wg.Done()
			got := make([]byte, size)
			pp.pout.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(pp.pout, got); err != nil {
				t.Errorf("relay %d: %v", i, err)
				return
			}
			if !bytes.Equal(got, data) {
				t.Errorf("relay %d: bytes differ", i)
			}
		}()
	}
	wg.Wait()
	if relayErrs.Load() != 0 {
		t.Fatalf("%d relay sends failed", relayErrs.Load())
	}
	step() // the closes, from the other ring's reaper
	for i, pp := range pairs {
		select {
		case <-pp.rec.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("relay %d: the stream never ended", i)
		}
		pp.rec.check(t, fmt.Sprintf("relay %d", i))
		for _, s := range []*Socket{pp.in, pp.out} {
			if err := s.Close(); !errors.Is(err, ErrClosed) {
				t.Errorf("relay %d: Close after the handler's: %v, want ErrClosed", i, err)
			}
		}
	}
	for _, st := range starters {
		st.s.Close()
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	for i, u := range eng.rings {
		if out := u.pool.out.Load(); out != 0 {
			t.Errorf("ring %d: %d chunks out", i, out)
		}
		if q := u.armQLen(); q != 0 {
			t.Errorf("ring %d: %d arms queued", i, q)
		}
	}
}

// A Completed handler may lock the thread it runs on and return (the
// contract forbids only more unlocks than locks): the reaper stays on its
// thread (ReaperThread, and the thread the next handlers run on), a Close
// from a later handler still knows it is on the raiser and returns at
// once, a stream started afterwards from another goroutine is still armed
// by the reaper, and when the engine closes the reaper's thread goes with
// it (Go ends a thread whose goroutine exits locked).
func TestReview6HandlerLeavesThreadLocked(t *testing.T) {
	eng := streamEngine(t, BackendIOURing, EngineConfig{RecvBufferSize: 4096})
	u := eng.rings[0]
	tid := u.r.ReaperThread()
	if tid == 0 {
		t.Fatal("no locked reaper")
	}
	a, pa := rxPair(t, eng)
	b, pb := rxPair(t, eng)
	c, _ := rxPair(t, eng)
	type seen struct {
		tid, reaper int32
		err         error
	}
	ran := make(chan seen, 2)
	ea := &sendop.Args{Completed: func(*sendop.Args) {
		runtime.LockOSThread() // never unlocked
		ran <- seen{tid: int32(unix.Gettid()), reaper: u.r.ReaperThread()}
	}}
	ea.SetBuffer(make([]byte, 8))
	if p, err := a.ReceiveAsync(ea); err != nil || !p {
		t.Fatalf("a: pending %v, err %v", p, err)
	}
	// c has a receive in the kernel: its Close has something to wait for.
	ec := &sendop.Args{Completed: func(*sendop.Args) {}}
	ec.SetBuffer(make([]byte, 8))
	if p, err := c.ReceiveAsync(ec); err != nil || !p {
		t.Fatalf("c: pending %v, err %v", p, err)
	}
	eb := &sendop.Args{Completed: func(*sendop.Args) {
		ran <- seen{tid: int32(unix.Gettid()), reaper: u.r.ReaperThread(), err: c.Close()}
	}}
	eb.SetBuffer(make([]byte, 8))
	if p, err := b.ReceiveAsync(eb); err != nil || !p {
		t.Fatalf("b: pending %v, err %v", p, err)
	}
	for i, p := range []net.Conn{pa, pb} {
		p.Write([]byte("x"))
		select {
		case got := <-ran:
			if got.tid != tid || got.reaper != tid || got.err != nil {
				t.Fatalf("handler %d: on thread %d, ReaperThread %d, Close %v; want thread %d, nil", i, got.tid, got.reaper, got.err, tid)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("handler %d never ran (a Close from it waited for the raiser?)", i)
		}
	}
	// A stream started here is still armed by the reaper, and works.
	s, ps := rxPair(t, eng)
	rec := newEndRecorder()
	if err := s.ReceiveChunks(rec.handle); err != nil {
		t.Fatal(err)
	}
	ps.Write([]byte("x"))
	for deadline := time.Now().Add(5 * time.Second); rec.chunks.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stream never received")
		}
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	rec.check(t, "stream")
	if int(tid) == unix.Getpid() {
		return // the main thread: Go parks it for good instead of ending it
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid)); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reaper's thread %d outlived the engine, locked", tid)
		}
	}
}

// tcpState is fd's TCP state (TCP_INFO), or -1.
func tcpStateOf(fd int) int {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return -1
	}
	return int(info.State)
}

// A TCP connection that ended gracefully both ways before its socket was
// adopted (FromFD) is in TCP_CLOSE, where getpeername fails: it had a
// peer all the same (hadPeer: tcpi_segs_in), so its receives read the
// bytes still queued and then the end of the stream — ReceiveAsync 0
// bytes with Success, ReceiveChunks io.EOF — not ErrNotConnected (which
// checkConnected's SO_ERROR test returned before 152abe6). Not checked
// elsewhere: the existing tests adopt reset connections.
func TestReview6FromFDAfterGracefulCloseReadsEOF(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		for _, chunks := range []bool{false, true} {
			a, b := tcpPair(t)
			defer a.Close()
			a.CloseWrite()
			b.Write([]byte("bye"))
			b.Close()
			s := fromDupFD(t, a, eng)
			defer s.Close()
			deadline := time.Now().Add(5 * time.Second)
			for tcpStateOf(s.FD()) != unix.BPF_TCP_CLOSE {
				if time.Now().After(deadline) {
					t.Fatalf("state %d, never TCP_CLOSE", tcpStateOf(s.FD()))
				}
				time.Sleep(time.Millisecond)
			}
			if _, err := peerAddr(s.FD()); err == nil {
				t.Fatal("getpeername works in TCP_CLOSE: the test checks nothing")
			}
			if chunks {
				k := newChunkSink()
				if err := s.ReceiveChunks(k.handle); errors.Is(err, ring.ErrNotSupported) {
					continue
				} else if err != nil {
					t.Fatalf("ReceiveChunks: %v", err)
				}
				if err := k.waitEnd(t); err != io.EOF {
					t.Fatalf("stream ended with %v, want io.EOF", err)
				}
				k.mu.Lock()
				got := k.h.b.String()
				k.mu.Unlock()
				if got != "bye" {
					t.Fatalf("stream received %q, want %q", got, "bye")
				}
				continue
			}
			var got []byte
			for range 2 {
				done := make(chan struct{})
				r := &sendop.Args{Completed: func(*sendop.Args) { close(done) }}
				r.SetBuffer(make([]byte, 16))
				pending, err := s.ReceiveAsync(r)
				if err != nil {
					t.Fatalf("ReceiveAsync: %v", err)
				}
				if pending {
					select {
					case <-done:
					case <-time.After(5 * time.Second):
						t.Fatal("no completion")
					}
				}
				if r.SocketError() != sendop.Success {
					t.Fatalf("receive: %v", r.SocketError())
				}
				got = append(got, r.Buffer()[:r.BytesTransferred()]...)
				if r.BytesTransferred() == 0 {
					break
				}
			}
			if string(got) != "bye" {
				t.Fatalf("received %q then the end, want %q", got, "bye")
			}
		}
	})
}

// Streams with small chunk limits (1–4) on a small pool (32 buffers), on
// one ring and on two: they park at their limit and on the empty pool
// (ENOBUFS) again and again, and are resumed by Releases from goroutines
// other than the reaper (streamResume → scheduleArm), at random moments;
// every byte arrives once, in order. Then half of them are closed from
// other goroutines while their peers still send, the rest by Engine.Close:
// each stream ends exactly once with ErrClosed, Engine.Close returns, no
// chunk stays out.
func TestReview6ParkResumeCloseStress(t *testing.T) {
	for _, rings := range []int{1, 2} {
		eng := streamEngine(t, BackendIOURing, EngineConfig{Rings: rings, RecvBuffers: 32, RecvBufferSize: 1024})
		const n = 8
		relCh := make(chan *Chunk, 1024)
		var rwg sync.WaitGroup
		for range 3 {
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				for c := range relCh {
					if rand.IntN(4) == 0 {
						time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
					}
					c.Release()
				}
			}()
		}
		type relay struct {
			in   *Socket
			pin  net.Conn
			rec  *endRecorder
			data bytes.Buffer
			mu   sync.Mutex
		}
		var relays []*relay
		for i := range n {
			in, pin := dialPeer(t, eng, WithChunkLimit(1+i%4))
			r := &relay{in: in, pin: pin, rec: newEndRecorder()}
			relays = append(relays, r)
		}
		var starters sync.WaitGroup
		for _, r := range relays {
			starters.Add(1)
			go func() {
				defer starters.Done()
				if err := r.in.ReceiveChunks(func(c *Chunk, err error) {
					if c == nil {
						r.rec.handle(nil, err)
						return
					}
					r.mu.Lock()
					r.data.Write(c.Bytes())
					r.mu.Unlock()
					relCh <- c
				}); err != nil {
					t.Error(err)
				}
			}()
		}
		starters.Wait()
		var wg sync.WaitGroup
		const size = 200 << 10
		want := make([]byte, size)
		for i := range want {
			want[i] = byte(i * 31)
		}
		for _, r := range relays {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.pin.Write(want)
			}()
		}
		wg.Wait()
		deadline := time.Now().Add(10 * time.Second)
		for i, r := range relays {
			for {
				r.mu.Lock()
				l := r.data.Len()
				r.mu.Unlock()
				if l == size {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("relay %d: %d of %d bytes", i, l, size)
				}
				time.Sleep(time.Millisecond)
			}
			r.mu.Lock()
			eq := bytes.Equal(r.data.Bytes(), want)
			r.mu.Unlock()
			if !eq {
				t.Fatalf("relay %d: bytes differ", i)
			}
		}
		// Half closed from other goroutines while data still flows, the rest by Engine.Close.
		for i, r := range relays {
			go r.pin.Write(want[:10000])
			if i%2 == 0 {
				wg.Add(1)
				go func() { defer wg.Done(); r.in.Close() }()
			}
		}
		wg.Wait()
		done := make(chan error, 1)
		go func() { done <- eng.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Engine.Close hung")
		}
		for i, r := range relays {
			select {
			case <-r.rec.done:
			case <-time.After(5 * time.Second):
				t.Fatalf("relay %d: no end", i)
			}
			r.rec.check(t, "relay")
		}
		close(relCh)
		rwg.Wait()
		for i, u := range eng.rings {
			if out := u.pool.out.Load(); out != 0 {
				t.Errorf("ring %d: %d out", i, out)
			}
		}
	}
}
