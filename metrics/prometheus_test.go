package metrics

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uringsend/uringsend/internal/promtest"
)

// feed observes sends and ring activity continuously, the way a loaded
// engine would, until the test ends.
func feed(t *testing.T, m *Metrics) {
	var enters, sqes atomic.Uint64
	remove := m.AddRingSource(func() RingStats {
		n := sqes.Load()
		return RingStats{Enters: enters.Load(), Submitted: n, Reaped: n}
	})
	m.SetEngineInfo("io_uring", "test")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; ctx.Err() == nil; i++ {
			m.InflightAdd(1)
			isSync := i%4 != 0
			seconds := 5e-6 * (1 + rng.Float64()*400) // 5 µs .. 2 ms
			result := "Success"
			if i%100 == 99 {
				result = "ConnectionReset"
			}
			m.ObserveSend(isSync, result, 1500, seconds)
			m.InflightAdd(-1)
			sqes.Add(1)
			if i%8 == 0 {
				enters.Add(1)
				m.ObserveReaperBatch(8)
			}
			if i%1000 == 999 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		remove()
	})
}

// TestRealPrometheus lets a real Prometheus server scrape Serve while sends
// are observed, and checks through its query API that the expressions of
// the dashboard compute.
func TestRealPrometheus(t *testing.T) {
	start := time.Now()
	m, reg := newMetrics(t, Options{})
	s := serve(t, reg)
	feed(t, m)
	p := promtest.Start(t, s.Addr())

	rate := p.QueryUntil(t, `rate(uringsend_sent_bytes_total[5s])`, promtest.Positive)
	p99 := p.Query(t, `histogram_quantile(0.99, sum by (le) (rate(uringsend_send_duration_seconds_bucket[5s])))`)
	if p99 <= 0 || p99 > 10 {
		t.Errorf("p99 latency %v s, want within (0, 10]", p99)
	}
	t.Logf("after %v: sent %.0f B/s, p99 %.3g s", time.Since(start).Round(time.Millisecond), rate, p99)

	// The dashboard's other expressions compute too.
	for _, c := range []struct {
		expr   string
		lo, hi float64
	}{
		{`sum(rate(uringsend_sends_total[5s]))`, 1, 1e9},
		{`sum(rate(uringsend_sends_total{completion="sync"}[5s])) / sum(rate(uringsend_sends_total[5s]))`, 0.6, 0.9},
		{`sum(rate(uringsend_ring_enter_calls_total[5s])) / sum(rate(uringsend_sends_total[5s]))`, 0.05, 0.2},
		{`histogram_quantile(0.5, sum by (le) (rate(uringsend_send_duration_seconds_bucket[5s])))`, 1e-6, 10},
		{`sum(uringsend_engine_info{backend="io_uring"})`, 1, 1},
		{`sum(uringsend_inflight_sends)`, 0, 1},
	} {
		v := p.Query(t, c.expr)
		if v < c.lo || v > c.hi {
			t.Errorf("%s = %v, want within [%v, %v]", c.expr, v, c.lo, c.hi)
		}
	}
	// So do all the expressions of the Grafana dashboard.
	for _, expr := range dashboardExprs(t) {
		p.QuerySamples(t, expr, promtest.AllNumbers)
	}

	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v, want < 30 s", d)
	}
	t.Logf("real Prometheus test: %v", time.Since(start).Round(time.Millisecond))
}

// dashboardFile is the Grafana dashboard built on these metrics.
const dashboardFile = "../docker/grafana/uringsend-dashboard.json"

// dashboardExprs returns the PromQL expressions of the dashboard's panels,
// with Grafana's variables replaced for a 1 s scrape interval.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	r := strings.NewReplacer("$__rate_interval", "5s", "$instance", ".*")
	var exprs []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("%s: panel %q has a target without expr", dashboardFile, p.Title)
				continue
			}
			exprs = append(exprs, r.Replace(tg.Expr))
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("%s: only %d expressions", dashboardFile, len(exprs))
	}
	return exprs
}
