//go:build linux

package ring

import (
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A default ring allows RECV: the socket engine receives through it.
func TestDefaultOpsHaveRecv(t *testing.T) {
	if !slices.Contains(DefaultOps, OpRecv) {
		t.Fatalf("DefaultOps %v lacks OpRecv", DefaultOps)
	}
}

func TestRecv(t *testing.T) {
	for _, p := range streamPairs {
		t.Run(p.name, func(t *testing.T) {
			r := newRing(t, Config{})
			skipUnlessSupported(t, r, OpRecv)
			a, b := p.pair(t)
			msg := pattern(3000, 7)
			if _, err := unix.Write(b, msg); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 8192)
			submit1(t, r, 7, func(sqe *SQE) { PrepRecv(sqe, a, buf, 0) })
			c := waitCQEs(t, r, 1, 5*time.Second)
			checkCQE(t, c[0], 7, int32(len(msg)))
			checkBytes(t, buf[:len(msg)], msg)

			// A receive that waits for data (poll first) completes
			// when the data comes; end of stream is res 0.
			submit1(t, r, 8, func(sqe *SQE) {
				PrepRecv(sqe, a, buf, 0)
				sqe.SetIoprio(RecvsendPollFirst)
			})
			time.Sleep(20 * time.Millisecond)
			if _, err := unix.Write(b, msg[:10]); err != nil {
				t.Fatal(err)
			}
			c = waitCQEs(t, r, 1, 5*time.Second)
			checkCQE(t, c[0], 8, 10)
			unix.Shutdown(b, unix.SHUT_WR)
			submit1(t, r, 9, func(sqe *SQE) { PrepRecv(sqe, a, buf, 0) })
			c = waitCQEs(t, r, 1, 5*time.Second)
			checkCQE(t, c[0], 9, 0)
		})
	}
}

// On a non-blocking socket with nothing to read, RECV either waits for
// data (fast poll) or answers -EAGAIN; with RecvsendPollFirst it must
// wait. The socket engine resubmits with poll first on EAGAIN, which this
// pins down.
func TestRecvNonblockPollFirst(t *testing.T) {
	r := newRing(t, Config{})
	skipUnlessSupported(t, r, OpRecv)
	a, b := socketpair(t, unix.SOCK_STREAM)
	if err := unix.SetNonblock(a, true); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	submit1(t, r, 11, func(sqe *SQE) {
		PrepRecv(sqe, a, buf, 0)
		sqe.SetIoprio(RecvsendPollFirst)
	})
	time.Sleep(20 * time.Millisecond)
	if n := r.Ready(); n != 0 {
		t.Fatalf("a poll-first receive with nothing to read completed (%d CQEs)", n)
	}
	if _, err := unix.Write(b, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	c := waitCQEs(t, r, 1, 5*time.Second)
	checkCQE(t, c[0], 11, 5)
	if string(buf[:5]) != "hello" {
		t.Fatalf("got %q", buf[:5])
	}
}
