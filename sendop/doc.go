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
// # Engines
//
// The engine's half of an Args — the state word that makes every send
// complete exactly once, the snapshot of its buffers, the pins that hold
// them in place while the kernel reads them, the msghdr and iovecs of a
// SENDMSG — lives in internal/op, out of users' sight, as Go's net keeps
// internal/poll.FD. SocketErrorOf is the one place an errno becomes a
// SocketError.
package sendop
