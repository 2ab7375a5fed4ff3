//go:build linux

package tests

import (
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// Helpers of the fault and fuzz tests (fault_*_test.go, fuzz_*_test.go).

// newEngineCfg starts an engine with cfg (cfg.Backend names the backend it
// must run on) and closes it when the test ends, unless the test did.
func newEngineCfg(t testing.TB, cfg socket.EngineConfig) *socket.Engine {
	t.Helper()
	eng, err := socket.NewEngine(cfg)
	if err != nil {
		t.Fatalf("NewEngine(%+v): %v", cfg, err)
	}
	if got := eng.Backend(); got != cfg.Backend {
		eng.Close()
		t.Fatalf("NewEngine(%s) runs on %s", cfg.Backend, got)
	}
	t.Cleanup(func() {
		err := boundedClose(t, "Engine.Close", eng.Close)
		if err != nil && !errors.Is(err, socket.ErrClosed) && err != errHung {
			t.Errorf("Engine.Close: %v", err)
		}
	})
	return eng
}

// faultRounds is how many rounds a fault test repeats: n, 1 with -short,
// 10·n with UR_TEST_LONG set (for soaking the suite itself).
func faultRounds(n int) int {
	switch {
	case testing.Short():
		return 1
	case os.Getenv("UR_TEST_LONG") != "":
		return 10 * n
	}
	return n
}

// noSIGPIPE fails t if the process receives SIGPIPE from now until the
// test ends (MSG_NOSIGNAL must be on every send).
func noSIGPIPE(t testing.TB) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGPIPE)
	t.Cleanup(func() {
		signalBarrier(t) // a SIGPIPE of the test's sends is in sigs by now
		signal.Stop(sigs)
		select {
		case sig := <-sigs:
			t.Errorf("%v delivered: MSG_NOSIGNAL missing", sig)
		default:
		}
	})
}

// ---- a peer under the test's control -----------------------------------------

// peerOpts shapes a peerReader.
type peerOpts struct {
	chunk   int             // bytes per Read (default 64 KiB)
	slow    time.Duration   // sleep after every Read
	gate    <-chan struct{} // if not nil, wait for it before the first Read
	pauseAt int64           // > 0: once this many bytes are in, stop reading until resume
	resetAt int64           // > 0: once this many bytes are in, reset the connection and stop
}

// peerReader reads a stream peer and keeps every byte. It can stop reading
// for a while (the sender then sees a zero window) or reset the connection
// (TCP: SO_LINGER 0 and close, which sends RST; unix: close with unread
// data) once a given number of bytes has arrived.
type peerReader struct {
	c      net.Conn
	o      peerOpts
	n      atomic.Int64
	got    []byte // owned by the reading goroutine until done
	paused chan struct{}
	resume chan struct{}
	done   chan struct{}
	err    error // the error that ended the reads, nil on EOF
	reset  bool  // the reader reset the connection
}

func startPeerReader(t testing.TB, c net.Conn, o peerOpts) *peerReader {
	if o.chunk <= 0 {
		o.chunk = 64 << 10
	}
	r := &peerReader{c: c, o: o, paused: make(chan struct{}), resume: make(chan struct{}), done: make(chan struct{})}
	stop := make(chan struct{})
	go func() {
		defer close(r.done)
		if o.gate != nil {
			select {
			case <-o.gate:
			case <-stop:
				return
			}
		}
		buf := make([]byte, o.chunk)
		pausedOnce := false
		for {
			n, err := c.Read(buf)
			r.got = append(r.got, buf[:n]...)
			total := r.n.Add(int64(n))
			if err != nil {
				if err != io.EOF {
					r.err = err
				}
				return
			}
			if o.resetAt > 0 && total >= o.resetAt {
				resetConn(c)
				r.reset = true
				return
			}
			if o.pauseAt > 0 && total >= o.pauseAt && !pausedOnce {
				pausedOnce = true
				close(r.paused)
				select {
				case <-r.resume:
				case <-stop:
					return
				}
			}
			if o.slow > 0 {
				time.Sleep(o.slow)
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		c.Close()
		<-r.done
	})
	return r
}

// resetConn closes c so that the other end sees a reset: SO_LINGER 0 on
// TCP sends RST; a unix stream socket closed with unread data fails the
// sender's next send.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// wait returns everything the peer read, once it stopped (EOF, reset or
// error), and the error that stopped it.
func (r *peerReader) wait(t testing.TB) ([]byte, error) {
	t.Helper()
	waitChan(t, r.done, longWait(), "the peer to stop reading")
	return r.got, r.err
}

// ---- what the peer must receive --------------------------------------------

// deliveredStream is what a stream peer must receive from sends that
// completed: the first BytesTransferred bytes of each, in call order.
func deliveredStream(args []sendop.Args, shapes []shape) []byte {
	var out []byte
	for i := range args {
		out = appendPrefix(out, shapes[i], args[i].BytesTransferred())
	}
	return out
}

// countResults counts the sends of args that ended with se.
func countResults(args []sendop.Args, se sendop.SocketError) int {
	n := 0
	for i := range args {
		if args[i].SocketError() == se {
			n++
		}
	}
	return n
}

// appendPrefix appends the first n bytes of sh to out.
func appendPrefix(out []byte, sh shape, n int) []byte {
	if sh.bufs == nil {
		return append(out, sh.buf[:n]...)
	}
	for _, b := range sh.bufs {
		k := min(n, len(b))
		out = append(out, b[:k]...)
		n -= k
	}
	return out
}

// errnosOf lists, for each SocketError the fault tests expect, the errnos
// that may stand behind it.
var errnosOf = map[sendop.SocketError][]syscall.Errno{
	sendop.ConnectionReset:        {syscall.ECONNRESET},
	sendop.Shutdown:               {syscall.EPIPE, syscall.ESHUTDOWN},
	sendop.OperationAborted:       {syscall.ECANCELED, syscall.EBADF},
	sendop.ConnectionRefused:      {syscall.ECONNREFUSED},
	sendop.MessageSize:            {syscall.EMSGSIZE},
	sendop.NoBufferSpaceAvailable: {syscall.ENOBUFS, syscall.ENOMEM},
	sendop.TimedOut:               {syscall.ETIMEDOUT, syscall.ETIME},
	sendop.NotConnected:           {syscall.ENOTCONN},
}

// resultError checks that e's Err agrees with its SocketError: nil on
// Success; otherwise a *sendop.Error with the same Code whose errno maps
// to it (errors.Is with the errno works), and the errno is one that may
// stand behind that SocketError. It returns a description of the first
// disagreement, or "".
func resultError(e *sendop.Args) string {
	se, err := e.SocketError(), e.Err()
	if se == sendop.Success {
		if err != nil {
			return "Success with Err() = " + err.Error()
		}
		return ""
	}
	var serr *sendop.Error
	if !errors.As(err, &serr) {
		return se.String() + " without a *sendop.Error"
	}
	if serr.Code != se || sendop.SocketErrorOf(serr.Errno) != se {
		return se.String() + " but Err() says " + serr.Error()
	}
	if !errors.Is(err, serr.Errno) {
		return "errors.Is(Err(), its errno) is false"
	}
	if want, ok := errnosOf[se]; ok {
		for _, errno := range want {
			if errors.Is(err, errno) {
				return ""
			}
		}
		return se.String() + " from an unexpected errno: " + err.Error()
	}
	return ""
}

// checkResults is checkPrefixes (each send a full success or a prefix with
// an allowed error, no gaps) plus resultError on each send. It returns the
// stream the peer must have received.
func checkResults(t *testing.T, args []sendop.Args, shapes []shape, allowed ...sendop.SocketError) ([]byte, map[sendop.SocketError]int) {
	t.Helper()
	_, byErr := checkPrefixes(t, args, shapes, allowed...)
	for i := range args {
		if msg := resultError(&args[i]); msg != "" {
			t.Fatalf("send %d: %s", i, msg)
		}
	}
	return deliveredStream(args, shapes), byErr
}

// queueAll sends every shape on s with its own Args (UserToken = index),
// recording each completion in tr; then, if not nil, calls onDone(i, e) in
// Completed after the tracker. It fails t on an error from SendAsync.
func queueAll(t *testing.T, s *socket.Socket, shapes []shape, tr *tracker, onDone func(i int, e *sendop.Args)) []sendop.Args {
	t.Helper()
	args := make([]sendop.Args, len(shapes))
	queueRange(t, s, args, shapes, tr, 0, len(shapes), onDone)
	return args
}

// queueRange is queueAll for args[from:to] (an Args must not be copied
// once used, so the caller allocates them all).
func queueRange(t *testing.T, s *socket.Socket, args []sendop.Args, shapes []shape, tr *tracker, from, to int, onDone func(i int, e *sendop.Args)) {
	t.Helper()
	for i := from; i < to; i++ {
		shapes[i].apply(&args[i])
		args[i].UserToken = i
		args[i].Completed = func(e *sendop.Args) {
			i := e.UserToken.(int)
			tr.completed(i)
			if onDone != nil {
				onDone(i, e)
			}
		}
		pending, err := sendAsync(s, &args[i])
		if err != nil {
			t.Fatalf("send %d: SendAsync: %v", i, err)
		}
		if !pending {
			tr.sync(i)
		}
	}
}

// waitTrackers is tracker.wait for many trackers, without a barrier: the
// caller states that one has passed (see tracker.wait).
func waitTrackers(t testing.TB, trs ...*tracker) {
	t.Helper()
	waitTrackersAfter(t, nil, trs...)
}

// waitTrackersAfter is tracker.wait for many trackers: it waits until
// every send of each has completed, then for the barriers, then checks
// that each completed exactly once.
func waitTrackersAfter(t testing.TB, barriers []func(), trs ...*tracker) {
	t.Helper()
	deadline := time.NewTimer(longWait())
	defer deadline.Stop()
	for k, tr := range trs {
		select {
		case <-tr.done:
		case <-deadline.C:
			t.Fatalf("timeout: tracker %d: %d sends never completed", k, tr.left.Load())
		}
	}
	for _, b := range barriers {
		b()
	}
	for k, tr := range trs {
		for i := range tr.counts {
			if n := tr.counts[i].Load(); n != 1 {
				t.Fatalf("tracker %d: send %d completed %d times, want exactly once", k, i, n)
			}
		}
	}
}

// randomShapes makes n shapes of randomShape(maxSize, maxSegs); none is
// empty when nonEmpty is set.
func randomShapes(t testing.TB, n, maxSize, maxSegs int, nonEmpty bool) []shape {
	rng := newRand(t)
	out := make([]shape, n)
	for i := range out {
		out[i] = randomShape(rng, maxSize, maxSegs)
		if nonEmpty && out[i].total() == 0 {
			out[i] = shape{buf: poolSlice(rng, 1+rng.IntN(maxSize))}
		}
	}
	return out
}

// sha returns the SHA-256 of b.
func sha(b []byte) [32]byte { return sha256.Sum256(b) }

// isPrefix reports whether got is a prefix of want.
func isPrefix(got, want []byte) bool {
	return len(got) <= len(want) && string(got) == string(want[:len(got)])
}

// firstDiff returns the index of the first byte where a and b differ.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// sendLog serializes SendAsync calls that several goroutines (Completed
// handlers among them) make on one socket, and logs the sends the socket
// accepted in the order it accepted them: the order their bytes must
// arrive in. Each entry records its completions and result. An Args sent
// through a log carries its entry's index in UserToken.
type sendLog struct {
	mu      sync.Mutex
	entries []*logEntry
}

type logEntry struct {
	mu      sync.Mutex // guards the result below
	sh      shape
	pending bool
	done    atomic.Int32 // completions: must end at exactly 1
	raised  atomic.Int32 // of which through Completed
	bytes   int
	se      sendop.SocketError
	msg     string // resultError's complaint, if any
}

// send sets sh on e and calls SendAsync under the log's lock; an accepted
// send gets an entry (its index in e.UserToken) and, if it completed at
// once, is recorded as completed.
func (l *sendLog) send(s *socket.Socket, e *sendop.Args, sh shape) (pending bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sh.apply(e)
	e.UserToken = len(l.entries)
	ent := &logEntry{sh: sh}
	pending, err = sendAsync(s, e)
	if err != nil {
		return false, err
	}
	ent.pending = pending
	l.entries = append(l.entries, ent)
	if !pending {
		l.record(ent, e)
	}
	return pending, nil
}

// completed records a Completed of e; call it first thing in the handler
// (before e is reused).
func (l *sendLog) completed(e *sendop.Args) {
	l.mu.Lock()
	ent := l.entries[e.UserToken.(int)]
	l.mu.Unlock()
	ent.raised.Add(1)
	l.record(ent, e)
}

func (l *sendLog) record(ent *logEntry, e *sendop.Args) {
	ent.mu.Lock()
	defer ent.mu.Unlock()
	if ent.done.Load() == 0 {
		ent.bytes, ent.se, ent.msg = e.BytesTransferred(), e.SocketError(), resultError(e)
	}
	ent.done.Add(1)
}

// doneAt reports whether accepted send i has completed.
func (l *sendLog) doneAt(i int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.entries[i].done.Load() > 0
}

// bytes returns the bytes of every accepted send, completed or not.
func (l *sendLog) bytes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ent := range l.entries {
		n += ent.sh.total()
	}
	return n
}

// len returns the number of accepted sends.
func (l *sendLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// left returns how many accepted sends have not completed.
func (l *sendLog) left() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ent := range l.entries {
		if ent.done.Load() == 0 {
			n++
		}
	}
	return n
}

// waitAll waits until every accepted send has completed.
func (l *sendLog) waitAll(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(longWait())
	for l.left() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("timeout: %d of %d sends never completed", l.left(), l.len())
		}
		time.Sleep(time.Millisecond)
	}
}

// check verifies, once every send has completed and then barrier (see
// tracker.wait; nil: one has passed) has returned: each exactly once (a
// pending one through Completed, a synchronous one never through it);
// each a full Success or a prefix with an allowed error, Err agreeing; no
// bytes after a send that stopped short. It returns the stream the peer
// must have received and the results by SocketError.
func (l *sendLog) check(t testing.TB, barrier func(), allowed ...sendop.SocketError) ([]byte, map[sendop.SocketError]int) {
	t.Helper()
	if barrier != nil {
		barrier()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []byte
	byErr := make(map[sendop.SocketError]int)
	cut := -1
	for i, ent := range l.entries {
		ent.mu.Lock()
		defer ent.mu.Unlock()
		if n := ent.done.Load(); n != 1 {
			t.Fatalf("send %d completed %d times, want exactly once", i, n)
		}
		if r := ent.raised.Load(); ent.pending && r != 1 || !ent.pending && r != 0 {
			t.Fatalf("send %d: pending=%v but Completed raised %d times", i, ent.pending, r)
		}
		if ent.msg != "" {
			t.Fatalf("send %d: %s", i, ent.msg)
		}
		total := ent.sh.total()
		ok := ent.se == sendop.Success
		for _, a := range allowed {
			ok = ok || ent.se == a
		}
		switch {
		case !ok:
			t.Fatalf("send %d: unexpected result %v", i, ent.se)
		case ent.se == sendop.Success && ent.bytes != total:
			t.Fatalf("send %d: Success with %d of %d bytes", i, ent.bytes, total)
		case ent.se != sendop.Success && (ent.bytes < 0 || ent.bytes > total || ent.bytes == total && total > 0):
			t.Fatalf("send %d: %v with %d of %d bytes", i, ent.se, ent.bytes, total)
		case cut >= 0 && ent.bytes > 0:
			t.Fatalf("send %d sent %d bytes after send %d stopped short: a gap in the stream", i, ent.bytes, cut)
		}
		if cut < 0 && ent.bytes < total {
			cut = i
		}
		byErr[ent.se]++
		out = appendPrefix(out, ent.sh, ent.bytes)
	}
	return out, byErr
}
