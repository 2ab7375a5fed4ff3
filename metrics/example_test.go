package metrics_test

import (
	"log"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/uringsend/uringsend/metrics"
)

// An engine is given the Metrics; the program owns the registry and serves
// it.
func Example() {
	reg := prometheus.NewRegistry() // the program's own, never the default
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		log.Fatal(err)
	}

	// What an engine does: report its backend once, register each ring's
	// counters (kept in the engine's own atomics, read only on scrapes) ...
	m.SetEngineInfo("io_uring", "6.8.0")
	var enters, submitted, reaped atomic.Uint64
	remove := m.AddRingSource(func() metrics.RingStats {
		return metrics.RingStats{Enters: enters.Load(), Submitted: submitted.Load(), Reaped: reaped.Load()}
	})
	defer remove() // when the ring closes; its counts stay in the totals

	// ... and on the send path, atomics only.
	start := time.Now()
	m.InflightAdd(1)
	enters.Add(1)
	submitted.Add(1)
	reaped.Add(1)
	m.ObserveReaperBatch(1)
	m.InflightAdd(-1)
	m.ObserveSend(false, "Success", 1500, time.Since(start).Seconds())

	srv, err := metrics.Serve("127.0.0.1:0", reg) // "" means 127.0.0.1:9464
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	log.Printf("metrics at %s", srv.URL())
}
