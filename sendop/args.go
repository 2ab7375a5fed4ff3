package sendop

import (
	"time"
	"unsafe"

	"github.com/uringsend/uringsend/internal/op"
)

// A compile-time check that op is Args' first field: a
// non-zero offset makes the array index out of range.
var _ = [1]struct{}{}[unsafe.Offsetof(Args{}.op)]

// Args describes one send and carries its result: the analogue of .NET's
// SocketAsyncEventArgs. Set Buffer or BufferList (not both), optionally
// Flags, UserToken and Completed, and hand it to Socket.SendAsync. It may be
// reused for another send once the previous one has completed: when
// SendAsync returned false, or from the moment Completed is called.
//
// The zero value is ready to use. An Args must not be copied after first use.
type Args struct {
	// op is the engine's half of the send. It comes first: an engine
	// converts an *Args to its *op.Op and back with unsafe.Pointer
	// (the check above the type stops the build if it moves).
	op op.Op

	// UserToken is any state the caller wants back in Completed.
	UserToken any
	// Flags are MSG_* flags for send(2): MSG_MORE, MSG_EOR, MSG_OOB,
	// MSG_DONTROUTE, MSG_CONFIRM. MSG_NOSIGNAL is always added.
	Flags int
	// Timeout, when positive, bounds how long the send may stay on the
	// wire: one still unfinished after Timeout completes with TimedOut and
	// the bytes already sent (on a stream socket the byte stream is then
	// cut short, so the caller usually closes the connection). It counts
	// from the moment the send reaches the kernel, not from SendAsync: time
	// spent queued behind earlier sends on the socket is not included. It
	// bounds the whole send once, however many pieces the engine sends it
	// in (a BufferList longer than IOVMax, a short send continued).
	Timeout time.Duration
	// Completed is raised, on the engine's goroutine, when a send for which
	// SendAsync returned pending == true has completed. The Args is free
	// again when it runs, so Completed may call SendAsync with it. It must
	// not block: it holds up every completion of its engine.
	Completed func(e *Args)

	buf  []byte
	bufs [][]byte
}

// SetBuffer sets the data to send and clears nothing else: setting both a
// Buffer and a BufferList is reported by SendAsync as ErrBufferConflict.
// SetBuffer(nil) unsets it. A change made while a send is in progress
// applies to the next send only.
func (e *Args) SetBuffer(b []byte) { e.buf = b }

// SetBufferList sets several buffers to send as one gathered write
// (sendmsg). SetBufferList(nil) unsets it. Empty or nil buffers inside the
// list are allowed and send nothing.
func (e *Args) SetBufferList(bufs [][]byte) { e.bufs = bufs }

// Buffer returns the buffer set by SetBuffer.
func (e *Args) Buffer() []byte { return e.buf }

// BufferList returns the list set by SetBufferList.
func (e *Args) BufferList() [][]byte { return e.bufs }

// BytesTransferred is the number of bytes the last send handed to the
// kernel: all of them on success; on a stream socket that failed, the bytes
// sent before the error.
func (e *Args) BytesTransferred() int { return e.op.Transferred() }

// SocketError is the result of the last send.
func (e *Args) SocketError() SocketError { return SocketErrorOf(e.op.Errno()) }

// Err returns nil when the last send (or receive) succeeded, else an
// *Error wrapping the errno, so errors.Is(e.Err(), syscall.EMSGSIZE)
// works.
func (e *Args) Err() error {
	errno := e.op.Errno()
	if errno == 0 {
		return nil
	}
	op := "send"
	if e.op.Recv {
		op = "receive"
	}
	return &Error{Op: op, Code: SocketErrorOf(errno), Errno: errno}
}

// IOVMax is the most iovecs one sendmsg takes (Linux UIO_MAXIOV). Stream
// sends of longer BufferLists go out in pieces of IOVMax; datagram sends
// of longer lists fail with MessageSize.
const IOVMax = op.IOVMax
