package socket

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/uringsend/uringsend/metrics"
	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/sendop"
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

	socks  atomic.Pointer[[]*Socket] // copy-on-write: lookups take no lock
	slotMu sync.Mutex                // serializes add/remove
	free   []uint32
	gen    atomic.Uint32

	raise    raiseQueue
	flushMu  sync.Mutex
	flushQ   []*Socket // batching sockets whose queue waits for a wire
	flushSp  []*Socket
	idle     atomic.Bool           // the reaper is done with AfterHarvest and will wait
	stale    atomic.Uint64         // CQEs whose user_data matched no live send (must stay 0)
	reaperG  atomic.Uint64         // the reaper's goroutine id, once it has harvested
	unmetric func()                // removes the ring's metrics source
	zcNotifs atomic.Uint64         // zero-copy notifications seen
	lat      *metrics.LatencyBatch // the reaper's; nil without metrics
}

// user_data: gen<<32 | socket index. gen keeps below tmoBit, which tags
// the CQE of a send's linked timeout, and so below the ring's reserved
// values.
const (
	genMask = 1<<30 - 1
	tmoBit  = 1 << 30
	rxBit   = 1 << 31 // a receive's CQE (recv_linux.go), not a send's
)

func newURing(eng *Engine, cfg ring.Config, m *metrics.Metrics) (*uring, error) {
	r, err := ring.New(cfg)
	if err != nil {
		return nil, err
	}
	u := &uring{eng: eng, r: r}
	u.socks.Store(new([]*Socket))
	var onBatch func(int)
	u.lat = m.NewLatencyBatch(false)
	if m != nil {
		onBatch = m.ObserveReaperBatch
		u.unmetric = m.AddRingSource(func() metrics.RingStats {
			st := r.Stats()
			return metrics.RingStats{Enters: st.Enters, Submitted: st.Submitted, Reaped: st.Reaped, Overflows: st.Overflows}
		})
	}
	if _, err := r.StartReaper(u, 0, onBatch); err != nil {
		u.close()
		return nil, err
	}
	return u, nil
}

func (u *uring) close() error {
	if u.unmetric != nil {
		u.unmetric()
	}
	return u.r.Close()
}

func (u *uring) add(s *Socket) {
	u.slotMu.Lock()
	defer u.slotMu.Unlock()
	old := *u.socks.Load()
	socks := make([]*Socket, len(old), max(len(old)+1, 2*len(old)))
	copy(socks, old)
	if n := len(u.free); n > 0 {
		s.w.idx = u.free[n-1]
		u.free = u.free[:n-1]
		socks[s.w.idx] = s
	} else {
		s.w.idx = uint32(len(socks))
		socks = append(socks, s)
	}
	u.socks.Store(&socks)
}

func (u *uring) remove(s *Socket) {
	u.slotMu.Lock()
	defer u.slotMu.Unlock()
	old := *u.socks.Load()
	socks := append([]*Socket(nil), old...)
	socks[s.w.idx] = nil
	u.free = append(u.free, s.w.idx)
	u.socks.Store(&socks)
}

// lookup returns the socket whose SQE is tagged ud, or nil if stale.
func (u *uring) lookup(ud uint64) *Socket {
	socks := *u.socks.Load()
	idx := uint32(ud)
	if int(idx) >= len(socks) {
		return nil
	}
	s := socks[idx]
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
		err := u.prep(s)
		if err == nil {
			return
		}
		if !u.onResult(s, -int32(errnoOf(err)), false) {
			return
		}
	}
}

func (u *uring) prep(s *Socket) error {
	e := s.q.Head() // stable: only the wire's owner pops
	op := sendop.OpOf(e)
	if s.w.wire == 1 {
		if errno := op.Check(); errno != 0 {
			return errno
		}
	}
	gen := (u.gen.Add(1) & genMask) | 1 // never 0, never reserved
	s.w.gen.Store(gen)
	ud := uint64(gen)<<32 | uint64(s.w.idx)
	bytes := s.w.bytes
	timeout := time.Duration(0)
	if s.w.wire == 1 {
		bytes = op.Remaining()
		timeout = op.Timeout()
	}
	zc := s.w.zc && bytes >= u.eng.zcThreshold && timeout == 0
	u.r.LockSQ()
	var sqe *ring.SQE
	err := u.r.Reserve(2)
	if err == nil {
		sqe, err = u.r.GetSQE()
	}
	if err == nil && timeout > 0 {
		// The send and its LINK_TIMEOUT go in one submission: the
		// timeout starts when the send starts and cancels it.
		op.Prep(sqe, s.fd)
		if s.w.pollFirst {
			s.w.pollFirst = false
			sqe.SetIoprio(ring.RecvsendPollFirst)
		}
		sqe.SetFlags(ring.SQEIOLink)
		sqe.SetUserData(ud)
		s.w.ts = unix.NsecToTimespec(int64(timeout))
		s.w.waitSend, s.w.waitTmo, s.w.tmoFired = true, true, false
		if sqe, err = u.r.GetSQE(); err == nil {
			ring.PrepLinkTimeout(sqe, &s.w.ts)
			sqe.SetUserData(ud | tmoBit<<32)
		}
		u.r.UnlockSQ()
		return err
	}
	if err == nil {
		switch {
		case s.w.wire == 1 && zc:
			op.PrepZC(sqe, s.fd, ring.SendZCReportUsage)
		case s.w.wire == 1:
			op.Prep(sqe, s.fd)
		case zc:
			ring.PrepSendmsgZC(sqe, s.fd, &s.w.msg, sendop.StreamFlags, ring.SendZCReportUsage)
		case s.w.gso.segs > 0:
			// A GSO wire: MSG_WAITALL means nothing to a datagram.
			ring.PrepSendmsg(sqe, s.fd, &s.w.msg, unix.MSG_NOSIGNAL)
		default:
			ring.PrepSendmsg(sqe, s.fd, &s.w.msg, sendop.StreamFlags)
		}
		if s.w.pollFirst {
			s.w.pollFirst = false
			sqe.SetIoprio(sqeIoprio(zc) | ring.RecvsendPollFirst)
		}
		sqe.SetUserData(ud)
	}
	u.r.UnlockSQ()
	return err
}

// onResult settles a wire's result and queues the completions for the
// reaper to raise; it reports whether a next wire is to be launched.
func (u *uring) onResult(s *Socket, res int32, timedOut bool) (more bool) {
	return s.settle(res, timedOut)
}

func (u *uring) afterInlineHarvest() {
	if u.r.Pending() > 0 {
		u.r.Submit()
	}
	if u.raise.needsWake() {
		u.r.Wake() // only the reaper raises Completed
	}
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
			u.stale.Add(1)
			continue
		}
		res := c.Result()
		if s.w.waitTmo || s.w.waitSend {
			// A send with a linked timeout: settle when both CQEs are in.
			if c.UserData()>>32&tmoBit != 0 {
				s.w.waitTmo = false
				s.w.tmoFired = res == -int32(syscall.ETIME)
			} else {
				s.w.waitSend = false
				s.w.sendRes = res
			}
			if s.w.waitTmo || s.w.waitSend {
				continue
			}
			if s.w.sendRes == -int32(syscall.EAGAIN) && !s.w.tmoFired {
				u.retry(s)
				continue
			}
			if u.onResult(s, s.w.sendRes, s.w.tmoFired) {
				u.launch(s)
			}
			continue
		}
		switch flags := c.Flags(); {
		case flags&ring.CQEFNotif != 0:
			// A zero-copy send's notification: the kernel is done with
			// the buffers, so the wire's sends may complete now. If the
			// kernel had to copy after all, zero-copy only costs here.
			u.zcNotifs.Add(1)
			if uint32(res)&ring.NotifUsageZCCopied != 0 && u.eng.zcMode == ZeroCopyAuto {
				s.w.zc = false
			}
			res = s.w.zcRes
		case flags&ring.CQEFMore != 0:
			// A zero-copy send's result: hold it until the notification.
			s.w.zcRes = res
			continue
		}
		if res == -int32(syscall.EAGAIN) {
			u.retry(s)
			continue
		}
		if u.onResult(s, res, false) {
			u.launch(s)
		}
	}
}

// retry resubmits a wire that came back with EAGAIN. io_uring returns it
// for an O_NONBLOCK socket (every Go socket) when it had to punt the send
// to its worker threads instead of arming poll; nothing was sent. The new
// SQE asks for poll first (IORING_RECVSEND_POLL_FIRST), so it waits for
// the socket to take data.
func (u *uring) retry(s *Socket) {
	s.w.pollFirst = true
	u.launch(s)
}

// AfterHarvest implements ring.Handler: the reaper raises Completed and
// flushes batching sockets here, until neither has work; then it marks
// itself idle (about to wait), and whoever queues work after that wakes it.
func (u *uring) AfterHarvest() {
	if u.reaperG.Load() == 0 {
		u.reaperG.Store(goid())
	}
	for {
		u.idle.Store(false)
		u.raise.raiseAll(u.eng, u.lat)
		u.flushAll()
		u.idle.Store(true)
		if !u.hasFlush() && !u.raise.needsWake() {
			return
		}
	}
}

// scheduleFlush asks the reaper to put s's queue on the wire.
func (u *uring) scheduleFlush(s *Socket) {
	u.flushMu.Lock()
	u.flushQ = append(u.flushQ, s)
	u.flushMu.Unlock()
	if u.idle.Load() {
		u.r.Wake()
	}
}

func (u *uring) hasFlush() bool {
	u.flushMu.Lock()
	n := len(u.flushQ)
	u.flushMu.Unlock()
	return n > 0
}

// flushAll launches a wire for every socket waiting for one; the reaper's
// next io_uring_enter submits them all at once.
func (u *uring) flushAll() {
	u.flushMu.Lock()
	q := u.flushQ
	u.flushQ, u.flushSp = u.flushSp[:0], q[:0]
	u.flushMu.Unlock()
	for i, s := range q {
		q[i] = nil
		s.mu.Lock()
		s.flush = false
		if s.closing && s.w.wire == 0 && s.q.Len() > 0 {
			s.mu.Unlock()
			u.abortCorked(s)
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

// abortCorked completes the sends of a closing batching socket that never
// reached the wire.
func (u *uring) abortCorked(s *Socket) {
	var aborted, raise sendop.Queue
	var drained chan struct{}
	s.mu.Lock()
	if s.w.wire == 0 {
		for e := s.q.Pop(); e != nil; e = s.q.Pop() {
			aborted.Push(e)
		}
		drained, s.drained = s.drained, nil
	}
	reserved := aborted.Len()
	s.unraised.Add(int64(reserved))
	s.mu.Unlock()
	for e := aborted.Pop(); e != nil; e = aborted.Pop() {
		op := sendop.OpOf(e)
		if op.Complete(syscall.ECANCELED) {
			raise.Push(e)
		}
	}
	s.handOver(&raise, reserved)
	if drained != nil {
		close(drained)
	}
}

// cancel asks the kernel to abort every request on s's fd.
func (u *uring) cancel(s *Socket) {
	u.r.LockSQ()
	sqe, err := u.r.GetSQE()
	if err == nil {
		ring.PrepCancelFD(sqe, s.fd)
		sqe.SetUserData(ring.CancelUserData)
	}
	u.r.UnlockSQ()
	u.r.Submit()
}

// progress harvests inline so a Close called on the reaper goroutine (from
// Completed) still sees its cancelled sends finish.
func (u *uring) progress() {
	u.r.Submit()
	u.r.TryHarvest(u)
	u.afterInlineHarvest()
}

// sqeIoprio is what a send's SQE carries in ioprio before poll-first is
// added: the zero-copy flags, or nothing.
func sqeIoprio(zc bool) uint16 {
	if zc {
		return ring.SendZCReportUsage
	}
	return 0
}
