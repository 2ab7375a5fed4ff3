package loadgen

import (
	"bytes"
	"errors"

	"github.com/uringsend/uringsend/sendop"
)

// Request–response ("uringsend rr"). A connection has one request in
// flight: its receive (ReceiveAsync into a buffer of Size bytes) is posted
// first, then its send (SendAsync of the message), so that a message
// larger than the socket buffers cannot deadlock against an echo peer
// that waits for its own sends. The request is over when both its send
// has completed and Size bytes have come back; whichever completion
// comes last records the round trip and starts the next request (closed
// loop) or frees the connection for its pacer (open loop).
//
// parts counts what the request still waits for (2: the send and the
// echo). A failure swaps in rrFailed: the first to see a positive count
// ends the request, later completions of the same request find it
// negative and do nothing.
const rrFailed = -1 << 20

// errEndOfStream: the echo peer closed the connection.
var errEndOfStream = errors.New("the peer closed the connection")

// errEchoMismatch: an echoed byte differed from the one sent.
var errEchoMismatch = errors.New("the echo differed from what was sent")

// rrInit prepares c for requests: slot 0's Args sends, c.rx receives.
func (c *conn) rrInit() {
	sl := &c.slots[0]
	sl.args.Completed = sl.rrSent
	c.rbuf = make([]byte, len(c.r.payload))
	c.rx.Completed = c.rrReceived
	c.rx.SetBuffer(c.rbuf)
}

// rrDrive starts requests on c while they complete inline, at most limit
// (0: no limit). counted says the caller holds a count in r.inflight (of
// the request that just ended): the next request takes it over, so that
// the count does not fall to zero between two requests of a closed loop
// — Run's drain would take that for the end. It returns handoff when the
// limit was reached, parked when the run or the connection is over,
// pending otherwise; the count is held only by a pending request.
func (c *conn) rrDrive(limit int, counted bool) int {
	for i := 0; ; i++ {
		if outcome, ok := c.next(i, limit, counted); !ok {
			return outcome
		}
		counted = true
		if !c.rrLaunch(c.r.now()) {
			return pending
		}
	}
}

// rrLaunch starts one request due at "due"; the caller has admitted it and
// counted it in r.inflight. It returns true if the request is already
// over (recorded, still counted): the caller starts the next or uncounts
// it. If it fails, the count is released.
func (c *conn) rrLaunch(due int64) bool {
	sl := &c.slots[0]
	sl.start = due
	c.got = 0
	c.parts.Store(2)
	c.rx.SetBuffer(c.rbuf)
	pendingRx, err := c.s.ReceiveAsync(&c.rx)
	if err != nil {
		c.kill(err)
		return c.rrFail(sendop.SocketErrorGeneric, true)
	}
	if !pendingRx {
		// Only an error or end of stream completes before the send.
		if c.rrReceivedInline() {
			return true
		}
		if c.parts.Load() <= 0 {
			return false // failed: the connection is dead
		}
	}
	pendingTx, err := c.s.SendAsync(&sl.args)
	if err != nil {
		c.kill(err)
		return c.rrFail(sendop.SocketErrorGeneric, true)
	}
	if pendingTx {
		return false
	}
	c.txSync = true
	return c.rrSendDone()
}

// rrSent is the send's Completed.
func (sl *slot) rrSent(*sendop.Args) {
	c := sl.c
	c.txSync = false
	if c.rrSendDone() {
		c.rrNext()
	}
}

// rrSendDone takes the send's result; true if that ended the request.
func (c *conn) rrSendDone() bool {
	a := &c.slots[0].args
	if se := a.SocketError(); se != sendop.Success {
		if c.aborted(se) {
			return c.rrFail(se, false)
		}
		c.kill(a.Err())
		return c.rrFail(se, true)
	}
	return c.rrPart()
}

// rrReceived is the receive's Completed: take what came, receive the rest
// (inline completions in a loop), and end the request when it is whole.
func (c *conn) rrReceived(*sendop.Args) {
	if c.rrReceivedInline() {
		c.rrNext()
	}
}

// rrReceivedInline handles a completed receive and posts the next one
// while bytes are missing; true if the request ended.
func (c *conn) rrReceivedInline() bool {
	for {
		se, n := c.rx.SocketError(), c.rx.BytesTransferred()
		switch {
		case se != sendop.Success && c.aborted(se):
			return c.rrFail(se, false)
		case se != sendop.Success:
			c.kill(c.rx.Err())
			return c.rrFail(se, true)
		case n == 0:
			c.kill(errEndOfStream)
			return c.rrFail(kindEndOfStream, true)
		case !bytes.Equal(c.rbuf[c.got:c.got+n], c.r.payload[c.got:c.got+n]):
			c.kill(errEchoMismatch)
			return c.rrFail(kindEchoMismatch, true)
		}
		c.got += n
		if c.got == len(c.rbuf) {
			return c.rrPart()
		}
		c.rx.SetBuffer(c.rbuf[c.got:])
		pending, err := c.s.ReceiveAsync(&c.rx)
		if err != nil {
			c.kill(err)
			return c.rrFail(sendop.SocketErrorGeneric, true)
		}
		if pending {
			return false
		}
	}
}

// aborted reports whether se is the run's own shutdown aborting an
// operation.
func (c *conn) aborted(se sendop.SocketError) bool {
	return se == sendop.OperationAborted && (c.r.stopping.Load() || c.dead.Load() || c.retiring.Load())
}

// rrPart counts one part of the request done; true if it was the last,
// in which case the request has been recorded — and is still counted in
// r.inflight, for the next request to take over (rrNext).
func (c *conn) rrPart() bool {
	if c.parts.Add(-1) != 0 {
		return false
	}
	r := c.r
	lat := r.now() - c.slots[0].start
	c.shard.record(sendop.Success, len(c.rbuf), lat, c.txSync, false, r.stopping.Load())
	return true
}

// rrFail ends the request with se unless it has ended already; counted
// says se is an error (not the run's shutdown). It returns false: the
// request is not to be followed by another on this connection.
func (c *conn) rrFail(se sendop.SocketError, counted bool) bool {
	if c.parts.Swap(rrFailed) <= 0 {
		return false
	}
	c.shard.record(se, 0, 0, false, !counted, false)
	c.done()
	return false
}

// rrNext follows a request that ended (still counted) on the engine's
// goroutine: the closed loop starts the next (a bounded number inline),
// the open loop frees the connection for its pacer.
func (c *conn) rrNext() {
	sl := &c.slots[0]
	if c.r.cfg.Rate > 0 {
		c.ready <- sl
		c.done()
		return
	}
	if c.rrDrive(maxInlineResends, true) == handoff {
		c.ready <- sl
	}
}
