//go:build linux

package tests

import (
	"bytes"
	"errors"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// connPair returns a client net.Conn (tcp or unix) and the accepted peer.
func connPair(t *testing.T, network string, cfg pairConfig) (net.Conn, net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(shortTempDir(t), "c")
	}
	lc := net.ListenConfig{Control: controlBufs(t, cfg)}
	l, err := lc.Listen(t.Context(), network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial(network, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if cfg.sndbuf > 0 {
		rc, err := c.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		rc.Control(func(fd uintptr) { setBufs(t, int(fd), cfg, true) })
	}
	p, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return c, p
}

// A Socket made by FromConn sends on the connection's descriptor, and
// Close leaves the connection open and usable.
func TestFromConnKeepsConn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, network := range []string{"tcp", "unix"} {
			t.Run(network, func(t *testing.T) {
				rng := newRand(t)
				c, peer := connPair(t, network, pairConfig{})
				r := startReaderKeep(t, peer, readOpts{}, true)
				s, err := socket.FromConn(c, socket.WithEngine(eng))
				if err != nil {
					t.Fatal(err)
				}
				closeSocketAtEnd(t, s)
				var want bytes.Buffer
				for range 20 {
					sh := randomShape(rng, 8<<10, 4)
					sh.writePrefix(&want, -1)
					sendOne(t, s, sh)
				}
				if err := closeSocket(s); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if err := closeSocket(s); !errors.Is(err, socket.ErrClosed) {
					t.Fatalf("second Close: %v, want ErrClosed", err)
				}
				tail := []byte("written through the net.Conn after Socket.Close")
				if _, err := c.Write(tail); err != nil {
					t.Fatalf("net.Conn.Write after Socket.Close: %v", err)
				}
				want.Write(tail)
				if err := c.Close(); err != nil {
					t.Fatalf("net.Conn.Close after Socket.Close: %v (did Socket.Close close it?)", err)
				}
				r.wait(t)
				if !bytes.Equal(r.got, want.Bytes()) {
					t.Fatalf("peer received %d bytes, want %d", len(r.got), want.Len())
				}
			})
		}
	})
}

// Close of a FromConn Socket with sends pending aborts them and still
// leaves the connection usable (no write deadline left behind): the peer
// gets the bytes reported as sent, then what the net.Conn writes.
func TestFromConnCloseWithPending(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		rng := newRand(t)
		c, peer := connPair(t, "tcp", small)
		r := startReader(t, peer, readOpts{gated: true})
		s, err := socket.FromConn(c, socket.WithEngine(eng))
		if err != nil {
			t.Fatal(err)
		}
		closeSocketAtEnd(t, s)
		const n = 100
		tr := newTracker(t, n)
		args := make([]sendop.Args, n)
		shapes := make([]shape, n)
		for i := range args {
			shapes[i] = randomShape(rng, 64<<10, 8)
			shapes[i].apply(&args[i])
			args[i].UserToken = i
			args[i].Completed = func(e *sendop.Args) { tr.completed(e.UserToken.(int)) }
			pending, err := sendAsync(s, &args[i])
			if err != nil {
				t.Fatal(err)
			}
			if !pending {
				tr.sync(i)
			}
		}
		if err := closeSocket(s); err != nil {
			t.Fatalf("Close: %v", err)
		}
		tr.wait() // Close has returned: no Completed of s can follow
		want, byErr := checkPrefixes(t, args, shapes, sendop.OperationAborted)
		t.Logf("results: %v", byErr)
		if byErr[sendop.OperationAborted] == 0 {
			t.Fatal("nothing was aborted: the peer should have stalled the queue")
		}
		r.start()
		tail := []byte("tail")
		c.SetWriteDeadline(time.Now().Add(longWait()))
		if _, err := c.Write(tail); err != nil {
			t.Fatalf("net.Conn.Write after Socket.Close: %v", err)
		}
		c.SetWriteDeadline(time.Time{})
		want.Write(tail)
		if err := c.Close(); err != nil {
			t.Fatalf("net.Conn.Close: %v", err)
		}
		checkReceived(t, r, want)
	})
}
