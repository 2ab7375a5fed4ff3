package socket

// Stream receives (ReceiveChunks): a relay's receive side without a
// buffer of its own. On io_uring one multishot RECV (6.0) stays armed on
// the socket and takes a buffer from the ring's provided buffer ring
// (5.19) only when data arrives, so an idle connection holds none; each
// CQE names the buffer the kernel filled, which becomes a Chunk handed to
// the socket's handler on the engine's goroutine, in stream order. With
// recv bundles (6.10) one CQE may fill several buffers. On epoll a reader
// goroutine takes a buffer of the engine's pool only inside its
// non-blocking recv(2) and gives it back on EAGAIN, so the contract and
// the idle cost are the same.
//
// Flow control: a socket whose handler holds its limit of chunks stops
// receiving — io_uring arms each request with a byte budget of what the
// limit leaves (optlen, 6.15), so the kernel stops it there, and cancels
// it at the limit where the kernel has no budget; epoll's reader stops —
// and a
// socket finding the pool empty (ENOBUFS) stops too; both are parked, and
// Release arms them again (a parked socket resumes once it holds at most
// half its limit, so a relay that is backpressured does not cancel and
// re-arm at every chunk). Data waiting meanwhile stays in the socket, in
// order.
//
// The stream ends with one last call of the handler, c == nil: io.EOF
// when the peer shut its side, ErrClosed after Close, or the socket's
// error (a *net.OpError). Like a receive's Completed it is counted among
// what Close waits for, so Close returns after the last call has.
//
//	         ReceiveChunks
//	               │
//	               ▼        chunk delivered, held < limit
//	 ┌────────▶ receiving ──────────────────────┐
//	 │             │  │                         │
//	 │ Release     │  └─ held = limit, ENOBUFS ─▶ parked
//	 │ (held ≤     │                            │
//	 │  limit/2)   ▼ EOF, error, Close          │ Close
//	 └────── parked            ended ◀──────────┘

import (
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/uringsend/uringsend/ring"
	"golang.org/x/sys/unix"
)

// Receive pool defaults (EngineConfig.RecvBuffers, RecvBufferSize).
const (
	defaultRecvBuffers    = 1024
	defaultRecvBufferSize = 16 << 10
)

// rxStream is a socket's stream receive; set once, under rx.mu.
type rxStream struct {
	h      func(*Chunk, error)
	pool   *chunkPool
	limit  int32
	bundle bool
	// oneShot: one buffer per request, re-armed after each. AF_UNIX:
	// a multishot RECV there can miss a shutdown that races the last
	// data and stay armed forever (6.18; liburing issue 1549).
	oneShot bool
	held    atomic.Int32 // chunks delivered, not released
	parked  atomic.Bool  // stopped for want of buffers; changes under rx.mu
	// Under rx.mu.
	capCancel bool // io_uring: the request was cancelled at the limit
	limited   bool // io_uring: the request was armed with a byte budget
	ended     bool // the last call of the handler is due

	// epoll: the reader's callback and result (its goroutine's own).
	readFn func(fd uintptr) bool
	loopFn func()
	rbid   uint16
	rres   int32
	rdone  bool
}

// ReceiveChunks starts receiving the socket's byte stream into the
// engine's receive pool: h is called on the engine's goroutine with each
// Chunk, in stream order, then once with c == nil and why the stream
// ended (io.EOF, ErrClosed, or the socket's error). h owns each chunk
// until it calls Release (it may do so later, from another goroutine).
// The socket holds no buffer while no data arrives. A socket receives
// either with ReceiveAsync or with ReceiveChunks, not both.
//
// On io_uring it needs multishot receives and provided buffer rings
// (Linux 6.0); on older kernels it fails with an error that Is
// ring.ErrNotSupported, and a program falls back to ReceiveAsync.
func (s *Socket) ReceiveChunks(h func(c *Chunk, err error)) error {
	switch {
	case h == nil:
		return ErrNilHandler
	case !s.stream:
		return ErrNotStream
	case s.life.closing():
		return ErrClosed
	}
	if err := s.checkConnected(); err != nil {
		return err
	}
	pool, err := s.eng.chunkPool(s)
	if err != nil {
		return err
	}
	st := &rxStream{h: h, pool: pool, limit: int32(s.opts.chunkLimit), bundle: pool.bundle}
	if s.u != nil && s.unixDomain() {
		st.oneShot, st.bundle = true, false
	}
	if st.limit <= 0 {
		st.limit = defaultChunkLimit
	}
	if s.u == nil {
		st.readFn, st.loopFn = s.streamReadOnce, s.streamReadLoop
	}
	s.rx.mu.Lock()
	switch {
	case s.life.closing():
		s.rx.mu.Unlock()
		return ErrClosed
	case s.rx.stream != nil || s.rx.wire || s.rx.reading || s.rx.q.Len() > 0:
		s.rx.mu.Unlock()
		return ErrReceiving
	}
	s.rx.stream = st
	s.streamBusyLocked(true)
	s.rx.mu.Unlock()
	s.streamStart()
	return nil
}

// streamBusyLocked marks the receive side busy or idle, with rx.mu held:
// busy is what Close's hold counting sees (the io_uring wire, the epoll
// reader).
func (s *Socket) streamBusyLocked(busy bool) {
	if s.u != nil {
		s.rx.wire = busy
	} else {
		s.rx.reading = busy
	}
}

// streamStart arms the socket's request (io_uring) or starts its reader
// (epoll); the receive side is marked busy.
func (s *Socket) streamStart() {
	u := s.u
	if u == nil {
		go s.rx.stream.loopFn()
		return
	}
	switch tid := u.r.ReaperThread(); {
	case tid == 0:
		// A floating reaper (or none yet): arm from here.
		u.streamArm(s)
		if !u.raise.raising.Load() {
			u.submitOutside()
		}
	case tid == int32(unix.Gettid()):
		u.streamArm(s) // submitted by the enter the reaper waits in
	default:
		u.scheduleArm(s)
	}
}

// Release gives the chunk's buffer back to the pool; a socket parked for
// want of buffers may resume. It must be called exactly once per chunk.
func (c *Chunk) Release() {
	if !c.out.CompareAndSwap(true, false) {
		panic("socket: Chunk released twice")
	}
	s, p, bid := c.s, c.pool, c.bid
	c.b, c.s = nil, nil // before the buffer goes back: a delivery may reuse c
	st := s.rx.stream
	held := st.held.Add(-1)
	p.put(bid)
	if p.out.Add(-1) == 0 && p.closed.Load() {
		p.unmap() // the engine closed while this chunk was out
		return
	}
	if st.parked.Load() && held <= st.limit/2 {
		s.streamResume()
	}
	p.wakeWaiting()
}

// streamResume arms a parked stream again, unless it is over or still
// holds more than half its limit.
func (s *Socket) streamResume() {
	st := s.rx.stream
	s.rx.mu.Lock()
	if !st.parked.Load() || st.ended || s.life.closing() || st.held.Load() > st.limit/2 {
		s.rx.mu.Unlock()
		return
	}
	st.parked.Store(false)
	s.streamBusyLocked(true)
	s.rx.mu.Unlock()
	s.streamStart()
}

// chunkOf makes buffer bid's chunk, holding b, and counts it out.
func (s *Socket) chunkOf(bid uint16, b []byte) *Chunk {
	st := s.rx.stream
	c := &st.pool.chunks[bid]
	// The pool's count first: Release changed it after it cleared c's
	// fields, so this orders the two for the race detector too (the
	// kernel orders them by handing bid out again).
	st.pool.out.Add(1)
	c.b, c.s = b, s
	c.out.Store(true)
	st.held.Add(1)
	return c
}

// deliver queues one call of s's handler for the engine's goroutine. It
// is counted among what Close waits for.
func (s *Socket) deliver(c *Chunk, err error) {
	s.unraised.Add(1)
	s.pushDelivery(delivery{s: s, c: c, err: err})
}

func (s *Socket) pushDelivery(d delivery) {
	if s.u != nil {
		s.u.raise.pushDelivery(d)
		return
	}
	s.eng.disp.deliver(d)
}

// Why a stream stopped (streamStopped).
const (
	stopRes    = iota // the request ended with res
	stopCapped        // the handler holds its limit
	stopFailed        // the request could not be made (res: -errno): the stream ends
)

// streamStopped handles the end of the socket's request or read: it
// re-arms (true), parks, or ends the stream with the handler's last call.
func (s *Socket) streamStopped(res int32, why int) (again bool) {
	st := s.rx.stream
	s.rx.mu.Lock()
	enobufs, again, final := s.streamNextLocked(res, why)
	if final != nil {
		st.ended = true
		s.unraised.Add(1) // before the side lets go: Close must wait for it
	}
	if !again {
		s.streamBusyLocked(false)
	}
	idle := s.rxIdleLocked()
	s.rx.mu.Unlock()
	if final != nil {
		s.pushDelivery(delivery{s: s, err: final})
	}
	if enobufs {
		st.pool.wait(s)
	}
	if idle {
		s.releaseClose()
	}
	return again
}

// streamNextLocked decides, with rx.mu held, what follows a stopped
// request: a park on the empty pool (enobufs) or at the limit, another
// request (again), or the stream's end (final).
func (s *Socket) streamNextLocked(res int32, why int) (enobufs, again bool, final error) {
	st := s.rx.stream
	// At the limit: the cancel did it, or the kernel stopped at the
	// arm's byte budget (res > 0 without CQEFMore) with the limit reached.
	capped := why == stopCapped || st.capCancel || res > 0 && st.held.Load() >= st.limit
	st.capCancel = false
	limited := st.limited
	st.limited = false
	switch {
	case s.life.closing():
		return false, false, ErrClosed
	case why == stopFailed:
		return false, false, s.opError("read", syscall.Errno(-res))
	case why == stopRes && res == 0:
		return false, false, io.EOF
	case res == -int32(unix.ENOBUFS):
		st.parked.Store(true)
		return true, false, nil
	case res == -int32(unix.EINVAL) && limited:
		// The kernel has no byte budget for multishot receives (before
		// 6.15): arm without one from now on; the cancel at the limit
		// still bounds the stream, if less tightly.
		st.pool.noBudget.Store(true)
		return false, true, nil
	case capped && (res >= 0 || retriable(res)):
		// Parked first, then held read: a Release in between sees the
		// park and resumes the stream; one before it shows in held.
		st.parked.Store(true)
		if st.held.Load() > st.limit/2 {
			return false, false, nil
		}
		st.parked.Store(false)
		return false, true, nil
	case res > 0 || retriable(res):
		return false, true, nil
	}
	return false, false, s.opError("read", syscall.Errno(-res))
}

// streamCloseLocked ends a parked stream of a closing socket (nothing of
// it is in the kernel or reading, so nothing else will): with rx.mu held,
// it reports whether the handler's last call is due (pushed by the caller
// once the lock is gone), counted already.
func (s *Socket) streamCloseLocked() bool {
	st := s.rx.stream
	if st == nil || st.ended || s.rx.wire || s.rx.reading {
		return false
	}
	st.ended = true
	s.unraised.Add(1)
	return true
}

// --- io_uring ---

// streamArm publishes the socket's multishot receive (submitted by the
// caller, or by the reaper's next enter).
func (u *uring) streamArm(s *Socket) {
	st := s.rx.stream
	ud := u.rxUserData(s)
	// A byte budget (the SQE's optlen, 6.15) stops the request by itself
	// once the chunks it may fill reach the socket's limit: a burst then
	// cannot take more buffers than the limit before the kernel sees a
	// cancel.
	budget := int64(st.limit-st.held.Load()) * int64(st.pool.size)
	useBudget := budget > 0 && budget <= math.MaxInt32 && !st.pool.noBudget.Load() && !st.oneShot
	s.rx.mu.Lock()
	st.limited = useBudget
	s.rx.mu.Unlock()
	u.r.LockSQ()
	sqe, err := u.r.GetSQE()
	if err == nil {
		ring.PrepRecvMultishot(sqe, s.fd, st.pool.br.Group(), st.bundle)
		if st.oneShot {
			sqe.SetIoprio(0) // a plain RECV that selects a buffer
		} else if useBudget {
			sqe.SetSpliceFdIn(int32(budget)) // optlen: the union's other name
		}
		sqe.SetUserData(ud)
	}
	u.r.UnlockSQ()
	if err != nil {
		s.streamStopped(-int32(errnoOf(err)), stopFailed)
		return
	}
	if s.life.closing() {
		u.cancelUD(ud) // Close may have looked before it was published
	}
}

// onStream handles a CQE of the socket's multishot receive, with the
// completion lock held.
func (u *uring) onStream(s *Socket, c *ring.CQE) {
	st := s.rx.stream
	res := c.Result()
	more := c.Flags()&ring.CQEFMore != 0
	if res > 0 {
		bid, ok := ring.BufferID(c)
		if !ok {
			res = -int32(syscall.EIO) // cannot happen: a receive that selected no buffer
		} else if st.bundle {
			for id, b := range st.pool.br.Bundle(bid, int(res)) {
				s.deliver(s.chunkOf(id, b), nil)
			}
		} else {
			s.deliver(s.chunkOf(bid, st.pool.br.Buf(bid, int(res))), nil)
		}
		if more && st.held.Load() >= st.limit {
			s.rx.mu.Lock()
			first := !st.capCancel
			st.capCancel = true
			s.rx.mu.Unlock()
			if first {
				// Submitted now, not at the next enter: the kernel goes
				// on filling buffers for the socket until it sees it.
				u.cancelUD(c.UserData())
				u.r.Submit()
			}
		}
	}
	if more {
		return
	}
	if s.streamStopped(res, stopRes) {
		if u.r.Reaping() || u.r.ReaperThread() == 0 {
			u.streamArm(s)
		} else {
			u.scheduleArm(s) // an inline harvester's thread: not here
		}
	}
}

// scheduleArm hands the arming of s's request to the reaper. io_uring runs
// a request's task work — every receive of a multishot one — on the
// thread that submitted it: armed from the reaper's locked thread, the
// receives complete where their CQEs are waited for, instead of waking
// whichever Go thread an accepting goroutine happened to run on (15 % of
// a proxy's samples were that thread's signal handling). The cost is a
// wake of the reaper per arm when it is idle. An SQE published by the
// reaper may still be carried into the kernel by another goroutine's
// io_uring_enter; that costs only this saving.
func (u *uring) scheduleArm(s *Socket) { u.handToReaper(&u.armQ, s) }

// armAll arms, on the reaper, every stream handed to it by scheduleArm.
func (u *uring) armAll() {
	q := u.takeQueued(&u.armQ, &u.armSp)
	for i, s := range q {
		q[i] = nil
		u.streamArm(s)
	}
}

// --- epoll ---

// streamReadLoop is the epoll backend's reader of a stream receive: it
// reads until the handler holds its limit, the pool is empty, or the
// stream ends.
func (s *Socket) streamReadLoop() {
	st := s.rx.stream
	for {
		st.rres, st.rdone = 0, false
		s.rc.Read(st.readFn)
		res, why := st.rres, stopRes
		if !st.rdone {
			// Woken by Close's deadline, or the file failed.
			res, why = -int32(syscall.ECANCELED), stopFailed
		}
		if res > 0 {
			s.deliver(s.chunkOf(st.rbid, st.pool.buf(st.rbid, int(res))), nil)
			if st.held.Load() < st.limit {
				continue
			}
			why = stopCapped
		}
		if !s.streamStopped(res, why) {
			return
		}
	}
}

// streamReadOnce is the reader's RawConn.Read callback: one non-blocking
// recv(2) into a buffer taken from the pool for it, given back unless it
// received.
func (s *Socket) streamReadOnce(fd uintptr) bool {
	st := s.rx.stream
	p := st.pool
	for {
		bid, ok := p.take()
		if !ok {
			st.rres, st.rdone = -int32(unix.ENOBUFS), true
			return true
		}
		b := p.buf(bid, p.size)
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))),
			uintptr(len(b)), unix.MSG_DONTWAIT, 0, 0)
		s.eng.sys.count(&s.eng.sys.recvs, errno)
		if errno != 0 || n == 0 {
			p.put(bid)
		}
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
			st.rbid, st.rres = bid, int32(n)
		default:
			st.rres = -int32(errno)
		}
		st.rdone = true
		return true
	}
}

// --- the pool ---

// chunkPool is where stream receives' buffers come from: a ring's
// provided buffer ring (io_uring), or a slab of the engine's (epoll).
type chunkPool struct {
	size   int
	chunks []Chunk // one per buffer id
	out    atomic.Int32
	bundle bool

	br *ring.BufRing // io_uring

	slab []byte // epoll
	mu   sync.Mutex
	free []uint16

	noBudget atomic.Bool // io_uring: the kernel refused a multishot byte budget

	// io_uring: the ring closed; the buffer ring's memory goes once no
	// chunk is out (a relay may still read what it holds).
	closed, freed atomic.Bool

	// Streams parked on an empty pool, resumed as buffers come back.
	nwait   atomic.Int32
	waitMu  sync.Mutex
	waiting []*Socket
}

func newChunkPool(n, size int) *chunkPool {
	p := &chunkPool{size: size, chunks: make([]Chunk, n)}
	for i := range p.chunks {
		p.chunks[i].pool, p.chunks[i].bid = p, uint16(i)
	}
	return p
}

// buf is buffer bid's first n bytes.
func (p *chunkPool) buf(bid uint16, n int) []byte {
	if p.br != nil {
		return p.br.Buf(bid, n)
	}
	off := int(bid) * p.size
	return p.slab[off : off+n : off+p.size]
}

// take is a free buffer of the epoll slab.
func (p *chunkPool) take() (uint16, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		return 0, false
	}
	bid := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return bid, true
}

// put gives buffer bid back: to the kernel's ring, or the slab's free list.
func (p *chunkPool) put(bid uint16) {
	if p.br != nil {
		p.br.Recycle(bid)
		return
	}
	p.mu.Lock()
	p.free = append(p.free, bid)
	p.mu.Unlock()
}

// closeRing is the ring's close: the pool's memory is freed now, or by
// the Release of the last chunk out.
func (p *chunkPool) closeRing() {
	p.closed.Store(true)
	if p.out.Load() == 0 {
		p.unmap()
	}
}

// unmap unmaps the buffer ring, once.
func (p *chunkPool) unmap() {
	if p.br != nil && p.freed.CompareAndSwap(false, true) {
		p.br.Close()
	}
}

// wait parks s until buffers come back.
func (p *chunkPool) wait(s *Socket) {
	p.waitMu.Lock()
	p.waiting = append(p.waiting, s)
	p.nwait.Add(1)
	p.waitMu.Unlock()
	if p.out.Load() < int32(len(p.chunks)) {
		p.wakeWaiting() // one came back before s was listed
	}
}

// wakeWaiting resumes the streams parked on an empty pool.
func (p *chunkPool) wakeWaiting() {
	if p.nwait.Load() == 0 {
		return
	}
	p.waitMu.Lock()
	w := p.waiting
	p.waiting = nil
	p.nwait.Store(0)
	p.waitMu.Unlock()
	for _, s := range w {
		s.streamResume()
	}
}

// chunkPool returns the pool s's stream receive takes buffers from, made
// on first use: its ring's (registered as buffer group 0) or the engine's.
func (e *Engine) chunkPool(s *Socket) (*chunkPool, error) {
	if u := s.u; u != nil {
		return u.chunkPool(e.recvBufs, e.recvBufSize)
	}
	e.poolMu.Lock()
	defer e.poolMu.Unlock()
	if e.pool == nil {
		p := newChunkPool(e.recvBufs, e.recvBufSize)
		p.slab = make([]byte, e.recvBufs*e.recvBufSize)
		p.free = make([]uint16, e.recvBufs)
		for i := range p.free {
			p.free[i] = uint16(e.recvBufs - 1 - i)
		}
		e.pool = p
	}
	return e.pool, nil
}

func (u *uring) chunkPool(n, size int) (*chunkPool, error) {
	u.poolMu.Lock()
	defer u.poolMu.Unlock()
	if u.pool != nil {
		return u.pool, nil
	}
	if err := u.r.Require(ring.FeatureRecvMultishot); err != nil {
		return nil, err
	}
	br, err := u.r.RegisterBufRing(0, n, size)
	if err != nil {
		return nil, fmt.Errorf("socket: receive pool: %w", err)
	}
	p := newChunkPool(n, size)
	p.br, p.bundle = br, u.r.Has(ring.FeatureRecvBundle)
	u.eng.noPin.Add(br.Memory())
	u.pool = p
	return p, nil
}

// recvPoolSize is EngineConfig's receive pool, defaults filled in: a
// power of two of buffers (a provided buffer ring's size).
func recvPoolSize(n, size int) (int, int, error) {
	if n <= 0 {
		n = defaultRecvBuffers
	}
	if size <= 0 {
		size = defaultRecvBufferSize
	}
	if n > ring.MaxBufRingEntries {
		return 0, 0, fmt.Errorf("%w: RecvBuffers %d (at most %d)", ErrBadRecvPool, n, ring.MaxBufRingEntries)
	}
	p := 1
	for p < n {
		p <<= 1
	}
	return p, size, nil
}

// delivery is one call of a stream's handler, queued for the engine's
// goroutine: a chunk, or (c == nil) the end of the stream.
type delivery struct {
	s   *Socket
	c   *Chunk
	err error
}

// run calls the handler and counts the call done.
func (d *delivery) run() {
	d.s.rx.stream.h(d.c, d.err)
	d.s.raisedDone(1)
}

// unixDomain reports an AF_UNIX socket: from the net.Conn's address
// where there is one (no system call: a proxy opens thousands a second),
// else from the kernel.
func (s *Socket) unixDomain() bool {
	switch s.laddr.(type) {
	case *net.TCPAddr, *net.UDPAddr:
		return false
	case *net.UnixAddr:
		return true
	}
	dom, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	return err == nil && dom == unix.AF_UNIX
}
