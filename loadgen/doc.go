// Package loadgen is the load generator behind "uringsend run", "rr" and
// "sink": flag values and a validated Config, the run loop, the
// request–response loop, the sink (and its echo and control exchange),
// and the report.
//
// # The run loop
//
// Each connection owns Config.Inflight slots, one preallocated
// sendop.Args per send it may have in flight, each with its own Completed
// handler; the message buffers are allocated once. In steady state a
// message costs no allocation in this package. Without a set Inflight,
// the closed loop keeps Config.Window bytes in flight per connection
// (256 KiB: 1024 sends of 64 B, 2 of 128 KiB), enough to fill one
// connection without tuning.
//
// Closed loop (no Rate): a connection's goroutine sends every slot; when
// SendAsync returns pending == false the result is recorded at once and
// the same slot is sent again, and when it returns pending == true the
// slot's Completed records the result and sends again from the engine's
// goroutine. Completed chains at most maxInlineResends sends that
// complete inline, then hands the slot back to the connection's
// goroutine, so one busy connection cannot hold up the engine's other
// completions. With Verify, Completed always hands the slot back: one
// goroutine per connection stamps sequence numbers and calls SendAsync, so
// sequence order is wire order.
//
// Open loop (Rate): a connection's pacer goroutine gives message k the
// due time base + k × Conns/Rate and sends it on a free slot once that
// time has come; Completed only frees the slot. Latency counts from the
// due time, not from the moment the send could start, so a stall shows as
// the latency of every message it delayed (the coordinated-omission
// correction of wrk2).
//
// Latency is recorded in HdrHistograms (1 ns to 1 h, three significant
// digits), sharded with the counters by connection; the status line
// collects them every Interval.
//
// # Request–response
//
// With Config.RR ("uringsend rr") a connection has one request in flight:
// it posts a ReceiveAsync for Size bytes, then sends the message; the
// request ends when the send has completed and the whole echo has come
// back, compared byte for byte with what was sent. Whichever of the two
// completions comes last records the round trip and starts the next
// request (closed loop) or frees the connection for its pacer (open
// loop). See rr.go.
//
// # Cost
//
// The report gives the process's user and system CPU time (getrusage)
// from the start of sending (or the end of Omit) to the end of the
// drain, per message and per GB, and the engine's system calls, read
// from Engine.Stats (which allocates nothing): on io_uring its
// io_uring_enter calls per message, the SQEs per enter and how many
// enters waited; on epoll its sendmsg/sendto calls per message (rr: and
// recvfrom calls per request) and the share of them that answered
// EAGAIN. With JSONStream every interval carries its own. The sink reads
// with Go's net package, not the engine: its cost is its CPU time and
// Read calls (SinkReport).
//
// # Stopping
//
// When the duration has passed, the messages have been sent, every
// connection has failed, or a first signal arrives, no send starts any
// more; Run waits for the sends in flight (at most DrainTimeout), reads
// TCP_INFO of the connections, closes them — which completes what is
// left with OperationAborted, counted as aborted, not as errors — and
// reports. Sends that complete after sending stopped count as messages
// but not in the latency histogram. A second signal makes Run return
// ErrInterrupted at once.
//
// A connection whose send fails on a stream transport has lost bytes: it
// is marked failed, closed, counted and named in the report, and the run
// goes on with the others. On UDP a failed send is counted and the
// connection goes on.
//
// # Verification
//
// With Verify every message starts with a 32-byte header (see HeaderSize):
// a stream id per connection, a sequence number and a CRC-32C of the
// message. A sink with Verify checks them per stream: corrupt messages,
// sequence numbers behind the expected one (out of order) and gaps (lost;
// an error on stream transports, loss on UDP).
package loadgen
