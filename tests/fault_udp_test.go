//go:build linux

package tests

import (
	"errors"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// A datagram storm to a closed port: a connected UDP socket (and a
// connected unixgram socket) whose peer is gone. The kernel answers with
// ICMP port unreachable (unix: the peer socket is gone) and later sends
// fail with ECONNREFUSED (unixgram: the first one; then ENOTCONN, as the
// kernel forgets the dead peer). Several goroutines send thousands of datagrams,
// some from Completed: each completes exactly once, with Success (all of
// it) or ConnectionRefused (nothing; unixgram: or NotConnected), never anything else, never a hang;
// the socket closes cleanly afterwards.
func TestFaultDatagramStormClosedPort(t *testing.T) {
	const goroutines, per = 4, 400
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		for _, network := range []string{"udp", "unixgram"} {
			t.Run(network, func(t *testing.T) {
				s := dialClosed(t, eng, network)
				rng := newRand(t)
				n := goroutines * per
				shapes := make([]shape, n)
				for i := range shapes {
					shapes[i] = randomShape(rng, 1400, 4)
				}
				tr := newTracker(t, n)
				args := make([]sendop.Args, n)
				var refused, notConn, ok atomic.Int64
				record := func(i int, e *sendop.Args) {
					switch e.SocketError() {
					case sendop.Success:
						if e.BytesTransferred() != shapes[i].total() {
							t.Errorf("datagram %d: Success with %d of %d bytes", i, e.BytesTransferred(), shapes[i].total())
						}
						ok.Add(1)
					case sendop.ConnectionRefused:
						if !errors.Is(e.Err(), syscall.ECONNREFUSED) || e.BytesTransferred() != 0 {
							t.Errorf("datagram %d: %v with %d bytes", i, e.Err(), e.BytesTransferred())
						}
						refused.Add(1)
					case sendop.NotConnected:
						// unixgram: after the first ECONNREFUSED the kernel
						// drops the dead peer, and sends say ENOTCONN.
						if network != "unixgram" || !errors.Is(e.Err(), syscall.ENOTCONN) || e.BytesTransferred() != 0 {
							t.Errorf("datagram %d: %v with %d bytes", i, e.Err(), e.BytesTransferred())
						}
						notConn.Add(1)
					default:
						t.Errorf("datagram %d: %v (%v)", i, e.SocketError(), e.Err())
					}
				}
				// Half the datagrams are sent by the goroutines, the other
				// half from Completed of the first half (a resend chain).
				var wg sync.WaitGroup
				for g := range goroutines {
					wg.Go(func() {
						for i := g * per; i < g*per+per/2; i++ {
							k := i + per/2
							shapes[i].apply(&args[i])
							args[i].UserToken = i
							args[i].Completed = func(e *sendop.Args) {
								i := e.UserToken.(int)
								record(i, e)
								tr.completed(i)
								sendDgram(t, s, &args[k], shapes[k], k, tr, record)
							}
							pending, err := sendAsync(s, &args[i])
							if err != nil {
								t.Errorf("datagram %d: %v", i, err)
								tr.refused(i)
								tr.refused(k)
								continue
							}
							if !pending {
								record(i, &args[i])
								tr.sync(i)
								sendDgram(t, s, &args[k], shapes[k], k, tr, record)
							}
						}
					})
				}
				wg.Wait()
				tr.wait(closing(t, s, nil))
				t.Logf("%d datagrams: %d sent, %d refused, %d not connected", n, ok.Load(), refused.Load(), notConn.Load())
				if refused.Load() == 0 {
					t.Error("no send was refused: the port was not closed")
				}
			})
		}
	})
}

// sendDgram sends shape sh with e (datagram i), recording the result.
func sendDgram(t *testing.T, s *socket.Socket, e *sendop.Args, sh shape, i int, tr *tracker, record func(int, *sendop.Args)) {
	sh.apply(e)
	e.UserToken = i
	e.Completed = func(e *sendop.Args) {
		record(i, e)
		tr.completed(i)
	}
	pending, err := sendAsync(s, e)
	switch {
	case err != nil:
		t.Errorf("datagram %d: %v", i, err)
		tr.refused(i)
	case !pending:
		record(i, e)
		tr.sync(i)
	}
}

// dialClosed returns a Socket connected to an address nobody listens on
// any more: a UDP port bound and released, a unixgram socket closed.
func dialClosed(t *testing.T, eng *socket.Engine, network string) *socket.Socket {
	t.Helper()
	var addr string
	var c net.Conn
	switch network {
	case "udp":
		uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		c, addr = uc, uc.LocalAddr().String()
	case "unixgram":
		addr = filepath.Join(shortTempDir(t), "g")
		uc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		c = uc
	}
	s, err := socket.Dial(network, addr, socket.WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	closeSocketAtEnd(t, s)
	c.Close()
	return s
}
