//go:build linux

package ring

import (
	"testing"
)

// The probe must report what the kernel has. A kernel new enough for an
// opcode that reports it missing is a failure, not a skip.
func TestProbeSupportsBaseOps(t *testing.T) {
	r := newRing(t, Config{})
	for _, op := range []uint8{OpNop, OpSendmsg, OpSend, OpAsyncCancel, OpLinkTimeout, OpRead} {
		v := opMinKernel[op]
		if got := r.Supports(op); !got && kernelAtLeast(t, v[0], v[1]) {
			t.Errorf("Supports(%d) = false on a kernel >= %d.%d", op, v[0], v[1])
		}
	}
}

func TestProbeSupportsZeroCopy(t *testing.T) {
	r := newRing(t, Config{})
	for _, op := range []uint8{OpSendZC, OpSendmsgZC} {
		v := opMinKernel[op]
		if !kernelAtLeast(t, v[0], v[1]) {
			t.Logf("kernel < %d.%d: Supports(%d) = %v", v[0], v[1], op, r.Supports(op))
			continue
		}
		if !r.Supports(op) {
			t.Errorf("Supports(%d) = false on a kernel >= %d.%d", op, v[0], v[1])
		}
	}
}

// Restrictions limit what a ring accepts, not what the probe says.
func TestProbeSameForUnrestricted(t *testing.T) {
	a := newRing(t, Config{})
	b := newRing(t, Config{Unrestricted: true})
	for op := range 256 {
		if a.Supports(uint8(op)) != b.Supports(uint8(op)) {
			t.Errorf("Supports(%d): restricted %v, unrestricted %v", op, a.Supports(uint8(op)), b.Supports(uint8(op)))
		}
	}
	if a.Supports(255) {
		t.Error("Supports(255) = true: no kernel has that opcode")
	}
}

func TestProbeFeatures(t *testing.T) {
	r := newRing(t, Config{})
	f := r.Features()
	for _, c := range []struct {
		name string
		bit  uint32
		min  [2]int
	}{
		{"NODROP", FeatNoDrop, [2]int{5, 5}},
		{"SUBMIT_STABLE", FeatSubmitStable, [2]int{5, 5}},
		{"FAST_POLL", FeatFastPoll, [2]int{5, 7}},
		{"EXT_ARG", FeatExtArg, [2]int{5, 11}},
		{"NATIVE_WORKERS", FeatNativeWorkers, [2]int{5, 12}},
		{"CQE_SKIP", FeatCQESkip, [2]int{5, 17}},
	} {
		if f&c.bit == 0 {
			if kernelAtLeast(t, c.min[0], c.min[1]) {
				t.Errorf("IORING_FEAT_%s missing on a kernel >= %d.%d (features %#x)", c.name, c.min[0], c.min[1], f)
			} else {
				t.Logf("IORING_FEAT_%s missing (kernel < %d.%d)", c.name, c.min[0], c.min[1])
			}
		}
	}
	// New refuses kernels without NODROP, so it is always there.
	if f&FeatNoDrop == 0 {
		t.Error("New returned a ring without IORING_FEAT_NODROP")
	}
}

func TestProbeSetupFlags(t *testing.T) {
	r := newRing(t, Config{})
	fl := r.SetupFlags()
	if fl&setupCQSize == 0 {
		t.Errorf("setup flags %#x lack CQSIZE", fl)
	}
	if kernelAtLeast(t, 5, 19) && fl&(setupCoopTaskrun|setupTaskrunFlag|setupSubmitAll) != setupCoopTaskrun|setupTaskrunFlag|setupSubmitAll {
		t.Errorf("setup flags %#x lack COOP_TASKRUN|TASKRUN_FLAG|SUBMIT_ALL on a kernel >= 5.19", fl)
	}
	r2 := newRing(t, Config{NoCoopTaskrun: true})
	if r2.SetupFlags()&(setupCoopTaskrun|setupTaskrunFlag) != 0 {
		t.Errorf("NoCoopTaskrun: setup flags %#x", r2.SetupFlags())
	}
}

func TestProbeSizes(t *testing.T) {
	for _, c := range []struct {
		cfg    Config
		sq, cq uint32
	}{
		{Config{}, 256, 1024},
		{Config{Entries: 8, CQEntries: 8}, 8, 8},
		{Config{Entries: 5}, 8, 32}, // rounded up; CQ 4 × 5 = 20 → 32
		{Config{Entries: 16, CQEntries: 100}, 16, 128},
	} {
		r := newRing(t, c.cfg)
		if r.SQEntries() != c.sq || r.CQEntries() != c.cq {
			t.Errorf("New(%+v): SQ %d CQ %d, want %d %d", c.cfg, r.SQEntries(), r.CQEntries(), c.sq, c.cq)
		}
	}
	if _, err := New(Config{Entries: 16, CQEntries: 8}); err == nil {
		t.Error("New accepted CQEntries < Entries")
	}
}

func TestSkipUnlessSupported(t *testing.T) {
	r := newRing(t, Config{})
	// Opcodes this kernel has do not skip.
	t.Run("nop", func(t *testing.T) {
		skipUnlessSupported(t, r, OpNop)
	})
	// 255 is no opcode: skip, since no kernel version is known to have it.
	ran := false
	t.Run("none", func(t *testing.T) {
		defer func() { ran = true }()
		skipUnlessSupported(t, r, 255)
		t.Error("skipUnlessSupported(255) did not skip")
	})
	if !ran {
		t.Error("subtest did not run")
	}
}
