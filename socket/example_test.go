package socket_test

import (
	"fmt"
	"log"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// The .NET-style loop: hand an Args to SendAsync; when it returns false
// the result is ready now, otherwise Completed reports it later.
func ExampleSocket_SendAsync() {
	s, err := socket.Dial("tcp", "127.0.0.1:9000")
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	done := make(chan struct{})
	report := func(e *sendop.Args) {
		fmt.Println(e.BytesTransferred(), e.SocketError())
	}
	e := &sendop.Args{
		Completed: func(e *sendop.Args) { // on the engine's goroutine
			report(e)
			close(done)
		},
	}
	e.SetBuffer([]byte("hello"))
	pending, err := s.SendAsync(e)
	if err != nil {
		log.Fatal(err) // nothing was sent
	}
	if !pending {
		report(e) // completed synchronously: Completed is not raised
		return
	}
	<-done
}

// Keep a socket busy from Completed: each completion sends the next
// message with the same Args.
func ExampleSocket_SendAsync_resend() {
	eng, err := socket.NewEngine(socket.EngineConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	s, err := socket.Dial("tcp", "127.0.0.1:9000", socket.WithEngine(eng))
	if err != nil {
		log.Fatal(err)
	}
	msgs := [][]byte{[]byte("one"), []byte("two"), []byte("three")}
	done := make(chan struct{})
	next := func(e *sendop.Args) {
		for len(msgs) > 0 && e.SocketError() == sendop.Success {
			e.SetBuffer(msgs[0])
			msgs = msgs[1:]
			if pending, err := s.SendAsync(e); err != nil || pending {
				return // Completed calls next again
			}
		}
		close(done)
	}
	e := &sendop.Args{Completed: next}
	next(e)
	<-done
	s.Close()
}

// A BufferList goes out as one gathered sendmsg.
func ExampleSocket_SendAsync_bufferList() {
	s, err := socket.Dial("unix", "/run/example.sock")
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	var e sendop.Args
	e.SetBufferList([][]byte{[]byte("header\n"), []byte("body\n")})
	if pending, err := s.SendAsync(&e); err == nil && !pending {
		fmt.Println(e.BytesTransferred())
	}
}
