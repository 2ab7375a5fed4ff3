package socket

import (
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/sendop"
)

// uring is the io_uring backend of one ring: the ring, its reaper, and the
// user_data table. user_data is gen<<32 | index into slots, never a
// pointer; the slot holds the *Args, which keeps it (and through it the
// buffers) reachable while the kernel has it.
type uring struct {
	eng *Engine
	r   *ring.Ring

	slotMu sync.Mutex
	slots  []slot
	free   []uint32
	gen    uint32

	raise   raiseQueue
	stale   atomic.Uint64 // CQEs whose user_data matched no live op (must stay 0)
	reaperG atomic.Uint64 // the reaper's goroutine id, once it has harvested
}

type slot struct {
	gen uint32
	e   *sendop.Args
}

func newURing(eng *Engine, cfg ring.Config) (*uring, error) {
	r, err := ring.New(cfg)
	if err != nil {
		return nil, err
	}
	u := &uring{eng: eng, r: r}
	if _, err := r.StartReaper(u, 0, nil); err != nil {
		r.Close()
		return nil, err
	}
	return u, nil
}

func (u *uring) close() error { return u.r.Close() }

// alloc gives op a user_data of its own for its time on the wire.
func (u *uring) alloc(e *sendop.Args) uint64 {
	u.slotMu.Lock()
	var idx uint32
	if n := len(u.free); n > 0 {
		idx = u.free[n-1]
		u.free = u.free[:n-1]
	} else {
		idx = uint32(len(u.slots))
		u.slots = append(u.slots, slot{})
	}
	// Generations stay below 1<<31 so user_data never reaches the
	// ring's reserved values.
	u.gen = (u.gen + 1) & 0x7fffffff
	if u.gen == 0 {
		u.gen = 1
	}
	u.slots[idx] = slot{gen: u.gen, e: e}
	u.slotMu.Unlock()
	return uint64(u.gen)<<32 | uint64(idx)
}

// lookup returns the op tagged ud, or nil if the tag is stale.
func (u *uring) lookup(ud uint64) *sendop.Args {
	idx, gen := uint32(ud), uint32(ud>>32)
	u.slotMu.Lock()
	defer u.slotMu.Unlock()
	if int(idx) >= len(u.slots) || u.slots[idx].gen != gen {
		return nil
	}
	return u.slots[idx].e
}

func (u *uring) release(ud uint64) {
	idx := uint32(ud)
	u.slotMu.Lock()
	u.slots[idx] = slot{}
	u.free = append(u.free, idx)
	u.slotMu.Unlock()
}

// submit publishes the op's next SQE (not yet entering the kernel).
func (u *uring) submit(s *Socket, e *sendop.Args) error {
	op := sendop.OpOf(e)
	if op.UserData == 0 {
		op.UserData = u.alloc(e)
	}
	u.r.LockSQ()
	sqe, err := u.r.GetSQE()
	if err == nil {
		op.Prep(sqe, s.fd)
		sqe.SetUserData(op.UserData)
	}
	u.r.UnlockSQ()
	return err
}

// start puts the head op of s on the wire. inline: called by SendAsync,
// which then submits and peeks at once.
func (u *uring) start(s *Socket, e *sendop.Args, inline bool) {
	for e != nil {
		op := sendop.OpOf(e)
		errno := op.Check()
		if errno == 0 {
			err := u.submit(s, e)
			if err == nil {
				break
			}
			errno = errnoOf(err)
		}
		e = u.finish(s, e, errno)
	}
	if !inline {
		return
	}
	u.r.Submit()
	// The peek: a send on an idle socket completes inside io_uring_enter,
	// so its CQE is usually there now. Waiting for the completion lock
	// (the reaper holds it only while it hands CQEs over) keeps such
	// sends synchronous.
	u.r.LockCQ()
	u.r.PeekAndHandle(u)
	u.r.UnlockCQ()
	u.afterInlineHarvest()
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
		e := u.lookup(c.UserData())
		if e == nil {
			u.stale.Add(1)
			continue
		}
		op := sendop.OpOf(e)
		s := op.Socket.(*Socket)
		if !op.Advance(c.Result()) {
			// Short send on a stream socket: send the rest now, unless
			// Close cancelled it part way.
			if s.closed.Load() {
				u.start(s, u.finish(s, e, syscall.ECANCELED), false)
				continue
			}
			err := u.submit(s, e)
			if err == nil {
				continue
			}
			u.start(s, u.finish(s, e, errnoOf(err)), false)
			continue
		}
		u.start(s, u.finish(s, e, 0), false)
	}
}

// AfterHarvest implements ring.Handler: the reaper raises Completed here.
func (u *uring) AfterHarvest() {
	if u.reaperG.Load() == 0 {
		u.reaperG.Store(goid())
	}
	u.raise.raiseAll()
}

// finish completes op e of s with errno (0: its recorded result) and
// returns the next op of s to start, if any.
func (u *uring) finish(s *Socket, e *sendop.Args, errno syscall.Errno) *sendop.Args {
	op := sendop.OpOf(e)
	if op.UserData != 0 {
		u.release(op.UserData)
		op.UserData = 0
	}
	raise, next, aborted := s.complete(e, errno)
	if raise {
		u.raise.push(e)
	}
	for _, a := range aborted {
		u.raise.push(a)
	}
	return next
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
	if u.r.TryLockCQ() {
		u.r.PeekAndHandle(u)
		u.r.UnlockCQ()
	}
	u.afterInlineHarvest()
}
