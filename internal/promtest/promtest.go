// Package promtest starts a real Prometheus server for tests and queries it
// through its HTTP API, so that a test can prove that what the program
// exposes is scraped and computes the way dashboards and alerts expect.
//
//	srv, _ := metrics.Serve("127.0.0.1:0", reg)
//	p := promtest.Start(t, srv.Addr())
//	v := p.QueryUntil(t, `rate(uringsend_sent_bytes_total[5s])`, promtest.Positive)
//
// It runs the prometheus binary found in PATH (Debian's prometheus package;
// `make deps` installs it) with a temporary configuration and data
// directory, on a free loopback port, scraping every second; t.Cleanup
// stops it. Without the binary the test is skipped, or fails when the
// environment variable CI is "true".
package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ScrapeInterval is how often the servers started by Start scrape.
const ScrapeInterval = time.Second

// Timeout scales d by the environment variable URINGSEND_TIMEOUT_SCALE (a
// float, default 1) for slow machines.
func Timeout(d time.Duration) time.Duration {
	if s, err := strconv.ParseFloat(os.Getenv("URINGSEND_TIMEOUT_SCALE"), 64); err == nil && s > 0 {
		return time.Duration(float64(d) * s)
	}
	return d
}

// Binary returns the path of the executable name. When it is not in PATH
// the test is skipped, or fails when CI=true (CI installs it).
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found in PATH (Debian package prometheus; `make deps` installs it): %v", name, err)
	if IsCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// IsCI reports whether the environment variable CI is "true", where a
// missing binary is a failure rather than a reason to skip.
func IsCI() bool { return os.Getenv("CI") == "true" }

// Prom is a running Prometheus server.
type Prom struct {
	// URL is the server's base URL, "http://127.0.0.1:port".
	URL string
	// Wait bounds how long Query and QueryUntil wait for their condition.
	// Start sets it to Timeout(20s).
	Wait time.Duration

	client *http.Client
	cmd    *exec.Cmd
	out    *SyncBuffer
	exited chan struct{}
}

// Start starts a Prometheus server that scrapes each target every second
// and stops it in t.Cleanup. A target is "host:port" (scraped at /metrics)
// or a URL such as "http://host:port/path". Start returns once the server is
// ready; scraping starts within a second.
func Start(t testing.TB, targets ...string) *Prom {
	t.Helper()
	bin := Binary(t, "prometheus")
	if len(targets) == 0 {
		t.Fatal("promtest.Start: no targets")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	conf, err := config(targets)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := range 3 {
		p, err := start(t, bin, cfg, filepath.Join(dir, fmt.Sprintf("data%d", attempt)))
		if err == nil {
			return p
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("promtest: starting prometheus: %v", lastErr)
	return nil
}

// config returns a Prometheus configuration scraping targets.
func config(targets []string) ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n", ScrapeInterval, ScrapeInterval, ScrapeInterval)
	b.WriteString("scrape_configs:\n")
	for i, tg := range targets {
		scheme, host, path := "http", tg, "/metrics"
		if strings.Contains(tg, "://") {
			u, err := url.Parse(tg)
			if err != nil {
				return nil, fmt.Errorf("promtest: target %q: %v", tg, err)
			}
			scheme, host = u.Scheme, u.Host
			if u.Path != "" {
				path = u.Path
			}
		}
		if _, _, err := net.SplitHostPort(host); err != nil {
			return nil, fmt.Errorf("promtest: target %q: %v", tg, err)
		}
		fmt.Fprintf(&b, "  - job_name: target%d\n    scheme: %s\n    metrics_path: %s\n    static_configs:\n      - targets: [%s]\n",
			i, scheme, strconv.Quote(path), strconv.Quote(host))
	}
	return []byte(b.String()), nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

func start(t testing.TB, bin, cfg, data string) (*Prom, error) {
	t.Helper()
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	out := &SyncBuffer{}
	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+data,
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Prom{
		URL:    "http://" + addr,
		Wait:   Timeout(20 * time.Second),
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}},
		cmd:    cmd,
		out:    out,
		exited: make(chan struct{}),
	}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(Timeout(15 * time.Second)); err != nil {
		p.stop()
		return nil, fmt.Errorf("%v; output:\n%s", err, out.String())
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.out.String())
		}
	})
	return p, nil
}

func (p *Prom) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("prometheus exited: %v", p.cmd.ProcessState)
		default:
		}
		resp, err := p.client.Get(p.URL + "/-/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prometheus not ready at %s after %v (last error: %v)", p.URL, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop terminates the server (SIGTERM, then SIGKILL after 5 s) and waits
// for it to exit.
func (p *Prom) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(Timeout(5 * time.Second)):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.client.CloseIdleConnections()
}

// Sample is one element of a query result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Instant evaluates expr now through /api/v1/query and returns the samples
// of the resulting vector (one sample without labels for a scalar).
func (p *Prom) Instant(ctx context.Context, expr string) ([]Sample, error) {
	status, body, err := p.get(ctx, "/api/v1/query?"+url.Values{"query": {expr}}.Encode())
	if err != nil {
		return nil, err
	}
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %q: HTTP %d: %v: %.200s", expr, status, err, body)
	}
	if r.Status != "success" {
		return nil, &QueryError{Expr: expr, Type: r.ErrorType, Msg: r.Error}
	}
	switch r.Data.ResultType {
	case "scalar":
		var v [2]json.RawMessage
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return nil, err
		}
		f, err := parseValue(v[1])
		if err != nil {
			return nil, err
		}
		return []Sample{{Value: f}}, nil
	case "vector":
		var vs []struct {
			Metric map[string]string  `json:"metric"`
			Value  [2]json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &vs); err != nil {
			return nil, err
		}
		out := make([]Sample, 0, len(vs))
		for _, s := range vs {
			f, err := parseValue(s.Value[1])
			if err != nil {
				return nil, err
			}
			out = append(out, Sample{Labels: s.Metric, Value: f})
		}
		return out, nil
	default:
		return nil, fmt.Errorf("query %q: result type %q, want vector or scalar", expr, r.Data.ResultType)
	}
}

// QueryError is an error reported by Prometheus for a query (a bad
// expression, typically). Query and QueryUntil fail at once on it.
type QueryError struct {
	Expr, Type, Msg string
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("query %q: %s: %s", e.Expr, e.Type, e.Msg)
}

func parseValue(raw json.RawMessage) (float64, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, err
	}
	return strconv.ParseFloat(s, 64) // accepts "NaN", "+Inf", "-Inf"
}

// Positive reports whether v > 0; a condition for QueryUntil.
func Positive(v float64) bool { return v > 0 }

// Number reports whether v is a number (not NaN, not infinite); the
// condition of Query.
func Number(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Query evaluates expr repeatedly until it yields exactly one sample whose
// value is a number, and returns that value. It fails t when p.Wait passes
// first, with the last result, or at once when Prometheus rejects expr.
func (p *Prom) Query(t testing.TB, expr string) float64 {
	t.Helper()
	return p.QueryUntil(t, expr, Number)
}

// QueryUntil evaluates expr repeatedly until it yields exactly one sample
// whose value satisfies cond, and returns that value. It fails t when
// p.Wait passes first, with the last result, or at once when Prometheus
// rejects expr.
func (p *Prom) QueryUntil(t testing.TB, expr string, cond func(float64) bool) float64 {
	t.Helper()
	return within(t, p.Wait, func(ctx context.Context) (float64, error) { return p.PollUntil(ctx, expr, cond) })
}

// PollUntil is QueryUntil without a testing.TB: it returns an error instead
// of failing, when ctx is done first or Prometheus rejects expr.
func (p *Prom) PollUntil(ctx context.Context, expr string, cond func(float64) bool) (float64, error) {
	s, err := p.PollSamples(ctx, expr, func(s []Sample) bool { return len(s) == 1 && cond(s[0].Value) })
	if err != nil {
		return 0, err
	}
	return s[0].Value, nil
}

// QuerySamples evaluates expr repeatedly until its samples satisfy cond
// (for example, at least one sample, each a Number), and returns them. It
// fails t when p.Wait passes first, or at once when Prometheus rejects expr.
func (p *Prom) QuerySamples(t testing.TB, expr string, cond func([]Sample) bool) []Sample {
	t.Helper()
	return within(t, p.Wait, func(ctx context.Context) ([]Sample, error) { return p.PollSamples(ctx, expr, cond) })
}

// within runs poll with a context that ends after d, and fails t with its
// error.
func within[T any](t testing.TB, d time.Duration, poll func(context.Context) (T, error)) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	v, err := poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// AllNumbers reports whether there is at least one sample and every value
// is a Number; a condition for QuerySamples.
func AllNumbers(s []Sample) bool {
	for _, x := range s {
		if !Number(x.Value) {
			return false
		}
	}
	return len(s) > 0
}

// PollSamples evaluates expr every quarter of a scrape interval until its
// samples satisfy cond, and returns them. It returns an error when ctx is
// done first (naming the last result) or at once when Prometheus rejects
// expr (a *QueryError).
func (p *Prom) PollSamples(ctx context.Context, expr string, cond func([]Sample) bool) ([]Sample, error) {
	tick := time.NewTicker(ScrapeInterval / 4)
	defer tick.Stop()
	last := "no query made"
	for {
		s, err := p.Instant(ctx, expr)
		var qe *QueryError
		switch {
		case errors.As(err, &qe):
			return nil, err
		case err != nil && ctx.Err() != nil:
			// Cut short by ctx: keep the last complete result.
		case err != nil:
			last = err.Error()
		case !cond(s):
			last = fmt.Sprintf("%d samples: %v", len(s), s)
		default:
			return s, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("query %q: prometheus exited; last result: %s; output:\n%s", expr, last, p.out.String())
		case <-ctx.Done():
			return nil, fmt.Errorf("query %q: no satisfying result (%v); last result: %s", expr, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// Targets returns the health of the scrape targets as Prometheus reports
// them ("up", "down", "unknown") with their last error, keyed by scrape URL;
// useful in failure messages.
func (p *Prom) Targets(ctx context.Context) (map[string]string, error) {
	_, body, err := p.get(ctx, "/api/v1/targets")
	if err != nil {
		return nil, err
	}
	var r struct {
		Data struct {
			ActiveTargets []struct {
				ScrapeURL string `json:"scrapeUrl"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	m := make(map[string]string)
	for _, a := range r.Data.ActiveTargets {
		h := a.Health
		if a.LastError != "" {
			h += ": " + a.LastError
		}
		m[a.ScrapeURL] = h
	}
	return m, nil
}

// get sends a GET of path (with its query) to the server and returns the
// response's status code and body.
func (p *Prom) get(ctx context.Context, path string) (status int, body []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// SyncBuffer is a bytes.Buffer safe for one writer goroutine (exec's
// copier of a child's output) and readers: the server's output here, a
// child process's stderr in tests.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
