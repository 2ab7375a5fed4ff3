package socket

import "time"

// Options are the same on every platform, so that a program written for
// Linux compiles everywhere (and fails at run time with ErrNotSupported
// off Linux).

// Option configures a Socket.
type Option func(*options)

type options struct {
	eng          *Engine
	batch        bool
	async        bool
	maxInflight  int
	writeTimeout time.Duration
	chunkLimit   int // ReceiveChunks: chunk.go
}

// WithBatching puts a socket in batching mode, for pipelines that keep
// many sends in flight: SendAsync never submits inline; sends accumulate
// on the socket and leave from the engine's reaper, coalesced (many stream
// sends in one SENDMSG; on UDP sockets, a run of equal-length datagrams in
// one UDP GSO sendmsg), with the wires of other sockets in one
// io_uring_enter. Every SendAsync then returns pending == true and
// Completed reports each send, in order. Without it, a send on an idle
// socket goes out at once and usually completes synchronously. It has no
// effect on the epoll backend.
func WithBatching() Option { return func(o *options) { o.batch = true } }

// WithAsyncCompletions makes every SendAsync and ReceiveAsync on the
// socket submit its request and return pending == true without looking
// for the result: Completed reports each one, on the engine's goroutine.
// For relays whose Completed handlers do the rest of the work (receive →
// send → receive): the goroutine that starts them never takes the
// completion lock, never picks up other sockets' completions, so never
// has to wake the reaper for them. Without it, a send or receive that
// finds the socket ready completes synchronously. It has no effect on the
// epoll backend.
func WithAsyncCompletions() Option { return func(o *options) { o.async = true } }

// WithEngine runs the socket's sends on e instead of the DefaultEngine.
func WithEngine(e *Engine) Option { return func(o *options) { o.eng = e } }

// WithWriteTimeout gives every Write and WriteAsync on the socket a
// sendop.Args.Timeout of d: a write still on the wire after d fails with
// TimedOut (errors.Is(err, syscall.ETIMEDOUT)) and the bytes it sent.
func WithWriteTimeout(d time.Duration) Option { return func(o *options) { o.writeTimeout = d } }

// WithMaxInflightBytes bounds the bytes WriteAsync keeps in flight on the
// socket: past n, WriteAsync waits until completions bring it below. One
// write larger than n is let through alone. It bounds a proxy's memory per
// connection when the peer reads slower than data arrives. WriteAsync must
// not be called from a Completed handler on such a socket: waiting there
// would hold up the completions it waits for.
func WithMaxInflightBytes(n int) Option { return func(o *options) { o.maxInflight = n } }
