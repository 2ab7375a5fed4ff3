package ring

import (
	"runtime"
	"sync/atomic"
	"time"

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
	// user callbacks.
	AfterHarvest()
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
}

// drainBudget bounds how long Close waits for cancelled requests to post
// their CQEs before it closes the ring anyway.
var drainBudget = 10 * time.Second

// StartReaper starts the ring's reaper goroutine; a ring has at most one.
// batchSize bounds the CQEs handed over per HandleCQEs call (0: 256).
// onBatch, if not nil, is told each batch's size.
func (r *Ring) StartReaper(h Handler, batchSize int, onBatch func(n int)) (*Reaper, error) {
	if batchSize <= 0 {
		batchSize = 256
	}
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	if r.closing.Load() {
		return nil, ErrClosed
	}
	if r.reaper != nil {
		return nil, errorf("reaper already started")
	}
	rp := &Reaper{r: r, h: h, buf: make([]CQE, batchSize), done: make(chan struct{}), batches: onBatch}
	r.reaper = rp
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
	r.passWake()
	return n, true
}

// passWake wakes the reaper again if an inline harvest consumed the CQE of
// a Wake meant for it: a reaper about to sleep in io_uring_enter would
// otherwise sleep through the event the Wake announced. Called without the
// completion lock (Wake may have to wait for the SQ).
func (r *Ring) passWake() {
	if r.wakeSeen.Load() && r.wakeSeen.CompareAndSwap(true, false) {
		r.Wake()
	}
}

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

func (rp *Reaper) loop() {
	defer close(rp.done)
	r := rp.r
	for {
		r.cqMu.Lock()
		if r.closed.Load() {
			r.cqMu.Unlock()
			return
		}
		rp.r.harvestLocked(rp.h, rp.buf, rp.batches)
		r.wakeSeen.Store(false) // awake: any Wake has done its job
		r.cqMu.Unlock()
		rp.h.AfterHarvest()
		// Leave once Close has sealed the SQ (no caller's SQE can
		// follow) and everything published has been handed over, or
		// when Close gives up on what is left.
		if r.abandon.Load() || r.sealed.Load() && r.inflight.Load() <= 0 {
			return
		}
		// Nothing in the kernel: park in Go instead of io_uring_enter, so
		// that sends completing inline (harvested by their submitters)
		// never wake this goroutine. enter and Wake unpark it.
		if r.park() {
			continue
		}
		// Submit what is queued and wait for a completion in one call.
		r.stats.waits.Add(1)
		_, errno := r.enter(r.pending(), 1, enterGetEvents, nil, 0)
		switch errno {
		case 0, unix.EINTR, unix.EAGAIN, unix.EBUSY, unix.ETIME:
		default:
			// EBADR (lost CQEs) or worse: nothing to wait on reliably;
			// keep harvesting without spinning hot.
			time.Sleep(time.Millisecond)
		}
	}
}

// Close stops accepting SQEs, cancels what is in flight, lets the reaper
// hand over every remaining CQE (so each operation still completes exactly
// once), stops the reaper, unmaps the rings and closes the fd. Without a
// reaper the remaining CQEs are discarded. Other methods may race with
// Close: once it has begun, GetSQE, GetSQEPair and Reserve return
// ErrClosed; once it has unmapped the rings, Submit, SubmitAndWait and
// Wake return ErrClosed and Ready, PeekBatch and TryHarvest find nothing.
// Close must not be called from the Handler: it waits for the reaper.
//
// The cancel is IORING_ASYNC_CANCEL_ANY (5.19). Without FeatureCancelAny
// Close cancels nothing itself: requests get the drain budget to finish,
// what is left then is abandoned (its CQEs never reach the Handler) and
// closing the fd makes the kernel cancel it. Callers that must see every
// completion on such kernels cancel their requests before Close.
func (r *Ring) Close() error {
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	if r.closed.Load() {
		return nil
	}
	r.closing.Store(true)
	if r.sqes != nil {
		r.cancelInflight()
		deadline := time.Now().Add(drainBudget)
		if rp := r.reaper; rp != nil {
			r.waitReaper(rp, deadline)
		}
		// Without a reaper, discard what completes. With one, only the
		// wake-up above can be left: the reaper may have harvested the
		// last request and left before it was posted.
		r.drain(deadline)
	}
	// The lock order is cqMu → sqMu: a Handler holds cqMu and may
	// submit (sqMu). Taking them the other way round deadlocks against it.
	r.cqMu.Lock()
	r.sqMu.Lock()
	r.closed.Store(true)
	for r.users.Load() != 0 {
		runtime.Gosched() // a Submit or Ready still reading the rings
	}
	if r.cqOverflow != nil && atomic.LoadUint32(r.cqOverflow) != 0 {
		r.lost.Store(true) // Lost outlives the mapping Dropped reads
	}
	r.unmap()
	err := unix.Close(r.fd)
	r.sqMu.Unlock()
	r.cqMu.Unlock()
	return err
}

// waitReaper waits for the reaper to hand over the last CQE and leave, so
// that it never touches the rings after they are unmapped. It wakes the
// reaper again whenever nothing is in flight: an inline harvester
// (TryHarvest) may have consumed the wake-up CQE between the reaper's last
// look at the ring and its sleep in io_uring_enter. Past deadline it tells
// the reaper to abandon what is still in flight (a request the kernel
// would not cancel; closing the fd cancels it).
func (r *Ring) waitReaper(rp *Reaper, deadline time.Time) {
	r.Wake()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-rp.done:
			return
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			r.abandon.Store(true)
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

// cancelInflight submits IORING_ASYNC_CANCEL_ANY if anything is in
// flight, and seals the SQ. It decides under the submission lock: a
// submitter that took an SQE before closing was set has published it by
// the time the lock is free, so Inflight counts it, the cancel leaves after
// it, and no caller's SQE can follow (GetSQE sees closing).
//
// Without FeatureCancelAny (before 5.19) it cancels nothing: the ring does
// not know the user_data of what is in flight, and the kernel could only
// refuse CANCEL_ANY. Close then gives the requests its drain budget to
// finish, abandons the rest, and closing the fd cancels them in the
// kernel; their CQEs never reach the Handler. Callers that must see every
// completion cancel their own requests (by user_data) before Close.
func (r *Ring) cancelInflight() {
	r.LockSQ()
	r.sealed.Store(true)
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

// idle reports that nothing is published, in the kernel, or being closed.
func (r *Ring) idle() bool {
	return r.inflight.Load() <= 0 && r.pending() == 0 && !r.closing.Load()
}

// park blocks the reaper while the ring is idle and reports whether it
// parked. The flag is set before the second look, and wakers clear it with
// a compare-and-swap before they send, so a waker either sees the reaper
// parked and wakes it, or the reaper sees the waker's work and stays up.
func (r *Ring) park() bool {
	if !r.idle() {
		return false
	}
	r.parked.Store(true)
	if !r.idle() && r.parked.CompareAndSwap(true, false) {
		return false
	}
	<-r.unpark // from the waker that cleared the flag
	r.stats.parks.Add(1)
	return true
}

// unparkReaper wakes a parked reaper; it reports whether one was parked.
func (r *Ring) unparkReaper() bool {
	if r.parked.Load() && r.parked.CompareAndSwap(true, false) {
		r.unpark <- struct{}{}
		return true
	}
	return false
}
