package ring

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The Prep functions only fill an SQE; they neither submit nor pin. The
// memory an SQE points to must stay reachable and unmoved until the
// operation's final CQE (for zero-copy sends: its notification).

// PrepNop prepares IORING_OP_NOP: it completes at once with res 0.
func PrepNop(sqe *SQE) {
	sqe.PrepOperation(OpNop, -1, 0, 0, 0)
}

// PrepSend prepares IORING_OP_SEND (5.6) of b on socket fd with MSG_* flags.
// res: bytes sent, or -errno.
func PrepSend(sqe *SQE, fd int, b []byte, msgFlags uint32) {
	sqe.PrepOperation(OpSend, int32(fd), uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))), uint32(len(b)), 0)
	sqe.SetOpFlags(msgFlags)
}

// PrepSendmsg prepares IORING_OP_SENDMSG (5.3) of msg on socket fd.
// res: bytes sent, or -errno.
func PrepSendmsg(sqe *SQE, fd int, msg *unix.Msghdr, msgFlags uint32) {
	sqe.PrepOperation(OpSendmsg, int32(fd), uint64(uintptr(unsafe.Pointer(msg))), 1, 0)
	sqe.SetOpFlags(msgFlags)
}

// PrepSendZC prepares IORING_OP_SEND_ZC (6.0): the kernel sends from b's
// pages. It posts the result with CQEFMore, then a notification CQE
// (CQEFNotif) once b is no longer referenced. zcFlags: SendZCReportUsage,
// RecvsendPollFirst.
func PrepSendZC(sqe *SQE, fd int, b []byte, msgFlags uint32, zcFlags uint16) {
	sqe.PrepOperation(OpSendZC, int32(fd), uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))), uint32(len(b)), 0)
	sqe.SetOpFlags(msgFlags)
	sqe.SetIoprio(zcFlags)
}

// PrepSendmsgZC prepares IORING_OP_SENDMSG_ZC (6.1), the vectored SendZC.
func PrepSendmsgZC(sqe *SQE, fd int, msg *unix.Msghdr, msgFlags uint32, zcFlags uint16) {
	sqe.PrepOperation(OpSendmsgZC, int32(fd), uint64(uintptr(unsafe.Pointer(msg))), 1, 0)
	sqe.SetOpFlags(msgFlags)
	sqe.SetIoprio(zcFlags)
}

// PrepCancelFD prepares IORING_OP_ASYNC_CANCEL (5.19 for by-fd) of every
// request on fd. res: number cancelled, or -ENOENT when there was none.
func PrepCancelFD(sqe *SQE, fd int) {
	sqe.PrepOperation(OpAsyncCancel, int32(fd), 0, 0, 0)
	sqe.SetOpFlags(asyncCancelFD | asyncCancelAll)
}

// PrepCancel prepares IORING_OP_ASYNC_CANCEL of the request tagged userData.
func PrepCancel(sqe *SQE, userData uint64) {
	sqe.PrepOperation(OpAsyncCancel, -1, userData, 0, 0)
}

// prepCancelAny cancels every request of the ring (5.19).
func prepCancelAny(sqe *SQE) {
	sqe.PrepOperation(OpAsyncCancel, -1, 0, 0, 0)
	sqe.SetOpFlags(asyncCancelAny)
}

// PrepLinkTimeout prepares IORING_OP_LINK_TIMEOUT (5.5) for the SQE before
// it, which must carry SQEIOLink: if that request has not finished within
// ts it is cancelled (its res becomes -ECANCELED; the timeout's -ETIME).
// ts must stay reachable until the timeout's CQE.
func PrepLinkTimeout(sqe *SQE, ts *unix.Timespec) {
	sqe.PrepOperation(OpLinkTimeout, -1, uint64(uintptr(unsafe.Pointer(ts))), 1, 0)
}
