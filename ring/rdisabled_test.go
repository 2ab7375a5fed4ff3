//go:build linux

package ring

import (
	"testing"
	"time"

	sys "github.com/iceber/iouring-go/syscall"
	"golang.org/x/sys/unix"
)

// asOldKernel makes io_uring_setup refuse the flags in refuse with EINVAL,
// as a kernel that does not know them does, until t ends.
func asOldKernel(t *testing.T, refuse uint32) {
	t.Helper()
	saved := sysSetup
	t.Cleanup(func() { sysSetup = saved })
	sysSetup = func(entries uint32, p *sys.IOURingParams) (int, error) {
		if p.Flags&refuse != 0 {
			return -1, unix.EINVAL
		}
		return saved(entries, p)
	}
}

// Bug: kernels 5.6–5.9 reject IORING_SETUP_R_DISABLED with EINVAL; New
// failed there and the engine fell back to epoll although io_uring works.
// New now makes an unrestricted ring and records that restrictions are
// missing.
func TestNewWithoutRDisabled(t *testing.T) {
	asOldKernel(t, setupRDisabled|setupSubmitAll|setupCoopTaskrun)
	r, err := New(Config{})
	if err != nil {
		t.Fatalf("New on a kernel without R_DISABLED: %v", err)
	}
	defer r.Close()
	if r.Has(FeatureRestrictions) || r.Restricted() {
		t.Errorf("R_DISABLED refused: Has(FeatureRestrictions) = %v, Restricted() = %v; want false, false", r.Has(FeatureRestrictions), r.Restricted())
	}
	if r.SetupFlags()&setupRDisabled != 0 {
		t.Errorf("setup flags %#x still have R_DISABLED", r.SetupFlags())
	}
	submit1(t, r, 1, PrepNop)
	checkCQE(t, waitCQEs(t, r, 1, 5*time.Second)[0], 1, 0)
}

// Forcing FeatureRestrictions off makes the same ring on this kernel: not
// disabled at setup, nothing restricted (a READ runs).
func TestNewRestrictionsDisabled(t *testing.T) {
	r := newRing(t, Config{DisableFeatures: []Feature{FeatureRestrictions}})
	if r.Has(FeatureRestrictions) || r.Restricted() || r.SetupFlags()&setupRDisabled != 0 {
		t.Fatalf("DisableFeatures: [FeatureRestrictions]: Has %v, Restricted %v, setup flags %#x", r.Has(FeatureRestrictions), r.Restricted(), r.SetupFlags())
	}
	skipUnlessSupported(t, r, OpRead)
	testReadWorks(t, r)
}
