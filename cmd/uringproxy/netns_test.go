//go:build linux

package main

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/internal/netnstest"
	"golang.org/x/sys/unix"
)

// The proxy over a real path: uringproxy runs in one network namespace
// (with its upstream), its clients in another, joined by a veth pair, so
// that its sends to the clients are zero-copy as in production (the
// default ZeroCopy auto uses SEND_ZC towards non-loopback peers; reads of
// 32 KiB make wires above the 16 KiB threshold). One client asks for a
// lot and stops reading: the proxy's zero-copy send to it can finish only
// when that client acknowledges data it never will. Another client reads
// normally. Then SIGTERM: the proxy must exit within a few seconds and
// the good client must have got exactly its bytes.

// nsExitBound is how long the proxy may take to exit after the signal.
const nsExitBound = 5 * time.Second

func TestNetnsStalledClientShutdown(t *testing.T) {
	type tcase struct {
		name     string
		args     []string
		twice    bool // a second SIGTERM 500 ms after the first: close at once
		wantCode int
	}
	var cases []tcase
	for _, recv := range []string{"engine", "net"} {
		cases = append(cases,
			// A stalled client is reset after -send-timeout; the drain
			// then ends with it.
			tcase{"recv=" + recv + "/send-timeout", []string{"-recv", recv, "-send-timeout", "1s"}, false, 0},
			// Default timeouts: the drain would wait 30 s; the second
			// signal closes every connection at once.
			tcase{"recv=" + recv + "/second-signal", []string{"-recv", recv}, true, 130})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client, server := netnstest.Pair(t)
			up := startNsUpstream(t, server)
			p := startBinaryIn(t, server, up.addr(), c.args...)

			// The stalled client: a small receive buffer, a big request,
			// no reads.
			stalled, err := client.DialWith(&net.Dialer{Control: nsRcvbuf(8 << 10)}, "tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer stalled.Close()
			fmt.Fprintf(stalled, "GET %d\n", 64<<20)
			q := nsWaitStalled(t, stalled)
			t.Logf("stalled client: %d bytes in its receive queue, window closed", q)

			// A well-behaved client on another connection meanwhile.
			const size = 8 << 20
			good, err := client.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(good, "GET %d\n", size)
			good.SetReadDeadline(time.Now().Add(30 * time.Second))
			h := sha256.New()
			n, err := io.CopyN(h, good, size)
			switch {
			case err != nil:
				// Go on to the signal: how the proxy ends matters as much.
				t.Errorf("good client: %d of %d bytes, then %v (the proxy reset a client that reads)", n, size, err)
			case string(h.Sum(nil)) != string(nsPayloadSum(size)):
				t.Errorf("good client: %d bytes with the wrong SHA-256", n)
			}
			good.Close()

			// SIGTERM (twice for the second case): the proxy must be gone
			// within the bound.
			t0 := time.Now()
			p.cmd.Process.Signal(syscall.SIGTERM)
			if c.twice {
				select {
				case <-p.done:
				case <-time.After(500 * time.Millisecond):
					p.cmd.Process.Signal(syscall.SIGTERM)
				}
			}
			select {
			case <-p.done:
			case <-time.After(nsExitBound):
				t.Fatalf("uringproxy still running %v after SIGTERM%s, with a zero-copy send pending to a client that does not read (Socket.Close waits for the SEND_ZC notification, which needs the client's ACK)\n%s",
					nsExitBound, map[bool]string{true: " twice"}[c.twice], p.out.String())
			}
			took := time.Since(t0)
			code := p.cmd.ProcessState.ExitCode()
			t.Logf("uringproxy exited %d, %v after SIGTERM", code, took.Round(time.Millisecond))
			if code != c.wantCode {
				t.Fatalf("exit status %d; want %d\n%s", code, c.wantCode, p.out.String())
			}
		})
	}
}

// startBinaryIn runs the built uringproxy in host h (ip netns exec),
// listening on h's address, in front of upstream, and waits until it says
// where it listens. It is killed in t.Cleanup if the test has not stopped
// it.
func startBinaryIn(t *testing.T, h *netnstest.Host, upstream string, args ...string) *startedProxy {
	t.Helper()
	args = append([]string{"-listen", h.HostPort(0), "-upstream", upstream}, args...)
	return startCmd(t, h.Command(build(t), args...))
}

// nsRcvbuf is a Dialer.Control that sets SO_RCVBUF before connecting.
func nsRcvbuf(n int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n) })
		if err != nil {
			return err
		}
		return serr
	}
}

// nsWaitStalled waits until c has bytes queued that it did not read and
// the queue has stopped growing (its window is closed), and returns how
// many.
func nsWaitStalled(t *testing.T, c net.Conn) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	inq := func() (n int) {
		rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
		return n
	}
	soErr := func() (e int) {
		rc.Control(func(fd uintptr) { e, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR) })
		return e
	}
	deadline := time.Now().Add(5 * time.Second)
	last, since := -1, time.Now()
	for time.Now().Before(deadline) {
		if e := soErr(); e != 0 {
			t.Fatalf("the stalled client's connection failed before the test stalled it: %v (after %d bytes)", syscall.Errno(e), max(last, 0))
		}
		n := inq()
		if n != last {
			last, since = n, time.Now()
		} else if n > 0 && time.Since(since) >= 200*time.Millisecond {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the stalled client's receive queue did not settle (%d bytes)", last)
	return 0
}

// nsUpstream answers "GET n\n" with n bytes of nsPayload, then reads
// until the connection ends.
type nsUpstream struct {
	l     net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startNsUpstream(t *testing.T, h *netnstest.Host) *nsUpstream {
	t.Helper()
	l, err := h.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &nsUpstream{l: l, conns: map[net.Conn]bool{}}
	u.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.conns[c] = true
			u.mu.Unlock()
			u.wg.Go(func() { u.serve(c) })
		}
	})
	t.Cleanup(func() {
		l.Close()
		u.mu.Lock()
		for c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

func (u *nsUpstream) addr() string { return u.l.Addr().String() }

func (u *nsUpstream) serve(c net.Conn) {
	defer func() {
		c.Close()
		u.mu.Lock()
		delete(u.conns, c)
		u.mu.Unlock()
	}()
	r := bufio.NewReader(c)
	var n int64
	if _, err := fmt.Fscanf(r, "GET %d\n", &n); err != nil {
		return
	}
	if _, err := io.CopyN(c, nsPayload(), n); err != nil {
		return
	}
	io.Copy(io.Discard, r)
}

// nsPayload is the stream of bytes the upstream serves.
func nsPayload() io.Reader { return rand.NewChaCha8([32]byte{'n', 'e', 't', 'n', 's'}) }

// nsPayloadSum is the SHA-256 of the first n bytes of nsPayload.
func nsPayloadSum(n int64) []byte {
	h := sha256.New()
	io.CopyN(h, nsPayload(), n)
	return h.Sum(nil)
}
