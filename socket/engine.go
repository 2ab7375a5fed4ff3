package socket

import "github.com/uringsend/uringsend/ring"

// EngineConfig configures an Engine. The zero value is a good default.
type EngineConfig struct {
	// Backend is BackendAuto (""), BackendIOURing or BackendEpoll.
	Backend string
	// Rings is the number of io_uring instances (each with its own reaper
	// goroutine); sockets are spread over them. Default 1.
	Rings int
	// Entries is the SQ size of each ring. Default 256; at least 2 (a
	// send with a Timeout takes two SQEs, the send and its timeout).
	Entries uint32
	// CQEntries is the CQ size of each ring. Default 4 × Entries.
	CQEntries uint32
	// Ring is passed to ring.New for each ring, after Entries and
	// CQEntries are filled in; for experiments.
	Ring ring.Config
	// Metrics receives what the engine observes (a *metrics.Metrics, or
	// any Observer); nil means none, at the cost of one nil check per
	// send.
	Metrics Observer
	// ZeroCopy selects IORING_OP_SEND_ZC for wires of at least
	// ZeroCopyThreshold bytes on TCP sockets: ZeroCopyAuto (""), the
	// default, uses it towards non-loopback peers and stops on a socket
	// whose notification says the kernel copied anyway; ZeroCopyOn uses it
	// always (loopback too: for tests); ZeroCopyOff never. A zero-copy send
	// completes only after the kernel's notification that it no longer
	// reads the buffers.
	ZeroCopy string
	// ZeroCopyThreshold is the smallest wire sent with zero-copy.
	// Default 16 KiB.
	ZeroCopyThreshold int
	// RecvBuffers and RecvBufferSize size the receive pool of stream
	// receives (ReceiveChunks), one per ring on io_uring (a provided
	// buffer ring: RecvBuffers rounds up to a power of two, at most
	// 32768), one per engine on epoll. Memory is taken as the kernel
	// fills buffers; the pool is made on the first ReceiveChunks.
	// Defaults 1024 and 16 KiB.
	RecvBuffers    int
	RecvBufferSize int
}
