package socket

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
)

// Close with hundreds of sends queued behind a peer that does not read:
// each completes exactly once, the unsent ones with OperationAborted.
func TestCloseWithPendingCompletesEachOnce(t *testing.T) {
	for _, be := range []string{BackendIOURing, BackendEpoll} {
		t.Run(be, func(t *testing.T) {
			eng, err := NewEngine(EngineConfig{Backend: be})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			peer := make(chan net.Conn, 1)
			go func() {
				c, _ := l.Accept()
				peer <- c
			}()
			s, err := Dial("tcp", l.Addr().String(), WithEngine(eng))
			if err != nil {
				t.Fatal(err)
			}
			p := <-peer
			defer p.Close()
			const N = 500
			args := make([]sendop.Args, N)
			counts := make([]atomic.Int32, N)
			var wg sync.WaitGroup
			var aborted, ok atomic.Int32
			for i := range args {
				args[i].UserToken = i
				args[i].SetBuffer(make([]byte, 64<<10))
				wg.Add(1)
				args[i].Completed = func(e *sendop.Args) {
					counts[e.UserToken.(int)].Add(1)
					switch e.SocketError() {
					case sendop.OperationAborted:
						aborted.Add(1)
					case sendop.Success:
						ok.Add(1)
					default:
						t.Errorf("send %d: %v", e.UserToken, e.Err())
					}
					wg.Done()
				}
				pending, err := s.SendAsync(&args[i])
				if err != nil {
					t.Fatal(err)
				}
				if !pending {
					counts[i].Add(1)
					ok.Add(1)
					wg.Done()
				}
			}
			closed := make(chan error)
			go func() { closed <- s.Close() }()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Close hangs")
			}
			wg.Wait()
			for i := range counts {
				if n := counts[i].Load(); n != 1 {
					t.Fatalf("send %d completed %d times", i, n)
				}
			}
			if aborted.Load() == 0 {
				t.Fatal("nothing was aborted: the peer should have stalled the queue")
			}
			t.Logf("%d sent, %d aborted", ok.Load(), aborted.Load())
			if _, err := s.SendAsync(&args[0]); err != ErrClosed {
				t.Fatalf("SendAsync after Close: %v", err)
			}
			if err := s.Close(); err != ErrClosed {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}

// Engine.Close from a Completed handler starts the shutdown and returns;
// the shutdown then completes.
func TestEngineCloseFromCompleted(t *testing.T) {
	eng, err := NewEngine(EngineConfig{Backend: BackendIOURing})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			time.Sleep(50 * time.Millisecond)
			c.Close()
		}
	}()
	s, err := Dial("tcp", l.Addr().String(), WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	var e sendop.Args
	e.SetBuffer(make([]byte, 8<<20)) // more than loopback buffers: pending
	e.Completed = func(*sendop.Args) { closed <- eng.Close() }
	pending, err := s.SendAsync(&e)
	if err != nil || !pending {
		t.Fatalf("pending %v err %v", pending, err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Engine.Close from Completed deadlocked")
	}
	if err := eng.Close(); err != ErrClosed {
		t.Fatalf("Engine.Close after the handler's: %v, want ErrClosed", err)
	}
	// The shutdown reaches s (it refuses sends; an empty probe sends
	// nothing before that), and then finishes: a second Close returns
	// ErrClosed once the engine's Close of s is done.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var probe sendop.Args
		probe.SetBuffer([]byte{})
		if _, err := s.SendAsync(&probe); err == ErrClosed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the engine's shutdown never reached the socket")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != ErrClosed {
		t.Fatalf("Close after the engine's: %v, want ErrClosed", err)
	}
}
