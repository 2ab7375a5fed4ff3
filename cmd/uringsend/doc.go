// Command uringsend is the load generator of the uringsend engine: it
// sends through Socket.SendAsync and reports throughput, latency, how
// many sends completed synchronously and what it all cost.
//
//	uringsend                     a 10 s demo against an embedded sink
//	uringsend run [flags]         send to a target (or an embedded sink)
//	uringsend rr [flags]          request–response against an echo peer
//	uringsend sink -listen URL    receive, count and verify (-echo: for rr)
//	uringsend merge a.json...     one report of runs that ran as one
//	uringsend plot a.json... -o r.html  an HTML page of reports
//	uringsend version
//
// # Demo
//
// Without a command, uringsend starts a sink on a loopback TCP port, runs
// 8 connections against it for 10 s (-duration and every other flag of
// run apply), prints a status line every second and the report, and serves
// Prometheus metrics on 127.0.0.1:9464 — or on a free port, which it
// names, if that one is taken:
//
//	go run ./cmd/uringsend
//	go run ./cmd/uringsend -duration 3s -size 1KiB
//
// # run
//
//	uringsend run -target tcp://10.0.0.2:9000 -conns 16 -size 1KiB
//	uringsend run -target udp://127.0.0.1:9000 -rate 50k/s -duration 30s
//	uringsend run -target tcp://10.0.0.2:9000 -size 128KiB -rate 10Gbit/s -omit 2s -json-stream
//	uringsend run -target unix:///run/sink.sock -mode bufferlist -segments 8 -size 128KiB
//	uringsend run -target tcp://127.0.0.1:9000 -messages 1M -verify -sink-report -json
//
// -target is tcp://host:port, udp://host:port or unix:///path; empty, an
// embedded sink. -conns connections (8) each keep a -window of bytes in
// flight (256KiB): -window/-size sends, 2 to 1024 — 1024 sends of 64 B, 2
// of 128 KiB — the closed loop, where every completion sends again;
// -inflight N pins the number of sends instead. With -rate (50k/s, 1M/s,
// 100/ms, or a bit rate: 10Gbit/s) the loop is open: messages are due at
// fixed times and latency counts from the due time, so stalls are not
// hidden (coordinated omission, corrected as wrk2 does; 64 in flight per
// connection at most). -size is 64, 1KiB, 128KiB...; -mode buffer sends
// one buffer (SetBuffer), bufferlist -segments buffers (SetBufferList).
// The run ends after -duration (10s) or -messages, or at the first
// Ctrl-C, which says "draining (Ctrl-C again to quit)", waits up to
// -drain-timeout (5s) for what is in flight and prints the partial
// report; a second Ctrl-C exits at once. Sends that complete after
// sending stopped count as messages but stay out of the latency
// percentiles (drain_messages). -omit D leaves the first D out of counts,
// rates, latencies and cost (warm-up). -verify stamps a sequence number
// and a checksum into every message for a sink with -verify.
//
// The latency of run is send-completion latency: from SendAsync (or the
// due time) to the send's completion, i.e. until the kernel took the
// bytes, not until the peer had them; rr measures round trips.
//
// Connections: -dial-timeout (5s) bounds an attempt, -dial-retries (3)
// retries a failed one with backoff (10 ms doubling to 1 s); a run goes
// on with the connections it made and fails only if it made none.
// -connect-rate paces dialing (1k/s). -conn-lifetime D replaces each
// connection after about D (one every D/-conns): the new one is dialed,
// the old one sends no more and is closed once its sends are done
// (connection churn; connections_replaced in the report, each dial's
// latency in connect_latency_seconds). Socket options, set before
// connecting: -bind (source address; repeat for several, taken in turn),
// -sndbuf, -nodelay (true; -nodelay=false turns Nagle on), -congestion
// (TCP_CONGESTION), -fq-rate (SO_MAX_PACING_RATE, e.g. 1Gbit/s), -tos.
// Engine: -backend auto|io_uring|epoll, -rings, -sq-entries,
// -zc-threshold, -zerocopy auto|on|off (auto: wires of -zc-threshold,
// 16 KiB, and more, non-loopback peers), -batching auto|on|off
// (coalesce queued sends; auto: on when more than one send is in flight
// in the closed loop). -metrics-addr host:port serves metrics, among
// them uringsend_loadgen_latency_seconds, the report's latency as a
// histogram; -metrics-linger D keeps serving them for D after the run,
// for a last scrape of the final counts; -interval sets the status
// period (0: none). -shards N with -shard-index (or
// $JOB_COMPLETION_INDEX) splits -rate and -messages over N generators;
// -start-at T (or $URINGSEND_START_AT) makes them start together (see
// "Many generators as one run").
//
// On a terminal the status line is redrawn in place; otherwise one line
// per interval goes to stderr. The report goes to stdout: text, or with
// -json one JSON object with messages, bytes (of sends that completed
// with Success), errors, errors_by_kind, duration_seconds,
// messages_per_second, bits_per_second, sync_ratio, backend,
// latency_seconds {p50, p90, p99, p999, max} and latency_kind
// (send_completion or round_trip), cost {user_seconds, system_seconds,
// cpu_seconds_per_message, cpu_seconds_per_gb; the engine's system calls:
// on io_uring io_uring_enter_per_message, sqes_per_enter, io_uring_waits,
// ...; on epoll send_calls_per_message (sendmsg/sendto),
// recv_calls_per_message (recvfrom, rr) and would_block_ratio (the share
// that answered EAGAIN), ...; per message means per request for rr},
// tcp_info {retransmits, rtt_mean_seconds, cwnd_min, cwnd_max,
// delivery_rate_max_bits_per_second, ...} and tcp_info_connections (each
// connection's: local address, retransmits, bytes sent and acked, rtt,
// cwnd, delivery and pacing rates, time limited by the peer's window or
// the send buffer; the text shows the few with the most retransmits) —
// the delivery rate is the kernel's estimate from each connection's last
// ACKed flight (tcpi_delivery_rate), not a throughput: on loopback it
// reads hundreds of Gbit/s, and the text gives the largest, labelled —,
// dial_attempts, dial_errors,
// connect_latency_seconds, omitted_messages, drain_messages, sink,
// thresholds_failed, the run's settings (shards and shard_index among
// them), its times — started_at (when sending began), ended_at (when
// the drain ended), RFC 3339 UTC with nanoseconds, and with -start-at
// start_at, start_lag_seconds and started_late — and its whole latency
// histogram: latency_histogram, HdrHistogram's own V2 compressed
// serialization in base64 (values in histogram_unit, "ns"; the range and
// precision are inside the encoding; connect_latency_histogram alike),
// which merge adds up and any HdrHistogram library decodes. With -json-stream stdout is
// NDJSON: one object per interval ("type": "interval", with that
// interval's rates, percentiles, TCP_INFO and cost), then the report on
// one line.
//
// -sink-report asks a "uringsend sink" target, after the run, what it
// received from the run's connections (bytes, messages —
// on UDP the loss is the run's messages less the sink's —, the -verify
// verdict, its read calls on them and CPU time) and puts it in the report's sink
// (as iperf3's --get-server-output); a target that is no uringsend sink
// leaves sink_error set. The sink knows the run's connections by their
// addresses (on unix, abstract names the run binds them to). The
// embedded sink always reports.
//
// # rr
//
//	uringsend sink -listen tcp://127.0.0.1:9000 -echo &
//	uringsend rr -target tcp://127.0.0.1:9000 -size 64 -duration 10s
//	uringsend rr -target tcp://127.0.0.1:9000 -conns 50 -rate 100k/s -max-p99 1ms
//
// rr is request–response (neper's tcp_rr): each connection posts a
// receive (ReceiveAsync), sends a message and waits until the same number
// of bytes has come back, compares every byte with what it sent, and
// only then sends the next; one request is in flight per connection. It
// takes run's flags; -rate makes it open loop. Its peer is any echo
// server: "uringsend sink -echo", socat's PIPE. Without -target it uses
// an embedded echo sink. An echo that differs from what was sent is an
// EchoMismatch error and fails the run; a peer that closes is an
// EndOfStream error.
//
// # sink
//
//	uringsend sink -listen tcp://0.0.0.0:9000
//	uringsend sink -listen udp://127.0.0.1:9000 -verify -json
//	uringsend sink -listen tcp://127.0.0.1:9000 -echo
//
// The sink accepts any number of connections (for UDP, datagrams from any
// peer), prints the receive rate every -interval on stderr and, on SIGINT
// or SIGTERM, waits up to 2 s for senders to finish and prints a summary
// with its cost (read calls, CPU seconds): the sink reads with Go's net
// package, not the engine, so it has no io_uring or sendmsg figures
// (JSON: "reader": "go_net", read_calls, read_calls_per_message). Its
// first line on stderr says where it listens ("listening on
// tcp://127.0.0.1:40123" for port 0).
// -echo writes what arrives back to its sender (tcp and unix).
//
// # Many generators as one run
//
//	uringsend run -target tcp://10.0.0.9:7000 -shards 3 -shard-index 0 -rate 300k/s \
//	    -start-at 2026-12-03T11:10:00Z -metrics-addr :9464 -metrics-linger 15s -json > r0.json
//	... the same with -shard-index 1 and 2 on two other machines ...
//	uringsend merge r0.json r1.json r2.json
//	uringsend plot r0.json r1.json r2.json -o report.html
//
// -start-at takes an RFC 3339 time (2026-12-03T11:10:00Z, fractions and
// offsets allowed) or unix seconds (1796296200, 1796296200.25); without
// the flag, $URINGSEND_START_AT is read (a Kubernetes Job sets it for all
// its pods). The run connects (and serves its metrics) first, then
// waits for that instant of the wall clock — the last milliseconds in
// nanosleep, so the start is within about a millisecond on a synchronized
// clock — and only then sends. The report says how late sending began
// (start_lag_seconds; the text's "start:" line) and flags a start more
// than 10 ms late (started_late, "LATE"), e.g. when connecting took past
// -start-at; a note on stderr says so too. A value that is no time is
// refused (exit 2, naming -start-at). A signal while waiting ends the run
// with nothing sent.
//
// merge reads the -json reports (or -json-stream files: their last line)
// of generators that ran as one and prints one report, as text or with
// -json in run's schema plus "merged" (its inputs, their status, and the
// problems). Counts, bytes, errors and costs are the sums; the
// percentiles come from the sum of the latency histograms, so they are
// exact, where averaging the runners' percentiles is not; the times span
// the first start to the last end, and the rates are over that span.
// Reports of different commands (run, rr), latency kinds, sizes, modes,
// open and closed loop, -shards, or histogram settings are refused (exit
// 1), as are two reports of the same shard (a rerun would count its share
// twice) and merged reports. A report that is missing, empty or cut off
// (its runner was killed) is named and left out, one given twice is read
// once, an interrupted run's report is merged and named, and a shard no
// report covers is named: the others are merged, each once, and merge
// exits 4.
//
// plot draws reports (-json, or -json-stream for the curves over time)
// into one self-contained HTML page; "uringsend plot -h" has its flags.
//
// # Exit status
//
// 0 success; 1 the run or sink failed (no connection could be made, no
// message delivered, every connection failed, the target refused the
// sends — ConnectionRefused —, an echo differed, verification errors); 2
// bad usage (the message names the flag); 3 a threshold was broken
// (-max-p99 D: the p99 latency was above D; -max-errors N: more than N
// errors); 130 interrupted twice. merge: 0 all merged; 1 the reports
// cannot be merged or none could be read; 2 bad usage; 4 merged, but some
// report was missing, short, repeated or interrupted, or a shard had none.
package main
