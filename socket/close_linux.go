package socket

// Closing a socket. Close never waits on the peer; it waits, bounded, for
// the kernel to let go of what the socket has in it, by being woken — no
// polling.
//
// A close is counted like Go's internal/poll fd mutex counts references:
// Close holds the socket once for itself and once for each side (send,
// receive) that has a wire in the kernel or a goroutine of the epoll
// backend still running. Each side lets go when its wire has completed
// (cancelled, or finished first) and nothing can follow it; Close lets go
// once it has started the cancels. Whoever lets go last releases the
// socket: it leaves its engine's table, its pins are released and its
// descriptor is closed (unless the caller keeps it). So the descriptor's
// number cannot be reused while the kernel still holds a request on it,
// and a Close from a Completed handler — on the goroutine that raises
// completions, which must not wait — returns at once and the release
// happens when the last wire completes.
//
//	open ──Close──▶ closing (holds = 1 + busy sides)
//	                   │  queued sends: OperationAborted at once
//	                   │  wires: one ASYNC_CANCEL each (io_uring), or a
//	                   │         deadline in the past (epoll)
//	                   ▼
//	            each side completes ─▶ holds-1 ... ─▶ 0: released, done closed
//
// A zero-copy send completes only with the kernel's notification that it
// has let go of the buffers, which a stalled peer can put off forever (the
// skbs wait for its ACK). A socket that may send zero-copy arms one timer
// when it closes with a send on the wire: after zeroCopyLinger the
// connection is reset (connect(AF_UNSPEC): the kernel purges its write
// queue, frees the skbs and posts the notification), so the buffer is
// handed back only once the kernel no longer reads it, and Close still
// returns in bounded time. Bytes of that connection not yet acknowledged
// are lost, as with SO_LINGER 0.

import (
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"github.com/uringsend/uringsend/internal/op"
	"golang.org/x/sys/unix"
)

// closeState is a socket's close.
// Its phases and holds are the socket's lifeWord (state_linux.go).
type closeState struct {
	done chan struct{} // closed once the socket is released
	err  error         // what closing the descriptor returned; read after done
	// quiet is closed once the socket is released and no Completed of it
	// is left to raise (unraised is 0): every Close waits for it.
	quiet  chan struct{}
	linger *time.Timer // zero-copy: resets the connection if a wire stays
}

const (
	// zeroCopyLinger is how long a closing socket lets a zero-copy send
	// wait for its notification (the peer's ACK) before it resets the
	// connection.
	zeroCopyLinger = 50 * time.Millisecond
	// closeBound bounds a Close's wait for the kernel's completions: past
	// it, Close returns ErrCloseIncomplete and the socket is released
	// when they come. Only a completion the kernel lost gets that far.
	closeBound = time.Second
)

// ErrCloseIncomplete: Close gave up waiting for the kernel to complete the
// socket's requests (a completion was lost, see ring.ErrCQELost); the
// descriptor is closed when they complete. Its text never changes.
var ErrCloseIncomplete = errors.New("socket: close: the kernel did not complete the socket's requests in time")

// Close closes the socket. Sends still queued complete with
// OperationAborted at once; sends and receives in the kernel are cancelled
// and complete with OperationAborted, or with their real result if they
// finished first — each exactly once. Bytes already handed to the kernel
// are sent as after close(2) (gracefully, in the background), except on a
// zero-copy socket whose last send's buffers the kernel still holds after
// 50 ms: that connection is reset, so that Close hands the buffers back in
// bounded time. Close never waits on the peer.
//
// When Close returns, the descriptor is closed (a Socket made by FromConn
// leaves the connection open) and every Completed of the socket has
// returned. Called from a Completed handler, Close cannot wait for either:
// it starts the same close and returns at once, and the descriptor is
// closed when the last cancelled request completes. A second Close returns
// ErrClosed once the first has finished (at once inside Completed).
func (s *Socket) Close() error {
	done, first := s.startClose()
	var err error
	if !isClosed(done) || !isClosed(s.cl.quiet) {
		// Something is left to wait for, which a Completed handler
		// cannot do (an idle socket is released by startClose itself).
		if s.eng.onRaiser() {
			if first {
				return nil
			}
			return ErrClosed
		}
		err = s.awaitClose(done)
	}
	if !first {
		return ErrClosed
	}
	if err != nil {
		return err
	}
	return s.cl.err
}

// startClose begins the close (see the top of the file) and returns the
// channel closed when the socket is released; first is false when a close
// had already begun.
func (s *Socket) startClose() (done chan struct{}, first bool) {
	s.mu.Lock()
	sendBusy := s.w.wire > 0 || s.writing
	if !s.life.beginClose(sendBusy) {
		done := s.cl.done
		s.mu.Unlock()
		return done, false
	}
	s.cl.done = make(chan struct{})
	s.cl.quiet = make(chan struct{})
	s.mu.Unlock()
	s.wakeWriters() // WriteAsync waiters see the close
	rxBusy := s.markRxClosing()
	s.abortQueued() // sends that never reached the wire
	if sendBusy || rxBusy {
		if u := s.u; u != nil {
			if sendBusy && s.zcable {
				s.cl.linger = time.AfterFunc(zeroCopyLinger, s.lingerExpired)
			}
			u.cancelWires(s, sendBusy, rxBusy)
		} else {
			if sendBusy {
				s.epollCancel()
			}
			if rxBusy {
				s.setReadDeadline(time.Unix(1, 0))
			}
		}
	}
	s.releaseClose()
	return s.cl.done, true
}

// awaitClose waits until the socket is released and every Completed of it
// has returned; bounded by closeBound for the release.
func (s *Socket) awaitClose(done chan struct{}) error {
	select {
	case <-done:
	default:
		t := time.NewTimer(closeBound)
		select {
		case <-done:
			t.Stop()
		case <-t.C:
			return ErrCloseIncomplete
		}
	}
	<-s.cl.quiet
	return nil
}

// releaseClose lets go of one hold; the last one releases the socket.
func (s *Socket) releaseClose() {
	if s.life.letGo() {
		s.release()
	}
}

// release runs once, when nothing of the socket is in the kernel any more:
// it leaves the engine, lets go of its pins and closes the descriptor.
func (s *Socket) release() {
	if t := s.cl.linger; t != nil {
		t.Stop()
	}
	s.eng.remove(s)
	s.rxUnpin()
	if s.owner != nil {
		s.cl.err = s.owner.Close()
	}
	// After the release nothing adds to unraised: it only falls to 0.
	s.life.advance(phaseClosing, phaseReleased)
	if s.unraised.Load() == 0 {
		s.closeQuiet()
	}
	close(s.cl.done)
}

// closeQuiet wakes every Close waiting for the socket's last Completed;
// raisedDone and release may both find it due, and the first one closes.
func (s *Socket) closeQuiet() {
	if s.life.advance(phaseReleased, phaseQuiet) {
		close(s.cl.quiet)
	}
}

// sendIdleLocked reports, with s.mu held on a closing socket, whether the
// send side has just become idle while it held the close: the caller then
// calls releaseClose once it has let go of the lock.
func (s *Socket) sendIdleLocked() bool {
	return s.w.wire == 0 && !s.writing && s.life.has(lifeSendHeld) && s.life.dropSide(lifeSendHeld)
}

// abortQueued completes with OperationAborted the sends of a closing
// socket that are queued without a wire in front of them (batching, or
// deferred to the reaper); sends behind a wire are aborted when it
// completes.
func (s *Socket) abortQueued() {
	var aborted, raise op.Queue
	s.mu.Lock()
	if s.w.wire == 0 {
		aborted.Concat(&s.q)
	}
	reserved := aborted.Len()
	s.unraised.Add(int64(reserved))
	idle := s.sendIdleLocked()
	s.mu.Unlock()
	completeAll(&raise, &aborted, syscall.ECANCELED)
	s.handOver(&raise, reserved)
	if s.u != nil {
		// Close runs outside the reaper: an idle reaper (parked, with
		// nothing in flight) would never raise these.
		s.u.wakeForRaises()
	}
	if idle {
		s.releaseClose()
	}
}

// raisedDone records that n handed-over completions have been raised (or
// were reported by SendAsync); once the socket is released, the last one
// wakes the Closes waiting for it.
func (s *Socket) raisedDone(n int64) {
	if n != 0 && s.unraised.Add(-n) == 0 && s.life.released() {
		s.closeQuiet()
	}
}

// lingerExpired resets the connection of a closing zero-copy socket whose
// send is still waiting for its notification (see the top of the file).
func (s *Socket) lingerExpired() {
	if !s.life.tryHold() {
		return // released meanwhile
	}
	s.abortConn()
	s.releaseClose()
}

// abortConn resets a TCP connection without closing its descriptor:
// connect(2) with AF_UNSPEC disconnects the socket, sending RST and
// purging its queues, so the kernel frees the skbs of zero-copy sends.
func (s *Socket) abortConn() {
	var sa unix.RawSockaddr
	sa.Family = unix.AF_UNSPEC
	unix.Syscall(unix.SYS_CONNECT, uintptr(s.fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
}

// CloseWrite shuts down the sending side of the socket once every send
// already accepted has gone out — .NET's Shutdown(SocketShutdown.Send),
// Go's TCPConn.CloseWrite: the queued sends complete as usual, then the
// peer sees the end of the stream (FIN on TCP). It returns at once; the
// shutdown(2) happens when the queue drains, and its error, if any, is
// not reported. SendAsync afterwards fails with ErrWriteShutdown;
// receives go on. Close, unlike CloseWrite, aborts what is still queued:
// a program that wants its last sends delivered calls CloseWrite, waits
// for their Completed (or the peer's end of stream), then Close.
func (s *Socket) CloseWrite() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.life.closing():
		return ErrClosed
	case s.life.has(lifeWrShut):
		return nil
	}
	if s.w.wire == 0 && s.q.Len() == 0 {
		s.life.set(lifeWrShut)
		return s.shutdownWriteLocked()
	}
	s.life.set(lifeWrShut | lifeShutPending)
	return nil
}

// shutdownWriteLocked shuts the send side down, with s.mu held: so a Close
// cannot release the descriptor under it.
func (s *Socket) shutdownWriteLocked() error {
	s.life.clear(lifeShutPending)
	if err := unix.Shutdown(s.fd, unix.SHUT_WR); err != nil {
		return fmt.Errorf("socket: shutdown: %w", err)
	}
	return nil
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
