// Package copyproxy is the baseline the proxy is measured against: the
// plain Go TCP proxy, two goroutines per connection, each io.Copy one way
// and CloseWrite at EOF.
package copyproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards every connection accepted on its listener to an upstream.
type Proxy struct {
	ln       net.Listener
	upstream string
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

// Listen starts a proxy from addr to upstream; it serves until Close.
func Listen(addr, upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, upstream: upstream, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the address the proxy accepts on.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// EMFILE and the like: wait and go on, as net/http and
			// uringproxy do.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go p.handle(c.(*net.TCPConn))
	}
}

func (p *Proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	p.mu.Unlock()
}

func (p *Proxy) handle(client *net.TCPConn) {
	defer p.wg.Done()
	u, err := net.Dial("tcp", p.upstream)
	if err != nil {
		client.Close()
		return
	}
	upstream := u.(*net.TCPConn)
	p.track(client, true)
	p.track(upstream, true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(upstream, client)
		upstream.CloseWrite()
	}()
	io.Copy(client, upstream)
	client.CloseWrite()
	<-done
	p.track(client, false)
	p.track(upstream, false)
	client.Close()
	upstream.Close()
}

// Close stops accepting, closes every connection and waits for the
// goroutines.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}
