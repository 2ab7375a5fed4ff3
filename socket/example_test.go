package socket_test

import (
	"fmt"
	"io"
	"log"
	"net"

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

// Deliver the last sends, then end the stream: Close alone would abort
// what is still queued; CloseWrite lets it go out, then sends FIN.
func ExampleSocket_CloseWrite() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	got := make(chan string)
	go func() {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		b, _ := io.ReadAll(c) // until the FIN
		c.Close()
		got <- string(b)
	}()
	eng, err := socket.NewEngine(socket.EngineConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	s, err := socket.Dial("tcp", l.Addr().String(), socket.WithEngine(eng), socket.WithBatching())
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	for _, m := range []string{"one ", "two ", "three"} {
		e := new(sendop.Args)
		e.SetBuffer([]byte(m))
		if _, err := s.SendAsync(e); err != nil {
			log.Fatal(err)
		}
	}
	if err := s.CloseWrite(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-got)
	// Output: one two three
}
