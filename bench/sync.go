//go:build linux

package main

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// allocProbe measures heap allocations per message in the middle of a
// round: it reads runtime.MemStats and the message count after a quarter
// of the round and again after three quarters.
type allocProbe struct {
	done   chan struct{}
	allocs uint64
	msgs   int64
}

func startAllocProbe(d time.Duration, count func() int64) *allocProbe {
	p := &allocProbe{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		var m0, m1 runtime.MemStats
		time.Sleep(d / 4)
		runtime.ReadMemStats(&m0)
		n0 := count()
		time.Sleep(d / 2)
		runtime.ReadMemStats(&m1)
		n1 := count()
		p.allocs, p.msgs = m1.Mallocs-m0.Mallocs, n1-n0
	}()
	return p
}

// syncSends is P5's candidate: one Args, one send at a time on an idle
// socket without WithBatching, waiting for Completed when SendAsync
// returns pending, on an engine made with cfg.
func syncSends(size int, probe bool, cfg socket.EngineConfig) func(round) (sample, error) {
	return func(r round) (sample, error) {
		c, srv, err := tcpPair()
		if err != nil {
			return sample{}, err
		}
		recv := receive(srv, r.verify, 256<<10)
		eng, err := socket.NewEngine(cfg)
		if err != nil {
			c.Close()
			return sample{}, err
		}
		defer eng.Close()
		s, err := socket.FromConn(c, socket.WithEngine(eng))
		if err != nil {
			c.Close()
			return sample{}, err
		}
		buf := make([]byte, size)
		var e sendop.Args
		e.SetBuffer(buf)
		wake := make(chan struct{}, 1)
		e.Completed = func(*sendop.Args) { wake <- struct{}{} }
		sh := r.senderHash(size)
		var stop atomic.Bool
		var n atomic.Int64
		timer := time.AfterFunc(r.d, func() { stop.Store(true) })
		defer timer.Stop()
		var p *allocProbe
		if probe {
			p = startAllocProbe(r.d, n.Load)
		}
		async := int64(0)
		t0 := time.Now()
		for !stop.Load() {
			if sh != nil {
				sh.fill(buf)
			}
			pending, serr := s.SendAsync(&e)
			if serr != nil {
				err = serr
				break
			}
			if pending {
				<-wake
				async++
			}
			if serr := e.Err(); serr != nil {
				err = serr
				break
			}
			n.Add(1)
		}
		smp := sample{elapsed: time.Since(t0), msgs: n.Load()}
		smp.bytes = smp.msgs * int64(size)
		smp.syncs = smp.msgs - async
		if p != nil {
			<-p.done
			smp.allocs, smp.allocMsgs = p.allocs, p.msgs
		}
		s.Close()
		// P5 times the sender: the receiver keeps up with one 64 B send at a time.
		_, err = smp.finishOne(c, recv, sh, err)
		if err == nil && r.verify {
			smp.note += fmt.Sprintf("; %d of %d sends synchronous", smp.syncs, smp.msgs)
		}
		return smp, err
	}
}

// rawWrites is P5's baseline: write(2) on the connection's descriptor,
// waiting on Go's netpoller only when the socket is full.
func rawWrites(size int) func(round) (sample, error) {
	return func(r round) (sample, error) {
		c, recv, rc, fd, err := fdPair(r.verify)
		if err != nil {
			return sample{}, err
		}
		buf := make([]byte, size)
		sh := r.senderHash(size)
		var stop atomic.Bool
		var n atomic.Int64
		timer := time.AfterFunc(r.d, func() { stop.Store(true) })
		defer timer.Stop()
		t0 := time.Now()
		for !stop.Load() {
			if sh != nil {
				sh.fill(buf)
			}
			if err = writeAll(rc, fd, buf); err != nil {
				break
			}
			n.Add(1)
		}
		smp := sample{elapsed: time.Since(t0), msgs: n.Load()}
		smp.bytes = smp.msgs * int64(size)
		// P5 times the sender: the receiver keeps up with one 64 B send at a time.
		_, err = smp.finishOne(c, recv, sh, err)
		return smp, err
	}
}

// rawConn is the part of syscall.RawConn writeAll needs.
type rawConn interface {
	Write(func(fd uintptr) bool) error
}

// writeAll writes b with write(2), continuing short writes and waiting
// for writability on EAGAIN.
func writeAll(rc rawConn, fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EAGAIN {
			var werr error
			if err := rc.Write(func(uintptr) bool {
				n, werr = unix.Write(fd, b)
				return werr != unix.EAGAIN
			}); err != nil {
				return err
			}
			err = werr
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
