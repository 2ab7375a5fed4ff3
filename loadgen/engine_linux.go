package loadgen

import "github.com/uringsend/uringsend/socket"

// engineInfo returns the backend the engine runs on and, if BackendAuto
// fell back to epoll, why.
func engineInfo(e *socket.Engine) (backend string, fallback error) {
	return e.Backend(), e.FallbackReason()
}
