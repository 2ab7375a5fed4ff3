package socket

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
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

// Engine executes sends: on io_uring rings with a reaper goroutine each,
// or, where io_uring is unavailable or not wanted, on Go's netpoller with
// the same contract.
type Engine struct {
	backend  string
	fallback error // why io_uring is not used (BackendAuto), or nil
	rings    []*uring
	disp     *dispatcher // raises Completed for sockets on the epoll path
	next     atomic.Uint32
	m        Observer
	t0       time.Time // origin of Op.Start, for latencies

	zcMode      string
	zcThreshold int

	mu     sync.Mutex
	socks  map[*Socket]struct{}
	closed bool

	sys sysCounters // the epoll path's system calls

	recvBufs, recvBufSize int        // the receive pool's size (stream_linux.go)
	poolMu                sync.Mutex // epoll: the engine's pool, made on first use
	pool                  *chunkPool
	// noPin: the rings' receive pools, which sockets' pin caches skip
	// (chunks sent on are not Go memory).
	noPin op.Exempt
}

// NewEngine starts an engine.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.Rings <= 0 {
		cfg.Rings = 1
	}
	e := &Engine{socks: make(map[*Socket]struct{}), m: observer(cfg.Metrics), t0: time.Now()}
	if err := e.configure(cfg); err != nil {
		return nil, err
	}
	defer func() {
		if e.backend != "" && e.m != nil {
			e.m.SetEngineInfo(e.backend, kernelRelease())
		}
	}()
	defer func() {
		if e.backend != "" {
			e.disp = startDispatcher(e)
		}
	}()
	switch cfg.Backend {
	case "", BackendAuto, BackendIOURing:
		err := e.startRings(cfg)
		if err == nil {
			e.backend = BackendIOURing
			return e, nil
		}
		if cfg.Backend == BackendIOURing || !errors.Is(err, ring.ErrNotSupported) {
			return nil, err
		}
		e.fallback = err
		e.backend = BackendEpoll
	case BackendEpoll:
		e.backend = BackendEpoll
	default:
		return nil, fmt.Errorf("%w: %q", ErrBadBackend, cfg.Backend)
	}
	return e, nil
}

// configure checks cfg's settings that need no ring and keeps them.
func (e *Engine) configure(cfg EngineConfig) error {
	e.zcMode, e.zcThreshold = cfg.ZeroCopy, cfg.ZeroCopyThreshold
	switch e.zcMode {
	case "":
		e.zcMode = ZeroCopyAuto
	case ZeroCopyAuto, ZeroCopyOn, ZeroCopyOff:
	default:
		return fmt.Errorf("%w: %q", ErrBadZeroCopy, cfg.ZeroCopy)
	}
	if cfg.Entries == 1 {
		return fmt.Errorf("%w: Entries %d (a send with a Timeout takes 2 SQEs)", ErrBadEntries, cfg.Entries)
	}
	if e.zcThreshold <= 0 {
		e.zcThreshold = 16 << 10
	}
	var err error
	e.recvBufs, e.recvBufSize, err = recvPoolSize(cfg.RecvBuffers, cfg.RecvBufferSize)
	return err
}

func (e *Engine) startRings(cfg EngineConfig) error {
	rc := cfg.Ring
	rc.Entries, rc.CQEntries = cfg.Entries, cfg.CQEntries
	for i := 0; i < cfg.Rings; i++ {
		u, err := newURing(e, rc, e.m)
		if err != nil {
			for _, u := range e.rings {
				u.close()
			}
			e.rings = nil
			return err
		}
		e.rings = append(e.rings, u)
	}
	return nil
}

// Backend reports the backend in use: BackendIOURing or BackendEpoll.
func (e *Engine) Backend() string { return e.backend }

// ZeroCopySends returns how many zero-copy sends (SEND_ZC / SENDMSG_ZC
// wires) have completed on the engine's rings.
func (e *Engine) ZeroCopySends() uint64 {
	var n uint64
	for _, u := range e.rings {
		n += u.zcNotifs.Load()
	}
	return n
}

// FallbackReason says why BackendAuto chose epoll (it Is
// ring.ErrNotSupported), or nil.
func (e *Engine) FallbackReason() error { return e.fallback }

var (
	defaultOnce   sync.Once
	defaultEngine *Engine
	defaultErr    error
)

// DefaultEngine returns the engine used by sockets created without
// WithEngine, starting it on first use with the zero EngineConfig. It is
// never closed.
func DefaultEngine() (*Engine, error) {
	defaultOnce.Do(func() { defaultEngine, defaultErr = NewEngine(EngineConfig{}) })
	return defaultEngine, defaultErr
}

// add registers s, a socket described by info, and picks its backend.
func (e *Engine) add(s *Socket, info sockInfo) error {
	typ := info.typ
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.socks[s] = struct{}{}
	if e.backend == BackendIOURing && !unixDgram(s.fd, typ) {
		s.u = e.rings[int(e.next.Add(1))%len(e.rings)]
		s.u.add(s)
		// Auto needs the kernel to say when it copied anyway (6.2).
		s.zcable = (e.zcMode == ZeroCopyOn || e.zcMode == ZeroCopyAuto && s.u.zcFlags != 0) &&
			s.u.r.Supports(ring.OpSendZC) && typ == unix.SOCK_STREAM && zeroCopyPeer(s.fd, info, e.zcMode == ZeroCopyOn)
		s.w.zc = s.zcable
	}
	return nil
}

func (e *Engine) remove(s *Socket) {
	e.mu.Lock()
	delete(e.socks, s)
	e.mu.Unlock()
	if s.u != nil {
		s.u.remove(s)
	}
	// The wire's iovecs and msghdr (pinned the first time the socket
	// coalesced, on either backend) and the memory of its sends are no
	// longer the kernel's.
	s.w.pin.Unpin()
	s.mu.Lock()
	s.pins.Release()
	s.mu.Unlock()
}

// Close closes every socket of the engine (their pending sends complete
// with OperationAborted, or their real result if they finished first),
// then stops the rings and their reapers, and returns when all of that is
// done. Called from a Completed handler — on a reaper, which cannot wait
// for itself — Close starts the same shutdown and returns at once; it
// finishes after the handler returns.
func (e *Engine) Close() error {
	socks, ok := e.beginClose()
	if !ok {
		return ErrClosed
	}
	if e.onRaiser() {
		// A goroutine that raises Completed cannot wait for itself.
		go e.finishClose(socks)
		return nil
	}
	return e.finishClose(socks)
}

// beginClose marks the engine closed and returns its sockets; false if it
// already was.
func (e *Engine) beginClose() ([]*Socket, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, false
	}
	e.closed = true
	socks := make([]*Socket, 0, len(e.socks))
	for s := range e.socks {
		socks = append(socks, s)
	}
	return socks, true
}

// finishClose closes the sockets, then the rings and the dispatcher.
func (e *Engine) finishClose(socks []*Socket) error {
	// Start every close, then wait: the cancels go out together and each
	// wait is bounded.
	done := make([]chan struct{}, len(socks))
	for i, s := range socks {
		done[i], _ = s.startClose()
	}
	for i, s := range socks {
		s.awaitClose(done[i])
	}
	var err error
	for _, u := range e.rings {
		err = errors.Join(err, u.close())
	}
	e.disp.close()
	return err
}

// errnoOf turns an engine-side failure to submit into the errno the op
// completes with.
func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, ring.ErrClosed):
		return syscall.ECANCELED
	case errors.Is(err, ring.ErrSQFull):
		return syscall.ENOBUFS
	}
	return syscall.EIO
}

// raiseQueue collects ops whose Completed must be raised on a reaper
// goroutine: an intrusive FIFO (the ops' own links), so appending a whole
// batch takes one lock and no allocation. raising tells an inline
// harvester that the reaper is inside raiseAll and will see what it
// appends, so no wake-up is needed.
//
// tid says who the raiser is while it runs handlers, for Close called
// from one (which must not wait for the raiser, itself): the raiser locks
// itself to its OS thread for the batch and publishes the thread's id, so
// a goroutine that finds its own thread id there is the raiser — no other
// goroutine runs on a locked thread. Locking and unlocking are a few
// field writes; gettid(2) is one cheap syscall per batch.
type raiseQueue struct {
	mu      sync.Mutex
	q       op.Queue
	dq      []delivery // stream receives' handler calls (stream_linux.go), in order
	dqSpare []delivery // the raiser's: dq's last backing array, for reuse
	raising atomic.Bool
	tid     atomic.Int32 // the raiser's thread while it runs handlers; 0 otherwise
}

// pushDelivery appends one call of a stream receive's handler.
func (r *raiseQueue) pushDelivery(d delivery) {
	r.mu.Lock()
	r.dq = append(r.dq, d)
	r.mu.Unlock()
}

// pushAll appends every op of q, in order, and empties q.
func (r *raiseQueue) pushAll(q *op.Queue) {
	if q.Len() == 0 {
		return
	}
	r.mu.Lock()
	r.q.Concat(q)
	r.mu.Unlock()
}

// needsWake reports whether queued ops wait for a reaper that is not
// raising: then the reaper must be woken.
func (r *raiseQueue) needsWake() bool {
	if r.raising.Load() {
		return false
	}
	r.mu.Lock()
	n := r.q.Len() + len(r.dq)
	r.mu.Unlock()
	return n > 0
}

// raiseAll raises everything queued, in order, including what Completed
// handlers queue meanwhile. Only the ring's reaper (or the epoll
// dispatcher) calls it; lockedTID is the thread the caller is locked to
// for its life (ring.ReaperThread), or 0: then it locks itself for the
// batch and asks gettid.
func (r *raiseQueue) raiseAll(eng *Engine, lb latencyBatch, lockedTID int32) {
	r.raising.Store(true)
	locked := false
	for {
		r.mu.Lock()
		q := r.q
		r.q = op.Queue{}
		if q.Len() == 0 && len(r.dq) == 0 {
			// Clear the flag under the lock: a push after this
			// sees raising == false and wakes the reaper.
			r.raising.Store(false)
			r.mu.Unlock()
			if locked {
				r.tid.Store(0) // before the unlock: then no other goroutine can be on this thread
				runtime.UnlockOSThread()
			}
			return
		}
		dq := r.dq
		r.dq, r.dqSpare = r.dqSpare, nil
		r.mu.Unlock()
		if !locked {
			locked = true
			runtime.LockOSThread()
			if lockedTID == 0 {
				lockedTID = int32(unix.Gettid())
			}
			r.tid.Store(lockedTID)
		}
		eng.raiseAll(&q, lb)
		for i := range dq {
			dq[i].run()
		}
		clear(dq)
		r.dqSpare = dq[:0]
	}
}

// isRaiser reports whether the calling goroutine is this queue's raiser,
// inside a handler; tid is the caller's thread id.
func (r *raiseQueue) isRaiser(tid int32) bool { return r.tid.Load() == tid }

// now is the time since the engine started, for Op.Start.
func (e *Engine) now() int64 { return int64(time.Since(e.t0)) }

// accepted records a send SendAsync took on.
func (e *Engine) accepted(o *op.Op) {
	if e.m != nil {
		o.Start = e.now()
		e.m.InflightAdd(1)
	}
}

// observe records a completed send, before its result can change (sync:
// before SendAsync returns; async: before Completed runs).
func (e *Engine) observe(a *sendop.Args, sync bool) {
	if e.m == nil {
		return
	}
	secs := float64(e.now()-opOf(a).Start) / 1e9
	e.m.ObserveSend(sync, a.SocketError().String(), a.BytesTransferred(), secs)
	e.m.InflightAdd(-1)
}

// latencyBatch is a reaper's Observer.Latencies; empty without one.
type latencyBatch struct {
	observe func(ns int64)
	flush   func()
}

// raiseAll raises Completed for every op of q, in order. Metrics first
// (so a handler sees its own send counted): the clock is read once and
// successes counted once for the whole batch; lb, when not nil, gathers
// the latencies (it belongs to the calling reaper).
func (e *Engine) raiseAll(q *op.Queue, lb latencyBatch) {
	if e.m != nil {
		e.observeSends(q, lb)
	}
	// unraised drops once per run of one socket's ops (a coalesced wire
	// completes hundreds together), after the run's last handler returned.
	var cur *Socket
	run := int64(0)
	for o := q.Pop(); o != nil; o = q.Pop() {
		if s := o.Socket.(*Socket); s != cur {
			if cur != nil {
				cur.raisedDone(run)
			}
			cur, run = s, 0
		}
		if o.Recv {
			cur.rx.toRaise.Add(-1)
		}
		raise(o)
		run++
	}
	if cur != nil {
		cur.raisedDone(run)
	}
}

// observeSends reports q's sends (not its receives) to the Observer:
// their latencies, results and bytes, one call per kind for the batch.
func (e *Engine) observeSends(q *op.Queue, lb latencyBatch) {
	now := e.now()
	n, ok, bytes := 0, 0, 0
	for o := q.Head(); o != nil; o = o.Next() {
		if o.Recv {
			continue
		}
		if lb.observe != nil {
			lb.observe(now - o.Start)
		} else {
			e.m.ObserveLatency(false, float64(now-o.Start)/1e9)
		}
		a := argsOf(o)
		if code := a.SocketError(); code == sendop.Success {
			ok++
			bytes += a.BytesTransferred()
		} else {
			e.m.AddSends(false, code.String(), 1, 0)
		}
		n++
	}
	if lb.flush != nil {
		lb.flush()
	}
	e.m.AddSends(false, sendop.Success.String(), ok, bytes)
	e.m.InflightAdd(-n)
}

// onRaiser reports whether the calling goroutine raises Completed for the
// engine (a reaper or the dispatcher, inside a handler): it must not wait
// for raises. Only a Close that has something to wait for asks.
func (e *Engine) onRaiser() bool {
	tid := int32(unix.Gettid())
	if e.disp.q.isRaiser(tid) {
		return true
	}
	for _, u := range e.rings {
		if u.raise.isRaiser(tid) {
			return true
		}
	}
	return false
}

// zeroCopyPeer reports whether fd is a connected TCP socket whose peer
// may benefit from zero-copy: not on loopback (where the kernel copies
// anyway), unless loopbackToo.
func zeroCopyPeer(fd int, info sockInfo, loopbackToo bool) bool {
	var peer netip.Addr
	if a, ok := info.raddr.(*net.TCPAddr); ok && a != nil {
		peer = a.AddrPort().Addr() // from the net.Conn: no syscall
	} else {
		var err error
		if peer, err = peerAddr(fd); err != nil {
			return false
		}
	}
	if !peer.IsValid() {
		return false // AF_UNIX has no zero-copy
	}
	return loopbackToo || !peer.Unmap().IsLoopback()
}

// peerAddr is getpeername(2) for what the engine asks of a peer: whether
// there is one (err == nil) and its IP (invalid for AF_UNIX). Unlike
// unix.Getpeername it allocates nothing and makes no second syscall (x/sys
// asks SO_PROTOCOL of every AF_INET socket).
func peerAddr(fd int) (netip.Addr, error) {
	var sa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	_, _, errno := unix.RawSyscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&n)))
	if errno != 0 {
		return netip.Addr{}, errno
	}
	switch sa.Addr.Family {
	case unix.AF_INET:
		return netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(&sa)).Addr), nil
	case unix.AF_INET6:
		return netip.AddrFrom16((*unix.RawSockaddrInet6)(unsafe.Pointer(&sa)).Addr), nil
	}
	return netip.Addr{}, nil
}

// unixDgram reports an AF_UNIX SOCK_DGRAM socket. Such sockets send on the
// epoll path even in an io_uring engine: when the receiver's queue is full
// the kernel has already copied the data out of the iterator before it
// answers EAGAIN, and io_uring's internal retry then sends the datagram
// empty (seen on 6.18; a plain sendmsg(2) leaves the caller's buffer to
// retry whole).
func unixDgram(fd, typ int) bool {
	if typ != unix.SOCK_DGRAM {
		return false
	}
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	return err == nil && dom == unix.AF_UNIX
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
