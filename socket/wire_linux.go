package socket

import (
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// The wire of a socket is the front of its queue that is being sent: the
// head alone, or — on a stream socket with sends queued behind a busy head —
// a batch of them coalesced into one SENDMSG. Both backends build it with
// buildWire and hand each send result to settle, which splits the bytes
// over the wire's sends in order, completes the ones that are done, and
// builds the next wire. Only the wire's owner (the goroutine that submitted
// it, then whoever handles its result) touches it; Socket.mu guards the
// queue.

// wireState is a Socket's wire.
type wireState struct {
	idx   uint32        // io_uring: the socket's slot in its ring's table
	gen   atomic.Uint32 // io_uring: generation of the SQE on the wire
	wire  int           // sends at the front of q on the wire; guarded by Socket.mu
	iov   []unix.Iovec  // a coalesced batch's iovecs
	msg   unix.Msghdr
	pin   runtime.Pinner
	bytes int   // bytes of a coalesced wire
	zc    bool  // io_uring: send wires above the threshold with SEND_ZC
	zcRes int32 // io_uring: a zero-copy result waiting for its notification
	// io_uring: resubmit the wire asking the kernel to poll first (it
	// answered EAGAIN)
	pollFirst bool

	// io_uring, a send with a linked timeout: its timespec, which CQEs are
	// still due, the send's result, and whether the timeout fired.
	ts                unix.Timespec
	waitSend, waitTmo bool
	sendRes           int32
	tmoFired          bool

	// epoll: the deadline of the head dlOp, set at its first wait.
	dl   time.Time
	dlOp *sendop.Args
}

// Coalescing limits: one SENDMSG carries at most IOVMax iovecs and, past
// its first send, no more than maxBatchBytes.
const maxBatchBytes = 4 << 20

// buildWire picks the next wire from the front of s's queue, with s.mu
// held: the head alone, or — on a stream socket — as many coalescable
// queued ops as fit one SENDMSG. Ops that were on the wire before (a
// partly sent head, an inline op) keep their state; queued ones launch.
func (s *Socket) buildWire() {
	head := s.q.Head()
	hop := sendop.OpOf(head)
	s.w.wire = 1
	hop.LaunchIfQueued()
	if !hop.Coalescable() || hop.Next() == nil || !sendop.OpOf(hop.Next()).Coalescable() {
		return
	}
	if s.w.iov == nil {
		s.w.iov = make([]unix.Iovec, 0, sendop.IOVMax)
		s.w.pin.Pin(&s.w.iov[:1][0])
		s.w.pin.Pin(s) // the msghdr lives in the Socket
	}
	iov := hop.AppendIovecs(s.w.iov[:0])
	if len(iov) > sendop.IOVMax {
		return // a long BufferList goes alone, in pieces
	}
	bytes := hop.Remaining()
	for e := hop.Next(); e != nil; e = sendop.OpOf(e).Next() {
		op := sendop.OpOf(e)
		if !op.Coalescable() || len(iov)+op.IovecCount() > sendop.IOVMax || bytes+op.Remaining() > maxBatchBytes {
			break
		}
		iov = op.AppendIovecs(iov)
		bytes += op.Remaining()
		op.LaunchIfQueued()
		s.w.wire++
	}
	if s.w.wire == 1 {
		return
	}
	s.w.bytes = bytes
	s.w.iov = iov[:0]
	s.w.msg = unix.Msghdr{}
	if len(iov) > 0 {
		s.w.msg.Iov = &iov[0]
		s.w.msg.SetIovlen(len(iov))
	}
}

// settle hands a wire's result (bytes, or -errno) to its sends in order,
// completes the ones that are done, hands those whose Completed must be
// raised to the raiser of the socket's backend (in order), builds the next
// wire, and reports whether there is one. An inline send that finished is
// not raised: SendAsync reports it. On a closing socket nothing more goes out: what is
// left, a partly sent head included, completes with OperationAborted.
//
// timedOut says the head's Timeout expired: a head not done with res
// completes with ETIMEDOUT (TimedOut), keeping the bytes it sent.
func (s *Socket) settle(res int32, timedOut bool) (more bool) {
	var done, aborted, raise sendop.Queue // intrusive: no allocation
	s.mu.Lock()
	n := s.w.wire
	s.w.wire = 0
	if timedOut && res == -int32(syscall.ECANCELED) {
		res = -int32(syscall.ETIMEDOUT)
	}
	if res < 0 || n == 1 {
		op := sendop.OpOf(s.q.Head())
		if op.Advance(res) || timedOut && op.Advance(-int32(syscall.ETIMEDOUT)) {
			done.Push(s.q.Pop())
		}
	} else {
		rem := int(res)
		for i := 0; i < n; i++ {
			op := sendop.OpOf(s.q.Head())
			need := op.Remaining()
			if rem < need {
				if rem > 0 {
					op.Advance(int32(rem))
				}
				break
			}
			op.Advance(int32(need))
			rem -= need
			done.Push(s.q.Pop())
		}
	}
	var drained chan struct{}
	if s.closing {
		for e := s.q.Pop(); e != nil; e = s.q.Pop() {
			aborted.Push(e)
		}
		drained, s.drained = s.drained, nil
	} else if s.q.Len() > 0 {
		s.buildWire()
		more = true
	}
	s.mu.Unlock()

	for e := done.Pop(); e != nil; e = done.Pop() {
		if sendop.OpOf(e).Complete(0) {
			raise.Push(e)
		}
	}
	for e := aborted.Pop(); e != nil; e = aborted.Pop() {
		op := sendop.OpOf(e)
		op.LaunchIfQueued()
		if op.Complete(syscall.ECANCELED) {
			raise.Push(e)
		}
	}
	s.handOver(&raise)
	if drained != nil {
		// Only now: Close may return, and Engine.Close stop the raiser,
		// once the last completions are in the raiser's hands.
		close(drained)
	}
	return more
}

// handOver gives completed sends to the goroutine that raises Completed
// for s: its ring's reaper, or the engine's dispatcher on the epoll path.
func (s *Socket) handOver(q *sendop.Queue) {
	if q.Len() == 0 {
		return
	}
	s.unraised.Add(int64(q.Len()))
	if s.u != nil {
		s.u.raise.pushAll(q)
		return
	}
	s.eng.disp.push(q)
}
