package ring

// Config sets up a Ring. The zero value is a restricted 256-entry ring.
// It is one definition for every platform, so that portable code that
// fills it in compiles everywhere; only Linux acts on it.
type Config struct {
	// Entries is the SQ size, rounded up to a power of two by the kernel.
	// Default 256.
	Entries uint32
	// CQEntries is the CQ size; default 4 × Entries (zero-copy sends post
	// two CQEs each, and completions of earlier batches may still be there).
	// It must be at least Entries.
	CQEntries uint32
	// NoCoopTaskrun leaves out IORING_SETUP_COOP_TASKRUN|TASKRUN_FLAG.
	// Cooperative task running saves an IPI per completion but lets task
	// work wait until the submitting thread next enters the kernel.
	NoCoopTaskrun bool
	// FloatingReaper lets the reaper goroutine move between OS threads. By
	// default it is locked to one for its life (runtime.LockOSThread):
	// io_uring runs a request's task work on the thread that submitted
	// it, so what the reaper submits completes on the thread that waits
	// for it, instead of waking an arbitrary Go thread per completion.
	// The cost: each ring holds an OS thread for its life (asleep while
	// the ring is idle), which a program with a few engines never notices
	// and one that makes hundreds of rings might.
	FloatingReaper bool
	// Unrestricted skips IORING_REGISTER_RESTRICTIONS: every opcode and
	// SQE flag is allowed. By default the ring is created disabled, limited
	// to the opcodes of DefaultOps and ExtraOps that the kernel has, to
	// AllowedSQEFlags and to the io_uring_register opcodes of
	// allowedRegisterOps (provided buffer rings and registered ring fds;
	// every other one, such as registered files and buffers, is refused),
	// then enabled. A kernel without restrictions (5.6–5.9) gets an
	// unrestricted ring anyway: see Restricted and FeatureRestrictions.
	// On an unrestricted ring do not set IOSQE_CQE_SKIP_SUCCESS:
	// Inflight and Close count on one final CQE per SQE.
	Unrestricted bool
	// ExtraOps are opcodes allowed besides DefaultOps.
	ExtraOps []uint8
	// DisableFeatures makes Has report these features missing, as on an
	// older kernel, so that tests and experiments can take every fallback
	// on a new one. The ring itself then does without them too (Close
	// without FeatureCancelAny, SubmitAndWait without FeatureExtArg,
	// RegisterBufRing without FeatureBufRing).
	DisableFeatures []Feature
	// DisableOps makes Supports report these opcodes missing, for the same
	// purpose. Without OpSend New fails as on a kernel before 5.6. A
	// restricted ring still allows them: only the answer changes.
	DisableOps []uint8
}
