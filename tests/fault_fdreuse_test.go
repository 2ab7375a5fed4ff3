//go:build linux

package tests

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// Descriptor reuse: a socket is closed while its sends are being cancelled
// (a stalled head on the wire, hundreds queued) and, at the same time,
// another goroutine keeps opening sockets to a different peer until one
// gets the closed socket's descriptor number, and sends on it at once. No
// byte of the old socket's data may reach the new peer: the new peer gets
// exactly the new socket's bytes, the old peer a prefix of the old
// stream. Half the rounds close from a Completed handler. The new sockets
// are made by Dial and by FromFD of a raw socket(2).
func TestFaultFDReuse(t *testing.T) {
	rounds := 12 * faultRounds(1)
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		// The new peer: every connection's bytes are kept apart.
		lb, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer lb.Close()
		type conn struct {
			c   net.Conn
			got []byte
			err error
		}
		var connsMu sync.Mutex
		var conns []*conn
		var readers sync.WaitGroup
		readers.Go(func() {
			for {
				c, err := lb.Accept()
				if err != nil {
					return
				}
				cn := &conn{c: c}
				connsMu.Lock()
				conns = append(conns, cn)
				connsMu.Unlock()
				readers.Go(func() {
					buf := make([]byte, 64<<10)
					for {
						n, err := c.Read(buf)
						cn.got = append(cn.got, buf[:n]...)
						if err != nil {
							if !errors.Is(err, net.ErrClosed) && err != io.EOF {
								cn.err = err
							}
							return
						}
					}
				})
			}
		})
		defer func() {
			lb.Close()
			connsMu.Lock()
			for _, cn := range conns {
				cn.c.Close()
			}
			connsMu.Unlock()
			readers.Wait()
		}()

		// What a new socket sends: never a byte of the old streams (the
		// old data is cut from the random pool, this is a constant).
		marker := bytes.Repeat([]byte{0xB7}, 32<<10)
		var dialed atomic.Int64 // connections the openers made to the new peer
		reused, fromHandler := 0, 0
		var newSocks []*socket.Socket
		for round := range rounds {
			old, oldPeer := streamPair(t, eng, []string{"tcp", "unix"}[round%2], small)
			gate := make(chan struct{})
			r := startPeerReader(t, oldPeer, peerOpts{gate: gate})
			oldFD := old.FD()
			shapes := randomShapes(t, 300, 32<<10, 6, true)
			tr := newTracker(t, len(shapes))
			viaHandler := round%2 == 1
			closed := make(chan error, 1)
			var closeCalled, closeReturned atomic.Bool
			var once sync.Once
			args := queueAll(t, old, shapes, tr, func(int, *sendop.Args) {
				if viaHandler {
					once.Do(func() {
						closeCalled.Store(true)
						err := closeSocket(old)
						closeReturned.Store(true)
						closed <- err
					})
				}
			})

			// The opener: new sockets until one has oldFD (or the old
			// socket's Close has returned and a few more were tried).
			found := make(chan *socket.Socket, 1)
			go func() {
				var extra int
				var spare []*socket.Socket
				defer func() {
					for _, s := range spare {
						s.Close()
					}
				}()
				for {
					s := openNew(t, eng, lb.Addr().(*net.TCPAddr), len(spare)%2 == 0)
					if s == nil {
						found <- nil
						return
					}
					dialed.Add(1)
					if s.FD() == oldFD {
						if !closeCalled.Load() {
							t.Errorf("round %d: a new socket got descriptor %d of a socket not closed", round, oldFD)
						}
						// Send at once, while the old sends may still be
						// completing.
						// The result is read in Completed and handed over
						// (or read here after a synchronous return): after
						// a timeout the reaper may still be writing e.
						type result struct {
							se  sendop.SocketError
							err error
						}
						var e sendop.Args
						e.SetBuffer(marker)
						sent := make(chan result, 1)
						e.Completed = func(e *sendop.Args) { sent <- result{e.SocketError(), e.Err()} }
						pending, err := s.SendAsync(&e)
						var res result
						switch {
						case err != nil:
						case !pending:
							res = result{e.SocketError(), e.Err()}
						default:
							select {
							case res = <-sent:
							case <-time.After(longWait()):
								err = errors.New("no Completed")
							}
						}
						if err != nil || res.se != sendop.Success {
							t.Errorf("round %d: send on the new socket: %v %v", round, err, res.err)
						}
						found <- s
						return
					}
					spare = append(spare, s) // keep it: the next one takes the next number
					if closeReturned.Load() {
						if extra++; extra > 16 {
							found <- nil
							return
						}
					}
					if len(spare) > 64 {
						s := spare[0]
						spare = spare[1:]
						s.Close()
					}
				}
			}()
			if viaHandler {
				close(gate) // the first completion closes the socket
				if err := waitChan(t, closed, longWait(), "Close from Completed"); err != nil {
					t.Fatalf("round %d: Close from Completed: %v", round, err)
				}
				fromHandler++
			} else {
				closeCalled.Store(true)
				if err := closeSocket(old); err != nil {
					t.Fatalf("round %d: Close: %v", round, err)
				}
			}
			closeReturned.Store(true)
			s := waitChan(t, found, longWait(), "the opener")
			if s != nil {
				reused++
				newSocks = append(newSocks, s)
			}
			// The old socket's Close has returned, or (from a handler)
			// finishes later: a second Close returns ErrClosed once it has,
			// every Completed of the old socket returned.
			tr.wait(closing(t, old, socket.ErrClosed))
			want, _ := checkResults(t, args, shapes, sendop.OperationAborted)
			select {
			case <-gate:
			default:
				close(gate)
			}
			got, rerr := r.wait(t)
			if rerr != nil || string(got) != string(want) {
				t.Fatalf("round %d: old peer read %d bytes (%v), want the %d reported sent", round, len(got), rerr, len(want))
			}
		}
		for _, s := range newSocks {
			if err := closeSocket(s); err != nil {
				t.Fatal(err)
			}
		}
		// Every connection to the new peer carries the marker or nothing.
		// The listener closes only once it has accepted every connection
		// made to it: closing it resets those still in its backlog, and
		// their markers with them.
		deadline := time.Now().Add(longWait())
		for {
			connsMu.Lock()
			n := len(conns)
			connsMu.Unlock()
			if int64(n) >= dialed.Load() || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		lb.Close()
		connsMu.Lock()
		all := append([]*conn(nil), conns...)
		connsMu.Unlock()
		// Every new socket is closed (the opener closes its spares as it
		// returns): each connection reads to EOF, late bytes included.
		for _, cn := range all {
			cn.c.SetReadDeadline(time.Now().Add(longWait()))
		}
		readers.Wait()
		withMarker := 0
		for i, cn := range all {
			switch {
			case len(cn.got) == 0:
			case bytes.Equal(cn.got, marker):
				withMarker++
			default:
				t.Fatalf("new connection %d received %d bytes that are not (only) the new socket's: old data leaked (first difference at %d)",
					i, len(cn.got), firstDiff(cn.got, marker))
			}
		}
		t.Logf("%d rounds (%d closed from Completed): the descriptor came back at once in %d; %d new connections got their marker intact",
			rounds, fromHandler, reused, withMarker)
		if reused == 0 {
			t.Fatal("no new socket ever got the closed socket's descriptor: the test did not test reuse")
		}
		if withMarker != reused {
			t.Fatalf("%d markers arrived for %d reused descriptors", withMarker, reused)
		}
	})
}

// openNew opens a socket to addr on eng: socket.Dial, or a raw socket(2)
// connected by hand and given to FromFD.
func openNew(t *testing.T, eng *socket.Engine, addr *net.TCPAddr, raw bool) *socket.Socket {
	if !raw {
		s, err := socket.Dial("tcp", addr.String(), socket.WithEngine(eng))
		if err != nil {
			t.Errorf("Dial: %v", err)
			return nil
		}
		return s
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Errorf("socket: %v", err)
		return nil
	}
	sa := &unix.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		t.Errorf("connect: %v", err)
		return nil
	}
	s, err := socket.FromFD(fd, socket.WithEngine(eng))
	if err != nil {
		unix.Close(fd)
		t.Errorf("FromFD: %v", err)
		return nil
	}
	return s
}
