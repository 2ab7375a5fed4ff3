package proxy

import (
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// No proxy, engine, pump or test goroutine may outlive the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scaled multiplies d by UR_TEST_TIMEOUT_SCALE (default 1).
func scaled(d time.Duration) time.Duration {
	if s := os.Getenv("UR_TEST_TIMEOUT_SCALE"); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
			return time.Duration(float64(d) * f)
		}
	}
	return d
}

// applyFlags sets cfg from command-line flags, as cmd/uringproxy does.
func applyFlags(t testing.TB, cfg *Config, args []string) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("flags %q: %v", args, err)
	}
}

// startProxy starts a proxy with cfg and serves it until the test ends
// (Close in t.Cleanup, unless the test stopped it).
func startProxy(t testing.TB, cfg Config) *Proxy {
	t.Helper()
	p, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve() }()
	t.Cleanup(func() {
		p.Close()
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return p
}

// echoServer accepts on loopback and runs handle for each connection in a
// goroutine of its own; it stops (and waits for them) in t.Cleanup.
func echoServer(t testing.TB, handle func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	conns := make(chan struct{}, 1024)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- struct{}{}
			go func() {
				defer func() { <-conns }()
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for range cap(conns) {
			conns <- struct{}{} // every handler has returned
		}
	})
	return ln.Addr().String()
}

// buffers is the number of slots the pump has made (net mode, engine mode
// with buffers of its own), or the chunks it holds (the receive pool).
func (p *pump) buffers() int {
	switch {
	case p.netPump != nil:
		return p.created
	case p.eng != nil:
		p.eng.mu.Lock()
		defer p.eng.mu.Unlock()
		return p.eng.created
	}
	return int(p.holding.Load())
}
