package socket

// EngineStats is a snapshot of an Engine's cumulative counters: what its
// backend has asked of the kernel. Divided by the messages a program sent,
// they give its system-call cost per message — io_uring_enter calls and
// SQEs on io_uring, sendmsg calls on epoll.
type EngineStats struct {
	Backend string // BackendIOURing or BackendEpoll

	// io_uring, summed over the engine's rings.
	Enters           uint64 // io_uring_enter system calls
	Submitted        uint64 // SQEs the kernel consumed
	Reaped           uint64 // CQEs harvested
	Waits            uint64 // enters that waited for a completion
	Parks            uint64 // times a reaper slept in Go, nothing in the kernel
	SQFull           uint64 // times a submitter found the SQ full
	Overflows        uint64 // CQ overflows
	ZeroCopySends    uint64 // zero-copy wires completed
	StaleCompletions uint64 // CQEs that matched nothing (must stay 0)

	// The epoll backend's system calls (an io_uring engine sends AF_UNIX
	// datagrams this way too).
	SendCalls  uint64 // sendmsg(2) and sendto(2)
	RecvCalls  uint64 // recvfrom(2)
	WouldBlock uint64 // of those, EAGAIN answers: a wait in Go's netpoller followed
}
