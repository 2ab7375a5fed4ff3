package socket

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/uringsend/uringsend/sendop"
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
	g    atomic.Uint64 // its goroutine id
}

func startDispatcher(e *Engine) *dispatcher {
	d := &dispatcher{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go d.loop(e)
	return d
}

func (d *dispatcher) loop(e *Engine) {
	defer close(d.done)
	d.g.Store(goid())
	for {
		select {
		case <-d.wake:
			d.q.raiseAll(e, nil)
		case <-d.stop:
			d.q.raiseAll(e, nil)
			return
		}
	}
}

// push hands completed sends to the dispatcher, in order.
func (d *dispatcher) push(q *sendop.Queue) {
	if q.Len() == 0 {
		return
	}
	d.q.pushAll(q)
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
		return int(n), errno
	}
	op := sendop.OpOf(s.q.Head())
	if errno := op.Check(); errno != 0 {
		return 0, errno
	}
	buf, msg, flags := op.SendmsgArgs()
	if msg == nil {
		n, _, errno = unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(buf))),
			uintptr(len(buf)), uintptr(flags|unix.MSG_DONTWAIT), 0, 0)
	} else {
		n, _, errno = unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(msg)), uintptr(flags|unix.MSG_DONTWAIT))
	}
	return int(n), errno
}

// epollStart is SendAsync's inline attempt at the head e (wire == 1).
func (s *Socket) epollStart(e *sendop.Args) {
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
		go s.writeLoop()
	}
	s.mu.Unlock()
}

// writeLoop sends wires until the queue is empty.
func (s *Socket) writeLoop() {
	for {
		s.mu.Lock()
		if s.w.wire == 0 {
			if s.q.Len() == 0 {
				s.writing = false
				s.mu.Unlock()
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
// whether the head's Timeout expired (a write deadline, counted from the
// head's first wait here); -ECANCELED when Close has set a past deadline.
func (s *Socket) sendWireBlocking() (int32, bool) {
	var timeout time.Duration
	if s.w.wire == 1 {
		timeout = sendop.OpOf(s.q.Head()).Timeout()
	}
	if timeout > 0 {
		if head := s.q.Head(); s.w.dlOp != head {
			s.w.dlOp, s.w.dl = head, time.Now().Add(timeout)
		}
		s.setWriteDeadline(s.w.dl)
	}
	s.wres, s.wdone = 0, false
	err := s.rc.Write(s.writeFn)
	if timeout > 0 && !s.closed.Load() {
		s.setWriteDeadline(time.Time{})
	}
	if s.wdone {
		return s.wres, false
	}
	if err != nil {
		if timeout > 0 && !s.closed.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			return -int32(syscall.ETIMEDOUT), true
		}
		return -int32(syscall.ECANCELED), false
	}
	return 0, false
}

func (s *Socket) setWriteDeadline(t time.Time) {
	type deadliner interface{ SetWriteDeadline(time.Time) error }
	if d, ok := s.owner.(deadliner); ok {
		d.SetWriteDeadline(t)
	} else if s.conn != nil {
		s.conn.SetWriteDeadline(t)
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
func (s *Socket) epollCancel() { s.setWriteDeadline(time.Unix(1, 0)) }
