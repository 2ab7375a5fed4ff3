package socket

import (
	"unsafe"

	"github.com/uringsend/uringsend/internal/op"
	"github.com/uringsend/uringsend/sendop"
)

// An Args' engine half is an op.Op, its first field (sendop stops the
// build if it moves): the engine converts between the two in place, as
// the user's Args is what SendAsync and Completed carry and the op is
// what the queues and the wire hold.

// opOf returns e's op.
func opOf(e *sendop.Args) *op.Op { return (*op.Op)(unsafe.Pointer(e)) }

// argsOf returns the Args o belongs to.
func argsOf(o *op.Op) *sendop.Args { return (*sendop.Args)(unsafe.Pointer(o)) }

// claim is the first step of SendAsync and ReceiveAsync: e's op, marked in
// use and holding a snapshot of the send e describes; on an error e is
// untouched and free.
func claim(e *sendop.Args) (*op.Op, error) {
	if e == nil {
		return nil, sendop.ErrNilArgs
	}
	o := opOf(e)
	return o, o.Claim(e.Buffer(), e.BufferList(), e.Flags, e.Timeout)
}

// raise frees o's Args and calls its Completed handler.
func raise(o *op.Op) {
	e := argsOf(o)
	o.Free()
	if e.Completed != nil {
		e.Completed(e)
	}
}
