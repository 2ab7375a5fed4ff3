package loadgen

import (
	"bytes"
	"errors"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a status writer tests can read while Run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func quick(mod func(*Config)) Config {
	c := DefaultConfig()
	c.Conns = 3
	c.Duration = 300 * time.Millisecond
	c.Interval = 0
	if mod != nil {
		mod(&c)
	}
	return c
}

func mustRun(t *testing.T, cfg Config) *Report {
	t.Helper()
	var status syncBuffer
	rep, err := Run(cfg, nil, &status)
	if err != nil {
		t.Fatalf("Run: %v\nstatus:\n%s", err, status.String())
	}
	return rep
}

// checkClean checks a run that should have gone well against its
// embedded sink.
func checkClean(t *testing.T, rep *Report) {
	t.Helper()
	if rep.Messages == 0 || rep.Errors != 0 || rep.ConnsFailed != 0 || len(rep.ErrorsByKind) != 0 {
		t.Errorf("messages %d, errors %d %v, failed connections %d %v", rep.Messages, rep.Errors, rep.ErrorsByKind, rep.ConnsFailed, rep.ConnErrors)
	}
	if rep.Bytes != rep.Messages*uint64(rep.Size) {
		t.Errorf("bytes %d != %d messages × %d", rep.Bytes, rep.Messages, rep.Size)
	}
	if rep.Sink == nil {
		t.Fatal("no sink report")
	}
	if rep.Sink.Bytes != rep.Bytes {
		t.Errorf("sink received %d bytes, the run counted %d", rep.Sink.Bytes, rep.Bytes)
	}
	if rep.Verify && (rep.Sink.VerifyErrors() != 0 || rep.Sink.Verified != rep.Messages) {
		t.Errorf("sink verified %d of %d messages; %+v", rep.Sink.Verified, rep.Messages, *rep.Sink)
	}
	if rep.Latency.P50 <= 0 || rep.Latency.P50 > rep.Latency.P99 || rep.Latency.P99 > rep.Latency.Max {
		t.Errorf("latency %+v", rep.Latency)
	}
	if rep.SyncRatio < 0 || rep.SyncRatio > 1 || rep.MessagesPerSecond <= 0 || rep.BitsPerSecond <= 0 {
		t.Errorf("sync ratio %v, %v msg/s, %v bit/s", rep.SyncRatio, rep.MessagesPerSecond, rep.BitsPerSecond)
	}
}

func TestRunEmbeddedSink(t *testing.T) {
	for _, b := range []Backend{BackendIOURing, BackendEpoll} {
		for _, tc := range []struct {
			name string
			mod  func(*Config)
		}{
			{"closed", nil},
			{"closed-inflight1", func(c *Config) { c.Inflight = 1 }},
			{"closed-verify", func(c *Config) { c.Verify = true; c.Size = 100 }},
			{"bufferlist-verify", func(c *Config) { c.Verify = true; c.Mode = ModeBufferList; c.Segments = 5; c.Size = 4 << 10 }},
			{"large", func(c *Config) { c.Size = 256 << 10; c.Conns = 2 }},
			{"open", func(c *Config) { c.Rate = 20000 }},
			{"open-verify-bufferlist", func(c *Config) { c.Rate = 20000; c.Verify = true; c.Mode = ModeBufferList }},
		} {
			t.Run(string(b)+"/"+tc.name, func(t *testing.T) {
				cfg := quick(tc.mod)
				cfg.Backend = b
				rep := mustRun(t, cfg)
				checkClean(t, rep)
				if rep.Backend != string(b) {
					t.Errorf("backend %q, want %q", rep.Backend, b)
				}
				if cfg.Rate > 0 {
					// Never ahead of the schedule. How far behind it a
					// loaded machine leaves the loop is a benchmark's
					// question, not a test's: under make test's parallel
					// packages with -race it fell to 0.4× here.
					want := float64(cfg.Rate) * rep.SendSeconds
					if got := float64(rep.Messages); got == 0 || got > 1.1*want {
						t.Errorf("open loop at %v for %.2fs: %v messages", cfg.Rate, rep.SendSeconds, got)
					}
				}
			})
		}
	}
}

func TestRunMessages(t *testing.T) {
	for _, rate := range []Rate{0, 50000} {
		cfg := quick(func(c *Config) { c.Duration = 0; c.Messages = 5000; c.Size = 200; c.Verify = true; c.Rate = rate })
		rep := mustRun(t, cfg)
		checkClean(t, rep)
		if rep.Messages != 5000 || rep.Sink.Bytes != 5000*200 {
			t.Errorf("rate %v: %d messages, sink %d bytes; want exactly 5000 and 1000000", rate, rep.Messages, rep.Sink.Bytes)
		}
	}
}

func TestRunStatusLines(t *testing.T) {
	var status syncBuffer
	// A line every 100 ms for 1.05 s: about 10. A ticker drops ticks while
	// the process is starved (the whole suite runs at once on 2 CPUs), so
	// the lower bound is loose.
	cfg := quick(func(c *Config) { c.Interval = 100 * time.Millisecond; c.Duration = 1050 * time.Millisecond })
	if _, err := Run(cfg, nil, &status); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(status.String(), "\n") {
		if strings.Contains(l, "msg/s") {
			lines = append(lines, l)
		}
	}
	if len(lines) < 3 || len(lines) > 11 {
		t.Errorf("%d status lines, want about 10:\n%s", len(lines), status.String())
	}
	if strings.Contains(status.String(), "\r") {
		t.Error("status redrawn with \\r on a non-terminal")
	}
	for _, want := range []string{"/1.05s", "Gbit/s", "p99 ", "errors 0", "conns 3/3"} {
		if len(lines) > 0 && !strings.Contains(lines[0], want) && !strings.Contains(lines[0], strings.Replace(want, "Gbit", "Mbit", 1)) {
			t.Errorf("status line %q lacks %q", lines[0], want)
		}
	}
}

func TestRunSignal(t *testing.T) {
	sig := make(chan os.Signal, 2)
	cfg := quick(func(c *Config) { c.Duration = time.Minute })
	time.AfterFunc(300*time.Millisecond, func() { sig <- os.Interrupt })
	start := time.Now()
	rep, err := Run(cfg, sig, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v after the signal", d)
	}
	if !rep.Interrupted || rep.SendSeconds > 5 {
		t.Errorf("interrupted %v after %.2fs", rep.Interrupted, rep.SendSeconds)
	}
	checkClean(t, rep)
}

// A second signal while the run drains returns at once. The target
// accepts but never reads, so large sends stay in flight.
func TestRunSecondSignal(t *testing.T) {
	ln := blackhole(t)
	sig := make(chan os.Signal, 2)
	cfg := quick(func(c *Config) {
		c.Target = Target{"tcp", ln.Addr().String()}
		c.Size = 1 << 20
		c.Conns = 1
		c.Duration = time.Minute
		c.DrainTimeout = time.Minute
	})
	go func() {
		time.Sleep(300 * time.Millisecond)
		sig <- os.Interrupt
		time.Sleep(300 * time.Millisecond)
		sig <- os.Interrupt
	}()
	start := time.Now()
	rep, err := Run(cfg, sig, io.Discard)
	if !errors.Is(err, ErrInterrupted) || rep != nil {
		t.Fatalf("Run = %v, %v; want ErrInterrupted", rep, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run returned after %v", d)
	}
	time.Sleep(200 * time.Millisecond) // let the background cleanup finish before goleak looks
}

// A drain that times out aborts what is in flight: counted as aborted,
// not as errors.
func TestRunDrainTimeout(t *testing.T) {
	ln := blackhole(t)
	cfg := quick(func(c *Config) {
		c.Target = Target{"tcp", ln.Addr().String()}
		c.Size = 1 << 20
		c.Conns = 2
		c.Duration = 200 * time.Millisecond
		c.DrainTimeout = 200 * time.Millisecond
	})
	rep := mustRun(t, cfg)
	if rep.Aborted == 0 || rep.Errors != 0 || rep.ConnsFailed != 0 {
		t.Errorf("aborted %d, errors %d %v, failed %d", rep.Aborted, rep.Errors, rep.ErrorsByKind, rep.ConnsFailed)
	}
	if rep.DurationSeconds > 2 {
		t.Errorf("took %.2fs", rep.DurationSeconds)
	}
}

// blackhole listens on loopback, accepts connections and never reads.
func blackhole(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetReadBuffer(4096)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln
}

// A connection reset mid-run is counted and reported; the others go on.
func TestRunConnectionDies(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	accepted := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted++
			victim := accepted == 2
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 64<<10)
				if victim {
					io.ReadFull(c, buf[:1000])
					time.Sleep(100 * time.Millisecond)
					c.(*net.TCPConn).SetLinger(0) // close with RST
					return
				}
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	defer wg.Wait()
	defer ln.Close()

	cfg := quick(func(c *Config) {
		c.Target = Target{"tcp", ln.Addr().String()}
		c.Conns = 4
		c.Duration = 800 * time.Millisecond
	})
	rep := mustRun(t, cfg)
	if rep.ConnsFailed != 1 || len(rep.ConnErrors) != 1 {
		t.Fatalf("failed connections %d %v, want 1", rep.ConnsFailed, rep.ConnErrors)
	}
	if rep.Errors == 0 || len(rep.ErrorsByKind) == 0 {
		t.Errorf("errors %d %v: the reset is not counted", rep.Errors, rep.ErrorsByKind)
	}
	if rep.Messages == 0 || rep.SendSeconds < 0.7 {
		t.Errorf("%d messages in %.2fs: the run did not go on", rep.Messages, rep.SendSeconds)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "failed:      1 of 4 connections") {
		t.Errorf("report does not name the failure:\n%s", text.String())
	}
	t.Logf("%v %v", rep.ErrorsByKind, rep.ConnErrors)
}

func TestRunUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Run(quick(func(c *Config) { c.Target = Target{"tcp", addr} }), nil, io.Discard)
	var de *DialError
	if !errors.As(err, &de) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Run = %v, want a DialError wrapping ECONNREFUSED", err)
	}
	if !strings.Contains(err.Error(), "cannot connect to tcp://"+addr) {
		t.Errorf("error %q", err)
	}

	_, err = Run(quick(func(c *Config) { c.Target = Target{"unix", filepath.Join(t.TempDir(), "none.sock")} }), nil, io.Discard)
	if !errors.As(err, &de) {
		t.Fatalf("unix: Run = %v, want a DialError", err)
	}
	if _, err := Run(Config{}, nil, nil); !IsConfigError(err) {
		t.Errorf("zero Config: %v, want a ConfigError", err)
	}
}

func TestRunExternalSinks(t *testing.T) {
	for _, network := range []string{"tcp", "udp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "sink.sock")
			}
			sink, err := StartSink(SinkConfig{Listen: Target{network, addr}, Verify: true})
			if err != nil {
				t.Fatal(err)
			}
			cfg := quick(func(c *Config) { c.Target = sink.Addr(); c.Verify = true; c.Mode = ModeBufferList })
			if network == "udp" {
				cfg.Rate = 10000 // loopback UDP drops what a closed loop would pour in
			}
			rep := mustRun(t, cfg)
			srep := sink.Close(2 * time.Second)
			if rep.Messages == 0 || rep.Errors != 0 || rep.Sink != nil {
				t.Errorf("run: %d messages, %d errors %v", rep.Messages, rep.Errors, rep.ErrorsByKind)
			}
			if srep.VerifyErrors() != 0 || srep.Conns != 3 {
				t.Errorf("sink: %+v", srep)
			}
			if network != "udp" && (srep.Bytes != rep.Bytes || srep.Messages != rep.Messages || srep.Verified != rep.Messages) {
				t.Errorf("sink received %d bytes, %d messages (%d verified); the run sent %d, %d", srep.Bytes, srep.Messages, srep.Verified, rep.Bytes, rep.Messages)
			}
			if network == "udp" && (srep.Messages > rep.Messages || srep.Messages+srep.Lost < rep.Messages*9/10) {
				t.Errorf("udp sink: %d messages, %d lost; the run sent %d", srep.Messages, srep.Lost, rep.Messages)
			}
		})
	}
}

func TestRunMetrics(t *testing.T) {
	var status syncBuffer
	cfg := quick(func(c *Config) { c.MetricsAddr = "127.0.0.1:0"; c.Duration = 3 * time.Second })
	sig := make(chan os.Signal, 1)
	type result struct {
		rep *Report
		err error
	}
	res := make(chan result, 1)
	go func() {
		rep, err := Run(cfg, sig, &status)
		res <- result{rep, err}
	}()
	var url string
	for deadline := time.Now().Add(5 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		s := status.String()
		if i := strings.Index(s, "metrics at "); i >= 0 && strings.Contains(s[i:], "\n") {
			url = strings.TrimSpace(s[i+len("metrics at ") : i+strings.Index(s[i:], "\n")])
		}
	}
	if url == "" {
		sig <- os.Interrupt
		<-res
		t.Fatalf("no metrics URL in status:\n%s", status.String())
	}
	time.Sleep(200 * time.Millisecond)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	var body []byte
	if err == nil {
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	sig <- os.Interrupt
	r := <-res
	if err != nil {
		t.Fatal(err)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, want := range []string{nameMessages, nameBytes, nameSync, nameInflight, `uringsend_loadgen_connections{state="open"} 3`, "go_goroutines", "process_open_fds",
		nameLatency + `_bucket{le="1e-06"}`, "uringsend_ring_enter_calls_total"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if r.rep.MetricsURL != url {
		t.Errorf("report metrics_url %q, want %q", r.rep.MetricsURL, url)
	}
}

func TestRunCollectorLint(t *testing.T) {
	r := &runner{st: newStats(2), pos: make([]atomic.Pointer[conn], 2)}
	r.st.shard(0).record(0, 64, 1000, true, false, false)
	r.st.shard(1).record(10054, 0, 0, false, false, false)
	problems, err := testutil.CollectAndLint(newRunCollector(r))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(newRunCollector(r)); n != 9 {
		t.Errorf("%d metrics, want 9", n)
	}
}

// The latency the report gives is exported as a histogram, bucket for
// bucket.
func TestRunCollectorLatency(t *testing.T) {
	r := &runner{st: newStats(1), pos: make([]atomic.Pointer[conn], 1)}
	// 3 at 2 µs, 2 at 300 µs, 1 at 2 s: merged into the total by collect.
	for _, ns := range []int64{2000, 2000, 2000, 300000, 300000, 2e9} {
		r.st.shard(0).record(0, 64, ns, false, false, false)
	}
	r.st.collect()
	reg := prometheus.NewRegistry()
	reg.MustRegister(newRunCollector(r))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != nameLatency {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 6 {
			t.Errorf("count %d, want 6", h.GetSampleCount())
		}
		for _, b := range h.GetBucket() {
			ub, n := b.GetUpperBound(), b.GetCumulativeCount()
			want := uint64(0)
			switch {
			case ub >= 2:
				want = 6
			case ub >= 300e-6*1.001:
				want = 5
			case ub >= 2e-6*1.001:
				want = 3
			}
			if ub > 300e-6*0.999 && ub < 300e-6*1.001 || ub > 2e-6*0.999 && ub < 2e-6*1.001 {
				continue // too close to call at HdrHistogram's precision
			}
			if n != want {
				t.Errorf("bucket le=%g: %d, want %d", ub, n, want)
			}
		}
		if s := h.GetSampleSum(); s < 2.0006*0.999 || s > 2.0006*1.001 {
			t.Errorf("sum %g, want 2.0006", s)
		}
		return
	}
	t.Fatalf("no %s", nameLatency)
}

// The steady state allocates nothing per message: beyond what a run
// allocates once, the whole run — engine, embedded sink and all —
// allocates far less than once per message.
func TestRunAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("measures a 1 s run")
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"closed", func(c *Config) { c.Conns = 4 }},
		// Three segments: sendop pins each segment, the iovecs and the
		// Args, and runtime.Pinner keeps five pins without allocating.
		{"closed-bufferlist-verify", func(c *Config) { c.Conns = 4; c.Inflight = 8; c.Mode = ModeBufferList; c.Segments = 3; c.Verify = true }},
		{"open", func(c *Config) { c.Conns = 4; c.Rate = 50000 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// What a run allocates once (engine, connections, metrics,
			// report) is the same for a short and a long run; the
			// difference is the steady state's.
			run := func(d time.Duration) (allocs, msgs uint64) {
				cfg := quick(tc.mod)
				cfg.Duration = d
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				rep := mustRun(t, cfg)
				runtime.ReadMemStats(&after)
				return after.Mallocs - before.Mallocs, rep.Messages
			}
			a0, m0 := run(200 * time.Millisecond)
			a1, m1 := run(1200 * time.Millisecond)
			if m1 <= m0 {
				t.Fatalf("%d messages in 1.2 s, %d in 0.2 s", m1, m0)
			}
			perMsg := (float64(a1) - float64(a0)) / float64(m1-m0)
			t.Logf("%d allocations for %d messages, %d for %d: %.4f per message in the steady state", a0, m0, a1, m1, perMsg)
			if perMsg > 0.01 {
				t.Errorf("%.4f allocations per message", perMsg)
			}
		})
	}
}

// The demo's metrics port, if taken, gives way to a free one; any other
// address that is taken is an error.
func TestServeMetricsBusyPort(t *testing.T) {
	if ln, err := net.Listen("tcp", DefaultMetricsAddr); err == nil {
		defer ln.Close()
	} // else someone else holds it, which serves as well
	r := &runner{st: newStats(1)}
	m, err := serveMetrics(DefaultMetricsAddr, prometheus.NewRegistry(), r)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	if !m.moved || strings.Contains(m.url(), ":9464/") || !strings.HasPrefix(m.url(), "http://127.0.0.1:") {
		t.Errorf("moved %v, url %s", m.moved, m.url())
	}
	busy := strings.TrimSuffix(strings.TrimPrefix(m.url(), "http://"), "/metrics")
	if _, err := serveMetrics(busy, prometheus.NewRegistry(), r); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("serving on the busy %s: %v, want EADDRINUSE", busy, err)
	}
}

// rr and -conn-lifetime in the package, on both backends: exact counts
// against the embedded (echo) sink, every goroutine gone afterwards
// (goleak in TestMain).
func TestRunRRAndChurn(t *testing.T) {
	for _, b := range []Backend{BackendIOURing, BackendEpoll} {
		for _, tc := range []struct {
			name string
			mod  func(*Config)
		}{
			{"rr", func(c *Config) { c.RR = true; c.Messages = 3000; c.Duration = 0; c.Size = 1000 }},
			{"rr-open", func(c *Config) { c.RR = true; c.Rate = 5000 }},
			{"rr-churn", func(c *Config) { c.RR = true; c.ConnLifetime = 50 * time.Millisecond }},
			{"closed-churn-verify", func(c *Config) { c.Verify = true; c.ConnLifetime = 50 * time.Millisecond }},
			{"open-churn", func(c *Config) { c.Rate = 20000; c.ConnLifetime = 50 * time.Millisecond }},
		} {
			t.Run(string(b)+"/"+tc.name, func(t *testing.T) {
				cfg := quick(tc.mod)
				cfg.Backend = b
				rep := mustRun(t, cfg)
				checkClean(t, rep)
				if cfg.RR && (rep.Command != "rr" || rep.LatencyKind != "round_trip" || rep.Inflight != 1 || !rep.Sink.Echo) {
					t.Errorf("rr report: %+v", rep)
				}
				if cfg.Messages > 0 && rep.Messages != uint64(cfg.Messages) {
					t.Errorf("%d messages, want %d", rep.Messages, cfg.Messages)
				}
				if cfg.ConnLifetime > 0 && (rep.ConnsReplaced == 0 || rep.Sink.Conns != uint64(int64(cfg.Conns)+rep.ConnsReplaced)) {
					t.Errorf("%d replaced, the sink saw %d connections", rep.ConnsReplaced, rep.Sink.Conns)
				}
			})
		}
	}
}
