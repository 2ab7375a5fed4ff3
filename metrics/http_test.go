package metrics

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uringsend/uringsend/internal/promtest"
)

// serve starts Serve on a free loopback port, closed in t.Cleanup.
func serve(t testing.TB, g prometheus.Gatherer) *Server {
	t.Helper()
	s, err := Serve("127.0.0.1:0", g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Server.Close: %v", err)
		}
	})
	return s
}

// scrape GETs url with the given Accept header (none when empty).
func scrape(t testing.TB, url, accept string) (body []byte, contentType string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	return body, resp.Header.Get("Content-Type")
}

func TestServe(t *testing.T) {
	m, reg := newMetrics(t, Options{})
	exercise(m)
	s := serve(t, reg)
	if strings.HasSuffix(s.Addr(), ":0") || !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q, want 127.0.0.1 with the real port", s.Addr())
	}
	if s.URL() != "http://"+s.Addr()+"/metrics" {
		t.Errorf("URL() = %q", s.URL())
	}

	body, ct := scrape(t, s.URL(), "")
	if !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	for _, n := range allNames {
		if !bytes.Contains(body, []byte("# TYPE "+n+" ")) {
			t.Errorf("scrape lacks %s", n)
		}
	}
	if !bytes.Contains(body, []byte(`uringsend_sent_bytes_total 100`)) {
		t.Errorf("scrape lacks the sent bytes:\n%s", body)
	}

	body, ct = scrape(t, s.URL(), "application/openmetrics-text; version=1.0.0")
	if !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("Content-Type %q, want application/openmetrics-text", ct)
	}
	if !bytes.HasSuffix(body, []byte("# EOF\n")) || !bytes.Contains(body, []byte("# TYPE uringsend_sends counter")) {
		t.Errorf("not OpenMetrics:\n%s", body)
	}

	// A second server cannot take the same address.
	if s2, err := Serve(s.Addr(), reg); err == nil {
		_ = s2.Close()
		t.Errorf("Serve on %s, which is taken: no error", s.Addr())
	}
}

func TestServeClose(t *testing.T) {
	_, reg := newMetrics(t, Options{})
	s, err := Serve("127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	scrape(t, s.URL(), "")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	if resp, err := (&http.Client{Transport: tr}).Get(s.URL()); err == nil {
		resp.Body.Close()
		t.Error("server still answers after Close")
	}
}

func TestServeNilGatherer(t *testing.T) {
	if s, err := Serve("127.0.0.1:0", nil); err == nil {
		_ = s.Close()
		t.Error("Serve with a nil Gatherer: no error")
	}
}

// TestPromtoolCheckMetrics lints a real scrape with Prometheus's promtool.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := promtest.Binary(t, "promtool")
	for _, native := range []bool{false, true} {
		m, reg := newMetrics(t, Options{NativeHistograms: native})
		exercise(m)
		m.ObserveSend(false, "Success", 1<<20, 0.25)
		s := serve(t, reg)
		body, _ := scrape(t, s.URL(), "")
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) != 0 {
			t.Errorf("native=%v: promtool check metrics: %v\n%s\nscrape:\n%s", native, err, out, body)
		}
	}
}
