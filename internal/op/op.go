package op

import (
	"errors"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// Errors of Claim. Package sendop exports them (their text, which never
// changes, names it); they are defined here, where the rules they report
// are.
var (
	// ErrNoBuffer: neither Buffer nor BufferList is set.
	ErrNoBuffer = errors.New("sendop: neither Buffer nor BufferList is set")
	// ErrBufferConflict: Buffer and BufferList are both set; one or the
	// other, as .NET requires.
	ErrBufferConflict = errors.New("sendop: both Buffer and BufferList are set")
	// ErrInProgress: the Args is still used by an operation that has not
	// completed (Completed has not been raised yet).
	ErrInProgress = errors.New("sendop: Args is already in use by an operation in progress")
	// ErrBadFlags: Flags holds MSG_* bits a send engine cannot honour
	// (MSG_DONTWAIT, MSG_WAITALL as a user flag, unknown bits...).
	ErrBadFlags = errors.New("sendop: unsupported MSG_* flags")
)

// IOVMax is the most iovecs one sendmsg takes (Linux UIO_MAXIOV). Stream
// sends of longer BufferLists go out in pieces of IOVMax; datagram sends
// of longer lists fail with EMSGSIZE (Check). sendop exports it.
const IOVMax = 1024

// Op is the state of one send as a send engine sees it: the state machine,
// the progress through the buffers, the kernel-facing iovecs and msghdr,
// and the pins that keep memory in place while the kernel holds it. It is
// the first field of sendop.Args (sendop checks that at compile time), so
// an engine converts between the two with unsafe.Pointer.
type Op struct {
	state opState
	// Snapshot of the buffers taken by Claim, so SetBuffer during a send
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
	next     *Op
	sys      opSys

	// Start is the engine's timestamp (nanoseconds) of SendAsync.
	Start int64
	// Socket is the engine's owner of the op while it is in use.
	Socket any
	// Recv marks a receive (set by the engine after Begin): engines keep
	// it out of their send metrics.
	Recv bool
}

// Claim marks the op in use — ErrInProgress if it already is — then
// validates the send its caller describes (a Buffer or a BufferList, the
// MSG_* flags, the Timeout) and takes a snapshot of it, so that a SetBuffer
// during the send cannot pull memory from under the kernel. On an error
// the op is free again.
func (o *Op) Claim(buf []byte, bufs [][]byte, flags int, timeout time.Duration) error {
	if !o.state.claim() {
		return ErrInProgress
	}
	if err := validate(buf, bufs, flags); err != nil {
		o.state.set(statePending, stateFree)
		return err
	}
	o.buf, o.bufs = buf, bufs
	o.flags = uint32(flags) | msgNoSignal
	o.timeout = timeout
	return nil
}

func validate(buf []byte, bufs [][]byte, flags int) error {
	switch {
	case buf != nil && bufs != nil:
		return ErrBufferConflict
	case buf == nil && bufs == nil:
		return ErrNoBuffer
	case flags&^allowedFlags != 0:
		return ErrBadFlags
	}
	return nil
}

// Begin resets the result and pins the memory the kernel will read after
// the call that submits it returns: through pc, the socket's cache, or —
// when pc is full — for this send only. pc == nil pins nothing: for
// engines whose system calls read the memory before they return. stream
// selects all-or-error continuation. The op must be claimed.
func (o *Op) Begin(stream bool, pc *PinCache) {
	o.total = len(o.buf)
	for _, b := range o.bufs {
		o.total += len(b)
	}
	o.transferred, o.errno, o.seg, o.off = 0, 0, 0, 0
	o.stream = stream
	o.deadline = time.Time{}
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

// Buffer is the Buffer Claim took (nil for a BufferList).
func (o *Op) Buffer() []byte { return o.buf }

// UserFlags is the MSG_* flags Claim took, as the caller set them.
func (o *Op) UserFlags() int { return int(o.flags &^ msgNoSignal) }

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
		panic("op: MarkQueued of an op in state " + name(st))
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

// Free makes a completed op free for its next send; the engine then raises
// its Args' Completed.
func (o *Op) Free() {
	o.Socket = nil
	o.state.set(statePending, stateFree)
}

// Next returns the op queued after o (see Queue).
func (o *Op) Next() *Op { return o.next }

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

// Queue is an intrusive FIFO of ops: a socket's send or receive queue. It
// allocates nothing. Not safe for concurrent use.
type Queue struct {
	head, tail *Op
	n          int
}

// Push appends o.
func (q *Queue) Push(o *Op) {
	o.next = nil
	if q.tail == nil {
		q.head = o
	} else {
		q.tail.next = o
	}
	q.tail = o
	q.n++
}

// Head returns the first op, or nil.
func (q *Queue) Head() *Op { return q.head }

// Pop removes and returns the first op, or nil.
func (q *Queue) Pop() *Op {
	o := q.head
	if o == nil {
		return nil
	}
	q.head = o.next
	if q.head == nil {
		q.tail = nil
	}
	o.next = nil
	q.n--
	return o
}

// Concat moves every op of r to the end of q, leaving r empty.
func (q *Queue) Concat(r *Queue) {
	if r.head == nil {
		return
	}
	if q.tail == nil {
		q.head = r.head
	} else {
		q.tail.next = r.head
	}
	q.tail = r.tail
	q.n += r.n
	*r = Queue{}
}

// Len returns the number of queued ops.
func (q *Queue) Len() int { return q.n }
