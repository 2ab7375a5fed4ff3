package socket

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uringsend/uringsend/metrics"
)

// *metrics.Metrics is an Observer (the RingStats of both packages are one
// type), while socket links no Prometheus code: a program that sends
// without metrics does not carry client_golang (a 10k-send program went
// from 9.8 MB to 3.9 MB).
var _ Observer = (*metrics.Metrics)(nil)

func TestSocketLinksNoPrometheus(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command here: ", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 5 {
		t.Fatalf("go list -deps listed %d packages: %q", len(deps), out)
	}
	for _, p := range deps {
		if strings.Contains(p, "prometheus") || strings.HasSuffix(p, "/uringsend/metrics") {
			t.Errorf("socket depends on %s", p)
		}
	}
}

// A typed nil Observer (an unset *metrics.Metrics) is no Observer: the
// engine skips its calls instead of calling nil methods.
func TestObserverTypedNil(t *testing.T) {
	var m *metrics.Metrics
	if observer(m) != nil || observer(nil) != nil {
		t.Fatal("a nil *metrics.Metrics counts as an Observer")
	}
	real, err := metrics.New(prometheus.NewRegistry(), metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if observer(real) == nil {
		t.Fatal("a *metrics.Metrics is dropped")
	}
}
