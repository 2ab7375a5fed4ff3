//go:build linux

package tests

import (
	"bytes"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// Invariant 7: bad input gets a clear error and sends nothing. After an
// error nothing is raised and the Args is free for the next send.

// watched is an Args whose Completed is counted.
type watched struct {
	sendop.Args
	raised atomic.Int32
	ch     chan struct{}
}

func newWatched(t testing.TB) *watched {
	w := &watched{ch: make(chan struct{}, 16)}
	w.Completed = func(*sendop.Args) {
		if inAPICall() {
			t.Errorf("Completed raised inside SendAsync or Close on the calling goroutine")
		}
		w.raised.Add(1)
		w.ch <- struct{}{}
	}
	return w
}

// sendOK sends the data now set on w through s and waits for the result,
// which must be a full success.
func (w *watched) sendOK(t testing.TB, s *socket.Socket) {
	t.Helper()
	before := w.raised.Load()
	pending, err := sendAsync(s, &w.Args)
	if err != nil {
		t.Fatalf("SendAsync: %v", err)
	}
	if pending {
		waitChan(t, w.ch, longWait(), "Completed")
	}
	want := int32(0)
	if pending {
		want = 1
	}
	if got := w.raised.Load() - before; got != want {
		t.Fatalf("pending=%v but Completed raised %d times", pending, got)
	}
	total := len(w.Buffer())
	for _, b := range w.BufferList() {
		total += len(b)
	}
	if w.SocketError() != sendop.Success || w.Err() != nil || w.BytesTransferred() != total {
		t.Fatalf("send: %v (%v), %d of %d bytes", w.SocketError(), w.Err(), w.BytesTransferred(), total)
	}
}

// noneRaised checks that no Completed of w came that was not waited for:
// after the barriers (see tracker.wait), a Completed that must not come
// would have been raised already. Without barriers the caller states that
// one has passed (the socket's Close returned).
func (w *watched) noneRaised(t testing.TB, barriers ...func()) {
	t.Helper()
	for _, b := range barriers {
		b()
	}
	select {
	case <-w.ch:
		t.Fatal("a Completed was raised that must not be: after SendAsync returned an error, or a second one")
	default:
	}
}

func TestBadInputArgs(t *testing.T) {
	bad := bytes.Repeat([]byte{'B'}, 100)
	cases := []struct {
		name string
		prep func(e *sendop.Args)
		want error
	}{
		{"NoBuffer", func(e *sendop.Args) {}, sendop.ErrNoBuffer},
		{"NoBufferAfterUnset", func(e *sendop.Args) { e.SetBuffer(bad); e.SetBuffer(nil) }, sendop.ErrNoBuffer},
		{"BufferConflict", func(e *sendop.Args) { e.SetBuffer(bad); e.SetBufferList([][]byte{bad}) }, sendop.ErrBufferConflict},
		{"BufferConflictEmpty", func(e *sendop.Args) { e.SetBuffer(bad[:0]); e.SetBufferList([][]byte{}) }, sendop.ErrBufferConflict},
		{"FlagDontWait", func(e *sendop.Args) { e.SetBuffer(bad); e.Flags = unix.MSG_DONTWAIT }, sendop.ErrBadFlags},
		{"FlagWaitAll", func(e *sendop.Args) { e.SetBuffer(bad); e.Flags = unix.MSG_WAITALL }, sendop.ErrBadFlags},
		{"FlagUnknown", func(e *sendop.Args) { e.SetBuffer(bad); e.Flags = 1 << 30 }, sendop.ErrBadFlags},
		{"FlagDontWaitMore", func(e *sendop.Args) {
			e.SetBufferList([][]byte{bad})
			e.Flags = unix.MSG_DONTWAIT | unix.MSG_MORE
		}, sendop.ErrBadFlags},
		{"FlagNegative", func(e *sendop.Args) { e.SetBuffer(bad); e.Flags = -1 }, sendop.ErrBadFlags},
	}
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				s, peer := tcpPair(t, eng, pairConfig{})
				r := startReaderKeep(t, peer, readOpts{}, true)
				w := newWatched(t)
				tc.prep(&w.Args)
				pending, err := sendAsync(s, &w.Args)
				if !errors.Is(err, tc.want) {
					t.Fatalf("SendAsync: %v, want %v", err, tc.want)
				}
				if pending {
					t.Fatal("SendAsync returned pending with an error")
				}
				w.noneRaised(t, marker(t, s))

				// The Args is free again: fix it and send.
				good := bytes.Repeat([]byte{'G'}, 100)
				w.Flags = 0
				shape{buf: good}.apply(&w.Args)
				w.sendOK(t, s)
				if err := closeSocket(s); err != nil {
					t.Fatal(err)
				}
				r.wait(t)
				if !bytes.Equal(r.got, good) {
					t.Fatalf("peer received %q, want only the good send", r.got)
				}
			})
		}
	})
}

func TestBadInputNilArgs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		s, peer := tcpPair(t, eng, pairConfig{})
		r := startReader(t, peer, readOpts{})
		pending, err := sendAsync(s, nil)
		if !errors.Is(err, sendop.ErrNilArgs) || pending {
			t.Fatalf("SendAsync(nil) = %v, %v; want false, ErrNilArgs", pending, err)
		}
		if err := closeSocket(s); err != nil {
			t.Fatal(err)
		}
		if n, _ := r.wait(t); n != 0 {
			t.Fatalf("peer received %d bytes", n)
		}
	})
}

// ErrInProgress: an Args that is still on the wire cannot be used again,
// on the same socket or another; a SetBuffer meanwhile does not change the
// send in flight.
func TestBadInputInProgress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		s, peer := tcpPair(t, eng, small)
		r := startReaderKeep(t, peer, readOpts{gated: true}, true)
		s2, peer2 := tcpPair(t, eng, pairConfig{})
		r2 := startReader(t, peer2, readOpts{})

		first := bytes.Repeat([]byte{'A'}, 4<<20)
		w := newWatched(t)
		w.SetBuffer(first)
		pending, err := sendAsync(s, &w.Args)
		if err != nil {
			t.Fatal(err)
		}
		if !pending {
			t.Fatal("4 MiB to a peer that does not read completed synchronously: cannot test ErrInProgress")
		}
		w.SetBuffer(bytes.Repeat([]byte{'B'}, 100))
		for _, target := range []*socket.Socket{s, s2} {
			pending, err := sendAsync(target, &w.Args)
			if !errors.Is(err, sendop.ErrInProgress) || pending {
				t.Fatalf("second SendAsync = %v, %v; want false, ErrInProgress", pending, err)
			}
		}
		// The first send is still on the wire: a marker queued behind it
		// cannot complete before it, and neither can complete while the
		// peer does not read (this checks the state now; the order is
		// checked below, once the peer reads).
		mk := make(chan struct{})
		var me sendop.Args
		me.SetBuffer([]byte{})
		me.Completed = func(*sendop.Args) {
			if w.raised.Load() != 1 {
				t.Errorf("the marker completed before the send queued ahead of it")
			}
			close(mk)
		}
		if pending, err := sendAsync(s, &me); err != nil || !pending {
			t.Fatalf("marker behind the stalled send: pending %v, %v; want pending", pending, err)
		}
		select {
		case <-w.ch:
			t.Fatal("the first send completed although the peer does not read")
		default:
		}
		r.start()
		waitChan(t, w.ch, longWait(), "Completed of the first send")
		if w.SocketError() != sendop.Success || w.BytesTransferred() != len(first) {
			t.Fatalf("first send: %v, %d bytes", w.Err(), w.BytesTransferred())
		}
		waitChan(t, mk, longWait(), "the marker's Completed")
		w.noneRaised(t, marker(t, s))
		if n := w.raised.Load(); n != 1 {
			t.Fatalf("Completed raised %d times, want 1", n)
		}

		good := bytes.Repeat([]byte{'G'}, 100)
		w.SetBuffer(good)
		w.sendOK(t, s)
		if err := closeSocket(s); err != nil {
			t.Fatal(err)
		}
		r.wait(t)
		if want := append(first, good...); !bytes.Equal(r.got, want) {
			t.Fatalf("peer received %d bytes, want %d 'A' then %d 'G'", len(r.got), len(first), len(good))
		}
		if err := closeSocket(s2); err != nil {
			t.Fatal(err)
		}
		if n, _ := r2.wait(t); n != 0 {
			t.Fatalf("the other socket's peer received %d bytes", n)
		}
	})
}

func TestBadInputClosedSocket(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		s, peer := tcpPair(t, eng, pairConfig{})
		r := startReader(t, peer, readOpts{})
		if err := closeSocket(s); err != nil {
			t.Fatal(err)
		}
		w := newWatched(t)
		w.SetBuffer([]byte("must not be sent"))
		pending, err := sendAsync(s, &w.Args)
		if !errors.Is(err, socket.ErrClosed) || pending {
			t.Fatalf("SendAsync after Close = %v, %v; want false, ErrClosed", pending, err)
		}
		w.noneRaised(t) // s's Close has returned: nothing of s is raised any more
		if n, _ := r.wait(t); n != 0 {
			t.Fatalf("peer received %d bytes", n)
		}

		s2, peer2 := tcpPair(t, eng, pairConfig{})
		r2 := startReaderKeep(t, peer2, readOpts{}, true)
		w.SetBuffer([]byte("reused"))
		w.sendOK(t, s2)
		closeSocket(s2)
		r2.wait(t)
		if string(r2.got) != "reused" {
			t.Fatalf("peer received %q", r2.got)
		}
	})
}

// fromFD wraps a fresh socket(2) descriptor; the Socket is closed at the
// end of the test.
func fromFD(t *testing.T, eng *socket.Engine, domain, typ int) *socket.Socket {
	t.Helper()
	fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	s, err := socket.FromFD(fd, socket.WithEngine(eng))
	if err != nil {
		unix.Close(fd)
		t.Fatalf("FromFD: %v", err)
	}
	closeSocketAtEnd(t, s)
	return s
}

func TestBadInputNotConnected(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		fromConn := func(t *testing.T) *socket.Socket {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			s, err := socket.FromConn(c, socket.WithEngine(eng))
			if err != nil {
				t.Fatal(err)
			}
			closeSocketAtEnd(t, s)
			return s
		}
		for _, tc := range []struct {
			name string
			make func(t *testing.T) *socket.Socket
		}{
			{"FromFD-udp", func(t *testing.T) *socket.Socket { return fromFD(t, eng, unix.AF_INET, unix.SOCK_DGRAM) }},
			{"FromFD-tcp", func(t *testing.T) *socket.Socket { return fromFD(t, eng, unix.AF_INET, unix.SOCK_STREAM) }},
			{"FromFD-unix", func(t *testing.T) *socket.Socket { return fromFD(t, eng, unix.AF_UNIX, unix.SOCK_STREAM) }},
			{"FromConn-udp-listener", fromConn},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := tc.make(t)
				w := newWatched(t)
				w.SetBuffer([]byte("nowhere"))
				pending, err := sendAsync(s, &w.Args)
				if !errors.Is(err, socket.ErrNotConnected) || pending {
					t.Fatalf("SendAsync = %v, %v; want false, ErrNotConnected", pending, err)
				}
				w.noneRaised(t, closing(t, s, nil))

				s2, peer := tcpPair(t, eng, pairConfig{})
				r := startReaderKeep(t, peer, readOpts{}, true)
				w.sendOK(t, s2)
				closeSocket(s2)
				r.wait(t)
				if string(r.got) != "nowhere" {
					t.Fatalf("peer received %q", r.got)
				}
			})
		}
	})
}

func TestBadInputNotSocket(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(p[0])
		defer unix.Close(p[1])
		f, err := os.CreateTemp(t.TempDir(), "file")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for name, fd := range map[string]int{"pipe-read": p[0], "pipe-write": p[1], "file": int(f.Fd())} {
			s, err := socket.FromFD(fd, socket.WithEngine(eng))
			if !errors.Is(err, socket.ErrNotSocket) || s != nil {
				t.Fatalf("FromFD(%s) = %v, %v; want nil, ErrNotSocket", name, s, err)
			}
			// On failure the caller still owns fd: it must be open.
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
				t.Fatalf("FromFD(%s) closed the descriptor it refused: %v", name, err)
			}
		}
		if _, err := unix.Write(p[1], []byte("x")); err != nil {
			t.Fatalf("pipe unusable after FromFD refused it: %v", err)
		}
		if s, err := socket.FromFD(-1, socket.WithEngine(eng)); err == nil || s != nil {
			t.Fatalf("FromFD(-1) = %v, %v; want an error", s, err)
		}
	})
}

// Empty buffers are valid input: an empty Buffer, a BufferList of no
// segments, of nil or empty segments. Each send completes with Success and
// 0 bytes (or is refused with an error), and the socket keeps working.
// A panic in SendAsync is caught and reported, so the suite goes on.
func TestEmptyBuffers(t *testing.T) {
	cases := []struct {
		name string
		sh   shape
	}{
		{"Buffer", shape{buf: []byte{}}},
		{"BufferList-none", shape{bufs: [][]byte{}}},
		{"BufferList-nil", shape{bufs: [][]byte{nil}}},
		{"BufferList-empty", shape{bufs: [][]byte{{}, nil, {}}}},
	}
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				s, peer := tcpPair(t, eng, pairConfig{})
				r := startReaderKeep(t, peer, readOpts{}, true)
				w := newWatched(t)
				tc.sh.apply(&w.Args)
				pending, p, err := sendRecover(s, &w.Args)
				if p != nil {
					t.Fatalf("BUG: SendAsync panics on %s: %v", tc.name, p)
				}
				if err != nil {
					t.Logf("refused: %v", err)
				} else {
					if pending {
						waitChan(t, w.ch, longWait(), "Completed")
					}
					if w.SocketError() != sendop.Success || w.BytesTransferred() != 0 {
						t.Fatalf("empty send: %v, %d bytes", w.Err(), w.BytesTransferred())
					}
				}
				w.SetBufferList(nil)
				w.SetBuffer([]byte("ok"))
				w.sendOK(t, s)
				closeSocket(s)
				r.wait(t)
				if string(r.got) != "ok" {
					t.Fatalf("peer received %q, want %q", r.got, "ok")
				}
			})
		}
	})
}

// sendRecover is sendAsync that turns a panic into a value.
func sendRecover(s *socket.Socket, e *sendop.Args) (pending bool, p any, err error) {
	defer func() { p = recover() }()
	pending, err = sendAsync(s, e)
	return
}
