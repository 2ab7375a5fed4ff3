//go:build linux

package ring

import (
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// prepRead fills sqe with IORING_OP_READ of len(b) bytes from fd, which a
// default ring does not allow.
func prepRead(sqe *SQE, fd int, b []byte) {
	sqe.PrepOperation(OpRead, int32(fd), uint64(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b)), ^uint64(0))
}

// A default ring refuses an opcode outside DefaultOps with -EACCES in the
// CQE, and still runs the ones it allows.
func TestRestrictRefusesRead(t *testing.T) {
	r := newRing(t, Config{})
	skipUnlessSupported(t, r, OpRead)
	a, b := socketpair(t, unix.SOCK_STREAM)
	if _, err := unix.Write(b, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	submit1(t, r, 1, func(sqe *SQE) { prepRead(sqe, a, buf) })
	c := waitCQEs(t, r, 1, 5*time.Second)
	checkCQE(t, c[0], 1, -int32(unix.EACCES))
	if buf[0] != 0 {
		t.Fatalf("refused READ wrote %q", buf)
	}

	msg := []byte("allowed")
	submit1(t, r, 2, func(sqe *SQE) { PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL) })
	c = waitCQEs(t, r, 1, 5*time.Second)
	checkCQE(t, c[0], 2, int32(len(msg)))
	checkBytes(t, readN(t, b, len(msg)), msg)
	if n := r.Inflight(); n != 0 {
		t.Fatalf("Inflight = %d after all CQEs", n)
	}
}

// SQE flags outside AllowedSQEFlags are refused too.
func TestRestrictRefusesSQEFlag(t *testing.T) {
	r := newRing(t, Config{})
	submit1(t, r, 7, func(sqe *SQE) {
		PrepNop(sqe)
		sqe.SetFlags(SQEIODrain)
	})
	c := waitCQEs(t, r, 1, 5*time.Second)
	checkCQE(t, c[0], 7, -int32(unix.EACCES))
	submit1(t, r, 8, func(sqe *SQE) {
		PrepNop(sqe)
		sqe.SetFlags(SQEAsync)
	})
	c = waitCQEs(t, r, 1, 5*time.Second)
	checkCQE(t, c[0], 8, 0)
}

// ExtraOps widens the allowed set.
func TestRestrictExtraOps(t *testing.T) {
	r := newRing(t, Config{ExtraOps: []uint8{OpRead}})
	skipUnlessSupported(t, r, OpRead)
	testReadWorks(t, r)
}

// An Unrestricted ring accepts every opcode the kernel has.
func TestRestrictUnrestrictedAcceptsRead(t *testing.T) {
	r := newRing(t, Config{Unrestricted: true})
	skipUnlessSupported(t, r, OpRead)
	testReadWorks(t, r)
}

func testReadWorks(t *testing.T, r *Ring) {
	t.Helper()
	a, b := socketpair(t, unix.SOCK_STREAM)
	want := pattern(100, 3)
	if _, err := unix.Write(b, want); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	submit1(t, r, 1, func(sqe *SQE) { prepRead(sqe, a, buf) })
	c := waitCQEs(t, r, 1, 5*time.Second)
	checkCQE(t, c[0], 1, int32(len(want)))
	checkBytes(t, buf[:c[0].Result()], want)
}

// A restricted ring also refuses every io_uring_register opcode: the
// restrictions list no IORING_RESTRICTION_REGISTER_OP, and the kernel
// allows only listed ones. Registered files and buffers therefore need
// Unrestricted (or register-op entries added to restrict()).
func TestRestrictRefusesRegister(t *testing.T) {
	var p probe
	r := newRing(t, Config{})
	if err := r.register(registerProbe, unsafe.Pointer(&p), uint32(len(p.ops))); err != unix.EACCES {
		t.Errorf("IORING_REGISTER_PROBE on a restricted ring: %v, want EACCES", err)
	}
	u := newRing(t, Config{Unrestricted: true})
	if err := u.register(registerProbe, unsafe.Pointer(&p), uint32(len(p.ops))); err != nil {
		t.Errorf("IORING_REGISTER_PROBE on an unrestricted ring: %v", err)
	}
}
