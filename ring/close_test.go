//go:build linux

package ring

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Without FeatureCancelAny (kernels before 5.19) Close cannot cancel what
// it does not know: it submits no cancel, waits its drain budget for the
// requests to finish on their own, then abandons them, and closing the
// ring fd makes the kernel cancel them. Close returns in bounded time and
// the request never completes through the Handler.
func TestCloseWithoutCancelAny(t *testing.T) {
	defer func(d time.Duration) { drainBudget = d }(drainBudget)
	drainBudget = 200 * time.Millisecond
	r, err := New(Config{DisableFeatures: []Feature{FeatureCancelAny}})
	if err != nil {
		t.Skip(err)
	}
	h := newRecorder()
	if _, err := r.StartReaper(h, 0, nil); err != nil {
		t.Fatal(err)
	}
	a, b := socketpair(t, unix.SOCK_STREAM)
	buf := make([]byte, 64)
	submit1(t, r, 1, func(sqe *SQE) { PrepRecv(sqe, a, buf, 0) }) // nothing to read: waits
	time.Sleep(10 * time.Millisecond)
	before := r.Stats().Submitted

	start := time.Now()
	closeWithin(t, r, 5*time.Second)
	took := time.Since(start)
	if took < drainBudget {
		t.Errorf("Close took %v, less than the drain budget: something cancelled the receive", took)
	}
	cqes, _ := h.snapshot()
	if len(cqes) != 0 {
		t.Errorf("handler got %s: Close cancelled without IORING_ASYNC_CANCEL_ANY", fmtCQEs(cqes))
	}
	t.Logf("Close took %v; %d SQEs submitted by it (wake-ups)", took, r.Stats().Submitted-before)

	// Closing the ring fd ended the receive: bytes written now reach the
	// socket's reader, not the abandoned request.
	deadline := time.Now().Add(timeout(5 * time.Second))
	got := make([]byte, 8)
	for {
		if _, err := unix.Write(b, []byte{7}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		if n, _, err := unix.Recvfrom(a, got, unix.MSG_DONTWAIT); err == nil && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the receive still takes the socket's bytes after Close")
		}
	}
	runtime.KeepAlive(buf)
}

// With FeatureCancelAny Close cancels the same receive at once.
func TestCloseCancelsWithCancelAny(t *testing.T) {
	r, err := New(Config{})
	if err != nil {
		t.Skip(err)
	}
	skipUnlessHas(t, r, FeatureCancelAny)
	h := newRecorder()
	if _, err := r.StartReaper(h, 0, nil); err != nil {
		t.Fatal(err)
	}
	a, _ := socketpair(t, unix.SOCK_STREAM)
	buf := make([]byte, 64)
	submit1(t, r, 1, func(sqe *SQE) { PrepRecv(sqe, a, buf, 0) })
	closeWithin(t, r, 5*time.Second)
	cqes, _ := h.snapshot()
	if len(cqes) != 1 {
		t.Fatalf("handler got %s, want the receive cancelled", fmtCQEs(cqes))
	}
	checkCQE(t, cqes[0], 1, -int32(unix.ECANCELED))
	runtime.KeepAlive(buf)
}
