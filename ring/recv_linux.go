package ring

import (
	"unsafe"

	sys "github.com/iceber/iouring-go/syscall"
)

// OpRecv is IORING_OP_RECV (5.6): the receive side of a socket engine.
const OpRecv = sys.IORING_OP_RECV

// PrepRecv prepares IORING_OP_RECV (5.6) into b on socket fd with MSG_*
// flags. res: bytes received, 0 when the peer has shut down its side (end
// of stream), or -errno. Put RecvsendPollFirst in the SQE's ioprio to have
// the kernel wait for data before the first attempt. b must stay reachable
// and unmoved until the CQE.
func PrepRecv(sqe *SQE, fd int, b []byte, msgFlags uint32) {
	sqe.PrepOperation(OpRecv, int32(fd), uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))), uint32(len(b)), 0)
	sqe.SetOpFlags(msgFlags)
}
