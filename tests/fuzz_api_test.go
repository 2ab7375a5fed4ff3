//go:build linux

package tests

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// FuzzAPIGarbage calls SendAsync with garbage: random Flags (any int),
// nil, empty and huge Buffers, BufferLists with nil and empty segments or
// none or more than IOV_MAX, both or neither set, nil Args, negative and
// tiny Timeouts, nil Completed, buffers changed while in flight, on a
// connected socket, a closed one and one never connected. Nothing
// panics. SendAsync returns exactly the documented error, in the
// documented order (ErrNilArgs, ErrInProgress, ErrBufferConflict,
// ErrNoBuffer, ErrBadFlags, ErrClosed, ErrNotConnected) — ErrInProgress
// only for an Args that may still be in flight — and a refused call sends
// nothing and raises nothing. An accepted send completes exactly once,
// with Success (every byte) or, with a Timeout, TimedOut (a prefix); the
// peer (SO_OOBINLINE, so MSG_OOB bytes stay in the stream) receives exactly
// the reported prefixes in call order.
//
// Input: byte 0 picks the backend; then each call is a target byte (its
// low 3 bits: 0-4 connected, 5 closed, 6 never connected, 7 nil Args), a
// pooled Args, a buffer mode with its sizes, a flags byte (then maybe four
// bytes of raw Flags), a timeout byte and an options byte.
func FuzzAPIGarbage(f *testing.F) {
	var apis []*apiTarget
	for _, be := range backends {
		apis = append(apis, newAPITarget(f, be))
	}
	for _, seed := range [][]byte{
		{0, 0, 0, 3, 10, 0, 0, 0, 1},
		{1, 0, 1, 5, 3, 1, 0, 50, 2, 0, 0, 0},
		{0, 7, 0, 0, 0, 0, 0, 5, 0, 6, 0, 0, 0, 0, 6, 1, 2, 0, 0, 0},
		{1, 0, 0, 3, 255, 255, 200, 0xff, 0xff, 0xff, 0x7f, 0, 0, 1, 1, 2, 0, 0, 0},
		{0, 0, 0, 4, 0, 16, 0, 0, 1, 0, 0, 4, 1, 1, 128, 0x41, 0, 3},
		{1, 1, 2, 5, 6, 0, 1, 2, 3, 4, 5, 150, 0x80, 0, 0, 1, 2, 7, 1, 1},
		{0, 0, 3, 3, 100, 0, 0, 250, 9, 0, 0, 3, 3, 100, 0, 0, 250, 9, 0},
		{1, 0, 0, 7, 1, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0},
		{0, 0, 0, 5, 255, 7, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0},
		{1, 3, 1, 4, 200, 2, 0, 240, 0, 2, 3, 1, 3, 5, 0, 0, 240, 0, 2},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 256 {
			data = data[:256]
		}
		b := fuzzBytes(data)
		apis[b.next()%len(apis)].run(t, &b)
	})
}

// apiTarget is what FuzzAPIGarbage calls on, kept across executions: a
// connected TCP socket whose peer reads into got, a closed socket and one
// never connected.
type apiTarget struct {
	name              string
	conn, closed, nc  *socket.Socket
	mu                sync.Mutex
	got               []byte
	more              chan struct{}
	pool              [4]*apiArgs
	huge              []byte
	allowed           int
	readerErr         atomic.Value
	notSent, accepted int
}

// apiArgs is a pooled Args and what the test knows of its last send.
type apiArgs struct {
	sendop.Args
	mu   sync.Mutex
	last *apiSend // the last accepted send, if it may not have completed
}

// apiSend is one accepted send: its data, and how it completed.
type apiSend struct {
	sh      shape
	timeout bool
	pending bool
	raised  atomic.Int32
	done    chan struct{} // closed by Completed (nil: no Completed set)
	e       *sendop.Args
	// The result, read as soon as it is there (the Args may be reused
	// right after): at the synchronous return, in Completed, or — without
	// a Completed — once the marker behind it has completed.
	se  sendop.SocketError
	n   int
	msg string
}

func (s *apiSend) capture(e *sendop.Args) {
	s.se, s.n, s.msg = e.SocketError(), e.BytesTransferred(), resultError(e)
}

func newAPITarget(f *testing.F, be string) *apiTarget {
	eng := newEngine(f, be)
	a := &apiTarget{name: be, more: make(chan struct{}, 1), huge: bigData(4 << 20),
		allowed: unix.MSG_OOB | unix.MSG_DONTROUTE | unix.MSG_EOR | unix.MSG_MORE | unix.MSG_CONFIRM | unix.MSG_NOSIGNAL}
	var peer net.Conn
	a.conn, peer = tcpPair(f, eng, pairConfig{})
	rc, err := peer.(syscall.Conn).SyscallConn()
	if err != nil {
		f.Fatal(err)
	}
	rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_OOBINLINE, 1) })
	if err != nil {
		f.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1<<20)
		for {
			n, err := peer.Read(buf)
			a.mu.Lock()
			a.got = append(a.got, buf[:n]...)
			a.mu.Unlock()
			select {
			case a.more <- struct{}{}:
			default:
			}
			if err != nil {
				a.readerErr.Store(err)
				return
			}
		}
	}()
	a.closed, _ = tcpPair(f, eng, pairConfig{})
	if err := a.closed.Close(); err != nil {
		f.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		f.Fatal(err)
	}
	if a.nc, err = socket.FromFD(fd, socket.WithEngine(eng)); err != nil {
		f.Fatal(err)
	}
	closeSocketAtEnd(f, a.nc)
	for i := range a.pool {
		a.pool[i] = &apiArgs{}
	}
	return a
}

// garbage decodes the buffers of one call onto e.
func (a *apiTarget) garbage(b *fuzzBytes, e *sendop.Args) {
	switch b.next() % 9 {
	case 0: // neither
		e.SetBuffer(nil)
		e.SetBufferList(nil)
	case 1: // an empty Buffer
		e.SetBufferList(nil)
		e.SetBuffer(pool()[:0])
	case 2: // an empty Buffer with a large capacity
		e.SetBufferList(nil)
		e.SetBuffer(pool()[5:5])
	case 3: // a Buffer
		n := b.u16()
		e.SetBufferList(nil)
		e.SetBuffer(fuzzSlice(n, n))
	case 4: // a huge Buffer
		n := 1<<20 + b.u16()*16
		e.SetBufferList(nil)
		e.SetBuffer(a.huge[len(a.huge)-n:])
	case 5, 6: // a BufferList with nil and empty segments
		e.SetBuffer(nil)
		e.SetBufferList(fuzzShape(b, true).bufs)
	case 7: // both
		e.SetBuffer(fuzzSlice(b.next(), b.next()))
		e.SetBufferList([][]byte{nil, fuzzSlice(3, b.next())})
	case 8: // a BufferList of no segments, of nil ones, or past IOV_MAX
		e.SetBuffer(nil)
		switch n := b.next(); n % 3 {
		case 0:
			e.SetBufferList([][]byte{})
		case 1:
			e.SetBufferList(make([][]byte, n))
		default:
			segs := make([][]byte, 1000+n*4)
			for i := range segs {
				if i%3 != 0 {
					segs[i] = fuzzSlice(i, 1+i%7)
				}
			}
			e.SetBufferList(segs)
		}
	}
}

// predict is the documented validation for a free Args e on s.
func (a *apiTarget) predict(e *sendop.Args, s *socket.Socket) error {
	switch {
	case e.Buffer() != nil && e.BufferList() != nil:
		return sendop.ErrBufferConflict
	case e.Buffer() == nil && e.BufferList() == nil:
		return sendop.ErrNoBuffer
	case e.Flags&^a.allowed != 0:
		return sendop.ErrBadFlags
	case s == a.closed:
		return socket.ErrClosed
	case s == a.nc:
		return socket.ErrNotConnected
	}
	return nil
}

func (a *apiTarget) run(t *testing.T, b *fuzzBytes) {
	var sends []*apiSend
	for call := 0; len(*b) > 0 && call < 16; call++ {
		tc := b.next()
		slot := a.pool[b.next()%len(a.pool)]
		s := a.conn
		switch tc % 8 {
		case 5:
			s = a.closed
		case 6:
			s = a.nc
		case 7:
			pending, p, err := sendRecover(s, nil)
			if p != nil || !errors.Is(err, sendop.ErrNilArgs) || pending {
				t.Fatalf("SendAsync(nil) = %v, %v (panic: %v)", pending, err, p)
			}
			continue
		}
		// A slot whose last send may not have completed can only take
		// calls that must fail anyway: they leave it alone.
		e := &slot.Args
		slot.mu.Lock()
		busy := slot.last != nil && !sendDone(slot.last)
		slot.mu.Unlock()
		var fresh sendop.Args
		if busy && tc&8 != 0 {
			e = &fresh // garbage on a fresh Args instead
			busy = false
		}
		a.garbage(b, e)
		switch fl := b.next(); {
		case fl < 128:
			e.Flags = 0
		case fl < 192:
			e.Flags = b.next() & a.allowed
		default:
			e.Flags = int(int32(uint32(b.next()) | uint32(b.next())<<8 | uint32(b.next())<<16 | uint32(b.next())<<24))
		}
		switch tm := b.next(); {
		case tm < 200:
			e.Timeout = 0
		case tm < 230:
			e.Timeout = -time.Duration(tm)
		default:
			e.Timeout = time.Duration(tm-229) * 50 * time.Microsecond
		}
		opts := b.next()
		e.UserToken = opts
		want := a.predict(e, s)
		if busy && want == nil {
			continue // it would overwrite the results of a send in flight
		}
		sh := shape{buf: e.Buffer(), bufs: e.BufferList()}
		send := &apiSend{sh: sh, timeout: e.Timeout > 0, e: e}
		switch {
		case busy:
			// Completed belongs to the send in flight: leave it.
		case opts%4 != 0:
			send.done = make(chan struct{})
			e.Completed = func(e *sendop.Args) {
				if send.raised.Add(1) == 1 {
					send.capture(e)
					close(send.done)
				} else {
					t.Errorf("Completed raised twice")
				}
			}
		default:
			e.Completed = nil
		}
		pending, p, err := sendRecover(s, e)
		if p != nil {
			t.Fatalf("SendAsync panics: %v", p)
		}
		switch {
		case busy && (errors.Is(err, sendop.ErrInProgress) || errors.Is(err, want)):
			continue
		case !errors.Is(err, want) || err == nil && want != nil:
			t.Fatalf("call %d: SendAsync = %v, want %v (Flags %#x, Buffer %v, BufferList %v)", call, err, want, e.Flags, e.Buffer() != nil, e.BufferList() != nil)
		case err != nil:
			if pending {
				t.Fatalf("call %d: pending with an error", call)
			}
			a.notSent++
			continue
		}
		a.accepted++
		send.pending = pending
		if !pending {
			send.capture(e)
		}
		if e != &fresh {
			slot.mu.Lock()
			slot.last = send
			slot.mu.Unlock()
		} else {
			send.e = &fresh
		}
		sends = append(sends, send)
		if opts&4 != 0 { // change the buffers in flight: the send must not notice
			e.SetBuffer(pool()[:10])
			e.SetBufferList(nil)
		}
	}
	a.settle(t, sends)
}

// waitFree waits until e is free: a probe that fails validation (both
// buffers set) says so with ErrBufferConflict, and changes nothing; an
// Args still in use says ErrInProgress.
func (a *apiTarget) waitFree(t *testing.T, e *sendop.Args, what string) {
	t.Helper()
	deadline := time.Now().Add(longWait())
	for {
		buf, bufs := e.Buffer(), e.BufferList()
		e.SetBuffer([]byte{})
		e.SetBufferList([][]byte{})
		_, err := a.conn.SendAsync(e)
		e.SetBuffer(buf)
		e.SetBufferList(bufs)
		if errors.Is(err, sendop.ErrBufferConflict) {
			return
		}
		if !errors.Is(err, sendop.ErrInProgress) {
			t.Fatalf("probe of %s: %v", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still in use after the marker", what)
		}
		time.Sleep(10 * time.Microsecond)
	}
}

// sendDone reports whether s has surely completed: a synchronous result,
// or a Completed that has run (unknown without a Completed).
func sendDone(s *apiSend) bool {
	if !s.pending {
		return true
	}
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// settle sends a marker after the calls and waits for it: every send
// before it has then completed. It checks each send's result and the
// bytes the peer got.
func (a *apiTarget) settle(t *testing.T, sends []*apiSend) {
	marker := fmt.Appendf(nil, "[marker %d]", a.accepted)
	done := make(chan struct{})
	m := &sendop.Args{Completed: func(*sendop.Args) { close(done) }}
	m.SetBuffer(marker)
	pending, err := a.conn.SendAsync(m)
	if err != nil {
		t.Fatalf("marker: %v", err)
	}
	if pending {
		waitChan(t, done, longWait(), "the marker's Completed")
	}
	var want []byte
	for i, s := range sends {
		if s.done != nil && s.pending {
			waitChan(t, s.done, longWait(), "Completed")
		}
		if !s.pending && s.raised.Load() != 0 {
			t.Fatalf("send %d: synchronous, but Completed raised", i)
		}
		if s.pending && s.done == nil {
			// Its slot stayed busy: nobody reused it. Without a Completed
			// there is no handover: the raiser may still be finishing with
			// e (a marker that completed synchronously does not wait for
			// it). Once e is free again — an atomic state change — its
			// result is there to read.
			a.waitFree(t, s.e, fmt.Sprintf("send %d's Args", i))
			s.capture(s.e)
		}
		se, n, total := s.se, s.n, s.sh.total()
		switch {
		case s.msg != "":
			t.Fatalf("send %d: %s", i, s.msg)
		case se == sendop.Success && n == total:
		case se == sendop.TimedOut && s.timeout && n >= 0 && n <= total:
		default:
			t.Fatalf("send %d: %v, %d of %d bytes (pending %v, Completed %v)", i, se, n, total, s.pending, s.done != nil)
		}
		want = appendPrefix(want, s.sh, n)
	}
	if m.SocketError() != sendop.Success {
		t.Fatalf("marker: %v", m.Err())
	}
	want = append(want, marker...)
	deadline := time.NewTimer(longWait())
	defer deadline.Stop()
	for {
		a.mu.Lock()
		n := len(a.got)
		a.mu.Unlock()
		if n >= len(want) {
			break
		}
		select {
		case <-a.more:
		case <-deadline.C:
			t.Fatalf("the peer got %d of %d bytes (reader: %v)", n, len(want), a.readerErr.Load())
		}
	}
	a.mu.Lock()
	got := a.got
	a.got = a.got[len(want):]
	a.mu.Unlock()
	if string(got[:len(want)]) != string(want) || len(got) != len(want) {
		t.Fatalf("the peer got %d bytes, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	// Every pooled Args is free now, or about to be: a send without
	// Completed that finished before the marker is freed by the raiser,
	// maybe a moment after the marker completed synchronously. A probe
	// that fails validation (both buffers set) tells, and changes nothing.
	for i, p := range a.pool {
		a.waitFree(t, &p.Args, fmt.Sprintf("pooled Args %d", i))
		p.mu.Lock()
		p.last = nil
		p.mu.Unlock()
	}
}
