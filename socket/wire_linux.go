package socket

import (
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/uringsend/uringsend/internal/op"
	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// The wire of a socket is the front of its queue that is being sent: the
// head alone, or a batch of queued sends that leave in one sendmsg — on a
// stream socket their bytes coalesced, on a UDP socket their datagrams
// joined with UDP GSO (see buildDgramWire). Both backends build it with
// buildWire and hand each send result to settle, which splits the bytes
// over the wire's sends in order, completes the ones that are done, and
// builds the next wire. Only the wire's owner (the goroutine that submitted
// it, then whoever handles its result) touches it; Socket.mu guards the
// queue.

// wireState is a Socket's wire.
type wireState struct {
	idx  uint32        // io_uring: the socket's slot in its ring's table
	gen  atomic.Uint32 // io_uring: generation of the SQE on the wire
	wire int           // sends at the front of q on the wire; guarded by Socket.mu
	iov  []unix.Iovec  // a coalesced batch's iovecs
	msg  unix.Msghdr
	pin  runtime.Pinner // iov, and the Socket (msg, ctl), once the socket coalesces
	// ctl is the UDP_SEGMENT control message of a GSO wire; uint64s keep
	// the cmsghdr aligned.
	ctl   [3]uint64
	gso   gsoState
	bytes int  // bytes of a coalesced wire
	zc    bool // io_uring: send wires above the threshold with SEND_ZC
	// io_uring: resubmit the wire asking the kernel to poll first (it
	// answered EAGAIN)
	pollFirst bool

	// io_uring, the wire in the kernel: how it went (decided once, by
	// kindOf), the CQEs still due, its one result, and — for a send with
	// a linked timeout — the timespec and whether the timeout fired.
	kind     wireKind
	expect   int
	res      int32
	ts       unix.Timespec
	deadline int64 // when the timeout fires (Engine.now)
	tmoFired bool
}

// wireKind is how a wire goes to the kernel.
type wireKind uint8

const (
	kindSend    wireKind = iota // one op: SEND (a Buffer) or SENDMSG (a BufferList)
	kindSendZC                  // the same, zero-copy: SEND_ZC / SENDMSG_ZC
	kindTimed                   // one op with a Timeout: SEND or SENDMSG linked to a LINK_TIMEOUT
	kindBatch                   // coalesced stream ops: one SENDMSG of the wire's iovecs
	kindBatchZC                 // the same, SENDMSG_ZC
	kindGSO                     // joined datagrams: one SENDMSG with UDP_SEGMENT
)

// zc reports a zero-copy kind: its result CQE is followed by a
// notification when the kernel is done with the buffers.
func (k wireKind) zc() bool { return k == kindSendZC || k == kindBatchZC }

// Coalescing limits: one SENDMSG carries at most IOVMax iovecs and, past
// its first send, no more than maxBatchBytes.
const maxBatchBytes = 4 << 20

// buildWire picks the next wire from the front of s's queue, with s.mu
// held: the head alone, or — on a stream socket — as many coalescable
// queued ops as fit one SENDMSG, or — on a UDP socket — a run of
// datagrams for one GSO sendmsg. Ops that were on the wire before (a
// partly sent head, an inline op) keep their state; queued ones launch.
func (s *Socket) buildWire() {
	head := s.q.Head()
	hop := head
	s.w.wire = 1
	s.w.gso.segs = 0
	if hop.Next() == nil {
		return
	}
	if !s.stream {
		s.buildDgramWire(hop)
		return
	}
	if !hop.Coalescable() || !hop.Next().Coalescable() {
		return
	}
	iov := hop.AppendIovecs(s.wireIovecs())
	if len(iov) > sendop.IOVMax {
		return // a long BufferList goes alone, in pieces
	}
	bytes := hop.Remaining()
	for e := hop.Next(); e != nil; e = e.Next() {
		op := e
		if !op.Coalescable() || len(iov)+op.IovecCount() > sendop.IOVMax || bytes+op.Remaining() > maxBatchBytes {
			break
		}
		iov = op.AppendIovecs(iov)
		bytes += op.Remaining()
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

// wireIovecs returns the socket's iovec array for a batch, empty. It is
// made and pinned the first time the socket coalesces, with the Socket
// that holds the msghdr and the control message; Engine.remove unpins them.
func (s *Socket) wireIovecs() []unix.Iovec {
	if s.w.iov == nil {
		s.w.iov = make([]unix.Iovec, 0, sendop.IOVMax)
		s.w.pin.Pin(&s.w.iov[:1][0])
		s.w.pin.Pin(s)
	}
	return s.w.iov[:0]
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
	var done, aborted, raise op.Queue // intrusive: no allocation
	s.mu.Lock()
	s.split(finalResult(res, s.life.closing(), timedOut), timedOut, &done)
	more = s.nextWireLocked(&aborted)
	// Counted before the lock goes: a Close that finds the queue empty
	// must find these sends' Completed still to come.
	reserved := done.Len() + aborted.Len()
	s.unraised.Add(int64(reserved))
	idle := s.sendIdleLocked()
	s.mu.Unlock()

	completeAll(&raise, &done, 0)
	completeAll(&raise, &aborted, syscall.ECANCELED)
	s.handOver(&raise, reserved)
	if idle {
		// Only now: Close may return, and Engine.Close stop the raiser,
		// once the last completions are in the raiser's hands.
		s.releaseClose()
	}
	return more
}

// split hands the result of the wire (its s.w.wire sends) to them in
// order, with s.mu held, and moves those that are done to done. A GSO
// wire the kernel refused whole leaves its sends queued for the next wire.
func (s *Socket) split(res int32, timedOut bool, done *op.Queue) {
	n, segs := s.w.wire, s.w.gso.segs
	s.w.wire, s.w.gso.segs = 0, 0
	switch {
	case segs > 0 && res < 0 && s.gsoRefused(syscall.Errno(-res), segs, s.w.gso.size):
		// Nothing was sent: the same sends stay at the front of the
		// queue for the next wire.
	case res < 0 || n == 1:
		o := s.q.Head()
		if o.Advance(res) || timedOut && o.Advance(-int32(syscall.ETIMEDOUT)) {
			done.Push(s.q.Pop())
		}
	default:
		rem := int(res)
		for range n {
			o := s.q.Head()
			need := o.Remaining()
			if rem < need {
				if rem > 0 {
					o.Advance(int32(rem))
				}
				return
			}
			o.Advance(int32(need))
			rem -= need
			done.Push(s.q.Pop())
		}
	}
}

// nextWireLocked builds the next wire and reports whether there is one,
// with s.mu held. On a closing socket nothing more goes out: what is left
// moves to aborted.
func (s *Socket) nextWireLocked(aborted *op.Queue) bool {
	switch {
	case s.life.closing():
		aborted.Concat(&s.q)
	case s.q.Len() > 0:
		s.buildWire()
		return true
	default:
		if s.life.has(lifeShutPending) {
			s.shutdownWriteLocked() // CloseWrite: the queue has drained
		}
		s.drained()
	}
	return false
}

// completeAll completes every op of q with errno, in order, and moves
// those whose Completed must be raised to raise.
func completeAll(raise, q *op.Queue, errno syscall.Errno) {
	for o := q.Pop(); o != nil; o = q.Pop() {
		if o.Complete(errno) {
			raise.Push(o)
		}
	}
}

// drained runs when s's send queue has drained, with s.mu held: nothing
// of s is in the kernel, so its pin cache may let go of what it no longer
// sends from, and the idle sweep looks after the rest.
func (s *Socket) drained() {
	if s.u == nil {
		return // the epoll backend pins nothing
	}
	s.pins.Trim()
	if s.pins.Len() > 0 && !s.swept {
		s.swept = true
		s.u.sweep.add(s)
	}
}

// handOver gives completed sends to the goroutine that raises Completed
// for s: its ring's reaper, or the engine's dispatcher on the epoll path.
// reserved is what the caller added to s.unraised, under the lock that
// took these sends off their queue, for the sends it finished: those not
// in q (synchronous ones, reported by SendAsync) are taken back out.
func (s *Socket) handOver(q *op.Queue, reserved int) {
	s.raisedDone(int64(reserved - q.Len()))
	if q.Len() == 0 {
		return
	}
	if s.u != nil {
		s.u.raise.pushAll(q)
		return
	}
	s.eng.disp.push(q)
}

// Datagram coalescing. Datagrams queued behind a busy UDP socket leave
// together: one sendmsg carries a run of them with a UDP_SEGMENT control
// message (UDP GSO, Linux >= 4.18), and the kernel cuts it into datagrams
// of the segment size — each arrives on its own, in order, exactly as if
// sent one by one. A run is the head and the ops behind it whose lengths
// equal the head's (L); a shorter one may end it (the kernel's last
// segment), a longer one starts the next wire. Only ops with default
// flags and no Timeout join; a Buffer or a BufferList alike, by length.
// The kernel sends a GSO wire whole or not at all, so a result >= 0 is
// the sum of the run's lengths and settle splits it as for a stream wire.
// A wire of one datagram is a plain SEND, as before.
//
// The kernel may refuse GSO for a socket: no UDP checksum (SO_NO_CHECK),
// IPsec (EIO), a segment that does not fit the route's MTU (EMSGSIZE on
// current kernels, EINVAL on old ones), more segments than it takes (64
// before Linux 6.10 and the stable backports, 128 since). A refused wire
// sent nothing; settle learns from the errno and the same datagrams go out
// again in smaller wires or one by one — none lost, none twice.

// gsoState is a socket's datagram coalescing, under the wire's owner.
type gsoState struct {
	mode    uint8 // gsoUnknown until the first chance to coalesce, then gsoOn or gsoOff
	maxSegs int   // datagrams per wire: gsoMaxSegs, or gsoMinSegs once the kernel said too many
	maxLen  int   // longest segment to try: lowered when the route's MTU refused one
	segs    int   // datagrams in the GSO wire on the wire; 0: not a GSO wire
	size    int   // its segment size, L
}

const (
	gsoUnknown = iota
	gsoOff
	gsoOn
)

const (
	// gsoMaxSegs is UDP_MAX_SEGMENTS of Linux >= 6.10 (and stable kernels
	// that took the change); gsoMinSegs that of every kernel with GSO.
	gsoMaxSegs = 128
	gsoMinSegs = 64
	// gsoMaxBytes bounds a GSO wire's payload: below the 65507 bytes of
	// one UDP/IPv4 packet, with room for IP options and IPv6 extension
	// headers.
	gsoMaxBytes = 64000
)

// gsoReady reports whether s may send GSO wires, finding out the first
// time: a UDP socket over IPv4 or IPv6 on a kernel that knows UDP_SEGMENT
// (getsockopt fails before 4.18 — where the cmsg would be ignored and the
// run sent as one datagram). AF_UNIX and other datagram sockets never
// coalesce.
func (s *Socket) gsoReady() bool {
	if s.w.gso.mode == gsoUnknown {
		s.w.gso = gsoState{mode: gsoOff, maxSegs: gsoMaxSegs, maxLen: gsoMaxBytes / 2}
		if udpGSO(s.fd) {
			s.w.gso.mode = gsoOn
		}
	}
	return s.w.gso.mode == gsoOn
}

func udpGSO(fd int) bool {
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil || dom != unix.AF_INET && dom != unix.AF_INET6 {
		return false
	}
	proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil || proto != unix.IPPROTO_UDP {
		return false
	}
	_, err = unix.GetsockoptInt(fd, unix.SOL_UDP, unix.UDP_SEGMENT)
	return err == nil
}

// dgramJoinable reports whether a datagram op may share a GSO wire: it is
// not empty (a GSO segment cannot be), has only the default flags (a
// MSG_MORE or MSG_CONFIRM of one must not apply to its neighbours), no
// Timeout, and can go out whole.
func dgramJoinable(op *op.Op) bool {
	if op.Remaining() == 0 || op.Timeout() != 0 || op.Check() != 0 {
		return false
	}
	return op.Flags() == unix.MSG_NOSIGNAL
}

// buildDgramWire makes the wire a GSO sendmsg of the head hop and the
// datagrams behind it that fit the run (see above), if there are two or
// more; otherwise the head goes alone.
func (s *Socket) buildDgramWire(hop *op.Op) {
	size := hop.Remaining()
	next := hop.Next()
	if n := next.Remaining(); n > size || n == 0 || !s.gsoReady() || size > s.w.gso.maxLen ||
		!dgramJoinable(hop) || !dgramJoinable(next) {
		return
	}
	iov := hop.AppendIovecs(s.wireIovecs())
	bytes := size
	for e := hop.Next(); e != nil && s.w.wire < s.w.gso.maxSegs; e = e.Next() {
		op := e
		n := op.Remaining()
		if n > size || bytes+n > gsoMaxBytes || !dgramJoinable(op) || len(iov)+op.IovecCount() > sendop.IOVMax {
			break
		}
		iov = op.AppendIovecs(iov)
		bytes += n
		s.w.wire++
		if n < size {
			break // the kernel's last segment may be short; only the last
		}
	}
	if s.w.wire == 1 {
		return
	}
	s.w.gso.segs, s.w.gso.size = s.w.wire, size
	s.w.bytes = bytes
	s.w.iov = iov[:0]
	h := (*unix.Cmsghdr)(unsafe.Pointer(&s.w.ctl[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&s.w.ctl[2])) = uint16(size) // CMSG_DATA: right after the 16-byte header
	s.w.msg = unix.Msghdr{Iov: &iov[0], Control: (*byte)(unsafe.Pointer(&s.w.ctl[0]))}
	s.w.msg.SetIovlen(len(iov))
	s.w.msg.SetControllen(unix.CmsgSpace(2))
}

// gsoRefused reports whether errno, the result of a GSO wire of segs
// datagrams of size bytes, means the kernel refused the GSO send itself
// (it sent nothing), and adjusts the socket so the same datagrams go out
// again: in wires of gsoMinSegs, one by one, or with GSO off. Other errors
// (ECONNREFUSED from an ICMP, ENOBUFS) are the datagrams' own and complete
// the head as a single datagram's would.
func (s *Socket) gsoRefused(errno syscall.Errno, segs, size int) bool {
	g := &s.w.gso
	switch errno {
	case unix.EINVAL:
		if segs > gsoMinSegs && g.maxSegs > gsoMinSegs {
			g.maxSegs = gsoMinSegs // a kernel older than 6.10
		} else {
			g.mode = gsoOff // e.g. SO_NO_CHECK, or a route MTU under size on an old kernel
		}
	case unix.EMSGSIZE:
		// A segment of size does not fit the route's MTU; a datagram of
		// that size alone may (fragmented), and shorter runs still can.
		g.maxLen = size - 1
	case unix.EIO, unix.ENOPROTOOPT, unix.EOPNOTSUPP:
		g.mode = gsoOff
	default:
		return false
	}
	return true
}
