//go:build linux

package socket_test

import (
	"fmt"
	"io"
	"log"
	"net"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// An echo relay without a buffer of its own: each chunk the kernel filled
// is sent back as it is, and released when that send has completed. The
// other end sends a line, ends its side and reads the echo.
func ExampleSocket_ReceiveChunks() {
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
		b, _ := io.ReadAll(c)
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
	defer s.Close()

	ended := make(chan error, 1)
	err = s.ReceiveChunks(func(ch *socket.Chunk, err error) {
		if ch == nil { // the stream's last call
			s.CloseWrite() // after the queued echoes
			ended <- err
			return
		}
		e := &sendop.Args{UserToken: ch}
		e.SetBuffer(ch.Bytes())
		e.Completed = func(e *sendop.Args) { e.UserToken.(*socket.Chunk).Release() }
		if pending, err := s.SendAsync(e); err != nil || !pending {
			ch.Release() // sent already (or refused): the chunk is free
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("echoed %q\n", <-echoed)
	fmt.Println("stream ended:", <-ended)
	// Output:
	// echoed "ping\n"
	// stream ended: EOF
}
