package socket

import (
	"errors"
	"sync/atomic"
)

// A Chunk is bytes a stream receive (ReceiveChunks) delivered, in a buffer
// of the engine's receive pool: on io_uring one the kernel filled itself,
// taken from a provided buffer ring only when data arrived. The handler
// may keep it past its return — typically it sends Bytes on another
// socket and calls Release from that send's Completed — and must call
// Release exactly once when done; a Chunk must not be used after (the
// engine reuses it for the buffer's next delivery, so a second Release is
// caught — it panics — only until then). Its bytes stay readable until
// Release, even past the Engine's Close. While a
// socket holds its limit of chunks (WithChunkLimit) it receives no more:
// a relay whose far side stops reading stops reading its near side, as a
// proxy should.
type Chunk struct {
	b    []byte
	s    *Socket
	pool *chunkPool
	bid  uint16
	out  atomic.Bool // delivered and not released
}

// Bytes returns the chunk's bytes. They stay valid until Release.
func (c *Chunk) Bytes() []byte { return c.b }

// defaultChunkLimit is how many chunks a socket's handler may hold before
// the socket stops receiving (16 of 16 KiB: 256 KiB a direction).
const defaultChunkLimit = 16

// WithChunkLimit bounds the chunks of the socket's stream receive that its
// handler holds (delivered, not yet released): at n the socket stops
// receiving until some are released. Default 16.
func WithChunkLimit(n int) Option { return func(o *options) { o.chunkLimit = n } }

// Errors of ReceiveChunks. Their text never changes.
var (
	// ErrNilHandler: ReceiveChunks needs a handler.
	ErrNilHandler = errors.New("socket: ReceiveChunks needs a handler")
	// ErrNotStream: ReceiveChunks receives a byte stream (SOCK_STREAM).
	ErrNotStream = errors.New("socket: ReceiveChunks needs a stream socket")
	// ErrReceiving: the socket already receives — a ReceiveChunks, or a
	// ReceiveAsync not yet completed (and ReceiveAsync after ReceiveChunks).
	ErrReceiving = errors.New("socket: the socket already receives")
)

// ErrBadRecvPool: EngineConfig's RecvBuffers is out of range. Its text
// never changes.
var ErrBadRecvPool = errors.New("socket: bad receive pool size")
