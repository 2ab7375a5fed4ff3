package sendop

import (
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// Args describes one send and carries its result: the analogue of .NET's
// SocketAsyncEventArgs. Set Buffer or BufferList (not both), optionally
// Flags, UserToken and Completed, and hand it to Socket.SendAsync. It may be
// reused for another send once the previous one has completed: when
// SendAsync returned false, or from the moment Completed is called.
//
// The zero value is ready to use. An Args must not be copied after first use.
type Args struct {
	// UserToken is any state the caller wants back in Completed.
	UserToken any
	// Flags are MSG_* flags for send(2): MSG_MORE, MSG_EOR, MSG_OOB,
	// MSG_DONTROUTE, MSG_CONFIRM. MSG_NOSIGNAL is always added.
	Flags int
	// Timeout, when positive, bounds how long the send may stay on the
	// wire: one still unfinished after Timeout completes with TimedOut and
	// the bytes already sent (on a stream socket the byte stream is then
	// cut short, so the caller usually closes the connection). It counts
	// from the moment the send reaches the kernel, not from SendAsync: time
	// spent queued behind earlier sends on the socket is not included. It
	// bounds the whole send once, however many pieces the engine sends it
	// in (a BufferList longer than IOVMax, a short send continued).
	Timeout time.Duration
	// Completed is raised, on the engine's goroutine, when a send for which
	// SendAsync returned pending == true has completed. The Args is free
	// again when it runs, so Completed may call SendAsync with it. It must
	// not block: it holds up every completion of its engine.
	Completed func(e *Args)

	buf  []byte
	bufs [][]byte
	op   Op
}

// SetBuffer sets the data to send and clears nothing else: setting both a
// Buffer and a BufferList is reported by SendAsync as ErrBufferConflict.
// SetBuffer(nil) unsets it. A change made while a send is in progress
// applies to the next send only.
func (e *Args) SetBuffer(b []byte) { e.buf = b }

// SetBufferList sets several buffers to send as one gathered write
// (sendmsg). SetBufferList(nil) unsets it. Empty or nil buffers inside the
// list are allowed and send nothing.
func (e *Args) SetBufferList(bufs [][]byte) { e.bufs = bufs }

// Buffer returns the buffer set by SetBuffer.
func (e *Args) Buffer() []byte { return e.buf }

// BufferList returns the list set by SetBufferList.
func (e *Args) BufferList() [][]byte { return e.bufs }

// BytesTransferred is the number of bytes the last send handed to the
// kernel: all of them on success; on a stream socket that failed, the bytes
// sent before the error.
func (e *Args) BytesTransferred() int { return e.op.transferred }

// SocketError is the result of the last send.
func (e *Args) SocketError() SocketError { return SocketErrorOf(e.op.errno) }

// Err returns nil when the last send succeeded, else an *Error wrapping
// the errno, so errors.Is(e.Err(), syscall.EMSGSIZE) works.
func (e *Args) Err() error {
	if e.op.errno == 0 {
		return nil
	}
	return &Error{Code: SocketErrorOf(e.op.errno), Errno: e.op.errno}
}

// IOVMax is the most iovecs one sendmsg takes (Linux UIO_MAXIOV). Stream
// sends of longer BufferLists go out in pieces of IOVMax; datagram sends
// of longer lists fail with MessageSize.
const IOVMax = 1024

// OpOf returns the engine-facing half of e. It is for send engines
// (package socket); user code has no use for it.
func OpOf(e *Args) *Op { return &e.op }

// Op is the state of one send as a send engine sees it: the state machine,
// the progress through the buffers, the kernel-facing iovecs and msghdr,
// and the pins that keep memory in place while the kernel holds it.
type Op struct {
	state opState
	// Snapshot of the buffers taken by Begin, so SetBuffer during a send
	// cannot pull memory from under the kernel.
	buf   []byte
	bufs  [][]byte
	total int

	transferred int
	errno       syscall.Errno

	seg, off int // next byte to send: bufs[seg][off:] (buf[off:])
	timeout  time.Duration
	deadline time.Time // set when the op first reaches the kernel, with a timeout
	stream   bool      // continue short sends; split BufferLists at IOV_MAX
	flags    uint32
	pins     pinSet
	next     *Args
	sys      opSys

	// Start is the engine's timestamp (nanoseconds) of SendAsync.
	Start int64
	// Socket is the engine's owner of the op while it is in use.
	Socket any
	// Recv marks a receive (set by the engine after Begin): engines keep
	// it out of their send metrics.
	Recv bool
}

// Args returns the Args o belongs to.
func (o *Op) Args() *Args { return argsOf(o) }

// Claim marks e in use; it fails with ErrInProgress if it already is.
// Then it validates e: on an error e is free again.
func (o *Op) Claim(e *Args) error {
	if e == nil {
		return ErrNilArgs
	}
	if !o.state.claim() {
		return ErrInProgress
	}
	err := validate(e)
	if err != nil {
		o.state.set(statePending, stateFree)
	}
	return err
}

func validate(e *Args) error {
	switch {
	case e.buf != nil && e.bufs != nil:
		return ErrBufferConflict
	case e.buf == nil && e.bufs == nil:
		return ErrNoBuffer
	case e.Flags&^allowedFlags != 0:
		return ErrBadFlags
	}
	return nil
}

// Begin snapshots the buffers, resets the result and pins the memory the
// kernel will read after the call that submits it returns: through pc, the
// socket's cache, or — when pc is full — for this send only. pc == nil pins
// nothing: for engines whose system calls read the memory before they
// return. stream selects all-or-error continuation. The op must be
// claimed.
func (o *Op) Begin(e *Args, stream bool, pc *PinCache) {
	o.buf, o.bufs = e.buf, e.bufs
	o.total = len(o.buf)
	for _, b := range o.bufs {
		o.total += len(b)
	}
	o.transferred, o.errno, o.seg, o.off = 0, 0, 0, 0
	o.stream = stream
	o.timeout, o.deadline = e.Timeout, time.Time{}
	o.flags = uint32(e.Flags) | msgNoSignal
	o.Recv = false
	o.pin(pc)
}

// Abandon releases a claimed op that will not be sent (the socket refused
// it): e is free again and nothing is raised.
func (o *Op) Abandon() {
	o.unpin()
	o.buf, o.bufs, o.Socket = nil, nil, nil
	o.state.set(statePending, stateFree)
}

// Flags is the MSG_* flags the op is sent with (MSG_NOSIGNAL included).
func (o *Op) Flags() int { return int(o.flags) }

// Timeout is the op's time limit on the wire (0: none).
func (o *Op) Timeout() time.Duration { return o.timeout }

// TimeLeft is what is left of the op's Timeout, for a piece of it about
// to reach the kernel; ok is false for an op without a Timeout. The first
// call starts the clock: the Timeout bounds the whole op once, however
// many pieces it goes out in. left <= 0 means the time is up: the op
// completes with ETIMEDOUT without another piece.
func (o *Op) TimeLeft() (left time.Duration, ok bool) {
	if o.timeout <= 0 {
		return 0, false
	}
	now := time.Now()
	if o.deadline.IsZero() {
		o.deadline = now.Add(o.timeout)
		return o.timeout, true
	}
	return o.deadline.Sub(now), true
}

// IsBuffer reports whether the op sends a Buffer (one SEND), not a
// BufferList (a SENDMSG).
func (o *Op) IsBuffer() bool { return o.bufs == nil }

// Total is the number of bytes the op sends.
func (o *Op) Total() int { return o.total }

// Transferred is the number of bytes sent so far.
func (o *Op) Transferred() int { return o.transferred }

// Errno is the op's error, 0 on success.
func (o *Op) Errno() syscall.Errno { return o.errno }

// MarkQueued records that the op waits behind others (or for the reaper):
// SendAsync returns pending, and Completed will be raised. Nothing in the
// state word changes when it reaches the wire: each atomic transition costs
// a locked instruction per send.
func (o *Op) MarkQueued() {
	if st := o.state.load(); st != statePending {
		panic("sendop: MarkQueued of an op in state " + name(st))
	}
}

// MarkInline records that SendAsync submits the op itself and will decide
// afterwards (Decide) whether it completed synchronously.
func (o *Op) MarkInline() { o.state.set(statePending, stateInline) }

// Decide is SendAsync's last step for an inline op: pending == false
// means the op already finished and e holds the result (and is free);
// pending == true means Completed will be raised.
func (o *Op) Decide() (pending bool) { return o.state.decide() }

// Complete records a final error (errno != 0 overrides a success) and
// releases the op's own pins (not its socket cache's). It reports whether Completed must be raised (with
// Raise, on the engine's goroutine); if not, SendAsync will return false.
func (o *Op) Complete(errno syscall.Errno) (raise bool) {
	if errno != 0 {
		o.errno = errno
	}
	o.unpin()
	o.buf, o.bufs = nil, nil
	return o.state.finish()
}

// Raise frees e and calls its Completed handler.
func (o *Op) Raise() {
	e := argsOf(o)
	o.Socket = nil
	o.state.set(statePending, stateFree)
	if e.Completed != nil {
		e.Completed(e)
	}
}

// Next returns the op queued after o (see Queue).
func (o *Op) Next() *Args { return o.next }

func (o *Op) pin(pc *PinCache) {
	o.sysAlloc()
	if pc == nil {
		return
	}
	if len(o.buf) > 0 {
		o.pinVia(pc, unsafe.Pointer(&o.buf[0]), cap(o.buf))
	}
	for _, b := range o.bufs {
		if len(b) > 0 {
			o.pinVia(pc, unsafe.Pointer(&b[0]), cap(b))
		}
	}
	o.pinSys(pc)
}

// pinVia pins p through the socket's cache, or for this send if it is full.
func (o *Op) pinVia(pc *PinCache, p unsafe.Pointer, size int) {
	if !pc.pin(p, size) {
		o.pins.pin(p)
	}
}

func (o *Op) unpin() {
	if o.pins.n > 0 {
		o.pins.unpin()
	}
}

// pinSet pins any number of objects without allocating in steady state.
// One runtime.Pinner holds a handful of pointers in place; past that, its
// Pin grows a slice that Unpin throws away, so a long BufferList would
// allocate on every send. A pinSet spreads the pins over several Pinners,
// kept across sends: after the first send of a shape, pinning allocates
// nothing.
type pinSet struct {
	ps []runtime.Pinner
	n  int // pins taken since the last unpin
}

// pinsPerPinner stays within runtime.Pinner's inline store.
const pinsPerPinner = 4

func (s *pinSet) pin(p unsafe.Pointer) {
	i := s.n / pinsPerPinner
	if i == len(s.ps) {
		s.ps = append(s.ps, runtime.Pinner{})
	}
	s.ps[i].Pin(p)
	s.n++
}

func (s *pinSet) unpin() {
	for i := 0; i*pinsPerPinner < s.n; i++ {
		s.ps[i].Unpin()
	}
	s.n = 0
}

// Queue is an intrusive FIFO of Args: the per-socket send queue. It
// allocates nothing. Not safe for concurrent use.
type Queue struct {
	head, tail *Args
	n          int
}

// Push appends e.
func (q *Queue) Push(e *Args) {
	e.op.next = nil
	if q.tail == nil {
		q.head = e
	} else {
		q.tail.op.next = e
	}
	q.tail = e
	q.n++
}

// Head returns the first Args, or nil.
func (q *Queue) Head() *Args { return q.head }

// Pop removes and returns the first Args, or nil.
func (q *Queue) Pop() *Args {
	e := q.head
	if e == nil {
		return nil
	}
	q.head = e.op.next
	if q.head == nil {
		q.tail = nil
	}
	e.op.next = nil
	q.n--
	return e
}

// Concat moves every Args of r to the end of q, leaving r empty.
func (q *Queue) Concat(r *Queue) {
	if r.head == nil {
		return
	}
	if q.tail == nil {
		q.head = r.head
	} else {
		q.tail.op.next = r.head
	}
	q.tail = r.tail
	q.n += r.n
	*r = Queue{}
}

// Len returns the number of queued Args.
func (q *Queue) Len() int { return q.n }
