package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// tcpClose is TCP_CLOSE (include/net/tcp_states.h), a socket's state in
// TCP_INFO after an RST; after a FIN it is CLOSE_WAIT. x/sys/unix has it
// only as BPF_TCP_CLOSE.
const tcpClose = 7

// endReason says why a connection ended. The first reason recorded wins.
type endReason int32

const (
	endNone        endReason = iota
	endEOF                   // both directions ended with FIN
	endReset                 // a peer reset: a read failed, or passEOF or the sweeper saw the RST
	endSendError             // a send failed
	endSendTimeout           // a send waited longer than SendTimeout
	endIdle                  // IdleTimeout
	endShutdown              // Shutdown: drained and closed
	endClosed                // Close, or Shutdown's context ended
	endDialError             // the upstream could not be reached
	numEndReasons
)

var endNames = [numEndReasons]string{"", "eof", "reset", "send_error", "send_timeout", "idle_timeout", "shutdown", "closed", "dial_error"}

func (r endReason) String() string { return endNames[r] }

// graceful reports whether pumps finish their in-flight sends before the
// connection closes; otherwise they stop at once and Close aborts the
// sends.
func (r endReason) graceful() bool { return r == endShutdown }

// reset reports whether the connections close with RST (SO_LINGER 0).
func (r endReason) reset() bool {
	return r == endReset || r == endSendError || r == endSendTimeout
}

// conn is one proxied connection: the client, the upstream, a Socket on
// each for the engine's sends, and the pumps between them.
type conn struct {
	p                *Proxy
	client, upstream *net.TCPConn
	cs, us           *socket.Socket // sends to the client, to the upstream
	up, down         pump           // client→upstream, upstream→client

	active     atomic.Bool   // something was read or sent since the sweeper looked
	lastActive time.Duration // the sweeper's: since the proxy started

	mu    sync.Mutex
	end   endReason
	dying chan struct{} // receive mode net: closed when the connection stops at once

	// Receive mode "engine" (engine.go): set once the connection stops
	// (halt) or stops at once (dead); ev wakes the connection's
	// goroutine when a pump ends or drains. With chunks (chunks.go) the
	// connection has no goroutine: poke starts the one that closes it,
	// once (closing).
	engine     bool
	chunked    bool
	halt, dead atomic.Bool
	ev         chan struct{}
	closing    atomic.Bool
}

func (p *Proxy) newConn(client, upstream *net.TCPConn) (*conn, error) {
	c := &conn{p: p, client: client, upstream: upstream, lastActive: time.Since(p.started)}
	var err error
	if c.cs, err = socket.FromConn(client, p.opts...); err != nil {
		return nil, err
	}
	if c.us, err = socket.FromConn(upstream, p.opts...); err != nil {
		c.cs.Close()
		return nil, err
	}
	switch {
	case p.chunks:
		c.engine, c.chunked = true, true
	case p.recvEngine:
		// The goroutine waits on ev alone; kill wakes it there.
		c.engine = true
		c.ev = make(chan struct{}, 1)
		c.up.eng, c.down.eng = new(enginePump), new(enginePump)
		c.up.eng.free = c.up.eng.slots[:0]
		c.down.eng.free = c.down.eng.slots[:0]
	default:
		c.dying = make(chan struct{})
	}
	if err := errors.Join(c.up.init(c, client), c.down.init(c, upstream)); err != nil {
		c.cs.Close()
		c.us.Close()
		return nil, err
	}
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		c.cs.Close()
		c.us.Close()
		return nil, ErrClosed
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	return c, nil
}

// run pumps both directions until both have returned, then closes.
func (c *conn) run() {
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		c.up.run()
	}()
	c.down.run()
	<-upDone
	c.close()
}

// close closes both sides once both pumps are done (or the connection
// stops at once) and accounts for the connection.
func (c *conn) close() {
	c.mu.Lock()
	if c.end == endNone {
		c.end = endEOF
	}
	end := c.end
	c.mu.Unlock()
	if end.reset() {
		c.client.SetLinger(0)
		c.upstream.SetLinger(0)
	}
	// Sockets first: their Close aborts what is still in flight before
	// the descriptors go.
	c.cs.Close()
	c.us.Close()
	c.client.Close()
	c.upstream.Close()

	p := c.p
	p.mu.Lock() // with Collect's snapshot: the bytes count once
	delete(p.conns, c)
	p.stats.closedBytes[directionIndexUp].Add(c.up.bytes.Load())
	p.stats.closedBytes[directionIndexClient].Add(c.down.bytes.Load())
	p.mu.Unlock()
	p.stats.ended(end)
}

// stop ends the connection for reason (unless it has a reason already):
// both reads return at once. A graceful reason lets the pumps finish the
// sends they have in flight; any other stops them now. A reason that
// resets (a send failed or timed out) replaces a graceful one while the
// connection still drains.
func (c *conn) stop(reason endReason) {
	c.mu.Lock()
	if c.end != endNone {
		first := c.end
		if first.graceful() && reason.reset() && !c.dead.Load() {
			// A send failed or timed out while Shutdown drains: the
			// connection ends with RST for that reason, as it would
			// have without Shutdown.
			c.end = reason
		}
		c.mu.Unlock()
		if first.graceful() && !reason.graceful() {
			// Shutdown's grace is over: stop draining.
			c.kill()
		}
		return
	}
	c.end = reason
	c.mu.Unlock()
	c.halt.Store(true)
	if !reason.graceful() {
		c.kill()
	}
	if c.engine {
		// The engine's receives end when the connection's goroutine
		// closes the sockets; no read deadlines (on the epoll backend
		// they would end them with TimedOut first).
		c.notify()
		return
	}
	past := time.Unix(1, 0)
	c.client.SetReadDeadline(past)
	c.upstream.SetReadDeadline(past)
}

func (c *conn) kill() {
	c.dead.Store(true)
	if c.engine {
		c.notify() // runEngine sees dead
		return
	}
	c.mu.Lock()
	select {
	case <-c.dying:
	default:
		close(c.dying)
	}
	c.mu.Unlock()
}

// stopping returns the reason the connection is stopping for, or endNone.
func (c *conn) stopping() endReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.end
}

// pump moves one direction: it reads src into buffers and sends them on
// dst without waiting for the sends to finish, with at most
// MaxInflight/BufferSize buffers in flight. In receive mode "engine" the
// reads are on src's Socket and the pump has no goroutine (chunks.go,
// engine.go). What only one mode needs is allocated for that mode: an
// idle connection is this struct and its sockets.
type pump struct {
	c       *conn
	bytes   atomic.Uint64 // read from the source
	held    atomic.Int64  // bytes of buffers held by sends in flight
	holding atomic.Int32  // buffers held: the proxy's own, or the engine's chunks
	shut    atomic.Bool   // passEOF shuts down the destination's write side (set before the FIN goes)

	chunk    chunkPump   // receive mode "engine" into the engine's receive pool (chunks.go)
	eng      *enginePump // … into buffers of the proxy's own (engine.go)
	*netPump             // receive mode "net"
}

// netPump is a pump's state in receive mode "net". free holds slots whose
// send has completed; it has room for every slot, so a completion never
// blocks. created counts slots made (the pump's own), cur is the slot the
// pump holds.
type netPump struct {
	first   [2]slot // the first slots made (newSlot)
	free    chan *slot
	created int
	cur     *slot
	// rc reads the source once it is readable (readable): a buffer is taken
	// only then, so an idle connection holds none. rs, rn and rerr are
	// readable's slot and result.
	rc     syscall.RawConn
	readFn func(fd uintptr) bool // p.readable, made once
	rs     *slot
	rn     int
	rerr   error
}

// slot is one send: its Args and the buffer it sends (in receive mode
// "engine" first the receive that fills the buffer, then its send).
type slot struct {
	e       sendop.Args
	buf     *[]byte
	p       *pump
	sending bool // engine mode: e is (or was last) a send, not a receive
}

func (p *pump) init(c *conn, src *net.TCPConn) error {
	p.c = c
	if c.engine {
		return nil // engine.go: the slots are on a list of the pump's
	}
	p.netPump = &netPump{free: make(chan *slot, c.p.cfg.slots())}
	var err error
	p.rc, err = src.SyscallConn()
	p.readFn = p.readable
	return err
}

// slotCompleted is the Completed handler of every slot: on the engine's
// goroutine, after a send that SendAsync left pending.
func slotCompleted(e *sendop.Args) {
	s := e.UserToken.(*slot)
	p := s.p
	p.c.active.Store(true)
	if e.Err() != nil {
		p.c.stop(sendEnd(e))
	}
	p.held.Add(-int64(cap(*s.buf)))
	p.putBuf(s)
	p.free <- s // never blocks: free has room for every slot
}

// getBuf gives s a buffer of the proxy's pool; putBuf gives it back.
func (p *pump) getBuf(s *slot) {
	s.buf = p.c.p.bufs.Get().(*[]byte)
	p.holding.Add(1)
}

func (p *pump) putBuf(s *slot) {
	p.c.p.bufs.Put(s.buf)
	s.buf = nil
	p.holding.Add(-1)
}

// src is the socket the pump receives from, srcConn its connection; the
// pump sends on the other pump's source (dst, dstConn). Derived, not
// stored: a connection keeps its size.
func (p *pump) src() *socket.Socket {
	if p == &p.c.up {
		return p.c.cs
	}
	return p.c.us
}

func (p *pump) srcConn() *net.TCPConn {
	if p == &p.c.up {
		return p.c.client
	}
	return p.c.upstream
}

func (p *pump) dst() *socket.Socket   { return p.other().src() }
func (p *pump) dstConn() *net.TCPConn { return p.other().srcConn() }

// sourceReset is the sweeper's look at a pump that holds more than half
// of what it may have in flight: backed up, or about to be, so that it has
// stopped reading its source or soon will — and with nothing posted on the
// source, nothing else would see that its peer has reset the connection
// until the sends complete or SendTimeout. It reports a pending error on
// the source (POLLERR: an RST, ...); the bytes still queued there are not
// needed to tell.
func (p *pump) sourceReset() bool {
	cfg := &p.c.p.cfg
	if p.held.Load() <= int64(cfg.slots())*int64(cfg.BufferSize)/2 {
		return false
	}
	rc, err := p.srcConn().SyscallConn()
	if err != nil {
		return false
	}
	failed := false
	rc.Control(func(fd uintptr) { // a closed connection's fd is not looked at
		pfd := [1]unix.PollFd{{Fd: int32(fd)}}
		n, err := unix.Poll(pfd[:], 0)
		failed = err == nil && n == 1 && pfd[0].Revents&unix.POLLERR != 0
	})
	return failed
}

// passEOF passes the source's end of stream on, once every send of the
// direction has succeeded: it shuts down the destination's write side
// (FIN) — unless the source has been reset, which ends the connection as
// a reset (RST to both peers, reason reset), never with a FIN that would
// pass for a clean end. End of stream alone does not tell: after an RST
// the kernel reports ECONNRESET once, to whichever call on the socket
// comes first, and a receive after a send that took it reads end of
// stream. The socket's state tells: an RST leaves it in TCP_CLOSE, a FIN
// in CLOSE_WAIT — unless the proxy has shut down the source's write side
// itself (the other direction ended first): then a FIN too ends in
// TCP_CLOSE (from LAST_ACK, or TIME_WAIT handed to the kernel), but the
// other direction's sends are all done, nothing else takes the report,
// and a receive after an RST fails. An RST right after a real FIN is
// passed on as a reset. One getsockopt per direction that ends with end
// of stream; nothing per chunk.
func (p *pump) passEOF() {
	if p.c.dead.Load() {
		return
	}
	if !p.other().shut.Load() && p.sourceState() == tcpClose {
		p.c.stop(endReset)
		return
	}
	p.shut.Store(true)
	p.dstConn().CloseWrite()
}

// sourceState is the TCP state of the source (TCP_INFO's tcpi_state), or
// 0 when it cannot be read (the connection is being closed).
func (p *pump) sourceState() uint8 {
	rc, err := p.srcConn().SyscallConn()
	if err != nil {
		return 0
	}
	var state uint8
	rc.Control(func(fd uintptr) { state = tcpState(int(fd)) })
	return state
}

// other is the pump of the other direction: its destination is p's source.
func (p *pump) other() *pump {
	if p == &p.c.up {
		return &p.c.down
	}
	return &p.c.up
}

func sendEnd(e *sendop.Args) endReason {
	if e.SocketError() == sendop.TimedOut {
		return endSendTimeout
	}
	return endSendError
}

// newSlot makes the pump's next slot, one of first while they last (the
// mode's own: one receives while the other's bytes are being sent; under
// churn a connection rarely needs a third): it counts it in created and
// gives it the mode's Completed handler.
func (p *pump) newSlot(first *[2]slot, created *int, completed func(*sendop.Args)) *slot {
	var s *slot
	if *created < len(first) {
		s = &first[*created]
	} else {
		s = new(slot)
	}
	*created++
	s.p = p
	s.e.UserToken = s
	s.e.Completed = completed
	return s
}

// get returns a slot with a buffer, waiting while every slot is in flight
// (the backpressure); nil when the connection dies meanwhile.
func (p *pump) get() *slot {
	s := p.cur
	if s == nil {
		select {
		case s = <-p.free:
		default:
			if p.created < cap(p.free) {
				s = p.newSlot(&p.netPump.first, &p.created, slotCompleted)
				s.e.Timeout = p.c.p.cfg.SendTimeout
			} else {
				select {
				case s = <-p.free:
				case <-p.c.dying:
					return nil
				}
			}
		}
		p.cur = s
	}
	return s
}

// read reads the source into s's buffer, taking one from the pool only
// once it is readable: a pump waiting on an idle source holds no buffer.
// It returns io.EOF at end of stream; the read deadline and Close end it
// with net's errors, as net.Conn.Read would.
func (p *pump) read(s *slot) (int, error) {
	p.rs = s
	err := p.rc.Read(p.readFn)
	p.rs = nil
	switch {
	case err != nil:
		return 0, err
	case p.rerr != nil:
		return 0, os.NewSyscallError("read", p.rerr)
	case p.rn == 0:
		return 0, io.EOF
	}
	return p.rn, nil
}

// readable is read's attempt, run by RawConn.Read: false (wait until
// readable) when nothing is there, after giving the buffer back.
func (p *pump) readable(fd uintptr) bool {
	s := p.rs
	if s.buf == nil {
		p.getBuf(s)
	}
	for {
		p.rn, p.rerr = unix.Read(int(fd), *s.buf)
		if p.rerr != unix.EINTR {
			break
		}
	}
	if p.rerr == unix.EAGAIN {
		p.putBuf(s)
		return false
	}
	if p.rerr != nil {
		p.rn = 0
	}
	return true
}

func (p *pump) run() {
	for {
		s := p.get()
		if s == nil {
			return
		}
		n, rerr := p.read(s)
		if n > 0 {
			p.bytes.Add(uint64(n))
			p.c.active.Store(true)
			s.e.SetBuffer((*s.buf)[:n])
			p.held.Add(int64(cap(*s.buf)))
			pending, err := p.dst().SendAsync(&s.e)
			if !pending {
				p.held.Add(-int64(cap(*s.buf)))
			}
			switch {
			case err != nil: // the socket is closing
				p.c.stop(endSendError)
				return
			case pending:
				p.cur = nil // the slot comes back through free
			case s.e.Err() != nil:
				p.c.stop(sendEnd(&s.e))
				return
			}
		}
		if rerr == nil {
			continue
		}
		if rerr == io.EOF {
			// FIN: once everything read is sent, pass it on.
			if p.drain() {
				p.passEOF()
			}
			return
		}
		switch end := p.c.stopping(); {
		case end == endNone:
			p.c.stop(endReset)
		case end.graceful():
			p.drain()
		}
		return
	}
}

// drain waits until every send of the pump has completed, and reports
// whether they all succeeded; false if the connection died meanwhile.
func (p *pump) drain() bool {
	if s := p.cur; s != nil {
		p.cur = nil
		if s.buf != nil {
			p.putBuf(s)
		}
		p.free <- s
	}
	for range p.created {
		select {
		case <-p.free:
		case <-p.c.dying:
			return false
		}
	}
	p.created = 0 // every slot is taken: none is in flight, none is used again
	return p.c.stopping() == endNone || p.c.stopping().graceful()
}
