//go:build linux

package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// udpReceiver drains one UDP socket with recvmmsg(2) on a blocking
// descriptor, so that the receiver keeps up with fast senders and
// datagrams are lost only when the kernel says so.
type udpReceiver struct {
	fd     int
	addr   *net.UDPAddr
	size   int
	verify bool
	stop   atomic.Bool
	done   chan struct{}

	msgs int64
	bad  int64 // wrong length or content, or out of order
	h    hash.Hash
	err  error
}

const udpBatch = 256

func newUDPReceiver(size int, verify bool) (*udpReceiver, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	r := &udpReceiver{fd: fd, size: size, verify: verify, done: make(chan struct{})}
	if err := r.setup(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if verify {
		r.h = sha256.New()
	}
	go r.loop()
	return r, nil
}

func (r *udpReceiver) setup() error {
	// Root may exceed rmem_max; others get what the sysctl allows.
	if err := unix.SetsockoptInt(r.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20); err != nil {
		unix.SetsockoptInt(r.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 32<<20)
	}
	tv := unix.NsecToTimeval(int64(20 * time.Millisecond))
	if err := unix.SetsockoptTimeval(r.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	if err := unix.Bind(r.fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return err
	}
	sa, err := unix.Getsockname(r.fd)
	if err != nil {
		return err
	}
	r.addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*unix.SockaddrInet4).Port}
	return nil
}

func (r *udpReceiver) loop() {
	defer close(r.done)
	defer unix.Close(r.fd)
	bufs := make([]byte, udpBatch*2048)
	iovs := make([]unix.Iovec, udpBatch)
	hdrs := make([]unix.Mmsghdr, udpBatch)
	for i := range hdrs {
		iovs[i].Base = &bufs[i*2048]
		iovs[i].SetLen(2048)
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
	}
	want := newPayload(r.size)
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&hdrs[0])), udpBatch, 0, 0, 0)
		if errno == unix.EAGAIN || errno == unix.EINTR {
			if errno == unix.EAGAIN && r.stop.Load() {
				return // quiet for 20 ms after the senders finished
			}
			continue
		}
		if errno != 0 {
			r.err = errno
			return
		}
		for i := range int(n) {
			d := bufs[i*2048 : i*2048+int(hdrs[i].Len)]
			r.msgs++
			if len(d) != r.size {
				r.bad++
				continue
			}
			if r.verify {
				seq := binary.LittleEndian.Uint64(d)
				if seq <= want.seq || !bytes.Equal(d[8:], want.filler[8:]) {
					r.bad++
				}
				want.seq = seq
				r.h.Write(d)
			}
		}
	}
}

// wait ends the receiver once it has been quiet for 20 ms.
func (r *udpReceiver) wait() error {
	r.stop.Store(true)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("UDP receiver did not finish")
	}
	return r.err
}

// udpRcvbufErrors reads the kernel's count of UDP datagrams dropped
// because a receive buffer was full.
func udpRcvbufErrors() int64 {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return 0
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(fields) {
				v, _ := strconv.ParseInt(fields[i], 10, 64)
				return v
			}
		}
	}
	return 0
}

// udpShape says how an arm sends datagrams.
type udpShape int

const (
	udpWrite    udpShape = iota // goroutine per socket, net.UDPConn.Write
	udpInline                   // uringsend, one Args per socket, wait when pending
	udpPipeline                 // uringsend, depth Args per socket, resent from Completed
)

// udpArm sends size-byte datagrams on sockets connected UDP sockets.
func udpArm(shape udpShape, sockets, size, depth int, probe bool) func(round) (sample, error) {
	return udpArmTally(shape, sockets, size, depth, probe, nil)
}

// udpTally sums what an arm's timed rounds sent, what arrived, what the
// kernel dropped, and the allocations its probe saw: notes for the table.
type udpTally struct {
	sent, received, drops int64
	elapsed               time.Duration
	allocs                uint64
	allocMsgs             int64
}

func (t *udpTally) String() string {
	s := fmt.Sprintf("%d datagrams sent in the timed rounds, %d received (%s delivered), %d dropped by the kernel (receive buffer full)",
		t.sent, t.received, formatValue(float64(t.received)/t.elapsed.Seconds(), "msg/s"), t.drops)
	if t.allocMsgs > 0 {
		s += fmt.Sprintf("; %.4f allocations per send", float64(t.allocs)/float64(t.allocMsgs))
	}
	return s
}

// udpArmTally is udpArm adding its timed rounds to tally (nil: none).
func udpArmTally(shape udpShape, sockets, size, depth int, probe bool, tally *udpTally) func(round) (sample, error) {
	return func(r round) (sample, error) {
		recvs := make([]*udpReceiver, sockets)
		conns := make([]*net.UDPConn, sockets)
		cleanup := func() {
			for i := range sockets {
				if conns[i] != nil {
					conns[i].Close()
				}
				if recvs[i] != nil {
					recvs[i].wait()
				}
			}
		}
		for i := range sockets {
			rv, err := newUDPReceiver(size, r.verify)
			if err != nil {
				cleanup()
				return sample{}, err
			}
			recvs[i] = rv
			c, err := net.DialUDP("udp", nil, rv.addr)
			if err != nil {
				cleanup()
				return sample{}, err
			}
			conns[i] = c
		}
		drops0 := udpRcvbufErrors()
		var smp sample
		var hashes []*senderHash
		var err error
		switch shape {
		case udpWrite:
			smp, hashes, err = udpWriteLoop(conns, size, r)
		default:
			smp, hashes, err = udpUring(conns, size, depth, shape == udpPipeline, probe, r)
		}
		var received, bad int64
		for i, rv := range recvs {
			if werr := rv.wait(); werr != nil && err == nil {
				err = werr
			}
			conns[i].Close()
			received += rv.msgs
			bad += rv.bad
		}
		drops := udpRcvbufErrors() - drops0
		if tally != nil && !r.verify {
			tally.sent += smp.msgs
			tally.received += received
			tally.drops += drops
			tally.elapsed += smp.elapsed
			tally.allocs += smp.allocs
			tally.allocMsgs += smp.allocMsgs
		}
		switch {
		case err != nil:
		case bad > 0:
			err = fmt.Errorf("%d datagrams arrived with a wrong length or content, or out of order", bad)
		case received > smp.msgs:
			err = fmt.Errorf("received %d datagrams, sent %d", received, smp.msgs)
		case received+drops < smp.msgs:
			err = fmt.Errorf("sent %d datagrams, received %d, the kernel dropped %d: %d unaccounted for", smp.msgs, received, drops, smp.msgs-received-drops)
		}
		if err != nil {
			return smp, err
		}
		if !r.verify {
			// The rate counts what arrived: a datagram the receiver's
			// buffer dropped was not delivered, however fast it was sent.
			smp.msgs = received
			return smp, nil
		}
		if received == smp.msgs {
			for i, rv := range recvs {
				var got [32]byte
				copy(got[:], rv.h.Sum(nil))
				if got != hashes[i].sum() {
					return smp, fmt.Errorf("socket %d: receiver's SHA-256 differs from the sender's", i)
				}
			}
			smp.note = fmt.Sprintf("all %d datagrams arrived; SHA-256 matched", received)
		} else {
			smp.note = fmt.Sprintf("%d of %d datagrams arrived intact and in order, the kernel dropped %d (receive buffer full); no SHA-256 over a lossy stream", received, smp.msgs, drops)
		}
		return smp, nil
	}
}

func udpWriteLoop(conns []*net.UDPConn, size int, r round) (sample, []*senderHash, error) {
	msgs, hashes, _, elapsed, err := writeLoops(conns, size, r)
	smp := sample{elapsed: elapsed}
	for _, n := range msgs {
		smp.msgs += n
	}
	smp.bytes = smp.msgs * int64(size)
	return smp, hashes, err
}

// udpUring sends on one engine: with pipeline, depth Args per socket
// resent from Completed on WithBatching sockets (the datagrams queued on a
// socket leave in one GSO sendmsg; the reaper submits the wires of all
// sockets in one io_uring_enter); without, one Args per socket in a loop,
// waiting for Completed when SendAsync returns pending.
func udpUring(conns []*net.UDPConn, size, depth int, pipeline, probeAllocs bool, r round) (sample, []*senderHash, error) {
	eng, err := socket.NewEngine(socket.EngineConfig{Backend: socket.BackendIOURing})
	if err != nil {
		return sample{}, nil, err
	}
	defer eng.Close()
	socks := make([]*streamConn, len(conns))
	hashes := make([]*senderHash, len(conns))
	for i, c := range conns {
		opts := []socket.Option{socket.WithEngine(eng)}
		if pipeline {
			// Every send queues and the reaper puts the queue on the wire:
			// datagrams queued together leave in one GSO sendmsg.
			opts = append(opts, socket.WithBatching())
		}
		s, err := socket.FromConn(c, opts...)
		if err != nil {
			return sample{}, nil, err
		}
		defer s.Close()
		hashes[i] = r.senderHash(size)
		socks[i] = &streamConn{s: s, sh: hashes[i]}
	}
	count := func() int64 {
		n := int64(0)
		for _, c := range socks {
			n += c.msgs.Load()
		}
		return n
	}
	var probe *allocProbe
	if probeAllocs {
		probe = startAllocProbe(r.d, count)
	}
	var smp sample
	if pipeline {
		smp, err = udpPipelined(socks, size, depth, r)
	} else {
		smp, err = udpInlined(socks, size, r)
	}
	if probe != nil {
		<-probe.done
		smp.allocs, smp.allocMsgs = probe.allocs, probe.msgs
	}
	return smp, hashes, err
}

func udpInlined(socks []*streamConn, size int, r round) (sample, error) {
	var stop atomic.Bool
	var ferr firstErr
	var wg sync.WaitGroup
	timer := time.AfterFunc(r.d, func() { stop.Store(true) })
	defer timer.Stop()
	syncs := make([]int64, len(socks))
	t0 := time.Now()
	for i, c := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			var e sendop.Args
			e.SetBuffer(buf)
			wake := make(chan struct{}, 1)
			e.Completed = func(*sendop.Args) { wake <- struct{}{} }
			for !stop.Load() {
				if c.sh != nil {
					c.sh.fill(buf)
				}
				pending, err := c.s.SendAsync(&e)
				if err != nil {
					ferr.set(err)
					return
				}
				if pending {
					<-wake
				} else {
					syncs[i]++
				}
				if err := e.Err(); err != nil {
					ferr.set(err)
					return
				}
				c.msgs.Add(1)
			}
		}()
	}
	wg.Wait()
	smp := sample{elapsed: time.Since(t0)}
	for i, c := range socks {
		smp.msgs += c.msgs.Load()
		smp.syncs += syncs[i]
	}
	smp.bytes = smp.msgs * int64(size)
	return smp, ferr.get()
}

func udpPipelined(socks []*streamConn, size, depth int, r round) (sample, error) {
	pl := startPipeline(socks, size, depth, r.d)
	defer pl.timer.Stop()
	if err := pl.wait(); err != nil {
		return sample{}, fmt.Errorf("UDP: %w", err)
	}
	smp := sample{elapsed: time.Since(pl.t0)}
	for _, c := range socks {
		smp.msgs += c.msgs.Load()
	}
	smp.bytes = smp.msgs * int64(size)
	return smp, pl.ferr.get()
}
