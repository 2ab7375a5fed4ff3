package ring

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sqFullBudget bounds how long GetSQE waits for the kernel to take entries
// from a full SQ before it gives up with ErrSQFull.
const sqFullBudget = 2 * time.Second

// LockSQ takes the submission lock. Between LockSQ and UnlockSQ the caller
// may take SQEs with GetSQE and fill them; UnlockSQ publishes them.
func (r *Ring) LockSQ() { r.sqMu.Lock() }

// UnlockSQ publishes the SQEs taken since LockSQ to the kernel (they are
// submitted by the next io_uring_enter, whoever makes it) and releases the
// submission lock. Every SQE taken must be fully prepared by then.
func (r *Ring) UnlockSQ() {
	r.reserved = 0
	r.publishLocked()
	r.sqMu.Unlock()
}

func (r *Ring) publishLocked() {
	if r.closed() {
		return
	}
	if n := r.localTail - *r.sqTail; n != 0 {
		r.inflight.Add(int64(n))
		atomic.StoreUint32(r.sqTail, r.localTail)
	}
}

// GetSQE returns a zeroed SQE; the submission lock must be held. When the
// SQ is full it publishes and submits what is queued and tries again;
// if the kernel will not take entries for a while it returns ErrSQFull.
// After Close has begun it returns ErrClosed, except for entries a
// successful Reserve under the same lock still covers.
func (r *Ring) GetSQE() (*SQE, error) {
	if r.reserved > 0 {
		// Reserve made the room: this cannot fail, and Close's cancel,
		// which waits for the submission lock, covers the entry.
		r.reserved--
	} else if r.closing() {
		return nil, ErrClosed
	}
	return r.getSQE()
}

// Reserve makes sure n SQEs can be taken without a flush in between, so
// that a linked chain (send + LINK_TIMEOUT) reaches the kernel in one
// submission. The submission lock must be held. The next n GetSQE calls
// before UnlockSQ then succeed even if Close begins in between, so a chain
// is never cut short. Errors: ErrClosed, ErrSQFull, ErrCQELost, or n out
// of range.
//
// Deprecated: for a request and its linked timeout use GetSQEPair, which
// takes both entries or neither.
func (r *Ring) Reserve(n int) error {
	if n <= 0 || uint32(n) > r.sqEntries {
		return errorf("Reserve(%d): SQ has %d entries", n, r.sqEntries)
	}
	if r.closing() {
		return ErrClosed
	}
	if err := r.reserveLocked(uint32(n)); err != nil {
		return err
	}
	r.reserved = uint32(n)
	return nil
}

// GetSQEPair returns two zeroed, consecutive SQEs — a request and its
// IORING_OP_LINK_TIMEOUT, say — or neither; the submission lock must be
// held. Room for both is made at once (when the SQ is short of it, what is
// queued is submitted first, as GetSQE does), so the two leave in the same
// submission and the first never goes out with IOSQE_IO_LINK and no
// second. Errors are GetSQE's: ErrClosed once Close has begun, ErrSQFull
// when the kernel would not take entries, ErrCQELost; in every case no
// entry was taken. An SQ of one entry cannot hold a pair.
func (r *Ring) GetSQEPair() (*SQE, *SQE, error) {
	if r.closing() {
		return nil, nil, ErrClosed
	}
	if r.sqEntries < 2 {
		return nil, nil, errorf("GetSQEPair: SQ has %d entries", r.sqEntries)
	}
	if err := r.reserveLocked(2); err != nil {
		return nil, nil, err
	}
	a := &r.sqes[r.localTail&r.sqMask]
	b := &r.sqes[(r.localTail+1)&r.sqMask]
	r.localTail += 2
	a.Reset()
	b.Reset()
	return a, b, nil
}

func (r *Ring) getSQE() (*SQE, error) {
	if err := r.reserveLocked(1); err != nil {
		return nil, err
	}
	sqe := &r.sqes[r.localTail&r.sqMask]
	r.localTail++
	sqe.Reset()
	return sqe, nil
}

func (r *Ring) reserveLocked(n uint32) error {
	var b backoff
	for {
		if r.closed() {
			return ErrClosed
		}
		head := atomic.LoadUint32(r.sqHead)
		if r.sqEntries-(r.localTail-head) >= n {
			return nil
		}
		// Full: hand what is queued to the kernel. Without SQPOLL the
		// kernel consumes the entries inside the call.
		r.stats.sqFull.Add(1)
		r.publishLocked()
		_, errno := r.enter(r.localTail-head, 0, 0, nil, 0)
		switch errno {
		case 0, unix.EINTR:
		case unix.EBUSY, unix.EAGAIN:
			// The kernel wants its CQ drained first; the reaper does
			// that on its own. Back off, but not forever.
			if !b.sleep() {
				return ErrSQFull
			}
		case unix.EBADR:
			return ErrCQELost
		default:
			return errorf("io_uring_enter: %w", errno)
		}
	}
}

// backoff paces the retries of a GetSQE on a full SQ whose kernel answers
// EBUSY or EAGAIN: 10µs, doubling up to 5ms, for at most sqFullBudget.
type backoff struct {
	start time.Time
	wait  time.Duration
}

// sleep waits before the next retry; false means the budget is spent.
func (b *backoff) sleep() bool {
	if b.start.IsZero() {
		b.start, b.wait = time.Now(), 10*time.Microsecond
	} else if time.Since(b.start) > sqFullBudget {
		return false
	}
	time.Sleep(b.wait)
	b.wait = min(2*b.wait, 5*time.Millisecond)
	return true
}

// pending is the number of published SQEs the kernel has not consumed.
func (r *Ring) pending() uint32 {
	return atomic.LoadUint32(r.sqTail) - atomic.LoadUint32(r.sqHead)
}

// Submit hands every published SQE to the kernel with one io_uring_enter
// and returns how many it consumed. Sends on idle sockets usually complete
// inside this call, so their CQEs are ready to peek when it returns.
// With nothing to submit it makes no system call. After Close it returns
// ErrClosed.
func (r *Ring) Submit() (int, error) {
	n, err := r.submit()
	r.unparkForInflight()
	return n, err
}

// SubmitAndHarvest is Submit followed at once by the inline peek: it
// submits, takes the completion lock and hands h every CQE now in the CQ —
// the sends that completed inside the system call among them. Only what is
// still in flight afterwards wakes a reaper parked in Go, so sends that
// complete inline never involve it.
func (r *Ring) SubmitAndHarvest(h Handler) (int, error) {
	n, err := r.submit()
	if err == ErrClosed {
		return n, err
	}
	r.cqMu.Lock()
	r.PeekAndHandle(h)
	r.cqMu.Unlock()
	r.passWake(h)
	return n, err
}

func (r *Ring) submit() (int, error) {
	if !r.acquire() {
		return 0, ErrClosed
	}
	defer r.release()
	for {
		toSubmit := r.pending()
		if toSubmit == 0 {
			return 0, nil
		}
		n, errno := r.enter(toSubmit, 0, 0, nil, 0)
		if retry, err := enterError(errno); !retry {
			return n, err
		}
	}
}

// enterError is what Submit and SubmitAndWait make of io_uring_enter's
// errno: EINTR is retried, EBADR is ErrCQELost, others are returned as
// they are.
func enterError(errno syscall.Errno) (retry bool, err error) {
	switch errno {
	case 0:
		return false, nil
	case unix.EINTR:
		return true, nil
	case unix.EBADR:
		return false, ErrCQELost
	}
	return false, errno
}

// SubmitAndWait submits what is published and waits until at least
// minComplete CQEs are in the CQ, or timeout passes (0: no timeout; needs
// IORING_FEAT_EXT_ARG, 5.11). It returns the number of SQEs submitted. On
// timeout the error is unix.ETIME. EINTR is retried.
func (r *Ring) SubmitAndWait(minComplete uint32, timeout time.Duration) (int, error) {
	flags := uint32(enterGetEvents)
	var argp unsafe.Pointer
	var argsz uintptr
	if timeout > 0 {
		if err := r.Require(FeatureExtArg); err != nil {
			return 0, err
		}
		w := waitArgs.Get().(*waitArg)
		defer waitArgs.Put(w)
		argp, argsz = w.set(timeout)
		flags |= enterExtArg
	}
	r.stats.waits.Add(1)
	for {
		// Only reading the tail needs the mapping; waiting in the kernel
		// does not, and Close must not wait for waiters.
		if !r.acquire() {
			return 0, ErrClosed
		}
		toSubmit := r.pending()
		r.release()
		n, errno := r.enter(toSubmit, minComplete, flags, argp, argsz)
		if retry, err := enterError(errno); !retry {
			return n, err
		}
	}
}

// waitArg is the io_uring_getevents_arg of a timed wait and the timespec
// it points to. The kernel is given the timespec's address as a number,
// which the runtime does not update when it moves a goroutine's stack (it
// may, in any call between taking the address and the system call): so
// both live in the heap, which does not move, recycled through a pool.
type waitArg struct {
	arg geteventsArg
	ts  unix.Timespec
}

var waitArgs = sync.Pool{New: func() any { return new(waitArg) }}

// set makes w a wait of at most timeout and returns the argument and its
// size for io_uring_enter with IORING_ENTER_EXT_ARG.
func (w *waitArg) set(timeout time.Duration) (unsafe.Pointer, uintptr) {
	w.ts = unix.NsecToTimespec(int64(timeout))
	w.arg = geteventsArg{ts: uint64(uintptr(unsafe.Pointer(&w.ts)))}
	return unsafe.Pointer(&w.arg), unsafe.Sizeof(w.arg)
}

func (r *Ring) enter(toSubmit, minComplete, flags uint32, arg unsafe.Pointer, argsz uintptr) (int, syscall.Errno) {
	return r.enterVia(r.fd, toSubmit, minComplete, flags, arg, argsz)
}

// enterVia is enter through fd: the ring's, or with enterRegisteredRing
// in flags the index the calling thread registered it under, which
// spares the kernel the fd lookup (and its reference) of each call.
func (r *Ring) enterVia(fd int, toSubmit, minComplete, flags uint32, arg unsafe.Pointer, argsz uintptr) (int, syscall.Errno) {
	r.stats.enters.Add(1)
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit),
		uintptr(minComplete), uintptr(flags), uintptr(arg), argsz)
	if e := r.enterFault.Load(); e != 0 {
		n, errno = 0, syscall.Errno(e)
	}
	if errno == 0 && n > 0 {
		r.stats.submitted.Add(uint64(n))
	}
	if errno == unix.EBADR {
		// The kernel may say so only once: remember it for Lost.
		r.lost.Store(true)
	}
	return int(n), errno
}

// Wake makes the reaper run a round: a reaper parked in Go is unparked
// without a system call; otherwise Wake posts a NOP whose CQE makes
// io_uring_enter return and is never handed to the handler — one at a
// time: while a Wake's NOP is on its way, another Wake does nothing. An
// inline harvester (TryHarvest, SubmitAndHarvest) that consumes the NOP
// first passes the Wake on (see WorkReporter), since the reaper may have
// been about to sleep; Close wakes it again too. After Close it returns
// ErrClosed.
func (r *Ring) Wake() error {
	if r.closed() {
		return ErrClosed
	}
	if r.unparkReaper() {
		return nil // parked in Go: no system call needed
	}
	if r.state.Or(stateWaking)&stateWaking != 0 {
		return nil // a Wake's NOP is on its way: its CQE wakes the reaper
	}
	r.LockSQ()
	sqe, err := r.getSQE()
	if err == nil {
		PrepNop(sqe)
		sqe.SetUserData(wakeUserData)
	}
	r.UnlockSQ()
	if err != nil {
		r.clear(stateWaking)
		return err
	}
	_, err = r.Submit()
	return err
}
