package socket

import (
	"errors"
	"net"
)

// Errors returned by SendAsync and the constructors. Their text never
// changes; compare with errors.Is.
var (
	// ErrClosed: the Socket (or its Engine) was closed. errors.Is(err,
	// net.ErrClosed) holds for it too, so code written for Go's net
	// recognises it.
	ErrClosed error = closedError{}
	// ErrWriteShutdown: CloseWrite has shut the socket's send side down.
	ErrWriteShutdown = errors.New("socket: send side shut down")
	// ErrNotConnected: the socket has no peer — a stream socket that is
	// not connected, or a datagram socket without a default destination.
	ErrNotConnected = errors.New("socket: not connected")
	// ErrNotSocket: the descriptor given to FromFD is not a socket.
	ErrNotSocket = errors.New("socket: not a socket")
	// ErrBadBackend: EngineConfig.Backend names no backend.
	ErrBadBackend = errors.New("socket: unknown backend (want auto, io_uring or epoll)")
	// ErrBadZeroCopy: EngineConfig.ZeroCopy names no mode.
	ErrBadZeroCopy = errors.New("socket: unknown zero-copy mode (want auto, on or off)")
	// ErrBadEntries: EngineConfig.Entries is too small for the engine.
	ErrBadEntries = errors.New("socket: EngineConfig.Entries must be 0 (default) or at least 2")
	// ErrNotSupported: uringsend runs on Linux only.
	ErrNotSupported = errors.New("socket: not supported on this platform")
)

// closedError is ErrClosed: its own value, which is also net.ErrClosed to
// errors.Is.
type closedError struct{}

func (closedError) Error() string        { return "socket: closed" }
func (closedError) Is(target error) bool { return target == net.ErrClosed }
