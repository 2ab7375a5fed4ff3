package socket_test

import (
	"fmt"
	"io"
	"log"
	"net"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// An echo loop on one Args: receive, send what came, receive again —
// all on the engine's goroutine, without a goroutine of its own. The
// other end sends a line, ends its side and reads the echo.
func ExampleSocket_ReceiveAsync() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	echoed := make(chan string)
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("ping\n"))
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c) // until the echo loop closes
		echoed <- string(b)
	}()
	c, err := l.Accept()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	s, err := socket.FromConn(c)
	if err != nil {
		log.Fatal(err)
	}

	buf := make([]byte, 32<<10)
	e := &sendop.Args{}
	sending := false
	next := func(e *sendop.Args) { // a result is in e
		for {
			if e.Err() != nil || !sending && e.BytesTransferred() == 0 {
				s.CloseWrite() // an error, or the peer's end of stream
				s.Close()
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
			if err != nil {
				s.Close()
				return
			}
			if pending {
				return // Completed (next) goes on
			}
		}
	}
	e.Completed = next
	e.SetBuffer(buf)
	if pending, err := s.ReceiveAsync(e); err == nil && !pending {
		next(e)
	}
	fmt.Print(<-echoed)
	// Output: ping
}
