package ring

import (
	sys "github.com/iceber/iouring-go/syscall"
)

// SQE is one 64-byte submission queue entry, laid out by iouring-go's ABI.
// Prep functions fill it; SetUserData tags it.
type SQE = sys.SubmissionQueueEntry64

// CQE is one 16-byte completion queue entry: UserData, Result (a negated
// errno on failure) and Flags.
type CQE = sys.CompletionQueueEvent16

// Opcodes used by a send engine, re-exported so callers need not import the ABI.
const (
	OpNop         = sys.IORING_OP_NOP
	OpSendmsg     = sys.IORING_OP_SENDMSG
	OpAsyncCancel = sys.IORING_OP_ASYNC_CANCEL
	OpLinkTimeout = sys.IORING_OP_LINK_TIMEOUT
	OpRead        = sys.IORING_OP_READ
	OpSend        = sys.IORING_OP_SEND
	OpSendZC      = sys.IORING_OP_SEND_ZC
	OpSendmsgZC   = sys.IORING_OP_SENDMSG_ZC
	opLast        = sys.IORING_OP_LAST
)

// SQE flags (IOSQE_*).
const (
	SQEFixedFile = sys.IOSQE_FLAGS_FIXED_FILE
	SQEIODrain   = sys.IOSQE_FLAGS_IO_DRAIN
	SQEIOLink    = sys.IOSQE_FLAGS_IO_LINK
	SQEAsync     = sys.IOSQE_FLAGS_ASYNC
	// SQEBufferSelect makes the kernel pick the buffer from the group in
	// the SQE's buf_group when data arrives (PrepRecvMultishot sets it).
	SQEBufferSelect = sys.IOSQE_FLAGS_BUFFER_SELECT
)

// CQE flags (IORING_CQE_F_*).
const (
	// CQEFBuffer: the request took a provided buffer, whose id is in the
	// upper 16 bits of the flags (BufferID).
	CQEFBuffer = 1 << 0
	// CQEFMore: more CQEs will follow for this user_data (SEND_ZC posts
	// its result with F_MORE, then a notification).
	CQEFMore = 1 << 1
	// CQEFNotif marks the notification CQE of a zero-copy send: the kernel
	// no longer references the buffer.
	CQEFNotif = 1 << 3
	// CQEFSockNonempty: after this receive the socket still had data to
	// read (6.0).
	CQEFSockNonempty = 1 << 2
	// CQEBufferShift is where the buffer id starts in a CQE's flags.
	CQEBufferShift = 16
)

// Constants the iouring-go ABI lacks (include/uapi/linux/io_uring.h).
const (
	setupRDisabled      = sys.IORING_SETUP_R_DISABLED
	setupSubmitAll      = sys.IORING_SETUP_SUBMIT_ALL
	setupCoopTaskrun    = sys.IORING_SETUP_COOP_TASKRUN
	setupTaskrunFlag    = sys.IORING_SETUP_TASKRUN_FLAG
	setupCQSize         = sys.IORING_SETUP_CQSIZE
	setupClamp          = sys.IORING_SETUP_CLAMP
	sqCQOverflow        = sys.IORING_SQ_CQ_OVERFLOW
	sqTaskrun           = 1 << 2
	enterGetEvents      = sys.IORING_ENTER_FLAGS_GETEVENTS
	enterExtArg         = 1 << 3
	registerProbe       = sys.IORING_REGISTER_PROBE
	registerRestrict    = sys.IORING_REGISTER_RESTRICTIONS
	registerEnable      = sys.IORING_REGISTER_ENABLE_RINGS
	restrictSQEOp       = 1
	restrictSQEFlags    = 2
	probeOpSupported    = 1
	offSQRing           = sys.IORING_OFF_SQ_RING
	offCQRing           = sys.IORING_OFF_CQ_RING
	offSQEs             = sys.IORING_OFF_SQES
	asyncCancelAll      = 1 << 0
	asyncCancelFD       = 1 << 1
	asyncCancelAny      = 1 << 2
	recvsendPollFirst   = 1 << 0
	recvMultishot       = 1 << 1
	sendZCReportUsage   = 1 << 3
	recvsendBundle      = 1 << 4
	setupSingleIssuer   = 1 << 12
	setupDeferTaskrun   = 1 << 13
	registerRingFDs     = 20
	unregisterRingFDs   = 21
	registerPbufRing    = 22
	unregisterPbufRing  = 23
	restrictRegisterOp  = 0
	enterRegisteredRing = 1 << 4
)

// Feature bits (IORING_FEAT_*) read back from setup.
const (
	FeatSingleMmap    = sys.IORING_FEAT_SINGLE_MMAP
	FeatNoDrop        = sys.IORING_FEAT_NODROP
	FeatSubmitStable  = sys.IORING_FEAT_SUBMIT_STABLE
	FeatFastPoll      = sys.IORING_FEAT_FAST_POLL
	FeatExtArg        = 1 << 8
	FeatNativeWorkers = 1 << 9
	FeatCQESkip       = 1 << 11
	// FeatRecvsendBundle: IORING_RECVSEND_BUNDLE is accepted by RECV and
	// SEND with provided buffers (6.10).
	FeatRecvsendBundle = 1 << 14
)

// Zero-copy flags for PrepSendZC's zcFlags (placed in sqe->ioprio).
const (
	// SendZCReportUsage asks the kernel to say in the notification whether
	// it had to copy after all (CQE res has NotifUsageZCCopied set).
	SendZCReportUsage = sendZCReportUsage
	// NotifUsageZCCopied is set in the notification's res when the data was
	// copied rather than sent from the pinned pages.
	NotifUsageZCCopied = 1 << 31
	// RecvsendPollFirst skips the first send attempt and arms poll at once.
	RecvsendPollFirst = recvsendPollFirst
)

type restriction struct {
	opcode uint16
	arg    uint8 // register_op, sqe_op or sqe_flags
	resv   uint8
	resv2  [3]uint32
}

type probeOp struct {
	op    uint8
	resv  uint8
	flags uint16
	resv2 uint32
}

type probe struct {
	lastOp uint8
	opsLen uint8
	resv   uint16
	resv2  [3]uint32
	ops    [256]probeOp
}

type geteventsArg struct {
	sigmask     uint64
	sigmaskSz   uint32
	minWaitUsec uint32
	ts          uint64
}

// bufEntry is struct io_uring_buf, one entry of a provided buffer ring.
// The ring has no header: struct io_uring_buf_ring overlays the tail on
// the first entry's resv.
type bufEntry struct {
	addr uint64
	len  uint32
	bid  uint16
	resv uint16 // entry 0: the ring's tail
}

// bufReg is struct io_uring_buf_reg, the argument of
// IORING_(UN)REGISTER_PBUF_RING.
type bufReg struct {
	ringAddr    uint64
	ringEntries uint32
	bgid        uint16
	flags       uint16
	resv        [3]uint64
}

// rsrcUpdate is struct io_uring_rsrc_update, the argument of
// IORING_(UN)REGISTER_RING_FDS: data is the ring fd, offset the slot
// (^0: any free one; the kernel writes back the one it took).
type rsrcUpdate struct {
	offset uint32
	resv   uint32
	data   uint64
}
