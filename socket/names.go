package socket

// Backend names, for EngineConfig.Backend and Engine.Backend.
const (
	BackendAuto    = "auto"     // io_uring, or epoll where io_uring is refused
	BackendIOURing = "io_uring" // io_uring only: NewEngine fails without it
	BackendEpoll   = "epoll"    // non-blocking sendmsg on Go's netpoller
)

// ZeroCopy modes, for EngineConfig.ZeroCopy.
const (
	ZeroCopyAuto = "auto"
	ZeroCopyOn   = "on"
	ZeroCopyOff  = "off"
)
