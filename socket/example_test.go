package socket_test

import (
	"fmt"
	"io"
	"log"
	"net"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// peer stands in for the other end of the examples' connections: it
// accepts one connection on loopback and hands over everything it
// receives, once the sender has closed its side.
func peer() (addr string, received <-chan string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		defer l.Close()
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		b, _ := io.ReadAll(c) // until the FIN
		c.Close()
		got <- string(b)
	}()
	return l.Addr().String(), got
}

// The .NET-style loop: hand an Args to SendAsync; when it returns false
// the result is ready now, otherwise Completed reports it later.
func ExampleSocket_SendAsync() {
	addr, received := peer()
	s, err := socket.Dial("tcp", addr)
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
	if pending {
		<-done
	} else {
		report(e) // completed synchronously: Completed is not raised
	}
	s.CloseWrite()
	fmt.Println(<-received)
	// Output:
	// 5 Success
	// hello
}

// Keep a socket busy from Completed: each completion sends the next
// message with the same Args. An error from SendAsync means nothing was
// sent and nothing will be raised: the loop ends there too.
func ExampleSocket_SendAsync_resend() {
	addr, received := peer()
	s, err := socket.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	msgs := [][]byte{[]byte("one "), []byte("two "), []byte("three")}
	done := make(chan error, 1)
	next := func(e *sendop.Args) { // a result is in e
		for len(msgs) > 0 && e.Err() == nil {
			e.SetBuffer(msgs[0])
			msgs = msgs[1:]
			pending, err := s.SendAsync(e)
			if err != nil {
				done <- err
				return
			}
			if pending {
				return // Completed calls next again
			}
		}
		done <- e.Err()
	}
	e := &sendop.Args{Completed: next}
	next(e)
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	s.CloseWrite()
	fmt.Println(<-received)
	// Output: one two three
}

// A BufferList goes out as one gathered sendmsg.
func ExampleSocket_SendAsync_bufferList() {
	addr, received := peer()
	s, err := socket.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	done := make(chan struct{})
	e := sendop.Args{Completed: func(*sendop.Args) { close(done) }}
	e.SetBufferList([][]byte{[]byte("header\n"), []byte("body\n")})
	pending, err := s.SendAsync(&e)
	if err != nil {
		log.Fatal(err)
	}
	if pending {
		<-done
	}
	fmt.Println(e.BytesTransferred(), e.SocketError())
	s.CloseWrite()
	fmt.Print(<-received)
	// Output:
	// 12 Success
	// header
	// body
}

// Deliver the last sends, then end the stream: Close alone would abort
// what is still queued; CloseWrite lets it go out, then sends FIN.
func ExampleSocket_CloseWrite() {
	addr, received := peer()
	eng, err := socket.NewEngine(socket.EngineConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	s, err := socket.Dial("tcp", addr, socket.WithEngine(eng), socket.WithBatching())
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
	fmt.Println(<-received)
	// Output: one two three
}
