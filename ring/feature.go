package ring

import (
	"errors"
	"strconv"
)

// Feature is a kernel capability the engine uses that is not an opcode of
// its own (opcodes are asked with Ring.Supports). New finds out which
// features the kernel has, with a request where one can tell; Ring.Has
// reports the answer and Ring.Require turns a missing one into an error.
type Feature int

const (
	// FeaturePollFirst: IORING_RECVSEND_POLL_FIRST in the ioprio of SEND,
	// SENDMSG, RECV and the zero-copy sends (5.19). Older kernels fail such
	// an SQE with -EINVAL.
	FeaturePollFirst Feature = iota + 1
	// FeatureCancelFD: IORING_ASYNC_CANCEL_FD|IORING_ASYNC_CANCEL_ALL,
	// cancelling every request on a file (PrepCancelFD; 5.19).
	FeatureCancelFD
	// FeatureCancelAny: IORING_ASYNC_CANCEL_ANY, cancelling every request
	// of the ring (Close uses it; 5.19).
	FeatureCancelAny
	// FeatureZCReportUsage: IORING_SEND_ZC_REPORT_USAGE in a zero-copy
	// send's ioprio (SendZCReportUsage; 6.2). It needs OpSendZC.
	FeatureZCReportUsage
	// FeatureRestrictions: rings created disabled (IORING_SETUP_R_DISABLED)
	// and IORING_REGISTER_RESTRICTIONS (5.10). Without it New makes an
	// unrestricted ring even when Config.Unrestricted is false.
	FeatureRestrictions
	// FeatureExtArg: IORING_FEAT_EXT_ARG, timed waits in io_uring_enter
	// (SubmitAndWait with a timeout; 5.11).
	FeatureExtArg
	// FeatureBufRing: provided buffer rings, IORING_REGISTER_PBUF_RING
	// (RegisterBufRing; 5.19). Without it RegisterBufRing fails.
	FeatureBufRing
	// FeatureRecvMultishot: IORING_RECV_MULTISHOT, one RECV SQE that
	// posts a CQE per receive into provided buffers (PrepRecvMultishot;
	// 6.0). It takes its buffers from a buffer ring: use it together with
	// FeatureBufRing.
	FeatureRecvMultishot
	// FeatureRecvBundle: IORING_RECVSEND_BUNDLE, a receive that fills
	// several provided buffers at once (PrepRecvMultishot's bundle,
	// BufRing.Bundle; IORING_FEAT_RECVSEND_BUNDLE, 6.10). It needs
	// FeatureBufRing as well.
	FeatureRecvBundle
	// FeatureDeferTaskrun: IORING_SETUP_DEFER_TASKRUN with
	// IORING_SETUP_SINGLE_ISSUER (6.1): completions run only when the one
	// issuer thread waits for them. New does not set it up (the reaper
	// would have to be that thread); Has tells whether it could.
	FeatureDeferTaskrun
	// FeatureRegisterRingFD: IORING_REGISTER_RING_FDS (5.18), a ring fd
	// registered with the calling thread, which io_uring_enter then need
	// not look up. The registration belongs to one OS thread.
	FeatureRegisterRingFD

	featureEnd
)

var featureInfo = [featureEnd]struct{ name, min string }{
	FeaturePollFirst:      {"IORING_RECVSEND_POLL_FIRST", "5.19"},
	FeatureCancelFD:       {"IORING_ASYNC_CANCEL_FD", "5.19"},
	FeatureCancelAny:      {"IORING_ASYNC_CANCEL_ANY", "5.19"},
	FeatureZCReportUsage:  {"IORING_SEND_ZC_REPORT_USAGE", "6.2"},
	FeatureRestrictions:   {"IORING_REGISTER_RESTRICTIONS", "5.10"},
	FeatureExtArg:         {"IORING_FEAT_EXT_ARG", "5.11"},
	FeatureBufRing:        {"IORING_REGISTER_PBUF_RING", "5.19"},
	FeatureRecvMultishot:  {"IORING_RECV_MULTISHOT", "6.0"},
	FeatureRecvBundle:     {"IORING_RECVSEND_BUNDLE", "6.10"},
	FeatureDeferTaskrun:   {"IORING_SETUP_DEFER_TASKRUN", "6.1"},
	FeatureRegisterRingFD: {"IORING_REGISTER_RING_FDS", "5.18"},
}

func (f Feature) valid() bool { return f > 0 && f < featureEnd }

// String returns the kernel's name of the feature ("IORING_ASYNC_CANCEL_ANY").
func (f Feature) String() string {
	if !f.valid() {
		return "Feature(" + strconv.Itoa(int(f)) + ")"
	}
	return featureInfo[f].name
}

// MinKernel returns the first Linux release that has the feature ("5.19"),
// or "" for an unknown Feature.
func (f Feature) MinKernel() string {
	if !f.valid() {
		return ""
	}
	return featureInfo[f].min
}

// AllFeatures returns every Feature, in order: for tests and reports.
func AllFeatures() []Feature {
	fs := make([]Feature, 0, featureEnd-1)
	for f := Feature(1); f < featureEnd; f++ {
		fs = append(fs, f)
	}
	return fs
}

// errDisabled is the cause of a FeatureError for a feature switched off by
// Config.DisableFeatures or an opcode by Config.DisableOps.
var errDisabled = errors.New("disabled by Config")

// featureError is what Require returns for f.
func featureError(f Feature, disabled bool) error {
	e := &FeatureError{Name: f.String(), MinVersion: f.MinKernel()}
	if disabled {
		e.Err = errDisabled
	}
	return e
}
