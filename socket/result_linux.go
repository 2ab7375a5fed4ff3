package socket

import "syscall"

// The rules by which a wire's raw result — bytes, or -errno from a CQE or
// a system call — becomes what its sends or receive complete with. The
// SocketError a user then sees is sendop.SocketErrorOf's; these decide
// which errno reaches it.

// retriable reports a result that sent or received nothing and that the
// engine submits again (unless the socket is closing, see finalResult):
//   - EAGAIN: io_uring returns it for an O_NONBLOCK socket (every Go
//     socket) when it punted the request to its workers instead of arming
//     poll;
//   - ECANCELED or EINTR that nobody asked for: the engine cancels only
//     closing sockets' requests, but when the thread that submitted a
//     request exits, the kernel ends it — a poll-armed one with ECANCELED
//     when its poll fires (its task work runs for a dead task), one that a
//     worker of that thread's io-wq is running with EINTR. Any goroutine's
//     io_uring_enter submits every published SQE, and Go ends a thread
//     when a goroutine that locked it returns, so that would otherwise cut
//     a hole in another socket's stream. Such a request did nothing: a
//     send or receive that made progress reports its bytes instead.
func retriable(res int32) bool {
	return res == -int32(syscall.EAGAIN) || res == -int32(syscall.ECANCELED) || res == -int32(syscall.EINTR)
}

// finalResult is the result a wire completes its ops with, given res from
// the kernel, whether the socket is closing and whether the send's
// LINK_TIMEOUT fired:
//   - a send cut by its own timeout ends with ETIMEDOUT (TimedOut), not
//     the ECANCELED the kernel reports for it;
//   - on a closing socket, a result that would be retried, and EINTR (the
//     cancel of Close interrupting an io-wq worker), end with ECANCELED
//     (OperationAborted), as a request the cancel found waiting does.
//
// Everything else is the kernel's own answer.
func finalResult(res int32, closing, timedOut bool) int32 {
	switch {
	case timedOut && res == -int32(syscall.ECANCELED):
		return -int32(syscall.ETIMEDOUT)
	case closing && retriable(res):
		return -int32(syscall.ECANCELED)
	}
	return res
}
