//go:build linux

package socket

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// Datagram coalescing with UDP GSO: queued datagrams leave in one sendmsg
// with a UDP_SEGMENT cmsg, and the receiver still gets each one on its
// own, in order, byte for byte; each send completes once with its length.

// gsoSupported skips a test on a kernel without UDP GSO (< 4.18).
func gsoSupported(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if !udpGSO(fd) {
		t.Skip("kernel without UDP_SEGMENT (needs >= 4.18)")
	}
}

// dgram makes datagram i of n bytes (n >= 4): its index, then bytes that
// depend on the index and the offset, so a swap or a cut shows.
func dgram(i, n int) []byte {
	b := make([]byte, n)
	binary.LittleEndian.PutUint32(b, uint32(i))
	for j := 4; j < n; j++ {
		b[j] = byte(i*7 + j)
	}
	return b
}

// udpSink receives datagrams on a bound UDP socket and checks each one
// against want (length, content, order within its stream); with gro it
// asks the kernel for GSO packets whole (UDP_GRO), splits them by the
// reported segment size, and records the segment count of each packet:
// what the sender's wires were.
type udpSink struct {
	c    *net.UDPConn
	want [][]byte
	o    sinkOpts
	done chan struct{}

	mu      sync.Mutex
	got     int
	next    [2]int // next index due in each stream
	bad     []string
	packets []int // datagrams per received packet
	h       [2]hash.Hash
	marked  chan struct{} // the marker datagram arrived (see wait)
}

// sinkMarker is the index of the marker datagram that wait sends after
// everything; sinkMarkerLen is its length, longer than any datagram of a
// test, so that GRO cannot fold it into a packet of the test's datagrams
// as a shorter last segment.
const (
	sinkMarker    = 0xFFFFFFFF
	sinkMarkerLen = 2000
)

type sinkOpts struct {
	gro bool
	// split > 0: datagrams [0, split) and [split, len(want)) are two
	// streams sent concurrently; each arrives in order.
	split int
	// noCheck6: accept IPv6 datagrams without a UDP checksum.
	noCheck6 bool
	// lost: datagrams whose send must fail; the others arrive.
	lost map[int]bool
}

func newUDPSink(t *testing.T, network string, want [][]byte, o sinkOpts) *udpSink {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "udp6" {
		addr = "[::1]:0"
	}
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Skipf("%s: %v", network, err)
	}
	k := &udpSink{c: c.(*net.UDPConn), want: want, o: o, done: make(chan struct{}), h: [2]hash.Hash{sha256.New(), sha256.New()},
		marked: make(chan struct{}, 1)}
	k.next[1] = o.split
	rc, _ := k.c.SyscallConn()
	rc.Control(func(fd uintptr) {
		// Room for every datagram of a test, should the reader lag.
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 64<<20)
		}
		if o.gro {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1); err != nil {
				t.Skipf("UDP_GRO: %v", err)
			}
		}
		if o.noCheck6 {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_NO_CHECK6_RX, 1); err != nil {
				t.Fatal(err)
			}
		}
	})
	go k.loop()
	t.Cleanup(func() { k.c.Close(); <-k.done })
	return k
}

func (k *udpSink) addr() string { return k.c.LocalAddr().String() }

func (k *udpSink) loop() {
	defer close(k.done)
	buf := make([]byte, 1<<16)
	oob := make([]byte, 64)
	for {
		n, oobn, _, _, err := k.c.ReadMsgUDP(buf, oob)
		if err != nil {
			return
		}
		seg := n
		if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, cm := range cms {
				if cm.Header.Level == unix.SOL_UDP && cm.Header.Type == unix.UDP_GRO && len(cm.Data) >= 4 {
					seg = int(binary.NativeEndian.Uint32(cm.Data))
				}
			}
		}
		k.mu.Lock()
		segs := 0
		for off := 0; off < n; off += seg {
			if k.check(buf[off:min(off+seg, n)]) {
				segs++
			}
		}
		if segs > 0 {
			k.packets = append(k.packets, segs)
		}
		k.mu.Unlock()
	}
}

// check checks one datagram; it reports false for the marker, which is
// not one of the test's.
func (k *udpSink) check(d []byte) bool {
	if len(d) == sinkMarkerLen && binary.LittleEndian.Uint32(d) == sinkMarker {
		select {
		case k.marked <- struct{}{}:
		default:
		}
		return false
	}
	k.got++
	if len(d) < 4 {
		k.bad = append(k.bad, fmt.Sprintf("a datagram of %d bytes", len(d)))
		return true
	}
	i := int(binary.LittleEndian.Uint32(d))
	st := 0
	if k.o.split > 0 && i >= k.o.split {
		st = 1
	}
	k.h[st].Write(d)
	switch {
	case i >= len(k.want):
		k.bad = append(k.bad, fmt.Sprintf("datagram %d of %d bytes: not sent", i, len(d)))
	case i != k.next[st]:
		k.bad = append(k.bad, fmt.Sprintf("datagram %d arrived where %d was due", i, k.next[st]))
	case !bytes.Equal(d, k.want[i]):
		k.bad = append(k.bad, fmt.Sprintf("datagram %d: %d bytes, want %d, or other content", i, len(d), len(k.want[i])))
	}
	k.next[st] = i + 1
	for k.o.lost[k.next[st]] {
		k.next[st]++
	}
	return true
}

// wait returns once every wanted datagram is in (or fails t), then checks
// the streams' hashes and that nothing more arrives: it sends a marker
// datagram on s, the socket that sent them, and waits for it to arrive —
// a datagram sent twice, or late, would have arrived before it (the
// loopback path keeps one socket's datagrams in order, as the test's
// order checks assume).
func (k *udpSink) wait(t *testing.T, s *Socket) (packets []int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		k.mu.Lock()
		got := k.got
		k.mu.Unlock()
		if got >= len(k.want)-len(k.o.lost) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	m := make([]byte, sinkMarkerLen)
	binary.LittleEndian.PutUint32(m, sinkMarker)
	sent := make(chan error, 1)
	e := &sendop.Args{Completed: func(e *sendop.Args) { sent <- e.Err() }}
	e.SetBuffer(m)
	pending, err := s.SendAsync(e)
	if err == nil && !pending {
		err = e.Err()
	} else if err == nil {
		select {
		case err = <-sent:
		case <-time.After(10 * time.Second):
			t.Fatal("the marker datagram never completed")
		}
	}
	if err != nil {
		t.Fatalf("marker datagram: %v", err)
	}
	select {
	case <-k.marked:
	case <-time.After(10 * time.Second):
		t.Fatal("the marker datagram never arrived")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, b := range k.bad {
		if i == 10 {
			t.Errorf("... %d more", len(k.bad)-i)
			break
		}
		t.Error(b)
	}
	if k.got != len(k.want)-len(k.o.lost) {
		t.Fatalf("received %d datagrams, want %d", k.got, len(k.want)-len(k.o.lost))
	}
	split := k.o.split
	if split == 0 {
		split = len(k.want)
	}
	for st, part := range [][][]byte{k.want[:split], k.want[split:]} {
		w := sha256.New()
		for _, d := range part {
			if !k.o.lost[int(binary.LittleEndian.Uint32(d))] {
				w.Write(d)
			}
		}
		if !bytes.Equal(w.Sum(nil), k.h[st].Sum(nil)) {
			t.Fatalf("stream %d: SHA-256 of the received datagrams differs from the sent ones'", st)
		}
	}
	return append([]int(nil), k.packets...)
}

// dialUDP connects a Socket on eng to addr.
func dialUDP(t *testing.T, eng *Engine, network, addr string, opts ...Option) *Socket {
	t.Helper()
	s, err := Dial(network, addr, append([]Option{WithEngine(eng)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sends tracks Args that must each complete exactly once.
type sends struct {
	t     *testing.T
	args  []sendop.Args
	count []atomic.Int32
	left  sync.WaitGroup
	check func(i int, e *sendop.Args) // nil: Success with every byte
	after func(i int)                 // runs after send i completed, sync or not
	lens  []int
}

func newSends(t *testing.T, bufs [][]byte, lists map[int]bool) *sends {
	x := &sends{t: t, args: make([]sendop.Args, len(bufs)), count: make([]atomic.Int32, len(bufs)), lens: make([]int, len(bufs))}
	for i, b := range bufs {
		e := &x.args[i]
		if lists[i] {
			// A BufferList with an empty piece: joins by its total length.
			cut := len(b) / 3
			e.SetBufferList([][]byte{b[:cut], nil, b[cut:]})
		} else {
			e.SetBuffer(b)
		}
		e.UserToken = i
		e.Completed = func(e *sendop.Args) { x.done(e.UserToken.(int), e) }
		x.lens[i] = len(b)
	}
	x.left.Add(len(bufs))
	return x
}

func (x *sends) done(i int, e *sendop.Args) {
	if n := x.count[i].Add(1); n != 1 {
		x.t.Errorf("send %d completed %d times", i, n)
		return
	}
	if x.check != nil {
		x.check(i, e)
	} else if e.SocketError() != sendop.Success || e.BytesTransferred() != x.lens[i] {
		x.t.Errorf("send %d: %v, %d of %d bytes", i, e.Err(), e.BytesTransferred(), x.lens[i])
	}
	x.left.Done()
	if x.after != nil {
		x.after(i)
	}
}

// send hands Args i to s; a synchronous completion is recorded at once.
func (x *sends) send(s *Socket, i int) {
	pending, err := s.SendAsync(&x.args[i])
	if err != nil {
		x.t.Errorf("send %d: %v", i, err) // maybe on the reaper: no Fatal
		x.left.Done()
		return
	}
	if !pending {
		x.done(i, &x.args[i])
	}
}

func (x *sends) wait() {
	ch := make(chan struct{})
	go func() { x.left.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		x.t.Fatal("sends still incomplete after 20 s")
	}
}

// corked queues the sends of fn on s while its wire counts as busy, then
// lets the backend put the queue on the wire: every datagram is queued
// before the first wire is built, so the wires are known in advance.
func corked(s *Socket, fn func()) {
	// Only an idle socket may be corked: its wire belongs to nobody.
	for {
		s.mu.Lock()
		if s.q.Len() == 0 && s.w.wire == 0 && !s.writing {
			break
		}
		s.mu.Unlock()
		time.Sleep(100 * time.Microsecond)
	}
	s.writing = true // epoll: SendAsync sees a busy writer and queues
	s.w.wire = 1     // io_uring: the reaper sees a busy wire and waits
	s.mu.Unlock()
	fn()
	s.mu.Lock()
	s.writing = false
	s.w.wire = 0
	s.mu.Unlock()
	if s.u != nil {
		s.u.scheduleFlush(s)
	} else {
		s.kickWriter()
	}
}

func gsoOf(s *Socket) gsoState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.gso
}

// wires is the model of buildDgramWire: the datagram counts of the wires
// that datagrams of lens, all queued at once, leave in.
func wires(lens []int, maxSegs, maxLen int) []int {
	var w []int
	for i := 0; i < len(lens); {
		size, n, total := lens[i], 1, lens[i]
		if size <= maxLen {
			for j := i + 1; j < len(lens) && n < maxSegs; j++ {
				if lens[j] > size || lens[j] == 0 || total+lens[j] > gsoMaxBytes {
					break
				}
				n++
				total += lens[j]
				if lens[j] < size {
					break
				}
			}
		}
		w = append(w, n)
		i += n
	}
	return w
}

func eachBackendFamily(t *testing.T, f func(t *testing.T, eng *Engine, network string)) {
	gsoSupported(t)
	for _, be := range []string{BackendIOURing, BackendEpoll} {
		for _, network := range []string{"udp4", "udp6"} {
			t.Run(be+"/"+network, func(t *testing.T) {
				eng, err := NewEngine(EngineConfig{Backend: be})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { eng.Close() })
				f(t, eng, network)
			})
		}
	}
}

// A pipeline of datagrams of mixed lengths, with and without WithBatching,
// sent from one goroutine and resent from Completed: every datagram
// arrives once, in order, intact; every send completes once with its
// length.
func TestGSOPipeline(t *testing.T) {
	eachBackendFamily(t, func(t *testing.T, eng *Engine, network string) {
		for _, batching := range []bool{true, false} {
			t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(6, 7))
				const n = 4000
				bufs := make([][]byte, n)
				lists := map[int]bool{}
				size := 64
				for i := range bufs {
					switch r := rng.IntN(100); {
					case r < 3:
						size = 4 + rng.IntN(1500) // a new run
					case r < 6:
						bufs[i] = dgram(i, 4+rng.IntN(size)) // a shorter one ends the run
						continue
					case r < 9:
						lists[i] = true
					}
					bufs[i] = dgram(i, size)
				}
				k := newUDPSink(t, network, bufs, sinkOpts{split: n / 2})
				var opts []Option
				if batching {
					opts = append(opts, WithBatching())
				}
				s := dialUDP(t, eng, network, k.addr(), opts...)
				x := newSends(t, bufs, lists)
				// Half from this goroutine, half from Completed of the first
				// half (as a pipeline that resends does).
				var next atomic.Int64
				next.Store(n / 2)
				var mu sync.Mutex // resends keep their order across the reaper and this goroutine
				x.after = func(i int) {
					if i >= n/2 {
						return
					}
					mu.Lock()
					defer mu.Unlock()
					if j := int(next.Add(1)) - 1; j < n {
						x.send(s, j)
					}
				}
				for i := range n / 2 {
					x.send(s, i)
				}
				x.wait()
				k.wait(t, s)
			})
		}
	})
}

// Datagrams all queued before the first wire leave in the wires the rule
// predicts — runs of one length, a shorter one ending a run, a longer one
// starting the next, at most 128 (64 on old kernels) per wire and 64000
// bytes — and the kernel splits them back into the same datagrams.
func TestGSOCorkedRuns(t *testing.T) {
	eachBackendFamily(t, func(t *testing.T, eng *Engine, network string) {
		var lens []int
		add := func(n, size int) {
			for range n {
				lens = append(lens, size)
			}
		}
		add(300, 64) // 128 + 128 + 44 ...
		add(1, 10)   // ... which the short one ends
		add(5, 64)
		add(3, 100) // longer: a new wire
		add(2, 64)  //   ends with the first of these
		add(100, 1400)
		add(1, 1400)
		add(1, 65000/2+1) // too long to share a wire
		add(3, 20000)     // 3 × 20000 fits 64000
		add(4, 30000)     // two per wire
		add(1, 7)
		bufs := make([][]byte, len(lens))
		lists := map[int]bool{}
		for i, l := range lens {
			bufs[i] = dgram(i, l)
			if i%5 == 0 {
				lists[i] = true
			}
		}
		k := newUDPSink(t, network, bufs, sinkOpts{gro: true})
		s := dialUDP(t, eng, network, k.addr())
		x := newSends(t, bufs, lists)
		corked(s, func() {
			for i := range bufs {
				x.send(s, i)
			}
		})
		x.wait()
		packets := k.wait(t, s)
		g := gsoOf(s)
		want := wires(lens, g.maxSegs, g.maxLen)
		if fmt.Sprint(packets) != fmt.Sprint(want) {
			t.Fatalf("datagrams per packet:\n got %v\nwant %v (GSO %+v)", packets, want, g)
		}
		if g.mode != gsoOn {
			t.Fatalf("GSO state %+v, want on", g)
		}
	})
}

// A datagram larger than UDP allows fails with MessageSize alone; its
// neighbours, before and after and of its runs, all arrive.
func TestGSOMessageSizeAlone(t *testing.T) {
	eachBackendFamily(t, func(t *testing.T, eng *Engine, network string) {
		big := 70000
		var bufs [][]byte
		for i := range 41 {
			if i == 20 {
				bufs = append(bufs, dgram(i, big))
			} else {
				bufs = append(bufs, dgram(i, 64))
			}
		}
		k := newUDPSink(t, network, bufs, sinkOpts{lost: map[int]bool{20: true}})
		s := dialUDP(t, eng, network, k.addr())
		x := newSends(t, bufs, nil)
		x.check = func(i int, e *sendop.Args) {
			if i == 20 {
				if e.SocketError() != sendop.MessageSize || e.BytesTransferred() != 0 {
					t.Errorf("the big datagram: %v with %d bytes, want MessageSize with 0", e.Err(), e.BytesTransferred())
				}
				return
			}
			if e.SocketError() != sendop.Success || e.BytesTransferred() != 64 {
				t.Errorf("send %d: %v, %d bytes", i, e.Err(), e.BytesTransferred())
			}
		}
		corked(s, func() {
			for i := range bufs {
				x.send(s, i)
			}
		})
		x.wait()
		k.wait(t, s)
	})
}

// A connected UDP socket whose peer port is closed: the ICMP errors come
// back as ECONNREFUSED on a later send. Every send completes exactly once,
// with Success (all of it) or ConnectionRefused (nothing), and some are
// refused — a refused GSO wire fails its head, the rest go out again.
func TestGSOConnRefused(t *testing.T) {
	eachBackendFamily(t, func(t *testing.T, eng *Engine, network string) {
		k := newUDPSink(t, network, nil, sinkOpts{})
		addr := k.addr()
		k.c.Close() // the port is closed now
		s := dialUDP(t, eng, network, addr)
		const n = 2000
		bufs := make([][]byte, n)
		for i := range bufs {
			bufs[i] = dgram(i, 64)
		}
		x := newSends(t, bufs, nil)
		var refused, ok atomic.Int64
		x.check = func(i int, e *sendop.Args) {
			switch e.SocketError() {
			case sendop.Success:
				if e.BytesTransferred() != 64 {
					t.Errorf("send %d: Success with %d bytes", i, e.BytesTransferred())
				}
				ok.Add(1)
			case sendop.ConnectionRefused:
				if !errors.Is(e.Err(), syscall.ECONNREFUSED) || e.BytesTransferred() != 0 {
					t.Errorf("send %d: %v with %d bytes", i, e.Err(), e.BytesTransferred())
				}
				refused.Add(1)
			default:
				t.Errorf("send %d: %v", i, e.Err())
			}
		}
		for round := 0; round < n; round += n / 4 {
			corked(s, func() {
				for i := round; i < round+n/4; i++ {
					x.send(s, i)
				}
			})
			time.Sleep(time.Millisecond) // the ICMP errors arrive
		}
		x.wait()
		if refused.Load() == 0 {
			t.Fatalf("no send was refused (%d succeeded)", ok.Load())
		}
		t.Logf("%d succeeded, %d refused", ok.Load(), refused.Load())
	})
}

// Where the kernel refuses GSO for a socket (no UDP checksum: EINVAL), the
// refused wire is sent again one datagram at a time and GSO stays off:
// nothing lost, nothing twice, no packet of several datagrams.
func TestGSORefusedFallback(t *testing.T) {
	eachBackendFamily(t, func(t *testing.T, eng *Engine, network string) {
		bufs := make([][]byte, 300)
		for i := range bufs {
			bufs[i] = dgram(i, 64+i/100)
		}
		k := newUDPSink(t, network, bufs, sinkOpts{gro: true, noCheck6: network == "udp6"})
		s := dialUDP(t, eng, network, k.addr())
		opt, level := unix.SO_NO_CHECK, unix.SOL_SOCKET
		if network == "udp6" {
			opt, level = unix.UDP_NO_CHECK6_TX, unix.SOL_UDP
		}
		if err := unix.SetsockoptInt(s.FD(), level, opt, 1); err != nil {
			t.Fatal(err)
		}
		x := newSends(t, bufs, nil)
		corked(s, func() {
			for i := range bufs {
				x.send(s, i)
			}
		})
		x.wait()
		packets := k.wait(t, s)
		for i, p := range packets {
			if p != 1 {
				t.Fatalf("packet %d carried %d datagrams with GSO refused", i, p)
			}
		}
		if g := gsoOf(s); g.mode != gsoOff {
			t.Fatalf("GSO state %+v, want off", g)
		}
	})
}

// More segments than the kernel takes (pretend its limit were above 128):
// EINVAL, and the socket falls back to the 64 every kernel takes — the
// same datagrams go out in wires of 64.
func TestGSOSegmentLimit(t *testing.T) {
	eachBackendFamily(t, func(t *testing.T, eng *Engine, network string) {
		bufs := make([][]byte, 500)
		for i := range bufs {
			bufs[i] = dgram(i, 16)
		}
		k := newUDPSink(t, network, bufs, sinkOpts{gro: true})
		s := dialUDP(t, eng, network, k.addr())
		s.mu.Lock()
		s.w.gso = gsoState{mode: gsoOn, maxSegs: 300, maxLen: gsoMaxBytes / 2}
		s.mu.Unlock()
		x := newSends(t, bufs, nil)
		corked(s, func() {
			for i := range bufs {
				x.send(s, i)
			}
		})
		x.wait()
		packets := k.wait(t, s)
		if want := wires(x.lens, gsoMinSegs, gsoMaxBytes/2); fmt.Sprint(packets) != fmt.Sprint(want) {
			t.Fatalf("datagrams per packet: got %v, want %v", packets, want)
		}
		if g := gsoOf(s); g.maxSegs != gsoMinSegs || g.mode != gsoOn {
			t.Fatalf("GSO state %+v, want on with %d segments", g, gsoMinSegs)
		}
	})
}

// A segment larger than the route's MTU (IPV6_MTU 1280 here) is refused
// with EMSGSIZE; datagrams of that size then go alone (fragmented, as
// without GSO) and shorter ones still coalesce.
func TestGSOMTURefused(t *testing.T) {
	gsoSupported(t)
	for _, be := range []string{BackendIOURing, BackendEpoll} {
		t.Run(be, func(t *testing.T) {
			eng, err := NewEngine(EngineConfig{Backend: be})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			var bufs [][]byte
			for i := range 60 {
				n := 1300
				if i >= 30 {
					n = 1000
				}
				bufs = append(bufs, dgram(i, n))
			}
			k := newUDPSink(t, "udp6", bufs, sinkOpts{gro: true})
			s := dialUDP(t, eng, "udp6", k.addr())
			if err := unix.SetsockoptInt(s.FD(), unix.IPPROTO_IPV6, unix.IPV6_MTU, 1280); err != nil {
				t.Fatal(err)
			}
			x := newSends(t, bufs, nil)
			corked(s, func() {
				for i := range bufs {
					x.send(s, i)
				}
			})
			x.wait()
			packets := k.wait(t, s)
			want := wires(x.lens, gsoMaxSegs, 1299)
			if fmt.Sprint(packets) != fmt.Sprint(want) {
				t.Fatalf("datagrams per packet: got %v, want %v", packets, want)
			}
			if g := gsoOf(s); g.maxLen != 1299 || g.mode != gsoOn {
				t.Fatalf("GSO state %+v, want on up to 1299 bytes", g)
			}
		})
	}
}
