//go:build linux

package ring

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type pairFunc func(t testing.TB) (a, b int)

var streamPairs = []struct {
	name string
	pair pairFunc
}{
	{"unix", func(t testing.TB) (int, int) { return socketpair(t, unix.SOCK_STREAM) }},
	{"tcp", tcpPair},
}

func TestSend(t *testing.T) {
	for _, p := range streamPairs {
		t.Run(p.name, func(t *testing.T) {
			r := newRing(t, Config{})
			a, b := p.pair(t)
			for i, size := range []int{1, 64, 4096, 60000} {
				msg := pattern(size, byte(i))
				ud := uint64(100 + i)
				submit1(t, r, ud, func(sqe *SQE) { PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL) })
				got := readN(t, b, size) // before harvesting: the CQE may need the reader
				c := waitCQEs(t, r, 1, 5*time.Second)
				checkCQE(t, c[0], ud, int32(size))
				checkBytes(t, got, msg)
			}
		})
	}
}

func TestSendmsg(t *testing.T) {
	for _, p := range streamPairs {
		t.Run(p.name, func(t *testing.T) {
			r := newRing(t, Config{})
			a, b := p.pair(t)
			parts := [][]byte{pattern(10, 1), pattern(1000, 2), pattern(1, 3), pattern(5000, 4)}
			iov := make([]unix.Iovec, len(parts))
			var want []byte
			for i, p := range parts {
				iov[i].Base = &p[0]
				iov[i].SetLen(len(p))
				want = append(want, p...)
			}
			var msg unix.Msghdr
			msg.Iov = &iov[0]
			msg.SetIovlen(len(iov))
			submit1(t, r, 42, func(sqe *SQE) { PrepSendmsg(sqe, a, &msg, unix.MSG_NOSIGNAL) })
			got := readN(t, b, len(want))
			c := waitCQEs(t, r, 1, 5*time.Second)
			checkCQE(t, c[0], 42, int32(len(want)))
			checkBytes(t, got, want)
		})
	}
}

// Many sends on one socket in one submission arrive in SQ order.
func TestSendBatchInOrder(t *testing.T) {
	r := newRing(t, Config{Entries: 64})
	a, b := socketpair(t, unix.SOCK_STREAM)
	const n = 64
	msgs := make([][]byte, n)
	var want []byte
	r.LockSQ()
	for i := range n {
		msgs[i] = pattern(100, byte(i))
		want = append(want, msgs[i]...)
		sqe, err := r.GetSQE()
		if err != nil {
			t.Fatal(err)
		}
		PrepSend(sqe, a, msgs[i], unix.MSG_NOSIGNAL)
		sqe.SetFlags(SQEIOLink) // keep order even if one has to wait
		sqe.SetUserData(uint64(i))
	}
	r.UnlockSQ()
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	checkBytes(t, readN(t, b, len(want)), want)
	cqes := waitCQEs(t, r, n, 5*time.Second)
	for i, c := range cqes {
		checkCQE(t, c, uint64(i), 100)
	}
}

func TestSendErrors(t *testing.T) {
	r := newRing(t, Config{})
	a, b := socketpair(t, unix.SOCK_STREAM)
	unix.Close(b)
	msg := []byte("x")
	submit1(t, r, 1, func(sqe *SQE) { PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL) })
	c := waitCQEs(t, r, 1, 5*time.Second)
	checkCQE(t, c[0], 1, -int32(unix.EPIPE))

	submit1(t, r, 2, func(sqe *SQE) { PrepSend(sqe, 1<<20, msg, 0) })
	c = waitCQEs(t, r, 1, 5*time.Second)
	checkCQE(t, c[0], 2, -int32(unix.EBADF))

	fds := make([]int, 2)
	if err := unix.Pipe2(fds, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	submit1(t, r, 3, func(sqe *SQE) { PrepSend(sqe, fds[1], msg, 0) })
	c = waitCQEs(t, r, 1, 5*time.Second)
	checkCQE(t, c[0], 3, -int32(unix.ENOTSOCK))
}

// SEND_ZC posts its result with CQEFMore, then a CQEFNotif CQE with the
// same user_data once the kernel lets go of the buffer.
func TestSendZC(t *testing.T) {
	r := newRing(t, Config{})
	skipUnlessSupported(t, r, OpSendZC)
	a, b := tcpPair(t)
	msg := pattern(32<<10, 9)
	submit1(t, r, 77, func(sqe *SQE) { PrepSendZC(sqe, a, msg, unix.MSG_NOSIGNAL, SendZCReportUsage) })
	got := readN(t, b, len(msg))
	checkBytes(t, got, msg)
	c := waitCQEs(t, r, 2, 5*time.Second)
	checkCQE(t, c[0], 77, int32(len(msg)))
	if c[0].Flags()&CQEFMore == 0 || c[0].Flags()&CQEFNotif != 0 {
		t.Fatalf("result CQE flags %#x: want F_MORE and not F_NOTIF", c[0].Flags())
	}
	if c[1].UserData() != 77 || c[1].Flags()&CQEFNotif == 0 || c[1].Flags()&CQEFMore != 0 {
		t.Fatalf("notification CQE {ud %d res %#x flags %#x}: want ud 77, F_NOTIF, no F_MORE",
			c[1].UserData(), c[1].Result(), c[1].Flags())
	}
	t.Logf("notification res %#x (copied: %v)", uint32(c[1].Result()), uint32(c[1].Result())&NotifUsageZCCopied != 0)
	if n := r.Inflight(); n != 0 {
		t.Fatalf("Inflight = %d after the notification", n)
	}
}

func TestSendmsgZC(t *testing.T) {
	r := newRing(t, Config{})
	skipUnlessSupported(t, r, OpSendmsgZC)
	a, b := tcpPair(t)
	parts := [][]byte{pattern(3000, 1), pattern(7000, 2)}
	iov := []unix.Iovec{{Base: &parts[0][0]}, {Base: &parts[1][0]}}
	iov[0].SetLen(len(parts[0]))
	iov[1].SetLen(len(parts[1]))
	var msg unix.Msghdr
	msg.Iov = &iov[0]
	msg.SetIovlen(len(iov))
	submit1(t, r, 5, func(sqe *SQE) { PrepSendmsgZC(sqe, a, &msg, unix.MSG_NOSIGNAL, 0) })
	checkBytes(t, readN(t, b, 10000), append(append([]byte(nil), parts[0]...), parts[1]...))
	c := waitCQEs(t, r, 2, 5*time.Second)
	checkCQE(t, c[0], 5, 10000)
	if c[0].Flags()&CQEFMore == 0 || c[1].UserData() != 5 || c[1].Flags()&CQEFNotif == 0 {
		t.Fatalf("CQEs %s: want result with F_MORE, then F_NOTIF", fmtCQEs(c))
	}
}

// A send to a peer whose buffers are full stays in flight, posting no
// CQE, until the receiver reads; then it completes in full.
func TestSendBlockedUntilReceiverReads(t *testing.T) {
	for _, p := range streamPairs {
		t.Run(p.name, func(t *testing.T) {
			r := newRing(t, Config{})
			a, b := p.pair(t)
			filled := fillSocket(t, a, b)
			msg := pattern(8192, 5)
			submit1(t, r, 9, func(sqe *SQE) { PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL) })
			// Give it every chance to complete wrongly.
			if _, err := r.SubmitAndWait(1, 50*time.Millisecond); err != unix.ETIME {
				t.Fatalf("SubmitAndWait on a blocked send: %v, want ETIME", err)
			}
			if n := r.Ready(); n != 0 {
				t.Fatalf("Ready() = %d while the peer is full", n)
			}
			if n := r.Inflight(); n != 1 {
				t.Fatalf("Inflight() = %d, want 1", n)
			}
			// The receiver reads what filled the buffers; the send goes
			// out as room appears. A stream send may complete short.
			checkBytes(t, readN(t, b, filled), make([]byte, filled))
			c := waitCQEs(t, r, 1, 5*time.Second)
			res := c[0].Result()
			if c[0].UserData() != 9 || res <= 0 || int(res) > len(msg) {
				t.Fatalf("CQE %s: want ud 9, 0 < res <= %d", fmtCQEs(c), len(msg))
			}
			checkBytes(t, readN(t, b, int(res)), msg[:res])
			if n := r.Inflight(); n != 0 {
				t.Fatalf("Inflight() = %d after completion", n)
			}
		})
	}
}

// PrepCancel and PrepCancelFD cancel a blocked send with -ECANCELED.
func TestSendCancel(t *testing.T) {
	r := newRing(t, Config{})
	a, b := socketpair(t, unix.SOCK_STREAM)
	fillSocket(t, a, b)
	msg := pattern(100, 1)
	submit1(t, r, 1, func(sqe *SQE) { PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL) })
	submit1(t, r, 2, func(sqe *SQE) { PrepCancel(sqe, 1) })
	c := waitCQEs(t, r, 2, 5*time.Second)
	res := map[uint64]int32{}
	for _, x := range c {
		res[x.UserData()] = x.Result()
	}
	if res[1] != -int32(unix.ECANCELED) || res[2] != 0 {
		t.Fatalf("CQEs %s: want send -ECANCELED, cancel 0", fmtCQEs(c))
	}

	submit1(t, r, 3, func(sqe *SQE) { PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL) })
	submit1(t, r, 4, func(sqe *SQE) { PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL) })
	submit1(t, r, 5, func(sqe *SQE) { PrepCancelFD(sqe, a) })
	c = waitCQEs(t, r, 3, 5*time.Second)
	res = map[uint64]int32{}
	for _, x := range c {
		res[x.UserData()] = x.Result()
	}
	if res[3] != -int32(unix.ECANCELED) || res[4] != -int32(unix.ECANCELED) || res[5] != 2 {
		t.Fatalf("CQEs %s: want sends -ECANCELED, cancel 2", fmtCQEs(c))
	}
}

// A LINK_TIMEOUT cancels a send that does not finish in time.
func TestSendLinkTimeout(t *testing.T) {
	r := newRing(t, Config{})
	a, b := socketpair(t, unix.SOCK_STREAM)
	fillSocket(t, a, b)
	msg := pattern(100, 1)
	ts := unix.NsecToTimespec(int64(20 * time.Millisecond))
	r.LockSQ()
	if err := r.Reserve(2); err != nil {
		t.Fatal(err)
	}
	sqe, _ := r.GetSQE()
	PrepSend(sqe, a, msg, unix.MSG_NOSIGNAL)
	sqe.SetFlags(SQEIOLink)
	sqe.SetUserData(1)
	sqe, _ = r.GetSQE()
	PrepLinkTimeout(sqe, &ts)
	sqe.SetUserData(2)
	r.UnlockSQ()
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	c := waitCQEs(t, r, 2, 5*time.Second)
	res := map[uint64]int32{}
	for _, x := range c {
		res[x.UserData()] = x.Result()
	}
	if res[1] != -int32(unix.ECANCELED) || res[2] != -int32(unix.ETIME) {
		t.Fatalf("CQEs %s: want send -ECANCELED, timeout -ETIME", fmtCQEs(c))
	}
	runtime.KeepAlive(&ts)
}
