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

	"github.com/uringsend/uringsend/internal/op"
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
	rc     syscall.RawConn // epoll: the netpoller's handle of fd
	owner  io.Closer       // closed when the socket is released; nil when the caller keeps fd
	stream bool            // SOCK_STREAM: continue short sends
	zcable bool            // io_uring: zero-copy may be used (fixed at registration)
	life   lifeWord        // open, closing, released, quiet: state_linux.go
	conned atomic.Bool     // a peer was seen

	mu      sync.Mutex
	q       op.Queue // q.Head() is the send on the wire
	writing bool     // epoll: the writer goroutine owns the head
	// epoll: s.writeOnce and s.writeLoop, made once, by the first writer
	// (go s.writeLoop() would allocate each time)
	writeFn func(fd uintptr) bool
	loopFn  func()

	bp       *backpressure // WithMaxInflightBytes: writer_linux.go; nil without
	wres     int32         // epoll: result of writeOnce
	wdone    bool
	flush    bool         // batching: the reaper will put the queue on the wire
	unraised atomic.Int64 // completed sends handed over whose Completed has not returned

	cl closeState // close_linux.go

	rx rxState // the receive side: recv_linux.go

	// pins keeps the memory of the socket's io_uring sends pinned across
	// sends; guarded by mu, like swept: the socket is on its ring's sweep
	// list, which lets go of the pins of a socket that stays idle.
	pins  op.PinCache
	swept bool

	opts options // as given; kept here so that applying them allocates nothing

	laddr, raddr net.Addr // from the net.Conn, for opError; nil for FromFD
}

// sockInfo is what registration needs to know of a descriptor. What the
// caller knows already (from a net.Conn's type and addresses) costs no
// syscall; the rest is asked of the kernel.
type sockInfo struct {
	typ          int      // SO_TYPE; -1: ask the kernel
	connected    bool     // a peer is known to be there
	laddr, raddr net.Addr // the net.Conn's; nil: asked of the kernel when needed
}

// infoOf is what c's Go type says of its descriptor: a *net.TCPConn or
// *net.UDPConn with a remote address is connected to it.
func infoOf(c net.Conn) sockInfo {
	info := sockInfo{typ: -1, laddr: c.LocalAddr(), raddr: c.RemoteAddr()}
	switch c := c.(type) {
	case *net.TCPConn:
		info.typ = unix.SOCK_STREAM
		a, ok := c.RemoteAddr().(*net.TCPAddr)
		info.connected = ok && a != nil
	case *net.UDPConn:
		info.typ = unix.SOCK_DGRAM
		a, ok := c.RemoteAddr().(*net.UDPAddr)
		info.connected = ok && a != nil
	}
	return info
}

// newSocket makes a Socket of the descriptor behind rc (nil for FromFD's
// fd) and registers it with its engine. owned says Close closes the
// descriptor (closer, or the fd itself); otherwise the caller keeps it. A
// failure leaves the descriptor as it was: open, with its owner.
func newSocket(fd int, info sockInfo, rc syscall.RawConn, closer io.Closer, owned bool, opts []Option) (*Socket, error) {
	s := &Socket{rc: rc, fd: fd, laddr: info.laddr, raddr: info.raddr}
	for _, opt := range opts {
		opt(&s.opts)
	}
	if s.opts.eng == nil {
		e, err := DefaultEngine()
		if err != nil {
			return nil, err
		}
		s.opts.eng = e
	}
	s.pins.Exempt = &s.opts.eng.noPin
	if rc != nil {
		if err := rc.Control(func(f uintptr) { s.fd = int(f) }); err != nil {
			return nil, err
		}
	}
	if info.typ < 0 {
		var err error
		if info.typ, err = sockType(s.fd); err != nil {
			return nil, err
		}
	}
	s.eng, s.stream = s.opts.eng, info.typ == unix.SOCK_STREAM
	if owned {
		s.owner = closer
	}
	if s.opts.maxInflight > 0 {
		s.bp = newBackpressure()
	}
	s.conned.Store(info.connected)
	if err := s.eng.add(s, info); err != nil {
		return nil, err
	}
	if s.u == nil && (rc == nil || !owned) {
		// The epoll backend waits on Go's netpoller and wakes its waiters
		// with deadlines: it needs a file of its own. FromFD's fd becomes
		// one; FromConn's connection is left alone — its deadlines are
		// the caller's — and the Socket works on a duplicate.
		if err := s.ownFile(s.fd, owned); err != nil {
			s.eng.remove(s)
			return nil, err
		}
	}
	return s, nil
}

// sockType is fd's SO_TYPE; ErrNotSocket for a descriptor that is no
// socket.
func sockType(fd int) (int, error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	switch {
	case errors.Is(err, unix.ENOTSOCK):
		return 0, ErrNotSocket
	case err != nil:
		return 0, fmt.Errorf("socket: fd %d: %w", fd, err)
	}
	return typ, nil
}

// ownFile gives an epoll-backed Socket an *os.File of its own for fd (or,
// when the caller keeps fd, for a duplicate of it).
func (s *Socket) ownFile(fd int, owned bool) error {
	if !owned {
		d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: dup: %w", err)
		}
		fd = d
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		if !owned {
			unix.Close(fd)
		}
		return err
	}
	f := os.NewFile(uintptr(fd), "socket") // cannot fail for fd >= 0
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	s.fd, s.rc, s.owner = fd, rc, f
	return nil
}

// fdCloser closes a descriptor FromFD took over on the io_uring backend,
// which needs no *os.File (an *os.File would close it from a finalizer).
type fdCloser int

func (c fdCloser) Close() error { return unix.Close(int(c)) }

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
	rc, err := rawConn(c)
	if err != nil {
		return nil, err
	}
	info := infoOf(c)
	info.connected = true // Dial and Accept return connected sockets
	return newSocket(-1, info, rc, c, true, opts)
}

func rawConn(c net.Conn) (syscall.RawConn, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("socket: %T does not implement syscall.Conn", c)
	}
	return sc.SyscallConn()
}

// FromConn returns a Socket that sends on c's descriptor. c must implement
// syscall.Conn (every *net.TCPConn, *net.UDPConn, *net.UnixConn does) and
// stays the owner of the descriptor: Socket.Close never closes it, and c
// must stay open until the Socket is closed. The Socket never touches c's
// deadlines (on the epoll backend it works on a duplicate descriptor).
func FromConn(c net.Conn, opts ...Option) (*Socket, error) {
	rc, err := rawConn(c)
	if err != nil {
		return nil, err
	}
	return newSocket(-1, infoOf(c), rc, nil, false, opts)
}

// FromFD returns a Socket that owns fd, a socket descriptor: Close closes
// it. fd is switched to non-blocking mode. On an error the caller still
// owns fd, open.
func FromFD(fd int, opts ...Option) (*Socket, error) {
	if fd < 0 {
		return nil, fmt.Errorf("socket: FromFD(%d): %w", fd, unix.EBADF)
	}
	typ, err := sockType(fd)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, err
	}
	return newSocket(fd, sockInfo{typ: typ}, nil, fdCloser(fd), true, opts)
}

// Backend reports the backend that runs the socket's sends.
func (s *Socket) Backend() string { return s.eng.backend }

// FD returns the socket's descriptor.
func (s *Socket) FD() int { return s.fd }

func (s *Socket) checkConnected() error {
	if s.conned.Load() {
		return nil
	}
	if _, err := peerAddr(s.fd); err != nil && !(s.stream && hadPeer(s.fd)) {
		return ErrNotConnected
	}
	s.conned.Store(true)
	return nil
}

// hadPeer reports whether a stream socket that has no peer now (getpeername
// fails once a TCP connection is reset) had one: its sends and receives
// then fail with the socket's error (ConnectionReset), not with
// ErrNotConnected. It must not read SO_ERROR, which clears the error: the
// first receive would then read a reset as a clean end of stream. A TCP
// socket had a peer if its handshake completed, which leaves an RTT
// sample (tcpi_rtt; the SYN-ACK's, or the final ACK's on the accepting
// side) — which reads 0 below a microsecond, so also: its SYN was acked
// (tcpi_bytes_acked counts it) or more than one segment came in. A
// refused connect's one RST leaves none of these, and such a socket never
// had a peer. Other streams (AF_UNIX) keep no such record, and only a
// pending error, which is read — and so spent — there.
func hadPeer(fd int) bool {
	if info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
		return info.Rtt > 0 || info.Bytes_acked > 0 || info.Segs_in > 1
	}
	soErr, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	return soErr != 0
}

// SendAsync starts sending e's Buffer or BufferList.
//
// pending == false, err == nil: the send finished before SendAsync
// returned; e holds the result (BytesTransferred, SocketError) and
// Completed is not raised. pending == true: Completed is raised exactly
// once, later, on the engine's goroutine. err != nil: nothing was sent,
// nothing will be raised, and e is free again; err is one of
// sendop.ErrNilArgs, ErrNoBuffer, ErrBufferConflict, ErrInProgress,
// ErrBadFlags, ErrClosed, ErrWriteShutdown or ErrNotConnected.
//
// Sends on one socket leave in call order and never interleave. On a
// stream socket a send completes with all its bytes or with an error.
// The buffers belong to the kernel until the send completes: their
// contents must not change before SendAsync returned false or Completed
// ran. Close aborts the sends still queued (OperationAborted); CloseWrite
// lets them finish first.
func (s *Socket) SendAsync(e *sendop.Args) (pending bool, err error) {
	o, err := claim(e)
	if err != nil {
		return false, err
	}
	if err := s.sendable(); err != nil {
		o.Abandon()
		return false, err
	}
	s.mu.Lock()
	if err := s.sendShutLocked(); err != nil {
		s.mu.Unlock()
		o.Abandon()
		return false, err
	}
	idle := s.q.Len() == 0 && !s.writing
	s.queueLocked(o)
	if !idle {
		o.MarkQueued()
		s.mu.Unlock()
		return true, nil
	}
	if s.deferLocked(o) {
		return true, nil
	}
	o.MarkInline()
	s.w.wire = 1
	s.mu.Unlock()
	if s.u != nil {
		s.u.start(s)
	} else {
		s.epollStart(o)
	}
	if o.Decide() {
		return true, nil
	}
	s.eng.observe(e, true)
	return false, nil
}

// deferLocked starts o — alone in an idle queue — without the inline
// attempt, where that must not or need not be made, and then unlocks s.mu
// and reports true: a send issued while the reaper raises Completed
// (usually from a handler), or with WithBatching, waits for the reaper's
// next io_uring_enter, which submits it with everything else the handlers
// started; with WithAsyncCompletions it is submitted here, not peeked at.
func (s *Socket) deferLocked(o *op.Op) bool {
	if s.u == nil {
		return false
	}
	switch {
	case s.opts.batch || s.u.raise.raising.Load():
		o.MarkQueued()
		s.flush = true
		s.mu.Unlock()
		s.u.scheduleFlush(s)
	case s.opts.async:
		o.MarkQueued()
		s.w.wire = 1
		s.mu.Unlock()
		s.u.launch(s)
		s.u.submitOutside()
	default:
		return false
	}
	return true
}

// queueLocked begins o, a send SendAsync has taken, and puts it at the
// back of the queue, with s.mu held. On io_uring its memory is pinned
// through the socket's cache (settle trims it when the queue drains); the
// epoll backend's system calls read the buffers before they return.
func (s *Socket) queueLocked(o *op.Op) {
	var pc *op.PinCache
	if s.u != nil {
		pc = &s.pins
	}
	o.Begin(s.stream, pc)
	o.Socket = s
	s.eng.accepted(o)
	s.q.Push(o)
}

// sendable checks, before SendAsync takes a send, that the socket is open
// and connected.
func (s *Socket) sendable() error {
	if s.life.closing() {
		return ErrClosed
	}
	return s.checkConnected()
}

// sendShutLocked is the error of a send on a socket whose send side is
// closing (ErrClosed) or shut down (ErrWriteShutdown), with s.mu held.
func (s *Socket) sendShutLocked() error {
	switch {
	case s.life.closing():
		return ErrClosed
	case s.life.has(lifeWrShut):
		return ErrWriteShutdown
	}
	return nil
}
