package op

import (
	"syscall"
	"unsafe"

	"github.com/uringsend/uringsend/ring"
	"golang.org/x/sys/unix"
)

const (
	msgNoSignal  = unix.MSG_NOSIGNAL
	allowedFlags = unix.MSG_OOB | unix.MSG_DONTROUTE | unix.MSG_EOR | unix.MSG_MORE |
		unix.MSG_CONFIRM | unix.MSG_NOSIGNAL
)

// opSys is the memory the kernel reads for a SENDMSG: the msghdr and the
// iovec array, both kept across sends so steady state allocates nothing.
type opSys struct {
	msg unix.Msghdr
	iov []unix.Iovec
}

// sysAlloc makes room for a BufferList's iovecs, kept across sends.
func (o *Op) sysAlloc() {
	if want := min(len(o.bufs), IOVMax); cap(o.sys.iov) < want {
		o.sys.iov = make([]unix.Iovec, want)
	}
}

func (o *Op) pinSys(pc *PinCache) {
	if len(o.bufs) == 0 {
		return // a Buffer, or an empty list: no msghdr for the kernel to read
	}
	o.pinVia(pc, unsafe.Pointer(&o.sys.iov[:1][0]), cap(o.sys.iov)*int(unsafe.Sizeof(unix.Iovec{})))
	o.pinVia(pc, unsafe.Pointer(o), int(unsafe.Sizeof(Op{}))) // the msghdr lives in the op (in its Args)
}

// Check reports, before anything is sent, an op that cannot go out whole
// on its socket: a datagram BufferList of more than IOVMax segments gives
// EMSGSIZE (MessageSize). 0 means it may be submitted.
func (o *Op) Check() syscall.Errno {
	if !o.stream && len(o.bufs) > IOVMax {
		return unix.EMSGSIZE
	}
	return 0
}

// Prep fills sqe with the op's remaining bytes: IORING_OP_SEND for a
// Buffer, IORING_OP_SENDMSG for a BufferList (at most IOVMax iovecs,
// starting at the current segment and offset). MSG_NOSIGNAL is always
// set; on stream sockets MSG_WAITALL too, so the kernel itself continues
// short sends where it can (5.19+); Advance continues the rest.
func (o *Op) Prep(sqe *ring.SQE, fd int) {
	flags := o.flags
	if o.stream {
		flags |= unix.MSG_WAITALL
	}
	if o.bufs == nil {
		ring.PrepSend(sqe, fd, o.buf[o.off:], flags)
		return
	}
	ring.PrepSendmsg(sqe, fd, o.buildMsg(), flags)
}

// PrepZC is Prep for zero-copy: SEND_ZC / SENDMSG_ZC. The op finishes only
// after the notification CQE.
func (o *Op) PrepZC(sqe *ring.SQE, fd int, zcFlags uint16) {
	flags := o.flags
	if o.stream {
		flags |= unix.MSG_WAITALL
	}
	if o.bufs == nil {
		ring.PrepSendZC(sqe, fd, o.buf[o.off:], flags, zcFlags)
		return
	}
	ring.PrepSendmsgZC(sqe, fd, o.buildMsg(), flags, zcFlags)
}

func (o *Op) buildMsg() *unix.Msghdr {
	iov := o.sys.iov[:cap(o.sys.iov)]
	n := 0
	for s, off := o.seg, o.off; s < len(o.bufs) && n < len(iov); s, off = s+1, 0 {
		b := o.bufs[s][off:]
		if len(b) == 0 {
			continue
		}
		iov[n].Base = &b[0]
		iov[n].SetLen(len(b))
		n++
	}
	msg := &o.sys.msg
	*msg = unix.Msghdr{}
	if n > 0 {
		msg.Iov = &iov[0]
		msg.SetIovlen(n)
	}
	return msg
}

// SendmsgArgs returns what a plain sendmsg(2) needs for the op's remaining
// bytes (used by the epoll backend): the buffer for a Buffer op, or the
// msghdr for a BufferList op; and the MSG_* flags.
func (o *Op) SendmsgArgs() (buf []byte, msg *unix.Msghdr, flags int) {
	flags = int(o.flags)
	if o.bufs == nil {
		return o.buf[o.off:], nil, flags
	}
	return nil, o.buildMsg(), flags
}

// Advance records a send result (bytes, or -errno) and reports whether the
// op is finished. On a stream socket a short send is not finished: the
// caller submits the op again (Prep starts at the right segment and
// offset). An error after partial progress finishes the op with the error
// and keeps the bytes already sent in BytesTransferred.
func (o *Op) Advance(res int32) (done bool) {
	if res < 0 {
		o.errno = syscall.Errno(-res)
		return true
	}
	o.transferred += int(res)
	if o.transferred >= o.total || !o.stream {
		return true
	}
	if res == 0 {
		// A stream socket that takes nothing without an error is broken.
		o.errno = unix.EIO
		return true
	}
	o.skip(int(res))
	return false
}

// skip moves the cursor n bytes forward.
func (o *Op) skip(n int) {
	if o.bufs == nil {
		o.off += n
		return
	}
	for n > 0 && o.seg < len(o.bufs) {
		rest := len(o.bufs[o.seg]) - o.off
		if n < rest {
			o.off += n
			return
		}
		n -= rest
		o.seg, o.off = o.seg+1, 0
	}
}

// Coalescing: an engine may send the remaining bytes of several queued
// stream ops in one SENDMSG. It asks each op for its iovecs in turn and,
// when the CQE comes, hands each op its share of the result with Advance.

// Coalescable reports whether o may share a SENDMSG with other ops: a
// stream op whose flags are the default (a MSG_MORE, MSG_OOB or MSG_EOR
// of one op must not apply to its neighbours).
func (o *Op) Coalescable() bool { return o.stream && o.flags == msgNoSignal && o.timeout == 0 }

// Remaining is the number of bytes o has still to send.
func (o *Op) Remaining() int { return o.total - o.transferred }

// IovecCount is the number of non-empty iovecs o's remaining bytes need.
func (o *Op) IovecCount() int {
	if o.bufs == nil {
		if o.off < len(o.buf) {
			return 1
		}
		return 0
	}
	n := 0
	for s, off := o.seg, o.off; s < len(o.bufs); s, off = s+1, 0 {
		if len(o.bufs[s]) > off {
			n++
		}
	}
	return n
}

// AppendIovecs appends iovecs for o's remaining bytes to iov.
func (o *Op) AppendIovecs(iov []unix.Iovec) []unix.Iovec {
	if o.bufs == nil {
		if b := o.buf[o.off:]; len(b) > 0 {
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
		return iov
	}
	for s, off := o.seg, o.off; s < len(o.bufs); s, off = s+1, 0 {
		if b := o.bufs[s][off:]; len(b) > 0 {
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
	}
	return iov
}

// StreamFlags are the MSG_* flags of a coalesced SENDMSG.
const StreamFlags = msgNoSignal | unix.MSG_WAITALL
