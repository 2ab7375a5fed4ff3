package socket

import (
	"syscall"
	"time"
	"unsafe"

	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// The epoll backend runs the same contract without io_uring: SendAsync
// tries a non-blocking send(2)/sendmsg(2) inline; what does not finish
// there is continued by a writer goroutine per busy socket that waits for
// writability on Go's netpoller (syscall.RawConn.Write) and raises
// Completed. The writer exits when the socket's queue is empty.

// sendOnce makes one non-blocking send of op's remaining bytes.
func sendOnce(fd int, op *sendop.Op) (int, syscall.Errno) {
	buf, msg, flags := op.SendmsgArgs()
	var n uintptr
	var errno syscall.Errno
	if msg == nil {
		n, _, errno = unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(buf))),
			uintptr(len(buf)), uintptr(flags|unix.MSG_DONTWAIT), 0, 0)
	} else {
		n, _, errno = unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(msg)), uintptr(flags|unix.MSG_DONTWAIT))
	}
	return int(n), errno
}

// trySend sends until op is done or the socket would block.
func trySend(fd int, op *sendop.Op) (done bool) {
	for {
		n, errno := sendOnce(fd, op)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
			if op.Advance(int32(n)) {
				return true
			}
		default:
			return op.Advance(-int32(errno))
		}
	}
}

// epollStart is SendAsync's inline attempt.
func (s *Socket) epollStart(e *sendop.Args) {
	op := sendop.OpOf(e)
	if errno := op.Check(); errno != 0 {
		s.epollFinishInline(e, errno)
		return
	}
	if trySend(s.fd, op) {
		s.epollFinishInline(e, 0)
		return
	}
	s.kickWriter()
}

func (s *Socket) epollFinishInline(e *sendop.Args, errno syscall.Errno) {
	raise, next, aborted := s.complete(e, errno)
	if raise || len(aborted) > 0 {
		// Not on the caller's goroutine: Completed belongs to the engine.
		go func() {
			if raise {
				sendop.OpOf(e).Raise()
			}
			for _, a := range aborted {
				sendop.OpOf(a).Raise()
			}
		}()
	}
	if next != nil {
		s.kickWriter()
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

// writeLoop sends the head of the queue until the queue is empty.
func (s *Socket) writeLoop() {
	for {
		s.mu.Lock()
		e := s.q.Head()
		if e == nil {
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		errno := s.sendBlocking(e)
		raise, _, aborted := s.complete(e, errno)
		if raise {
			sendop.OpOf(e).Raise()
		}
		for _, a := range aborted {
			sendop.OpOf(a).Raise()
		}
	}
}

// sendBlocking sends all of e, waiting for writability on the netpoller.
// It returns ECANCELED when Close has set a past write deadline.
func (s *Socket) sendBlocking(e *sendop.Args) syscall.Errno {
	op := sendop.OpOf(e)
	if errno := op.Check(); errno != 0 {
		return errno
	}
	done := false
	err := s.rc.Write(func(fd uintptr) bool {
		done = trySend(int(fd), op)
		return done
	})
	if done {
		return 0
	}
	if err != nil {
		return syscall.ECANCELED
	}
	return 0
}

// epollCancel wakes a writer blocked on writability: a write deadline in
// the past makes RawConn.Write return.
func (s *Socket) epollCancel() {
	type deadliner interface{ SetWriteDeadline(time.Time) error }
	past := time.Unix(1, 0)
	if d, ok := s.owner.(deadliner); ok {
		d.SetWriteDeadline(past)
	} else if s.conn != nil {
		s.conn.SetWriteDeadline(past)
	}
}
