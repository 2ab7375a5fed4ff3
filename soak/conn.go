//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// plan is what one connection does: its kind, its load and its faults.
type plan struct {
	network   string // tcp, tcp-accept, tcp-fromconn, unix
	batch     bool
	smallBufs bool
	ephemeral bool // on an engine of its own (tiny rings), closed at the end
	sends     int
	window    int // window mode: sends in flight, at most
	chains    int // > 0: chains that resend from Completed instead of a window
	maxSize   int
	maxSegs   int

	peer    string // "", slow-reader, stall, peer-reset, peer-close
	peerAt  int64  // bytes read before the peer's fault
	stallMs int

	close   string // "", close-async, close-handler, close-sender, engine-close-async, engine-close-handler
	closeAt int    // close-handler / close-sender: after this many completions / sends
	delayUs int    // close-async: after this long

	chunkLimit int // a chunk relay's in-Socket: WithChunkLimit, if > 0 (chunks.go)
}

func (s *soak) newPlan(rng *rand.Rand) plan {
	p := plan{
		network:   []string{"tcp", "tcp-accept", "tcp-fromconn", "unix"}[rng.IntN(4)],
		batch:     rng.IntN(4) == 0,
		smallBufs: rng.IntN(2) == 0,
		ephemeral: rng.IntN(8) == 0,
		sends:     1 + rng.IntN(s.cfg.maxSends),
		window:    1 + rng.IntN(s.cfg.window),
		maxSize:   []int{512, 4 << 10, 64 << 10}[rng.IntN(3)],
		maxSegs:   []int{0, 4, 16}[rng.IntN(3)],
	}
	if rng.IntN(3) == 0 {
		p.chains = 1 + rng.IntN(4)
	}
	switch r := rng.IntN(12); {
	case r < 2:
		p.peer = "slow-reader"
	case r < 4:
		p.peer, p.peerAt, p.stallMs = "stall", rng.Int64N(1<<20), 20+rng.IntN(200)
	case r < 6:
		p.peer, p.peerAt = "peer-reset", rng.Int64N(2<<20)
	case r < 7:
		p.peer, p.peerAt = "peer-close", rng.Int64N(2<<20)
	}
	switch r := rng.IntN(12); {
	case r < 2:
		p.close, p.delayUs = "close-async", rng.IntN(50_000)
	case r < 4:
		p.close, p.closeAt = "close-handler", 1+rng.IntN(max(1, p.sends))
	case r < 5:
		p.close, p.closeAt = "close-sender", rng.IntN(max(1, p.sends))
	case r < 7 && p.ephemeral:
		p.close, p.delayUs = "engine-close-async", rng.IntN(50_000)
	case r < 8 && p.ephemeral:
		p.close, p.closeAt = "engine-close-handler", 1+rng.IntN(max(1, p.sends))
	}
	return p
}

// entry is one accepted send.
type entry struct {
	sh      shape
	size    int // udp: sh.total(), kept when sh is let go
	pending bool
	outcome
}

// outcome is what the completions of one accepted operation (a send or
// a relay's receive) left.
type outcome struct {
	mu     sync.Mutex
	done   int // completions: must end at exactly 1
	raised int // of which through Completed
	n      int
	se     sendop.SocketError
	msg    string
}

// complete counts a completion of e (raised: through Completed) and keeps
// the first one's result; it reports whether this one was the first.
func (o *outcome) complete(e *sendop.Args, raised bool) (first bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	first = o.done == 0
	if first {
		o.n, o.se, o.msg = e.BytesTransferred(), e.SocketError(), resultError(e)
	}
	o.done++
	if raised {
		o.raised++
	}
	return first
}

// conn is one connection under test.
type conn struct {
	s    *soak
	id   uint64
	p    plan
	eng  *engine
	sock *socket.Socket

	mu  sync.Mutex // serializes SendAsync; guards log and rng
	log []*entry
	rng *rand.Rand

	left        atomic.Int64 // accepted, not completed
	completions atomic.Int64
	remaining   atomic.Int64 // sends the plan still allows
	stopSending atomic.Bool
	sawError    atomic.Bool
	closedEarly atomic.Bool // closed (socket or engine) before the end
	closeOnce   atomic.Bool
	engClosed   atomic.Bool
	free        chan *slot
	chains      atomic.Int64 // chains still running

	udp bool     // datagrams to a udpPeer (udp.go)
	run dgramRun // udp: the datagram length generator, guarded by mu
}

// slot is an Args of the connection's window or chains, reused.
type slot struct {
	sendop.Args
}

// connection runs one connection of a random kind: stream sends (most),
// UDP datagrams (udp.go), or a relay or echo through ReceiveAsync
// (relay.go) or ReceiveChunks (chunks.go).
func (s *soak) connection(rng *rand.Rand, be string, id uint64) {
	switch r := rng.IntN(20); {
	case r < 5:
		s.relayConnection(rng, be, id)
	case r < 10:
		p := s.newPlan(rng)
		p.network = []string{"udp", "udp6"}[rng.IntN(2)]
		p.batch = rng.IntN(4) != 0
		if p.peer == "peer-reset" {
			p.peer = "" // no such thing on UDP
		}
		s.sendConnection(rng, be, id, p)
	default:
		s.sendConnection(rng, be, id, s.newPlan(rng))
	}
}

// sendConnection runs one connection that sends by plan p.
func (s *soak) sendConnection(rng *rand.Rand, be string, id uint64, p plan) {
	c := &conn{s: s, id: id, p: p, rng: rand.New(rand.NewPCG(rng.Uint64(), id))}
	c.udp = p.network == "udp" || p.network == "udp6"
	eng, release := s.engineFor(rng, be, p.ephemeral, fmt.Sprintf("conn %d", id))
	if eng == nil {
		return
	}
	defer release()
	c.eng = eng
	var (
		sock      *socket.Socket
		pc        net.Conn
		closeSock func() error
		u         *udpPeer
		r         *peer
		err       error
	)
	if c.udp {
		sock, u, err = s.openUDP(c.eng, p, rng)
		closeSock = func() error { return sock.Close() }
	} else {
		sock, pc, closeSock, err = s.open(c.eng, p, id)
	}
	if err != nil {
		s.violation("setup", "conn %d: %s: %v", id, p.network, err)
		return
	}
	c.sock = sock
	s.conns.Add(1)
	if c.udp {
		s.kind("udp")
	} else {
		s.kind("send")
		r = startPeer(pc, p)
	}
	if p.peer != "" {
		s.fault(p.peer)
	}
	if p.close != "" {
		s.fault(p.close)
	}
	c.remaining.Store(int64(p.sends))

	var faulters sync.WaitGroup
	switch p.close {
	case "close-async":
		faulters.Go(func() {
			time.Sleep(time.Duration(p.delayUs) * time.Microsecond)
			c.closeEarly(closeSock)
		})
	case "engine-close-async":
		faulters.Go(func() {
			time.Sleep(time.Duration(p.delayUs) * time.Microsecond)
			c.closeEngine()
		})
	}
	handlerClose := func() {
		switch k := c.completions.Add(1); {
		case p.close == "close-handler" && k == int64(p.closeAt):
			c.closeEarly(closeSock)
		case p.close == "engine-close-handler" && k == int64(p.closeAt):
			c.closeEngine()
		}
	}

	if p.chains == 0 {
		c.free = make(chan *slot, p.window)
		for range p.window {
			a := &slot{}
			a.Completed = func(e *sendop.Args) {
				c.completed(e)
				handlerClose()
				c.free <- a
			}
			c.free <- a
		}
		c.windowLoop(closeSock)
	} else {
		for range p.chains {
			a := &slot{}
			c.chains.Add(1)
			a.Completed = func(e *sendop.Args) {
				c.completed(e)
				handlerClose()
				c.chain(a)
			}
			c.chain(a)
		}
	}

	// Drain: the chains end, every accepted send completes.
	c.stopSending.Store(true)
	if !waitFor(30*time.Second, func() bool { return c.chainsDone() && c.left.Load() == 0 }) {
		s.violation("hang", "conn %d (%+v): %d sends never completed (of %d)", id, p, c.left.Load(), len(c.log))
		c.closeEarly(closeSock)
		if !waitFor(10*time.Second, func() bool { return c.chainsDone() && c.left.Load() == 0 }) {
			s.violation("hang", "conn %d: %d sends never completed, even after Close", id, c.left.Load())
			return // leaks what is left; the end checks will say so
		}
	}
	faulters.Wait()
	if c.closeOnce.CompareAndSwap(false, true) {
		// nil, or ErrClosed if the engine closed the socket already.
		if err := closeSock(); err != nil && !(errors.Is(err, socket.ErrClosed) && c.engClosed.Load()) {
			s.violation("close", "conn %d: Close: %v", id, err)
		}
	}
	if c.udp {
		var ok int64
		for _, ent := range c.log {
			if ent.se == sendop.Success {
				ok++
			}
		}
		if !u.wait(30*time.Second, ok) {
			s.violation("hang", "conn %d: the UDP receiver never finished (%d datagrams)", id, len(u.events))
			return
		}
		c.verifyUDP(u)
		return
	}
	if !r.wait(30 * time.Second) {
		s.violation("hang", "conn %d: the peer never saw the end of the stream (%d bytes read)", id, r.n)
		pc.Close()
		r.wait(10 * time.Second)
	}
	c.verify(r)
}

// open makes the connection: the Socket, its peer, and how to close the
// Socket (and, for FromConn, the connection under it).
func (s *soak) open(eng *engine, p plan, id uint64) (*socket.Socket, net.Conn, func() error, error) {
	var opts []socket.Option
	opts = append(opts, socket.WithEngine(eng.Engine))
	if p.batch {
		opts = append(opts, socket.WithBatching())
	}
	if p.chunkLimit > 0 {
		opts = append(opts, socket.WithChunkLimit(p.chunkLimit))
	}
	rcvbuf := func(_, _ string, rc syscall.RawConn) error {
		if p.smallBufs {
			rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<10) })
		}
		return nil
	}
	shrink := func(sock *socket.Socket) {
		if p.smallBufs {
			unix.SetsockoptInt(sock.FD(), unix.SOL_SOCKET, unix.SO_SNDBUF, 16<<10)
		}
	}
	network, addr := "tcp", "127.0.0.1:0"
	if p.network == "unix" {
		network, addr = "unix", filepath.Join(s.dir, fmt.Sprint(id))
	}
	switch p.network {
	case "tcp-accept":
		l, err := socket.Listen("tcp", "127.0.0.1:0", opts...)
		if err != nil {
			return nil, nil, nil, err
		}
		defer l.Close()
		d := net.Dialer{Control: rcvbuf}
		peer, err := d.Dial("tcp", l.Addr().String())
		if err != nil {
			return nil, nil, nil, err
		}
		sock, err := l.Accept()
		if err != nil {
			peer.Close()
			return nil, nil, nil, err
		}
		shrink(sock)
		return sock, peer, sock.Close, nil
	}
	lc := net.ListenConfig{Control: rcvbuf}
	l, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, nil, nil, err
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	var sock *socket.Socket
	closeSock := func() error { return sock.Close() }
	if p.network == "tcp-fromconn" {
		c, err := net.Dial(network, l.Addr().String())
		if err == nil {
			sock, err = socket.FromConn(c, opts...)
			if err != nil {
				c.Close()
			}
		}
		if err != nil {
			l.Close()
			if p := <-accepted; p != nil {
				p.Close()
			}
			return nil, nil, nil, err
		}
		closeSock = func() error {
			err := sock.Close()
			c.Close()
			return err
		}
	} else {
		sock, err = socket.Dial(network, l.Addr().String(), opts...)
		if err != nil {
			l.Close()
			if p := <-accepted; p != nil {
				p.Close()
			}
			return nil, nil, nil, err
		}
	}
	peer := <-accepted
	if peer == nil {
		closeSock()
		return nil, nil, nil, errors.New("accept failed")
	}
	shrink(sock)
	return sock, peer, closeSock, nil
}

// closeEarly closes the socket as a fault, once.
func (c *conn) closeEarly(closeSock func() error) {
	if !c.closeOnce.CompareAndSwap(false, true) {
		return
	}
	c.closedEarly.Store(true)
	c.stopSending.Store(true)
	if err := closeSock(); err != nil && !(errors.Is(err, socket.ErrClosed) && c.engClosed.Load()) {
		c.s.violation("close", "conn %d: Close (%s): %v", c.id, c.p.close, err)
	}
}

// closeEngine closes the connection's engine of its own, as a fault.
func (c *conn) closeEngine() {
	if !c.engClosed.CompareAndSwap(false, true) {
		return
	}
	c.closedEarly.Store(true)
	c.stopSending.Store(true)
	if err := c.eng.Close(); err != nil {
		c.s.violation("close", "conn %d: Engine.Close: %v", c.id, err)
	}
}

func (c *conn) chainsDone() bool { return c.chains.Load() == 0 }

// send sends a new shape with a, recording it if accepted.
func (c *conn) send(a *slot) (pending bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sh shape
	if c.udp {
		sh = c.udpShape(len(c.log))
	} else {
		sh = randomShape(c.rng, c.p.maxSize, c.p.maxSegs)
	}
	return c.sendShape(a, sh)
}

// sendShape sends sh with a and records it if accepted; c.mu is held.
func (c *conn) sendShape(a *slot, sh shape) (pending bool, err error) {
	sh.apply(&a.Args)
	ent := &entry{sh: sh}
	a.UserToken = len(c.log)
	pending, err = c.sock.SendAsync(&a.Args)
	if err != nil {
		return false, err
	}
	c.log = append(c.log, ent)
	c.left.Add(1)
	ent.pending = pending
	if !pending {
		c.record(ent, &a.Args, false)
	}
	return pending, nil
}

// refused handles an error from SendAsync: ErrClosed once the socket or
// its engine was closed is expected; anything else is a violation.
func (c *conn) refused(err error) {
	if errors.Is(err, socket.ErrClosed) && c.closedEarly.Load() {
		return
	}
	c.s.violation("refused", "conn %d: SendAsync: %v", c.id, err)
}

// completed records a Completed; it runs first in every handler.
func (c *conn) completed(e *sendop.Args) {
	c.mu.Lock()
	ent := c.log[e.UserToken.(int)]
	c.mu.Unlock()
	c.record(ent, e, true)
}

func (c *conn) record(ent *entry, e *sendop.Args, raised bool) {
	if !ent.complete(e, raised) {
		c.s.violation("twice", "conn %d: a send completed twice", c.id)
		return
	}
	if c.udp {
		// The receiver checks datagrams against the pool: the log
		// needs only the length.
		ent.size, ent.sh = ent.sh.total(), shape{}
	}
	c.left.Add(-1)
	c.s.ops.Add(1)
	c.s.bytes.Add(int64(ent.n))
	if ent.se != sendop.Success && !(c.udp && ent.se == sendop.MessageSize) {
		c.sawError.Store(true)
	}
}

func (c *conn) keepSending() bool {
	return !c.s.stop.Load() && !c.stopSending.Load() && !c.sawError.Load() && c.remaining.Add(-1) >= 0
}

// windowLoop sends with at most p.window sends in flight.
func (c *conn) windowLoop(closeSock func() error) {
	for i := 0; c.keepSending(); i++ {
		if c.p.close == "close-sender" && i == c.p.closeAt {
			c.closeEarly(closeSock)
			return
		}
		var a *slot
		select {
		case a = <-c.free:
		case <-time.After(30 * time.Second):
			c.s.violation("hang", "conn %d: no send of the window completed for 30 s", c.id)
			return
		}
		pending, err := c.send(a)
		if err != nil {
			c.free <- a
			c.refused(err)
			return
		}
		if !pending {
			c.free <- a
		}
	}
}

// chain sends with a until one is pending (its Completed calls chain
// again) or the plan says stop; then the chain ends.
func (c *conn) chain(a *slot) {
	for c.keepSending() {
		pending, err := c.send(a)
		if err != nil {
			c.refused(err)
			break
		}
		if pending {
			return
		}
	}
	c.chains.Add(-1)
}

// verify checks a finished connection against what its sends reported.
func (c *conn) verify(r *peer) {
	allowed := map[sendop.SocketError]bool{sendop.Success: true}
	if c.closedEarly.Load() {
		allowed[sendop.OperationAborted] = true
	}
	if r.faulted {
		allowed[sendop.ConnectionReset] = true
		allowed[sendop.Shutdown] = true
	}
	cut := -1
	sent := 0
	for i, ent := range c.log {
		total := ent.sh.total()
		switch {
		case ent.done != 1:
			c.s.violation("exactly-once", "conn %d: send %d completed %d times", c.id, i, ent.done)
		case ent.pending && ent.raised != 1 || !ent.pending && ent.raised != 0:
			c.s.violation("exactly-once", "conn %d: send %d: pending=%v, Completed raised %d times", c.id, i, ent.pending, ent.raised)
		case ent.msg != "":
			c.s.violation("result", "conn %d: send %d: %s", c.id, i, ent.msg)
		case !allowed[ent.se]:
			c.s.violation("result", "conn %d (%+v): send %d: %v with %d of %d bytes", c.id, c.p, i, ent.se, ent.n, total)
		case ent.se == sendop.Success && ent.n != total:
			c.s.violation("result", "conn %d: send %d: Success with %d of %d bytes", c.id, i, ent.n, total)
		case ent.se != sendop.Success && (ent.n < 0 || ent.n > total || ent.n == total && total > 0):
			c.s.violation("result", "conn %d: send %d: %v with %d of %d bytes", c.id, i, ent.se, ent.n, total)
		case cut >= 0 && ent.n > 0:
			c.s.violation("gap", "conn %d: send %d sent %d bytes after send %d stopped short", c.id, i, ent.n, cut)
		}
		if cut < 0 && ent.n < total {
			cut = i
		}
		sent += ent.n
	}
	// What the peer read: all that was sent, or — if it went away by
	// itself — a prefix of it.
	h := sha256.New()
	left := r.n
	if !r.faulted {
		left = int64(sent)
	}
	for _, ent := range c.log {
		if left == 0 {
			break
		}
		k := min(int64(ent.n), left)
		ent.sh.writePrefix(h, int(k))
		left -= k
	}
	var want [32]byte
	copy(want[:], h.Sum(nil))
	switch {
	case r.err != nil && !r.faulted:
		c.s.violation("receive", "conn %d: the peer's read failed: %v", c.id, r.err)
	case !r.faulted && r.n != int64(sent):
		c.s.violation("receive", "conn %d (%+v): the peer read %d bytes, %d were reported sent", c.id, c.p, r.n, sent)
	case r.faulted && r.n > int64(sent):
		c.s.violation("receive", "conn %d: the peer read %d bytes, only %d were reported sent", c.id, r.n, sent)
	case left != 0 || r.sum != want:
		c.s.violation("receive", "conn %d (%+v): the peer's %d bytes differ from what was reported sent (SHA-256)", c.id, c.p, r.n)
	}
}

// resultError checks that e's Err agrees with its SocketError.
func resultError(e *sendop.Args) string {
	se, err := e.SocketError(), e.Err()
	if se == sendop.Success {
		if err != nil {
			return "Success with an error: " + err.Error()
		}
		return ""
	}
	var serr *sendop.Error
	if !errors.As(err, &serr) || serr.Code != se || sendop.SocketErrorOf(serr.Errno) != se || !errors.Is(err, serr.Errno) {
		return fmt.Sprintf("%v with Err() = %v", se, err)
	}
	return ""
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for wait := 10 * time.Microsecond; !cond(); wait = min(2*wait, 5*time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
	}
	return true
}
