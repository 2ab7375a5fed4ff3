// Command uringsend is the load generator of the uringsend engine: it
// sends through Socket.SendAsync and reports throughput, latency and how
// many sends completed synchronously.
//
//	uringsend                     a 10 s demo against an embedded sink
//	uringsend run [flags]         send to a target (or an embedded sink)
//	uringsend sink -listen URL    receive, count and verify
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
//	uringsend run -target unix:///run/sink.sock -mode bufferlist -segments 8 -size 128KiB
//	uringsend run -target tcp://127.0.0.1:9000 -messages 1M -verify -json
//
// -target is tcp://host:port, udp://host:port or unix:///path; empty, an
// embedded sink. -conns connections (8) each keep up to -inflight sends
// in flight (8): the closed loop, where every completion sends again. With
// -rate (50k/s, 1M/s, 100/ms) the loop is open: messages are due at fixed
// times and latency counts from the due time, so stalls are not hidden
// (coordinated omission, corrected as wrk2 does). -size is 64, 1KiB,
// 128KiB...; -mode buffer sends one buffer (SetBuffer), bufferlist
// -segments buffers (SetBufferList). The run ends after -duration (10s)
// or -messages, or at the first Ctrl-C, which drains what is in flight
// and prints the partial report; a second Ctrl-C exits at once. -verify
// stamps a sequence number and a checksum into every message for a sink
// with -verify. -backend auto|io_uring|epoll picks the engine backend;
// -zerocopy auto|on|off sets the engine's SEND_ZC mode (auto: wires of
// 16 KiB and more, non-loopback peers); -batching auto|on|off coalesces
// queued sends (auto: on when -inflight > 1 in the closed loop);
// -metrics-addr host:port serves metrics; -interval sets the status
// period (0: none).
//
// On a terminal the status line is redrawn in place; otherwise one line
// per interval goes to stderr. The report goes to stdout: text, or with
// -json one JSON object with messages, bytes (of sends that completed
// with Success), errors, errors_by_kind, duration_seconds,
// messages_per_second, bits_per_second, sync_ratio, backend,
// latency_seconds {p50, p90, p99, p999, max} and the run's settings.
//
// # sink
//
//	uringsend sink -listen tcp://0.0.0.0:9000
//	uringsend sink -listen udp://127.0.0.1:9000 -verify -json
//
// The sink accepts any number of connections (for UDP, datagrams from any
// peer), prints the receive rate every -interval on stderr and, on SIGINT
// or SIGTERM, waits up to 2 s for senders to finish and prints a summary.
// Its first line on stderr says where it listens ("listening on
// tcp://127.0.0.1:40123" for port 0).
//
// # Exit status
//
// 0 success; 1 the run or sink failed (unreachable target, no message
// delivered, every connection failed, verification errors); 2 bad usage;
// 130 interrupted twice.
package main
