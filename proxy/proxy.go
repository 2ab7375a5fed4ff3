package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uringsend/uringsend/metrics"
	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/socket"
)

// ErrClosed is returned by Serve after Shutdown or Close, and by Shutdown
// and Close when the proxy is already stopped.
var ErrClosed = errors.New("proxy: closed")

// Proxy forwards every TCP connection accepted on its listener to the
// upstream, sending both directions through one uringsend engine. Create it
// with New, run Serve, stop it with Shutdown or Close.
type Proxy struct {
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	eng    *socket.Engine
	reg    *prometheus.Registry
	msrv   *metrics.Server
	stats  *stats
	bufs   sync.Pool // *[]byte of cfg.BufferSize
	dialer net.Dialer
	opts   []socket.Option

	started    time.Time       // monotonic origin of the sweeper's marks
	dialCtx    context.Context // cancelled by Close: dials in progress give up
	cancelDial context.CancelFunc

	mu       sync.Mutex
	conns    map[*conn]struct{}
	stopping bool
	serving  sync.WaitGroup // Serve loops
	handlers sync.WaitGroup // connection goroutines
	sweeper  chan struct{}  // closed to stop the sweeper
	swept    chan struct{}  // closed when the sweeper has returned
	stopOnce sync.Once
	released atomic.Bool

	recvEngine bool     // reads are on the engine (Config.Recv)
	chunks     bool     // … into its receive pool (ReceiveChunks): chunks.go
	sends      sendPool // chunks.go
}

// New validates cfg, starts the engine (and the metrics server when
// cfg.MetricsAddr is set) and listens on cfg.Listen. The proxy forwards
// nothing until Serve runs. logger receives connection errors; nil
// discards them.
func New(cfg Config, logger *slog.Logger) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	p := &Proxy{
		cfg:     cfg,
		log:     logger,
		reg:     prometheus.NewRegistry(),
		conns:   make(map[*conn]struct{}),
		dialer:  net.Dialer{Timeout: cfg.DialTimeout},
		started: time.Now(),
	}
	p.dialCtx, p.cancelDial = context.WithCancel(context.Background())
	size := int(cfg.BufferSize)
	p.bufs.New = func() any { b := make([]byte, size); return &b }
	p.stats = newStats(p)
	if err := p.reg.Register(p.stats); err != nil {
		return nil, err
	}
	ecfg := socket.EngineConfig{Backend: cfg.Backend, RecvBuffers: cfg.RecvPool, RecvBufferSize: int(cfg.BufferSize)}
	if cfg.MetricsAddr != "" {
		m, err := metrics.New(p.reg, metrics.Options{})
		if err != nil {
			return nil, err
		}
		ecfg.Metrics = m
	}
	eng, err := socket.NewEngine(ecfg)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	p.eng = eng
	p.recvEngine = cfg.Recv == RecvEngine || (cfg.Recv == "" || cfg.Recv == RecvAuto) && eng.Backend() == socket.BackendIOURing
	p.opts = []socket.Option{socket.WithEngine(eng)}
	if p.recvEngine {
		// The pumps' Completed handlers do the relaying: the connection's
		// goroutine only starts them, and with async completions it never
		// takes other connections' completions from the reaper (which
		// then has to be woken for them).
		p.opts = append(p.opts, socket.WithAsyncCompletions(), socket.WithChunkLimit(cfg.slots()))
		if !cfg.RecvOwnBuffers {
			switch err := probeChunks(eng); {
			case err == nil:
				p.chunks = true
			case errors.Is(err, ring.ErrNotSupported):
				logger.Info("receives go into buffers of the proxy's own", "reason", err)
			default:
				eng.Close()
				return nil, fmt.Errorf("engine: receive pool: %w", err)
			}
		}
	}
	if p.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		eng.Close()
		return nil, err
	}
	if cfg.MetricsAddr != "" {
		if p.msrv, err = metrics.Serve(cfg.MetricsAddr, p.reg); err != nil {
			p.ln.Close()
			eng.Close()
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	p.sweeper, p.swept = make(chan struct{}), make(chan struct{})
	go p.sweep()
	return p, nil
}

// Addr is the address the proxy accepts on.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// Backend is the engine's backend: socket.BackendIOURing or BackendEpoll.
func (p *Proxy) Backend() string { return p.eng.Backend() }

// RecvMode is how the proxy reads: RecvEngine or RecvNet.
func (p *Proxy) RecvMode() string {
	if p.recvEngine {
		return RecvEngine
	}
	return RecvNet
}

// RecvPool reports whether the proxy receives into the engine's receive
// pool (receive mode engine, unless Config.RecvOwnBuffers or the kernel
// has no multishot receive): then an idle connection holds no buffer.
func (p *Proxy) RecvPool() bool { return p.chunks }

// MetricsURL is the URL of the metrics endpoint, or "" without one.
func (p *Proxy) MetricsURL() string {
	if p.msrv == nil {
		return ""
	}
	return p.msrv.URL()
}

// Gatherer returns the registry holding the proxy's metrics (and the
// engine's, with cfg.MetricsAddr).
func (p *Proxy) Gatherer() prometheus.Gatherer { return p.reg }

// Serve accepts clients until Shutdown or Close, then returns ErrClosed;
// any other error of Accept that is not temporary is returned as is.
func (p *Proxy) Serve() error {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		return ErrClosed
	}
	p.serving.Add(1)
	p.mu.Unlock()
	defer p.serving.Done()
	var backoff time.Duration
	for {
		c, err := p.ln.Accept()
		if err != nil {
			p.mu.Lock()
			stopping := p.stopping
			p.mu.Unlock()
			if stopping {
				return ErrClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE, ECONNABORTED and the like: wait and go on, as
			// net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.log.Warn("accept", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		p.stats.accepted.Add(1)
		p.handlers.Add(1)
		go p.handle(c.(*net.TCPConn))
	}
}

// stop stops accepting: the listener closes and Serve returns.
func (p *Proxy) stop() {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		p.stopping = true
		p.mu.Unlock()
		p.ln.Close()
		p.serving.Wait()
		// The sweeper goes on until the connections are gone (release):
		// in receive mode engine it is what bounds a drain's sends by
		// SendTimeout.
	})
}

// snapshot returns the live connections.
func (p *Proxy) snapshot() []*conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	cs := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	return cs
}

// Shutdown stops accepting and reading, waits until every byte already
// read has been handed to the kernel, closes the connections normally and
// stops the engine. If ctx ends first, the remaining connections are
// closed at once (sends still in flight are aborted) and Shutdown returns
// ctx.Err() once they are.
func (p *Proxy) Shutdown(ctx context.Context) error {
	if p.released.Load() {
		return ErrClosed
	}
	p.stop()
	p.mu.Lock()
	for c := range p.conns {
		c.stop(endShutdown)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.handlers.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		p.cancelDial()
		for _, c := range p.snapshot() {
			c.stop(endClosed)
		}
		<-done
	}
	if rerr := p.release(); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// Close stops accepting, closes every connection at once (sends in flight
// are aborted) and stops the engine.
func (p *Proxy) Close() error {
	if p.released.Load() {
		return ErrClosed
	}
	p.stop()
	p.cancelDial()
	p.mu.Lock()
	for c := range p.conns {
		c.stop(endClosed)
	}
	p.mu.Unlock()
	p.handlers.Wait()
	return p.release()
}

// release frees the engine and the metrics server, once.
func (p *Proxy) release() error {
	if p.released.Swap(true) {
		return ErrClosed
	}
	p.cancelDial()
	close(p.sweeper)
	<-p.swept
	err := p.eng.Close()
	if p.msrv != nil {
		err = errors.Join(err, p.msrv.Close())
	}
	return err
}

// handle proxies one accepted client until both directions have ended —
// or, with chunks, starts it: the connection then lives without a
// goroutine, and the one that closes it counts handlers done.
func (p *Proxy) handle(client *net.TCPConn) {
	uc, err := p.dial()
	if err != nil {
		p.log.Warn("dial upstream", "upstream", p.cfg.Upstream, "client", client.RemoteAddr(), "err", err)
		client.SetLinger(0)
		client.Close()
		p.stats.ended(endDialError)
		p.handlers.Done()
		return
	}
	c, err := p.newConn(client, uc)
	if err != nil {
		if !errors.Is(err, ErrClosed) {
			p.log.Warn("connection", "client", client.RemoteAddr(), "err", err)
		}
		client.Close()
		uc.Close()
		p.stats.ended(endClosed)
		p.handlers.Done()
		return
	}
	switch {
	case c.chunked:
		c.startChunks()
		// Stopped meanwhile (Close, Shutdown): its stop found nothing
		// started to wait for.
		c.poke()
		return
	case c.engine:
		c.runEngine()
	default:
		c.run()
	}
	p.handlers.Done()
}

// dial connects to the upstream; a host name is resolved at each dial, so
// the proxy follows its DNS. Not Dialer.DialTCP, even for an IP: with a
// zero local address it binds to port 0 before connecting, and bind(2)
// cannot share an ephemeral port between destinations as connect(2) does
// — under churn it ran out of ports and spent its time in bind.
func (p *Proxy) dial() (*net.TCPConn, error) {
	c, err := p.dialer.DialContext(p.dialCtx, "tcp", p.cfg.Upstream)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// sweep closes idle connections, resets connections whose source has
// been reset while they were backed up (sourceReset) and, in receive mode
// engine, connections whose sends have made no progress for SendTimeout,
// until release. While Shutdown drains, the send timeout still holds (as
// sendop.Args.Timeout does in receive mode net) but the idle timeout and
// the look at the sources do not: a draining connection reads nothing.
func (p *Proxy) sweep() {
	defer close(p.swept)
	idle := p.cfg.IdleTimeout
	t := time.NewTicker(p.sweepEvery())
	defer t.Stop()
	for {
		select {
		case <-p.sweeper:
			return
		case now := <-t.C:
			for _, c := range p.snapshot() {
				if !c.halt.Load() && (c.up.sourceReset() || c.down.sourceReset()) {
					c.stop(endReset)
					continue
				}
				if idle > 0 && !c.halt.Load() {
					if at := now.Sub(p.started); c.active.Swap(false) {
						c.lastActive = at
					} else if at-c.lastActive >= idle {
						c.stop(endIdle)
						continue
					}
				}
				if c.engine && p.cfg.SendTimeout > 0 && (c.up.stalled(now) || c.down.stalled(now)) {
					c.stop(endSendTimeout)
				}
			}
		}
	}
}

// maxSweep is the longest time between two sweeps: how late, at most, a
// reset of a backed-up connection's source is seen.
const maxSweep = time.Second

// sweepEvery is the sweeper's period: an eighth of the shortest timeout it
// enforces, from 5 ms to maxSweep.
func (p *Proxy) sweepEvery() time.Duration {
	every := p.cfg.IdleTimeout
	if p.recvEngine && p.cfg.SendTimeout > 0 && (every == 0 || p.cfg.SendTimeout < every) {
		every = p.cfg.SendTimeout
	}
	if every == 0 {
		return maxSweep
	}
	return min(max(every/8, 5*time.Millisecond), maxSweep)
}
