//go:build !linux

package socket

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/uringsend/uringsend/sendop"
)

// Engine is not available on this platform.
type Engine struct{}

// Backend returns "".
func (e *Engine) Backend() string { return "" }

// ZeroCopySends returns 0.
func (e *Engine) ZeroCopySends() uint64 { return 0 }

// FallbackReason returns ErrNotSupported.
func (e *Engine) FallbackReason() error { return ErrNotSupported }

// Stats returns zero counters.
func (e *Engine) Stats() EngineStats { return EngineStats{} }

// DefaultEngine returns ErrNotSupported.
func DefaultEngine() (*Engine, error) { return nil, ErrNotSupported }

// DialContext returns ErrNotSupported.
func DialContext(ctx context.Context, network, address string, opts ...Option) (*Socket, error) {
	return nil, ErrNotSupported
}

// Write returns ErrNotSupported.
func (s *Socket) Write(p []byte) (int, error) { return 0, ErrNotSupported }

// WriteAsync returns ErrNotSupported.
func (s *Socket) WriteAsync(p []byte, done func(int, error)) error { return ErrNotSupported }

// NewEngine returns ErrNotSupported.
func NewEngine(cfg EngineConfig) (*Engine, error) { return nil, ErrNotSupported }

// Close does nothing.
func (e *Engine) Close() error { return nil }

// Socket is not available on this platform.
type Socket struct{}

// Dial returns ErrNotSupported.
func Dial(network, address string, opts ...Option) (*Socket, error) { return nil, ErrNotSupported }

// FromConn returns ErrNotSupported.
func FromConn(c net.Conn, opts ...Option) (*Socket, error) { return nil, ErrNotSupported }

// FromFD returns ErrNotSupported.
func FromFD(fd int, opts ...Option) (*Socket, error) { return nil, ErrNotSupported }

// SendAsync returns ErrNotSupported.
func (s *Socket) SendAsync(e *sendop.Args) (bool, error) { return false, ErrNotSupported }

// ReceiveAsync returns ErrNotSupported.
func (s *Socket) ReceiveAsync(e *sendop.Args) (bool, error) { return false, ErrNotSupported }

// Errors of ReceiveAsync (see the Linux documentation).
var (
	ErrReceiveBufferList = errors.New("socket: ReceiveAsync takes a Buffer, not a BufferList")
	ErrEmptyBuffer       = errors.New("socket: ReceiveAsync needs a Buffer of at least one byte")
)

// Close does nothing.
func (s *Socket) Close() error { return nil }

// CloseWrite shuts down the sending side once queued sends are out.
func (s *Socket) CloseWrite() error { return ErrNotSupported }

// FD returns -1.
func (s *Socket) FD() int { return -1 }

// Backend returns "".
func (s *Socket) Backend() string { return "" }

// InflightBytes returns 0.
func (s *Socket) InflightBytes() int { return 0 }

// ReadFrom returns ErrNotSupported.
func (s *Socket) ReadFrom(r io.Reader) (int64, error) { return 0, ErrNotSupported }

// Listener is not available on this platform.
type Listener struct{}

// Listen returns ErrNotSupported.
func Listen(network, address string, opts ...Option) (*Listener, error) { return nil, ErrNotSupported }

// Accept returns ErrNotSupported.
func (l *Listener) Accept() (*Socket, error) { return nil, ErrNotSupported }

// Addr returns nil.
func (l *Listener) Addr() net.Addr { return nil }

// Close does nothing.
func (l *Listener) Close() error { return nil }

type chunkPool struct{}

// ReceiveChunks returns ErrNotSupported.
func (s *Socket) ReceiveChunks(h func(c *Chunk, err error)) error { return ErrNotSupported }

// Release does nothing.
func (c *Chunk) Release() {}
