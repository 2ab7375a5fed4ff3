//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// UDP connections: a Socket made by Dial("udp"/"udp6"), most of them
// batching, sends a pipeline of datagrams in runs of equal lengths (so
// that the engine's UDP GSO wires start and end: a shorter last one, an
// empty or oversized one, a BufferList, a length change), to a receiver
// of its own, connected to the sender, which checks each datagram's
// length, content and order as it arrives. Each datagram carries its
// index in the connection's log, its length and where its body comes
// from in the pool:
//
//	[0:4] index  [4:8] length  [8:12] pool offset  [12:] pool[off:off+length-12]
//
// Empty datagrams carry nothing; an oversized one must fail with
// MessageSize and send nothing. The kernel may drop datagrams on a full
// receive buffer — counted per socket (the drops column of /proc/net/udp)
// and overall (Udp RcvbufErrors) — but it never duplicates, cuts or
// reorders them on loopback: every datagram received must be a send that
// reported Success, in increasing index order, and received + dropped
// must equal the sends that reported Success.

const udpHdr = 12

// dgramRun is the state of a connection's datagram length generator.
type dgramRun struct {
	size int // length of the current run's datagrams
	left int // datagrams left in the run
}

// udpShape makes datagram seq (the next index of the log).
func (c *conn) udpShape(seq int) shape {
	rng := c.rng
	if c.run.left == 0 {
		c.run.left = 1 + rng.IntN(96)
		switch r := rng.IntN(10); {
		case r < 6:
			c.run.size = udpHdr + rng.IntN(1472-udpHdr+1)
		case r < 9:
			c.run.size = udpHdr + rng.IntN(64)
		default:
			c.run.size = 1473 + rng.IntN(15<<10)
		}
	}
	c.run.left--
	size := c.run.size
	switch r := rng.IntN(200); {
	case r == 0:
		return shape{buf: []byte{}} // empty: never joins a GSO wire
	case r == 1:
		// Too large for any datagram: MessageSize, nothing sent.
		return shape{bufs: [][]byte{dgramHeader(seq, 70000, 0), poolSlice(rng, 70000-udpHdr)}}
	case r < 12 || c.run.left == 0 && rng.IntN(2) == 0:
		// A shorter one ends a run.
		size = udpHdr + rng.IntN(size-udpHdr+1)
		c.run.left = 0
	}
	off := rng.IntN(poolSize - size + udpHdr + 1)
	body := pool()[off : off+size-udpHdr]
	if rng.IntN(8) == 0 {
		// A BufferList: the header, then the body in one or two pieces.
		k := rng.IntN(len(body) + 1)
		return shape{bufs: [][]byte{dgramHeader(seq, size, off), body[:k:k], body[k:]}}
	}
	b := make([]byte, size)
	copy(b, dgramHeader(seq, size, off))
	copy(b[udpHdr:], body)
	return shape{buf: b}
}

func dgramHeader(seq, size, off int) []byte {
	h := make([]byte, udpHdr)
	binary.LittleEndian.PutUint32(h, uint32(seq))
	binary.LittleEndian.PutUint32(h[4:], uint32(size))
	binary.LittleEndian.PutUint32(h[8:], uint32(off))
	return h
}

// udpPeer is a UDP connection's receiving end.
type udpPeer struct {
	fd    int
	ino   uint64
	v6    bool
	gro   bool
	p     plan
	done  chan struct{}
	until atomic.Int64 // received+dropped the sender reported; -1 until it is done
	stop  atomic.Bool  // the sender is done: leave once quiet or complete

	// Owned by the loop until done.
	events  []int // indexes received, in arrival order; -1 for an empty datagram
	n       int64 // bytes received
	bad     []string
	packets int // GRO: packets of more than one datagram
	drops   int64
	err     error
	faulted bool // it closed its socket early (peer-close)
}

// openUDP makes a UDP connection: the Socket, connected to a receiver
// that is connected back to it (so that nothing else reaches it, even
// after the port is reused).
func (s *soak) openUDP(eng *engine, p plan, rng *rand.Rand) (*socket.Socket, *udpPeer, error) {
	v6 := p.network == "udp6"
	dom, sa := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	if v6 {
		dom, sa = unix.AF_INET6, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}
	}
	fd, err := unix.Socket(dom, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	r := &udpPeer{fd: fd, v6: v6, p: p, done: make(chan struct{}), gro: rng.IntN(4) == 0}
	r.until.Store(-1)
	fail := func(err error) (*socket.Socket, *udpPeer, error) {
		unix.Close(fd)
		return nil, nil, err
	}
	rcv := 8 << 20
	if p.smallBufs {
		rcv = 64 << 10
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcv) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcv)
	}
	tv := unix.NsecToTimeval(int64(20 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail(err)
	}
	if r.gro {
		if err := unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_GRO, 1); err != nil {
			return fail(err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail(err)
	}
	r.ino = st.Ino
	la, err := unix.Getsockname(fd)
	if err != nil {
		return fail(err)
	}
	var addr string
	switch a := la.(type) {
	case *unix.SockaddrInet4:
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(a.Port))
	case *unix.SockaddrInet6:
		addr = net.JoinHostPort("::1", strconv.Itoa(a.Port))
	}
	opts := []socket.Option{socket.WithEngine(eng.Engine)}
	if p.batch {
		opts = append(opts, socket.WithBatching())
	}
	sock, err := socket.Dial(p.network, addr, opts...)
	if err != nil {
		return fail(err)
	}
	if p.smallBufs {
		unix.SetsockoptInt(sock.FD(), unix.SOL_SOCKET, unix.SO_SNDBUF, 16<<10)
	}
	sa2, err := unix.Getsockname(sock.FD())
	if err == nil {
		err = unix.Connect(fd, sa2)
	}
	if err != nil {
		sock.Close()
		return fail(err)
	}
	go r.loop()
	return sock, r, nil
}

func (r *udpPeer) loop() {
	defer close(r.done)
	buf := make([]byte, 1<<16)
	oob := make([]byte, 64)
	last := -1
	quiet := 0
	for {
		n, oobn, _, _, err := unix.Recvmsg(r.fd, buf, oob, 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			if r.stop.Load() {
				quiet++
				// Complete, or quiet for long (a late datagram would
				// show as lost: a violation, never hidden).
				if until := r.until.Load(); until >= 0 && int64(len(r.events))+r.sockDrops() >= until || quiet >= 50 {
					r.finish()
					return
				}
			}
			continue
		}
		if err != nil {
			r.err = err
			r.finish()
			return
		}
		quiet = 0
		seg := n
		if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, cm := range cms {
				if cm.Header.Level == unix.SOL_UDP && cm.Header.Type == unix.UDP_GRO && len(cm.Data) >= 4 {
					seg = int(binary.NativeEndian.Uint32(cm.Data))
				}
			}
		}
		if n == 0 {
			r.events = append(r.events, -1)
		} else {
			if seg < n {
				r.packets++
			}
			for off := 0; off < n; off += seg {
				last = r.check(buf[off:min(off+seg, n)], last)
			}
		}
		r.n += int64(n)
		switch {
		case r.p.peer == "slow-reader" && len(r.events)%8 == 0:
			time.Sleep(200 * time.Microsecond)
		case r.p.peer == "stall" && r.n >= r.p.peerAt && r.p.stallMs > 0:
			time.Sleep(time.Duration(r.p.stallMs) * time.Millisecond)
			r.p.stallMs = 0
		case r.p.peer == "peer-close" && r.n >= r.p.peerAt:
			r.faulted = true
			r.finish()
			return
		}
	}
}

// finish reads the socket's drop count and closes it.
func (r *udpPeer) finish() {
	r.drops = r.sockDrops()
	unix.Close(r.fd)
}

// check checks one datagram as it arrives; last is the index before it.
func (r *udpPeer) check(d []byte, last int) int {
	if len(d) < udpHdr {
		r.bad = append(r.bad, fmt.Sprintf("a datagram of %d bytes", len(d)))
		return last
	}
	seq := int(binary.LittleEndian.Uint32(d))
	size := int(binary.LittleEndian.Uint32(d[4:]))
	off := int(binary.LittleEndian.Uint32(d[8:]))
	switch {
	case size != len(d):
		r.bad = append(r.bad, fmt.Sprintf("datagram %d: %d bytes, its header says %d", seq, len(d), size))
	case off+size-udpHdr > poolSize || !bytes.Equal(d[udpHdr:], pool()[off:off+size-udpHdr]):
		r.bad = append(r.bad, fmt.Sprintf("datagram %d (%d bytes): other content", seq, len(d)))
	case seq <= last:
		r.bad = append(r.bad, fmt.Sprintf("datagram %d arrived after %d (duplicated or reordered)", seq, last))
	}
	r.events = append(r.events, seq)
	return max(seq, last)
}

// procNet is the path of /proc/net/name as the process's own network
// namespace has it. /proc/net is /proc/self/net, the namespace of the
// process's main thread, and that is not the process's after the
// zero-copy shape's netnstest Host.Do ran on the main thread: a thread
// locked into a host's namespace ends with its goroutine, but the runtime
// wedges the main thread instead, still in that namespace (the soak then
// read another namespace's counters: datagrams "lost without a trace",
// RcvbufErrors going backwards). The calling goroutine's thread is in the
// process's namespace: the threads in hosts' run nothing else.
func procNet(name string) string { return "/proc/thread-self/net/" + name }

// sockDrops is the kernel's count of datagrams dropped by this socket.
func (r *udpPeer) sockDrops() int64 {
	name := procNet("udp")
	if r.v6 {
		name = procNet("udp6")
	}
	f, err := os.Open(name)
	if err != nil {
		return 0
	}
	defer f.Close()
	ino := strconv.FormatUint(r.ino, 10)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) >= 13 && fl[9] == ino {
			n, _ := strconv.ParseInt(fl[len(fl)-1], 10, 64)
			return n
		}
	}
	return 0
}

// wait tells the receiver the sender is done and waits for it to leave.
func (r *udpPeer) wait(d time.Duration, until int64) bool {
	r.until.Store(until)
	r.stop.Store(true)
	return waitClosed(r.done, d)
}

// verifyUDP checks a finished UDP connection against its receiver.
func (c *conn) verifyUDP(r *udpPeer) {
	s := c.s
	var ok int64
	for i, ent := range c.log {
		total := ent.size
		oversize := total > 65507
		switch {
		case ent.done != 1:
			s.violation("exactly-once", "conn %d (udp): send %d completed %d times", c.id, i, ent.done)
		case ent.pending && ent.raised != 1 || !ent.pending && ent.raised != 0:
			s.violation("exactly-once", "conn %d (udp): send %d: pending=%v, Completed raised %d times", c.id, i, ent.pending, ent.raised)
		case ent.msg != "":
			s.violation("result", "conn %d (udp): send %d: %s", c.id, i, ent.msg)
		case ent.se == sendop.Success && (oversize || ent.n != total):
			s.violation("result", "conn %d (udp): send %d: Success with %d of %d bytes", c.id, i, ent.n, total)
		case ent.se != sendop.Success && ent.n != 0:
			s.violation("result", "conn %d (udp): send %d: %v with %d of %d bytes", c.id, i, ent.se, ent.n, total)
		case oversize && ent.se != sendop.MessageSize && !(ent.se == sendop.OperationAborted && c.closedEarly.Load()):
			s.violation("result", "conn %d (udp): send %d of %d bytes: %v, want MessageSize", c.id, i, total, ent.se)
		case !oversize && ent.se == sendop.MessageSize:
			s.violation("result", "conn %d (udp): send %d of %d bytes: MessageSize", c.id, i, total)
		case ent.se != sendop.Success && ent.se != sendop.MessageSize &&
			!(ent.se == sendop.OperationAborted && c.closedEarly.Load()) &&
			!(ent.se == sendop.ConnectionRefused && r.faulted):
			s.violation("result", "conn %d (udp %+v): send %d: %v", c.id, c.p, i, ent.se)
		}
		if ent.se == sendop.Success {
			ok++
		}
	}
	for _, b := range r.bad[:min(len(r.bad), 5)] {
		s.violation("datagram", "conn %d (udp %+v): %s", c.id, c.p, b)
	}
	if r.err != nil {
		s.violation("datagram", "conn %d (udp): receive: %v", c.id, r.err)
	}
	// Each datagram received is a send that reported Success; empty ones
	// fall between the indexes around them.
	got := int64(len(r.events))
	empties, prev := 0, -1
	for _, seq := range append(r.events, len(c.log)) {
		if seq < 0 {
			empties++
			continue
		}
		if empties > 0 {
			n := 0
			for i := prev + 1; i < seq && i < len(c.log); i++ {
				if c.log[i].se == sendop.Success && c.log[i].size == 0 {
					n++
				}
			}
			if n < empties {
				s.violation("datagram", "conn %d (udp): %d empty datagrams between %d and %d, %d were sent", c.id, empties, prev, seq, n)
			}
			empties = 0
		}
		if seq == len(c.log) {
			break
		}
		if seq >= len(c.log) || c.log[seq].se != sendop.Success {
			s.violation("datagram", "conn %d (udp): datagram %d received, but not reported sent", c.id, seq)
		}
		prev = seq
	}
	s.dgramsSent.Add(ok)
	s.dgramsGot.Add(got)
	s.dgramDrops.Add(r.drops)
	s.gsoPackets.Add(int64(r.packets))
	switch {
	case got > ok:
		s.violation("datagram", "conn %d (udp): %d datagrams received, %d sent", c.id, got, ok)
	case r.faulted:
		// It stopped early: what it got is checked above.
	case r.gro:
		// Drops count GRO packets (of up to 128 datagrams).
		if got+r.drops > ok || r.drops == 0 && got < ok {
			s.lost(c, ok, got, r.drops)
		}
	case got+r.drops != ok:
		s.lost(c, ok, got, r.drops)
	}
}

// lost records datagrams the socket neither received nor counted as
// dropped. The kernel can lose them before the socket (the backlog of
// netif_rx: /proc/net/softnet_stat), so the run compares their sum with
// that count at the end.
func (s *soak) lost(c *conn, sent, got, drops int64) {
	if got+drops > sent {
		s.violation("datagram", "conn %d (udp): %d received + %d dropped > %d sent", c.id, got, drops, sent)
		return
	}
	s.dgramsLost.Add(sent - got - drops)
	if s.cfg.verbose {
		s.logf("conn %d (udp %+v): %d sent, %d received, %d dropped", c.id, c.p, sent, got, drops)
	}
}

// softnetDrops is the kernel's count of packets dropped for a full
// backlog, over all CPUs.
func softnetDrops() int64 {
	b, err := os.ReadFile(procNet("softnet_stat"))
	if err != nil {
		return 0
	}
	var n int64
	for _, line := range strings.Split(string(b), "\n") {
		fl := strings.Fields(line)
		if len(fl) > 1 {
			v, _ := strconv.ParseUint(fl[1], 16, 32)
			n += int64(v)
		}
	}
	return n
}

// udpRcvbufErrors reads the kernel's count of UDP datagrams dropped
// because a receive buffer was full (as the bench does; IPv4 and IPv6).
func udpRcvbufErrors() int64 {
	var total int64
	if b, err := os.ReadFile(procNet("snmp")); err == nil {
		var names []string
		for _, line := range strings.Split(string(b), "\n") {
			fl := strings.Fields(line)
			if len(fl) == 0 || fl[0] != "Udp:" {
				continue
			}
			if names == nil {
				names = fl
				continue
			}
			for i, n := range names {
				if n == "RcvbufErrors" && i < len(fl) {
					v, _ := strconv.ParseInt(fl[i], 10, 64)
					total += v
				}
			}
		}
	}
	if b, err := os.ReadFile(procNet("snmp6")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if fl := strings.Fields(line); len(fl) == 2 && fl[0] == "Udp6RcvbufErrors" {
				v, _ := strconv.ParseInt(fl[1], 10, 64)
				total += v
			}
		}
	}
	return total
}
