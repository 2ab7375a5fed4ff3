//go:build linux

package tests

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uringsend/uringsend/internal/netnstest"
	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// Zero-copy over a real path. Towards loopback the kernel always copies,
// so a SEND_ZC completes as soon as the data is queued; over a veth pair
// between two network namespaces the kernel keeps the sender's pages
// until the peer acknowledges them, and the notification (and so the
// send's completion) waits for the peer. These tests run there:
//
//	TestZeroCopyNetnsExact          bytes exact, each send once, SEND_ZC used
//	TestZeroCopyNetnsCloseStalled   Close bounded with a zero-copy send the peer never takes
//	TestZeroCopyNetnsCloseInHandler the same Close from a Completed handler: the reaper goes on
//
// They need root and `ip netns` (else they skip) and a kernel with SEND_ZC.

// nszcModes are the zero-copy modes that send with SEND_ZC towards a
// non-loopback peer.
var nszcModes = []string{socket.ZeroCopyOn, socket.ZeroCopyAuto}

// nszcCloseTarget is what Close should take at worst, whatever the peer
// does; the tests assert closeWait (2 s, scaled) to stay robust under
// load and log the time measured.
const nszcCloseTarget = 100 * time.Millisecond

// nszcNeedKernel skips t on a kernel without SEND_ZC and SENDMSG_ZC.
func nszcNeedKernel(t *testing.T) {
	t.Helper()
	r, err := ring.New(ring.Config{Entries: 2})
	if err != nil {
		t.Fatalf("ring.New: %v", err)
	}
	ok := r.Supports(ring.OpSendZC) && r.Supports(ring.OpSendmsgZC)
	r.Close()
	if !ok {
		t.Skip("kernel without IORING_OP_SEND_ZC / SENDMSG_ZC (6.0 / 6.1)")
	}
}

// nszcEngine starts an io_uring engine with zero-copy mode zc.
func nszcEngine(t *testing.T, zc string) *socket.Engine {
	t.Helper()
	return newEngineCfg(t, socket.EngineConfig{Backend: socket.BackendIOURing, ZeroCopy: zc})
}

// nszcPair connects a Socket on eng in host a to a peer in host b across
// the veth pair. rcvbuf > 0 shrinks the peer's receive buffer (set on
// the listener, so the window is small from the handshake on) and sndbuf
// > 0 the Socket's send buffer. The peer and the Socket are closed when
// the test ends (the Socket with a bounded Close).
func nszcPair(t *testing.T, eng *socket.Engine, a, b *netnstest.Host, rcvbuf, sndbuf int, opts ...socket.Option) (*socket.Socket, net.Conn) {
	t.Helper()
	lc := net.ListenConfig{}
	if rcvbuf > 0 {
		lc.Control = controlBufs(t, pairConfig{rcvbuf: rcvbuf})
	}
	l, err := b.ListenConfig(lc, "tcp", b.HostPort(0))
	if err != nil {
		t.Fatalf("listen in %v: %v", b, err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	var s *socket.Socket
	err = a.Do(func() (err error) {
		s, err = socket.Dial("tcp", l.Addr().String(), append(opts, socket.WithEngine(eng))...)
		return err
	})
	if err != nil {
		l.Close()
		if c := <-accepted; c != nil {
			c.Close()
		}
		t.Fatalf("socket.Dial in %v to %v: %v", a, l.Addr(), err)
	}
	peer := <-accepted
	if peer == nil {
		s.Close()
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { peer.Close() })
	closeSocketAtEnd(t, s)
	if sndbuf > 0 {
		if err := unix.SetsockoptInt(s.FD(), unix.SOL_SOCKET, unix.SO_SNDBUF, sndbuf); err != nil {
			t.Fatal(err)
		}
	}
	return s, peer
}

// (a) Many zero-copy sends — Buffers and BufferLists, inline and
// pipelined with WithBatching so they coalesce into SENDMSG_ZC — to a
// peer that reads: the peer gets exactly the bytes (SHA-256), every send
// completes exactly once, and the engine did send with zero-copy. In
// auto mode the kernel must not have reported a copy: a socket whose
// notification says "copied" stops using zero-copy, so a run of large
// sends one after the other must have been zero-copy sends each.
func TestZeroCopyNetnsExact(t *testing.T) {
	nszcNeedKernel(t)
	a, b := netnstest.Pair(t)
	for _, zc := range nszcModes {
		for _, batch := range []bool{false, true} {
			name := "zerocopy=" + zc + "/inline"
			var opts []socket.Option
			if batch {
				name, opts = "zerocopy="+zc+"/batching", []socket.Option{socket.WithBatching()}
			}
			t.Run(name, func(t *testing.T) {
				start := time.Now()
				eng := nszcEngine(t, zc)
				s, peer := nszcPair(t, eng, a, b, 0, 0, opts...)
				r := startReader(t, peer, readOpts{})
				rng := newRand(t)

				// The copy check first, while the socket is fresh: in auto
				// mode one "copied" notification turns zero-copy off.
				const seqSends = 8
				zc0 := eng.ZeroCopySends()
				want := newExpect()
				for i := range seqSends {
					sh := shape{buf: poolSlice(rng, 64<<10)}
					if i%2 == 1 {
						b := poolSlice(rng, 96<<10)
						sh = shape{bufs: [][]byte{b[:32<<10], b[32<<10:]}}
					}
					nszcSendWait(t, s, sh)
					sh.writePrefix(want, -1)
				}
				seqZC := eng.ZeroCopySends() - zc0
				t.Logf("%d sequential sends of 64-96 KiB: %d zero-copy wires", seqSends, seqZC)
				if seqZC == 0 {
					t.Fatalf("no zero-copy send towards %v (ZeroCopy %q)", b, zc)
				}
				switch {
				case zc == socket.ZeroCopyOn && seqZC < seqSends:
					t.Errorf("only %d of %d sequential large sends went out with zero-copy in mode on", seqZC, seqSends)
				case zc == socket.ZeroCopyAuto && seqZC < seqSends:
					// The kernel reported a copy (NotifUsageZCCopied) and
					// auto mode turned zero-copy off for the socket, as it
					// should. Over veth into another namespace the receive
					// path copies the frags of zero-copy skbs
					// (skb_orphan_frags_rx in __netif_receive_skb_core), as
					// towards loopback; only a real NIC avoids it. The
					// sender's pages are held until the ACK all the same.
					t.Logf("auto: the kernel reported a copy after the first zero-copy send (local delivery over veth copies); zero-copy off for the socket after %d wire(s)", seqZC)
					if seqZC != 1 {
						t.Errorf("auto: %d zero-copy wires of %d sequential sends: want all (no copy reported) or 1 (copy reported on the first, then off)", seqZC, seqSends)
					}
				}

				// Then many, pipelined: all of them in flight at once.
				const n = 300
				shapes := make([]shape, n)
				for i := range shapes {
					size := 1 + rng.IntN(256<<10)
					if i%4 == 0 {
						size = 16<<10 + rng.IntN(1<<20)
					}
					if i%3 == 0 {
						buf := poolSlice(rng, size)
						cut := rng.IntN(size + 1)
						shapes[i] = shape{bufs: [][]byte{buf[:cut], nil, buf[cut:]}}
					} else {
						shapes[i] = shape{buf: poolSlice(rng, size)}
					}
					shapes[i].writePrefix(want, -1)
				}
				tr := newTracker(t, n)
				args := queueAll(t, s, shapes, tr, nil)
				tr.wait()
				checkResults(t, args, shapes)
				if err := boundedClose(t, "Socket.Close", s.Close); err != nil {
					t.Fatalf("Close: %v", err)
				}
				checkReceived(t, r, want)
				t.Logf("%d sends, %d sync, %d Completed, %d bytes; %d zero-copy wires in all; %v",
					n+seqSends, tr.syncs.Load()+seqSends, tr.raised.Load(), want.n, eng.ZeroCopySends()-zc0, time.Since(start).Round(time.Millisecond))
				if eng.ZeroCopySends() == zc0 {
					t.Fatal("no zero-copy send in the pipelined phase")
				}
			})
		}
	}
}

// nszcSendWait sends sh on s and waits for its result: Success, all bytes.
func nszcSendWait(t *testing.T, s *socket.Socket, sh shape) {
	t.Helper()
	var e sendop.Args
	sh.apply(&e)
	done := make(chan struct{}, 2)
	e.Completed = func(*sendop.Args) { done <- struct{}{} }
	pending, err := sendAsync(s, &e)
	if err != nil {
		t.Fatal(err)
	}
	if pending {
		waitChan(t, done, longWait(), "a zero-copy send to complete")
	}
	if e.SocketError() != sendop.Success || e.BytesTransferred() != sh.total() {
		t.Fatalf("send: %v with %d of %d bytes", e.SocketError(), e.BytesTransferred(), sh.total())
	}
}

// nszcStalled sends on s, to a peer that does not read, sends of 64 KiB
// to 1 MiB until one stays pending (it has not completed 300 ms after it
// was sent, though the others before it did or may have). It returns the
// Args and shapes (args[i] carries UserToken i) and the tracker that
// counts their completions; onDone, if not nil, runs in every Completed
// after the tracker.
func nszcStalled(t *testing.T, s *socket.Socket, tr *tracker, onDone func(i int, e *sendop.Args)) ([]sendop.Args, []shape) {
	t.Helper()
	rng := newRand(t)
	const max = 64
	shapes := make([]shape, max)
	for i := range shapes {
		size := 64<<10 + rng.IntN(1<<20-64<<10+1)
		if i%2 == 1 {
			buf := poolSlice(rng, size)
			shapes[i] = shape{bufs: [][]byte{buf[:size/3], buf[size/3:]}}
		} else {
			shapes[i] = shape{buf: poolSlice(rng, size)}
		}
	}
	args := make([]sendop.Args, max)
	for i := range max {
		queueRange(t, s, args, shapes, tr, i, i+1, onDone)
		deadline := time.Now().Add(300 * time.Millisecond)
		for tr.counts[i].Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if tr.counts[i].Load() == 0 {
			// Mark the sends never made as done, so the tracker waits
			// for the made ones only.
			for j := i + 1; j < max; j++ {
				tr.refused(j)
			}
			return args[:i+1], shapes[:i+1]
		}
	}
	t.Fatalf("%d sends of 64 KiB to 1 MiB all completed to a peer that does not read", max)
	return nil, nil
}

// nszcBaseline returns the goroutine and descriptor counts now, and a
// function that fails t unless they come back to them (within a while:
// goroutines of closed connections take a moment to go).
func nszcBaseline(t *testing.T) func() {
	runtime.GC()
	g0, fd0 := runtime.NumGoroutine(), countFDs(t)
	return func() {
		t.Helper()
		deadline := time.Now().Add(scaled(5 * time.Second))
		for {
			g, fd := runtime.NumGoroutine(), countFDs(t)
			if g <= g0 && fd <= fd0 {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines %d -> %d, descriptors %d -> %d: not back to the baseline\n%s",
					g0, g, fd0, fd, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// nszcTimedClose runs close and waits for it at most closeWait. If it
// has not returned by then the test fails (clearly, once), unblock runs
// (it lets the kernel go: closes the peer), and the Close is waited for
// again, at most longWait, so the test binary never hangs. It returns
// how long Close took and whether it returned in time.
func nszcTimedClose(t *testing.T, what string, close func() (time.Duration, error), unblock func()) (time.Duration, bool) {
	t.Helper()
	type result struct {
		d   time.Duration
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		d, err := close()
		done <- result{d, err}
	}()
	timer := time.NewTimer(closeWait())
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			t.Errorf("%s: %v", what, r.err)
		}
		t.Logf("%s took %v (target %v)", what, r.d.Round(10*time.Microsecond), nszcCloseTarget)
		return r.d, true
	case <-timer.C:
	}
	t.Errorf("%s did not return in %v with a zero-copy send pending to a peer that does not read: "+
		"it waits for the SEND_ZC notification, which the kernel posts only when the peer has acknowledged the data (invariant 8: Close is bounded whatever the peer does)",
		what, closeWait())
	waited := time.Since(start)
	unblock()
	select {
	case r := <-done:
		t.Logf("%s took %v: it returned only once the test had reset the peer, %v into the wait", what, r.d.Round(time.Millisecond), waited.Round(time.Millisecond))
		return r.d, false
	case <-time.After(longWait()):
		t.Fatalf("%s still blocked %v after the peer closed: abandoned", what, longWait())
		return 0, false
	}
}

// nszcAbortResults are the results a send may have when its socket was
// closed under it: its real result or OperationAborted; after the test
// had to close the peer to unblock a Close, also the peer's reset.
func nszcAbortResults(unblocked bool) []sendop.SocketError {
	allowed := []sendop.SocketError{sendop.OperationAborted}
	if unblocked {
		allowed = append(allowed, sendop.ConnectionReset, sendop.Shutdown)
	}
	return allowed
}

// nszcPeerGot reads what the peer received (it had not read anything),
// until EOF, an error or a second of silence.
func nszcPeerGot(peer net.Conn) []byte {
	var got []byte
	buf := make([]byte, 256<<10)
	for {
		peer.SetReadDeadline(time.Now().Add(scaled(time.Second)))
		n, err := peer.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got
		}
	}
}

// (b) Close with a zero-copy send that the peer never takes (it does not
// read; its window is closed): Close returns in bounded time, every send
// completes exactly once (its real result or OperationAborted), the
// peer received a prefix of what was reported sent, and goroutines and
// descriptors are back to the baseline.
func TestZeroCopyNetnsCloseStalled(t *testing.T) {
	nszcNeedKernel(t)
	a, b := netnstest.Pair(t)
	for _, zc := range nszcModes {
		for _, bufs := range []struct {
			name           string
			rcvbuf, sndbuf int
		}{{"small-buffers", 16 << 10, 32 << 10}, {"default-buffers", 0, 0}} {
			t.Run("zerocopy="+zc+"/"+bufs.name, func(t *testing.T) {
				nszcCloseStalled(t, a, b, zc, bufs.rcvbuf, bufs.sndbuf)
			})
		}
	}
}

// nszcCloseStalled is one case of TestZeroCopyNetnsCloseStalled: the
// peer's receive and the Socket's send buffer shrunk to rcvbuf and sndbuf
// (0: the kernel's defaults, so a few sends complete before one stalls).
func nszcCloseStalled(t *testing.T, a, b *netnstest.Host, zc string, rcvbuf, sndbuf int) {
	{
		{
			start := time.Now()
			eng := nszcEngine(t, zc)
			check := nszcBaseline(t)
			s, peer := nszcPair(t, eng, a, b, rcvbuf, sndbuf)
			zc0 := eng.ZeroCopySends()
			tr := newTracker(t, 64)
			args, shapes := nszcStalled(t, s, tr, nil)
			t.Logf("%d sends made, the last pending; %d zero-copy wires completed so far", len(args), eng.ZeroCopySends()-zc0)

			d, inTime := nszcTimedClose(t, "Socket.Close", func() (time.Duration, error) {
				t0 := time.Now()
				err := closeSocket(s)
				return time.Since(t0), err
			}, func() { resetConn(peer) })
			waitChan(t, tr.done, longWait(), "every send to complete after Close")
			time.Sleep(graceWait())
			for i := range args {
				if n := tr.counts[i].Load(); n != 1 {
					t.Fatalf("send %d completed %d times, want exactly once", i, n)
				}
			}
			delivered, byErr := checkResults(t, args, shapes, nszcAbortResults(!inTime)...)
			t.Logf("results %v; Close %v", byErr, d.Round(10*time.Microsecond))
			if inTime {
				if got := nszcPeerGot(peer); !isPrefix(got, delivered) {
					t.Errorf("the peer got %d bytes, not a prefix of the %d reported sent (first difference at %d)", len(got), len(delivered), firstDiff(got, delivered))
				}
			}
			peer.Close()
			if err := boundedClose(t, "Engine.Close", eng.Close); err != nil && err != errHung {
				t.Errorf("Engine.Close: %v", err)
			}
			check()
			t.Logf("%v in all", time.Since(start).Round(time.Millisecond))
		}
	}
}

// (c) The same Close from inside a Completed handler, on the engine's
// reaper: it must not hold the reaper up. A second socket of the same
// engine, batching (so every one of its sends goes through the reaper),
// keeps completing sends while the first closes, and the first's sends
// each complete exactly once.
func TestZeroCopyNetnsCloseInHandler(t *testing.T) {
	nszcNeedKernel(t)
	a, b := netnstest.Pair(t)
	for _, zc := range nszcModes {
		t.Run("zerocopy="+zc, func(t *testing.T) {
			start := time.Now()
			eng := nszcEngine(t, zc)
			check := nszcBaseline(t)
			s1, peer1 := nszcPair(t, eng, a, b, 16<<10, 32<<10)
			s2, peer2 := nszcPair(t, eng, a, b, 0, 0, socket.WithBatching())
			r2 := startReader(t, peer2, readOpts{})
			tr1 := newTracker(t, 64)
			args1, shapes1 := nszcStalled(t, s1, tr1, nil)

			// The trigger: a send on s2 whose Completed closes s1.
			type closed struct {
				d   time.Duration
				err error
			}
			closedCh := make(chan closed, 1)
			rng := newRand(t)
			want2 := newExpect()
			var trigger sendop.Args
			tsh := shape{buf: poolSlice(rng, 4<<10)}
			tsh.apply(&trigger)
			tsh.writePrefix(want2, -1)
			var triggered atomic.Int32
			trigger.Completed = func(e *sendop.Args) {
				if triggered.Add(1) != 1 {
					t.Errorf("the trigger send completed twice")
					return
				}
				t0 := time.Now()
				err := s1.Close() // on the reaper
				closedCh <- closed{time.Since(t0), err}
			}

			// Sends on s2 that must keep completing meanwhile.
			const n2 = 200
			shapes2 := make([]shape, n2)
			for i := range shapes2 {
				shapes2[i] = shape{buf: poolSlice(rng, 1+rng.IntN(64<<10))}
				shapes2[i].writePrefix(want2, -1)
			}
			tr2 := newTracker(t, n2)
			args2 := make([]sendop.Args, n2)

			if pending, err := sendAsync(s2, &trigger); err != nil || !pending {
				t.Fatalf("trigger send on a batching socket: pending %v, %v; want pending", pending, err)
			}
			// One send at a time, each waited for with a bound: the reaper
			// must raise each while s1 is closing.
			var stalledAt = -1
			for i := range n2 {
				queueRange(t, s2, args2, shapes2, tr2, i, i+1, nil)
				deadline := time.Now().Add(closeWait())
				for tr2.counts[i].Load() == 0 && time.Now().Before(deadline) {
					time.Sleep(100 * time.Microsecond)
				}
				if tr2.counts[i].Load() == 0 {
					stalledAt = i
					break
				}
			}
			var closeRes closed
			select {
			case closeRes = <-closedCh:
			default:
			}
			if stalledAt >= 0 {
				t.Errorf("send %d of another socket on the engine did not complete in %v while a Completed handler closed a socket with a zero-copy send the peer never takes: the handler blocks the reaper (invariant 8)",
					stalledAt, closeWait())
			}

			var inTime bool
			if closeRes == (closed{}) {
				_, inTime = nszcTimedClose(t, "Socket.Close in a Completed handler", func() (time.Duration, error) {
					r := <-closedCh
					return r.d, r.err
				}, func() { resetConn(peer1) })
			} else {
				inTime = true
				if closeRes.err != nil {
					t.Errorf("Socket.Close in a Completed handler: %v", closeRes.err)
				}
				t.Logf("Socket.Close in a Completed handler took %v (target %v)", closeRes.d.Round(10*time.Microsecond), nszcCloseTarget)
			}
			if stalledAt >= 0 {
				// The rest of s2's sends, now that the reaper is free.
				for j := stalledAt + 1; j < n2; j++ {
					tr2.refused(j)
				}
				args2, shapes2 = args2[:stalledAt+1], shapes2[:stalledAt+1]
				want2 = newExpect()
				tsh.writePrefix(want2, -1)
				for _, sh := range shapes2 {
					sh.writePrefix(want2, -1)
				}
			}
			waitTrackers(t, tr1, tr2)
			checkResults(t, args1, shapes1, nszcAbortResults(!inTime)...)
			checkResults(t, args2, shapes2)
			if triggered.Load() != 1 {
				t.Fatalf("the trigger send completed %d times", triggered.Load())
			}
			if err := boundedClose(t, "Socket.Close", s2.Close); err != nil {
				t.Fatalf("Close of the second socket: %v", err)
			}
			checkReceived(t, r2, want2)
			peer1.Close()
			if err := boundedClose(t, "Engine.Close", eng.Close); err != nil && err != errHung {
				t.Errorf("Engine.Close: %v", err)
			}
			check()
			t.Logf("%v in all", time.Since(start).Round(time.Millisecond))
		})
	}
}

// A socket the kernel refuses zero-copy on (6.18 answers SEND_ZC on an
// accepted TCP socket with EOPNOTSUPP) sends the same bytes as copies:
// uringproxy, whose client sockets are all accepted, reset every client
// over a real path before (a send failed with OperationNotSupported).
func TestZeroCopyNetnsAcceptedSocketFallsBack(t *testing.T) {
	nszcNeedKernel(t)
	a, b := netnstest.Pair(t)
	eng := nszcEngine(t, socket.ZeroCopyOn)
	l, err := b.Listen("tcp", b.HostPort(0))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const size = 4 << 20
	got := make(chan []byte, 1)
	go func() {
		c, err := a.Dial("tcp", l.Addr().String())
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		h := sha256.New()
		io.Copy(h, c)
		got <- h.Sum(nil)
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s, err := socket.FromConn(c, socket.WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, size)
	rand.New(rand.NewSource(7)).Read(payload)
	for off := 0; off < size; off += 64 << 10 {
		if n, err := s.Write(payload[off : off+64<<10]); err != nil {
			t.Fatalf("Write at %d: %d, %v", off, n, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	want := sha256.Sum256(payload)
	if h := <-got; !bytes.Equal(h, want[:]) {
		t.Fatal("the peer's SHA-256 differs")
	}
}
