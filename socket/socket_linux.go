package socket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// Socket is a connected socket whose sends run on an Engine. Its methods
// are safe for concurrent use.
type Socket struct {
	eng    *Engine
	u      *uring // nil on the epoll backend
	w      wireState
	fd     int
	rc     syscall.RawConn
	owner  io.Closer // closed by Close; nil for FromConn
	conn   net.Conn  // FromConn's connection, for deadlines
	stream bool      // SOCK_STREAM: continue short sends
	closed atomic.Bool
	conned atomic.Bool // a peer was seen

	mu      sync.Mutex
	q       sendop.Queue // q.Head() is the send on the wire
	closing bool
	writing bool                  // epoll: the writer goroutine owns the head
	batch   bool                  // WithBatching: never inline; queue and coalesce
	writeFn func(fd uintptr) bool // epoll: s.writeOnce, made once

	maxInflight   int           // WithMaxInflightBytes
	writeTimeout  time.Duration // WithWriteTimeout
	bpMu          sync.Mutex
	bpCond        *sync.Cond
	inflightBytes int
	wres          int32 // epoll: result of writeOnce
	wdone         bool
	flush         bool          // batching: the reaper will put the queue on the wire
	drained       chan struct{} // closed when a closing socket's queue empties
	closeDone     chan struct{} // closed when Close has finished
	unraised      atomic.Int64  // completed sends handed over whose Completed has not returned

	rx rxState // the receive side: recv_linux.go

	// pins keeps the memory of the socket's io_uring sends pinned across
	// sends; guarded by mu.
	pins sendop.PinCache
}

// Option configures a Socket.
type Option func(*options)

type options struct {
	eng          *Engine
	batch        bool
	maxInflight  int
	writeTimeout time.Duration
}

// WithBatching puts a socket in batching mode, for pipelines that keep
// many sends in flight: SendAsync never submits inline; sends accumulate
// on the socket and leave from the engine's reaper, coalesced (many stream
// sends in one SENDMSG; on UDP sockets, a run of equal-length datagrams in
// one UDP GSO sendmsg), with the wires of other sockets in one
// io_uring_enter. Every SendAsync then returns pending == true and
// Completed reports each send, in order. Without it, a send on an idle
// socket goes out at once and usually completes synchronously. It has no
// effect on the epoll backend.
func WithBatching() Option { return func(o *options) { o.batch = true } }

// WithEngine runs the socket's sends on e instead of the DefaultEngine.
func WithEngine(e *Engine) Option { return func(o *options) { o.eng = e } }

func newSocket(rc syscall.RawConn, owner io.Closer, conn net.Conn, connected bool, opts []Option) (*Socket, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.eng == nil {
		e, err := DefaultEngine()
		if err != nil {
			return nil, err
		}
		o.eng = e
	}
	s := &Socket{eng: o.eng, rc: rc, owner: owner, conn: conn}
	var typ int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		s.fd = int(fd)
		typ, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		if errors.Is(serr, unix.ENOTSOCK) {
			return nil, ErrNotSocket
		}
		return nil, serr
	}
	s.stream = typ == unix.SOCK_STREAM
	s.batch = o.batch
	s.maxInflight = o.maxInflight
	s.writeTimeout = o.writeTimeout
	s.bpCond = sync.NewCond(&s.bpMu)
	s.writeFn = s.writeOnce
	s.conned.Store(connected)
	if err := o.eng.add(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Dial connects to address on network (tcp, tcp4, tcp6, udp, udp4, udp6,
// unix, unixgram, unixpacket) with Go's net.Dial and returns the
// connection as a Socket that owns it.
func Dial(network, address string, opts ...Option) (*Socket, error) {
	return DialContext(context.Background(), network, address, opts...)
}

// DialContext is Dial with a context that bounds the connect.
func DialContext(ctx context.Context, network, address string, opts ...Option) (*Socket, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	s, err := own(c, opts)
	if err != nil {
		c.Close()
	}
	return s, err
}

func own(c net.Conn, opts []Option) (*Socket, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("socket: %T does not implement syscall.Conn", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return newSocket(rc, c, c, true, opts)
}

// FromConn returns a Socket that sends on c's descriptor. c must implement
// syscall.Conn (every *net.TCPConn, *net.UDPConn, *net.UnixConn does) and
// stays the owner of the descriptor: Socket.Close never closes it, and c
// must stay open until the Socket is closed.
func FromConn(c net.Conn, opts ...Option) (*Socket, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("socket: %T does not implement syscall.Conn", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return newSocket(rc, nil, c, false, opts)
}

// FromFD returns a Socket that owns fd, a socket descriptor: Close closes
// it. fd is switched to non-blocking mode.
func FromFD(fd int, opts ...Option) (*Socket, error) {
	if _, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		if errors.Is(err, unix.ENOTSOCK) {
			return nil, ErrNotSocket
		}
		return nil, fmt.Errorf("socket: FromFD(%d): %w", fd, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "socket")
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	s, err := newSocket(rc, f, nil, false, opts)
	if err != nil {
		// The caller still owns fd on failure.
		return nil, err
	}
	return s, nil
}

// Backend reports the backend that runs the socket's sends.
func (s *Socket) Backend() string { return s.eng.backend }

// FD returns the socket's descriptor.
func (s *Socket) FD() int { return s.fd }

func (s *Socket) checkConnected() error {
	if s.conned.Load() {
		return nil
	}
	if _, err := unix.Getpeername(s.fd); err != nil {
		return ErrNotConnected
	}
	s.conned.Store(true)
	return nil
}

// SendAsync starts sending e's Buffer or BufferList.
//
// pending == false, err == nil: the send finished before SendAsync
// returned; e holds the result (BytesTransferred, SocketError) and
// Completed is not raised. pending == true: Completed is raised exactly
// once, later, on the engine's goroutine. err != nil: nothing was sent,
// nothing will be raised, and e is free again; err is one of
// sendop.ErrNilArgs, ErrNoBuffer, ErrBufferConflict, ErrInProgress,
// ErrBadFlags, ErrClosed or ErrNotConnected.
//
// Sends on one socket leave in call order and never interleave. On a
// stream socket a send completes with all its bytes or with an error.
func (s *Socket) SendAsync(e *sendop.Args) (pending bool, err error) {
	if e == nil {
		return false, sendop.ErrNilArgs
	}
	op := sendop.OpOf(e)
	if err := op.Claim(e); err != nil {
		return false, err
	}
	if s.closed.Load() {
		op.Abandon()
		return false, ErrClosed
	}
	if err := s.checkConnected(); err != nil {
		op.Abandon()
		return false, err
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		op.Abandon()
		return false, ErrClosed
	}
	idle := s.q.Len() == 0 && !s.writing
	if s.u != nil {
		op.Begin(e, s.stream, &s.pins) // settle trims the cache when the queue drains
	} else {
		// The epoll backend's system calls read the buffers before they
		// return: nothing to pin.
		op.Begin(e, s.stream, nil)
	}
	op.Socket = s
	s.eng.accepted(op)
	if !idle {
		s.q.Push(e)
		op.MarkQueued()
		s.mu.Unlock()
		return true, nil
	}
	// A send issued while the reaper raises Completed (usually from a
	// handler) waits for the reaper's next io_uring_enter, which submits
	// it with everything else the handlers started, instead of entering
	// the kernel on its own.
	if s.u != nil && (s.batch || s.u.raise.raising.Load()) {
		s.q.Push(e)
		op.MarkQueued()
		s.flush = true
		s.mu.Unlock()
		s.u.scheduleFlush(s)
		return true, nil
	}
	s.q.Push(e)
	op.MarkInline()
	s.w.wire = 1
	s.mu.Unlock()
	if s.u != nil {
		s.u.start(s)
	} else {
		s.epollStart(e)
	}
	if op.Decide() {
		return true, nil
	}
	s.eng.observe(e, true)
	return false, nil
}

// Close closes the socket. Sends still queued or on the wire complete with
// OperationAborted (a send that finished first keeps its real result),
// each exactly once; in-flight sends are cancelled in the kernel before
// the descriptor is closed, so its number cannot be reused while the
// kernel still holds it. When Close returns, every Completed of the socket
// has returned too — unless Close is called from a Completed handler,
// which it cannot wait for. A Socket
// made by FromConn leaves the connection open. A second Close returns
// ErrClosed once the first has finished (at once inside Completed).
func (s *Socket) Close() error {
	s.mu.Lock()
	if s.closing {
		done := s.closeDone
		s.mu.Unlock()
		if !s.eng.onRaiser() {
			// Wait for the first Close to release the descriptor; not on
			// a goroutine raising Completed, which the first may wait for.
			<-done
		}
		return ErrClosed
	}
	s.closing = true
	s.closed.Store(true)
	s.markRxClosing() // before the cancel by descriptor reaches the receive on the wire
	s.closeDone = make(chan struct{})
	defer close(s.closeDone)
	var drained chan struct{}
	if s.q.Len() > 0 {
		drained = make(chan struct{})
		s.drained = drained
	}
	s.mu.Unlock()
	if s.maxInflight > 0 { // WriteAsync waiters see the close
		s.bpMu.Lock()
		s.bpCond.Broadcast()
		s.bpMu.Unlock()
	}
	if drained != nil {
		s.cancelAndWait(drained)
	}
	s.closeRx()
	if !s.eng.onRaiser() {
		// Every Completed of this socket has run when Close returns
		// (except when Close runs inside one: it cannot wait for itself).
		for wait := time.Microsecond; s.unraised.Load() > 0; wait = min(2*wait, time.Millisecond) {
			time.Sleep(wait)
		}
	}
	s.eng.remove(s)
	if s.owner != nil {
		return s.owner.Close()
	}
	return nil
}

// cancelAndWait cancels the head until the queue has drained. The cancel is
// repeated because the head may reach the kernel just after a cancel did.
func (s *Socket) cancelAndWait(drained chan struct{}) {
	t := time.NewTimer(0)
	defer t.Stop()
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 20*time.Millisecond) {
		if s.u != nil {
			// Sends waiting for the reaper to put them on the wire
			// (batching, or deferred during a raise) never reach it.
			s.u.abortCorked(s)
			s.u.cancel(s)
			s.u.progress()
		} else {
			s.epollCancel()
		}
		t.Reset(wait)
		select {
		case <-drained:
			if s.u != nil {
				s.u.afterInlineHarvest()
			} else if s.conn != nil {
				s.conn.SetWriteDeadline(time.Time{})
			}
			return
		case <-t.C:
		}
	}
}
