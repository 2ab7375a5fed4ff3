//go:build linux

package tests

import (
	"bytes"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// Invariant 4: datagrams are atomic. A message larger than the socket
// allows sends nothing and completes with MessageSize; a BufferList of more
// than IOV_MAX segments on a datagram socket is MessageSize too.

var dgramNetworks = []string{"udp", "unixgram", "unixpacket"}

// dgramPairSmall is dgramPair with the Socket's SO_SNDBUF shrunk so that
// a 70000-byte message is too large on unix datagram sockets as well
// (their limit is the send buffer; UDP's is 65507 bytes).
func dgramPairSmall(t *testing.T, eng *socket.Engine, network string) (*socket.Socket, net.Conn) {
	s, peer := dgramPair(t, eng, network)
	if network != "udp" {
		setBufs(t, s.FD(), pairConfig{sndbuf: 16 << 10}, true)
	}
	return s, peer
}

// readDgram reads one datagram with a deadline.
func readDgram(t *testing.T, c net.Conn, buf []byte) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(longWait()))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return buf[:n]
}

// sentDgram is a send made by sendResult.
type sentDgram struct {
	*watched
	pending bool
}

// sendResult sends sh with a fresh Args and waits for its result. Whether
// it completed exactly once is checked by once, after a barrier.
func sendResult(t *testing.T, s *socket.Socket, sh shape) sentDgram {
	t.Helper()
	w := newWatched(t)
	sh.apply(&w.Args)
	pending, err := sendAsync(s, &w.Args)
	if err != nil {
		t.Fatalf("SendAsync: %v", err)
	}
	if pending {
		waitChan(t, w.ch, longWait(), "Completed")
	}
	return sentDgram{w, pending}
}

// once checks, after the barriers (a later send on the same socket that
// completed, a Close that returned), that w completed exactly once: one
// Completed if it was pending, none if it was synchronous.
func (w sentDgram) once(t *testing.T, barriers ...func()) {
	t.Helper()
	w.noneRaised(t, barriers...)
	if want := int32(0); w.pending {
		if w.raised.Load() != 1 {
			t.Fatalf("pending, Completed raised %d times", w.raised.Load())
		}
	} else if w.raised.Load() != want {
		t.Fatalf("synchronous, but Completed raised %d times", w.raised.Load())
	}
}

// expectMessageSize checks that sh fails whole with MessageSize, then that
// the next datagram the peer gets is a marker sent after it.
//
// It appends the marker's send to markers: the caller checks them with
// once after a barrier of its own.
func expectMessageSize(t *testing.T, s *socket.Socket, peer net.Conn, sh shape, markers *[]sentDgram) {
	t.Helper()
	w := sendResult(t, s, sh)
	if w.SocketError() != sendop.MessageSize || !errors.Is(w.Err(), syscall.EMSGSIZE) {
		t.Fatalf("%d-byte datagram: %v (%v), want MessageSize / EMSGSIZE", sh.total(), w.SocketError(), w.Err())
	}
	if int(w.SocketError()) != 10040 {
		t.Fatalf("MessageSize = %d, want 10040", int(w.SocketError()))
	}
	if w.BytesTransferred() != 0 {
		t.Fatalf("MessageSize with BytesTransferred %d, want 0", w.BytesTransferred())
	}
	marker := []byte("marker after the oversize datagram")
	r := sendResult(t, s, shape{buf: marker})
	if r.SocketError() != sendop.Success || r.BytesTransferred() != len(marker) {
		t.Fatalf("marker: %v, %d bytes", r.Err(), r.BytesTransferred())
	}
	// The marker completed after w on the same socket: a second Completed
	// of w would have come before it.
	w.once(t)
	*markers = append(*markers, r)
	buf := make([]byte, 128<<10)
	if got := readDgram(t, peer, buf); !bytes.Equal(got, marker) {
		t.Fatalf("peer received a %d-byte datagram before the marker", len(got))
	}
}

func TestDatagramOversize(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, network := range dgramNetworks {
			t.Run(network, func(t *testing.T) {
				rng := newRand(t)
				s, peer := dgramPairSmall(t, eng, network)
				big := poolSlice(rng, 70000)
				var markers []sentDgram
				expectMessageSize(t, s, peer, shape{buf: big}, &markers)
				expectMessageSize(t, s, peer, shape{bufs: [][]byte{big[:1000], nil, big[1000:40000], big[40000:]}}, &markers)
				closing(t, s, nil)()
				for _, m := range markers {
					m.once(t)
				}
			})
		}
	})
}

func TestDatagramIOVMax(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, network := range dgramNetworks {
			t.Run(network, func(t *testing.T) {
				rng := newRand(t)
				s, peer := dgramPair(t, eng, network)
				segs := func(n int) shape {
					bufs := make([][]byte, n)
					for i := range bufs {
						bufs[i] = poolSlice(rng, 1)
					}
					return shape{bufs: bufs}
				}
				var markers []sentDgram
				expectMessageSize(t, s, peer, segs(sendop.IOVMax+1), &markers)
				expectMessageSize(t, s, peer, segs(5000), &markers)

				// Exactly IOV_MAX segments is one datagram, intact.
				sh := segs(sendop.IOVMax)
				w := sendResult(t, s, sh)
				if w.SocketError() != sendop.Success || w.BytesTransferred() != sendop.IOVMax {
					t.Fatalf("%d segments: %v, %d bytes", sendop.IOVMax, w.Err(), w.BytesTransferred())
				}
				if got := readDgram(t, peer, make([]byte, 4096)); !bytes.Equal(got, sh.bytes()) {
					t.Fatalf("peer received %d bytes, want the %d-segment datagram", len(got), sendop.IOVMax)
				}
				closing(t, s, nil)()
				for _, m := range append(markers, w) {
					m.once(t)
				}
			})
		}
	})
}

// Many datagrams of random shapes, pipelined: each arrives whole and
// unchanged, in order, and each send completes exactly once.
func TestDatagramIntact(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, network := range dgramNetworks {
			t.Run(network, func(t *testing.T) {
				rng := newRand(t)
				s, peer := dgramPair(t, eng, network)
				if network == "udp" {
					// Loopback UDP drops what the receive buffer cannot hold.
					rc, _ := peer.(*net.UDPConn).SyscallConn()
					rc.Control(func(fd uintptr) {
						if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
							t.Logf("SO_RCVBUFFORCE: %v", err)
						}
					})
				}
				const n = 300
				maxSize := 8000
				if network == "udp" {
					maxSize = 1400
				}
				shapes := make([]shape, n)
				for i := range shapes {
					size := rng.IntN(maxSize + 1)
					if network == "unixpacket" {
						size = max(size, 1) // a 0-byte SEQPACKET message reads as EOF in Go
					}
					if rng.IntN(2) == 0 {
						shapes[i] = shape{buf: poolSlice(rng, size)}
					} else {
						cut := rng.IntN(size + 1)
						b := poolSlice(rng, size)
						shapes[i] = shape{bufs: [][]byte{b[:cut], nil, b[cut:]}}
					}
				}
				// The receiver runs alongside: unixgram queues only a few
				// datagrams, so later sends wait for it (pending).
				got := make(chan [][]byte, 1)
				go func() {
					var out [][]byte
					buf := make([]byte, 64<<10)
					for range n {
						peer.SetReadDeadline(time.Now().Add(longWait()))
						k, err := peer.Read(buf)
						if err != nil {
							break
						}
						out = append(out, bytes.Clone(buf[:k]))
					}
					got <- out
				}()
				tr := newTracker(t, n)
				args := make([]sendop.Args, n)
				check := func(e *sendop.Args) {
					i := e.UserToken.(int)
					if e.SocketError() != sendop.Success || e.BytesTransferred() != shapes[i].total() {
						t.Errorf("datagram %d: %v, %d of %d bytes", i, e.Err(), e.BytesTransferred(), shapes[i].total())
					}
				}
				for i := range args {
					shapes[i].apply(&args[i])
					args[i].UserToken = i
					args[i].Completed = func(e *sendop.Args) { check(e); tr.completed(i) }
					pending, err := sendAsync(s, &args[i])
					if err != nil {
						t.Fatalf("datagram %d: %v", i, err)
					}
					if !pending {
						check(&args[i])
						tr.sync(i)
					}
				}
				tr.wait(closing(t, s, nil))
				out := waitChan(t, got, longWait(), "the receiver")
				if len(out) != n {
					t.Fatalf("received %d datagrams, want %d", len(out), n)
				}
				for i := range out {
					if !bytes.Equal(out[i], shapes[i].bytes()) {
						t.Fatalf("datagram %d: received %d bytes that differ from the %d sent", i, len(out[i]), shapes[i].total())
					}
				}
				t.Logf("%d datagrams: %d synchronous, %d Completed", n, tr.syncs.Load(), tr.raised.Load())
			})
		}
	})
}

// A unixgram receiver queues at most net.unix.max_dgram_qlen datagrams;
// sends beyond that wait (pending) until it reads. Each must still arrive
// whole: a send that waited must not go out as an empty datagram.
func TestDatagramUnixgramQueueFull(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		rng := newRand(t)
		s, peer := dgramPair(t, eng, "unixgram")
		const n = 40
		tr := newTracker(t, n)
		args := make([]sendop.Args, n)
		data := make([][]byte, n)
		for i := range args {
			data[i] = poolSlice(rng, 1000)
			args[i].SetBuffer(data[i])
			args[i].UserToken = i
			args[i].Completed = func(e *sendop.Args) { tr.completed(i) }
			pending, err := sendAsync(s, &args[i])
			if err != nil {
				t.Fatal(err)
			}
			if !pending {
				tr.sync(i)
			}
		}
		if tr.syncs.Load() == n {
			t.Fatal("no send waited for the receiver: the queue did not fill")
		}
		time.Sleep(scaled(50 * time.Millisecond)) // a receiver busy elsewhere
		buf := make([]byte, 4096)
		bad := 0
		for i := range n {
			if got := readDgram(t, peer, buf); !bytes.Equal(got, data[i]) {
				bad++
				t.Errorf("datagram %d: received %d bytes, want the 1000 sent", i, len(got))
			}
		}
		tr.wait(closing(t, s, nil))
		for i := range args {
			if args[i].SocketError() != sendop.Success || args[i].BytesTransferred() != 1000 {
				t.Errorf("send %d: %v, %d of 1000 bytes", i, args[i].Err(), args[i].BytesTransferred())
			}
		}
		t.Logf("%d synchronous, %d waited; %d datagrams damaged", tr.syncs.Load(), tr.raised.Load(), bad)
	})
}
