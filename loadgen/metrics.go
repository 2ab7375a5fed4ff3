package loadgen

import (
	"errors"
	"net"
	"syscall"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/uringsend/uringsend/metrics"
)

// The run's own metrics: what the load generator counts, beside the
// engine's uringsend_* metrics. Their latency is the run's (open loop:
// from the intended send time), so they are kept apart from the engine's.
const (
	nameMessages = "uringsend_loadgen_messages_total"
	nameBytes    = "uringsend_loadgen_sent_bytes_total"
	nameErrors   = "uringsend_loadgen_send_errors_total"
	nameSync     = "uringsend_loadgen_sync_completions_total"
	nameAborted  = "uringsend_loadgen_aborted_sends_total"
	nameInflight = "uringsend_loadgen_inflight_sends"
	nameConns    = "uringsend_loadgen_connections"
	nameLatency  = "uringsend_loadgen_latency_seconds"
)

// latencyBuckets are the upper bounds of uringsend_loadgen_latency_seconds:
// those of the engine's uringsend_send_duration_seconds, 1 µs to 10 s.
var latencyBuckets = metrics.SendDurationBuckets()

// runCollector reads the run's counters when Prometheus collects: the
// send path pays nothing for it.
type runCollector struct {
	r                                                *runner
	messages, bytes, errors, sync, aborted, inflight *prometheus.Desc
	conns                                            *prometheus.Desc
	latency                                          *prometheus.Desc
}

func newRunCollector(r *runner) *runCollector {
	return &runCollector{
		r:        r,
		messages: prometheus.NewDesc(nameMessages, "Messages whose send completed with Success.", nil, nil),
		bytes:    prometheus.NewDesc(nameBytes, "Bytes of messages whose send completed with Success.", nil, nil),
		errors:   prometheus.NewDesc(nameErrors, "Sends that completed with an error, by SocketError.", []string{"result"}, nil),
		sync:     prometheus.NewDesc(nameSync, "Sends that completed inside SendAsync.", nil, nil),
		aborted:  prometheus.NewDesc(nameAborted, "Sends aborted by the run's own shutdown.", nil, nil),
		inflight: prometheus.NewDesc(nameInflight, "Sends accepted by SendAsync and not yet completed.", nil, nil),
		conns:    prometheus.NewDesc(nameConns, "Connections of the run, by state.", []string{"state"}, nil),
		latency: prometheus.NewDesc(nameLatency, "Latency of the run's successful messages as its report gives it: "+
			"send completion (run) or round trip (rr), from the due time in the open loop (corrected for coordinated omission); "+
			"after -omit, updated every -interval.", nil, nil),
	}
}

func (c *runCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.messages, c.bytes, c.errors, c.sync, c.aborted, c.inflight, c.conns, c.latency} {
		ch <- d
	}
}

func (c *runCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.r.st.counters()
	ch <- prometheus.MustNewConstMetric(c.messages, prometheus.CounterValue, float64(snap.messages))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(snap.bytes))
	for k, v := range snap.byKind {
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(v), k.String())
	}
	ch <- prometheus.MustNewConstMetric(c.sync, prometheus.CounterValue, float64(snap.sync))
	ch <- prometheus.MustNewConstMetric(c.aborted, prometheus.CounterValue, float64(snap.aborted))
	ch <- prometheus.MustNewConstMetric(c.inflight, prometheus.GaugeValue, float64(max(c.r.inflight.Load(), 0)))
	failed := float64(c.r.failed.Load())
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(len(c.r.pos))-failed, "open")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, failed, "failed")
	var count uint64
	var sum float64
	buckets := make(map[float64]uint64, len(latencyBuckets))
	c.r.st.readTotal(func(h *hdr.Histogram) {
		count, sum = uint64(h.TotalCount()), h.Mean()*float64(h.TotalCount())/1e9
		bars := h.Distribution()
		i := 0
		var cum uint64
		for _, ub := range latencyBuckets {
			for ; i < len(bars) && float64(bars[i].To)/1e9 <= ub; i++ {
				cum += uint64(bars[i].Count)
			}
			buckets[ub] = cum
		}
	})
	ch <- prometheus.MustNewConstHistogram(c.latency, count, sum, buckets)
}

// metricsServer serves the run's registry.
type metricsServer struct {
	srv   *metrics.Server
	moved bool // DefaultMetricsAddr was busy: serving on another port
}

func (m *metricsServer) url() string { return m.srv.URL() }
func (m *metricsServer) close()      { m.srv.Close() }

// newRegistry returns the run's registry: the run's counters and the Go
// runtime and process collectors. The engine's collectors join it when
// the engine takes a metrics.Metrics.
func newRegistry(reg *prometheus.Registry, r *runner) error {
	return errors.Join(
		reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
		reg.Register(newRunCollector(r)),
	)
}

// serveMetrics serves the run's registry on addr; if addr is
// DefaultMetricsAddr and taken, on a free port of the same host.
func serveMetrics(addr string, reg *prometheus.Registry, r *runner) (*metricsServer, error) {
	if err := newRegistry(reg, r); err != nil {
		return nil, err
	}
	srv, err := metrics.Serve(addr, reg)
	if err == nil {
		return &metricsServer{srv: srv}, nil
	}
	if addr != DefaultMetricsAddr || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	srv, err = metrics.Serve(net.JoinHostPort(host, "0"), reg)
	if err != nil {
		return nil, err
	}
	return &metricsServer{srv: srv, moved: true}, nil
}
