//go:build linux

package tests

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// FuzzBufferListShapes sends BufferLists of fuzzed shapes — no segments,
// nil and empty segments, thousands of segments (past IOV_MAX = 1024),
// sizes around the UDP limit — on stream and datagram sockets of both
// backends, and checks the documented outcome. Stream sockets: Success,
// every byte, the peer gets exactly the concatenation (a list longer than
// IOV_MAX goes in pieces). Datagram sockets: more than IOV_MAX segments,
// or more bytes than the socket takes (UDP 65507; AF_UNIX SO_SNDBUF - 32),
// gives MessageSize with nothing sent and nothing received; otherwise
// exactly one datagram with exactly the concatenation.
//
// Input: byte 0 picks the socket (backend × tcp, unix, udp, unixgram,
// unixpacket); bytes 1-2 the number of segments (up to 3000); byte 3 a
// length unit; the rest a pattern cycled over the segments, each byte
// giving a segment nil (%4 == 0), empty (%4 == 1) or (byte/4)·unit bytes.
func FuzzBufferListShapes(f *testing.F) {
	targets := newShapeTargets(f)
	for _, seed := range [][]byte{
		{0, 0, 0, 1},                           // io_uring tcp: no segments
		{1, 5, 0, 1, 0, 1, 2},                  // io_uring unix: nil, empty, 0-byte segments
		{2, 4, 0, 255, 255},                    // io_uring udp: 4 × 16128 = 64512 bytes
		{2, 5, 0, 255, 255},                    // io_uring udp: 5 × 16128 > 65507
		{2, 1, 4, 0, 6},                        // io_uring udp: 1025 one-byte segments
		{2, 0, 4, 0, 6, 0, 1},                  // io_uring udp: 1024 segments, some nil or empty
		{3, 0, 4, 0, 6},                        // unixgram: 1024 segments
		{4, 1, 4, 3, 6, 0, 1},                  // io_uring unixpacket: 1025 segments
		{5, 184, 11, 16, 6, 10, 0, 1, 255, 14}, // epoll tcp: 3000 segments
		{0, 184, 11, 64, 255, 254, 253},        // io_uring tcp: 3000 segments, 4 MiB
		{6, 1, 8, 2, 6, 1, 0},                  // epoll unix: 2049 segments
		{7, 0, 0, 1},                           // epoll udp: no segments, an empty datagram
		{9, 0, 0, 1},                           // epoll unixpacket: an empty datagram
		{3, 14, 0, 255, 255},                   // io_uring unixgram: 14 × 16128 bytes
		{8, 20, 0, 255, 255},                   // epoll unixgram: 20 × 16128 bytes, past SO_SNDBUF
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := fuzzBytes(data)
		tg := targets[b.next()%len(targets)]
		nseg := b.u16() % 3001
		unit := 1 + b.next()
		pat := []byte(b)
		segs := make([][]byte, nseg)
		total := 0
		for i := range segs {
			p := 0
			if len(pat) > 0 {
				p = int(pat[i%len(pat)])
			}
			switch {
			case p%4 == 0:
				segs[i] = nil
			case p%4 == 1:
				segs[i] = []byte{}
			default:
				n := min(p/4*unit, 4<<20-total) // at most 4 MiB in all
				segs[i] = fuzzSlice(p*131+i, n)
				total += n
			}
		}
		tg.check(t, segs, total)
	})
}

// shapeTarget is a socket that outlives the fuzz executions, with its peer.
type shapeTarget struct {
	name   string
	s      *socket.Socket
	peer   net.Conn
	stream bool
	limit  int // datagrams: the most bytes one may carry

	mu   sync.Mutex // stream: what the peer has read and not yet checked
	got  []byte
	more chan struct{}
}

func newShapeTargets(f testing.TB) []*shapeTarget {
	var out []*shapeTarget
	for _, be := range backends {
		eng := newEngine(f, be)
		for _, network := range []string{"tcp", "unix", "udp", "unixgram", "unixpacket"} {
			tg := &shapeTarget{name: be + "/" + network, more: make(chan struct{}, 1)}
			switch network {
			case "tcp", "unix":
				tg.stream = true
				tg.s, tg.peer = streamPair(f, eng, network, pairConfig{})
				go tg.readStream()
			default:
				tg.s, tg.peer = dgramPair(f, eng, network)
				tg.limit = 65507
				if network != "udp" {
					sndbuf, err := unix.GetsockoptInt(tg.s.FD(), unix.SOL_SOCKET, unix.SO_SNDBUF)
					if err != nil {
						f.Fatal(err)
					}
					tg.limit = sndbuf - 32
				}
			}
			out = append(out, tg)
		}
	}
	return out
}

func (tg *shapeTarget) readStream() {
	buf := make([]byte, 256<<10)
	for {
		n, err := tg.peer.Read(buf)
		tg.mu.Lock()
		tg.got = append(tg.got, buf[:n]...)
		tg.mu.Unlock()
		select {
		case tg.more <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// send sends segs and waits for the result.
func (tg *shapeTarget) send(t *testing.T, segs [][]byte) *sendop.Args {
	t.Helper()
	e, wait := tg.start(t, segs)
	wait()
	return e
}

// start starts sending segs; wait waits for the result and checks that
// Err agrees with SocketError.
func (tg *shapeTarget) start(t *testing.T, segs [][]byte) (e *sendop.Args, wait func()) {
	t.Helper()
	done := make(chan struct{}, 1)
	e = &sendop.Args{Completed: func(*sendop.Args) { done <- struct{}{} }}
	e.SetBufferList(segs)
	pending, err := tg.s.SendAsync(e)
	if err != nil {
		t.Fatalf("%s: SendAsync(%d segments): %v", tg.name, len(segs), err)
	}
	return e, func() {
		t.Helper()
		if pending {
			waitChan(t, done, longWait(), tg.name+": Completed")
		}
		if msg := resultError(e); msg != "" {
			t.Fatalf("%s: %s", tg.name, msg)
		}
	}
}

func (tg *shapeTarget) check(t *testing.T, segs [][]byte, total int) {
	e := tg.send(t, segs)
	want := appendPrefix(nil, shape{bufs: segs}, total)
	if tg.stream {
		if e.SocketError() != sendop.Success || e.BytesTransferred() != total {
			t.Fatalf("%s: %d segments, %d bytes: %v, %d transferred", tg.name, len(segs), total, e.Err(), e.BytesTransferred())
		}
		deadline := time.NewTimer(longWait())
		defer deadline.Stop()
		for {
			tg.mu.Lock()
			n := len(tg.got)
			tg.mu.Unlock()
			if n >= total {
				break
			}
			select {
			case <-tg.more:
			case <-deadline.C:
				t.Fatalf("%s: the peer got %d of %d bytes", tg.name, n, total)
			}
		}
		tg.mu.Lock()
		got := tg.got
		tg.got = tg.got[total:]
		tg.mu.Unlock()
		if len(got) != total || string(got) != string(want) {
			t.Fatalf("%s: %d segments: the peer got %d bytes, want %d; first difference at %d", tg.name, len(segs), len(got), total, firstDiff(got, want))
		}
		return
	}
	tooBig := len(segs) > sendop.IOVMax || total > tg.limit
	switch {
	case tooBig && (e.SocketError() != sendop.MessageSize || !errors.Is(e.Err(), syscall.EMSGSIZE) || e.BytesTransferred() != 0):
		t.Fatalf("%s: %d segments, %d bytes (limit %d): %v, %d transferred; want MessageSize, 0", tg.name, len(segs), total, tg.limit, e.Err(), e.BytesTransferred())
	case !tooBig && (e.SocketError() != sendop.Success || e.BytesTransferred() != total):
		t.Fatalf("%s: %d segments, %d bytes: %v, %d transferred; want Success", tg.name, len(segs), total, e.Err(), e.BytesTransferred())
	}
	// A marker follows; the peer must see the datagram (if sent), then it.
	// (The marker may wait for the peer to read: an unread AF_UNIX
	// datagram still counts against the sender's SO_SNDBUF.)
	marker := []byte("marker")
	m, waitMarker := tg.start(t, [][]byte{marker})
	defer func() {
		waitMarker()
		if m.SocketError() != sendop.Success {
			t.Fatalf("%s: marker: %v", tg.name, m.Err())
		}
	}()
	buf := make([]byte, 256<<10)
	first := readDatagram(t, tg.peer, buf)
	if !tooBig {
		if string(first) != string(want) {
			t.Fatalf("%s: received a %d-byte datagram, want the %d bytes sent", tg.name, len(first), total)
		}
		first = readDatagram(t, tg.peer, buf)
	}
	if string(first) != string(marker) {
		t.Fatalf("%s: received a %d-byte datagram where the marker was due (too big: %v)", tg.name, len(first), tooBig)
	}
}

// readDatagram reads one datagram from c with recvfrom(2), so that an
// empty one is an empty datagram and not end of file.
func readDatagram(t *testing.T, c net.Conn, buf []byte) []byte {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(longWait()))
	defer c.SetReadDeadline(time.Time{})
	var n int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_TRUNC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if n > len(buf) {
		t.Fatalf("received a datagram of %d bytes, more than %d", n, len(buf))
	}
	return buf[:n]
}
