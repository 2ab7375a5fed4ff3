//go:build linux

package main

import (
	"cmp"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// Chunk relays: a relay or echo (relay.go) whose in-Socket receives with
// ReceiveChunks. Its handler hashes each chunk and sends its bytes as they
// are on the out-Socket (SendAsync, a pooled Args whose entry names the
// chunk); the chunk is released when that send has completed — from
// Completed, at once if SendAsync completed synchronously or refused, or,
// with lateRelease, a while later by a goroutine of the relay's (Release
// may come from any goroutine). After the relay stopped, chunks still
// delivered are released at once. The last call (c == nil) ends it: at
// io.EOF the relay closes both Sockets once its sends have completed; on
// an error at once.
//
// The engine's receive pool is the shared engine's (1024 buffers of
// 16 KiB), tinyPool's (8 of 2 KiB, shared by every chunk relay on it) or
// one of the relay's own engine (2 to 16 buffers of 512 B to 4 KiB): with
// chunk limits up to 64, the relays of an engine hold its whole pool and
// the next receive finds it empty (ENOBUFS), parks, and must resume when
// chunks come back. That is not observable from outside; the times the
// relays of an engine held every buffer of its pool are (pool-full), and
// the times a relay held its chunk limit (at-limit).
//
// Checked, on top of the relay's checks (the same faults; bytes received
// a prefix of the source's, the far end's a prefix of those sent, all of
// them without faults): exactly one last call, and it is io.EOF, ErrClosed
// after a Close, or the reset the source's or far end's fault explains (a
// *net.OpError); no chunk after it; every chunk delivered is released
// exactly once, none is delivered again while the relay holds it (its
// buffer given out twice), none is empty or larger than a buffer; a held
// chunk's bytes do not change until its release (CRC-32C); the relays of
// an engine never hold more chunks than its pool has.

// chunkRelay is a relay's stream-receive state. Its fields are guarded by
// relay.mu, unless atomic.
type chunkRelay struct {
	*relay
	ends     int   // last calls
	endErr   error // the first one's
	started  bool  // ReceiveChunks accepted the handler
	held     map[*socket.Chunk]uint32
	free     []*rop // Args of completed sends
	bufSize  int    // the pool's buffers' size
	maxHeld  int
	checkCRC bool

	delivered, released atomic.Int64
	releasing           atomic.Int64 // out of held, Release not yet returned (late ones: queued)

	late *releaser // lateRelease
}

// releaser releases a chunk relay's chunks on a goroutine of its own, a
// little after their sends completed.
type releaser struct {
	mu   sync.Mutex
	q    []*socket.Chunk
	kick chan struct{}
	quit chan struct{}
	done chan struct{}
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// startChunks starts the relay's stream receive.
func (r *relay) startChunks(rng *rand.Rand) *chunkRelay {
	cr := &chunkRelay{relay: r, held: map[*socket.Chunk]uint32{}, bufSize: 16 << 10}
	switch r.p.pool {
	case "shared-tiny":
		cr.bufSize = 2 << 10
	case "own":
		cr.bufSize = r.p.recvBufSize
	}
	// A held chunk's bytes are read again at its release; not after
	// Engine.Close when they are released late: the close unmaps the
	// pool under chunks still held (see socket/stream_soak_test.go).
	cr.checkCRC = !(r.p.lateRelease && strings.HasPrefix(r.p.close, "engine-close"))
	if r.p.lateRelease {
		cr.late = &releaser{kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
		go cr.releaseLoop(rng)
	}
	err := r.in.ReceiveChunks(cr.handle)
	r.mu.Lock()
	switch {
	case err == nil:
		cr.started = true
	case errors.Is(err, ring.ErrNotSupported):
		r.s.kind("chunks-unsupported")
		r.closedEarly.Store(true)
		r.stopped = true
	default:
		r.refused("ReceiveChunks", err)
		r.stopped = true
	}
	stop := r.stopped
	r.mu.Unlock()
	r.after(stop)
	return cr
}

// handle is the in-Socket's stream handler.
func (cr *chunkRelay) handle(c *socket.Chunk, err error) {
	r := cr.relay
	r.busy.Add(1)
	defer r.busy.Add(-1)
	var done []*socket.Chunk // released once the lock is gone
	r.mu.Lock()
	if c == nil {
		cr.ends++
		if cr.ends == 1 {
			cr.endErr = err
			if err == io.EOF {
				r.eof = true
			} else {
				r.stopped = true
			}
		}
		stop := r.stopped || r.eof && r.sending == 0
		r.mu.Unlock()
		r.after(stop)
		r.tick()
		return
	}
	b := c.Bytes()
	n := len(b)
	cr.delivered.Add(1)
	r.s.chunks.Add(1)
	r.s.recvs.Add(1)
	r.s.recvBytes.Add(int64(n))
	switch {
	case cr.ends > 0:
		r.s.violation("chunk", "relay %d on %s: a chunk of %d bytes after the last call (%v)", r.id, r.in.Backend(), n, cr.endErr)
	case n == 0 || n > cr.bufSize:
		r.s.violation("chunk", "relay %d on %s: a chunk of %d bytes from a pool of %d-byte buffers", r.id, r.in.Backend(), n, cr.bufSize)
	}
	if _, dup := cr.held[c]; dup {
		r.s.violation("chunk", "relay %d on %s: a chunk delivered again while held (its buffer given out twice)", r.id, r.in.Backend())
	}
	cr.held[c] = crc32.Checksum(b, crcTable)
	cr.maxHeld = max(cr.maxHeld, len(cr.held))
	if lim := cmp.Or(r.p.in.chunkLimit, 16); len(cr.held) == lim {
		r.s.chunkAtLimit.Add(1)
	}
	switch h := r.eng.held.Add(1); {
	case h > int64(r.eng.poolN):
		r.s.violation("chunk", "relay %d on %s: the engine's relays hold %d chunks, its pool has %d buffers", r.id, r.in.Backend(), h, r.eng.poolN)
	case h == int64(r.eng.poolN):
		r.s.chunkPoolFull.Add(1)
	}
	r.h.Write(b)
	r.recvd += int64(n)
	if r.stopped || r.eof {
		done = append(done, c)
	} else if c := cr.send(c); c != nil {
		done = append(done, c)
	}
	stop := r.stopped || r.eof && r.sending == 0
	r.mu.Unlock()
	for _, c := range done {
		cr.done(c)
	}
	r.after(stop)
	r.tick()
}

// send sends c's bytes on the out-Socket, with r.mu held; it returns c if
// it is to be released now (the send completed synchronously or was
// refused).
func (cr *chunkRelay) send(c *socket.Chunk) *socket.Chunk {
	r := cr.relay
	var a *rop
	if k := len(cr.free); k > 0 {
		a, cr.free = cr.free[k-1], cr.free[:k-1]
	} else {
		a = &rop{}
		a.Completed = cr.completed
	}
	ent := &rentry{send: true, size: len(c.Bytes()), a: a, chunk: c}
	a.ent = ent
	a.UserToken = ent
	a.SetBuffer(c.Bytes())
	pending, err := r.out.SendAsync(&a.Args)
	if err != nil {
		r.refused("SendAsync", err)
		r.stopped = true
		cr.free = append(cr.free, a)
		return c
	}
	r.log = append(r.log, ent)
	r.left.Add(1)
	ent.pending = pending
	if pending {
		r.sending++
		return nil
	}
	r.record(ent, &a.Args, false)
	if ent.se != sendop.Success {
		r.stopped = true
	}
	a.SetBuffer(nil)
	cr.free = append(cr.free, a)
	return c
}

// completed is the Completed of a chunk relay's sends.
func (cr *chunkRelay) completed(e *sendop.Args) {
	r := cr.relay
	r.busy.Add(1)
	defer r.busy.Add(-1)
	ent := e.UserToken.(*rentry)
	r.record(ent, e, true)
	r.mu.Lock()
	r.sending--
	if ent.se != sendop.Success {
		r.stopped = true
	}
	e.SetBuffer(nil)
	cr.free = append(cr.free, ent.a)
	stop := r.stopped || r.eof && r.sending == 0
	r.mu.Unlock()
	cr.done(ent.chunk)
	r.after(stop)
	r.tick()
}

// done releases c now, or queues it for the releaser.
func (cr *chunkRelay) done(c *socket.Chunk) {
	cr.releasing.Add(1)
	if cr.late == nil {
		cr.release(c)
		return
	}
	l := cr.late
	l.mu.Lock()
	l.q = append(l.q, c)
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// release checks c and releases it (counted in releasing by the caller).
func (cr *chunkRelay) release(c *socket.Chunk) {
	r := cr.relay
	defer cr.releasing.Add(-1)
	r.mu.Lock()
	sum, ok := cr.held[c]
	delete(cr.held, c)
	r.mu.Unlock()
	if !ok {
		r.s.violation("chunk", "relay %d on %s: releasing a chunk not held", r.id, r.in.Backend())
		return
	}
	if cr.checkCRC {
		if got := crc32.Checksum(c.Bytes(), crcTable); got != sum {
			r.s.violation("chunk", "relay %d on %s: a held chunk's %d bytes changed before its release", r.id, r.in.Backend(), len(c.Bytes()))
		}
	}
	cr.released.Add(1)
	r.eng.held.Add(-1) // before Release: then the buffer may be delivered again
	c.Release()
}

// releaseLoop is the releaser's goroutine.
func (cr *chunkRelay) releaseLoop(rng *rand.Rand) {
	l := cr.late
	defer close(l.done)
	for {
		quit := false
		select {
		case <-l.kick:
		case <-l.quit:
			quit = true
		}
		for {
			l.mu.Lock()
			q := l.q
			l.q = nil
			l.mu.Unlock()
			if len(q) == 0 {
				break
			}
			if !quit && rng.IntN(4) == 0 {
				time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
			}
			for _, c := range q {
				cr.release(c)
			}
		}
		if quit {
			return
		}
	}
}

// settled reports whether the stream receive is over: its last call has
// come (if it started) and every chunk has been released.
func (cr *chunkRelay) settled() bool {
	if cr == nil {
		return true
	}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return (!cr.started || cr.ends > 0) && len(cr.held) == 0 && cr.releasing.Load() == 0
}

// stop ends the releaser.
func (cr *chunkRelay) stop() {
	if cr == nil || cr.late == nil {
		return
	}
	close(cr.late.quit)
	<-cr.late.done
}

// stateLocked describes the stream receive for a hang, with r.mu held.
func (cr *chunkRelay) stateLocked() string {
	if cr == nil {
		return ""
	}
	return fmt.Sprintf("; chunks: started=%v last-calls=%d (%v) delivered=%d released=%d held=%d releasing=%d engine-held=%d/%d",
		cr.started, cr.ends, cr.endErr, cr.delivered.Load(), cr.released.Load(), len(cr.held), cr.releasing.Load(), cr.eng.held.Load(), cr.eng.poolN)
}

// verify adds the stream receive's checks to the relay's.
func (cr *chunkRelay) verify(src *source, sink *peer) {
	if cr == nil {
		return
	}
	r, s, p := cr.relay, cr.s, cr.p
	cr.mu.Lock()
	defer cr.mu.Unlock()
	who := fmt.Sprintf("relay %d on %s (%+v)", r.id, r.in.Backend(), p)
	if d, rel := cr.delivered.Load(), cr.released.Load(); d != rel || len(cr.held) != 0 {
		s.violation("chunk", "%s: %d chunks delivered, %d released, %d still held", who, d, rel, len(cr.held))
	}
	if !cr.started {
		if cr.ends != 0 {
			s.violation("last-call", "%s: ReceiveChunks refused, yet %d last calls", who, cr.ends)
		}
		return
	}
	if cr.ends != 1 {
		s.violation("last-call", "%s: %d last calls", who, cr.ends)
		return
	}
	early := r.closedEarly.Load()
	srcReset := !p.echo && src.faulted && p.src == "source-reset"
	resetOK := srcReset || p.echo && sink.faulted // echoing, the far end is the source
	var oe *net.OpError
	switch err := cr.endErr; {
	case err == io.EOF:
		if srcReset {
			s.violation("last-call", "%s: io.EOF, but the source reset the connection", who)
		}
	case errors.Is(err, socket.ErrClosed):
		if !early {
			s.violation("last-call", "%s: %v, but nothing closed the Socket before the end", who, err)
		}
	case errors.As(err, &oe) && errors.Is(err, syscall.ECONNRESET):
		if !resetOK {
			s.violation("last-call", "%s: %v, but nobody reset the connection", who, err)
		}
	default:
		s.violation("last-call", "%s: the stream ended with %v (%T)", who, err, err)
	}
}

// primePool makes e's receive pool (on its first ReceiveChunks): a
// connection of its own starts a stream receive and closes.
func primePool(e *engine) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	sock, err := socket.Dial("tcp", l.Addr().String(), socket.WithEngine(e.Engine))
	if err != nil {
		l.Close()
		if c := <-accepted; c != nil {
			c.Close()
		}
		return err
	}
	if c := <-accepted; c != nil {
		defer c.Close()
	}
	err = sock.ReceiveChunks(func(c *socket.Chunk, err error) {
		if c != nil {
			c.Release()
		}
	})
	if errors.Is(err, ring.ErrNotSupported) {
		err = nil // chunk relays count themselves unsupported
	}
	return errors.Join(err, sock.Close())
}
