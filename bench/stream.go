//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uringsend/uringsend/metrics"
	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// firstErr keeps the first error reported from any goroutine.
type firstErr struct {
	mu  sync.Mutex
	err error
}

func (f *firstErr) set(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstErr) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// streamConn is one connection of a uringsend pipeline.
type streamConn struct {
	s    *socket.Socket
	msgs atomic.Int64
	mu   sync.Mutex // verification: hash and SendAsync in one step, in call order
	sh   *senderHash
}

// pipeline keeps depth Args in flight on each connection, each sent
// again from its Completed until the round's time is up; uringsend's
// pipelined arms (TCP and UDP) run on it.
type pipeline struct {
	stop     atomic.Bool
	inflight atomic.Int64
	done     chan struct{}
	ferr     firstErr
	timer    *time.Timer
	t0       time.Time
	args     []sendop.Args
}

// startPipeline puts depth Args of size bytes in flight on every
// connection (interleaved, so that each starts at once) and stops
// resending after d.
func startPipeline(conns []*streamConn, size, depth int, d time.Duration) *pipeline {
	p := &pipeline{done: make(chan struct{}), args: make([]sendop.Args, len(conns)*depth)}
	for i := range p.args {
		p.args[i].SetBuffer(make([]byte, size))
		p.args[i].UserToken = conns[i/depth]
		p.args[i].Completed = p.completed
	}
	p.inflight.Store(int64(len(p.args)))
	p.timer = time.AfterFunc(d, func() { p.stop.Store(true) })
	p.t0 = time.Now()
	for k := range depth {
		for c := range conns {
			p.pump(&p.args[c*depth+k])
		}
	}
	return p
}

// wait returns when every Args has retired (30 s at most).
func (p *pipeline) wait() error {
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%d sends still in flight 30 s after the round ended", p.inflight.Load())
	}
}

func (p *pipeline) finished() {
	if p.inflight.Add(-1) == 0 {
		close(p.done)
	}
}

// complete accounts for a finished send and says whether to send e again.
func (p *pipeline) complete(e *sendop.Args) bool {
	if err := e.Err(); err != nil {
		p.ferr.set(err)
		p.finished()
		return false
	}
	e.UserToken.(*streamConn).msgs.Add(1)
	if p.stop.Load() {
		p.finished()
		return false
	}
	return true
}

func (p *pipeline) send(e *sendop.Args) (bool, error) {
	c := e.UserToken.(*streamConn)
	if c.sh == nil {
		return c.s.SendAsync(e)
	}
	// Verification: hash and SendAsync in one step, in call order.
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sh.fill(e.Buffer())
	return c.s.SendAsync(e)
}

// pump sends e until a send is pending or e retires.
func (p *pipeline) pump(e *sendop.Args) {
	for {
		pending, err := p.send(e)
		if err != nil {
			p.ferr.set(err)
			p.finished()
			return
		}
		if pending || !p.complete(e) {
			return
		}
	}
}

func (p *pipeline) completed(e *sendop.Args) {
	if p.complete(e) {
		p.pump(e)
	}
}

// pipelineCfg shapes a uringsend pipeline arm.
type pipelineCfg struct {
	conns, size, depth int
	batching           bool // socket.WithBatching
	metrics            bool // count io_uring_enter calls and sends
	recvBuf            int
	zeroCopy           string
	rings              int
	noCoop             bool
	probeAllocs        bool // count heap allocations in the middle of the round
}

// uringPipeline keeps depth sends in flight on each of conns TCP
// connections, all on one engine: every Args is sent again from its
// Completed until the round ends.
func uringPipeline(cfg pipelineCfg) func(round) (sample, error) {
	return func(r round) (sample, error) {
		clients, servers, err := tcpPairs(cfg.conns)
		if err != nil {
			return sample{}, err
		}
		recv := make([]<-chan recvResult, len(servers))
		for i, s := range servers {
			recv[i] = receive(s, r.verify, cfg.recvBuf)
		}
		var reg *prometheus.Registry
		ecfg := socket.EngineConfig{Backend: socket.BackendIOURing, ZeroCopy: cfg.zeroCopy, Rings: cfg.rings, Ring: ring.Config{NoCoopTaskrun: cfg.noCoop}}
		if cfg.metrics {
			reg = prometheus.NewRegistry()
			m, err := metrics.New(reg, metrics.Options{})
			if err != nil {
				return sample{}, err
			}
			ecfg.Metrics = m
		}
		eng, err := socket.NewEngine(ecfg)
		if err != nil {
			closeAll(clients)
			return sample{}, err
		}
		var opts []socket.Option
		opts = append(opts, socket.WithEngine(eng))
		if cfg.batching {
			opts = append(opts, socket.WithBatching())
		}
		conns := make([]*streamConn, len(clients))
		for i, c := range clients {
			s, err := socket.FromConn(c, opts...)
			if err != nil {
				eng.Close()
				closeAll(clients)
				return sample{}, err
			}
			conns[i] = &streamConn{s: s, sh: r.senderHash(cfg.size)}
		}

		pl := startPipeline(conns, cfg.size, cfg.depth, r.d)
		defer pl.timer.Stop()
		t0 := pl.t0
		var probe *allocProbe
		if cfg.probeAllocs {
			probe = startAllocProbe(r.d, func() int64 {
				n := int64(0)
				for _, c := range conns {
					n += c.msgs.Load()
				}
				return n
			})
		}
		if err := pl.wait(); err != nil {
			return sample{}, err
		}
		smp := sample{elapsed: time.Since(t0)}
		if probe != nil {
			<-probe.done
			smp.allocs, smp.allocMsgs = probe.allocs, probe.msgs
		}
		if reg != nil {
			smp.enters = gather(reg, metrics.NameRingEnterCalls)
			smp.sends = gather(reg, metrics.NameSends)
		}
		for _, c := range conns {
			c.s.Close()
		}
		eng.Close()
		err = pl.ferr.get()
		var last time.Time
		for i, c := range conns {
			n := c.msgs.Load()
			smp.msgs += n
			smp.bytes += n * int64(cfg.size)
			if ferr := finish(clients[i], recv[i], n*int64(cfg.size), c.sh, &last); ferr != nil && err == nil {
				err = fmt.Errorf("connection %d: %w", i, ferr)
			}
		}
		smp.delivered(t0, last)
		if err == nil && r.verify {
			smp.note = fmt.Sprintf("SHA-256 of %s on %d connection(s) matched", sizeString(smp.bytes), cfg.conns)
		}
		return smp, err
	}
}

// writeLoop is the plain Go way: a goroutine per connection calling
// net.Conn.Write in a loop.
func writeLoop(conns, size, recvBuf int) func(round) (sample, error) {
	return func(r round) (sample, error) {
		clients, servers, err := tcpPairs(conns)
		if err != nil {
			return sample{}, err
		}
		recv := make([]<-chan recvResult, len(servers))
		for i, s := range servers {
			recv[i] = receive(s, r.verify, recvBuf)
		}
		msgs, hashes, t0, elapsed, err := writeLoops(clients, size, r)
		smp := sample{elapsed: elapsed}
		var last time.Time
		for i, c := range clients {
			smp.msgs += msgs[i]
			smp.bytes += msgs[i] * int64(size)
			if ferr := finish(c, recv[i], msgs[i]*int64(size), hashes[i], &last); ferr != nil && err == nil {
				err = fmt.Errorf("connection %d: %w", i, ferr)
			}
		}
		smp.delivered(t0, last)
		if err == nil && r.verify {
			smp.note = fmt.Sprintf("SHA-256 of %s on %d connection(s) matched", sizeString(smp.bytes), conns)
		}
		return smp, err
	}
}

// writevLoop sends batches of batch messages with net.Buffers.WriteTo
// (writev): what a Go program that gathers its messages itself gets
// without io_uring.
func writevLoop(size, batch, recvBuf int) func(round) (sample, error) {
	return func(r round) (sample, error) {
		c, srv, err := tcpPair()
		if err != nil {
			return sample{}, err
		}
		recv := receive(srv, r.verify, recvBuf)
		bufs := make([][]byte, batch)
		for i := range bufs {
			bufs[i] = make([]byte, size)
		}
		work := make([][]byte, batch)
		sh := r.senderHash(size)
		var stop atomic.Bool
		timer := time.AfterFunc(r.d, func() { stop.Store(true) })
		defer timer.Stop()
		t0 := time.Now()
		n := int64(0)
		for !stop.Load() {
			if sh != nil {
				for _, b := range bufs {
					sh.fill(b)
				}
			}
			copy(work, bufs) // WriteTo consumes the slice and clears its elements
			nb := net.Buffers(work)
			if _, err = nb.WriteTo(c); err != nil {
				break
			}
			n += int64(batch)
		}
		smp := sample{msgs: n, bytes: n * int64(size), elapsed: time.Since(t0)}
		last, err := smp.finishOne(c, recv, sh, err)
		smp.delivered(t0, last)
		return smp, err
	}
}

// gather sums every series of the metric name in g.
func gather(g prometheus.Gatherer, name string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return 0
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// writeLoops runs a goroutine per connection calling Write with size-byte
// messages until the round's time is up (hashing them when verifying):
// the plain Go way the baselines send. It returns each connection's count
// and hash, when it started, how long it took and the first error.
func writeLoops[C io.Writer](conns []C, size int, r round) (msgs []int64, hashes []*senderHash, t0 time.Time, elapsed time.Duration, err error) {
	var stop atomic.Bool
	var ferr firstErr
	msgs = make([]int64, len(conns))
	hashes = make([]*senderHash, len(conns))
	var wg sync.WaitGroup
	timer := time.AfterFunc(r.d, func() { stop.Store(true) })
	defer timer.Stop()
	t0 = time.Now()
	for i, c := range conns {
		hashes[i] = r.senderHash(size)
		wg.Go(func() {
			buf := make([]byte, size)
			sh := hashes[i]
			n := int64(0)
			for !stop.Load() {
				if sh != nil {
					sh.fill(buf)
				}
				if _, err := c.Write(buf); err != nil {
					ferr.set(err)
					break
				}
				n++
			}
			msgs[i] = n
		})
	}
	wg.Wait()
	return msgs, hashes, t0, time.Since(t0), ferr.get()
}
