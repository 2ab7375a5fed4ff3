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
// interleave: only the head of a socket's queue is on the wire. On stream
// sockets a send completes with all its bytes or with an error (short
// sends are continued, by the kernel with MSG_WAITALL and otherwise by the
// engine). Datagrams are sent whole or fail with MessageSize.
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
// Close cancels what is on the wire (IORING_OP_ASYNC_CANCEL by fd,
// repeated until the send has completed), completes every queued send with
// OperationAborted (a send that finished first keeps its real result), and
// only then closes the descriptor, so its number cannot be reused while
// the kernel still holds it. Sockets made by FromConn leave the connection
// open.
//
// # Engines and backends
//
// An Engine owns one or more rings, each with a reaper goroutine and a
// table that maps user_data (a slot index and a generation, never a
// pointer) to the Args in flight. Where io_uring is refused — an old
// kernel, kernel.io_uring_disabled, a container's seccomp profile — or when
// EngineConfig.Backend is "epoll", the same contract runs on non-blocking
// sendmsg(2) and Go's netpoller: the inline attempt is a direct send, and
// a writer goroutine per busy socket continues what would block.
package socket
