package ring

import (
	"errors"
	"runtime"
	"sync/atomic"
	"unsafe"

	sys "github.com/iceber/iouring-go/syscall"
	"golang.org/x/sys/unix"
)

// probeUserData tags New's probe requests; PeekBatch never returns it.
const probeUserData = ^uint64(0) - 2

// Has reports whether the kernel has feature f and Config.DisableFeatures
// did not switch it off. The answer is fixed when New returns. A probe
// that could not decide (an unexpected errno) counts as missing.
func (r *Ring) Has(f Feature) bool {
	return f.valid() && r.has&(1<<f) != 0
}

// Require returns nil when Has(f), and otherwise a *FeatureError naming f
// and its minimum kernel, which Is ErrNotSupported. When f was switched
// off by Config.DisableFeatures the error says so.
func (r *Ring) Require(f Feature) error {
	if r.Has(f) {
		return nil
	}
	return featureError(f, f.valid() && r.disabledFeatures&(1<<f) != 0)
}

// Restricted reports whether the ring is limited by
// IORING_REGISTER_RESTRICTIONS: false for Config.Unrestricted, and for a
// kernel without FeatureRestrictions (5.6–5.9), where New falls back.
func (r *Ring) Restricted() bool { return r.restricted }

// probeFeatures asks the kernel, with one cheap request each where a
// request can tell, which features it has. It runs in New once the ring is
// enabled, before anyone else can use it, with opcodes DefaultOps allows.
// Each probe is conclusive either way (-EINVAL: missing; the answer of a
// kernel that parsed the request: present); any other outcome counts as
// missing.
func (r *Ring) probeFeatures() {
	r.setHas(FeatureExtArg, r.features&FeatExtArg != 0)
	r.setHas(FeatureRestrictions, r.restricted || !r.noRestrictions && r.probeRestrictions())

	// Completions of these probes may come as task work of the
	// submitting thread (COOP_TASKRUN): wait for them on that thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if r.probe[OpAsyncCancel] {
		r.setHas(FeatureCancelFD, r.probeCancelFD())
		r.setHas(FeatureCancelAny, r.probeCancelAny())
	}
	if r.probe[OpRecv] {
		r.setHas(FeaturePollFirst, r.probePollFirst())
	}
	if r.probe[OpSendZC] {
		r.setHas(FeatureZCReportUsage, r.probeZCReportUsage())
	}
	r.probeBufRing()
	r.setHas(FeatureRegisterRingFD, r.probeRegisterRingFD())
	r.setHas(FeatureDeferTaskrun, probeDeferTaskrun())
}

func (r *Ring) setHas(f Feature, ok bool) {
	if ok {
		r.has |= 1 << f
	}
}

// probeCancelFD cancels by fd on fd -1: a 5.19 kernel looks up the file
// (-EBADF); an older one refuses cancel_flags (-EINVAL).
func (r *Ring) probeCancelFD() bool {
	res, ok := r.probeRequest(func(sqe *SQE) { PrepCancelFD(sqe, -1) })
	return ok && (res >= 0 || res == -int32(unix.EBADF) || res == -int32(unix.ENOENT))
}

// probeCancelAny cancels ANY with nothing in flight, which cancels
// nothing: res 0 (an older kernel refuses the flag with -EINVAL).
func (r *Ring) probeCancelAny() bool {
	res, ok := r.probeRequest(prepCancelAny)
	return ok && (res >= 0 || res == -int32(unix.ENOENT))
}

// probeZCReportUsage sends zero-copy with REPORT_USAGE on fd -1: 6.2
// accepts the flag and fails the file lookup (-EBADF); 6.0 and 6.1 refuse
// the flag (-EINVAL).
func (r *Ring) probeZCReportUsage() bool {
	res, ok := r.probeRequest(func(sqe *SQE) { PrepSendZC(sqe, -1, nil, 0, SendZCReportUsage) })
	return ok && res == -int32(unix.EBADF)
}

// probeRestrictions asks an enabled, unrestricted ring whether the kernel
// knows IORING_REGISTER_RESTRICTIONS: it answers -EBADFD (only disabled
// rings take restrictions) where it does, -EINVAL (unknown opcode) where
// it does not. Nothing is registered either way.
func (r *Ring) probeRestrictions() bool {
	return r.register(registerRestrict, nil, 0) == unix.EBADFD
}

// probePollFirst receives with IORING_RECVSEND_POLL_FIRST|MSG_DONTWAIT on
// a socket that has a byte to read. A 5.19 kernel arms poll before any
// attempt, which MSG_DONTWAIT turns into -EAGAIN at once; an older one
// either refuses the ioprio (-EINVAL) or ignores it and reads the byte.
func (r *Ring) probePollFirst() bool {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if _, err := unix.Write(fds[1], []byte{1}); err != nil {
		return false
	}
	buf := new([1]byte)
	res, ok := r.probeRequest(func(sqe *SQE) {
		PrepRecv(sqe, fds[0], buf[:], unix.MSG_DONTWAIT)
		sqe.SetIoprio(RecvsendPollFirst)
	})
	runtime.KeepAlive(buf)
	return ok && res == -int32(unix.EAGAIN)
}

// probeBufRing registers a one-entry buffer ring and unregisters it
// (FeatureBufRing; 5.19 knows the register opcode, older kernels answer
// EINVAL). The receive features are only asked where it succeeded:
// multishot receives take their buffers from a ring, and a kernel with
// buffer rings checks a RECV's ioprio, which older ones ignored.
// FeatureRecvBundle is the kernel's IORING_FEAT_RECVSEND_BUNDLE bit.
func (r *Ring) probeBufRing() {
	br, err := r.registerBufRing(probeBufGroup, 1, 1)
	if err != nil || br.Close() != nil {
		return
	}
	r.setHas(FeatureBufRing, true)
	if r.probe[OpRecv] {
		r.setHas(FeatureRecvMultishot, r.probeRecvMultishot())
		r.setHas(FeatureRecvBundle, r.features&FeatRecvsendBundle != 0)
	}
}

// probeBufGroup is the buffer group id of New's probe, unregistered before
// New returns.
const probeBufGroup = 0xffff

// probeRecvMultishot arms a multishot RECV on fd -1: 6.0 accepts
// IORING_RECV_MULTISHOT and fails the file lookup (-EBADF) before it
// would select a buffer; 5.19 refuses the ioprio (-EINVAL).
func (r *Ring) probeRecvMultishot() bool {
	res, ok := r.probeRequest(func(sqe *SQE) { PrepRecvMultishot(sqe, -1, probeBufGroup, false) })
	return ok && res == -int32(unix.EBADF)
}

// probeRegisterRingFD registers the ring's fd with this thread and
// unregisters it at once (5.18; older kernels answer EINVAL). The slot
// belongs to the thread, which probeFeatures has locked; leaving it
// registered would also keep the ring alive until the thread exits.
func (r *Ring) probeRegisterRingFD() bool {
	upd := rsrcUpdate{offset: ^uint32(0), data: uint64(r.fd)}
	if r.register(registerRingFDs, unsafe.Pointer(&upd), 1) != nil {
		return false
	}
	upd.data = 0
	return r.register(unregisterRingFDs, unsafe.Pointer(&upd), 1) == nil
}

// deferTaskrun caches probeDeferTaskrun's conclusive answers: 0 unknown,
// 1 present, 2 missing. It is a property of the kernel, so once per
// process is enough.
var deferTaskrun atomic.Int32

// probeDeferTaskrun sets up a small ring with SINGLE_ISSUER|DEFER_TASKRUN
// and closes it: 6.1 accepts, older kernels answer EINVAL. Any other
// error (EMFILE, ENOMEM) decides nothing and is asked again next time.
func probeDeferTaskrun() bool {
	switch deferTaskrun.Load() {
	case 1:
		return true
	case 2:
		return false
	}
	p := &sys.IOURingParams{Flags: setupSingleIssuer | setupDeferTaskrun}
	fd, err := sysSetup(2, p)
	switch {
	case err == nil:
		unix.Close(fd)
		deferTaskrun.Store(1)
		return true
	case errors.Is(err, unix.EINVAL):
		deferTaskrun.Store(2)
	}
	return false
}

// probeRequest submits one request that prep fills, waits for its final
// CQE and returns the result of its first. Only New calls it, while the CQ
// holds nothing but its answers; the caller has locked its OS thread.
// Every request a probe makes completes during submission or in task work
// of this thread.
func (r *Ring) probeRequest(prep func(*SQE)) (res int32, ok bool) {
	if !r.queueProbe(prep) {
		return 0, false
	}
	var rep probeReply
	for !rep.final {
		_, errno := r.enter(r.pending(), 1, enterGetEvents, nil, 0)
		if errno != 0 && errno != unix.EINTR {
			return 0, false
		}
		r.reapProbe(&rep)
	}
	return rep.res, true
}

// queueProbe takes an SQE, lets prep fill it and publishes it, tagged
// probeUserData.
func (r *Ring) queueProbe(prep func(*SQE)) bool {
	r.LockSQ()
	defer r.UnlockSQ()
	sqe, err := r.getSQE()
	if err != nil {
		return false
	}
	prep(sqe)
	sqe.SetUserData(probeUserData)
	return true
}

// probeReply is what the CQEs of a probe said so far.
type probeReply struct {
	res         int32 // the first CQE's result
	seen, final bool  // a first CQE came; the final one did
}

// reapProbe consumes every CQE in the CQ and records the probe's in rep.
func (r *Ring) reapProbe(rep *probeReply) {
	head, tail := *r.cqHead, atomic.LoadUint32(r.cqTail)
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		if c.UserData() != probeUserData {
			continue
		}
		if !rep.seen {
			rep.res, rep.seen = c.Result(), true
		}
		if c.Flags()&CQEFMore == 0 {
			rep.final = true
			r.inflight.Add(-1)
		}
	}
	atomic.StoreUint32(r.cqHead, head)
}

// applyDisabled switches off what Config.DisableFeatures and
// Config.DisableOps name, and features whose opcode is gone.
func (r *Ring) applyDisabled(cfg *Config) {
	for _, op := range cfg.DisableOps {
		r.probe[op] = false
	}
	for _, f := range cfg.DisableFeatures {
		if f.valid() {
			r.disabledFeatures |= 1 << f
		}
	}
	if !r.probe[OpAsyncCancel] {
		r.has &^= 1<<FeatureCancelFD | 1<<FeatureCancelAny
	}
	if !r.probe[OpSendZC] {
		r.has &^= 1 << FeatureZCReportUsage
	}
	if !r.probe[OpRecv] {
		r.has &^= 1<<FeatureRecvMultishot | 1<<FeatureRecvBundle
	}
	r.has &^= r.disabledFeatures
	if !r.Has(FeatureExtArg) {
		r.features &^= FeatExtArg
	}
	if !r.Has(FeatureRecvBundle) {
		r.features &^= FeatRecvsendBundle
	}
}

// resetStats forgets New's own system calls and requests.
func (r *Ring) resetStats() {
	for _, c := range []*atomic.Uint64{&r.stats.enters, &r.stats.submitted, &r.stats.reaped, &r.stats.overflows, &r.stats.waits, &r.stats.parks} {
		c.Store(0)
	}
}
