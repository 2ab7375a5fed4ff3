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
)

// CQE flags (IORING_CQE_F_*).
const (
	// CQEFMore: more CQEs will follow for this user_data (SEND_ZC posts
	// its result with F_MORE, then a notification).
	CQEFMore = 1 << 1
	// CQEFNotif marks the notification CQE of a zero-copy send: the kernel
	// no longer references the buffer.
	CQEFNotif = 1 << 3
)

// Constants the iouring-go ABI lacks (include/uapi/linux/io_uring.h).
const (
	setupRDisabled    = sys.IORING_SETUP_R_DISABLED
	setupSubmitAll    = sys.IORING_SETUP_SUBMIT_ALL
	setupCoopTaskrun  = sys.IORING_SETUP_COOP_TASKRUN
	setupTaskrunFlag  = sys.IORING_SETUP_TASKRUN_FLAG
	setupCQSize       = sys.IORING_SETUP_CQSIZE
	setupClamp        = sys.IORING_SETUP_CLAMP
	sqCQOverflow      = sys.IORING_SQ_CQ_OVERFLOW
	sqTaskrun         = 1 << 2
	enterGetEvents    = sys.IORING_ENTER_FLAGS_GETEVENTS
	enterExtArg       = 1 << 3
	registerProbe     = sys.IORING_REGISTER_PROBE
	registerRestrict  = sys.IORING_REGISTER_RESTRICTIONS
	registerEnable    = sys.IORING_REGISTER_ENABLE_RINGS
	restrictSQEOp     = 1
	restrictSQEFlags  = 2
	probeOpSupported  = 1
	offSQRing         = sys.IORING_OFF_SQ_RING
	offCQRing         = sys.IORING_OFF_CQ_RING
	offSQEs           = sys.IORING_OFF_SQES
	asyncCancelAll    = 1 << 0
	asyncCancelFD     = 1 << 1
	asyncCancelAny    = 1 << 2
	recvsendPollFirst = 1 << 0
	sendZCReportUsage = 1 << 3
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
