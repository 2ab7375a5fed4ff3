package loadgen

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uringsend/uringsend/metrics"
	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// ErrInterrupted is returned by Run and RunSink when a second signal
// arrived while they were stopping: the caller should exit at once.
var ErrInterrupted = errors.New("loadgen: interrupted twice, stopping now")

// DialError says that no connection of the run could be established (or
// that a signal came while connecting); Err is the first failure.
type DialError struct {
	Target Target
	Err    error
}

func (e *DialError) Error() string {
	return fmt.Sprintf("cannot connect to %v: %v", e.Target, e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }

// maxInlineResends bounds how many synchronously completed sends a
// Completed handler chains before it hands the slot to its connection's
// goroutine: Completed runs on the engine's reaper, which other
// connections' completions wait for.
const maxInlineResends = 64

// sinkGrace is how long the embedded sink waits for connections to reach
// end of file once the run has closed them.
const sinkGrace = 2 * time.Second

// runner is one run: the engine, the connections and what they record.
type runner struct {
	cfg Config
	eng *socket.Engine
	// pos holds the run's connections, one per position; -conn-lifetime
	// replaces a position's connection with a new one. retired are the
	// connections replaced, kept to be closed and reported.
	pos                     []atomic.Pointer[conn]
	retiredMu               sync.Mutex
	retired                 []*conn
	retiredTCP              TCPInfo
	replaced, replaceErrors atomic.Int64
	retiring                sync.WaitGroup // retire goroutines
	st                      *stats
	epoch                   time.Time // monotonic origin of every timestamp

	stopping atomic.Bool   // no new sends
	stopCh   chan struct{} // closed with stopping
	stopOnce sync.Once
	inflight atomic.Int64 // sends accepted by SendAsync and not yet recorded
	idle     chan struct{}
	wg       sync.WaitGroup // the connections' goroutines

	limit  uint64 // Config.Messages
	issued atomic.Uint64
	failed atomic.Int64 // connections that died

	payload []byte // shared by every slot without Verify
	bodyCRC uint32

	mu       sync.Mutex
	connErrs []string // the first few connection failures

	// Dialing.
	dialAttempts, dialErrors, dialFailed atomic.Int64
	epochID                              int64         // tells this run's abstract unix names from other runs'
	unixSeq                              atomic.Uint64 // numbers them
	connectMu                            sync.Mutex
	connect                              *hdr.Histogram // connect latency of successful dials

	// -omit: the counts at its end, and when that was.
	omitted      counts
	omittedKinds map[sendop.SocketError]uint64
	omitAt       time.Duration
	omitCost     cost
	cost0        cost // at the start
}

// conn is one connection and its slots: one preallocated sendop.Args per
// send it may have in flight.
type conn struct {
	r      *runner
	id     int
	s      *socket.Socket
	nc     net.Conn
	stream bool
	shard  *shard
	slots  []slot
	// ready holds slots for the connection's goroutine: to send (closed
	// loop), or free (open loop). Its capacity is the number of slots, and
	// a slot is in one place at a time, so sends to it never block.
	ready    chan *slot
	dead     atomic.Bool
	deadCh   chan struct{}
	deadOnce sync.Once
	closed   sync.Once
	// -conn-lifetime: a retiring connection starts no more sends; its
	// goroutine leaves when retireCh closes; busy counts its sends (rr:
	// requests) in flight, so that it is closed once they are done.
	retiring atomic.Bool
	retireCh chan struct{}
	busy     atomic.Int64

	stream64 uint64 // Verify: stream id
	seq      uint64 // Verify: next sequence number; only the sending goroutine touches it

	// rr (rr.go): the receive, its buffer, the bytes of the echo so far,
	// what the request waits for, and whether its send completed inline.
	rx     sendop.Args
	rbuf   []byte
	got    int
	parts  atomic.Int32
	txSync bool
}

type slot struct {
	c     *conn
	args  sendop.Args
	msg   []byte
	start int64 // when the send started, or (open loop) was due
}

// Run runs cfg: it dials the connections (or starts an embedded sink),
// sends until the duration has passed, the messages are sent, every
// connection has failed, or a signal arrives on sig; then it stops
// sending, waits for the sends in flight (up to Config.DrainTimeout),
// closes everything and returns the report.
//
// A first signal ends the run early and its report has Interrupted set; a
// second one, while Run is stopping, makes Run return ErrInterrupted at
// once, finishing the cleanup in the background. sig may be nil.
//
// Status lines and notes go to status (nil: none); when status is a
// terminal the line is redrawn in place. Errors: a ConfigError for a bad
// cfg, a DialError when no connection can be established, or the
// engine's error.
func Run(cfg Config, sig <-chan os.Signal, status io.Writer) (*Report, error) {
	return RunStream(cfg, sig, status, nil)
}

// RunStream is Run that, with Config.JSONStream, writes one JSON object
// per interval (IntervalReport) to stream as the run goes.
func RunStream(cfg Config, sig <-chan os.Signal, status, stream io.Writer) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.sharded()
	if status == nil {
		status = io.Discard
	}
	if stream == nil || !cfg.JSONStream {
		stream = nil
	}
	out := newStatusWriter(status)

	var sink *Sink
	if cfg.Target.IsZero() {
		var err error
		sink, err = StartSink(SinkConfig{Listen: Target{Network: "tcp", Address: "127.0.0.1:0"}, Verify: cfg.Verify, Echo: cfg.RR})
		if err != nil {
			return nil, fmt.Errorf("embedded sink: %w", err)
		}
		cfg.Target = sink.Addr()
		what := "sink"
		if cfg.RR {
			what = "echo sink"
		}
		out.notef("uringsend: no -target: sending to an embedded %s on %v", what, cfg.Target)
	}
	closeSink := func() *SinkReport {
		if sink == nil {
			return nil
		}
		rep := sink.Close(sinkGrace)
		return &rep
	}

	// With -metrics-addr the engine's metrics join the run's registry,
	// served below. The report's cost reads Engine.Stats, not the
	// registry: without -metrics-addr there is none.
	var reg *prometheus.Registry
	var em *metrics.Metrics
	if cfg.MetricsAddr != "" {
		reg = prometheus.NewRegistry()
		var err error
		if em, err = metrics.New(reg, metrics.Options{}); err != nil {
			closeSink()
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	eng, err := socket.NewEngine(socket.EngineConfig{
		Backend: string(cfg.Backend), ZeroCopy: string(cfg.ZeroCopy), Metrics: em,
		Rings: cfg.Rings, Entries: uint32(cfg.SQEntries), ZeroCopyThreshold: int(cfg.ZCThreshold),
	})
	if err != nil {
		closeSink()
		return nil, fmt.Errorf("engine: %w", err)
	}
	backend, fallback := engineInfo(eng)
	if fallback != nil {
		out.notef("uringsend: io_uring unavailable (%v); using the %s backend", fallback, backend)
	}

	r := &runner{
		cfg:     cfg,
		eng:     eng,
		st:      newStats(cfg.Conns),
		stopCh:  make(chan struct{}),
		idle:    make(chan struct{}, 1),
		limit:   uint64(cfg.Messages),
		connect: newHist(),
		epochID: time.Now().UnixNano(),
	}
	r.payload, r.bodyCRC = newPayload(int(cfg.Size))

	if err := r.dial(sig, out); err != nil {
		r.closeAll()
		closeSink()
		return nil, err
	}

	var msrv *metricsServer
	if cfg.MetricsAddr != "" {
		msrv, err = serveMetrics(cfg.MetricsAddr, reg, r)
		if err != nil {
			r.closeAll()
			closeSink()
			return nil, fmt.Errorf("metrics: %w", err)
		}
		if msrv.moved {
			out.notef("uringsend: %s is busy; metrics at %s", cfg.MetricsAddr, msrv.url())
		} else {
			out.notef("uringsend: metrics at %s", msrv.url())
		}
	}
	closeMetrics := func() {
		if msrv != nil {
			msrv.close()
		}
	}

	// -start-at: connected (and scraped, with metrics) before the start,
	// so that every generator's sending begins at the same instant.
	interrupted := false
	if !cfg.StartAt.IsZero() {
		if d := time.Until(cfg.StartAt); d > 0 {
			out.notef("uringsend: connected; sending starts at %s (in %v)", cfg.StartAt.UTC().Format(time.RFC3339Nano), d.Round(time.Millisecond))
		}
		interrupted = !waitStart(cfg.StartAt, sig)
	}

	// Go.
	r.cost0 = r.readCost()
	r.epoch = time.Now()
	if interrupted {
		r.stop() // a signal while waiting: the report says nothing was sent
	}
	if cfg.Rate > 0 {
		for _, p := range r.pacers() {
			r.wg.Add(1)
			go p.run()
		}
	} else {
		for _, c := range r.current() {
			r.wg.Add(1)
			go c.loop()
		}
	}
	if cfg.ConnLifetime > 0 {
		r.wg.Add(1)
		go r.churn()
	}

	var tick, end, omit <-chan time.Time
	if cfg.Interval > 0 {
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		end = t.C
	}
	if cfg.Omit > 0 {
		t := time.NewTimer(cfg.Omit)
		defer t.Stop()
		omit = t.C
	}
	var prev snapshot
	prevAt := time.Duration(0)
	prevCost := r.cost0
	var streamErr error
run:
	for {
		select {
		case <-tick:
			at := time.Since(r.epoch)
			snap := r.st.collect()
			out.status(r.statusLine(at, at-prevAt, &snap, &prev))
			if stream != nil && streamErr == nil {
				now := r.readCost()
				streamErr = r.writeInterval(stream, at, at-prevAt, &snap, &prev, &now, &prevCost, sink != nil)
				prevCost = now
			}
			prev, prevAt = snap, at
		case <-omit:
			// The warm-up is over: what came before counts apart.
			snap := r.st.collect()
			r.st.resetTotal()
			r.omitted, r.omittedKinds, r.omitAt = snap.counts, snap.byKind, time.Since(r.epoch)
			r.omitCost = r.readCost()
		case <-end:
			break run
		case <-r.stopCh:
			break run
		case <-sig:
			interrupted = true
			out.notef("uringsend: draining (Ctrl-C again to quit; at most %v)", cfg.DrainTimeout)
			break run
		}
	}
	r.stop()
	sent := time.Since(r.epoch)

	// Drain: wait for the senders to leave, then for what is in flight.
	finish := func() *SinkReport {
		r.closeAll()
		if cfg.MetricsLinger == 0 {
			closeMetrics()
		}
		return closeSink()
	}
	if !r.drain(sig) {
		out.clear()
		go func() {
			finish()
			closeMetrics()
		}()
		return nil, ErrInterrupted
	}
	drained := time.Since(r.epoch)
	cost1 := r.readCost()
	var tcpConns []TCPConnInfo
	tcp := r.tcpInfo(true, &tcpConns)
	locals := r.localAddrs()
	sinkRep := finish() // aborts what the drain left behind
	out.clear()

	snap := r.st.collect()
	rep := r.report(&snap, backend, fallback, sent, drained)
	rep.Interrupted = interrupted
	rep.Sink = sinkRep
	rep.TCPInfo = tcp
	if tcp != nil {
		rep.TCPConns = tcpConns
	}
	if msrv != nil {
		rep.MetricsURL = msrv.url() // served during the run; the text report leaves it out
	}
	if cfg.SinkReport && sink == nil {
		sr, err := askSink(cfg.Target, locals, cfg.DialTimeout)
		if err != nil {
			rep.SinkError = err.Error()
			out.notef("uringsend: -sink-report: %v", err)
		} else {
			rep.Sink = sr
		}
	}
	rep.setCost(r, &cost1, sink != nil)
	rep.setTimes(r.epoch, drained, cfg.StartAt)
	if rep.StartedLate {
		out.notef("uringsend: sending started %v after -start-at %s", time.Duration(rep.StartLagSeconds*1e9).Round(time.Microsecond), rep.StartAt)
	}
	if msrv != nil && cfg.MetricsLinger > 0 {
		// The counts are final: let Prometheus scrape them once more.
		out.notef("uringsend: serving the final metrics for %v (-metrics-linger)", cfg.MetricsLinger)
		t := time.NewTimer(cfg.MetricsLinger)
		select {
		case <-t.C:
		case <-sig:
		}
		t.Stop()
		closeMetrics()
	}
	if streamErr != nil {
		return rep, fmt.Errorf("-json-stream: %w", streamErr)
	}
	return rep, nil
}

// dial establishes the connections, a few at a time (or ConnectRate per
// second), each tried up to 1+DialRetries times with backoff. It fails
// only if no connection could be made; the connections that failed are
// counted. A signal stops it.
func (r *runner) dial(sig <-chan os.Signal, out *statusWriter) error {
	cfg := &r.cfg
	conns := make([]*conn, cfg.Conns)
	binds := cfg.Bind.List()
	ctl := cfg.control()
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopDial := func() { stopOnce.Do(func() { close(stop) }) }
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	var pace *time.Ticker
	if cfg.ConnectRate > 0 {
		pace = time.NewTicker(time.Duration(float64(time.Second) / float64(cfg.ConnectRate)))
		defer pace.Stop()
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-sig:
			out.notef("uringsend: interrupted while connecting")
			stopDial()
		case <-done:
		}
	}()
	defer close(done)
dialing:
	for i := range conns {
		if pace != nil && i > 0 {
			select {
			case <-pace.C:
			case <-stop:
				break dialing
			}
		}
		select {
		case sem <- struct{}{}:
		case <-stop:
			break dialing
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := r.dialConn(i, binds, ctl, stop)
			if err == nil {
				conns[i] = c
				return
			}
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
			r.dialFailed.Add(1)
			var soe *sockoptError
			if errors.As(err, &soe) {
				stopDial() // the same for every connection
			}
		}()
	}
	wg.Wait()
	n := 0
	for _, c := range conns {
		if c != nil {
			n++
		}
	}
	r.pos = make([]atomic.Pointer[conn], n)
	n = 0
	for _, c := range conns {
		if c != nil {
			c.id = n
			r.pos[n].Store(c)
			n++
		}
	}
	if isClosed(stop) && first == nil {
		first = errors.New("interrupted while connecting")
	}
	switch {
	case len(r.pos) == 0 && first != nil:
		return &DialError{Target: cfg.Target, Err: first}
	case len(r.pos) == 0:
		return &DialError{Target: cfg.Target, Err: errors.New("no connection")}
	case isClosed(stop):
		return &DialError{Target: cfg.Target, Err: first}
	}
	if n := r.dialFailed.Load(); n > 0 {
		out.notef("uringsend: %d of %d connections could not be established (%v); going on with %d", n, cfg.Conns, first, len(r.pos))
	}
	return nil
}

// dialConn establishes connection i, trying up to 1+DialRetries times
// with backoff (a socket option the kernel refuses is not retried), and
// wraps it for the run.
func (r *runner) dialConn(i int, binds []string, ctl func(string, string, syscall.RawConn) error, stop chan struct{}) (*conn, error) {
	cfg := &r.cfg
	d := net.Dialer{Timeout: cfg.DialTimeout, Control: ctl}
	if len(binds) > 0 {
		d.LocalAddr = localAddr(cfg.Target.Network, binds[i%len(binds)])
	}
	if cfg.Target.Network == "unix" && cfg.SinkReport {
		// A unix socket that connects has no name; an abstract one lets
		// the sink tell this run's connections from others'.
		d.LocalAddr = &net.UnixAddr{Net: "unix", Name: fmt.Sprintf("@uringsend-%d-%d-%d", os.Getpid(), r.epochID, r.unixSeq.Add(1))}
	}
	backoff := 10 * time.Millisecond
	for attempt := 0; ; attempt++ {
		t0 := time.Now()
		r.dialAttempts.Add(1)
		nc, err := d.Dial(cfg.Target.Network, cfg.Target.Address)
		if err == nil {
			r.recordConnect(time.Since(t0))
			if cfg.Nagle {
				if tc, ok := nc.(*net.TCPConn); ok {
					err = tc.SetNoDelay(false)
				}
			}
		}
		if err == nil {
			var c *conn
			if c, err = r.newConn(i, nc); err == nil {
				return c, nil
			}
			nc.Close()
		}
		r.dialErrors.Add(1)
		var soe *sockoptError
		if attempt >= cfg.DialRetries || errors.As(err, &soe) || isClosed(stop) {
			return nil, err
		}
		select {
		case <-time.After(backoff):
		case <-stop:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// churn is the -conn-lifetime goroutine: every ConnLifetime/N it
// replaces the connection at the next position with a new one, so that
// each lives about ConnLifetime. The new connection is dialed first; the
// old one then starts no more sends and is closed once those in flight
// are done (see retire). A failed dial keeps the old connection.
func (r *runner) churn() {
	defer r.wg.Done()
	cfg := &r.cfg
	n := len(r.pos)
	t := time.NewTicker(max(cfg.ConnLifetime/time.Duration(n), time.Millisecond))
	defer t.Stop()
	binds, ctl := cfg.Bind.List(), cfg.control()
	for i := 0; ; i = (i + 1) % n {
		select {
		case <-t.C:
		case <-r.stopCh:
			return
		}
		old := r.pos[i].Load()
		if old.dead.Load() {
			continue
		}
		c, err := r.dialConn(i, binds, ctl, r.stopCh)
		if err != nil {
			r.replaceErrors.Add(1)
			continue
		}
		c.id = old.id
		old.retiring.Store(true)
		close(old.retireCh)
		r.pos[i].Store(c)
		r.replaced.Add(1)
		r.retiredMu.Lock()
		r.retired = append(r.retired, old)
		r.retiredMu.Unlock()
		if cfg.Rate == 0 {
			r.wg.Add(1)
			go c.loop()
		}
		r.retiring.Add(1)
		go old.retire()
	}
}

// retire closes a replaced connection once the sends it had in flight
// are done (at most DrainTimeout; the rest are aborted), after reading
// its TCP_INFO.
func (c *conn) retire() {
	r := c.r
	defer r.retiring.Done()
	deadline := time.Now().Add(r.cfg.DrainTimeout)
	for c.busy.Load() > 0 && time.Now().Before(deadline) && !c.dead.Load() {
		time.Sleep(time.Millisecond)
	}
	if sc, ok := c.nc.(*net.TCPConn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			if i := tcpInfo(rc); i != nil {
				r.retiredMu.Lock()
				r.retiredTCP.add(i)
				r.retiredMu.Unlock()
			}
		}
	}
	c.close()
}

// current returns the connections of the run's positions now.
func (r *runner) current() []*conn {
	cs := make([]*conn, len(r.pos))
	for i := range r.pos {
		cs[i] = r.pos[i].Load()
	}
	return cs
}

// recordConnect records how long one successful dial took.
func (r *runner) recordConnect(d time.Duration) {
	r.connectMu.Lock()
	r.connect.RecordValue(min(max(int64(d), histMin), histMax))
	r.connectMu.Unlock()
}

// localAddr is the net.Addr to bind to for a -bind address.
func localAddr(network, ip string) net.Addr {
	a, _ := netip.ParseAddr(ip)
	if network == "udp" {
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// localAddrs returns the local addresses of the run's connections, for
// the sink to know them by.
func (r *runner) localAddrs() []string {
	r.retiredMu.Lock()
	cs := append(r.current(), r.retired...)
	r.retiredMu.Unlock()
	a := make([]string, 0, len(cs))
	for _, c := range cs {
		a = append(a, c.nc.LocalAddr().String())
	}
	return a
}

// tcpInfo reads TCP_INFO of every TCP connection still open (with
// retired, also what the replaced ones said when they were closed); nil
// if none. With conns, it also appends each open connection's (at most
// MaxTCPInfoConnections).
func (r *runner) tcpInfo(retired bool, conns *[]TCPConnInfo) *TCPInfo {
	var t TCPInfo
	if retired {
		r.retiredMu.Lock()
		t = r.retiredTCP
		r.retiredMu.Unlock()
	}
	for _, c := range r.current() {
		sc, ok := c.nc.(*net.TCPConn)
		if !ok {
			return nil
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			continue
		}
		if i := tcpInfo(rc); i != nil {
			t.add(i)
			if conns != nil && len(*conns) < MaxTCPInfoConnections {
				ci := TCPConnInfo{Connection: c.id, Local: c.nc.LocalAddr().String()}
				ci.set(i)
				*conns = append(*conns, ci)
			}
		}
	}
	if t.Connections == 0 {
		return nil
	}
	return &t
}

func (r *runner) newConn(id int, nc net.Conn) (*conn, error) {
	opts := []socket.Option{socket.WithEngine(r.eng)}
	if r.cfg.batching() {
		opts = append(opts, socket.WithBatching())
	}
	s, err := socket.FromConn(nc, opts...)
	if err != nil {
		return nil, err
	}
	cfg := &r.cfg
	c := &conn{
		r:        r,
		id:       id,
		s:        s,
		nc:       nc,
		stream:   cfg.Target.Stream(),
		shard:    r.st.shard(id),
		slots:    make([]slot, cfg.Inflight),
		ready:    make(chan *slot, cfg.Inflight),
		deadCh:   make(chan struct{}),
		retireCh: make(chan struct{}),
	}
	if cfg.Verify {
		var b [8]byte
		rand.Read(b[:])
		c.stream64 = binary.LittleEndian.Uint64(b[:])
	}
	for i := range c.slots {
		sl := &c.slots[i]
		sl.c = c
		sl.msg = r.payload
		if cfg.Verify {
			sl.msg = append([]byte(nil), r.payload...)
		}
		if cfg.Mode == ModeBufferList {
			sl.args.SetBufferList(segments(sl.msg, cfg.Segments))
		} else {
			sl.args.SetBuffer(sl.msg)
		}
		switch {
		case cfg.Rate > 0:
			sl.args.Completed = sl.completedOpen
		case cfg.Verify:
			sl.args.Completed = sl.completedHandBack
		default:
			sl.args.Completed = sl.completedClosed
		}
		c.ready <- sl
	}
	if cfg.RR {
		c.rrInit()
	}
	return c, nil
}

// pacersPerRate is the open-loop rate one pacer is given at most.
const pacersPerRate = 100e3

// pacers divides the connections among the open loop's pacers: one per
// pacersPerRate messages/s, at most one per CPU and per connection.
func (r *runner) pacers() []*pacer {
	cfg := &r.cfg
	n := int(math.Ceil(float64(cfg.Rate) / pacersPerRate))
	n = max(1, min(n, runtime.GOMAXPROCS(0), len(r.pos)))
	ps := make([]*pacer, n)
	for i := range ps {
		ps[i] = &pacer{r: r}
	}
	for i := range r.pos {
		ps[i%n].conns = append(ps[i%n].conns, i)
	}
	for i, p := range ps {
		// This pacer's share of the rate, staggered against the others.
		p.period = 1e9 * float64(len(r.pos)) / (float64(cfg.Rate) * float64(len(p.conns)))
		p.base = int64(p.period * float64(i) / float64(n))
	}
	return ps
}

// now is the time since the run's start in nanoseconds (monotonic).
func (r *runner) now() int64 { return int64(time.Since(r.epoch)) }

// stop ends the sending phase: no send starts after it.
func (r *runner) stop() {
	r.stopOnce.Do(func() {
		r.stopping.Store(true)
		close(r.stopCh)
	})
}

// done retires one send from the in-flight count.
func (r *runner) done() {
	if r.inflight.Add(-1) == 0 && r.stopping.Load() {
		select {
		case r.idle <- struct{}{}:
		default:
		}
	}
}

// drain waits for the senders to return and the sends in flight to
// complete, at most DrainTimeout. It returns false if a signal arrived
// meanwhile.
func (r *runner) drain(sig <-chan os.Signal) bool {
	timeout := time.NewTimer(r.cfg.DrainTimeout)
	defer timeout.Stop()
	senders := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(senders)
	}()
	select {
	case <-senders:
	case <-sig:
		return false
	case <-timeout.C:
		return true
	}
	// The in-flight count only falls now: a send starts only from a
	// completion that still counts itself, and only while not stopping.
	for r.inflight.Load() > 0 {
		select {
		case <-r.idle:
		case <-sig:
			return false
		case <-timeout.C:
			return true
		}
	}
	return true
}

// closeAll closes the connections (which aborts what is still in flight)
// and then the engine. Each connection's socket is closed before its
// net.Conn, and through conn.close only, which the goroutine of a failed
// connection may be running too.
func (r *runner) closeAll() {
	var wg sync.WaitGroup
	r.retiredMu.Lock()
	cs := append(r.current(), r.retired...)
	r.retiredMu.Unlock()
	for _, c := range cs {
		if c != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.close()
			}()
		}
	}
	wg.Wait()
	r.eng.Close()
	r.wg.Wait()
	r.retiring.Wait()
}

// count counts a send (or rr request) of c as in flight, in the run's
// count and in c's own.
func (c *conn) count() {
	c.busy.Add(1)
	c.r.inflight.Add(1)
}

// done retires a send counted by count.
func (c *conn) done() {
	c.busy.Add(-1)
	c.r.done()
}

// admit reports whether c may start another send, taking one of the
// run's messages if they are counted.
func (c *conn) admit() bool {
	r := c.r
	if r.stopping.Load() || c.dead.Load() || c.retiring.Load() {
		return false
	}
	if r.limit > 0 {
		n := r.issued.Add(1)
		if n >= r.limit {
			r.stop()
		}
		if n > r.limit {
			return false
		}
	}
	return true
}

// precise is the wait below which the pacer sleeps in shortSleep rather
// than on a runtime timer (whose granularity is about a millisecond).
const precise = 3 * time.Millisecond

// outcome of drive.
const (
	parked  = iota // the run or the connection is over: the slot rests
	pending        // Completed will be raised
	handoff        // the inline budget is used up: give the slot to the goroutine
)

// drive sends on sl until a send is pending or the connection stops;
// with limit > 0 it chains at most limit sends that complete inline. now,
// if not 0, is the clock just read (by finish): the first send starts then.
// counted says sl's last send still counts in r.inflight (drive runs in its
// Completed): the next send takes the count over, so a pipeline's steady
// state leaves the shared counter alone. Whatever the outcome, the count
// is held only by a pending send.
func (c *conn) drive(sl *slot, limit int, now int64, counted bool) int {
	r := c.r
	for i := 0; ; i++ {
		if outcome, ok := c.next(i, limit, counted); !ok {
			return outcome
		}
		counted = true
		if now == 0 || i > 0 {
			now = r.now()
		}
		if c.start(sl, now) {
			return pending
		}
	}
}

// next is the head of a chain of sends (drive) or requests (rrDrive):
// it decides whether the i-th may start. At the limit (limit > 0) the
// chain ends: the count it holds is released, and the outcome is handoff,
// or parked when the connection or the run is over. Otherwise the send is
// counted (unless counted: the one before it left its count) and
// admitted, or parked with its count released. ok says start it; the
// count is then held.
func (c *conn) next(i, limit int, counted bool) (outcome int, ok bool) {
	if limit > 0 && i == limit {
		if counted {
			c.done()
		}
		if c.dead.Load() || c.retiring.Load() || c.r.stopping.Load() {
			return parked, false
		}
		return handoff, false
	}
	// Count before admitting: a retiring connection is closed once its
	// count is zero, so a send admitted before it began to retire must
	// already count.
	if !counted {
		c.count()
	}
	if !c.admit() {
		c.done()
		return parked, false
	}
	return 0, true
}

// start sends sl's message, due at the given time; the caller has counted
// it in r.inflight. It returns true if the send is pending; otherwise its
// completion (or the connection's failure) has been recorded, and the
// caller still holds the count.
func (c *conn) start(sl *slot, due int64) bool {
	r := c.r
	if r.cfg.Verify {
		stamp(sl.msg, r.bodyCRC, c.stream64, c.seq)
		c.seq++
	}
	sl.start = due
	isPending, err := c.s.SendAsync(&sl.args)
	if err != nil {
		c.kill(err)
		return false
	}
	if isPending {
		return true
	}
	c.finish(sl, true)
	return false
}

// finish records the completion of sl's send and returns the time it read.
func (c *conn) finish(sl *slot, sync bool) (now int64) {
	r := c.r
	now = r.now()
	lat := now - sl.start
	se := sl.args.SocketError()
	aborted := se == sendop.OperationAborted && (r.stopping.Load() || c.dead.Load() || c.retiring.Load())
	c.shard.record(se, sl.args.BytesTransferred(), lat, sync, aborted, r.stopping.Load())
	if se != sendop.Success && !aborted && c.stream {
		// A stream that failed a send has lost bytes: it is done.
		c.kill(sl.args.Err())
	}
	return now
}

// completedClosed is the closed loop's Completed: record, send again. The
// next send starts at the completion's time: one clock read per message
// (at millions of messages a second the clock is a fifth of the cost).
func (sl *slot) completedClosed(*sendop.Args) {
	c := sl.c
	now := c.finish(sl, false)
	if c.drive(sl, maxInlineResends, now, true) == handoff {
		c.ready <- sl
	}
}

// completedHandBack is the closed loop's Completed with Verify: the
// connection's goroutine sends next, so sequence order is wire order.
func (sl *slot) completedHandBack(*sendop.Args) {
	c := sl.c
	c.finish(sl, false)
	if !c.dead.Load() && !c.retiring.Load() && !c.r.stopping.Load() {
		c.ready <- sl
	}
	c.done()
}

// completedOpen is the open loop's Completed: the slot is free again.
func (sl *slot) completedOpen(*sendop.Args) {
	c := sl.c
	c.finish(sl, false)
	c.ready <- sl
	c.done()
}

// loop is a closed-loop connection's goroutine: it sends what the ready
// channel holds (at the start every slot; later what Completed hands back)
// and chains inline completions without bound.
func (c *conn) loop() {
	defer c.r.wg.Done()
	for {
		select {
		case sl := <-c.ready:
			if c.r.cfg.RR {
				c.rrDrive(0, false)
				continue
			}
			c.drive(sl, 0, 0, false)
		case <-c.r.stopCh:
			return
		case <-c.retireCh:
			return
		case <-c.deadCh:
			c.close()
			return
		}
	}
}

// pacer sends the open loop's messages on a group of connections: its
// message k is due at base + k*period, on connection k mod len(conns).
// A few pacers serve all connections (see Run): a pacer's short waits
// block its thread in nanosleep, and a few such threads are punctual
// where one per connection would queue for the CPUs.
type pacer struct {
	r      *runner
	conns  []int // positions in r.pos
	base   int64
	period float64
}

// run waits for each message's due time and a free slot on its
// connection, then sends. The latency of the send counts from the due
// time, so whatever delays it — a full pipeline, a slow completion, the
// pacer itself — is measured.
func (p *pacer) run() {
	r := p.r
	defer r.wg.Done()
	punctualThread()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	live := append([]int(nil), p.conns...)
	for k := 0; len(live) > 0; k++ {
		due := p.base + int64(float64(k)*p.period)
		// Long waits on a runtime timer, which can be stopped; the rest
		// (and short waits) in shortSleep, which is punctual.
		if d := time.Duration(due - r.now()); d >= precise {
			t.Reset(d - precise)
			select {
			case <-t.C:
			case <-r.stopCh:
				return
			}
		}
		if d := time.Duration(due - r.now()); d > 0 {
			shortSleep(d)
		}
		i := k % len(live)
		c := r.pos[live[i]].Load()
		var sl *slot
		select {
		case sl = <-c.ready:
		case <-r.stopCh:
			return
		case <-c.deadCh:
		case <-c.retireCh:
		}
		c.count() // before admit: see drive
		if sl == nil || !c.admit() {
			c.done()
			if c.retiring.Load() && !c.dead.Load() && !r.stopping.Load() {
				// Replaced (-conn-lifetime): message k goes on the new one.
				if sl != nil {
					c.ready <- sl
				}
				k--
				continue
			}
			if !c.dead.Load() {
				return // stopping
			}
			if sl != nil {
				c.ready <- sl
			}
			c.close()
			live = append(live[:i], live[i+1:]...)
			continue
		}
		if r.cfg.RR {
			if c.rrLaunch(due) {
				c.ready <- sl
				c.done()
			}
			continue
		}
		if !c.start(sl, due) {
			c.done()
			if !c.dead.Load() {
				c.ready <- sl
			}
		}
	}
}

// kill marks c failed: no more sends; its goroutine closes it.
func (c *conn) kill(err error) {
	c.deadOnce.Do(func() {
		c.dead.Store(true)
		r := c.r
		r.mu.Lock()
		if len(r.connErrs) < 10 {
			r.connErrs = append(r.connErrs, fmt.Sprintf("connection %d: %v", c.id, err))
		}
		r.mu.Unlock()
		close(c.deadCh)
		if int(r.failed.Add(1)) == len(r.pos) {
			r.stop() // nothing left to send on
		}
	})
}

// close closes the socket (completing what is pending with
// OperationAborted) and then the connection.
func (c *conn) close() {
	c.closed.Do(func() {
		c.s.Close()
		c.nc.Close()
	})
}

// zeroCopyReason says why SEND_ZC was requested and not used.
func (r *runner) zeroCopyReason() string {
	cfg := &r.cfg
	threshold := cfg.ZCThreshold
	if threshold == 0 {
		threshold = 16 << 10
	}
	loopback := cfg.Target.Network == "unix"
	if len(r.pos) > 0 {
		if a, ok := r.pos[0].Load().nc.RemoteAddr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
			loopback = true
		}
	}
	switch {
	case cfg.Target.Network != "tcp":
		return "SEND_ZC is for TCP"
	case loopback && cfg.ZeroCopy == ZeroCopyAuto:
		return "a loopback peer: auto uses it towards other hosts; -zerocopy on forces it"
	case cfg.Size < threshold && !cfg.batching():
		return fmt.Sprintf("messages under the %v threshold", threshold)
	case cfg.Size < threshold:
		return fmt.Sprintf("no coalesced send reached the %v threshold, or no SEND_ZC", threshold)
	}
	return "this kernel has no SEND_ZC (or it reported copying)"
}
