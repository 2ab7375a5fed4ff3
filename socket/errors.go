package socket

import "errors"

// Errors returned by SendAsync and the constructors. Their text never
// changes; compare with errors.Is.
var (
	// ErrClosed: the Socket (or its Engine) was closed.
	ErrClosed = errors.New("socket: closed")
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
