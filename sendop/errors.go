package sendop

import (
	"errors"
	"syscall"

	"github.com/uringsend/uringsend/internal/op"
)

// Errors returned by SendAsync before anything is sent. Their text never
// changes; compare with errors.Is.
var (
	// ErrNilArgs: SendAsync was given a nil *Args.
	ErrNilArgs = errors.New("sendop: nil *Args")
	// ErrNoBuffer: neither Buffer nor BufferList is set.
	ErrNoBuffer = op.ErrNoBuffer
	// ErrBufferConflict: Buffer and BufferList are both set; one or the
	// other, as .NET requires.
	ErrBufferConflict = op.ErrBufferConflict
	// ErrInProgress: the Args is still used by an operation that has not
	// completed (Completed has not been raised yet).
	ErrInProgress = op.ErrInProgress
	// ErrBadFlags: Flags holds MSG_* bits a send engine cannot honour
	// (MSG_DONTWAIT, MSG_WAITALL as a user flag, unknown bits...).
	ErrBadFlags = op.ErrBadFlags
)

// Error is the result of a send or receive that did not succeed: which
// it was, the SocketError and the errno behind it. errors.Is(err,
// syscall.EPIPE) works through Unwrap.
type Error struct {
	Op    string // "send" or "receive"
	Code  SocketError
	Errno syscall.Errno
}

func (e *Error) Error() string {
	return e.Op + ": " + e.Code.String() + " (" + e.Errno.Error() + ")"
}

// Timeout reports a send that ran out of time (TimedOut: its Timeout, or
// the kernel's ETIMEDOUT), so that a *net.OpError around it — Write's
// errors — is a net.Error whose Timeout() is true, as net.Conn's are.
func (e *Error) Timeout() bool { return e.Errno.Timeout() }

// Unwrap returns the errno.
func (e *Error) Unwrap() error { return e.Errno }
