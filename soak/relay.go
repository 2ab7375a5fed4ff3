//go:build linux

package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// Relay and echo connections: the data path runs through the engine.
// A source writes a random stream into the relay's in-Socket; the relay
// keeps depth Args receiving on it (ReceiveAsync), and each, once its
// receive has completed, sends what it got on the out-Socket (SendAsync)
// and, once that send has completed, receives again — all from Completed
// handlers, except the first receives and what completes synchronously.
// The far end (a peer as the send connections have) reads and hashes what
// arrives. An echo connection is one Socket: in and out are the same, and
// the source's own connection reads back what it wrote. Half of the
// relays receive with ReceiveChunks instead of ReceiveAsync (chunks.go).
//
// Receives on a Socket complete in call order, but a synchronous result
// can be seen before the Completed of the receive ahead of it has run, so
// results are taken in receive order (a small reorder buffer), as a relay
// must.
//
// Faults: the source resets or closes early; the far end stalls, reads
// slowly, resets or closes; a Socket is closed from a handler or another
// goroutine; the relay's engine (of its own) is closed. Any error stops
// the relay, which then closes both Sockets, as a proxy would.
//
// Checked: every receive and send completed exactly once, with a result
// the faults explain; bytes received = a prefix of the source's stream
// (SHA-256), the far end's bytes = a prefix of those sent, exactly all of
// them unless the far end went away itself; no receive got bytes after one
// failed, no send after one stopped short; with no fault, everything
// written arrived and the relay saw the end of the stream.

// relayPlan is what one relay connection does.
type relayPlan struct {
	echo      bool
	in, out   plan // networks, batching and buffers; out.peer: the far end's fault
	ephemeral bool
	depth     int   // receives in flight, at most
	bufSize   int   // bytes per receive
	total     int64 // bytes the source writes
	chunk     int   // source: bytes per write, at most
	pauseUs   int   // source: pause between writes
	src       string
	srcAt     int64
	close     string // "", close-async, close-handler, engine-close-async, engine-close-handler
	closeOut  bool   // close the out-Socket (else in)
	closeAt   int
	delayUs   int

	// Chunk relays (chunks.go): the in-Socket receives with ReceiveChunks
	// (its limit is in.chunkLimit).
	chunks      bool
	pool        string // default (the shared engine's), shared-tiny (tinyPool's), own (an engine of its own)
	recvBufs    int    // own: the pool's buffers and their size
	recvBufSize int
	lateRelease bool // chunks released by a goroutine of the relay's, a while after their send completed
}

func (s *soak) newRelayPlan(rng *rand.Rand) relayPlan {
	base := func() plan {
		return plan{
			network:   []string{"tcp", "tcp-accept", "tcp-fromconn", "unix"}[rng.IntN(4)],
			batch:     rng.IntN(4) == 0,
			smallBufs: rng.IntN(2) == 0,
		}
	}
	p := relayPlan{
		echo:      rng.IntN(2) == 0,
		in:        base(),
		out:       base(),
		ephemeral: rng.IntN(6) == 0,
		depth:     1 + rng.IntN(4),
		bufSize:   []int{1, 1 + rng.IntN(512), 4 << 10, 16 << 10, 64 << 10}[rng.IntN(5)],
		total:     []int64{0, rng.Int64N(64 << 10), rng.Int64N(1 << 20), rng.Int64N(4 << 20)}[rng.IntN(4)],
		chunk:     []int{1 + rng.IntN(100), 4 << 10, 64 << 10}[rng.IntN(3)],
	}
	if rng.IntN(2) == 0 {
		p.chunks = true
		p.in.chunkLimit = []int{0, 1, 2, 4, 16, 64}[rng.IntN(6)]
		p.lateRelease = rng.IntN(3) == 0
		p.pool = []string{"default", "shared-tiny", "own"}[rng.IntN(3)]
		p.ephemeral = p.pool == "own"
		if p.ephemeral {
			p.recvBufs = []int{2, 4, 8, 16}[rng.IntN(4)]
			p.recvBufSize = []int{512, 1024, 1500, 4096}[rng.IntN(4)]
		}
	}
	// At most ~3000 writes (of chunk/2 on average), paused or not: a
	// relay ends in seconds.
	p.total = min(p.total, int64(p.chunk)*1500)
	if p.bufSize == 1 {
		p.total = min(p.total, 16<<10) // a byte per receive
	}
	if rng.IntN(4) == 0 {
		p.pauseUs = rng.IntN(300)
	}
	switch r := rng.IntN(12); {
	case r < 2:
		p.out.peer = "slow-reader"
	case r < 3:
		p.out.peer, p.out.peerAt, p.out.stallMs = "stall", rng.Int64N(1<<20), 20+rng.IntN(200)
	case r < 4:
		p.out.peer, p.out.peerAt = "peer-reset", rng.Int64N(max(1, p.total))
	case r < 5:
		p.out.peer, p.out.peerAt = "peer-close", rng.Int64N(max(1, p.total))
	case r < 7 && !p.echo:
		p.src, p.srcAt = "source-reset", rng.Int64N(max(1, p.total))
		if p.in.network == "unix" {
			p.src = "source-close"
		}
	case r < 8 && !p.echo:
		p.src, p.srcAt = "source-close", rng.Int64N(max(1, p.total))
	}
	switch r := rng.IntN(12); {
	case r < 2:
		p.close, p.delayUs = "close-async", rng.IntN(50_000)
	case r < 4:
		p.close, p.closeAt = "close-handler", 1+rng.IntN(200)
	case r < 6 && p.ephemeral:
		p.close, p.delayUs = "engine-close-async", rng.IntN(50_000)
	case r < 7 && p.ephemeral:
		p.close, p.closeAt = "engine-close-handler", 1+rng.IntN(200)
	}
	p.closeOut = !p.echo && rng.IntN(2) == 0
	if p.echo {
		p.out.network, p.out.batch, p.out.smallBufs = p.in.network, p.in.batch, p.in.smallBufs
	}
	return p
}

// rentry is one accepted receive or send of a relay.
type rentry struct {
	send    bool
	rseq    int // receives: the index among the receives
	size    int
	pending bool
	a       *rop
	chunk   *socket.Chunk // a chunk relay's send: the chunk it sends
	outcome
}

// rop is one of a relay's Args, with its buffer.
type rop struct {
	sendop.Args
	buf []byte
	ent *rentry
}

type relay struct {
	s   *soak
	id  uint64
	p   relayPlan
	eng *engine

	in, out           *socket.Socket
	closeIn, closeOut func() error

	mu      sync.Mutex // serializes the relay's ReceiveAsync and SendAsync calls and guards what follows
	log     []*rentry
	ready   map[int]*rop // completed receives, by rseq, not yet taken
	next    int          // the rseq taken next
	nrecv   int          // receives issued
	sending int          // sends not completed
	stopped bool         // an error: relay nothing more
	eof     bool         // the end of the stream was taken
	h       hash.Hash    // what the receives got, in order
	recvd   int64

	left        atomic.Int64 // accepted, not completed
	busy        atomic.Int64 // handlers running
	completions atomic.Int64
	closedEarly atomic.Bool // a Socket or the engine was closed before the end of the stream
	engClosed   atomic.Bool
	inClosed    atomic.Bool
	outClosed   atomic.Bool
}

// source is the writing end: a stream of pool slices.
type source struct {
	c       net.Conn
	chunks  [][]byte
	written int64
	err     error
	faulted bool
	done    chan struct{}
}

func (s *soak) relayConnection(rng *rand.Rand, be string, id uint64) {
	p := s.newRelayPlan(rng)
	var eng *engine
	release := func() {}
	switch {
	case p.pool == "shared-tiny":
		eng = s.engines[tinyPool(be)]
	case p.pool == "own":
		eng, release = s.ephemeralEngine(rng, be, fmt.Sprintf("relay %d", id), func(c *socket.EngineConfig) {
			c.RecvBuffers, c.RecvBufferSize = p.recvBufs, p.recvBufSize
		})
	default:
		eng, release = s.engineFor(rng, be, p.ephemeral, fmt.Sprintf("relay %d", id))
	}
	if eng == nil {
		return
	}
	defer release()
	r := &relay{s: s, id: id, p: p, eng: eng, ready: map[int]*rop{}, h: sha256.New()}
	in, srcConn, closeIn, err := s.open(r.eng, p.in, id)
	if err != nil {
		s.violation("setup", "relay %d: %s: %v", id, p.in.network, err)
		return
	}
	r.in, r.closeIn = in, closeIn
	sinkConn := srcConn
	if p.echo {
		r.out, r.closeOut = in, closeIn
	} else {
		out, c, closeOut, err := s.open(r.eng, p.out, id|1<<62)
		if err != nil {
			s.violation("setup", "relay %d: %s: %v", id, p.out.network, err)
			closeIn()
			srcConn.Close()
			return
		}
		r.out, r.closeOut, sinkConn = out, closeOut, c
	}
	s.conns.Add(1)
	kind := "relay"
	if p.echo {
		kind = "echo"
	}
	if p.chunks {
		kind += "-chunks"
	}
	s.kind(kind)
	for _, f := range []string{p.out.peer, p.src, p.close} {
		if f != "" {
			s.fault(f)
		}
	}

	sink := startPeer(sinkConn, p.out)
	src := startSource(srcConn, p, rand.New(rand.NewPCG(rng.Uint64(), id)), &s.stop)

	var faulters sync.WaitGroup
	switch p.close {
	case "close-async":
		faulters.Go(func() {
			time.Sleep(time.Duration(p.delayUs) * time.Microsecond)
			r.closeFault()
		})
	case "engine-close-async":
		faulters.Go(func() {
			time.Sleep(time.Duration(p.delayUs) * time.Microsecond)
			r.closeEngine()
		})
	}

	var cr *chunkRelay
	if p.chunks {
		cr = r.startChunks(rand.New(rand.NewPCG(rng.Uint64(), id)))
	} else {
		r.mu.Lock()
		for range p.depth {
			a := &rop{buf: make([]byte, p.bufSize)}
			a.Completed = r.completed
			r.receive(a)
		}
		stop := r.pump()
		r.mu.Unlock()
		r.after(stop)
	}

	// The relay ends by itself: at the end of the stream, or stopped by
	// an error, it closes both Sockets; then every receive and send has
	// completed (and a chunk relay's last call has come and every chunk
	// has been released).
	finished := func() bool {
		return r.inClosed.Load() && r.outClosed.Load() && r.left.Load() == 0 && r.busy.Load() == 0 && cr.settled()
	}
	// A hang is a relay that stops moving, not one that is slow: tiny
	// buffers (a few bytes per receive) relaying megabytes on a loaded
	// machine can take minutes, one completion after the other.
	if !r.waitProgress(30*time.Second, finished) {
		r.mu.Lock()
		s.violation("hang", "relay %d on %s (%+v): stuck (nothing completed for 30 s): %d operations pending, eof=%v stopped=%v sending=%d received=%d (source wrote %d)%s",
			id, r.in.Backend(), p, r.left.Load(), r.eof, r.stopped, r.sending, r.recvd, src.written, cr.stateLocked())
		r.mu.Unlock()
		r.closedEarly.Store(true)
		r.closeBoth()
		if !waitFor(10*time.Second, finished) {
			r.mu.Lock()
			s.violation("hang", "relay %d: %d operations never completed, even after Close%s", id, r.left.Load(), cr.stateLocked())
			r.mu.Unlock()
			return
		}
	}
	cr.stop()
	faulters.Wait()
	if !src.wait(30 * time.Second) {
		s.violation("hang", "relay %d (%+v): the source never finished (%d bytes written)", id, p, src.written)
		srcConn.Close()
		src.wait(10 * time.Second)
	}
	if !sink.wait(30 * time.Second) {
		s.violation("hang", "relay %d (%+v): the far end never saw the end of the stream (%d bytes read)", id, p, sink.n)
		sinkConn.Close()
		sink.wait(10 * time.Second)
	}
	srcConn.Close()
	r.verify(src, sink)
	cr.verify(src, sink)
}

// startSource writes p.total bytes (or until the soak ends) to c, then
// half-closes it; or resets or closes it early, as the plan says.
func startSource(c net.Conn, p relayPlan, rng *rand.Rand, stop *atomic.Bool) *source {
	w := &source{c: c, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for w.written < p.total && !stop.Load() {
			if p.src != "" && w.written >= p.srcAt {
				w.faulted = true
				if tc, ok := c.(*net.TCPConn); ok && p.src == "source-reset" {
					tc.SetLinger(0)
				}
				c.Close()
				return
			}
			b := poolSlice(rng, int(min(int64(1+rng.IntN(p.chunk)), p.total-w.written)))
			w.chunks = append(w.chunks, b)
			n, err := writeNoSignal(c, b)
			w.written += int64(n)
			if err != nil {
				w.err = err
				return
			}
			if p.pauseUs > 0 {
				time.Sleep(time.Duration(rng.IntN(p.pauseUs+1)) * time.Microsecond)
			}
		}
		type closeWriter interface{ CloseWrite() error }
		if cw, ok := c.(closeWriter); ok {
			if err := cw.CloseWrite(); err != nil {
				w.err = err
			}
		}
	}()
	return w
}

func (w *source) wait(d time.Duration) bool { return waitClosed(w.done, d) }

// prefix hashes the first n bytes the source wrote.
func (w *source) prefix(n int64) [32]byte {
	h := sha256.New()
	for _, b := range w.chunks {
		if n == 0 {
			break
		}
		k := min(int64(len(b)), n)
		h.Write(b[:k])
		n -= k
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// completed is every Completed of the relay's Args.
func (r *relay) completed(e *sendop.Args) {
	// Counted first: the relay is finished when nothing is left and no
	// handler still runs (record counts this one done before pump hashes).
	r.busy.Add(1)
	defer r.busy.Add(-1)
	ent := e.UserToken.(*rentry)
	r.record(ent, e, true)
	r.mu.Lock()
	a := ent.a
	if ent.send {
		r.sending--
		switch {
		case ent.se != sendop.Success:
			r.stopped = true
		case !r.stopped && !r.eof:
			r.receive(a)
		}
	} else {
		r.ready[ent.rseq] = a
	}
	stop := r.pump()
	r.mu.Unlock()
	r.after(stop)
	r.tick()
}

// tick counts a completion (a chunk relay's handler calls too) and
// injects close-handler's and engine-close-handler's fault at closeAt.
func (r *relay) tick() {
	if k := r.completions.Add(1); k == int64(r.p.closeAt) {
		switch r.p.close {
		case "close-handler":
			r.closeFault()
		case "engine-close-handler":
			r.closeEngine()
		}
	}
}

// waitProgress waits until finished, or until no receive or send of the
// relay has completed for quiet; it reports whether it finished.
func (r *relay) waitProgress(quiet time.Duration, finished func() bool) bool {
	moved := func() int64 { // completions raised, and bytes received (synchronous ones too)
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.completions.Load() + r.recvd
	}
	for {
		n := moved()
		if waitFor(quiet, func() bool { return finished() || moved() != n }) && !finished() {
			continue // progress: wait again
		}
		return finished()
	}
}

// receive starts a receive with a, with r.mu held. A synchronous result
// joins the ready ones.
func (r *relay) receive(a *rop) {
	ent := &rentry{rseq: r.nrecv, size: len(a.buf), a: a}
	a.ent = ent
	a.UserToken = ent
	a.SetBuffer(a.buf)
	pending, err := r.in.ReceiveAsync(&a.Args)
	if err != nil {
		r.refused("ReceiveAsync", err)
		r.stopped = true
		return
	}
	r.nrecv++
	r.log = append(r.log, ent)
	r.left.Add(1)
	ent.pending = pending
	if !pending {
		r.record(ent, &a.Args, false)
		r.ready[ent.rseq] = a
	}
}

// send sends the first n bytes of a's buffer, with r.mu held.
func (r *relay) send(a *rop, n int) {
	ent := &rentry{send: true, size: n, a: a}
	a.ent = ent
	a.UserToken = ent
	a.SetBuffer(a.buf[:n])
	pending, err := r.out.SendAsync(&a.Args)
	if err != nil {
		r.refused("SendAsync", err)
		r.stopped = true
		return
	}
	r.log = append(r.log, ent)
	r.left.Add(1)
	ent.pending = pending
	if pending {
		r.sending++
		return
	}
	r.record(ent, &a.Args, false)
	if ent.se != sendop.Success {
		r.stopped = true
		return
	}
	if !r.eof && !r.stopped {
		r.receive(a)
	}
}

// pump takes the ready receives in order, with r.mu held: each one's
// bytes are sent, and its Args receives again once the send completes.
// It reports what is to be done without the lock: close both Sockets
// (stopped), or the end of the stream has been relayed.
func (r *relay) pump() (closeNow bool) {
	for {
		a, ok := r.ready[r.next]
		if !ok {
			break
		}
		delete(r.ready, r.next)
		r.next++
		ent := a.ent
		switch {
		case ent.se != sendop.Success:
			r.stopped = true
		case ent.n == 0:
			r.eof = true
		case ent.n > len(a.buf):
			r.s.violation("result", "relay %d: receive %d: %d bytes into %d", r.id, ent.rseq, ent.n, len(a.buf))
			r.stopped = true
		default:
			r.h.Write(a.buf[:ent.n])
			r.recvd += int64(ent.n)
			if !r.stopped {
				r.send(a, ent.n)
			}
		}
	}
	return r.stopped || r.eof && r.sending == 0
}

// after closes both Sockets when pump says so.
func (r *relay) after(closeNow bool) {
	if !closeNow {
		return
	}
	r.mu.Lock()
	early := r.stopped
	r.mu.Unlock()
	if early {
		r.closedEarly.Store(true)
	}
	r.closeBoth()
}

func (r *relay) closeBoth() {
	r.closeSock(false)
	r.closeSock(true)
}

// closeSock closes the in- or the out-Socket, once.
func (r *relay) closeSock(out bool) {
	flag, closeFn := &r.inClosed, r.closeIn
	if out || r.p.echo {
		flag, closeFn = &r.outClosed, r.closeOut
	}
	if !flag.CompareAndSwap(false, true) {
		return
	}
	if err := closeFn(); err != nil && !(errors.Is(err, socket.ErrClosed) && r.engClosed.Load()) {
		r.s.violation("close", "relay %d: Close: %v", r.id, err)
	}
	if r.p.echo {
		r.inClosed.Store(true) // one Socket
	}
}

// closeFault closes one Socket as a fault; the relay notices and closes
// the other.
func (r *relay) closeFault() {
	r.closedEarly.Store(true)
	r.closeSock(r.p.closeOut)
}

// closeEngine closes the relay's engine of its own, as a fault.
func (r *relay) closeEngine() {
	if !r.engClosed.CompareAndSwap(false, true) {
		return
	}
	r.closedEarly.Store(true)
	if err := r.eng.Close(); err != nil {
		r.s.violation("close", "relay %d: Engine.Close: %v", r.id, err)
	}
}

func (r *relay) refused(what string, err error) {
	if errors.Is(err, socket.ErrClosed) && (r.closedEarly.Load() || r.inClosed.Load() || r.outClosed.Load()) {
		return
	}
	r.s.violation("refused", "relay %d: %s: %v", r.id, what, err)
}

func (r *relay) record(ent *rentry, e *sendop.Args, raised bool) {
	if !ent.complete(e, raised) {
		r.s.violation("twice", "relay %d: an operation completed twice", r.id)
		return
	}
	r.left.Add(-1)
	if ent.send {
		r.s.ops.Add(1)
		r.s.bytes.Add(int64(ent.n))
	} else {
		r.s.recvs.Add(1)
		r.s.recvBytes.Add(int64(ent.n))
	}
}

// verify checks a finished relay.
func (r *relay) verify(src *source, sink *peer) {
	s, p := r.s, r.p
	early := r.closedEarly.Load()
	farFault := sink.faulted // the far end reset or closed
	srcFault := src.faulted && p.src == "source-reset"
	if p.echo {
		srcFault = farFault
	}
	var sent int64
	rcut, scut := -1, -1
	for i, ent := range r.log {
		what := "receive"
		allowed := ent.se == sendop.Success ||
			ent.se == sendop.OperationAborted && (early || !ent.send) ||
			ent.se == sendop.ConnectionReset && (!ent.send && srcFault || ent.send && farFault)
		if ent.send {
			what = "send"
			allowed = allowed || ent.se == sendop.Shutdown && farFault
		}
		switch {
		case ent.done != 1:
			s.violation("exactly-once", "relay %d: %s %d completed %d times", r.id, what, i, ent.done)
		case ent.pending && ent.raised != 1 || !ent.pending && ent.raised != 0:
			s.violation("exactly-once", "relay %d: %s %d: pending=%v, Completed raised %d times", r.id, what, i, ent.pending, ent.raised)
		case ent.msg != "":
			s.violation("result", "relay %d: %s %d: %s", r.id, what, i, ent.msg)
		case !allowed:
			s.violation("result", "relay %d on %s (%+v): %s %d: %v with %d of %d bytes", r.id, r.in.Backend(), p, what, i, ent.se, ent.n, ent.size)
		case ent.send && ent.se == sendop.Success && ent.n != ent.size:
			s.violation("result", "relay %d: send %d: Success with %d of %d bytes", r.id, i, ent.n, ent.size)
		case ent.se != sendop.Success && (ent.n < 0 || ent.n >= ent.size && ent.size > 0 || !ent.send && ent.n != 0):
			s.violation("result", "relay %d: %s %d: %v with %d of %d bytes", r.id, what, i, ent.se, ent.n, ent.size)
		case ent.send && scut >= 0 && ent.n > 0:
			s.violation("gap", "relay %d: send %d sent %d bytes after send %d stopped short", r.id, i, ent.n, scut)
		case !ent.send && rcut >= 0 && ent.n > 0:
			s.violation("gap", "relay %d on %s (%+v): receive %d got %d bytes after receive %d failed with %v (closed early: %v)",
				r.id, r.in.Backend(), p, i, ent.n, rcut, r.log[rcut].se, early)
		}
		if ent.send {
			if scut < 0 && ent.n < ent.size {
				scut = i
			}
			sent += int64(ent.n)
		} else if rcut < 0 && ent.se != sendop.Success {
			rcut = i
		}
	}
	s.relayed.Add(sent)
	var got [32]byte
	copy(got[:], r.h.Sum(nil))
	clean := !early && !farFault && !srcFault && !r.stopped
	switch {
	case r.recvd > src.written:
		s.violation("receive", "relay %d: received %d bytes, the source wrote %d", r.id, r.recvd, src.written)
	case got != src.prefix(r.recvd):
		s.violation("receive", "relay %d (%+v): the %d bytes received differ from what the source wrote (SHA-256)", r.id, p, r.recvd)
	case sent > r.recvd:
		s.violation("receive", "relay %d: sent %d bytes, received %d", r.id, sent, r.recvd)
	case clean && (!r.eof || r.recvd != src.written || sent != r.recvd):
		s.violation("receive", "relay %d (%+v): no fault, but eof=%v, %d bytes written, %d received, %d sent", r.id, p, r.eof, src.written, r.recvd, sent)
	case clean && src.err != nil:
		s.violation("receive", "relay %d (%+v): no fault, but the source's write failed: %v", r.id, p, src.err)
	}
	// The far end: all that was sent, or a prefix if it went away (or,
	// echoing, the relay closed before the end: its reset may cut it).
	cut := farFault || p.echo && early
	switch {
	case sink.err != nil && !cut:
		s.violation("receive", "relay %d (%+v): the far end's read failed: %v", r.id, p, sink.err)
	case !cut && sink.n != sent:
		s.violation("receive", "relay %d (%+v): the far end read %d bytes, %d were reported sent", r.id, p, sink.n, sent)
	case sink.n > sent:
		s.violation("receive", "relay %d: the far end read %d bytes, only %d were reported sent", r.id, sink.n, sent)
	case sink.sum != src.prefix(sink.n):
		s.violation("receive", "relay %d (%+v): the far end's %d bytes differ from the source's (SHA-256)", r.id, p, sink.n)
	}
}

// writeNoSignal writes b to c with MSG_NOSIGNAL: the soak counts SIGPIPEs
// (which net.Conn.Write would raise once the relay has gone), and every
// one must be the product's.
func writeNoSignal(c net.Conn, b []byte) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c.Write(b)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	n := 0
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			k, err := unix.SendmsgN(int(fd), b[n:], nil, nil, unix.MSG_NOSIGNAL)
			switch {
			case err == unix.EAGAIN:
				return false
			case err == unix.EINTR:
				continue
			case err != nil:
				werr = err
				return true
			}
			n += k
		}
		return true
	})
	if werr == nil {
		werr = err
	}
	return n, werr
}
