package ring

import (
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Handler receives harvested CQEs.
type Handler interface {
	// HandleCQEs is called with the completion lock held, by the reaper or
	// by a goroutine harvesting inline (TryHarvest). It must not block
	// and must not take the completion lock; it may submit (LockSQ,
	// GetSQE, UnlockSQ): the lock order is completion, then submission.
	HandleCQEs(cqes []CQE)
	// AfterHarvest is called by the reaper goroutine only, without the
	// completion lock, after each round of harvesting: the place to run
	// user callbacks. The reaper is locked to its thread: AfterHarvest may
	// call runtime.LockOSThread and UnlockOSThread in pairs, never an
	// UnlockOSThread more (the reaper would float, and its ring fd stay
	// registered with a thread it left).
	AfterHarvest()
}

// WorkReporter is a Handler that can say whether its reaper has work
// waiting (completions to raise, queues to flush). An inline harvest that
// consumes a Wake's CQE passes the Wake on to the reaper only if it has:
// a Handler that wakes its reaper itself whenever it gives it work (when
// the reaper may be waiting) spares the ring a NOP per stolen Wake.
type WorkReporter interface {
	ReaperHasWork() bool
}

// Reaper is the goroutine that waits for completions of one ring and hands
// them to a Handler in batches.
type Reaper struct {
	r    *Ring
	h    Handler
	buf  []CQE
	done chan struct{}
	// Batches is called with the size of every batch handed over; for
	// metrics. Set before StartReaper returns; nil means none.
	batches func(n int)
	// How waitKernel enters: the ring's fd, or the index registered with
	// the locked reaper's thread.
	fd    int
	flags uint32
}

// drainBudget bounds how long Close waits for cancelled requests to post
// their CQEs before it closes the ring anyway.
var drainBudget = 10 * time.Second

// StartReaper starts the ring's reaper goroutine; a ring has at most one.
// batchSize bounds the CQEs handed over per HandleCQEs call (0: 256).
// onBatch, if not nil, is told each batch's size. After Close has begun it
// returns ErrClosed.
func (r *Ring) StartReaper(h Handler, batchSize int, onBatch func(n int)) (*Reaper, error) {
	if batchSize <= 0 {
		batchSize = 256
	}
	if err := r.claimReaper(); err != nil {
		return nil, err
	}
	rp := &Reaper{r: r, h: h, buf: make([]CQE, batchSize), done: r.reaperDone, batches: onBatch}
	go rp.loop()
	return rp, nil
}

// TryHarvest harvests what is in the CQ into h if the completion lock is
// free, and reports whether it got the lock. It is the inline peek: a
// submitter calls it right after Submit to find completions that happened
// inside the system call.
func (r *Ring) TryHarvest(h Handler) (n int, ok bool) {
	if !r.cqMu.TryLock() {
		return 0, false
	}
	n = r.PeekAndHandle(h)
	r.cqMu.Unlock()
	r.passWake(h)
	return n, true
}

// ReaperThread returns the OS thread id (gettid) the reaper is locked to,
// or 0 when it floats (Config.FloatingReaper) or is not running. A
// goroutine that finds its own thread id here is the reaper, since no
// other goroutine runs on a locked thread: the place to submit requests
// whose completions the reaper should take without waking another thread.
func (r *Ring) ReaperThread() int32 { return r.reaperTID.Load() }

// Reaping reports whether the holder of the completion lock is the
// reaper (not an inline harvester). Only a Handler may ask, inside
// HandleCQEs.
func (r *Ring) Reaping() bool { return r.reaping }

func (r *Ring) harvestLocked(h Handler, buf []CQE, onBatch func(int)) int {
	total := 0
	for {
		n := r.PeekBatch(buf)
		if n > 0 {
			h.HandleCQEs(buf[:n])
			if onBatch != nil {
				onBatch(n)
			}
		}
		total += n
		if n < len(buf) {
			return total
		}
	}
}

// loop is the reaper: a round of harvesting, then a sleep — in Go when
// nothing is in the kernel, else in io_uring_enter — until Close lets it go.
func (rp *Reaper) loop() {
	defer close(rp.done)
	rp.fd, rp.flags = rp.r.fd, enterGetEvents
	if !rp.r.floating {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		rp.r.reaperTID.Store(int32(unix.Gettid()))
		defer rp.r.reaperTID.Store(0)
		if idx, ok := rp.r.registerRingFD(); ok {
			rp.fd, rp.flags = int(idx), enterGetEvents|enterRegisteredRing
			defer rp.r.unregisterRingFD(idx) // on this thread, before it is unlocked
		}
	}
	for rp.round() {
		// Nothing in the kernel: park in Go instead of io_uring_enter, so
		// that sends completing inline (harvested by their submitters)
		// never wake this goroutine. Submit and Wake unpark it.
		if !rp.r.park() {
			rp.waitKernel()
		}
	}
}

// registerRingFD registers the ring's fd with the calling thread (5.18)
// and returns its index; false where the kernel cannot. The registration
// belongs to the thread: only a locked reaper uses it, and unregisters it
// before it leaves, since it holds the ring open until then.
func (r *Ring) registerRingFD() (uint32, bool) {
	if !r.Has(FeatureRegisterRingFD) {
		return 0, false
	}
	upd := rsrcUpdate{offset: ^uint32(0), data: uint64(r.fd)}
	if r.register(registerRingFDs, unsafe.Pointer(&upd), 1) != nil {
		return 0, false
	}
	return upd.offset, true
}

func (r *Ring) unregisterRingFD(idx uint32) {
	upd := rsrcUpdate{offset: idx}
	r.register(unregisterRingFDs, unsafe.Pointer(&upd), 1)
}

// round hands everything in the CQ to the Handler, runs AfterHarvest and
// reports whether the reaper has more to do.
func (rp *Reaper) round() bool {
	r := rp.r
	r.cqMu.Lock()
	if r.closed() {
		r.cqMu.Unlock()
		return false
	}
	r.reaping = true
	r.harvestLocked(rp.h, rp.buf, rp.batches)
	r.reaping = false
	r.clear(stateWakeSeen) // awake: any Wake has done its job
	r.cqMu.Unlock()
	rp.h.AfterHarvest()
	return !r.reaperLeaves()
}

// waitKernel submits what is queued and waits for a completion, in one
// io_uring_enter (through the registered ring fd where it has one).
func (rp *Reaper) waitKernel() {
	r := rp.r
	r.stats.waits.Add(1)
	_, errno := r.enterVia(rp.fd, r.pending(), 1, rp.flags, nil, 0)
	switch {
	case errno == 0, errno == unix.EINTR, errno == unix.EAGAIN, errno == unix.EBUSY, errno == unix.ETIME:
	case rp.flags&enterRegisteredRing != 0 && (errno == unix.EINVAL || errno == unix.EBADF):
		// Not on the thread that registered the index: a Handler
		// unlocked the reaper's thread (more UnlockOSThread than it
		// locked). Wait through the ring's fd from now on.
		rp.fd, rp.flags = r.fd, enterGetEvents
	default:
		// EBADR (lost CQEs) or worse: nothing to wait on reliably;
		// keep harvesting without spinning hot.
		time.Sleep(time.Millisecond)
	}
}

// Close stops accepting SQEs, cancels what is in flight, lets the reaper
// hand over every remaining CQE (so each operation still completes exactly
// once), stops the reaper, unmaps the rings and closes the fd. Without a
// reaper the remaining CQEs are discarded. Other methods may race with
// Close: once it has begun, GetSQE, GetSQEPair, Reserve and StartReaper
// return ErrClosed; once it has unmapped the rings, Submit, SubmitAndWait
// and Wake return ErrClosed and Ready, PeekBatch and TryHarvest find
// nothing. A Close that finds another under way waits for it and returns
// nil. Close must not be called from the Handler: it waits for the reaper.
//
// The cancel is IORING_ASYNC_CANCEL_ANY (5.19). Without FeatureCancelAny
// Close cancels nothing itself: requests get the drain budget to finish,
// what is left then is abandoned (its CQEs never reach the Handler) and
// closing the fd makes the kernel cancel it. Callers that must see every
// completion on such kernels cancel their requests before Close.
func (r *Ring) Close() error {
	first, reaper := r.beginClose()
	if !first {
		<-r.closeDone
		return nil
	}
	defer close(r.closeDone)
	if r.sqes != nil {
		r.quiesce(reaper)
	}
	return r.teardown()
}

// quiesce cancels what is in flight and has every remaining CQE harvested,
// by the reaper if there is one, within the drain budget.
func (r *Ring) quiesce(reaper bool) {
	r.cancelInflight()
	deadline := time.Now().Add(drainBudget)
	if reaper {
		r.waitReaper(deadline)
	}
	// Without a reaper, discard what completes. With one, only the
	// wake-up of waitReaper can be left: the reaper may have harvested
	// the last request and left before it was posted.
	r.drain(deadline)
}

// teardown closes the ring: with both locks held (the lock order is
// cqMu → sqMu: a Handler holds cqMu and may submit, so taking them the
// other way round deadlocks against it) it moves to closed, waits for the
// lock-free users to go, unmaps the rings and closes the fd.
func (r *Ring) teardown() error {
	r.cqMu.Lock()
	defer r.cqMu.Unlock()
	r.sqMu.Lock()
	defer r.sqMu.Unlock()
	r.advance(phaseClosed)
	r.waitUsers() // a Submit or Ready still reading the rings
	if r.cqOverflow != nil && atomic.LoadUint32(r.cqOverflow) != 0 {
		r.lost.Store(true) // Lost outlives the mapping Dropped reads
	}
	r.unmap()
	return unix.Close(r.fd)
}

// waitReaper waits for the reaper to hand over the last CQE and leave, so
// that it never touches the rings after they are unmapped. It wakes the
// reaper again whenever nothing is in flight: an inline harvester
// (TryHarvest) may have consumed the wake-up CQE between the reaper's last
// look at the ring and its sleep in io_uring_enter. Past deadline it tells
// the reaper to abandon what is still in flight (a request the kernel
// would not cancel; closing the fd cancels it).
func (r *Ring) waitReaper(deadline time.Time) {
	r.Wake()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.reaperDone:
			return
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			if r.phase() < phaseAbandoned {
				r.advance(phaseAbandoned)
			}
			r.Wake()
		} else if r.inflight.Load() <= 0 {
			r.Wake()
		}
	}
}

// drain harvests and discards CQEs until nothing is in flight or deadline
// passes.
func (r *Ring) drain(deadline time.Time) {
	for r.inflight.Load() > 0 && time.Now().Before(deadline) {
		if r.features&FeatExtArg != 0 {
			r.SubmitAndWait(1, 10*time.Millisecond)
		} else {
			r.Submit()
			time.Sleep(time.Millisecond)
		}
		r.cqMu.Lock()
		for r.PeekBatch(r.scratch) > 0 {
		}
		r.cqMu.Unlock()
	}
}

// cancelInflight seals the SQ (closing → sealed) and submits
// IORING_ASYNC_CANCEL_ANY if anything is in flight. It decides under the
// submission lock: a submitter that took an SQE before Close began has
// published it by the time the lock is free, so Inflight counts it, the
// cancel leaves after it, and no caller's SQE can follow (GetSQE sees
// closing).
//
// Without FeatureCancelAny (before 5.19) it cancels nothing: the ring does
// not know the user_data of what is in flight, and the kernel could only
// refuse CANCEL_ANY. Close then gives the requests its drain budget to
// finish, abandons the rest, and closing the fd cancels them in the
// kernel; their CQEs never reach the Handler. Callers that must see every
// completion cancel their own requests (by user_data) before Close.
func (r *Ring) cancelInflight() {
	r.LockSQ()
	r.advance(phaseSealed)
	if r.inflight.Load() <= 0 || !r.Has(FeatureCancelAny) {
		r.UnlockSQ()
		return
	}
	sqe, err := r.getSQE()
	if err == nil {
		prepCancelAny(sqe)
		sqe.SetUserData(cancelUserData)
	}
	r.UnlockSQ()
	r.Submit()
}
