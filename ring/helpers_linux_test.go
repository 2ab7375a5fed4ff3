package ring

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/uringsend/uringsend/internal/seccomptest"
)

func TestMain(m *testing.M) {
	if seccomptest.InChild() {
		// A child re-executed to run one test under a seccomp filter:
		// it has no goroutines of its own to check.
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// timeout scales d by URINGSEND_TIMEOUT_SCALE (a float, default 1) for slow
// machines.
func timeout(d time.Duration) time.Duration {
	if s, err := strconv.ParseFloat(os.Getenv("URINGSEND_TIMEOUT_SCALE"), 64); err == nil && s > 0 {
		return time.Duration(float64(d) * s)
	}
	return d
}

// kernelVersion parses uname's release ("6.18.44-fc-v669") into major and
// minor.
func kernelVersion(t testing.TB) (major, minor int) {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	if _, err := fmt.Sscanf(rel, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("cannot parse kernel release %q: %v", rel, err)
	}
	return major, minor
}

// kernelAtLeast reports whether the running kernel is >= major.minor.
func kernelAtLeast(t testing.TB, major, minor int) bool {
	maj, min := kernelVersion(t)
	return maj > major || maj == major && min >= minor
}

// newRing creates a ring that t's cleanup closes. It skips the test when
// io_uring is not available at all.
func newRing(t testing.TB, cfg Config) *Ring {
	t.Helper()
	r, err := New(cfg)
	if errors.Is(err, ErrNotSupported) {
		t.Skipf("io_uring not available: %v", err)
	}
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// skipUnlessSupported skips t when the kernel lacks opcode op, and fails it
// when a kernel that must have op (by its version) reports it missing.
func skipUnlessSupported(t testing.TB, r *Ring, op uint8) {
	t.Helper()
	if r.Supports(op) {
		return
	}
	if v, ok := opMinKernel[op]; ok && kernelAtLeast(t, v[0], v[1]) {
		t.Fatalf("kernel >= %d.%d reports opcode %d unsupported", v[0], v[1], op)
	}
	t.Skipf("opcode %d not supported by this kernel", op)
}

// opMinKernel is the first kernel that has each opcode.
var opMinKernel = map[uint8][2]int{
	OpNop:         {5, 1},
	OpSendmsg:     {5, 3},
	OpAsyncCancel: {5, 5},
	OpLinkTimeout: {5, 5},
	OpRead:        {5, 6},
	OpSend:        {5, 6},
	OpSendZC:      {6, 0},
	OpSendmsgZC:   {6, 1},
}

// socketpair returns a connected AF_UNIX pair closed by t's cleanup.
func socketpair(t testing.TB, typ int) (a, b int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// tcpPair returns a connected loopback TCP pair as raw fds (duplicated from
// net.Conns, blocking) closed by t's cleanup.
func tcpPair(t testing.TB) (a, b int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		c1.Close()
		t.Fatal(r.err)
	}
	dup := func(c net.Conn) int {
		f, err := c.(*net.TCPConn).File() // a blocking duplicate
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fd, err := unix.Dup(int(f.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		unix.CloseOnExec(fd)
		return fd
	}
	a, b = dup(c1), dup(r.c)
	t.Cleanup(func() { unix.Close(a); unix.Close(b) })
	return a, b
}

// fillSocket makes fd's send path full: it shrinks fd's send buffer and
// the peer's receive buffer (TCP's window would open again otherwise) and
// writes without blocking until the socket has stayed unwritable for a
// while (TCP keeps moving data to the peer for a moment after EAGAIN). It
// returns the bytes written, all zeros.
func fillSocket(t testing.TB, fd, peer int) int {
	t.Helper()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptInt(peer, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	total := 0
	for quiet := 0; quiet < 5; {
		n, err := unix.SendmsgN(fd, chunk, nil, nil, unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN:
			quiet++
			time.Sleep(10 * time.Millisecond)
		case err != nil:
			t.Fatalf("fill: %v", err)
		default:
			quiet = 0
			total += n
		}
	}
	return total
}

// readN reads exactly n bytes from fd, failing t on error or timeout. It
// never blocks in read, so a test goroutine stays able to run task work.
func readN(t testing.TB, fd, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	deadline := time.Now().Add(timeout(10 * time.Second))
	for got := 0; got < n; {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d bytes before timeout", got, n)
		}
		m, _, err := unix.Recvfrom(fd, buf[got:], unix.MSG_DONTWAIT)
		if err == unix.EAGAIN || err == unix.EINTR {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			unix.Poll(pfd, 10)
			continue
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if m == 0 {
			t.Fatalf("EOF after %d of %d bytes", got, n)
		}
		got += m
	}
	return buf
}

// submit1 takes one SQE, lets prep fill it, tags it with ud and submits.
func submit1(t testing.TB, r *Ring, ud uint64, prep func(*SQE)) {
	t.Helper()
	r.LockSQ()
	sqe, err := r.GetSQE()
	if err != nil {
		r.UnlockSQ()
		t.Fatalf("GetSQE: %v", err)
	}
	prep(sqe)
	sqe.SetUserData(ud)
	r.UnlockSQ()
	if _, err := r.Submit(); err != nil {
		t.Fatalf("Submit: %v", err)
	}
}

// waitCQEs harvests until n CQEs (internal ones excluded) have arrived,
// failing t after d.
func waitCQEs(t testing.TB, r *Ring, n int, d time.Duration) []CQE {
	t.Helper()
	var got []CQE
	buf := make([]CQE, 64)
	deadline := time.Now().Add(timeout(d))
	for len(got) < n {
		r.LockCQ()
		k := r.PeekBatch(buf)
		r.UnlockCQ()
		got = append(got, buf[:k]...)
		if len(got) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d of %d CQEs before timeout: %v", len(got), n, fmtCQEs(got))
		}
		if k == 0 {
			if _, err := r.SubmitAndWait(1, 10*time.Millisecond); err != nil && err != unix.ETIME {
				t.Fatalf("SubmitAndWait: %v", err)
			}
		}
	}
	return got
}

func fmtCQEs(cqes []CQE) string {
	var b strings.Builder
	for i := range cqes {
		fmt.Fprintf(&b, "{ud %d res %d flags %#x} ", cqes[i].UserData(), cqes[i].Result(), cqes[i].Flags())
	}
	return b.String()
}

// checkCQE fails t unless c has user_data ud and result res.
func checkCQE(t testing.TB, c CQE, ud uint64, res int32) {
	t.Helper()
	if c.UserData() != ud || c.Result() != res {
		t.Fatalf("CQE {ud %d res %d (%v) flags %#x}, want {ud %d res %d}",
			c.UserData(), c.Result(), errnoOf(c.Result()), c.Flags(), ud, res)
	}
}

func errnoOf(res int32) error {
	if res >= 0 {
		return nil
	}
	return syscall.Errno(-res)
}

// recorder is a Handler that counts final CQEs per user_data and keeps
// every CQE. Safe for use by a reaper and inline harvesters.
type recorder struct {
	mu          sync.Mutex
	cqes        []CQE
	final       map[uint64]int
	total       atomic.Int64 // final CQEs
	afters      atomic.Int64
	handleDelay time.Duration
	notify      chan struct{}
}

func newRecorder() *recorder {
	return &recorder{final: make(map[uint64]int), notify: make(chan struct{}, 1)}
}

func (h *recorder) HandleCQEs(cqes []CQE) {
	if h.handleDelay > 0 {
		time.Sleep(h.handleDelay)
	}
	h.mu.Lock()
	for _, c := range cqes {
		h.cqes = append(h.cqes, c)
		if c.Flags()&CQEFMore == 0 {
			h.final[c.UserData()]++
		}
	}
	h.mu.Unlock()
	var n int64
	for _, c := range cqes {
		if c.Flags()&CQEFMore == 0 {
			n++
		}
	}
	h.total.Add(n)
	select {
	case h.notify <- struct{}{}:
	default:
	}
}

func (h *recorder) AfterHarvest() { h.afters.Add(1) }

// waitTotal waits until n final CQEs were handled.
func (h *recorder) waitTotal(t testing.TB, n int64, d time.Duration) {
	t.Helper()
	deadline := time.After(timeout(d))
	for h.total.Load() < n {
		select {
		case <-h.notify:
		case <-time.After(time.Millisecond):
		case <-deadline:
			t.Fatalf("handled %d of %d final CQEs before timeout", h.total.Load(), n)
		}
	}
}

// snapshot returns copies of what was recorded.
func (h *recorder) snapshot() ([]CQE, map[uint64]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := make(map[uint64]int, len(h.final))
	for k, v := range h.final {
		m[k] = v
	}
	return append([]CQE(nil), h.cqes...), m
}

// checkExactlyOnce fails t unless counts has every user_data in [0, n)
// exactly once and nothing else.
func checkExactlyOnce(t testing.TB, counts map[uint64]int, n int) {
	t.Helper()
	bad := 0
	for ud := range uint64(n) {
		if c := counts[ud]; c != 1 {
			if bad++; bad <= 10 {
				t.Errorf("user_data %d completed %d times", ud, c)
			}
		}
	}
	for ud := range counts {
		if ud >= uint64(n) {
			if bad++; bad <= 10 {
				t.Errorf("unexpected user_data %d", ud)
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d bad user_data in all", bad)
	}
}

// pattern returns n bytes that differ per seed and offset.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func checkBytes(t testing.TB, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("receiver got %d bytes %x..., want %x...", len(got), head(got), head(want))
	}
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

// sqeCQESkipSuccess is IOSQE_CQE_SKIP_SUCCESS (5.17): no CQE on success.
const sqeCQESkipSuccess = 1 << 6

// sqFlagsNow reads the kernel's IORING_SQ_* flags.
func (r *Ring) sqFlagsNow() uint32 { return atomic.LoadUint32(r.sqFlags) }
