package socket

import "reflect"

// Observer receives what an Engine measures: its sends, their latencies,
// its rings' counters. *metrics.Metrics (package metrics, Prometheus) is
// one; the engine knows only this interface, so a program that sends
// without metrics links no Prometheus code. The engine calls it on its hot
// paths: no method may block.
type Observer interface {
	// SetEngineInfo says which backend runs, on which kernel.
	SetEngineInfo(backend, kernel string)
	// ObserveSend records one send completed synchronously (sync) or by
	// the reaper: its result (a sendop.SocketError's name), bytes and
	// latency.
	ObserveSend(sync bool, result string, bytes int, seconds float64)
	// ObserveLatency records a latency alone; AddSends counts n sends of
	// one result and their bytes (the reaper counts a batch at once).
	ObserveLatency(sync bool, seconds float64)
	AddSends(sync bool, result string, n, bytes int)
	// InflightAdd moves the count of sends in flight.
	InflightAdd(delta int)
	// AddStaleCompletion counts a CQE that belonged to no live send.
	AddStaleCompletion()
	// ObserveReaperBatch records how many CQEs one harvest handed over.
	ObserveReaperBatch(n int)
	// AddRingSource registers a ring's counters, read when the observer
	// reports; remove unregisters it.
	AddRingSource(f func() RingStats) (remove func())
	// Latencies returns a reaper's own latency batch: observe records one
	// send's latency in nanoseconds with plain adds, flush publishes what
	// was observed.
	Latencies(sync bool) (observe func(ns int64), flush func())
}

// RingStats is a snapshot of one ring's cumulative counters. It is an
// alias of an unnamed struct type, as is metrics.RingStats: the two are
// the same type, so *metrics.Metrics satisfies Observer although neither
// package imports the other.
type RingStats = struct {
	Enters    uint64 // io_uring_enter system calls
	Submitted uint64 // SQEs consumed by the kernel
	Reaped    uint64 // CQEs harvested
	Overflows uint64 // CQEs the kernel could not post (CQ overflow)
	SQFull    uint64 // times a submitter found the SQ full
}

// observer returns o, or nil for none: also for a nil pointer in o (an
// unset *metrics.Metrics), which would otherwise cost every send its
// calls.
func observer(o Observer) Observer {
	if o == nil {
		return nil
	}
	if v := reflect.ValueOf(o); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil
	}
	return o
}
