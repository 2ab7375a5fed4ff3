//go:build linux

package socket

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
)

// Close promises: "When Close returns, every Completed of the socket has
// returned too". Close waits for the queue to drain only if it is not
// empty when it takes s.mu, then for unraised to reach 0. settle pops the
// finished sends under s.mu, so it must count them in unraised before it
// lets s.mu go: a Close that takes s.mu right after would otherwise find
// an empty queue and unraised == 0, and return before the last wire's
// Completed handlers ran (it did: "Close returned with 1 of 1001
// Completed raised").
//
// The window is widened (not created) by making each op's Complete unpin
// its own pins: the socket's pin cache is full after one 8 MiB send.
func TestCloseWaitsForTheLastWiresCompleted(t *testing.T) {
	for _, backend := range []string{BackendIOURing, BackendEpoll} {
		t.Run(backend, func(t *testing.T) {
			eng, err := NewEngine(EngineConfig{Backend: backend})
			if err != nil {
				t.Skip(err)
			}
			defer eng.Close()
			late, total := 0, 0
			for iter := 0; iter < 30 && late == 0; iter++ {
				l, n := closeRace(t, eng)
				late += l
				total += n
			}
			if late > 0 {
				t.Errorf("%d Completed handlers ran after Close returned", late)
			} else {
				t.Logf("no late Completed seen in %d sends", total)
			}
		})
	}
}

// raiseBarrier returns once eng's raising goroutine (the reaper, the epoll
// dispatcher) has raised the Completed of a send made after the call
// began: 16 MiB on a side connection whose peer starts reading only once
// the send is queued, pending on either backend. Whatever the engine had
// decided to raise before is raised by then: a negative check after it
// ("no Completed after Close returned") does not pass just because the
// engine was not scheduled for a while.
func raiseBarrier(t *testing.T, eng *Engine) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	s, err := Dial("tcp", ln.Addr().String(), WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer := <-acc
	if peer == nil {
		t.Fatal("accept failed")
	}
	defer peer.Close()
	// 16 MiB cannot leave at once: more than loopback's largest send and
	// receive buffers together (tcp_wmem, tcp_rmem: 4 + 6 MiB). Small
	// buffers would do with less, but crawl (delayed ACKs).
	done := make(chan struct{})
	var e sendop.Args
	e.SetBuffer(make([]byte, 16<<20))
	e.Completed = func(*sendop.Args) { close(done) }
	pending, err := s.SendAsync(&e)
	if err != nil || !pending {
		t.Fatalf("raiseBarrier: pending %v, err %v; want pending", pending, err)
	}
	go io.Copy(io.Discard, peer)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("raiseBarrier: no Completed")
	}
}

func closeRace(t *testing.T, eng *Engine) (late, n int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(acc)
			return
		}
		acc <- c
	}()
	var opts []Option
	if eng.Backend() == BackendIOURing {
		opts = append(opts, WithBatching())
	}
	s, err := Dial("tcp", ln.Addr().String(), append(opts, WithEngine(eng))...)
	if err != nil {
		t.Fatal(err)
	}
	peer := <-acc
	if peer == nil {
		t.Fatal("accept failed")
	}
	defer peer.Close()

	var closed atomic.Bool
	var lateN, doneN atomic.Int32
	handler := func(*sendop.Args) {
		if closed.Load() {
			lateN.Add(1)
		}
		doneN.Add(1)
	}
	const small = 1000
	big := make([]byte, 8<<20)
	args := make([]sendop.Args, small+1)
	args[0].SetBuffer(big)
	for i := 1; i <= small; i++ {
		args[i].SetBuffer(make([]byte, 16))
	}
	pendingN := 0
	for i := range args {
		args[i].Completed = handler
		p, err := s.SendAsync(&args[i])
		if err != nil {
			t.Fatal(err)
		}
		if p {
			pendingN++
		}
	}
	go io.Copy(io.Discard, peer)
	// Close as soon as the queue is seen empty (the last wire settled).
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		empty := s.q.Len() == 0
		s.mu.Unlock()
		if empty || time.Now().After(deadline) {
			break
		}
	}
	s.Close()
	closed.Store(true)
	got := doneN.Load()
	// A Completed of s still to come would be raised before one the
	// engine's raising goroutine takes on afterwards.
	raiseBarrier(t, eng)
	if l := lateN.Load(); l > 0 || int(got) < pendingN {
		t.Logf("Close returned with %d of %d Completed raised; %d raised afterwards", got, pendingN, doneN.Load()-got)
	}
	return int(lateN.Load()), pendingN
}
