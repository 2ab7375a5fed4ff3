//go:build linux

package ring

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// featureMinKernel parses f.MinKernel().
func featureMinKernel(t testing.TB, f Feature) (major, minor int) {
	t.Helper()
	if _, err := fmt.Sscanf(f.MinKernel(), "%d.%d", &major, &minor); err != nil {
		t.Fatalf("%v: MinKernel %q: %v", f, f.MinKernel(), err)
	}
	return major, minor
}

// skipUnlessHas skips t when the kernel lacks f, and fails it when a
// kernel that must have f (by its version) reports it missing.
func skipUnlessHas(t testing.TB, r *Ring, f Feature) {
	t.Helper()
	if r.Has(f) {
		return
	}
	if maj, min := featureMinKernel(t, f); kernelAtLeast(t, maj, min) {
		t.Fatalf("kernel >= %s reports %v missing", f.MinKernel(), f)
	}
	t.Skipf("%v not supported by this kernel", f)
}

// Each probe reports what the kernel has: a kernel new enough for a
// feature that reports it missing is a failure, not a skip.
func TestFeatureProbes(t *testing.T) {
	for _, cfg := range []Config{{}, {Unrestricted: true}, {NoCoopTaskrun: true}} {
		r := newRing(t, cfg)
		for _, f := range AllFeatures() {
			maj, min := featureMinKernel(t, f)
			switch has := r.Has(f); {
			case !has && kernelAtLeast(t, maj, min):
				t.Errorf("%+v: Has(%v) = false on a kernel >= %s (Require: %v)", cfg, f, f.MinKernel(), r.Require(f))
			case !has:
				t.Logf("%+v: %v missing (kernel < %s)", cfg, f, f.MinKernel())
			case r.Require(f) != nil:
				t.Errorf("Has(%v) but Require = %v", f, r.Require(f))
			}
		}
		if r.Restricted() == cfg.Unrestricted {
			t.Errorf("%+v: Restricted() = %v", cfg, r.Restricted())
		}
		// The probes leave nothing behind.
		if st, n := r.Stats(), r.Inflight(); st != (Stats{}) || n != 0 || r.Ready() != 0 {
			t.Errorf("%+v: after New: Stats %+v, Inflight %d, Ready %d", cfg, st, n, r.Ready())
		}
	}
}

// New's probes are cheap: a ring with them costs about what one without
// would (a setup, three mmaps and a register call dominate).
func TestFeatureProbesCheap(t *testing.T) {
	const n = 20
	start := time.Now()
	for range n {
		r, err := New(Config{Entries: 8})
		if err != nil {
			t.Skip(err)
		}
		r.Close()
	}
	per := time.Since(start) / n
	t.Logf("New+Close: %v per ring", per)
	if per > timeout(50*time.Millisecond) {
		t.Errorf("New+Close took %v per ring", per)
	}
}

// DisableFeatures forces Has false for each feature, and only for it.
func TestFeatureDisable(t *testing.T) {
	all := newRing(t, Config{})
	for _, f := range AllFeatures() {
		t.Run(f.String(), func(t *testing.T) {
			skipUnlessHas(t, all, f)
			r := newRing(t, Config{DisableFeatures: []Feature{f}})
			if r.Has(f) {
				t.Fatalf("DisableFeatures: [%v]: Has = true", f)
			}
			err := r.Require(f)
			var fe *FeatureError
			if !errors.Is(err, ErrNotSupported) || !errors.As(err, &fe) || fe.Name != f.String() || fe.MinVersion != f.MinKernel() || !errors.Is(err, errDisabled) {
				t.Fatalf("Require(%v) = %#v, want a *FeatureError{%s, %s} that Is ErrNotSupported and says it was disabled", f, err, f.String(), f.MinKernel())
			}
			for _, g := range AllFeatures() {
				if g != f && r.Has(g) != all.Has(g) {
					t.Errorf("DisableFeatures: [%v] changed Has(%v) to %v", f, g, r.Has(g))
				}
			}
		})
	}
	if all.Has(0) || all.Has(featureEnd) || all.Require(0) == nil {
		t.Error("Has/Require accept an unknown Feature")
	}
}

// Without FeatureExtArg the ring does without timed waits, as on 5.10.
func TestFeatureDisableExtArg(t *testing.T) {
	r := newRing(t, Config{DisableFeatures: []Feature{FeatureExtArg}})
	if r.Features()&FeatExtArg != 0 {
		t.Errorf("Features() = %#x still has IORING_FEAT_EXT_ARG", r.Features())
	}
	if _, err := r.SubmitAndWait(1, time.Millisecond); !errors.Is(err, ErrNotSupported) {
		t.Errorf("SubmitAndWait with a timeout: %v, want ErrNotSupported", err)
	}
	submitNops(t, r, 0, 1)
	if _, err := r.SubmitAndWait(1, 0); err != nil {
		t.Errorf("SubmitAndWait without a timeout: %v", err)
	}
}

// DisableOps forces Supports false, and the features that need the opcode
// with it; a restricted ring still runs the opcode.
func TestFeatureDisableOps(t *testing.T) {
	all := newRing(t, Config{})
	skipUnlessSupported(t, all, OpSendZC)
	skipUnlessHas(t, all, FeatureZCReportUsage)
	r := newRing(t, Config{DisableOps: []uint8{OpSendZC, OpSendmsgZC, OpAsyncCancel}})
	for _, op := range []uint8{OpSendZC, OpSendmsgZC, OpAsyncCancel} {
		if r.Supports(op) {
			t.Errorf("DisableOps: Supports(%d) = true", op)
		}
	}
	for _, f := range []Feature{FeatureZCReportUsage, FeatureCancelFD, FeatureCancelAny} {
		if r.Has(f) {
			t.Errorf("DisableOps without its opcode: Has(%v) = true", f)
		}
	}
	if !r.Supports(OpSend) || !r.Has(FeaturePollFirst) {
		t.Error("DisableOps switched off more than it named")
	}
	_, err := New(Config{DisableOps: []uint8{OpSend}})
	var fe *FeatureError
	if !errors.Is(err, ErrNotSupported) || !errors.As(err, &fe) || fe.Name != "IORING_OP_SEND" {
		t.Errorf("New without OpSend: %v, want the IORING_OP_SEND FeatureError", err)
	}
}

func TestFeatureString(t *testing.T) {
	for _, c := range []struct {
		f         Feature
		name, min string
	}{
		{FeaturePollFirst, "IORING_RECVSEND_POLL_FIRST", "5.19"},
		{FeatureCancelFD, "IORING_ASYNC_CANCEL_FD", "5.19"},
		{FeatureCancelAny, "IORING_ASYNC_CANCEL_ANY", "5.19"},
		{FeatureZCReportUsage, "IORING_SEND_ZC_REPORT_USAGE", "6.2"},
		{FeatureRestrictions, "IORING_REGISTER_RESTRICTIONS", "5.10"},
		{FeatureExtArg, "IORING_FEAT_EXT_ARG", "5.11"},
		{0, "Feature(0)", ""},
		{99, "Feature(99)", ""},
	} {
		if c.f.String() != c.name || c.f.MinKernel() != c.min {
			t.Errorf("Feature %d: %q %q, want %q %q", int(c.f), c.f.String(), c.f.MinKernel(), c.name, c.min)
		}
	}
	if n := len(AllFeatures()); n != int(featureEnd)-1 {
		t.Errorf("AllFeatures has %d", n)
	}
	want := "IORING_ASYNC_CANCEL_ANY (requires >= 5.19) not supported: disabled by Config"
	if got := featureError(FeatureCancelAny, true).Error(); got != want {
		t.Errorf("error text %q, want %q", got, want)
	}
}
