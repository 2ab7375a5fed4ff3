// Package sendop is the send operation of uringsend: Args, the analogue of
// .NET's SocketAsyncEventArgs, and everything one send needs between
// SendAsync and its completion.
//
// # Protocol
//
// A caller fills an Args — Buffer or BufferList (never both), Flags,
// UserToken, Completed — and passes it to socket.Socket.SendAsync. From then
// on the Args belongs to the operation until it completes, and a second
// SendAsync with it fails with ErrInProgress. Every accepted send completes
// exactly once: either SendAsync returns pending == false and the result is
// in the Args at once, or it returns true and Completed is raised later, on
// the engine's goroutine. Never both, never neither. The Args is free again
// when SendAsync returns false, or when Completed begins.
//
// The result is BytesTransferred, SocketError (values as .NET's
// System.Net.Sockets.SocketError) and Err, which wraps the errno. On stream
// sockets success means every byte was handed to the kernel; an error
// after partial progress keeps the bytes already sent. Datagrams go out
// whole or not at all: too large gives MessageSize and sends nothing.
//
// # For engines
//
// OpOf exposes the engine-facing half, Op: the state word (one atomic
// uint32, its transitions drawn in state.go), the snapshot of the buffers
// taken at Begin, the pins that keep them in place while the kernel reads
// them, and the msghdr and iovec array of a SENDMSG, kept across sends so
// steady state allocates nothing. Pins go through the socket's PinCache:
// memory a socket sends from again is pinned once, not on every send
// (runtime.Pinner's Pin and Unpin take a span lock each); the cache lets go
// of memory the socket stopped sending from when the socket is idle, and of
// everything when it leaves its engine. Prep and PrepZC fill an SQE with what is
// left to send (at most IOVMax iovecs); Advance records a CQE's result and
// says whether a short stream send must be continued. Queue is the
// intrusive per-socket FIFO. SocketErrorOf is the one place an errno
// becomes a SocketError.
package sendop
