//go:build linux

package socket

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// FromConn learns a TCP or UDP socket's type, whether it is connected and
// its peer from the net.Conn itself; only other sockets are asked of the
// kernel. peerAddr is the one getpeername the engine makes.
func TestInfoOf(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	uc, err := net.Dial("udp", "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	ul, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	uxc := unixConn(t, fds[1])
	defer uxc.Close()

	lo := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		name string
		c    net.Conn
		want sockInfo
	}{
		{"tcp", tc, sockInfo{typ: unix.SOCK_STREAM, connected: true}},
		{"udp dialled", uc, sockInfo{typ: unix.SOCK_DGRAM, connected: true}},
		{"udp unconnected", ul, sockInfo{typ: unix.SOCK_DGRAM}},
		{"unix", uxc, sockInfo{typ: -1}},
	} {
		got := infoOf(tc.c)
		if got.laddr != tc.c.LocalAddr() || got.raddr != tc.c.RemoteAddr() {
			t.Errorf("%s: infoOf addresses %v %v, want the conn's %v %v", tc.name, got.laddr, got.raddr, tc.c.LocalAddr(), tc.c.RemoteAddr())
		}
		got.laddr, got.raddr = nil, nil
		if got != tc.want {
			t.Errorf("%s: infoOf = %+v, want %+v", tc.name, got, tc.want)
		}
	}

	// peerAddr: the IP of an inet peer, no IP but no error for AF_UNIX,
	// ENOTCONN without a peer.
	rc, _ := tc.(*net.TCPConn).SyscallConn()
	var tfd int
	rc.Control(func(fd uintptr) { tfd = int(fd) })
	if a, err := peerAddr(tfd); err != nil || a != lo {
		t.Errorf("peerAddr(tcp) = %v, %v; want %v", a, err, lo)
	}
	if a, err := peerAddr(fds[0]); err != nil || a.IsValid() {
		t.Errorf("peerAddr(socketpair) = %v, %v; want no address, no error", a, err)
	}
	rc, _ = ul.SyscallConn()
	var ufd int
	rc.Control(func(fd uintptr) { ufd = int(fd) })
	if _, err := peerAddr(ufd); !errors.Is(err, unix.ENOTCONN) {
		t.Errorf("peerAddr(unconnected udp) err = %v, want ENOTCONN", err)
	}

	// zeroCopyPeer uses what infoOf knew; the kernel's answer is the same.
	for _, loopbackToo := range []bool{false, true} {
		known := zeroCopyPeer(-1, infoOf(tc), loopbackToo) // -1: a syscall would fail
		asked := zeroCopyPeer(tfd, sockInfo{typ: unix.SOCK_STREAM}, loopbackToo)
		if known != loopbackToo || asked != loopbackToo {
			t.Errorf("zeroCopyPeer(loopback, loopbackToo=%v) = %v from the conn, %v from the kernel; want %v", loopbackToo, known, asked, loopbackToo)
		}
	}
}

// unixConn wraps a duplicate of fd in a *net.UnixConn.
func unixConn(t *testing.T, fd int) net.Conn {
	t.Helper()
	d, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(d), "unix")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A Socket of an accepted TCP connection registers without asking the
// kernel what the connection already told (SO_TYPE, getpeername): on
// io_uring, FromConn and Close allocate the Socket, SyscallConn's RawConn,
// the closure that reads the descriptor and Close's two channels, and
// nothing per syscall (they were 11 or 12 when x/sys's Getpeername ran
// twice per socket).
func TestFromConnTCPAllocs(t *testing.T) {
	eng, err := NewEngine(EngineConfig{Backend: BackendIOURing})
	if err != nil {
		t.Skip(err)
	}
	defer eng.Close()
	_, a := dialPeer(t, eng) // a: the accepted end, a *net.TCPConn
	allocs := testing.AllocsPerRun(200, func() {
		s, err := FromConn(a, WithEngine(eng))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 5 {
		t.Errorf("FromConn+Close of a TCP connection: %.1f allocations, want ≤ 5", allocs)
	}
}
