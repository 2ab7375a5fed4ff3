package ring

import "iter"

// Multishot receive flags for PrepRecvMultishot's SQE (sqe->ioprio).
const (
	// RecvMultishot keeps a RECV armed: it posts a CQE with CQEFMore for
	// every receive, each into a buffer of its own from the group (6.0).
	RecvMultishot = recvMultishot
	// RecvsendBundle lets one receive fill several buffers of the group
	// in ring order (6.10, FeatureRecvBundle).
	RecvsendBundle = recvsendBundle
)

// PrepRecvMultishot prepares a multishot IORING_OP_RECV (6.0) on socket fd
// that takes its buffers from buffer group bgid (a BufRing) as data
// arrives: an armed request holds no buffer. With bundle (6.10,
// FeatureRecvBundle) one CQE may cover several buffers (Bundle).
//
// Each receive posts a CQE with CQEFBuffer and the buffer's id (BufferID)
// and res = bytes received, and CQEFMore while the request stays armed.
// The request ends with a CQE without CQEFMore:
//   - res 0: end of stream (the peer shut down its side);
//   - -ENOBUFS: the group had no buffer left. Data stays in the socket;
//     recycle buffers and arm again — nothing is lost or reordered;
//   - -ECANCELED: cancelled (PrepCancel by user_data, PrepCancelFD);
//   - another -errno (ECONNRESET, ...);
//   - res > 0 without CQEFMore: the kernel stopped the request with
//     data (an overflowing CQ, for example); arm again.
//
// The CQEs of one request arrive in the order of the stream.
func PrepRecvMultishot(sqe *SQE, fd int, bgid uint16, bundle bool) {
	sqe.PrepOperation(OpRecv, int32(fd), 0, 0, 0)
	flags := uint16(RecvMultishot)
	if bundle {
		flags |= RecvsendBundle
	}
	sqe.SetIoprio(flags)
	sqe.SetFlags(SQEBufferSelect)
	sqe.SetBufGroup(bgid)
}

// BufferID returns the id of the provided buffer c names, and false when
// c carries none (CQEFBuffer clear: an error, end of stream, or a request
// that took no buffer).
func BufferID(c *CQE) (bid uint16, ok bool) {
	f := c.Flags()
	return uint16(f >> CQEBufferShift), f&CQEFBuffer != 0
}

// Bundle walks the buffers that a receive of n bytes filled, starting at
// bid (its CQE's BufferID): each buffer's id and its bytes, up to Size
// each, in stream order. For a receive without bundle it yields bid once.
//
// A bundle takes consecutive entries of the ring, which hold consecutive
// ids only if buffers were recycled in id order; so Bundle follows the
// ring from where bid was put rather than counting ids. That entry and
// the ones after it are rewritten only after this bundle's buffers have
// been recycled, given two rules: buffers are recycled only after the CQE
// that named them has been read, and the CQEs that take buffers from the
// group are read in the order the kernel posted them (true for receives
// the kernel runs from poll, as on sockets; do not force them to io-wq
// with SQEAsync). So walk a bundle when its CQE is handled, before
// recycling any of its buffers, and keep the ids for Recycle.
func (br *BufRing) Bundle(bid uint16, n int) iter.Seq2[uint16, []byte] {
	return func(yield func(uint16, []byte) bool) {
		pos := uint16(br.pos[bid].Load())
		for i := 0; n > 0 && i < len(br.ring); i++ {
			if i > 0 {
				bid = br.ring[pos&br.mask].bid
			}
			take := min(n, br.size)
			if !yield(bid, br.Buf(bid, take)) {
				return
			}
			n -= take
			pos++
		}
	}
}
