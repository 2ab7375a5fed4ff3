package ring

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	sys "github.com/iceber/iouring-go/syscall"
	"golang.org/x/sys/unix"
)

// DefaultOps is what a socket engine needs: the sends, RECV (receives),
// NOP (wake-ups), ASYNC_CANCEL (Close) and LINK_TIMEOUT (per-send
// deadlines).
var DefaultOps = []uint8{OpNop, OpSend, OpSendmsg, OpSendZC, OpSendmsgZC, OpRecv, OpAsyncCancel, OpLinkTimeout}

// AllowedSQEFlags are the SQE flags a restricted ring accepts: IO_LINK for
// link timeouts, FIXED_FILE for registered files, ASYNC to force io-wq,
// BUFFER_SELECT for receives into a provided buffer ring.
const AllowedSQEFlags = SQEIOLink | SQEFixedFile | SQEAsync | SQEBufferSelect

// allowedRegisterOps are the io_uring_register opcodes a restricted ring
// accepts: provided buffer rings (RegisterBufRing) and registering the
// ring's own fd with a thread. A restricted ring refuses every other one
// with EACCES, as it refuses opcodes outside DefaultOps.
var allowedRegisterOps = []uint8{registerPbufRing, unregisterPbufRing, registerRingFDs, unregisterRingFDs}

// Reserved user_data values: the ring's own wake-ups and cancels. PeekBatch
// never returns them. Callers must keep their user_data below ReservedUserData.
const (
	ReservedUserData = ^uint64(0) - 255
	wakeUserData     = ^uint64(0)
	cancelUserData   = ^uint64(0) - 1
)

// Ring is one io_uring instance. See the package documentation for the
// concurrency model.
type Ring struct {
	fd       int
	features uint32
	flags    uint32
	probe    [256]bool
	// Feature bits (1 << Feature): what Has reports, and what
	// DisableFeatures switched off. Fixed when New returns.
	has, disabledFeatures uint32
	restricted            bool
	noRestrictions        bool // the kernel refused R_DISABLED at setup
	sqMem                 []byte
	cqMem                 []byte
	sqeMem                []byte

	sqMu      sync.Mutex
	sqHead    *uint32 // kernel-owned
	sqTail    *uint32 // ours; published under sqMu
	sqFlags   *uint32
	sqMask    uint32
	sqEntries uint32
	sqes      []SQE
	localTail uint32 // next SQE to hand out; > *sqTail while unpublished
	reserved  uint32 // GetSQEs a Reserve still guarantees; reset by UnlockSQ

	cqMu       sync.Mutex
	cqHead     *uint32 // ours
	cqTail     *uint32 // kernel-owned
	cqOverflow *uint32
	cqMask     uint32
	cqEntries  uint32
	cqes       []CQE
	scratch    []CQE // harvest buffer, owned by whoever holds cqMu
	reaping    bool  // the reaper holds cqMu (Reaping); written under cqMu

	// state is the lifecycle word: phase, flags and users (state_linux.go).
	state      atomic.Uint64
	inflight   atomic.Int64  // SQEs published whose final CQE is not yet seen
	lost       atomic.Bool   // the kernel dropped a CQE (EBADR or Dropped); sticky
	enterFault atomic.Uint32 // tests: an errno every io_uring_enter fails with
	unpark     chan struct{} // a waker → the parked reaper; capacity 1
	drained    chan struct{} // the last user → Close; capacity 1
	reaperDone chan struct{} // closed by the reaper as it leaves
	closeDone  chan struct{} // closed by Close once the ring is closed
	floating   bool          // Config.FloatingReaper
	reaperTID  atomic.Int32  // the locked reaper's thread; 0 if none

	// The registered buffer rings by group id, which Close unregisters (a
	// leaf lock: nothing else is taken while bufMu is held).
	bufMu    sync.Mutex
	bufRings map[uint16]*BufRing

	stats struct {
		enters, submitted, reaped, overflows, waits, parks, sqFull atomic.Uint64
	}
}

// New creates and enables a ring and finds out what the kernel has:
// opcodes (Supports) and features (Has), each with a probe of a few
// microseconds. It returns an error that Is ErrNotSupported when io_uring
// is missing or refused, or the kernel lacks IORING_FEAT_NODROP (5.5) or
// IORING_OP_SEND (5.6).
func New(cfg Config) (*Ring, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	wantRestrict := !cfg.Unrestricted && !slices.Contains(cfg.DisableFeatures, FeatureRestrictions)
	fd, p, restrict, err := setupFD(&cfg, wantRestrict)
	if err != nil {
		return nil, err
	}
	r := &Ring{
		fd: fd, features: p.Features, flags: p.Flags,
		noRestrictions: wantRestrict && !restrict,
		unpark:         make(chan struct{}, 1),
		drained:        make(chan struct{}, 1),
		reaperDone:     make(chan struct{}),
		closeDone:      make(chan struct{}),
	}
	if err := r.mmap(p); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := r.init(&cfg, restrict); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// setDefaults fills in the sizes left zero and checks them.
func (cfg *Config) setDefaults() error {
	if cfg.Entries == 0 {
		cfg.Entries = 256
	}
	if cfg.CQEntries == 0 {
		cfg.CQEntries = 4 * cfg.Entries
	}
	if cfg.CQEntries < cfg.Entries {
		return errorf("CQEntries %d < Entries %d", cfg.CQEntries, cfg.Entries)
	}
	return nil
}

// setupFD makes the ring with io_uring_setup, retrying with fewer flags on
// older kernels. restricted reports whether it was created disabled, to be
// restricted: false on 5.6–5.9 even when restrict asked for it.
func setupFD(cfg *Config, restrict bool) (fd int, p *sys.IOURingParams, restricted bool, err error) {
	p = setupParams(cfg, restrict, true)
	fd, err = sysSetup(cfg.Entries, p)
	if errors.Is(err, unix.EINVAL) {
		// Kernels before 5.18/5.19 reject flags they do not know: retry
		// without the optional ones.
		p = setupParams(cfg, restrict, false)
		fd, err = sysSetup(cfg.Entries, p)
	}
	if errors.Is(err, unix.EINVAL) && restrict {
		// 5.6–5.9 have no R_DISABLED, hence no restrictions: an
		// unrestricted ring beats no ring (the fallback is epoll).
		restrict = false
		p = setupParams(cfg, restrict, false)
		fd, err = sysSetup(cfg.Entries, p)
	}
	if err != nil {
		return -1, nil, false, setupError(err)
	}
	return fd, p, restrict, nil
}

// setupParams are the parameters of io_uring_setup: CQSIZE|CLAMP always,
// SUBMIT_ALL and COOP_TASKRUN|TASKRUN_FLAG when optional, R_DISABLED for a
// ring to be restricted.
func setupParams(cfg *Config, restrict, optional bool) *sys.IOURingParams {
	p := &sys.IOURingParams{Flags: setupCQSize | setupClamp, CQEntries: cfg.CQEntries}
	if optional {
		p.Flags |= setupSubmitAll
		if !cfg.NoCoopTaskrun {
			p.Flags |= setupCoopTaskrun | setupTaskrunFlag
		}
	}
	if restrict {
		p.Flags |= setupRDisabled
	}
	return p
}

// init checks what the kernel must have, restricts and enables the ring
// when restrict says so, and finds out what the kernel has: all before
// anyone else can use the ring.
func (r *Ring) init(cfg *Config, restrict bool) error {
	if r.features&FeatNoDrop == 0 {
		return &FeatureError{Name: "IORING_FEAT_NODROP", MinVersion: "5.5"}
	}
	r.loadProbe()
	if !r.probe[OpSend] {
		return &FeatureError{Name: "IORING_OP_SEND", MinVersion: "5.6"}
	}
	if restrict {
		if err := r.restrict(append(append([]uint8(nil), DefaultOps...), cfg.ExtraOps...)); err != nil {
			return err
		}
		r.restricted = true
	}
	r.probeFeatures()
	r.applyDisabled(cfg)
	r.floating = cfg.FloatingReaper
	if !r.probe[OpSend] {
		return &FeatureError{Name: "IORING_OP_SEND", MinVersion: "5.6", Err: errDisabled}
	}
	r.resetStats()
	return nil
}

// sysSetup is io_uring_setup; tests replace it to play older kernels.
var sysSetup = setup

func setup(entries uint32, p *sys.IOURingParams) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

func setupError(err error) error {
	var errno syscall.Errno
	errors.As(err, &errno)
	switch errno {
	case unix.ENOSYS:
		return &FeatureError{Name: "io_uring", MinVersion: "5.1", Err: err}
	case unix.EPERM:
		return &FeatureError{Name: "io_uring (refused: kernel.io_uring_disabled or seccomp)", Err: err}
	case unix.ENOMEM:
		return &FeatureError{Name: "io_uring (cannot lock ring memory: RLIMIT_MEMLOCK)", Err: err}
	case unix.EINVAL:
		return &FeatureError{Name: "io_uring with IORING_SETUP_CQSIZE|CLAMP", MinVersion: "5.6", Err: err}
	}
	return errorf("io_uring_setup: %w", err)
}

// mmap maps the SQ ring, the CQ ring and the SQE array and finds the
// kernel's words in them.
func (r *Ring) mmap(p *sys.IOURingParams) error {
	if err := r.mapRegions(p); err != nil {
		return err
	}
	r.layoutSQ(p)
	r.layoutCQ(p)
	return nil
}

// mapRegions makes the three mappings (two with IORING_FEAT_SINGLE_MMAP,
// where the CQ shares the SQ's); on failure it undoes what it made.
func (r *Ring) mapRegions(p *sys.IOURingParams) error {
	sqSize := int(p.SQOffset.Array + p.SQEntries*4)
	cqSize := int(p.CQOffset.Cqes + p.CQEntries*uint32(unsafe.Sizeof(CQE{})))
	if p.Features&FeatSingleMmap != 0 {
		sqSize = max(sqSize, cqSize)
		cqSize = sqSize
	}
	var err error
	prot, flags := unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE
	if r.sqMem, err = unix.Mmap(r.fd, int64(offSQRing), sqSize, prot, flags); err != nil {
		return errorf("mmap sq ring: %w", err)
	}
	r.cqMem = r.sqMem
	if p.Features&FeatSingleMmap == 0 {
		if r.cqMem, err = unix.Mmap(r.fd, int64(offCQRing), cqSize, prot, flags); err != nil {
			r.unmap()
			return errorf("mmap cq ring: %w", err)
		}
	}
	sqeSize := int(p.SQEntries) * int(unsafe.Sizeof(SQE{}))
	if r.sqeMem, err = unix.Mmap(r.fd, int64(offSQEs), sqeSize, prot, flags); err != nil {
		r.unmap()
		return errorf("mmap sqes: %w", err)
	}
	return nil
}

func u32At(mem []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }

// layoutSQ points the ring at the SQ's words and entries.
func (r *Ring) layoutSQ(p *sys.IOURingParams) {
	r.sqHead = u32At(r.sqMem, p.SQOffset.Head)
	r.sqTail = u32At(r.sqMem, p.SQOffset.Tail)
	r.sqFlags = u32At(r.sqMem, p.SQOffset.Flags)
	r.sqMask = *u32At(r.sqMem, p.SQOffset.RingMask)
	r.sqEntries = *u32At(r.sqMem, p.SQOffset.RingEntries)
	// The index array maps SQ slots to SQEs one to one, once: SQEs are
	// then addressed by tail & mask, as liburing does.
	array := unsafe.Slice(u32At(r.sqMem, p.SQOffset.Array), r.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&r.sqeMem[0])), r.sqEntries)
	r.localTail = *r.sqTail
}

// layoutCQ points the ring at the CQ's words and entries.
func (r *Ring) layoutCQ(p *sys.IOURingParams) {
	r.cqHead = u32At(r.cqMem, p.CQOffset.Head)
	r.cqTail = u32At(r.cqMem, p.CQOffset.Tail)
	r.cqOverflow = u32At(r.cqMem, p.CQOffset.Overflow)
	r.cqMask = *u32At(r.cqMem, p.CQOffset.RingMask)
	r.cqEntries = *u32At(r.cqMem, p.CQOffset.RingEntries)
	r.cqes = unsafe.Slice((*CQE)(unsafe.Pointer(&r.cqMem[p.CQOffset.Cqes])), r.cqEntries)
	r.scratch = make([]CQE, min(r.cqEntries, 256))
}

func (r *Ring) unmap() {
	// Buffer rings first, while the fd is still open to unregister them.
	r.closeBufRings()
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
		r.sqeMem = nil
	}
	// With IORING_FEAT_SINGLE_MMAP the CQ shares the SQ's mapping.
	if r.cqMem != nil && unsafe.SliceData(r.cqMem) != unsafe.SliceData(r.sqMem) {
		unix.Munmap(r.cqMem)
	}
	r.cqMem = nil
	if r.sqMem != nil {
		unix.Munmap(r.sqMem)
		r.sqMem = nil
	}
}

func (r *Ring) register(op uint8, arg unsafe.Pointer, n uint32) error {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uintptr(op), uintptr(arg), uintptr(n), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// loadProbe asks the kernel which opcodes it supports. A kernel without
// IORING_REGISTER_PROBE (< 5.6) has no SEND either, so an empty table is
// the right answer there.
func (r *Ring) loadProbe() {
	var p probe
	if err := r.register(registerProbe, unsafe.Pointer(&p), uint32(len(p.ops))); err != nil {
		return
	}
	for i := 0; i < int(p.opsLen) && i < len(p.ops); i++ {
		if p.ops[i].flags&probeOpSupported != 0 {
			r.probe[p.ops[i].op] = true
		}
	}
}

func (r *Ring) restrict(ops []uint8) error {
	res := make([]restriction, 0, len(ops)+1+len(allowedRegisterOps))
	for _, op := range ops {
		if r.probe[op] {
			res = append(res, restriction{opcode: restrictSQEOp, arg: op})
		}
	}
	res = append(res, restriction{opcode: restrictSQEFlags, arg: AllowedSQEFlags})
	n := len(res)
	for _, op := range allowedRegisterOps {
		res = append(res, restriction{opcode: restrictRegisterOp, arg: op})
	}
	err := r.register(registerRestrict, unsafe.Pointer(&res[0]), uint32(len(res)))
	if errors.Is(err, unix.EINVAL) {
		// Before 5.19 the kernel does not know PBUF_RING and refuses
		// the whole set (and forgets it): restrict without them, so the
		// ring refuses every register opcode, as it has no buffer rings
		// to allow anyway.
		err = r.register(registerRestrict, unsafe.Pointer(&res[0]), uint32(n))
	}
	if err != nil {
		return &FeatureError{Name: "IORING_REGISTER_RESTRICTIONS", MinVersion: "5.10", Err: err}
	}
	if err := r.register(registerEnable, nil, 0); err != nil {
		return &FeatureError{Name: "IORING_REGISTER_ENABLE_RINGS", MinVersion: "5.10", Err: err}
	}
	return nil
}

// Supports reports whether the kernel supports opcode op
// (IORING_REGISTER_PROBE, 5.6) and Config.DisableOps did not switch it off.
// A restricted ring may still refuse it (-EACCES in the CQE). Capabilities
// that are not opcodes are asked with Has.
func (r *Ring) Supports(op uint8) bool { return r.probe[op] }

// Features returns the IORING_FEAT_* bits the kernel reported at setup.
func (r *Ring) Features() uint32 { return r.features }

// SetupFlags returns the IORING_SETUP_* flags the ring was created with.
func (r *Ring) SetupFlags() uint32 { return r.flags }

// FD returns the ring's file descriptor.
func (r *Ring) FD() int { return r.fd }

// SQEntries and CQEntries return the sizes the kernel chose.
func (r *Ring) SQEntries() uint32 { return r.sqEntries }

// CQEntries returns the CQ size the kernel chose.
func (r *Ring) CQEntries() uint32 { return r.cqEntries }

// Inflight returns how many published SQEs have not yet posted their final CQE.
func (r *Ring) Inflight() int64 { return r.inflight.Load() }

// Stats are cumulative counters of a ring, read atomically one by one.
type Stats struct {
	Enters    uint64 // io_uring_enter calls
	Submitted uint64 // SQEs the kernel consumed
	Reaped    uint64 // CQEs harvested (including internal ones)
	Overflows uint64 // times the CQ overflowed (kernel's overflow counter and IORING_SQ_CQ_OVERFLOW flushes)
	Waits     uint64 // enters that waited for completions
	Parks     uint64 // times the reaper slept in Go because nothing was in the kernel
	SQFull    uint64 // times a submitter found the SQ full and had to submit to make room
}

// Stats returns a snapshot of the ring's counters.
func (r *Ring) Stats() Stats {
	return Stats{
		Enters:    r.stats.enters.Load(),
		Submitted: r.stats.submitted.Load(),
		Reaped:    r.stats.reaped.Load(),
		Overflows: r.stats.overflows.Load(),
		Waits:     r.stats.waits.Load(),
		Parks:     r.stats.parks.Load(),
		SQFull:    r.stats.sqFull.Load(),
	}
}
