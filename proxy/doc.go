// Package proxy is a TCP proxy whose sends run on the uringsend engine:
// the embedding this project is built for, usable in-process (tests,
// programs of one's own) and as the command cmd/uringproxy.
//
// # Data path
//
// The proxy accepts with Go's net and dials the upstream for every client.
// Each connection has two pumps, client→upstream and upstream→client. A
// pump waits until its source is readable (syscall.RawConn.Read, Go's
// netpoller), only then takes a pooled buffer and reads into it, so a
// connection that is idle holds no buffer; it hands the bytes to the
// engine with Socket.SendAsync on the destination; it
// does not wait for the send, so the next read starts at once. A send on
// an idle socket usually completes inside SendAsync and the pump reuses
// its buffer; a send that has to wait completes later on the engine's
// goroutine, which returns the buffer to the pool. Each pump has at most
// Config.MaxInflight bytes of buffers in flight (in whole buffers of
// Config.BufferSize); past that its reads wait for completions: the
// backpressure that bounds memory per connection at about
// 2 × (MaxInflight + BufferSize). This is receive mode net (Config.Recv
// RecvNet, the default on epoll).
//
// # Receive mode engine
//
// With Config.Recv RecvEngine (the default on io_uring) the engine runs
// the reads too, and a direction has no goroutine. Its source runs one
// stream receive, Socket.ReceiveChunks (chunks.go): on io_uring one
// multishot RECV stays armed on the socket and the kernel takes a buffer
// of the engine's receive pool (a provided buffer ring of
// Config.RecvPool buffers of BufferSize, shared by the connections of a
// ring) only when bytes arrive. Each filled buffer reaches the pump as a
// chunk, in stream order, on the engine's goroutine; the pump sends its
// bytes on the destination with SendAsync (no copy; the send's Args come
// from a free list, so a chunk allocates nothing) and the send's
// Completed gives the buffer back to the pool. A direction holds at most
// MaxInflight/BufferSize chunks in sends (the socket's chunk limit); at
// that limit its source stops receiving until sends complete — the
// backpressure. So an idle connection holds no buffer, and on io_uring
// no goroutine either: the one that dialed the upstream starts both
// streams and returns, and the connection's last event (both directions
// ended, Shutdown's drain done, a reset) starts the one that closes it.
// On the epoll backend the engine reads each stream on a goroutine of its
// own that takes a buffer only inside its recv(2).
//
// The receive pool is shared: when Config.RecvPool/(MaxInflight/BufferSize)
// directions are backed up at once (their peers stopped reading) it runs
// dry, and every connection of the ring waits until sends complete or
// SendTimeout resets the stalled ones.
//
// Config.RecvOwnBuffers, and kernels without multishot receive (before
// 6.0; New finds out once), read into buffers of the proxy's own instead
// (engine.go): Socket.ReceiveAsync on the source fills a slot's buffer;
// its Completed sends the bytes with SendAsync on the destination and
// starts the next receive on another slot; the send's Completed frees the
// slot. One receive per direction is outstanding at a time, so bytes
// leave in the order they came; at most MaxInflight bytes of slots are in
// flight. A receive on the wire holds its buffer: an idle connection
// holds one per direction, 2 × BufferSize, and one goroutine (which
// closes it at the end).
//
// In both, the handlers run on the engine's reaper, so on io_uring one
// io_uring_enter submits the receives and sends that the completions of
// many connections started. SendTimeout is enforced there by the idle
// sweeper (a direction whose sends have not progressed for SendTimeout is
// reset) rather than by a LINK_TIMEOUT per send, which would double the
// ring's traffic. After the connection stops (Shutdown, Close, a reset),
// bytes the kernel still hands over are dropped unsent and not counted
// read, as bytes left unread in the socket are. RecvNet keeps the
// goroutine pumps of Go's net described above.
//
// # Connection life
//
//   - Half-close: when a source reads io.EOF (the peer sent FIN), its pump
//     waits until everything it read has been sent, then shuts down the
//     destination's write side (TCPConn.CloseWrite). The other direction
//     goes on until it ends too; then both connections are closed.
//   - Resets: a read error other than EOF, or a failed send, on either
//     side ends both: the connections are closed with SO_LINGER 0, so the
//     peers see RST rather than a FIN that would pass for a clean end.
//     A peer the proxy has stopped reading (backpressure: what it sent
//     waits for the other peer) has nothing posted on its socket that
//     would see its RST: the sweeper looks at the sources of backed-up
//     directions for a pending error, so such a reset ends the
//     connection within a second (or SendTimeout/8), not at SendTimeout.
//   - Config.SendTimeout bounds each send on the wire (sendop.Args.Timeout):
//     a peer that stops reading is dropped (with RST) once a send has
//     waited that long.
//   - Config.IdleTimeout closes a connection on which nothing was read in
//     either direction for that long. It is off by default (0), as a
//     proxy must not cut what its upstream keeps: a pooled or pub/sub
//     redis client idle for a minute is still a client. Like HAProxy's
//     "timeout client", set it only to reclaim the connections of
//     clients that vanished without a FIN, and longer than any idle time
//     the clients and the upstream allow.
//
// # Shutdown
//
// Shutdown stops accepting, stops reading, waits until every send already
// read is handed to the kernel, and closes the connections normally (FIN);
// when its context ends first, what is left is closed at once. SendTimeout
// still holds while it waits (in both receive modes): a connection whose
// peer has stopped reading is reset for send_timeout instead of holding
// Shutdown up. Close does that at once.
package proxy
