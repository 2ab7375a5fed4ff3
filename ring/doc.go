// Package ring is one io_uring instance and the reaper goroutine that
// harvests its completions. It knows nothing of sockets: it sets the ring
// up, restricts it, hands out submission queue entries, submits, and
// delivers completion queue entries to a Handler.
//
// # Setup
//
// New creates the ring with IORING_SETUP_CQSIZE (CQ default 4 × SQ, since a
// zero-copy send posts two CQEs), COOP_TASKRUN|TASKRUN_FLAG and SUBMIT_ALL
// where the kernel has them, reads the features back and probes opcode
// support (Supports). By default the ring is created disabled, limited with
// IORING_REGISTER_RESTRICTIONS to DefaultOps and AllowedSQEFlags, and then
// enabled: a process that is tricked into submitting another opcode gets
// -EACCES in the CQE. Kernels 5.6–5.9 refuse IORING_SETUP_R_DISABLED
// (EINVAL): there New makes an unrestricted ring rather than none, and
// Has(FeatureRestrictions) and Restricted report false. Where io_uring is
// missing or refused (ENOSYS; EPERM from kernel.io_uring_disabled or
// seccomp; ENOMEM) New returns a *FeatureError that Is ErrNotSupported,
// naming the feature and the minimum kernel.
//
// # Features
//
// New also finds out what the kernel has, once per ring, before anyone
// else can use it: opcodes from IORING_REGISTER_PROBE (Supports), and the
// capabilities that are not opcodes (Has, with a Feature) with one request
// each that only a kernel with the feature answers the way it does — an
// ASYNC_CANCEL by fd on fd -1 (-EBADF, where an older kernel refuses the
// flag with -EINVAL), a RECV with POLL_FIRST|MSG_DONTWAIT on a socket with
// a byte to read (-EAGAIN before any attempt; older kernels refuse the
// ioprio or read the byte), a zero-copy send with REPORT_USAGE on fd -1,
// IORING_REGISTER_RESTRICTIONS on an enabled ring (-EBADFD) — or from the
// IORING_FEAT_* bits. The requests use opcodes DefaultOps allows, complete
// at once, take microseconds in all, and are not counted in Stats. A probe
// that cannot decide counts as missing. Require turns a missing feature
// into a *FeatureError that names it and its minimum kernel and Is
// ErrNotSupported. Config.DisableFeatures and Config.DisableOps make a
// ring answer as an older kernel would, so that every fallback can be
// tested on a new one; the ring takes its own fallbacks then too.
//
// # Submitting
//
// The call sequence follows liburing: LockSQ, GetSQE, a Prep function,
// SQE.SetUserData, UnlockSQ, then Submit (or SubmitAndWait). The submission
// lock serializes submitters, which may be any goroutines; UnlockSQ
// publishes the new tail, and any io_uring_enter made afterwards — by this
// goroutine, another submitter or the reaper — submits them. So SQEs of many
// goroutines leave in one system call when they meet. GetSQE on a full SQ
// submits what is queued and retries, backing off while the kernel answers
// EBUSY or EAGAIN, and gives up with ErrSQFull after a bounded time; it
// never spins forever and never hands out an entry the kernel still owns.
// GetSQEPair takes a request and its linked timeout together, both or
// neither, so a chain always reaches the kernel whole and in one
// submission: after closing has begun it takes nothing rather than leave
// a request with IOSQE_IO_LINK and no timeout. (Reserve, its predecessor,
// guarantees the GetSQE calls it covers.)
//
// # Completing
//
// Every published SQE posts exactly one final CQE (one without CQEFMore).
// The completion lock makes harvesting exclusive: its holder calls
// PeekBatch, which copies CQEs out and advances the head at once, so the
// kernel can reuse the slots. When the CQ is empty but the kernel has set
// IORING_SQ_CQ_OVERFLOW (NODROP keeps overflowed CQEs in a kernel list),
// PeekBatch flushes them into the CQ with io_uring_enter(GETEVENTS): no
// completion is lost. A submitter may harvest inline with TryHarvest right
// after Submit; the reaper harvests everything else. Each CQE is therefore
// handed to the Handler exactly once, by whichever side got the lock. The
// one exception is the kernel's: when it cannot even allocate an overflow
// entry it drops the CQE and says so with EBADR (ErrCQELost) and its
// dropped counter (Dropped). Lost then stays true for the ring's life, so
// that the engine can stop waiting for completions that will never come.
//
// # Lock order
//
// The completion lock (LockCQ) comes before the submission lock (LockSQ).
// A Handler runs under the completion lock and may submit, so nobody may
// wait for the completion lock while holding the submission lock: no
// LockCQ, SubmitAndHarvest or PeekAndHandle between LockSQ and UnlockSQ
// (TryHarvest only tries the lock, so it is safe). Close takes both, in
// this order, after the reaper has left. Close and StartReaper take no
// lock of their own: they meet in the ring's state word (state_linux.go).
//
// # The reaper
//
// StartReaper runs one goroutine per ring that harvests in batches, calls
// Handler.AfterHarvest outside the lock, and then submits what is queued
// and waits for the next completion in a single io_uring_enter. Wake posts
// a NOP that makes it return. Close stops new submissions, cancels what is
// in flight (IORING_ASYNC_CANCEL_ANY), lets the reaper deliver every
// remaining CQE, waits for it to exit, and only then unmaps the rings and
// closes the fd, so the kernel never writes to memory that was freed.
// Without FeatureCancelAny (before 5.19) Close cancels nothing: what does
// not finish within its drain budget is abandoned, and closing the fd
// makes the kernel cancel it without a CQE anyone sees.
//
// user_data values from ReservedUserData up are the ring's own and are
// never handed to the Handler.
package ring
