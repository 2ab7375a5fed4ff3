package promtest_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uringsend/uringsend/internal/promtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// target serves a registry with one counter, incremented every 10 ms, on a
// free loopback port at path.
func target(t *testing.T, path string) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "promtest_ticks_total", Help: "Ticks."})
	reg.MustRegister(c)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(path, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	stop := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				c.Inc()
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-ticked
		_ = srv.Close()
		<-served
	})
	return ln.Addr().String()
}

func TestStartAndQuery(t *testing.T) {
	plain := target(t, "/metrics")
	other := target(t, "/custom")
	p := promtest.Start(t, plain, "http://"+other+"/custom")

	if v := p.QueryUntil(t, `sum(up)`, func(v float64) bool { return v == 2 }); v != 2 {
		t.Errorf("sum(up) = %v, want 2 targets up", v)
	}
	if v := p.QueryUntil(t, `sum(rate(promtest_ticks_total[3s]))`, promtest.Positive); v <= 0 || v > 1000 {
		t.Errorf("rate = %v, want about 200/s", v)
	}
	if v := p.Query(t, `scalar(sum(up))`); v != 2 {
		t.Errorf("scalar(sum(up)) = %v, want 2", v)
	}
	ctx := context.Background()
	s, err := p.Instant(ctx, `up`)
	if err != nil || len(s) != 2 {
		t.Errorf("Instant(up) = %v, %v; want 2 samples", s, err)
	}
	var qe *promtest.QueryError
	if _, err := p.Instant(ctx, `sum(`); !errors.As(err, &qe) {
		t.Errorf("bad expression: %v, want a *QueryError", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := p.PollUntil(pctx, `absent_metric_name`, promtest.Number); err == nil || !strings.Contains(err.Error(), "0 samples") {
		t.Errorf("PollUntil of an absent series: %v, want a timeout naming the last result", err)
	}
	targets, err := p.Targets(ctx)
	if err != nil || len(targets) != 2 || targets["http://"+other+"/custom"] != "up" {
		t.Errorf("Targets = %v, %v", targets, err)
	}
}

func TestTimeout(t *testing.T) {
	t.Setenv("URINGSEND_TIMEOUT_SCALE", "2.5")
	if d := promtest.Timeout(time.Second); d != 2500*time.Millisecond {
		t.Errorf("Timeout(1s) with scale 2.5 = %v", d)
	}
	t.Setenv("URINGSEND_TIMEOUT_SCALE", "bogus")
	if d := promtest.Timeout(time.Second); d != time.Second {
		t.Errorf("Timeout(1s) with a bad scale = %v", d)
	}
}

func TestBinaryMissing(t *testing.T) {
	if promtest.IsCI() {
		t.Skip("under CI=true a missing binary fails the test, by design")
	}
	t.Setenv("PATH", t.TempDir())
	skipped := true
	t.Run("lookup", func(t *testing.T) {
		promtest.Binary(t, "prometheus")
		skipped = false
	})
	if !skipped {
		t.Error("Binary did not skip without the binary in PATH")
	}
}
