//go:build linux

package socket

import "net"

// Listener accepts connections as Sockets.
type Listener struct {
	l    net.Listener
	opts []Option
}

// Listen listens on network (tcp, tcp4, tcp6, unix, unixpacket) and
// address with Go's net.Listen.
func Listen(network, address string, opts ...Option) (*Listener, error) {
	l, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return &Listener{l: l, opts: opts}, nil
}

// Accept waits for the next connection and returns it as a Socket that
// owns it.
func (l *Listener) Accept() (*Socket, error) {
	c, err := l.l.Accept()
	if err != nil {
		return nil, err
	}
	s, err := own(c, l.opts)
	if err != nil {
		c.Close()
	}
	return s, err
}

// Addr returns the listener's address.
func (l *Listener) Addr() net.Addr { return l.l.Addr() }

// Close stops listening. Accepted Sockets stay open.
func (l *Listener) Close() error { return l.l.Close() }
