package op

import (
	"syscall"
	"time"
)

// testArgs stands in for sendop.Args, which this package cannot import:
// an Op first, and the caller's side of a send.
type testArgs struct {
	op        Op
	Flags     int
	Timeout   time.Duration
	Completed func(*testArgs)
	buf       []byte
	bufs      [][]byte
}

func (e *testArgs) SetBuffer(b []byte)          { e.buf = b }
func (e *testArgs) SetBufferList(bufs [][]byte) { e.bufs = bufs }
func (e *testArgs) BytesTransferred() int       { return e.op.Transferred() }
func (e *testArgs) Errno() syscall.Errno        { return e.op.Errno() }

// claim is what an engine's SendAsync does first.
func (e *testArgs) claim() error { return e.op.Claim(e.buf, e.bufs, e.Flags, e.Timeout) }

// raise is what an engine does to raise Completed.
func (e *testArgs) raise() {
	e.op.Free()
	if e.Completed != nil {
		e.Completed(e)
	}
}
