package socket_test

import (
	"log"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// An echo loop on one Args: receive, send what came, receive again —
// all on the engine's goroutine, without a goroutine of its own.
func ExampleSocket_ReceiveAsync() {
	s, err := socket.Dial("tcp", "127.0.0.1:7")
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 32<<10)
	e := &sendop.Args{}
	sending := false
	next := func(e *sendop.Args) { // a result is in e
		for {
			if e.Err() != nil || !sending && e.BytesTransferred() == 0 {
				s.Close() // an error, or the peer's end of stream
				return
			}
			var pending bool
			if sending = !sending; sending {
				e.SetBuffer(buf[:e.BytesTransferred()])
				pending, err = s.SendAsync(e)
			} else {
				e.SetBuffer(buf)
				pending, err = s.ReceiveAsync(e)
			}
			if err != nil || pending {
				return // Completed (next) goes on
			}
		}
	}
	e.Completed = next
	e.SetBuffer(buf)
	if pending, err := s.ReceiveAsync(e); err == nil && !pending {
		next(e)
	}
}
