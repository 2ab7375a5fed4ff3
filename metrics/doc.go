// Package metrics exposes what the uringsend engine and its reapers observe
// as Prometheus metrics.
//
// # Protocol
//
// The send path pays only atomic operations. ObserveSend does one histogram
// observation and one or two counter increments, InflightAdd one atomic
// add, ObserveReaperBatch one histogram observation; once a result name has
// been seen none of them allocates or takes a lock. The per-ring counters
// cost the send path nothing here at all: the engine keeps them in its own
// atomics and registers a snapshot function with AddRingSource, which is
// read only when Prometheus collects (the dbstats-collector pattern of
// client_golang), and emitted as constant counters summed over the rings.
// A removed ring's last values stay in the sums, so counters never go down.
//
// The registry belongs to the caller. New registers on the
// prometheus.Registerer it is given and never on the default registry; the
// caller decides what else that registry holds (Go runtime, process
// metrics) and serves it with Handler or Serve. Serve binds 127.0.0.1 unless
// told otherwise.
//
// A nil *Metrics is valid and every method on it is a no-op, so an engine
// without metrics pays one nil check per call.
//
// # Metrics
//
//   - uringsend_send_duration_seconds{completion="sync"|"async"}: histogram
//     of the time from SendAsync to completion; 22 exponential buckets from
//     1 µs to 10 s, plus native buckets when Options.NativeHistograms is set.
//   - uringsend_sends_total{completion,result}: completed sends; result is
//     the SocketError name.
//   - uringsend_sent_bytes_total: bytes of sends that completed with Success.
//   - uringsend_inflight_sends: sends accepted and not yet completed.
//   - uringsend_ring_enter_calls_total, uringsend_ring_submitted_sqes_total,
//     uringsend_ring_reaped_cqes_total, uringsend_ring_cq_overflows_total:
//     ring counters, summed over the engine's rings.
//   - uringsend_reaper_batch_size: histogram of CQEs harvested per batch.
//   - uringsend_engine_info{backend,kernel}: always 1.
//
// Useful PromQL:
//
//	sum(rate(uringsend_sends_total[1m]))                       # sends/s
//	rate(uringsend_sent_bytes_total[1m])                        # bytes/s
//	histogram_quantile(0.99, sum by (le) (rate(uringsend_send_duration_seconds_bucket[1m])))
//	sum(rate(uringsend_sends_total{completion="sync"}[1m])) / sum(rate(uringsend_sends_total[1m]))
//	rate(uringsend_ring_enter_calls_total[1m]) / sum(rate(uringsend_sends_total[1m]))  # syscalls per send
package metrics
