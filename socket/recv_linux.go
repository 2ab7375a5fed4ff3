package socket

// The receive side. ReceiveAsync has SendAsync's contract with the
// direction turned around: it receives into the Args' Buffer, and
// completes synchronously (pending == false) or raises Completed exactly
// once on the engine's goroutine.
//
// Receives on one socket form a FIFO of their own, beside the send queue:
// only its head — the rx wire — is in the kernel (io_uring) or being read
// (epoll), so receives complete in call order and never split one
// stream's bytes between two buffers out of order. Only the wire's owner
// (the goroutine that submitted it, then whoever handles its result)
// touches the wire's fields; rxState.mu guards the queue.
//
// io_uring: the wire is one IORING_OP_RECV with the buffer pinned until
// its CQE. user_data is (rxBit|gen)<<32 | the socket's slot index, never a
// pointer; gen comes from the ring's counter and changes with every
// submission, so a stale CQE cannot be taken for a live one. A receive
// started while the reaper raises Completed (the usual case: a handler
// that has sent what it received and receives again) is only published;
// the reaper submits it, with the sends and receives of every other
// handler, in the io_uring_enter in which it waits.
//
// epoll: ReceiveAsync tries a non-blocking recv(2) inline; what would
// block is continued by a reader goroutine per waiting socket, which waits
// for readability on Go's netpoller (syscall.RawConn.Read) and exits when
// the socket's receive queue is empty. Completed is raised by the engine's
// dispatcher, as for sends.
//
// Close completes a receive on the wire with OperationAborted (cancelled
// in the kernel by ASYNC_CANCEL, or woken by a read deadline in the past)
// before the descriptor is closed, and the receives queued behind it after
// it, in order; one that finished first keeps its real result.

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/uringsend/uringsend/internal/op"
	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// Errors of ReceiveAsync besides SendAsync's. Their text never changes.
var (
	// ErrReceiveBufferList: ReceiveAsync receives into a Buffer only.
	ErrReceiveBufferList = errors.New("socket: ReceiveAsync takes a Buffer, not a BufferList")
	// ErrEmptyBuffer: ReceiveAsync needs room for at least one byte (a
	// receive of 0 bytes would be indistinguishable from end of stream).
	ErrEmptyBuffer = errors.New("socket: ReceiveAsync needs a Buffer of at least one byte")
)

// recvFlags are the MSG_* flags a receive may carry.
const recvFlags = unix.MSG_OOB

// rxState is a socket's receive side.
type rxState struct {
	mu   sync.Mutex
	q    op.Queue // receives in call order; q.Head() is the wire when wire is set
	wire bool     // the head is in the kernel or being read
	// toRaise counts the socket's completed receives whose Completed has
	// not begun: while there are any, a new receive does not complete
	// inline, so receives complete in call order.
	toRaise atomic.Int64
	reading bool      // epoll: the reader goroutine runs
	stream  *rxStream // ReceiveChunks (stream_linux.go); set once

	// The wire, owned by its owner.
	buf   []byte
	flags int
	gen   atomic.Uint32 // io_uring: generation of the SQE on the wire
	// io_uring: pin holds the buffer at pinnedAt in place. It stays
	// pinned after its receive, until a receive into another buffer or
	// Close: a socket usually receives into the same few buffers, and
	// pinning costs more than a receive's other work in Go.
	pin      runtime.Pinner
	pinnedAt *byte
	// io_uring: submit the next wire asking the kernel to poll first —
	// after EAGAIN, or when the last receive emptied the socket.
	pollFirst bool

	// epoll: the reader's callback (made once) and its result.
	readFn func(fd uintptr) bool
	res    int32
	done   bool
}

// ReceiveAsync starts receiving into e's Buffer.
//
// pending == false, err == nil: the receive finished before ReceiveAsync
// returned; e holds the result and Completed is not raised. pending ==
// true: Completed is raised exactly once, later, on the engine's
// goroutine. err != nil: nothing was received, nothing will be raised, and
// e is free again; err is one of sendop.ErrNilArgs, ErrNoBuffer,
// ErrBufferConflict, ErrInProgress, ErrBadFlags, ErrReceiveBufferList,
// ErrEmptyBuffer, ErrClosed, ErrNotConnected or ErrReceiving (the socket
// receives with ReceiveChunks).
//
// BytesTransferred is the number of bytes received, at most len(Buffer);
// 0 with Success means the peer has closed its side (end of stream).
// Errors map to SocketError as for sends (ConnectionReset, ...); a receive
// still waiting when the socket is closed completes with
// OperationAborted. Flags may hold MSG_OOB only; Timeout does not apply to
// receives (close the socket to stop one). Receives on one socket complete
// in call order; they may be in flight together with sends.
func (s *Socket) ReceiveAsync(e *sendop.Args) (pending bool, err error) {
	o, err := claim(e)
	if err != nil {
		return false, err
	}
	if err := s.receivable(e); err != nil {
		o.Abandon()
		return false, err
	}
	// No pins through Begin: the receive's one buffer is pinned by the
	// wire (rxLaunch), where the epoll backend needs none.
	o.Begin(s.stream, nil)
	o.Recv = true
	o.Socket = s
	switch s.rxEnqueue(o, e) {
	case rxRefused:
		o.Abandon()
		return false, ErrClosed
	case rxStreaming:
		o.Abandon()
		return false, ErrReceiving
	case rxQueued:
		return true, nil
	case rxHandedOff:
		s.rxHandOff()
		return true, nil
	}
	if u := s.u; u != nil {
		u.rxLaunch(s)
		// The peek: data already waiting is received inside the
		// io_uring_enter, so the receive completes synchronously.
		u.r.SubmitAndHarvest(u)
		u.afterInlineHarvest()
	} else {
		s.epollRecvStart()
	}
	return o.Decide(), nil
}

// How ReceiveAsync's receive goes on (rxEnqueue).
const (
	rxInline    = iota // on the wire now, from the caller: try it inline
	rxQueued           // behind the wire
	rxHandedOff        // on the wire, but must not complete inline (rxHandOff)
	rxRefused          // the socket is closing
	rxStreaming        // the socket receives with ReceiveChunks
)

// rxEnqueue queues o (e's op) in call order and decides, under rx.mu, how
// it goes on.
func (s *Socket) rxEnqueue(o *op.Op, e *sendop.Args) int {
	s.rx.mu.Lock()
	defer s.rx.mu.Unlock()
	if s.life.closing() {
		return rxRefused
	}
	if s.rx.stream != nil {
		return rxStreaming
	}
	s.rx.q.Push(o)
	if s.rx.wire {
		o.MarkQueued()
		return rxQueued
	}
	s.rx.wire = true
	s.rx.buf, s.rx.flags = e.Buffer(), e.Flags
	if s.rx.reading || s.rx.toRaise.Load() > 0 || s.u != nil && (s.opts.async || s.u.raise.raising.Load()) {
		o.MarkQueued()
		return rxHandedOff
	}
	o.MarkInline()
	return rxInline
}

// receivable checks what ReceiveAsync takes beyond what any Args must
// hold: one non-empty Buffer, receive flags, an open connected socket.
func (s *Socket) receivable(e *sendop.Args) error {
	switch {
	case e.BufferList() != nil:
		return ErrReceiveBufferList
	case len(e.Buffer()) == 0:
		return ErrEmptyBuffer
	case e.Flags&^recvFlags != 0:
		return sendop.ErrBadFlags
	case s.life.closing():
		return ErrClosed
	}
	return s.checkConnected()
}

// rxHandOff puts a new rx wire in flight without waiting for it, when
// ReceiveAsync must not try it inline:
//   - an earlier receive of the socket has completed and its Completed has
//     not been raised yet: completing this one synchronously would hand
//     its bytes to the caller first;
//   - epoll: the reader goroutine has not left yet; it sees the new wire
//     and takes it (an inline attempt now would race it);
//   - io_uring, inside a raise (usually from a handler): the wire is only
//     published, and the reaper's next io_uring_enter submits it with
//     everything else the handlers started. If the reaper stopped raising
//     meanwhile it may already be past that enter: then submit here;
//   - io_uring, WithAsyncCompletions: submitted here, not peeked at.
func (s *Socket) rxHandOff() {
	u := s.u
	if u == nil {
		s.rxKickReader() // unless it runs already
		return
	}
	u.rxLaunch(s)
	if !u.raise.raising.Load() {
		u.submitOutside()
	}
}

// rxSettle hands the wire's result (bytes, 0 at end of stream, or -errno)
// to the head, makes the next receive the wire and reports whether there
// is one. On a closing socket the receives queued behind the head complete
// with OperationAborted instead, and Close is told the wire is done.
func (s *Socket) rxSettle(res int32) (more bool) {
	var raise, aborted op.Queue
	// Less than the buffer holds: the socket is empty now, so the next
	// receive would only find that out before it waits.
	s.rx.pollFirst = res > 0 && int(res) < len(s.rx.buf)
	s.rx.mu.Lock()
	o := s.rx.q.Pop()
	s.rx.wire = false
	s.rx.buf = nil
	closing := s.life.closing()
	res = finalResult(res, closing, false)
	if closing {
		aborted.Concat(&s.rx.q)
	} else if next := s.rx.q.Head(); next != nil {
		s.rx.wire = true
		s.rx.buf, s.rx.flags = next.Buffer(), next.UserFlags() // the snapshot ReceiveAsync took
		more = true
	}
	// Counted before the lock goes: a Close that finds no wire must find
	// these receives' Completed still to come.
	reserved := 1 + aborted.Len()
	s.unraised.Add(int64(reserved))
	// Counted under the lock too: a ReceiveAsync that finds the wire free
	// must also find that these may still be raised (see toRaise).
	s.rx.toRaise.Add(int64(reserved))
	idle := s.rxIdleLocked()
	s.rx.mu.Unlock()

	var errno syscall.Errno
	if res > 0 {
		o.Advance(res) // BytesTransferred = res; a receive is never continued
	} else if res < 0 {
		errno = syscall.Errno(-res)
	}
	if o.Complete(errno) {
		raise.Push(o)
	}
	completeAll(&raise, &aborted, syscall.ECANCELED)
	s.rx.toRaise.Add(int64(raise.Len() - reserved)) // the inline one is its caller's
	s.handOver(&raise, reserved)                    // receives are marked Recv: no send metrics
	if idle {
		s.releaseClose()
	}
	return more
}

// rxLaunch publishes the SQE of s's rx wire (not yet entering the kernel).
// A failure to get an SQE completes the receive with the error, and
// rxLaunch goes on with the next one.
func (u *uring) rxLaunch(s *Socket) {
	for {
		if p := unsafe.SliceData(s.rx.buf); p != s.rx.pinnedAt {
			if s.rx.pinnedAt != nil {
				s.rx.pin.Unpin()
			}
			s.rx.pin.Pin(p)
			s.rx.pinnedAt = p
		}
		ud := u.rxUserData(s)
		u.r.LockSQ()
		sqe, err := u.r.GetSQE()
		if err == nil {
			ring.PrepRecv(sqe, s.fd, s.rx.buf, uint32(s.rx.flags))
			if s.rx.pollFirst {
				s.rx.pollFirst = false
				sqe.SetIoprio(ring.RecvsendPollFirst)
			}
			sqe.SetUserData(ud)
		}
		u.r.UnlockSQ()
		if err == nil {
			if s.life.closing() {
				u.cancelUD(ud) // Close may have looked before it was published
			}
			return
		}
		if !s.rxSettle(-int32(errnoOf(err))) {
			return
		}
	}
}

// rxUserData gives s's next receive request a new generation and returns
// its user_data.
func (u *uring) rxUserData(s *Socket) uint64 {
	gen := u.nextGen()
	s.rx.gen.Store(gen)
	return uint64(gen|rxBit)<<32 | uint64(s.w.idx)
}

// onRecv handles the CQE of a receive (user_data with rxBit), with the
// completion lock held.
func (u *uring) onRecv(c *ring.CQE) {
	ud := c.UserData()
	s := u.socks.get(uint32(ud))
	if s == nil || s.rx.gen.Load() != uint32(ud>>32)&^rxBit {
		u.staleCQE(c)
		return
	}
	if s.rx.stream != nil {
		u.onStream(s, c)
		return
	}
	res := c.Result()
	if retriable(res) {
		// Nothing was received (see retriable): ask again, with poll
		// first — unless Close is waiting for the wire.
		if !s.life.closing() {
			s.rx.pollFirst = true
			u.rxLaunch(s)
			return
		}
	}
	if s.rxSettle(res) {
		u.rxLaunch(s)
	}
}

// markRxClosing stops new receives and the launch of queued ones, and
// reports whether the receive side is busy (a wire in the kernel, or the
// epoll reader running): then it holds the close until it is idle. Close
// calls it before it cancels the wire: the receives behind that one must
// not go on receiving after it failed.
func (s *Socket) markRxClosing() (busy bool) {
	s.rx.mu.Lock()
	busy = s.rx.wire || s.rx.reading
	if busy {
		s.life.holdSide(lifeRxHeld) // Close's own hold keeps it above 0 until now
	}
	final := s.streamCloseLocked() // a parked stream ends here
	s.rx.mu.Unlock()
	if final {
		s.pushDelivery(delivery{s: s, err: ErrClosed})
	}
	return busy
}

// rxIdleLocked reports, with rx.mu held on a closing socket, whether the
// receive side has just become idle while it held the close: the caller
// calls releaseClose once it has let go of the lock.
func (s *Socket) rxIdleLocked() bool {
	return !s.rx.wire && !s.rx.reading && s.life.has(lifeRxHeld) && s.life.dropSide(lifeRxHeld)
}

// rxUnpin lets go of the last receive's buffer, once no receive can
// follow.
func (s *Socket) rxUnpin() {
	if s.rx.pinnedAt != nil {
		s.rx.pin.Unpin()
		s.rx.pinnedAt = nil
	}
}

// epollRecvStart is ReceiveAsync's inline attempt at the rx wire on the
// epoll backend.
func (s *Socket) epollRecvStart() {
	res, ok := s.recvOnce(s.fd)
	if !ok {
		s.rxKickReader()
		return
	}
	if h := testHookRecv.Load(); h != nil {
		(*h)(hookInlineReceived)
	}
	// Completions go to the engine's dispatcher, never raised on the
	// caller's goroutine.
	if s.rxSettle(res) {
		s.rxKickReader()
	}
}

// recvOnce makes one non-blocking recv(2) into the rx wire's buffer: the
// bytes or -errno, and false when it would block.
func (s *Socket) recvOnce(fd int) (int32, bool) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(s.rx.buf))),
			uintptr(len(s.rx.buf)), uintptr(s.rx.flags|unix.MSG_DONTWAIT), 0, 0)
		s.eng.sys.count(&s.eng.sys.recvs, errno)
		switch errno {
		case 0:
			return int32(n), true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, false
		}
		return -int32(errno), true
	}
}

func (s *Socket) rxKickReader() {
	s.rx.mu.Lock()
	if !s.rx.reading {
		s.rx.reading = true
		if s.rx.readFn == nil {
			s.rx.readFn = s.readOnce
		}
		go s.readLoop()
	}
	s.rx.mu.Unlock()
}

// readLoop receives the rx wire and what queues behind it until the
// receive queue is empty.
func (s *Socket) readLoop() {
	for {
		s.rx.mu.Lock()
		if !s.rx.wire {
			s.rx.reading = false
			idle := s.rxIdleLocked()
			s.rx.mu.Unlock()
			if idle {
				s.releaseClose()
			}
			return
		}
		s.rx.mu.Unlock()
		s.rxSettle(s.recvBlocking())
		if h := testHookRecv.Load(); h != nil {
			(*h)(hookReaderSettled)
		}
	}
}

// testHookRecv, when a test sets it, runs at the points below of the
// epoll receive path, to widen its races.
var testHookRecv atomic.Pointer[func(point int)]

const (
	hookReaderSettled  = iota // the reader completed a receive and has not looked at the queue again
	hookInlineReceived        // an inline recv(2) got a result not yet settled
)

// recvBlocking receives once, waiting for readability on the netpoller
// if nothing is there. It returns bytes or -errno: -ECANCELED when Close
// has set a past read deadline, -ETIMEDOUT for a deadline of the owner's.
func (s *Socket) recvBlocking() int32 {
	s.rx.res, s.rx.done = 0, false
	err := s.rc.Read(s.rx.readFn)
	if s.rx.done {
		return s.rx.res
	}
	if err != nil && !s.life.closing() && errors.Is(err, os.ErrDeadlineExceeded) {
		return -int32(syscall.ETIMEDOUT)
	}
	return -int32(syscall.ECANCELED)
}

// readOnce is the RawConn.Read callback (made once per socket).
func (s *Socket) readOnce(fd uintptr) bool {
	res, ok := s.recvOnce(int(fd))
	if !ok {
		return false
	}
	s.rx.res, s.rx.done = res, true
	return true
}

func (s *Socket) setReadDeadline(t time.Time) {
	type deadliner interface{ SetReadDeadline(time.Time) error }
	if d, ok := s.owner.(deadliner); ok {
		d.SetReadDeadline(t)
	}
}
