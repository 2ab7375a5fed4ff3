package socket

import (
	"io"
	"net"

	"golang.org/x/sys/unix"
)

// opError wraps err, the error of a Write, WriteAsync or ReadFrom, as Go's
// net wraps a Conn's: a *net.OpError naming the operation, the network
// and both addresses, so that a log line says where. errors.Is and
// errors.As still reach what it wraps (ErrClosed, net.ErrClosed, the
// *sendop.Error, the errno). io.EOF and nil pass through.
func (s *Socket) opError(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	laddr, raddr := s.laddr, s.raddr
	if laddr == nil && !s.life.closing() {
		// FromFD: ask the kernel while the socket is open; once it is
		// closed its descriptor number may be another socket's.
		if sa, e := unix.Getsockname(s.fd); e == nil {
			laddr = netAddr(sa, s.stream)
		}
		if sa, e := unix.Getpeername(s.fd); e == nil {
			raddr = netAddr(sa, s.stream)
		}
	}
	network := ""
	if a := laddr; a != nil {
		network = a.Network()
	} else if a := raddr; a != nil {
		network = a.Network()
	}
	return &net.OpError{Op: op, Net: network, Source: laddr, Addr: raddr, Err: err}
}

// netAddr is sa as Go's net names it: a TCP, UDP or Unix address.
func netAddr(sa unix.Sockaddr, stream bool) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		if stream {
			return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
		}
		return &net.UDPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		zone := ""
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				zone = ifi.Name
			}
		}
		if stream {
			return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port, Zone: zone}
		}
		return &net.UDPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port, Zone: zone}
	case *unix.SockaddrUnix:
		if stream {
			return &net.UnixAddr{Name: sa.Name, Net: "unix"}
		}
		return &net.UnixAddr{Name: sa.Name, Net: "unixgram"}
	}
	return nil
}
