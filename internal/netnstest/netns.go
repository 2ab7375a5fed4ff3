package netnstest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
)

// ErrUnavailable: network namespaces cannot be made here (not root, no ip
// command, or `ip netns add` refused). The error New returns says which.
var ErrUnavailable = errors.New("netnstest: network namespaces unavailable")

// ErrGoexit: the function given to Host.Do called runtime.Goexit (t.Fatal,
// t.FailNow, t.Skip on that goroutine) instead of returning.
var ErrGoexit = errors.New("netnstest: the function run in the namespace called runtime.Goexit (t.Fatal?); return an error instead")

// Host is one network namespace of a Net.
type Host struct {
	// Name is the namespace's name (see `ip netns list`).
	Name string
	// Index is the host's position in its Net.
	Index int
	// Addr and Addr6 are the host's addresses on Link.
	Addr, Addr6 netip.Addr
	// Link is the name of the host's interface towards the others.
	Link string
}

// Net is a set of hosts joined by one link layer.
type Net struct {
	// Hosts are the hosts, in address order.
	Hosts []*Host
	// names are every namespace of the net (the bridge's too), for Close.
	names  []string
	closed bool
}

// HostPort returns "addr:port" for the host's IPv4 address.
func (h *Host) HostPort(port int) string {
	return net.JoinHostPort(h.Addr.String(), strconv.Itoa(port))
}

// HostPort6 returns "[addr]:port" for the host's IPv6 address.
func (h *Host) HostPort6(port int) string {
	return net.JoinHostPort(h.Addr6.String(), strconv.Itoa(port))
}

func (h *Host) String() string { return fmt.Sprintf("%s (%v)", h.Name, h.Addr) }

// Pair makes a network of two hosts joined by a veth pair and deletes it
// when the test ends. It skips the test when namespaces are unavailable
// and fails it on any other error.
func Pair(t testing.TB) (a, b *Host) {
	t.Helper()
	hs := Hosts(t, 2)
	return hs[0], hs[1]
}

// Hosts makes a network of n hosts (veth pair for 2, a bridge for more)
// and deletes it when the test ends. It skips the test when namespaces are
// unavailable and fails it on any other error.
func Hosts(t testing.TB, n int) []*Host {
	t.Helper()
	nw, err := New(n)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("needs network namespaces: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Errorf("netnstest: %v", err)
		}
	})
	return nw.Hosts
}
