package proxy

import (
	"sync"
	"time"

	"github.com/uringsend/uringsend/sendop"
)

// Receive mode "engine" with buffers of the proxy's own
// (Config.RecvOwnBuffers, or a kernel without multishot receive; the
// receive pool's path is chunks.go): the engine runs the reads too. Each
// direction turns Args around without a goroutine of its own:
//
//	ReceiveAsync(src) ─Completed─▶ SendAsync(dst, the bytes) ─Completed─▶ the slot is free
//
// One receive per direction is outstanding at a time, so the bytes are
// sent in the order they were read. While a slot's bytes are being sent
// the next receive goes out on another slot, up to MaxInflight/BufferSize
// slots: the backpressure of net mode, with the same memory bound. The
// handlers run on the engine's goroutines; on io_uring a receive or send
// started there is submitted with those of every other connection in the
// reaper's next io_uring_enter. The connection's goroutine only starts the
// pumps and, when they are done or the connection stops, closes the
// sockets (which aborts what is still outstanding).

// enginePump is a pump's state in receive mode "engine".
type enginePump struct {
	mu        sync.Mutex
	free      []*slot  // slots with nothing in flight (LIFO: the warmest first)
	slots     [2]*slot // free's first backing array: room for the usual two
	first     [2]slot  // the first slots made (newSlot)
	created   int
	receiving bool // a receive is outstanding
	srcDone   bool // no more receives: end of stream, an error, or the connection stops
	eof       bool // the source ended with end of stream
	sendErr   bool // a send failed
	sends     int  // sends in flight
	ended     bool // the pump has finished; reported once
	// kick runs one loop at a time. A kick meanwhile returns at once: the
	// running loop takes the lock again after each receive it starts and
	// sees what that kick saw.
	kicking bool

	// The send timeout: completed counts sends that have completed; the
	// sweeper notes when it last saw it move (or nothing in flight).
	completed  uint64
	seen       uint64
	progressed time.Time
}

// engineCompleted is the Completed handler of every slot in engine mode.
func engineCompleted(e *sendop.Args) {
	s := e.UserToken.(*slot)
	if s.sending {
		s.p.sent(s)
	} else {
		s.p.received(s)
	}
}

// kick starts the next receive if none is outstanding and a slot is free,
// and goes on while receives complete synchronously.
func (p *pump) kick() {
	ep := p.eng
	ep.mu.Lock()
	if ep.kicking {
		ep.mu.Unlock()
		return
	}
	ep.kicking = true
	for {
		s := p.takeSlotLocked()
		if s == nil {
			ep.kicking = false
			ep.mu.Unlock()
			return
		}
		ep.receiving = true
		ep.mu.Unlock()
		if s.buf == nil {
			p.getBuf(s)
		}
		s.sending = false
		s.e.SetBuffer(*s.buf)
		pending, err := p.src().ReceiveAsync(&s.e)
		switch {
		case err != nil: // the socket is closing
			p.release(s)
			ep.mu.Lock()
			ep.receiving, ep.srcDone = false, true
			ep.free = append(ep.free, s)
			ep.mu.Unlock()
			if !p.c.halt.Load() {
				p.c.stop(endReset)
			}
			p.check()
		case !pending:
			p.received(s)
		}
		ep.mu.Lock()
	}
}

// takeSlotLocked returns a slot for the next receive, or nil when none
// may start.
func (p *pump) takeSlotLocked() *slot {
	ep := p.eng
	if ep.receiving || ep.srcDone || p.c.halt.Load() {
		return nil
	}
	if n := len(ep.free); n > 0 {
		s := ep.free[n-1]
		ep.free = ep.free[:n-1]
		return s
	}
	if ep.created < p.c.p.cfg.slots() {
		s := p.newSlot(&ep.first, &ep.created, engineCompleted)
		// No Args.Timeout: a LINK_TIMEOUT per send doubles the ring's
		// traffic. The sweeper watches the sends' progress instead
		// (stalled).
		return s
	}
	return nil
}

// release returns s's buffer to the pool; the caller puts s back on the
// free list with the pump's lock held.
func (p *pump) release(s *slot) {
	if s.buf != nil {
		p.putBuf(s)
	}
}

// received handles a completed receive: it sends the bytes on, or ends
// the direction at end of stream or on an error.
func (p *pump) received(s *slot) {
	n := s.e.BytesTransferred()
	if err := s.e.Err(); err != nil || n == 0 || p.c.dead.Load() {
		if n > 0 {
			p.bytes.Add(uint64(n)) // read, though no longer sent: the connection dies
		}
		p.release(s)
		ep := p.eng
		ep.mu.Lock()
		ep.receiving, ep.srcDone = false, true
		ep.eof = err == nil && n == 0
		ep.free = append(ep.free, s)
		ep.mu.Unlock()
		if err != nil && !p.c.halt.Load() {
			p.c.stop(endReset) // RST from the peer, ...
		}
		p.check()
		return
	}
	p.bytes.Add(uint64(n))
	p.c.active.Store(true)
	s.e.SetBuffer((*s.buf)[:n])
	s.sending = true
	p.held.Add(int64(cap(*s.buf)))
	ep := p.eng
	ep.mu.Lock()
	ep.sends++
	ep.mu.Unlock()
	pending, err := p.dst().SendAsync(&s.e)
	// Only now may the next receive start: its bytes must be sent after
	// these (the send's Completed may run on another ring's reaper).
	ep.mu.Lock()
	ep.receiving = false
	ep.mu.Unlock()
	switch {
	case err != nil: // the socket is closing
		p.held.Add(-int64(cap(*s.buf)))
		p.release(s)
		ep.mu.Lock()
		ep.sends--
		ep.sendErr, ep.srcDone = true, true
		ep.free = append(ep.free, s)
		ep.mu.Unlock()
		p.c.stop(endSendError)
		p.check()
	case !pending:
		p.sent(s)
	default:
		p.kick()
	}
}

// sent handles a completed send: the slot is free for a receive again.
func (p *pump) sent(s *slot) {
	p.held.Add(-int64(cap(*s.buf)))
	p.c.active.Store(true)
	failed := s.e.Err() != nil
	if failed {
		p.c.stop(sendEnd(&s.e))
	}
	p.release(s)
	ep := p.eng
	ep.mu.Lock()
	ep.sends--
	ep.completed++
	if failed {
		ep.sendErr, ep.srcDone = true, true
	}
	ep.free = append(ep.free, s)
	ep.mu.Unlock()
	p.check()
	p.kick()
}

// check reports a pump that has finished — once — or that has drained
// while the connection stops, to the connection's goroutine. A source
// that ended with end of stream passes it on once its sends are done.
func (p *pump) check() {
	ep := p.eng
	ep.mu.Lock()
	fin := ep.srcDone && ep.sends == 0 && !ep.receiving && !ep.ended
	if fin {
		ep.ended = true
	}
	quiet := ep.sends == 0
	halfClose := fin && ep.eof && !ep.sendErr
	ep.mu.Unlock()
	if halfClose {
		p.passEOF()
	}
	if fin || quiet && p.c.halt.Load() {
		p.c.notify()
	}
}

// stalled is the send timeout of engine mode, asked by the sweeper at
// now: it reports that sends have been in flight and none has completed
// for SendTimeout. Sends on a socket complete in order, so this is the
// time the oldest send has been waiting for the peer, give or take one
// sweep — never less than SendTimeout.
func (p *pump) stalled(now time.Time) bool {
	if p.c.chunked {
		return p.chunkStalled(now)
	}
	ep := p.eng
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.sends == 0 || ep.completed != ep.seen || ep.progressed.IsZero() {
		ep.seen, ep.progressed = ep.completed, now
		return false
	}
	return now.Sub(ep.progressed) >= p.c.p.cfg.SendTimeout
}

// finished reports that the pump is done: its source ended and every send
// has completed.
func (p *pump) finished() bool {
	p.eng.mu.Lock()
	defer p.eng.mu.Unlock()
	return p.eng.ended
}

// quiet reports that no send of the pump is in flight.
func (p *pump) quiet() bool {
	p.eng.mu.Lock()
	defer p.eng.mu.Unlock()
	return p.eng.sends == 0
}

// notify wakes the connection's goroutine; with chunks, where the
// connection has none, it pokes it.
func (c *conn) notify() {
	if c.chunked {
		c.poke()
		return
	}
	select {
	case c.ev <- struct{}{}:
	default:
	}
}

// runEngine starts both pumps and waits until both have finished, or the
// connection stops: at once, or — for Shutdown — once every send already
// read has completed. Then it closes the connection.
func (c *conn) runEngine() {
	c.up.kick()
	c.down.kick()
	for !c.dead.Load() && !(c.up.finished() && c.down.finished()) {
		if c.halt.Load() && c.stopping().graceful() && c.up.quiet() && c.down.quiet() {
			break
		}
		<-c.ev
	}
	c.close()
}
