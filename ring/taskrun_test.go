//go:build linux

package ring

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"

	sys "github.com/iceber/iouring-go/syscall"
	"golang.org/x/sys/unix"
)

// These tests and benchmarks evaluate IORING_SETUP_DEFER_TASKRUN with
// SINGLE_ISSUER and registered ring fds, which New does not set up yet:
// they pin down what the kernel demands of the thread that uses such a
// ring, and measure what the receive path would gain.

// withSetupFlags makes New ask io_uring_setup for flags too, until tb ends.
func withSetupFlags(tb testing.TB, flags uint32) {
	tb.Helper()
	saved := sysSetup
	tb.Cleanup(func() { sysSetup = saved })
	sysSetup = func(entries uint32, p *sys.IOURingParams) (int, error) {
		p.Flags |= flags
		return saved(entries, p)
	}
}

// onOtherThread runs f on an OS thread other than the caller's, which
// must have locked its own.
func onOtherThread(f func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		f()
		close(done)
	}()
	<-done
}

// With SINGLE_ISSUER the thread that enabled the ring (New's, on a
// restricted ring) is its only submitter: another thread's submit, wait
// and register all fail with EEXIST. With DEFER_TASKRUN a completion
// that comes from task work — a receive woken by data — is not posted
// until that thread waits for completions: the kernel flags it pending
// (IORING_SQ_TASKRUN) and the CQ stays empty meanwhile. So the reaper
// must be that thread (locked), every submission must reach the kernel
// from it, and PeekBatch's flush may only be called there.
func TestDeferTaskrunSingleIssuer(t *testing.T) {
	probe := newRing(t, Config{})
	skipUnlessHas(t, probe, FeatureDeferTaskrun)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	withSetupFlags(t, setupSingleIssuer|setupDeferTaskrun)
	r := newRing(t, Config{})
	defer r.Close() // on the issuer thread
	if f := r.SetupFlags(); f&(setupSingleIssuer|setupDeferTaskrun) != setupSingleIssuer|setupDeferTaskrun {
		t.Fatalf("setup flags %#x", f)
	}

	onOtherThread(func() {
		r.LockSQ()
		sqe, err := r.GetSQE()
		if err != nil {
			r.UnlockSQ()
			t.Errorf("GetSQE: %v", err)
			return
		}
		PrepNop(sqe)
		sqe.SetUserData(1)
		r.UnlockSQ()
		if _, err := r.Submit(); !errors.Is(err, unix.EEXIST) {
			t.Errorf("Submit from another thread: %v, want EEXIST", err)
		}
		if _, err := r.SubmitAndWait(1, 0); !errors.Is(err, unix.EEXIST) {
			t.Errorf("SubmitAndWait from another thread: %v, want EEXIST", err)
		}
		if r.Has(FeatureBufRing) {
			if _, err := r.RegisterBufRing(1, 4, 64); !errors.Is(err, unix.EEXIST) {
				t.Errorf("RegisterBufRing from another thread: %v, want EEXIST", err)
			}
		}
	})
	// The NOP another thread published is submitted by this one.
	checkCQE(t, waitCQEs(t, r, 1, 5*time.Second)[0], 1, 0)

	a, b := socketpair(t, unix.SOCK_STREAM)
	buf := make([]byte, 16)
	submit1(t, r, 2, func(sqe *SQE) { PrepRecv(sqe, a, buf, 0) })
	if _, err := unix.Write(b, []byte("late")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout(5 * time.Second))
	for r.sqFlagsNow()&sqTaskrun == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the receive's task work was never flagged")
		}
		time.Sleep(time.Millisecond)
	}
	if n := r.Ready(); n != 0 {
		t.Fatalf("%d CQEs posted before the issuer waited", n)
	}
	if _, err := r.SubmitAndWait(1, 0); err != nil {
		t.Fatal(err)
	}
	checkCQE(t, waitCQEs(t, r, 1, 5*time.Second)[0], 2, 4)
}

// A registered ring fd belongs to the thread that registered it: another
// thread's io_uring_enter with IORING_ENTER_REGISTERED_RING and that
// index fails (EINVAL from a thread that never used io_uring, EBADF from
// one that has an empty slot there), while the registering thread's works.
func TestRegisteredRingFDPerThread(t *testing.T) {
	r := newRing(t, Config{})
	skipUnlessHas(t, r, FeatureRegisterRingFD)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	idx, unregister := registerRingFD(t, r)
	defer unregister()
	if _, err := enterRaw(int(idx), 0, 0, enterGetEvents|enterRegisteredRing); err != nil {
		t.Fatalf("enter by index on the registering thread: %v", err)
	}
	onOtherThread(func() {
		if _, err := enterRaw(int(idx), 0, 0, enterGetEvents|enterRegisteredRing); err != unix.EINVAL && err != unix.EBADF {
			t.Errorf("enter by index on another thread: %v, want EINVAL or EBADF", err)
		}
	})
}

// registerRingFD registers r's fd with the calling (locked) thread and
// returns its index and the function that unregisters it, which must run
// on the same thread: the registration holds the ring open until the
// thread unregisters it or exits, whoever closes the fd.
func registerRingFD(tb testing.TB, r *Ring) (idx uint32, unregister func()) {
	tb.Helper()
	upd := rsrcUpdate{offset: ^uint32(0), data: uint64(r.fd)}
	if err := r.register(registerRingFDs, unsafe.Pointer(&upd), 1); err != nil {
		tb.Fatalf("IORING_REGISTER_RING_FDS: %v", err)
	}
	return upd.offset, func() {
		u := rsrcUpdate{offset: upd.offset}
		if err := r.register(unregisterRingFDs, unsafe.Pointer(&u), 1); err != nil {
			tb.Errorf("IORING_UNREGISTER_RING_FDS: %v", err)
		}
	}
}

// enterTarget returns the fd and flags with which the calling (locked)
// thread waits for r's completions: r's fd, or with regFD the index of r's
// fd registered with this thread, and the function that undoes that.
func enterTarget(tb testing.TB, r *Ring, regFD bool) (fd int, flags uint32, undo func()) {
	tb.Helper()
	if !regFD {
		return r.fd, enterGetEvents, func() {}
	}
	skipUnlessHas(tb, r, FeatureRegisterRingFD)
	idx, unregister := registerRingFD(tb, r)
	return int(idx), enterGetEvents | enterRegisteredRing, unregister
}

func enterRaw(fd int, toSubmit, minComplete, flags uint32) (int, error) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

// BenchmarkRecvMultishot is the relay's receive path on one thread:
// peers write 64 bytes each on conns connections, the receiver waits in
// io_uring_enter for the multishot receives' CQEs, reads them and
// recycles the buffers. ns/op is per message. Variants: the default ring
// (COOP_TASKRUN), DEFER_TASKRUN with SINGLE_ISSUER, and either with a
// registered ring fd; one connection (ping) or 32 written in a burst
// before one wait.
func BenchmarkRecvMultishot(b *testing.B) {
	for _, conns := range []int{1, 32} {
		for _, v := range []struct {
			name  string
			flags uint32
			regFD bool
		}{
			{"coop", 0, false},
			{"coop+regfd", 0, true},
			{"defer", setupSingleIssuer | setupDeferTaskrun, false},
			{"defer+regfd", setupSingleIssuer | setupDeferTaskrun, true},
		} {
			b.Run(fmt.Sprintf("conns=%d/%s", conns, v.name), func(b *testing.B) {
				benchRecvMultishot(b, conns, v.flags, v.regFD)
			})
		}
	}
}

func benchRecvMultishot(b *testing.B, conns int, setupFlags uint32, regFD bool) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if setupFlags != 0 {
		withSetupFlags(b, setupFlags)
	}
	r := newRing(b, Config{})
	skipUnlessHas(b, r, FeatureRecvMultishot)
	if r.SetupFlags()&setupFlags != setupFlags {
		b.Skip("setup flags refused")
	}
	// Close on this thread: it cancels the armed receives, which a
	// SINGLE_ISSUER ring takes from its issuer only.
	defer r.Close()
	fd, flags, unregister := enterTarget(b, r, regFD)
	defer unregister()
	br := newBufRing(b, r, 1, 256, 4096)
	rx, tx := make([]int, conns), make([]int, conns)
	for i := range conns {
		rx[i], tx[i] = socketpair(b, unix.SOCK_STREAM)
	}
	arm := func(i int) {
		r.LockSQ()
		sqe, _ := r.GetSQE()
		PrepRecvMultishot(sqe, rx[i], br.Group(), false)
		sqe.SetUserData(uint64(i))
		r.UnlockSQ()
	}
	for i := range conns {
		arm(i)
	}
	msg := make([]byte, 64)
	cqes := make([]CQE, 64)
	b.ResetTimer()
	for range b.N / conns {
		for i := range conns {
			if _, err := unix.Write(tx[i], msg); err != nil {
				b.Fatal(err)
			}
		}
		for got := 0; got < conns*len(msg); {
			if _, err := enterRaw(fd, r.pending(), 1, flags); err != nil {
				b.Fatal(err)
			}
			r.LockCQ()
			n := r.PeekBatch(cqes)
			r.UnlockCQ()
			for i := range n {
				c := &cqes[i]
				if bid, ok := BufferID(c); ok {
					got += int(c.Result())
					br.Recycle(bid)
				}
				if c.Flags()&CQEFMore == 0 {
					arm(int(c.UserData()))
				}
			}
		}
	}
}

// BenchmarkEnterNop measures what a registered ring fd saves per
// io_uring_enter: one NOP submitted and waited for per call.
func BenchmarkEnterNop(b *testing.B) {
	for _, regFD := range []bool{false, true} {
		name := "fd"
		if regFD {
			name = "regfd"
		}
		b.Run(name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			r := newRing(b, Config{})
			fd, flags, unregister := enterTarget(b, r, regFD)
			defer unregister()
			cqes := make([]CQE, 8)
			b.ResetTimer()
			for range b.N {
				r.LockSQ()
				sqe, _ := r.GetSQE()
				PrepNop(sqe)
				r.UnlockSQ()
				if _, err := enterRaw(fd, 1, 1, flags); err != nil {
					b.Fatal(err)
				}
				r.LockCQ()
				r.PeekBatch(cqes)
				r.UnlockCQ()
			}
		})
	}
}
