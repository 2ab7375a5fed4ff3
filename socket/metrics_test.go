//go:build linux

package socket

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/uringsend/uringsend/internal/promtest"
	"github.com/uringsend/uringsend/metrics"
	"github.com/uringsend/uringsend/sendop"
)

// drainPeer accepts connections on a fresh loopback listener and discards
// what they send, until the test ends.
func drainPeer(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	return l.Addr().String()
}

// The engine feeds the collectors exactly: one send per SendAsync, the
// bytes of successful sends, in-flight back to 0, ring counters, info.
func TestEngineMetricsExact(t *testing.T) {
	for _, be := range []string{BackendIOURing, BackendEpoll} {
		t.Run(be, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			m, err := metrics.New(reg, metrics.Options{})
			if err != nil {
				t.Fatal(err)
			}
			eng, err := NewEngine(EngineConfig{Backend: be, Metrics: m})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			s, err := Dial("tcp", drainPeer(t), WithEngine(eng))
			if err != nil {
				t.Fatal(err)
			}
			const N, size = 3000, 1000
			var wg sync.WaitGroup
			args := make([]sendop.Args, N)
			for i := range args {
				args[i].SetBuffer(make([]byte, size))
				wg.Add(1)
				args[i].Completed = func(*sendop.Args) { wg.Done() }
				pending, err := s.SendAsync(&args[i])
				if err != nil {
					t.Fatal(err)
				}
				if !pending {
					wg.Done()
				}
			}
			wg.Wait()
			if sends := gather(t, reg, "uringsend_sends_total", "result", "Success"); sends != N {
				t.Fatalf("uringsend_sends_total = %v, want %d", sends, N)
			}
			if got := gather(t, reg, "uringsend_sent_bytes_total"); got != N*size {
				t.Fatalf("uringsend_sent_bytes_total = %v, want %d", got, N*size)
			}
			if got := gather(t, reg, "uringsend_inflight_sends"); got != 0 {
				t.Fatalf("uringsend_inflight_sends = %v after all completed", got)
			}
			if be == BackendIOURing && gather(t, reg, "uringsend_ring_enter_calls_total") < 1 {
				t.Fatal("no io_uring_enter counted")
			}
			if n, err := testutil.GatherAndCount(reg, "uringsend_engine_info"); err != nil || n != 1 {
				t.Fatalf("engine_info series %d, %v", n, err)
			}
			if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
				t.Fatalf("lint: %v %v", problems, err)
			}
			s.Close()
		})
	}
}

// gather sums the series of name whose labels include kv (name, value
// pairs): counters and gauges.
func gather(t *testing.T, g prometheus.Gatherer, name string, kv ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(kv); i += 2 {
				if labels[kv[i]] != kv[i+1] {
					continue series
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// A real Prometheus scrapes a live engine under load: the byte rate is
// positive and a latency quantile is computable.
func TestEngineMetricsScrapedByPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Prometheus server")
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := metrics.Serve("127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	eng, err := NewEngine(EngineConfig{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	s, err := Dial("tcp", drainPeer(t), WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop := make(chan struct{})
	loaded := make(chan struct{})
	go func() { // load until the queries are answered
		defer close(loaded)
		var e sendop.Args
		e.SetBuffer(make([]byte, 512))
		done := make(chan struct{}, 1)
		e.Completed = func(*sendop.Args) { done <- struct{}{} }
		for {
			select {
			case <-stop:
				return
			default:
			}
			if pending, err := s.SendAsync(&e); err != nil {
				return
			} else if pending {
				<-done
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	defer func() { close(stop); <-loaded }()
	p := promtest.Start(t, srv.Addr())
	if v := p.QueryUntil(t, `rate(uringsend_sent_bytes_total[5s])`, promtest.Positive); v <= 0 {
		t.Fatalf("byte rate %v", v)
	}
	q := p.Query(t, `histogram_quantile(0.99, sum by (le) (rate(uringsend_send_duration_seconds_bucket[5s])))`)
	if q <= 0 || q > 10 {
		t.Fatalf("p99 latency %v s", q)
	}
	info := p.Query(t, `count(uringsend_engine_info{backend="io_uring"})`)
	if info != 1 {
		t.Fatalf("engine_info: %v", info)
	}
	t.Logf("p99 %.1f µs", q*1e6)
}

// BenchmarkMetricsOverhead runs the batching pipeline and the sync path
// with and without metrics in one run: the cost of metrics is the ratio.
func BenchmarkMetricsOverhead(b *testing.B) {
	withMetrics := func(b *testing.B) *metrics.Metrics {
		m, err := metrics.New(prometheus.NewRegistry(), metrics.Options{})
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	for _, mode := range []string{"pipeline", "sync"} {
		for _, on := range []bool{false, true} {
			name := mode + "/metrics=off"
			if on {
				name = mode + "/metrics=on"
			}
			b.Run(name, func(b *testing.B) {
				cfg := EngineConfig{Backend: BackendIOURing}
				if on {
					cfg.Metrics = withMetrics(b)
				}
				if mode == "pipeline" {
					benchPipelineCfg(b, cfg, 64, 1024, WithBatching())
				} else {
					benchSyncCfg(b, cfg, 64)
				}
			})
		}
	}
}
