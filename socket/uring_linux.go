package socket

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/uringsend/uringsend/internal/op"
	"github.com/uringsend/uringsend/ring"
	"golang.org/x/sys/unix"
)

// uring is the io_uring backend of one ring: the ring, its reaper, and the
// user_data table. Each socket has at most one SQE on the wire — the
// "wire" at the front of its queue: the inline send, or a batch of queued
// sends coalesced into one SENDMSG. user_data is gen<<32 | index of the
// socket in socks, never a pointer; gen changes with every submission, so
// a stale CQE cannot be taken for a live one.
type uring struct {
	eng *Engine
	r   *ring.Ring

	socks slotTable // user_data's slot index → Socket: slots_linux.go
	gen   atomic.Uint32

	raise    raiseQueue
	flushMu  sync.Mutex
	flushQ   []*Socket // batching sockets whose queue waits for a wire
	flushSp  []*Socket
	armQ     []*Socket // stream receives to arm from the reaper's thread (stream_linux.go); under flushMu
	armSp    []*Socket
	sweep    sweeper       // pin caches of idle sockets: sweep_linux.go
	idle     atomic.Bool   // the reaper is done with AfterHarvest and will wait
	stale    atomic.Uint64 // CQEs whose user_data matched no live send (must stay 0)
	unmetric func()        // removes the ring's metrics source
	zcNotifs atomic.Uint64 // zero-copy notifications seen
	zcMsg    bool          // the kernel has SENDMSG_ZC (6.1), not only SEND_ZC
	zcFlags  uint16        // ioprio of a zero-copy send: REPORT_USAGE where known (6.2)
	lat      latencyBatch  // the reaper's; empty without an Observer

	poolMu sync.Mutex // stream receives' pool, made on first use (stream_linux.go)
	pool   *chunkPool
}

// user_data: gen<<32 | socket index. gen keeps below tmoBit, which tags
// the CQE of a send's linked timeout, and so below the ring's reserved
// values.
const (
	genMask = 1<<30 - 1
	tmoBit  = 1 << 30
	rxBit   = 1 << 31 // a receive's CQE (recv_linux.go), not a send's
)

func newURing(eng *Engine, cfg ring.Config, m Observer) (*uring, error) {
	r, err := ring.New(cfg)
	if err != nil {
		return nil, err
	}
	// A send that io_uring answers with EAGAIN (an O_NONBLOCK socket that
	// would block) is resubmitted with IORING_RECVSEND_POLL_FIRST; without
	// it the engine could only spin, so such kernels (< 5.19) use epoll.
	if err := r.Require(ring.FeaturePollFirst); err != nil {
		r.Close()
		return nil, err
	}
	u := &uring{eng: eng, r: r, zcMsg: r.Supports(ring.OpSendmsgZC)}
	if r.Has(ring.FeatureZCReportUsage) {
		u.zcFlags = ring.SendZCReportUsage // auto mode learns when the kernel copied
	}
	var onBatch func(int)
	if m != nil {
		u.lat.observe, u.lat.flush = m.Latencies(false)
		onBatch = m.ObserveReaperBatch
		u.unmetric = m.AddRingSource(func() RingStats {
			st := r.Stats()
			return RingStats{Enters: st.Enters, Submitted: st.Submitted, Reaped: st.Reaped, Overflows: st.Overflows, SQFull: st.SQFull}
		})
	}
	if _, err := r.StartReaper(u, 0, onBatch); err != nil {
		u.close()
		return nil, err
	}
	return u, nil
}

func (u *uring) close() error {
	u.sweep.stop()
	if u.unmetric != nil {
		u.unmetric()
	}
	err := u.r.Close()
	u.poolMu.Lock()
	if u.pool != nil {
		u.pool.closeRing()
	}
	u.poolMu.Unlock()
	return err
}

func (u *uring) add(s *Socket) { s.w.idx = u.socks.put(s) }

func (u *uring) remove(s *Socket) { u.socks.del(s.w.idx) }

// lookup returns the socket whose SQE is tagged ud, or nil if stale.
func (u *uring) lookup(ud uint64) *Socket {
	s := u.socks.get(uint32(ud))
	if s == nil || s.w.gen.Load() != uint32(ud>>32)&^tmoBit {
		return nil
	}
	return s
}

// start is SendAsync's inline path: its send is alone at the front of s's
// queue (wire == 1). Submit, then peek.
func (u *uring) start(s *Socket) {
	u.launch(s)
	// The peek: a send on an idle socket completes inside io_uring_enter,
	// so its CQE is usually there right after it. Waiting for the
	// completion lock (the reaper holds it only while it hands CQEs over)
	// keeps such sends synchronous.
	u.r.SubmitAndHarvest(u)
	u.afterInlineHarvest()
}

// launch publishes the SQE for s's wire (not yet entering the kernel).
// A failure to get an SQE completes the wire's first op with the error,
// and launch tries again with what is left.
func (u *uring) launch(s *Socket) {
	for {
		ud, err := u.prep(s)
		if err == nil {
			if s.life.closing() {
				// Close may have looked for the wire before it was
				// published: it cancels what it found, the launcher
				// what it publishes after Close began.
				u.cancelUD(ud)
			}
			return
		}
		if !u.onResult(s, -int32(errnoOf(err)), false) {
			return
		}
	}
}

// prep publishes the SQE(s) of s's wire and returns its user_data.
func (u *uring) prep(s *Socket) (ud uint64, err error) {
	kind, timeout, err := u.kindOf(s)
	if err != nil {
		return 0, err
	}
	gen := u.nextGen()
	s.w.gen.Store(gen)
	ud = uint64(gen)<<32 | uint64(s.w.idx)
	s.w.kind, s.w.expect, s.w.res, s.w.tmoFired = kind, 1, 0, false
	u.r.LockSQ()
	defer u.r.UnlockSQ()
	if kind == kindTimed {
		return ud, u.prepTimed(s, ud, timeout)
	}
	sqe, err := u.r.GetSQE()
	if err != nil {
		return 0, err
	}
	o := s.q.Head() // stable: only the wire's owner pops
	var prio uint16
	switch kind {
	case kindSend:
		o.Prep(sqe, s.fd)
	case kindSendZC:
		o.PrepZC(sqe, s.fd, u.zcFlags)
		prio = u.zcFlags
	case kindBatch:
		ring.PrepSendmsg(sqe, s.fd, &s.w.msg, op.StreamFlags)
	case kindBatchZC:
		ring.PrepSendmsgZC(sqe, s.fd, &s.w.msg, op.StreamFlags, u.zcFlags)
		prio = u.zcFlags
	case kindGSO: // MSG_WAITALL means nothing to a datagram
		ring.PrepSendmsg(sqe, s.fd, &s.w.msg, unix.MSG_NOSIGNAL)
	}
	u.pollFirst(s, sqe, prio)
	sqe.SetUserData(ud)
	return ud, nil
}

// kindOf decides how s's wire goes out, and for a send with a Timeout
// what is left of it: the Timeout bounds the whole send, so a piece after
// the first (a long BufferList, a continuation, a retry) gets the rest.
func (u *uring) kindOf(s *Socket) (kind wireKind, timeout time.Duration, err error) {
	if s.w.wire > 1 {
		switch {
		case s.w.gso.segs > 0:
			return kindGSO, 0, nil
		case u.zcMsg && u.zeroCopy(s, s.w.bytes): // SENDMSG_ZC came a release after SEND_ZC (6.1, 6.0)
			return kindBatchZC, 0, nil
		}
		return kindBatch, 0, nil
	}
	o := s.q.Head()
	if errno := o.Check(); errno != 0 {
		return 0, 0, errno
	}
	if timeout, timed := o.TimeLeft(); timed {
		if timeout <= 0 {
			return 0, 0, syscall.ETIMEDOUT
		}
		return kindTimed, timeout, nil // never zero-copy
	}
	if (u.zcMsg || o.IsBuffer()) && u.zeroCopy(s, o.Remaining()) {
		return kindSendZC, 0, nil
	}
	return kindSend, 0, nil
}

// zeroCopy reports whether a wire of that many bytes on s goes zero-copy.
func (u *uring) zeroCopy(s *Socket, bytes int) bool {
	return s.w.zc && bytes >= u.eng.zcThreshold
}

// prepTimed publishes a send and its LINK_TIMEOUT in one submission: the
// timeout starts when the send starts and cancels it. Two CQEs are due.
func (u *uring) prepTimed(s *Socket, ud uint64, timeout time.Duration) error {
	sqe, tmo, err := u.r.GetSQEPair()
	if err != nil {
		return err
	}
	s.q.Head().Prep(sqe, s.fd)
	u.pollFirst(s, sqe, 0)
	sqe.SetFlags(ring.SQEIOLink)
	sqe.SetUserData(ud)
	s.w.ts = unix.NsecToTimespec(int64(timeout))
	s.w.deadline = u.eng.now() + int64(timeout)
	ring.PrepLinkTimeout(tmo, &s.w.ts)
	tmo.SetUserData(ud | tmoBit<<32)
	s.w.expect = 2
	return nil
}

// pollFirst adds IORING_RECVSEND_POLL_FIRST to a resubmitted wire's SQE
// (whose ioprio already holds prio) when its last try answered EAGAIN.
func (u *uring) pollFirst(s *Socket, sqe *ring.SQE, prio uint16) {
	if s.w.pollFirst {
		s.w.pollFirst = false
		sqe.SetIoprio(prio | ring.RecvsendPollFirst)
	}
}

// nextGen returns a fresh generation for a wire's user_data: never 0, and
// all of genMask's space (2^30 submissions before one comes back).
func (u *uring) nextGen() uint32 {
	for {
		if g := u.gen.Add(1) & genMask; g != 0 {
			return g
		}
	}
}

// onResult settles a wire's result and queues the completions for the
// reaper to raise; it reports whether a next wire is to be launched.
func (u *uring) onResult(s *Socket, res int32, timedOut bool) (more bool) {
	return s.settle(res, timedOut)
}

// afterInlineHarvest follows an inline peek, which may have taken other
// sockets' completions: only the reaper raises Completed, so it is woken
// for them — unless it is still inside AfterHarvest (not idle), whose
// last look at the queue, after it marks itself idle, finds them. Waking a
// reaper that sleeps in io_uring_enter costs a NOP's SQE and CQE; under
// connection churn these were a third of the ring's traffic.
func (u *uring) afterInlineHarvest() {
	if u.r.Pending() > 0 {
		u.r.Submit()
	}
	u.wakeForRaises()
}

// submitOutside submits what a goroutine other than the reaper launched
// without peeking at the result (WithAsyncCompletions, a receive handed
// off): a launch that failed at once (refused, SQ full) completed its op
// already, and only the reaper raises it.
func (u *uring) submitOutside() {
	u.r.Submit()
	u.wakeForRaises()
}

// wakeForRaises wakes an idle reaper when completions wait to be raised:
// whoever queues them outside the reaper calls it (an inline peek, or a
// request refused before it reached the kernel, which completes at once).
func (u *uring) wakeForRaises() {
	if u.idle.Load() && u.raise.needsWake() {
		u.r.Wake()
	}
}

// ReaperHasWork implements ring.WorkReporter: the reaper has Completed
// handlers to raise or batching sockets to flush. Whoever gives it either
// wakes it when it may be waiting (afterInlineHarvest, scheduleFlush), so
// a Wake an inline peek consumed needs passing on only for these.
func (u *uring) ReaperHasWork() bool {
	return u.hasFlush() || u.raise.needsWake()
}

// HandleCQEs implements ring.Handler: it runs with the completion lock
// held, on the reaper or on a goroutine peeking inline.
func (u *uring) HandleCQEs(cqes []ring.CQE) {
	for i := range cqes {
		c := &cqes[i]
		if c.UserData()>>32&rxBit != 0 {
			u.onRecv(c)
			continue
		}
		s := u.lookup(c.UserData())
		if s == nil {
			u.staleCQE(c)
			continue
		}
		if u.absorb(s, c) {
			u.finish(s)
		}
	}
}

// absorb records one of the CQEs of s's wire and reports whether it was
// the last one the wire expects: the send's result (followed, when the
// kernel says so, by a zero-copy notification), a notification, or the
// result of a LINK_TIMEOUT.
func (u *uring) absorb(s *Socket, c *ring.CQE) (last bool) {
	res := c.Result()
	switch flags := c.Flags(); {
	case c.UserData()>>32&tmoBit != 0:
		s.w.tmoFired = res == -int32(syscall.ETIME) || u.timeoutLost(s, res)
	case flags&ring.CQEFNotif != 0:
		// The kernel is done with the buffers, so the wire's sends may
		// complete now. If it had to copy after all, zero-copy only
		// costs: auto mode stops using it on this socket.
		u.zcNotifs.Add(1)
		if uint32(res)&ring.NotifUsageZCCopied != 0 && u.eng.zcMode == ZeroCopyAuto {
			s.w.zc = false
		}
	default:
		s.w.res = res
		if flags&ring.CQEFMore != 0 {
			s.w.expect++ // a zero-copy send's notification follows
		}
	}
	s.w.expect--
	return s.w.expect == 0
}

// timeoutLost reports, for the CQE of a send's LINK_TIMEOUT, a timeout
// that fired without cancelling the send, and cancels the send itself.
// When the thread that submitted the pair has exited, the kernel ends the
// timeout with ECANCELED as its timer fires and leaves the send waiting
// for its peer (task work of a dead task), so a Timeout would bound
// nothing. The signs: ECANCELED while the send's own CQE is still due,
// past the deadline, on a socket that is not closing (whose cancel ends
// both). The send then completes with TimedOut like any other.
func (u *uring) timeoutLost(s *Socket, res int32) bool {
	if res != -int32(syscall.ECANCELED) || s.w.expect != 2 || s.life.closing() || u.eng.now() < s.w.deadline {
		return false
	}
	u.cancelUD(uint64(s.w.gen.Load())<<32 | uint64(s.w.idx))
	return true
}

// finish acts on a wire whose CQEs are all in: it retries one that did
// nothing (retriable), sends again by copy one the socket refused to send
// zero-copy, and settles every other.
func (u *uring) finish(s *Socket) {
	res, timedOut := s.w.res, s.w.tmoFired
	switch {
	case retriable(res) && !timedOut:
		u.retry(s, res)
	case res == -int32(syscall.EOPNOTSUPP) && s.w.kind.zc():
		// The socket refuses zero-copy (6.18 does for accepted TCP
		// sockets: no SOCK_SUPPORT_ZC): nothing was sent; the same wire
		// goes again as a copy, and so does every later one.
		s.w.zc = false
		u.launch(s)
	default:
		if u.onResult(s, res, timedOut) {
			u.launch(s)
		}
	}
}

// retry resubmits a wire that came back with EAGAIN. io_uring returns it
// for an O_NONBLOCK socket (every Go socket) when it had to punt the send
// to its worker threads instead of arming poll; nothing was sent. The new
// SQE asks for poll first (IORING_RECVSEND_POLL_FIRST), so it waits for
// the socket to take data. A closing socket's wire is not resubmitted: it
// completes as cancelled.
func (u *uring) retry(s *Socket, res int32) {
	if s.life.closing() {
		if u.onResult(s, finalResult(res, true, false), false) {
			u.launch(s)
		}
		return
	}
	s.w.pollFirst = true
	u.launch(s)
}

// staleCQE records a CQE whose user_data matches no live request: a
// completion nobody will raise, which must never happen. It is counted
// (Engine stats and uringsend_stale_completions_total) and, in builds
// with the uringsend_debug tag, panics.
func (u *uring) staleCQE(c *ring.CQE) {
	u.stale.Add(1)
	if u.eng.m != nil {
		u.eng.m.AddStaleCompletion()
	}
	if debugChecks {
		panic(fmt.Sprintf("socket: CQE matches no request: user_data %#x res %d flags %#x", c.UserData(), c.Result(), c.Flags()))
	}
}

// AfterHarvest implements ring.Handler: the reaper raises Completed and
// flushes batching sockets here, until neither has work; then it marks
// itself idle (about to wait), and whoever queues work after that wakes it.
func (u *uring) AfterHarvest() {
	for {
		u.idle.Store(false)
		u.raise.raiseAll(u.eng, u.lat, u.r.ReaperThread())
		u.flushAll()
		u.armAll()
		u.idle.Store(true)
		if !u.hasFlush() && !u.raise.needsWake() {
			return
		}
	}
}

// scheduleFlush asks the reaper to put s's queue on the wire.
func (u *uring) scheduleFlush(s *Socket) { u.handToReaper(&u.flushQ, s) }

// handToReaper appends s to the reaper's queue *q (flushQ, armQ; taken
// by takeQueued) and wakes the reaper if it is done with its round.
func (u *uring) handToReaper(q *[]*Socket, s *Socket) {
	u.flushMu.Lock()
	*q = append(*q, s)
	u.flushMu.Unlock()
	if u.idle.Load() {
		u.r.Wake()
	}
}

func (u *uring) hasFlush() bool {
	u.flushMu.Lock()
	n := len(u.flushQ) + len(u.armQ)
	u.flushMu.Unlock()
	return n > 0
}

// takeQueued empties the reaper's queue *q (flushQ, armQ) and returns
// what it held; *q gets the array of *spare, the one returned last time,
// so neither queue allocates in steady state.
func (u *uring) takeQueued(q, spare *[]*Socket) []*Socket {
	u.flushMu.Lock()
	taken := *q
	*q, *spare = (*spare)[:0], taken[:0]
	u.flushMu.Unlock()
	return taken
}

// flushAll launches a wire for every socket waiting for one; the reaper's
// next io_uring_enter submits them all at once.
func (u *uring) flushAll() {
	q := u.takeQueued(&u.flushQ, &u.flushSp)
	for i, s := range q {
		q[i] = nil
		s.mu.Lock()
		s.flush = false
		if s.life.closing() && s.w.wire == 0 && s.q.Len() > 0 {
			s.mu.Unlock()
			s.abortQueued()
			continue
		}
		launch := s.w.wire == 0 && s.q.Len() > 0
		if launch {
			s.buildWire()
		}
		s.mu.Unlock()
		if launch {
			u.launch(s)
		}
	}
}

// cancelWires asks the kernel to cancel the wires of a closing socket:
// the send's, the receive's, or both, by user_data (IORING_OP_ASYNC_CANCEL,
// 5.5), which names the request itself and never a later user of the
// descriptor's number. A wire published after Close looked is cancelled
// by its launcher (see launch).
func (u *uring) cancelWires(s *Socket, send, rx bool) {
	u.r.LockSQ()
	if send {
		u.prepCancel(uint64(s.w.gen.Load())<<32 | uint64(s.w.idx))
	}
	if rx {
		u.prepCancel(uint64(s.rx.gen.Load()|rxBit)<<32 | uint64(s.w.idx))
	}
	u.r.UnlockSQ()
	u.r.Submit()
}

// cancelUD cancels the request tagged ud; its submission goes with the
// next io_uring_enter.
func (u *uring) cancelUD(ud uint64) {
	u.r.LockSQ()
	u.prepCancel(ud)
	u.r.UnlockSQ()
}

// prepCancel takes an SQE for the cancel of ud, with the submission lock
// held. A ring that is closing cancels everything itself.
func (u *uring) prepCancel(ud uint64) {
	if sqe, err := u.r.GetSQE(); err == nil {
		ring.PrepCancel(sqe, ud)
		sqe.SetUserData(ring.CancelUserData)
	}
}
