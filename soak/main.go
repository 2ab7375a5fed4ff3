//go:build linux

// Command soak runs uringsend under load and faults for a while and then
// checks that nothing was lost, nothing happened twice and nothing leaked.
//
//	go run ./soak -duration 60s
//
// Workers open stream connections (TCP and unix, on the io_uring and the
// epoll backend, some batching, some made by Listener.Accept or FromConn,
// some on short-lived engines with tiny rings), send random shapes
// (Buffers and BufferLists, some past IOV_MAX) with a bounded window of
// reused Args or as chains that resend from Completed, and inject faults:
// the peer resets the connection or closes it, stalls (zero window) or
// reads slowly; the socket is closed mid-flight from another goroutine,
// from a Completed handler or by the sender; a short-lived engine is
// closed under its sockets.
//
// A quarter of the connections send UDP datagrams instead (udp.go): IPv4
// and IPv6, mostly batching, in runs of equal lengths broken by shorter,
// empty, oversized and BufferList datagrams, so that the engine's UDP GSO
// wires start and end; a receiver of their own checks each datagram's
// length, content and order, and what it got plus what its socket
// dropped must be exactly the sends that reported Success. Another
// quarter are relays and echoes whose data path is the engine's
// (relay.go): ReceiveAsync, then SendAsync of what came, then the next
// receive, from Completed handlers; the source and the far end fault as
// the peers above, and the bytes received and delivered are compared with
// the source's by SHA-256. Half of them receive with ReceiveChunks
// instead (chunks.go: kinds relay-chunks and echo-chunks): each chunk of
// the engine's receive pool is sent on as it is and released when its send
// has completed (from Completed, or later from a goroutine of the
// relay's), with chunk limits from 1 to 64, on the shared engines' default
// pools, on a long-lived engine per backend whose pool is 8 buffers of
// 2 KiB shared by every relay on it, or on engines of their own with pools
// of 2 to 16 buffers of 512 B to 4 KiB, so that streams park on an empty
// pool (ENOBUFS) and resume; the same faults, the same checks, and: one
// last call with io.EOF, ErrClosed or the reset the fault explains; every
// chunk delivered is released exactly once, none is delivered again while
// held, none after the last call, none larger than a buffer; a held
// chunk's bytes do not change; no engine's relays hold more chunks than its
// pool has buffers.
//
// Every connection is checked when it ends: each accepted send completed
// exactly once (a synchronous result or one Completed), with Success or
// an error the injected fault explains (its errno agreeing), with no bytes
// after a send that stopped short; the peer received exactly the bytes
// reported transferred (or, when it went away itself, a prefix of them),
// compared by SHA-256. At the end: the engines' uringsend_inflight_sends
// gauges are 0, goroutines and descriptors are back to their start, no
// SIGPIPE arrived.
//
// It prints one summary line — connections by kind, sends (ops, bytes),
// receives, chunks (delivered; times the relays of an engine held its
// whole pool, so that the next receive parks on ENOBUFS; times a relay held
// its chunk limit), datagrams (sent, received, dropped by their socket, lost
// otherwise, packets of many datagrams seen by UDP_GRO receivers), faults
// injected, violations —
// and exits with status 1 if there was any violation. Memory is bounded:
// data is cut from one shared random block, windows and connection
// lifetimes are capped.
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uringsend/uringsend/metrics"
	"github.com/uringsend/uringsend/socket"
)

// config is what the flags set.
type config struct {
	duration time.Duration
	workers  int // concurrent connections per backend
	maxSends int // sends per connection, at most
	window   int // sends in flight per connection, at most
	seed     uint64
	verbose  bool
	memprof  string
}

func main() {
	var cfg config
	flag.DurationVar(&cfg.duration, "duration", 60*time.Second, "how long to run")
	flag.IntVar(&cfg.workers, "conns", 8, "concurrent connections per backend")
	flag.IntVar(&cfg.maxSends, "max-sends", 1500, "sends per connection, at most")
	flag.IntVar(&cfg.window, "window", 48, "sends in flight per connection, at most")
	flag.Uint64Var(&cfg.seed, "seed", 0, "random seed (0: from the clock)")
	flag.BoolVar(&cfg.verbose, "v", false, "progress lines and violation details on stderr")
	flag.StringVar(&cfg.memprof, "memprofile", "", "write a heap profile here when the connections are done")
	flag.Parse()
	if cfg.seed == 0 {
		cfg.seed = uint64(time.Now().UnixNano())
	}
	log.SetFlags(0)
	log.SetPrefix("soak: ")
	os.Exit(run(cfg, os.Stdout))
}

// soak is the state of one run.
type soak struct {
	cfg     config
	dir     string // unix socket paths
	engines map[string]*engine
	start   time.Time
	stop    atomic.Bool

	ops, bytes, conns atomic.Int64
	faultMu           sync.Mutex
	faults            map[string]int
	violMu            sync.Mutex
	violations        int
	violByKind        map[string]int
	peakHeap          atomic.Uint64
	kinds             map[string]int // connections by kind

	// Receives (relay.go) and datagrams (udp.go).
	recvs, recvBytes, relayed         atomic.Int64
	dgramsSent, dgramsGot, dgramDrops atomic.Int64
	dgramsLost, gsoPackets            atomic.Int64

	// Stream receives (chunks.go): chunks delivered, times an engine's
	// relays held its whole pool, times a relay held its chunk limit.
	chunks, chunkPoolFull, chunkAtLimit atomic.Int64

	zc zcStats // the zero-copy shape over network namespaces (zerocopy.go)
}

func (s *soak) kind(k string) {
	s.faultMu.Lock()
	s.kinds[k]++
	s.faultMu.Unlock()
}

func (s *soak) logf(format string, args ...any) { log.Printf(format, args...) }

// engine is an engine with metrics on a registry of its own.
type engine struct {
	*socket.Engine
	inflight func() float64
	poolN    int          // buffers in its receive pool (per ring: it has one)
	held     atomic.Int64 // chunks its relays hold (chunks.go)
}

// tinyPool names the long-lived engine of a backend whose receive pool is
// tiny, shared by the chunk relays that choose it (chunks.go).
func tinyPool(be string) string { return be + "+tiny-pool" }

// engineFor returns the engine a connection (who names it in violations)
// runs on, with the function to call when the connection is done: the
// shared engine of backend be, or with ephemeral, one of its own
// (ephemeralEngine); nil if that could not start.
func (s *soak) engineFor(rng *rand.Rand, be string, ephemeral bool, who string) (*engine, func()) {
	if !ephemeral {
		return s.engines[be], func() {}
	}
	return s.ephemeralEngine(rng, be, who, nil)
}

// ephemeralEngine starts a small engine of its own for one connection
// (who names it in violations) and returns it with the function that
// closes it and checks that nothing is left in flight; nil if it could not
// start (a violation is recorded).
// With cfg (may be nil) the connection adjusts the engine's configuration.
func (s *soak) ephemeralEngine(rng *rand.Rand, be, who string, cfg func(*socket.EngineConfig)) (*engine, func()) {
	entries := []uint32{2, 4, 8, 64}[rng.IntN(4)]
	ecfg := socket.EngineConfig{Backend: be, Entries: entries, CQEntries: 2 * entries}
	if cfg != nil {
		cfg(&ecfg)
	}
	eng, err := newEngine(ecfg)
	if err != nil {
		s.violation("setup", "ephemeral engine: %v", err)
		return nil, nil
	}
	return eng, func() {
		if err := eng.Close(); err != nil && !errors.Is(err, socket.ErrClosed) {
			s.violation("close", "%s: ephemeral Engine.Close: %v", who, err)
		}
		if v := eng.inflight(); v != 0 {
			s.violation("inflight", "%s: ephemeral engine: inflight gauge %v after Close", who, v)
		}
	}
}

func newEngine(cfg socket.EngineConfig) (*engine, error) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		return nil, err
	}
	cfg.Metrics = m
	eng, err := socket.NewEngine(cfg)
	if err != nil {
		return nil, err
	}
	if eng.Backend() != cfg.Backend {
		eng.Close()
		return nil, fmt.Errorf("engine %s runs on %s", cfg.Backend, eng.Backend())
	}
	poolN := 1
	for poolN < cmp.Or(cfg.RecvBuffers, 1024) {
		poolN <<= 1 // as the engine rounds it
	}
	return &engine{Engine: eng, inflight: func() float64 { return gauge(reg, metrics.NameInflightSends) }, poolN: poolN}, nil
}

// gauge reads a gauge from reg.
func gauge(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			v := 0.0
			for _, m := range mf.GetMetric() {
				v += m.GetGauge().GetValue()
			}
			return v
		}
	}
	return -1
}

func (s *soak) fault(kind string) {
	s.faultMu.Lock()
	s.faults[kind]++
	s.faultMu.Unlock()
}

func (s *soak) violation(kind, format string, args ...any) {
	s.violMu.Lock()
	s.violations++
	s.violByKind[kind]++
	n := s.violations
	s.violMu.Unlock()
	if n <= 20 || s.cfg.verbose {
		log.Printf("VIOLATION %s: "+format, append([]any{kind}, args...)...)
	}
}

func run(cfg config, out io.Writer) int {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGPIPE)
	var sigpipes atomic.Int64
	sigDone := make(chan struct{})
	go func() {
		for range sigs {
			sigpipes.Add(1)
		}
		close(sigDone)
	}()
	warmUp()
	runtime.GC()
	startG, startFDs := runtime.NumGoroutine(), countFDs()

	s := &soak{cfg: cfg, engines: map[string]*engine{}, faults: map[string]int{}, kinds: map[string]int{}, violByKind: map[string]int{}, start: time.Now()}
	dir, err := os.MkdirTemp("", "soak")
	if err != nil {
		log.Fatal(err)
	}
	s.dir = dir
	for _, be := range []string{socket.BackendIOURing, socket.BackendEpoll} {
		e, err := newEngine(socket.EngineConfig{Backend: be})
		if err != nil {
			log.Fatalf("engine %s: %v", be, err)
		}
		s.engines[be] = e
		t, err := newEngine(socket.EngineConfig{Backend: be, RecvBuffers: 8, RecvBufferSize: 2 << 10})
		if err != nil {
			log.Fatalf("engine %s: %v", tinyPool(be), err)
		}
		s.engines[tinyPool(be)] = t
	}
	// The long-lived engines' receive pools are made on their first
	// ReceiveChunks: before the heap is measured, not by a relay.
	for be, e := range s.engines {
		if err := primePool(e); err != nil {
			log.Fatalf("engine %s: receive pool: %v", be, err)
		}
	}

	startHeap := liveHeap()
	softnet0, rcvbuf0 := softnetDrops(), udpRcvbufErrors()

	stopMon := make(chan struct{})
	monDone := make(chan struct{})
	go s.monitor(stopMon, monDone)

	var wg sync.WaitGroup
	var seq atomic.Uint64
	for _, be := range []string{socket.BackendIOURing, socket.BackendEpoll} {
		for w := range cfg.workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(cfg.seed, uint64(w)<<1|map[string]uint64{socket.BackendIOURing: 0, socket.BackendEpoll: 1}[be]))
				for !s.stop.Load() {
					s.connection(rng, be, seq.Add(1))
				}
			})
		}
	}
	s.startZeroCopy(&wg) // zerocopy.go; skipped (with a note) without root and ip netns
	time.Sleep(cfg.duration)
	s.stop.Store(true)
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2 * time.Minute):
		s.violation("hang", "connections still running 2 minutes after the end")
		buf := make([]byte, 4<<20)
		log.Printf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		fmt.Fprintf(out, "soak: violations=%d (hang)\n", s.violations)
		return 1
	}
	close(stopMon)
	<-monDone
	// Datagrams that no receiving socket got nor counted as dropped can
	// only be the backlog's.
	softnet, rcvbufErrs := softnetDrops()-softnet0, udpRcvbufErrors()-rcvbuf0
	if lost := s.dgramsLost.Load(); lost > softnet {
		s.violation("datagram", "%d datagrams lost without a trace (neither received nor dropped by their socket; %d backlog drops)", lost, softnet)
	}
	if cfg.memprof != "" {
		writeHeapProfile(cfg.memprof)
	}
	// Every connection is closed: what they used must be garbage again.
	endHeap := liveHeap()
	if endHeap > startHeap+heapSlack {
		s.violation("heap", "live heap %.0f MiB after every connection closed, %.0f MiB at the start: closed connections are still referenced",
			float64(endHeap)/(1<<20), float64(startHeap)/(1<<20))
	}

	// The long-lived engines: nothing in flight, then closed.
	for be, e := range s.engines {
		if v := e.inflight(); v != 0 {
			s.violation("inflight", "%s engine: %s = %v with every connection done", be, metrics.NameInflightSends, v)
		}
		if err := e.Close(); err != nil {
			s.violation("close", "%s Engine.Close: %v", be, err)
		}
		if v := e.inflight(); v != 0 {
			s.violation("inflight", "%s engine: %s = %v after Close", be, metrics.NameInflightSends, v)
		}
	}
	os.RemoveAll(dir)

	// Goroutines and descriptors back where they were.
	var endG, endFDs int
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		endG, endFDs = runtime.NumGoroutine(), countFDs()
		if endG <= startG && endFDs <= startFDs || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if endG > startG {
		buf := make([]byte, 1<<20)
		s.violation("goroutines", "%d goroutines at the end, %d at the start\n%s", endG, startG, buf[:runtime.Stack(buf, true)])
	}
	if endFDs > startFDs {
		s.violation("fds", "%d descriptors at the end, %d at the start", endFDs, startFDs)
	}
	signal.Stop(sigs)
	close(sigs)
	<-sigDone
	if n := sigpipes.Load(); n > 0 {
		s.violation("sigpipe", "%d SIGPIPE delivered", n)
	}

	elapsed := time.Since(s.start).Round(time.Second)
	var fk []string
	total := 0
	for k, n := range s.faults {
		fk = append(fk, fmt.Sprintf("%s=%d", k, n))
		total += n
	}
	sort.Strings(fk)
	var kk []string
	for k, n := range s.kinds {
		kk = append(kk, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kk)
	var vk []string
	for k, n := range s.violByKind {
		vk = append(vk, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(vk)
	viol := fmt.Sprint(s.violations)
	if len(vk) > 0 {
		viol += " (" + strings.Join(vk, " ") + ")"
	}
	fmt.Fprintf(out, "soak: %v seed=%d conns=%d (%s) ops=%d bytes=%d (%.1f MiB/s) recvs=%d recv-bytes=%d relayed=%d chunks=%d (pool-full=%d at-limit=%d) dgrams=%d received=%d dropped=%d lost=%d (rcvbuf-errors=%d backlog-drops=%d) gso-packets=%d faults=%d (%s) violations=%s goroutines=%d->%d fds=%d->%d sigpipe=%d live-heap=%.0f->%.0fMiB peak-heap=%.0fMiB %s\n",
		elapsed, cfg.seed, s.conns.Load(), strings.Join(kk, " "), s.ops.Load(), s.bytes.Load(), float64(s.bytes.Load())/elapsed.Seconds()/(1<<20),
		s.recvs.Load(), s.recvBytes.Load(), s.relayed.Load(), s.chunks.Load(), s.chunkPoolFull.Load(), s.chunkAtLimit.Load(),
		s.dgramsSent.Load(), s.dgramsGot.Load(), s.dgramDrops.Load(), s.dgramsLost.Load(), rcvbufErrs, softnet, s.gsoPackets.Load(),
		total, strings.Join(fk, " "), viol, startG, endG, startFDs, endFDs, sigpipes.Load(),
		float64(startHeap)/(1<<20), float64(endHeap)/(1<<20), float64(s.peakHeap.Load())/(1<<20), s.zc.summary())
	if s.violations > 0 {
		return 1
	}
	return 0
}

// monitor samples the heap and, with -v, prints a progress line every 10 s.
func (s *soak) monitor(stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 1; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > s.peakHeap.Load() {
			s.peakHeap.Store(ms.HeapInuse)
		}
		if s.cfg.verbose && i%10 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms) // the live heap, just after a collection
			s.violMu.Lock()
			v := s.violations
			s.violMu.Unlock()
			log.Printf("%v: conns=%d ops=%d bytes=%d violations=%d live-heap=%.0fMiB goroutines=%d",
				time.Since(s.start).Round(time.Second), s.conns.Load(), s.ops.Load(), s.bytes.Load(), v,
				float64(ms.HeapAlloc)/(1<<20), runtime.NumGoroutine())
		}
	}
}

// warmUp makes the runtime open what it keeps open for good (the
// netpoller's descriptors), so that the start counts are steady.
func warmUp() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err == nil {
		if p, err := l.Accept(); err == nil {
			p.Close()
		}
		c.Close()
	}
	l.Close()
	pool()
}

// heapSlack is how much more live heap the end may have than the start
// (metrics series, pools, the runtime's own caches).
const heapSlack = 32 << 20

// liveHeap is the heap in use just after a collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// writeHeapProfile writes the live heap to path.
func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		log.Print(err)
		return
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		log.Print(err)
	}
}

// countFDs counts the process's open descriptors.
func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents) - 1
}
