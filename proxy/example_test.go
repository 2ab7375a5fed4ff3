package proxy_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	"github.com/uringsend/uringsend/proxy"
)

// A proxy in front of an upstream (here a loopback echo server), one
// client through it, then a Shutdown that drains for at most 10 s.
func Example() {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()

	cfg := proxy.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Upstream = up.Addr().String()
	p, err := proxy.New(cfg, nil)
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve() }()

	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	c.Write([]byte("hello through the proxy"))
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	c.Close()
	fmt.Println(string(b))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		log.Print(err)
	}
	<-served
	// Output: hello through the proxy
}
