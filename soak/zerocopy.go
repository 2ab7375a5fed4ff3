//go:build linux

package main

// The zero-copy shape: connections over a veth pair between two network
// namespaces (internal/netnstest), where SEND_ZC really holds the sender's
// pages until the peer acknowledges them (towards loopback the kernel
// copies, and a zero-copy send completes at once). Each connection sends
// with ZeroCopyOn — Buffers and BufferLists of 16 KiB to 1 MiB, with a
// window, some batching — to a peer that reads a random amount and then
// stops; once the sends back up, the socket is closed, by the sender or
// from a Completed handler. Checks: each send completes exactly once
// (Success or OperationAborted), the peer got a prefix of what was
// reported sent, Close returns within zcCloseBound (the target is 100 ms;
// the worst is in the summary), and the engine has nothing in flight at
// the end. It needs root and `ip netns`; without them it is skipped, with
// a note in the summary.

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/uringsend/uringsend/internal/netnstest"
	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

const (
	// zcCloseBound is the longest a Close may take before it is a
	// violation; zcCloseTarget is what it should take at worst.
	zcCloseBound  = 2 * time.Second
	zcCloseTarget = 100 * time.Millisecond
	// zcHangWait is how long a Close is waited for before the peer is
	// reset to let the kernel go (so that a hang does not stop the soak).
	zcHangWait = 5 * time.Second
)

// zcStats is what the zero-copy shape reports in the summary.
type zcStats struct {
	skipped    string // why the shape did not run, or ""
	conns      atomic.Int64
	sends      atomic.Int64
	zcWires    atomic.Uint64
	closes     atomic.Int64
	inHandler  atomic.Int64
	overTarget atomic.Int64 // closes slower than zcCloseTarget
	hangs      atomic.Int64 // closes that returned only after the peer was reset
	worstClose atomic.Int64 // nanoseconds
}

// summary is the zero-copy part of the summary line.
func (z *zcStats) summary() string {
	if z.skipped != "" {
		return "zerocopy=skipped (" + z.skipped + ")"
	}
	return fmt.Sprintf("zerocopy=conns:%d,sends:%d,zc-wires:%d,closes:%d(in-handler:%d),worst-close:%v,over-%v:%d,hangs:%d",
		z.conns.Load(), z.sends.Load(), z.zcWires.Load(), z.closes.Load(), z.inHandler.Load(),
		time.Duration(z.worstClose.Load()).Round(10*time.Microsecond), zcCloseTarget, z.overTarget.Load(), z.hangs.Load())
}

func (z *zcStats) closed(d time.Duration, inHandler bool) {
	z.closes.Add(1)
	if inHandler {
		z.inHandler.Add(1)
	}
	if d > zcCloseTarget {
		z.overTarget.Add(1)
	}
	for {
		w := z.worstClose.Load()
		if int64(d) <= w || z.worstClose.CompareAndSwap(w, int64(d)) {
			return
		}
	}
}

// startZeroCopy starts the zero-copy shape's worker in wg, if network
// namespaces are available (else it notes why not). The worker stops
// with s.stop, then closes its engine and deletes its namespaces.
func (s *soak) startZeroCopy(wg *sync.WaitGroup) {
	nw, err := netnstest.New(2)
	if err != nil {
		s.zc.skipped = err.Error()
		s.logf("zero-copy shape skipped: %v", err)
		return
	}
	eng, err := newEngine(socket.EngineConfig{Backend: socket.BackendIOURing, ZeroCopy: socket.ZeroCopyOn})
	if err != nil {
		nw.Close()
		s.zc.skipped = "engine: " + err.Error()
		s.logf("zero-copy shape skipped: %v", err)
		return
	}
	wg.Go(func() {
		defer func() {
			if err := nw.Close(); err != nil {
				s.violation("setup", "zero-copy: deleting the namespaces: %v", err)
			}
		}()
		rng := rand.New(rand.NewPCG(s.cfg.seed, 0x2c))
		for id := uint64(1); !s.stop.Load(); id++ {
			s.zcConnection(rng, eng, nw.Hosts[0], nw.Hosts[1], id)
		}
		s.zc.zcWires.Store(eng.ZeroCopySends())
		if err := eng.Close(); err != nil {
			s.violation("close", "zero-copy Engine.Close: %v", err)
		}
		if v := eng.inflight(); v != 0 {
			s.violation("inflight", "zero-copy engine: inflight gauge %v after Close", v)
		}
	})
}

// zcConnection runs one zero-copy connection from host a to a peer in b.
func (s *soak) zcConnection(rng *rand.Rand, eng *engine, a, b *netnstest.Host, id uint64) {
	who := fmt.Sprintf("zerocopy conn %d", id)
	rcvbuf := []int{0, 16 << 10, 64 << 10}[rng.IntN(3)]
	batch := rng.IntN(3) == 0
	window := 1 + rng.IntN(16)
	readFirst := rng.Int64N(4 << 20) // what the peer reads before it stalls
	inHandler := rng.IntN(3) == 0

	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		if rcvbuf > 0 {
			rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf) })
		}
		return nil
	}}
	l, err := b.ListenConfig(lc, "tcp", b.HostPort(0))
	if err != nil {
		s.violation("setup", "%s: listen: %v", who, err)
		return
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	opts := []socket.Option{socket.WithEngine(eng.Engine)}
	if batch {
		opts = append(opts, socket.WithBatching())
	}
	var sock *socket.Socket
	err = a.Do(func() (err error) {
		sock, err = socket.Dial("tcp", l.Addr().String(), opts...)
		return err
	})
	if err != nil {
		l.Close() // Accept returns
	}
	pc := <-accepted // before the listener closes: it would reset what it queued
	l.Close()
	if err != nil || pc == nil {
		if pc != nil {
			pc.Close()
		}
		if sock != nil {
			sock.Close()
		}
		s.violation("setup", "%s: connect: %v", who, err)
		return
	}
	s.zc.conns.Add(1)
	s.conns.Add(1)
	s.kind("zerocopy")
	s.fault("zc-stall")

	c := &conn{s: s, id: id, eng: eng, sock: sock, rng: rand.New(rand.NewPCG(rng.Uint64(), id))}
	c.p = plan{network: "tcp-netns", batch: batch, window: window, peer: "stall", peerAt: readFirst, close: "close-sender"}
	if inHandler {
		c.p.close = "close-handler"
	}
	r, stalled, resume := zcPeer(pc, readFirst)

	// The close: from the sender once the sends back up or, for
	// close-handler, from the next Completed after that.
	var closeOnce sync.Once
	closeDone := make(chan struct{})
	doClose := func(handler bool) {
		closeOnce.Do(func() {
			defer close(closeDone)
			c.closedEarly.Store(true)
			c.stopSending.Store(true)
			t0 := time.Now()
			if err := sock.Close(); err != nil {
				s.violation("close", "%s: Close: %v", who, err)
			}
			d := time.Since(t0)
			s.zc.closed(d, handler)
			if d > zcCloseBound && d < zcHangWait { // a hang is reported below
				s.violation("zc-close", "%s (%+v): Close took %v (bound %v)", who, c.p, d, zcCloseBound)
			}
		})
	}
	var armHandler atomic.Bool
	free := make(chan *slot, window)
	for range window {
		sl := &slot{}
		sl.Completed = func(e *sendop.Args) {
			c.completed(e)
			c.completions.Add(1)
			if armHandler.Load() {
				doClose(true)
			}
			free <- sl
		}
		free <- sl
	}

	// Send until the peer has stalled and no send has completed for a
	// while: the window is stuck behind the closed TCP window.
	lastDone, lastCount := time.Now(), int64(0)
	for !s.stop.Load() && !c.sawError.Load() {
		if n := c.completions.Load(); n != lastCount {
			lastCount, lastDone = n, time.Now()
		}
		var sl *slot
		select {
		case sl = <-free:
		case <-time.After(20 * time.Millisecond):
		}
		if sl == nil {
			select {
			case <-stalled:
				if time.Since(lastDone) > 100*time.Millisecond {
					goto closing
				}
			default:
			}
			continue
		}
		pending, err := c.zcSend(sl)
		if err != nil {
			free <- sl
			s.violation("refused", "%s: SendAsync: %v", who, err)
			break
		}
		s.zc.sends.Add(1)
		if !pending {
			c.completions.Add(1)
			free <- sl
		}
	}
closing:
	resumed := false
	if inHandler && c.left.Load() > 0 {
		// The next completion closes the socket from its handler; the
		// peer reads again to make one.
		armHandler.Store(true)
		close(resume)
		resumed = true
		waitClosed(closeDone, zcHangWait)
	}
	go doClose(false) // nothing to do if a handler closed it
	if !waitClosed(closeDone, zcHangWait) {
		s.zc.hangs.Add(1)
		s.violation("zc-close", "%s (%+v): Close did not return in %v with zero-copy sends pending to a peer that does not read", who, c.p, zcHangWait)
		if tc, ok := pc.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		pc.Close() // lets the kernel free the skbs
		if !waitClosed(closeDone, 30*time.Second) {
			s.violation("hang", "%s: Close still blocked 30 s after the peer was reset", who)
			return // leaks; the end checks say so
		}
	}
	if !resumed {
		close(resume)
	}
	if !waitFor(30*time.Second, func() bool { return c.left.Load() == 0 }) {
		s.violation("hang", "%s: %d sends never completed after Close", who, c.left.Load())
		return
	}
	if !r.wait(30 * time.Second) {
		pc.Close()
		r.wait(10 * time.Second)
	}
	// An aborted connection (RST) may lose what the peer had not read:
	// then the peer's bytes must be a prefix of what was reported sent.
	r.faulted = r.err != nil
	c.verify(r)
}

// zcSend sends a new zero-copy-sized shape (16 KiB to 1 MiB, a Buffer or
// a BufferList) with a, recording it if accepted.
func (c *conn) zcSend(a *slot) (pending bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	size := 16<<10 + c.rng.IntN(1<<20-16<<10+1)
	sh := shape{buf: poolSlice(c.rng, size)}
	if c.rng.IntN(2) == 0 {
		b := poolSlice(c.rng, size)
		cut := c.rng.IntN(size + 1)
		sh = shape{bufs: [][]byte{b[:cut], b[cut:]}}
	}
	return c.sendShape(a, sh)
}

// zcPeer reads c: first readFirst bytes, then nothing (stalled is closed)
// until resume is closed, then to the end, hashing everything.
func zcPeer(c net.Conn, readFirst int64) (r *peer, stalled chan struct{}, resume chan struct{}) {
	stalled, resume = make(chan struct{}), make(chan struct{})
	r = goPeer(c, func(r *peer) {
		buf := make([]byte, 64<<10)
		for r.n < readFirst {
			if !r.read(buf[:min(int64(len(buf)), readFirst-r.n)]) {
				close(stalled)
				return
			}
		}
		close(stalled)
		<-resume
		for r.read(buf) {
		}
	})
	return r, stalled, resume
}
