package proxy

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// Receive mode "engine" with the engine's receive pool (the default): a
// direction is one stream receive on its source and a send per chunk,
// without a goroutine and without a buffer of its own:
//
//	src.ReceiveChunks ─chunk─▶ dst.SendAsync(chunk's bytes) ─Completed─▶ chunk.Release
//
// The kernel takes a buffer from the ring's provided buffer ring only when
// bytes arrive, so an idle connection holds none, and — on io_uring — no
// goroutine either: the connection's goroutine starts both streams and
// returns; the connection's last event (its pumps finished, Shutdown's
// drain done, or a reset) starts the goroutine that closes it (finish).
// Chunks arrive in stream order on the source's engine goroutine, which
// sends each at once, so the bytes leave in order. A pooled chunkSend
// carries each send: no allocation per chunk. The socket's chunk limit
// (MaxInflight/BufferSize chunks) is the backpressure: a direction whose
// sends wait for a peer that does not read holds its limit of chunks and
// its source stops receiving until sends complete. After the connection
// stops (Shutdown, Close, a reset), chunks still delivered are dropped
// unsent, as bytes left unread in the socket would be.
//
// On kernels without multishot receive (before 6.0) ReceiveChunks fails
// with ring.ErrNotSupported: New finds out once (probeChunks), and the
// proxy then reads into buffers of its own (engine.go), as with
// Config.RecvOwnBuffers.

// A pump's state in this mode is one atomic word (chunkPump.state):
//
//	bits  0–31  sends in flight
//	bit  32     csEnded:  the source's stream has ended (its last call came)
//	bit  33     csEOF:    … with io.EOF (the peer's FIN)
//	bit  34     csFailed: a send failed or was refused
//	bit  35     csDone:   the pump has finished (ended, nothing in flight);
//	                      set once, by the transition that gets there
const (
	csSends  = 1<<32 - 1
	csEnded  = 1 << 32
	csEOF    = 1 << 33
	csFailed = 1 << 34
	csDone   = 1 << 35
)

// chunkPump is a pump's state in receive mode "engine" with chunks.
type chunkPump struct {
	state     atomic.Uint64
	completed atomic.Uint64 // sends completed: the sweeper's mark of progress
	// The sweeper's own (stalled): the completions it saw last, and when.
	seen       uint64
	progressed time.Duration // since the proxy started; 0: not yet
}

// chunkSend is one chunk on its way out: the send's Args and the chunk it
// sends. Pooled by the Proxy (sendPool); e.UserToken is the chunkSend
// itself.
type chunkSend struct {
	e  sendop.Args
	ch *socket.Chunk
	p  *pump
}

// sendPool is the proxy's free list of chunkSends. It never shrinks — a
// sync.Pool drops its content at every garbage collection, and a fresh
// Args allocates again for its first sends — so in steady state a chunk
// allocates nothing. It holds at most as many as were ever in flight at
// once, which the receive pool bounds.
type sendPool struct {
	mu   sync.Mutex
	free []*chunkSend
}

func (sp *sendPool) get() *chunkSend {
	sp.mu.Lock()
	if n := len(sp.free); n > 0 {
		s := sp.free[n-1]
		sp.free = sp.free[:n-1]
		sp.mu.Unlock()
		return s
	}
	sp.mu.Unlock()
	s := new(chunkSend)
	s.e.UserToken = s
	s.e.Completed = chunkCompleted
	return s
}

func (sp *sendPool) put(s *chunkSend) {
	sp.mu.Lock()
	sp.free = append(sp.free, s)
	sp.mu.Unlock()
}

// chunkCompleted is the Completed handler of every chunkSend.
func chunkCompleted(e *sendop.Args) {
	s := e.UserToken.(*chunkSend)
	s.p.chunkSent(s)
}

// startChunks starts the stream receives of both directions. A failure
// (the peer reset the connection already, ...) resets the connection; the
// stream already started gets its last call when the connection closes it.
func (c *conn) startChunks() {
	for _, p := range []*pump{&c.up, &c.down} {
		if err := p.src().ReceiveChunks(p.onChunk); err != nil {
			if !c.halt.Load() { // else the connection is closing already
				c.p.log.Warn("receive", "client", c.client.RemoteAddr(), "err", err)
				c.stop(endReset)
			}
			return
		}
	}
}

// probeChunks reports whether the engine has stream receives
// (ReceiveChunks): ring.ErrNotSupported on kernels without multishot
// receive, nil when it has them. It makes the engine's receive pool. A
// variable, so that tests can take the fallback on any kernel.
var probeChunks = func(eng *socket.Engine) error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	unix.CloseOnExec(fds[0])
	unix.CloseOnExec(fds[1])
	defer unix.Close(fds[1])
	s, err := socket.FromFD(fds[0], socket.WithEngine(eng))
	if err != nil {
		unix.Close(fds[0])
		return err
	}
	defer s.Close()
	return s.ReceiveChunks(func(c *socket.Chunk, err error) {
		if c != nil {
			c.Release()
		}
	})
}

// onChunk is a direction's stream handler, on the source's engine
// goroutine: each chunk is sent on at once; the last call ends the pump.
func (p *pump) onChunk(ch *socket.Chunk, err error) {
	if ch == nil {
		p.chunkEnd(err)
		return
	}
	c := p.c
	// Counted in flight before halt is looked at, so that poke, which
	// looks at them the other way round, cannot close the connection
	// under a send about to start.
	p.chunk.state.Add(1)
	if c.halt.Load() {
		// The connection stops: nothing read from now on is sent
		// (Shutdown sends what was read before it; Close aborts).
		ch.Release()
		p.sendDone(false)
		return
	}
	b := ch.Bytes()
	p.bytes.Add(uint64(len(b)))
	c.active.Store(true)
	p.held.Add(int64(c.p.cfg.BufferSize))
	p.holding.Add(1)
	s := c.p.sends.get()
	s.ch, s.p = ch, p
	s.e.SetBuffer(b)
	pending, err := p.dst().SendAsync(&s.e)
	switch {
	case err != nil: // the socket is closing: the connection stops
		if !c.halt.Load() {
			c.stop(endSendError)
		}
		p.chunkDone(s, true)
	case !pending:
		p.chunkSent(s)
	}
}

// chunkSent handles a completed send.
func (p *pump) chunkSent(s *chunkSend) {
	failed := s.e.SocketError() != sendop.Success
	if failed {
		p.c.stop(sendEnd(&s.e))
	}
	p.c.active.Store(true)
	p.chunk.completed.Add(1)
	p.chunkDone(s, failed)
}

// chunkDone releases s's chunk, puts s back in the pool and counts the
// send done.
func (p *pump) chunkDone(s *chunkSend, failed bool) {
	ch := s.ch
	s.ch, s.p = nil, nil
	s.e.SetBuffer(nil)
	p.c.p.sends.put(s)
	ch.Release()
	p.held.Add(-int64(p.c.p.cfg.BufferSize))
	p.holding.Add(-1)
	p.sendDone(failed)
}

// sendDone counts a send (or a chunk dropped) out of flight; the last one
// of a pump whose source has ended finishes it, the last one while the
// connection stops lets it close.
func (p *pump) sendDone(failed bool) {
	for {
		old := p.chunk.state.Load()
		if old&csSends == 0 {
			panic("proxy: a chunk send completed with none in flight")
		}
		st := old - 1
		if failed {
			st |= csFailed
		}
		fin := st&csSends == 0 && st&(csEnded|csDone) == csEnded
		if fin {
			st |= csDone
		}
		if p.chunk.state.CompareAndSwap(old, st) {
			switch {
			case fin:
				p.chunkFinished(st)
			case st&csSends == 0 && p.c.halt.Load():
				p.c.notify() // drained for Shutdown
			}
			return
		}
	}
}

// chunkEnd handles the stream's last call: io.EOF (the peer's FIN),
// socket.ErrClosed (the connection closes it), or a read error, which
// resets the connection.
func (p *pump) chunkEnd(err error) {
	eof := err == io.EOF
	if !eof && !errors.Is(err, socket.ErrClosed) && !p.c.halt.Load() {
		p.c.stop(endReset) // RST from the peer, ...
	}
	for {
		old := p.chunk.state.Load()
		st := old | csEnded
		if eof {
			st |= csEOF
		}
		fin := st&csSends == 0 && st&csDone == 0
		if fin {
			st |= csDone
		}
		if p.chunk.state.CompareAndSwap(old, st) {
			if fin {
				p.chunkFinished(st)
			}
			return
		}
	}
}

// chunkFinished runs once, when the pump has finished with state st: a
// source that ended with end of stream, every send done and none failed,
// passes the FIN on.
func (p *pump) chunkFinished(st uint64) {
	if st&(csEOF|csFailed) == csEOF {
		p.passEOF()
	}
	p.c.notify()
}

func (p *pump) chunkFinishedOK() bool { return p.chunk.state.Load()&csDone != 0 }
func (p *pump) chunkQuiet() bool      { return p.chunk.state.Load()&csSends == 0 }

// chunkStalled is the send timeout in this mode, asked by the sweeper
// (its only caller) at now: sends have been in flight and none has
// completed for SendTimeout.
func (p *pump) chunkStalled(now time.Time) bool {
	ch := &p.chunk
	done := ch.completed.Load()
	at := now.Sub(p.c.p.started) + 1 // never 0
	if ch.state.Load()&csSends == 0 || done != ch.seen || ch.progressed == 0 {
		ch.seen, ch.progressed = done, at
		return false
	}
	return at-ch.progressed >= p.c.p.cfg.SendTimeout
}

// poke closes the connection, from a goroutine of its own, once it is
// over: it stops at once, both pumps have finished, or Shutdown's drain is
// done. Every event that can end the connection pokes after it.
func (c *conn) poke() {
	if c.closing.Load() {
		return
	}
	over := c.dead.Load() ||
		c.up.chunkFinishedOK() && c.down.chunkFinishedOK() ||
		c.halt.Load() && c.stopping().graceful() && c.up.chunkQuiet() && c.down.chunkQuiet()
	if over && !c.closing.Swap(true) {
		go c.finish()
	}
}

// finish closes a connection of this mode and counts its goroutine done
// (the one that dialed it, returned long ago).
func (c *conn) finish() {
	defer c.p.handlers.Done()
	c.close()
}
