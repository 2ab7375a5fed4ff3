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
// IORING_REGISTER_RESTRICTIONS to DefaultOps, AllowedSQEFlags and the
// io_uring_register opcodes of buffer rings and registered ring fds, and
// then enabled: a process that is tricked into submitting another opcode
// gets -EACCES in the CQE (a kernel before 5.19, which does not know the
// buffer ring opcodes, gets a ring that refuses every register opcode). Kernels 5.6–5.9 refuse IORING_SETUP_R_DISABLED
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
// IORING_REGISTER_RESTRICTIONS on an enabled ring (-EBADFD), a buffer ring
// of one entry registered and unregistered, a multishot RECV on fd -1
// (-EBADF; 5.19 refuses the flag), the ring fd registered with the
// probing thread and unregistered — or from the IORING_FEAT_* bits
// (bundles). Whether the kernel takes IORING_SETUP_DEFER_TASKRUN is asked
// once per process, by setting up and closing a small ring with it. The
// requests use opcodes DefaultOps allows, complete at once, take
// microseconds in all, and are not counted in Stats. A probe
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
// IORING_SQ_CQ_OVERFLOW (NODROP keeps overflowed CQEs in a kernel list) or
// IORING_SQ_TASKRUN (task work that will post completions), PeekBatch
// flushes them into the CQ with io_uring_enter(GETEVENTS): no completion
// is lost. A submitter may harvest inline with TryHarvest right after
// Submit; the reaper harvests everything else. Each CQE is therefore
// handed to the Handler exactly once, by whichever side got the lock. The
// one exception is the kernel's: when it cannot even allocate an overflow
// entry it drops the CQE and says so with EBADR (ErrCQELost) and its
// dropped counter (Dropped). Lost then stays true for the ring's life, so
// that the engine can stop waiting for completions that will never come.
//
// # Ownership and lock order
//
// The SQ's tail and entries are ours and the submission lock's (LockSQ):
// only its holder takes entries and moves the local tail; UnlockSQ stores
// the tail the kernel reads. The SQ's head is the kernel's. The CQ's head
// is ours and the completion lock's (LockCQ): only its holder peeks and
// moves it; the CQ's tail is the kernel's. The rings' remaining readers
// (Submit, SubmitAndWait, Ready, Pending, Dropped) hold neither lock: they
// register as users of the mappings for the moment they read them, and
// Close waits for them before it unmaps.
//
// The completion lock comes before the submission lock. A Handler runs
// under the completion lock and may submit, so nobody may wait for the
// completion lock while holding the submission lock: no LockCQ,
// SubmitAndHarvest or PeekAndHandle between LockSQ and UnlockSQ
// (TryHarvest only tries the lock, so it is safe). Close takes both, in
// this order, after the reaper has left. There is no third lock: Close,
// StartReaper, the reaper's parking and the users of the mappings meet in
// one atomic state word.
//
// # The reaper: parking and waking
//
// StartReaper runs one goroutine per ring. Each round it harvests in
// batches under the completion lock, calls Handler.AfterHarvest outside
// it, and then sleeps until there is more to do. With requests in flight
// or SQEs published it sleeps in the kernel: one io_uring_enter submits
// what is queued and waits for the next completion. With nothing in the
// kernel it parks in Go instead, so that sends completing inline
// (harvested by their submitters) never wake it. Wakers take it out of
// either sleep: Submit, SubmitAndHarvest and PeekAndHandle unpark it when
// they leave requests in flight; Wake unparks it, or when it is not
// parked posts a NOP whose CQE makes io_uring_enter return (and is never
// handed to the Handler). An inline harvester that consumes that CQE
// passes the Wake on, since the reaper may have been about to sleep
// waiting for it. Parking and unparking meet in a flag of the state word
// that exactly one side clears, so a wake-up is never lost and never sent
// twice.
//
// The reaper is locked to one OS thread for its life (unless
// Config.FloatingReaper), which ReaperThread names. io_uring runs a
// request's task work — the step that posts the CQE of a request that
// waited for its socket, every receive of a multishot one — on the thread
// that submitted it: what the reaper's thread submits completes where the
// reaper waits, and what an arbitrary Go thread submitted wakes that
// thread (its signal handling) for each such completion. A caller that
// wants its requests completed by the reaper's thread hands them to the
// reaper to submit (socket's stream receives do; Reaping tells a Handler
// whether the reaper is the one harvesting). The locked thread also
// registers the ring's fd with itself (IORING_REGISTER_RING_FDS, 5.18)
// and waits through the registered index, sparing the kernel a file
// lookup per wait. Measured on uringproxy: with the reaper floating, 15 %
// of its samples were other threads' signal handling and it needed 1.16–
// 1.23× the io.Copy proxy's CPU per request at redis -P 1; locked, 0.80–
// 0.86×.
//
// # Closing
//
// Close walks the ring through the phases of its state word: open →
// closing → sealed → closed, or through abandoned before closed when its
// drain budget runs out. Closing: GetSQE (beyond what a Reserve still
// covers), GetSQEPair, Reserve and StartReaper return ErrClosed. Sealed:
// Close took the submission lock, so every caller's SQE is published and
// counted in Inflight; if anything is in flight it submits
// IORING_ASYNC_CANCEL_ANY.
// The reaper then delivers every remaining CQE and leaves once Inflight is
// zero (abandoned: at once), and Close, which wakes it until it has left,
// goes on only then. Closed: holding both locks, Close waits for the
// users of the mappings to release them, unmaps the rings and closes the
// fd, so the kernel never writes to memory that was freed and nobody
// reads memory that was unmapped; from then on Submit, SubmitAndWait and
// Wake return ErrClosed and Ready, PeekBatch and TryHarvest find nothing.
// Without a reaper Close harvests and discards the remaining CQEs itself.
// Without FeatureCancelAny (before 5.19) Close cancels nothing: what does
// not finish within its drain budget is abandoned, and closing the fd
// makes the kernel cancel it without a CQE anyone sees. A second Close
// waits for the first and returns nil.
//
// user_data values from ReservedUserData up are the ring's own and are
// never handed to the Handler.
//
// # Provided buffers and multishot receive
//
// A receive that must not hold a buffer while its socket is idle asks the
// kernel to pick one when data arrives. RegisterBufRing maps, outside the
// Go heap, a buffer ring (IORING_REGISTER_PBUF_RING, 5.19): Entries
// entries of struct io_uring_buf and as many buffers of Size bytes, all
// in the ring at first, under a buffer group id. PrepRecvMultishot arms
// one RECV (IORING_RECV_MULTISHOT, 6.0) that selects from the group: for
// each receive the kernel takes the buffer at the ring's head, fills it
// and posts a CQE with CQEFBuffer, the buffer's id (BufferID), res = the
// bytes, and CQEFMore while the request stays armed. With
// IORING_RECVSEND_BUNDLE (6.10) one CQE covers several buffers, taken
// from consecutive ring entries: Bundle walks them from the position
// where the first was put, which is consecutive ids only if they came
// back in order. The request ends with a final CQE (no CQEFMore): res 0
// at end of stream, -ENOBUFS when the group ran dry (the data waits in
// the socket; recycle and arm again, nothing is lost or reordered),
// -ECANCELED when cancelled, or data when the kernel stopped it (a bundle
// that emptied the ring). Each request's CQEs come in stream order.
//
// A buffer named by a CQE is the caller's until Recycle (or RecycleBatch)
// writes it at the ring's tail and publishes the tail with a release
// store, which the kernel reads with an acquire load; the head is the
// kernel's. Recycling may happen on any goroutine (a send that finishes)
// and is serialized by the BufRing's own lock, a leaf lock. Bundle relies
// on two rules: buffers are recycled only after the CQE that named them
// was read, and a group's CQEs are read in the order they were posted;
// then the entries a bundle took are not overwritten before its CQE is
// handled. BufRing.Close unregisters and unmaps once no request selects
// from the group. Ring.Close unregisters the buffer rings still
// registered but leaves their memory to BufRing.Close: buffers handed out
// may be read and sent after the ring has closed, and only their owner
// knows when the last comes back. After Close abandoned requests, that
// memory is never unmapped, since the kernel may still write into it.
package ring
