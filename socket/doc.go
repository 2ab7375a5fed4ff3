// Package socket sends on connected sockets the way .NET's
// Socket.SendAsync(SocketAsyncEventArgs) does, executed by io_uring.
//
// # Calling protocol
//
// SendAsync(e) validates e, claims it, and queues it on the socket. If the
// socket's queue was empty it submits the send at once and peeks at the
// completion queue in the same call: a send on an idle socket usually
// completes inside io_uring_enter, and then SendAsync returns
// pending == false — the result is in e and Completed is not raised.
// Otherwise it returns true, and the engine's reaper goroutine raises
// e.Completed exactly once when the send has completed. An error from
// SendAsync means nothing was sent and nothing will be raised.
//
// Completed runs on the engine's goroutine, never on the caller's. It may
// call SendAsync again, with the same Args, and Close; it must not block,
// since it holds up every other completion of the engine.
//
// # Order and atomicity
//
// Sends on one socket leave in the order SendAsync was called and never
// interleave: only the front of a socket's queue — its wire — is in the
// kernel, one SQE at a time. On stream sockets a send completes with all
// its bytes or with an error (short sends are continued, by the kernel
// with MSG_WAITALL and otherwise by the engine). Datagrams are sent whole
// or fail with MessageSize.
//
// # Coalescing, batching, zero-copy, deadlines
//
// Stream sends queued behind a busy wire leave together: the next wire is
// one SENDMSG of up to 1024 iovecs (and 4 MiB) over as many queued sends as
// fit, and its result is split over them in order, each completing once
// with its own BytesTransferred. Datagrams queued behind a busy UDP socket
// (IPv4 or IPv6) leave together too: one sendmsg with a UDP_SEGMENT
// control message (UDP GSO) over a run of equal-length datagrams (the last
// may be shorter), up to 128 (64 on kernels before 6.10) and 64000 bytes;
// the kernel cuts it back into the same datagrams, and each send completes
// once. A socket whose kernel or route refuses GSO sends the same datagrams
// again in smaller wires or one by one, and remembers the refusal.
// WithBatching makes a socket queue every
// send and lets the reaper put the queue on the wire, so a pipeline always
// coalesces and the reaper submits the wires of many sockets in the one
// io_uring_enter in which it waits. Wires of EngineConfig.ZeroCopyThreshold
// bytes and more go out with SEND_ZC / SENDMSG_ZC where configured, and
// complete only after the kernel's notification that it has let go of the
// buffers. Args.Timeout links an IORING_OP_LINK_TIMEOUT to the send: one
// still unfinished then completes with TimedOut and the bytes it sent.
//
// # The race
//
// The completion of an inline send may be harvested by the caller peeking
// or by the reaper. Whoever harvests it records the result and moves the
// send's state word from inline to harvested; the caller, when it decides,
// moves it from inline to pending. Exactly one compare-and-swap wins: if
// the harvest won, SendAsync returns false; if the caller won, the reaper
// raises Completed.
//
// # Close
//
// Close never waits on the peer. It completes every queued send with
// OperationAborted at once, cancels the send and the receive in the kernel
// (one IORING_OP_ASYNC_CANCEL each, by user_data; a send that finished
// first keeps its real result), and closes the descriptor only once the
// kernel has let go of both — so its number cannot be reused while the
// kernel still holds it. Holds are counted as in Go's internal/poll fd
// mutex: whichever of Close, the send wire and the receive wire lets go
// last releases the socket and wakes Close; nothing polls or sleeps (see
// close_linux.go). The socket's lifecycle — open, closing, released,
// quiet, with CloseWrite's flags and the holds — is one atomic word, drawn
// in state_linux.go. A zero-copy send still waiting for its notification
// 50 ms into the close resets the connection, so that the kernel frees
// its buffers and Close returns. From a Completed handler Close returns at
// once and the release follows the last completion: the goroutine raising
// Completed locks itself to its OS thread while it runs handlers and
// publishes the thread's id, which is how Close knows it is on it (so a
// handler must not call runtime.UnlockOSThread more often than it called
// LockOSThread). CloseWrite is the
// graceful half-close: queued sends complete, then FIN. Sockets made by
// FromConn leave the connection open and its deadlines alone.
//
// A buffer belongs to the kernel from SendAsync until its send completes:
// it must not change before then.
//
// # Engines and backends
//
// An Engine owns one or more rings, each with a reaper goroutine and a
// table that maps user_data (a slot index and a generation, never a
// pointer) to the Args in flight. Where io_uring is refused — an old
// kernel, kernel.io_uring_disabled, a container's seccomp profile — or when
// EngineConfig.Backend is "epoll", the same contract runs on non-blocking
// sendmsg(2) and Go's netpoller: the inline attempt is a direct send, a
// writer goroutine per busy socket continues what would block, and one
// dispatcher goroutine per engine raises Completed. AF_UNIX datagram
// sockets always take that path: io_uring's internal retry after EAGAIN
// sends such a datagram empty.
//
// # Receives
//
// ReceiveAsync has SendAsync's contract for the other direction: it
// receives into the Args' Buffer (IORING_OP_RECV, or recv(2) and the
// netpoller on the epoll backend); BytesTransferred is what arrived, and 0
// with Success is the end of the stream. Receives on one socket complete in
// call order, one in the kernel at a time; Close aborts the pending ones.
// A receive or send started while the reaper raises Completed — from a
// handler, typically — is not entered into the kernel on its own: it goes
// out with everything else the handlers started, in the reaper's next
// io_uring_enter. A relay built on it (cmd/uringproxy -recv engine) makes
// a fraction of a system call per message.
//
// ReceiveChunks is the relay's receive without a buffer of its own: one
// multishot IORING_OP_RECV (6.0) stays armed and takes a buffer from the
// ring's provided buffer ring (5.19; several with recv bundles, 6.10)
// only when data arrives, so an idle connection holds none. The request
// is armed by the reaper, on the OS thread it is locked to: io_uring runs
// each receive's completion work on the submitting thread, so a stream
// armed from the goroutine that accepted the connection would wake that
// goroutine's thread for every receive (ReceiveChunks from elsewhere hands
// the arming to the reaper). Each buffer
// the kernel filled reaches the handler as a Chunk, in stream order; the
// handler sends its Bytes on (no copy) and Releases it when that send
// completes. A socket whose handler holds WithChunkLimit chunks, or that
// finds the pool empty (ENOBUFS), stops receiving until chunks come back
// — on io_uring each request carries a byte budget of what the limit
// leaves (6.15), so a burst stops there; older kernels see only the cancel
// at the limit, and may fill a few dozen buffers more. The stream ends
// with one
// last call, c == nil: io.EOF, ErrClosed or the socket's error. The epoll
// backend keeps the same contract with a reader goroutine that takes a
// buffer only inside its non-blocking recv(2). See stream_linux.go.
//
// # Writers
//
// Socket is an io.Writer and io.ReaderFrom over SendAsync, and WriteAsync
// keeps many writes in flight with a callback each; WithMaxInflightBytes
// bounds them for proxies.
package socket
