//go:build linux

package netnstest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// netnsInode names the network namespace of the calling thread.
func netnsInode(t *testing.T) string {
	t.Helper()
	s, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Two hosts ping-pong over TCP across the veth pair, with sockets made in
// their namespaces and used from ordinary goroutines; IPv6 too.
func TestPairPingPong(t *testing.T) {
	a, b := Pair(t)
	if a.Name == b.Name || !a.Exists() || !b.Exists() {
		t.Fatalf("hosts %v and %v", a, b)
	}
	for _, v6 := range []bool{false, true} {
		addr := b.HostPort(0)
		if v6 {
			addr = b.HostPort6(0)
		}
		l, err := b.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		echoed := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				echoed <- err
				return
			}
			defer c.Close()
			_, err = io.Copy(c, c)
			echoed <- err
		}()
		c, err := a.Dial("tcp", l.Addr().String())
		if err != nil {
			l.Close()
			t.Fatal(err)
		}
		if got := c.LocalAddr().(*net.TCPAddr).IP; v6 && !got.Equal(a.Addr6.AsSlice()) || !v6 && !got.Equal(a.Addr.AsSlice()) {
			t.Errorf("dialed from %v; want host a's address", got)
		}
		r := bufio.NewReader(c)
		for i := range 100 {
			fmt.Fprintf(c, "ping %d\n", i)
			line, err := r.ReadString('\n')
			if err != nil || line != fmt.Sprintf("ping %d\n", i) {
				t.Fatalf("round %d: %q, %v", i, line, err)
			}
		}
		c.Close()
		l.Close()
		if err := <-echoed; err != nil {
			t.Fatal(err)
		}
	}
}

// Root's loopback is not the hosts': a host cannot reach a listener of
// the test process's own namespace, nor another net's hosts.
func TestIsolated(t *testing.T) {
	a, _ := Pair(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := &net.Dialer{Timeout: 2 * time.Second}
	if c, err := a.DialWith(d, "tcp", l.Addr().String()); err == nil {
		c.Close()
		t.Fatal("a host reached the test's loopback listener")
	}
	c, d2 := Pair(t)
	l2, err := d2.Listen("tcp", d2.HostPort(0))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	// a and c have the same address as d2's peer, but on other links.
	if c.Addr != a.Addr {
		t.Fatalf("addresses %v, %v: want the same in every net", c.Addr, a.Addr)
	}
	if conn, err := c.Dial("tcp", l2.Addr().String()); err != nil {
		t.Fatalf("within the second net: %v", err)
	} else {
		conn.Close()
	}
}

// Do runs on a thread in the namespace; the caller's thread stays out.
func TestDo(t *testing.T) {
	a, b := Pair(t)
	root := netnsInode(t)
	var inA, inB string
	if err := a.Do(func() error { inA = netnsInode(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Do(func() error { inB = netnsInode(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if inA == root || inB == root || inA == inB {
		t.Fatalf("namespaces: root %s, a %s, b %s", root, inA, inB)
	}
	// Many calls in a row: every one is in the namespace, whatever thread
	// the runtime had (none is reused, so none is left in a namespace).
	for range 50 {
		if err := a.Do(func() error {
			if got := netnsInode(t); got != inA {
				return fmt.Errorf("in %s; want %s", got, inA)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := netnsInode(t); got != root {
			t.Fatalf("the test's thread is in %s after Do", got)
		}
	}
	want := errors.New("mine")
	if err := a.Do(func() error { return want }); err != want {
		t.Fatalf("Do returned %v; want fn's error", err)
	}
	if err := a.Do(func() error { runtime.Goexit(); return nil }); !errors.Is(err, ErrGoexit) {
		t.Fatalf("Goexit in Do: %v; want ErrGoexit", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("recovered %v; want the panic of fn", p)
			}
		}()
		a.Do(func() error { panic("boom") })
	}()
}

// Command runs in the namespace: it sees the host's address.
func TestCommand(t *testing.T) {
	a, _ := Pair(t)
	out, err := a.Command("ip", "-o", "addr", "show", "dev", a.Link).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), a.Addr.String()+"/24") || !strings.Contains(string(out), a.Addr6.String()+"/64") {
		t.Fatalf("ip addr in %s:\n%s", a.Name, out)
	}
}

// Three hosts on a bridge reach each other; Close deletes every namespace
// (the bridge's too), and a second Close does nothing.
func TestBridgeAndClose(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	nw, err := New(3)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	if len(nw.Hosts) != 3 || len(nw.names) != 4 {
		t.Fatalf("%d hosts, %d namespaces", len(nw.Hosts), len(nw.names))
	}
	for _, from := range nw.Hosts {
		for _, to := range nw.Hosts {
			if from == to {
				continue
			}
			l, err := to.Listen("tcp", to.HostPort(0))
			if err != nil {
				t.Fatal(err)
			}
			c, err := from.Dial("tcp", l.Addr().String())
			if err != nil {
				l.Close()
				t.Fatalf("%v -> %v: %v", from, to, err)
			}
			p, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			if got := p.RemoteAddr().(*net.TCPAddr).IP; !got.Equal(from.Addr.AsSlice()) {
				t.Errorf("%v -> %v: accepted from %v", from, to, got)
			}
			p.Close()
			c.Close()
			l.Close()
		}
	}
	if err := nw.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range nw.names {
		if _, err := os.Stat(netnsDir + "/" + name); !os.IsNotExist(err) {
			t.Errorf("namespace %s still there after Close (%v)", name, err)
		}
	}
	if err := nw.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// Pair's namespaces go with the test (t.Cleanup), and names never repeat.
func TestCleanup(t *testing.T) {
	var hosts []*Host
	t.Run("pair", func(t *testing.T) {
		a, b := Pair(t)
		c, d := Pair(t)
		seen := map[string]bool{}
		for _, h := range []*Host{a, b, c, d} {
			if seen[h.Name] {
				t.Fatalf("name %s twice", h.Name)
			}
			seen[h.Name] = true
		}
		hosts = append(hosts, a, b, c, d)
	})
	if len(hosts) == 0 {
		t.Skip("no namespaces")
	}
	for _, h := range hosts {
		if h.Exists() {
			t.Errorf("namespace %s still there after its test", h.Name)
		}
	}
}
