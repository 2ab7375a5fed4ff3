//go:build linux

package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// A UDP pipeline of 64 Args on a WithBatching socket, each resent from
// Completed: the datagrams queued on the socket leave coalesced (UDP GSO),
// and the receiver still gets every one of them on its own — once, in
// call order, with its length and content — while every send completes
// once with BytesTransferred equal to its length. IPv4 and IPv6, Buffer
// and BufferList, runs of equal lengths broken by shorter and longer ones.
func TestUDPGSOPipeline(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, network := range []string{"udp4", "udp6"} {
			t.Run(network, func(t *testing.T) { udpGSOPipeline(t, eng, network) })
		}
	})
}

func udpGSOPipeline(t *testing.T, eng *socket.Engine, network string) {
	const depth, n = 64, 20000
	rng := newRand(t)
	// Datagram i: its index, then bytes of the pool; runs of one length.
	dgrams := make([][]byte, n)
	size := 64
	for i := range dgrams {
		l := size
		switch r := rng.IntN(100); {
		case r < 2:
			size = 4 + rng.IntN(1400)
			l = size
		case r < 5:
			l = 4 + rng.IntN(size)
		}
		d := make([]byte, l)
		copy(d[4:], poolSlice(rng, l-4))
		binary.LittleEndian.PutUint32(d, uint32(i))
		dgrams[i] = d
	}

	laddr := "127.0.0.1:0"
	if network == "udp6" {
		laddr = "[::1]:0"
	}
	pc, err := net.ListenPacket(network, laddr)
	if err != nil {
		t.Skipf("%s: %v", network, err)
	}
	peer := pc.(*net.UDPConn)
	t.Cleanup(func() { peer.Close() })
	rc, _ := peer.SyscallConn()
	rc.Control(func(fd uintptr) {
		// Room for all of them, should the reader fall behind: a test
		// that counts every datagram cannot afford a kernel drop.
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20) != nil {
			t.Skip("needs SO_RCVBUFFORCE (root) for a lossless receiver")
		}
	})
	type result struct {
		got  int
		bad  []string
		hash [32]byte
	}
	received := make(chan result, 1)
	go func() {
		var r result
		h := sha256.New()
		buf := make([]byte, 1<<16)
		for r.got < n {
			m, err := peer.Read(buf)
			if err != nil {
				break
			}
			d := buf[:m]
			switch {
			case m < 4:
				r.bad = append(r.bad, fmt.Sprintf("a datagram of %d bytes", m))
			case int(binary.LittleEndian.Uint32(d)) != r.got:
				r.bad = append(r.bad, fmt.Sprintf("datagram %d arrived where %d was due", binary.LittleEndian.Uint32(d), r.got))
			case !bytes.Equal(d, dgrams[r.got]):
				r.bad = append(r.bad, fmt.Sprintf("datagram %d: %d bytes, want %d, or other content", r.got, m, len(dgrams[r.got])))
			}
			h.Write(d)
			r.got++
		}
		copy(r.hash[:], h.Sum(nil))
		received <- r
	}()

	s, err := socket.Dial(network, peer.LocalAddr().String(), socket.WithEngine(eng), socket.WithBatching())
	if err != nil {
		t.Fatal(err)
	}
	closeSocketAtEnd(t, s)

	var (
		mu     sync.Mutex // index order is call order
		next   int
		counts = make([]atomic.Int32, n)
		left   = make(chan struct{})
		done   atomic.Int64
	)
	record := func(e *sendop.Args) {
		i := e.UserToken.(int)
		if c := counts[i].Add(1); c != 1 {
			t.Errorf("datagram %d completed %d times", i, c)
		}
		if e.SocketError() != sendop.Success || e.BytesTransferred() != len(dgrams[i]) {
			t.Errorf("datagram %d: %v, %d of %d bytes", i, e.Err(), e.BytesTransferred(), len(dgrams[i]))
		}
		if done.Add(1) == n {
			close(left)
		}
	}
	// send gives e the next datagram until one is pending.
	send := func(e *sendop.Args) {
		for {
			mu.Lock()
			if next == n {
				mu.Unlock()
				return
			}
			i := next
			next++
			e.UserToken = i
			d := dgrams[i]
			if i%3 == 0 && len(d) > 8 {
				e.SetBuffer(nil)
				e.SetBufferList([][]byte{d[:5], nil, d[5:]})
			} else {
				e.SetBufferList(nil)
				e.SetBuffer(d)
			}
			pending, err := sendAsync(s, e)
			mu.Unlock()
			if err != nil {
				t.Errorf("datagram %d: %v", i, err)
				return
			}
			if pending {
				return
			}
			// WithBatching has no effect on epoll; on io_uring every send queues.
			if eng.Backend() == socket.BackendIOURing {
				t.Errorf("datagram %d completed synchronously on a WithBatching socket", i)
			}
			record(e)
		}
	}
	args := make([]sendop.Args, depth)
	for i := range args {
		args[i].Completed = func(e *sendop.Args) { record(e); send(e) }
		send(&args[i])
	}
	waitChan(t, left, longWait(), "every send's completion")
	r := waitChan(t, received, longWait(), "every datagram at the receiver")
	for i, b := range r.bad {
		if i == 10 {
			t.Errorf("... %d more", len(r.bad)-i)
			break
		}
		t.Error(b)
	}
	want := sha256.New()
	for _, d := range dgrams {
		want.Write(d)
	}
	if !bytes.Equal(want.Sum(nil), r.hash[:]) {
		t.Fatal("SHA-256 of the received datagrams differs from the sent ones'")
	}
}
