package socket

import (
	"errors"
	"os"
	"syscall"
	"time"
	"unsafe"

	"github.com/uringsend/uringsend/internal/op"
	"golang.org/x/sys/unix"
)

// The epoll backend runs the same contract without io_uring. SendAsync
// tries the head with a non-blocking send(2)/sendmsg(2) inline. What does
// not finish there is continued by a writer goroutine per busy socket,
// which waits for writability on Go's netpoller (syscall.RawConn.Write)
// and sends wires — coalesced batches, like the io_uring backend. The
// writer exits when the socket's queue is empty. Completed is raised by
// the engine's dispatcher goroutine, never by a writer: a handler that
// closes its socket must not block the goroutine that drains it.

// dispatcher raises Completed for the epoll path, in completion order, on
// one goroutine per engine: the epoll backend's reaper.
type dispatcher struct {
	q    raiseQueue
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

func startDispatcher(e *Engine) *dispatcher {
	d := &dispatcher{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go d.loop(e)
	return d
}

func (d *dispatcher) loop(e *Engine) {
	defer close(d.done)
	for {
		select {
		case <-d.wake:
			d.q.raiseAll(e, latencyBatch{}, 0)
		case <-d.stop:
			d.q.raiseAll(e, latencyBatch{}, 0)
			return
		}
	}
}

// push hands completed sends to the dispatcher, in order.
func (d *dispatcher) push(q *op.Queue) {
	if q.Len() == 0 {
		return
	}
	d.q.pushAll(q)
	select {
	case d.wake <- struct{}{}:
	default: // already due to run
	}
}

// deliver hands one call of a stream receive's handler to the dispatcher.
func (d *dispatcher) deliver(dl delivery) {
	d.q.pushDelivery(dl)
	select {
	case d.wake <- struct{}{}:
	default: // already due to run
	}
}

// close raises what is left and stops the dispatcher.
func (d *dispatcher) close() {
	close(d.stop)
	<-d.done
}

// sendWire makes one non-blocking send of the wire's remaining bytes. A
// wire of several sends is the msghdr buildWire made: coalesced stream
// bytes, or UDP datagrams with their UDP_SEGMENT cmsg.
func (s *Socket) sendWire(fd int) (int, syscall.Errno) {
	var n uintptr
	var errno syscall.Errno
	if s.w.wire > 1 {
		n, _, errno = unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&s.w.msg)),
			uintptr(unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT))
		s.eng.sys.count(&s.eng.sys.sends, errno)
		return int(n), errno
	}
	o := s.q.Head()
	if errno := o.Check(); errno != 0 {
		return 0, errno
	}
	buf, msg, flags := o.SendmsgArgs()
	if msg == nil {
		n, _, errno = unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(buf))),
			uintptr(len(buf)), uintptr(flags|unix.MSG_DONTWAIT), 0, 0)
	} else {
		n, _, errno = unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(msg)), uintptr(flags|unix.MSG_DONTWAIT))
	}
	s.eng.sys.count(&s.eng.sys.sends, errno)
	return int(n), errno
}

// epollStart is SendAsync's inline attempt at the head o (wire == 1).
func (s *Socket) epollStart(o *op.Op) {
	// The send reaches the kernel now: its Timeout counts from here, also
	// for what the writer sends of it later.
	o.TimeLeft()
	for {
		n, errno := s.sendWire(s.fd)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			s.kickWriter()
			return
		case 0:
		default:
			n = -int(errno)
		}
		// Completions go to the engine's dispatcher, never raised on the
		// caller's goroutine.
		more := s.settle(int32(n), false)
		if more {
			// A partly sent head, or sends queued meanwhile: the writer
			// goes on with them.
			s.kickWriter()
		}
		return
	}
}

func (s *Socket) kickWriter() {
	s.mu.Lock()
	if !s.writing {
		s.writing = true
		if s.loopFn == nil {
			s.writeFn, s.loopFn = s.writeOnce, s.writeLoop
		}
		go s.loopFn()
	}
	s.mu.Unlock()
}

// writeLoop sends wires until the queue is empty.
func (s *Socket) writeLoop() {
	for {
		s.mu.Lock()
		if s.w.wire == 0 {
			if closing := s.life.closing(); s.q.Len() == 0 || closing {
				// A closing socket's queue is aborted, never sent.
				s.writing = false
				idle := s.sendIdleLocked()
				s.mu.Unlock()
				if closing {
					s.abortQueued()
				}
				if idle {
					s.releaseClose()
				}
				return
			}
			s.buildWire()
		}
		s.mu.Unlock()
		res, timedOut := s.sendWireBlocking()
		s.settle(res, timedOut)
	}
}

// sendWireBlocking sends once, waiting for writability on the netpoller
// first if the socket would block. It returns bytes sent or -errno, and
// whether the head's Timeout expired: a write deadline at what is left of
// it (op.Op.TimeLeft: the deadline is the send's own, counted from
// when it first reached the kernel, so a reused Args starts afresh);
// -ECANCELED when Close has set a past deadline.
func (s *Socket) sendWireBlocking() (int32, bool) {
	var left time.Duration
	timed := false
	if s.w.wire == 1 { // a send with a Timeout never shares a wire
		left, timed = s.q.Head().TimeLeft()
	}
	if timed {
		if left <= 0 {
			return -int32(syscall.ETIMEDOUT), true
		}
		s.setWriteDeadline(time.Now().Add(left))
		if s.life.closing() {
			// Close's deadline in the past may have come first: this one
			// replaced it, and the write would wait for the Timeout.
			s.setWriteDeadline(time.Time{})
			return -int32(syscall.ECANCELED), false
		}
	}
	s.wres, s.wdone = 0, false
	err := s.rc.Write(s.writeFn)
	if timed {
		s.setWriteDeadline(time.Time{})
	}
	if s.wdone {
		return s.wres, false
	}
	if err != nil {
		if timed && !s.life.closing() && errors.Is(err, os.ErrDeadlineExceeded) {
			return -int32(syscall.ETIMEDOUT), true
		}
		return -int32(syscall.ECANCELED), false
	}
	return 0, false
}

// setWriteDeadline sets the deadline of the writer's waits. Close's
// cancel, a deadline in the past, must win over it: Close marks the socket
// closed before it cancels, so a deadline set after the cancel finds it
// closed and puts the cancel back.
func (s *Socket) setWriteDeadline(t time.Time) {
	s.fileWriteDeadline(t)
	if s.life.closing() {
		s.fileWriteDeadline(time.Unix(1, 0))
	}
}

// fileWriteDeadline sets a write deadline on the Socket's own file (on
// the epoll backend a FromConn socket works on a duplicate: the caller's
// connection and its deadlines are never touched).
func (s *Socket) fileWriteDeadline(t time.Time) {
	if d, ok := s.owner.(interface{ SetWriteDeadline(time.Time) error }); ok {
		d.SetWriteDeadline(t)
	}
}

// writeOnce is the RawConn.Write callback (made once per socket, so the
// writer allocates nothing per send).
func (s *Socket) writeOnce(fd uintptr) bool {
	for {
		n, errno := s.sendWire(int(fd))
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
			s.wres = int32(n)
		default:
			s.wres = -int32(errno)
		}
		s.wdone = true
		return true
	}
}

// epollCancel wakes a writer blocked on writability: a write deadline in
// the past makes RawConn.Write return.
func (s *Socket) epollCancel() { s.fileWriteDeadline(time.Unix(1, 0)) }
