//go:build linux

package tests

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// Socket.Close and Engine.Close all at once, with thousands of sends
// pending across many sockets: Completed handlers close their own socket
// and the engine, other goroutines close sockets at random and the engine,
// while peers drain some sockets and stall others. Every send completes
// exactly once, with Success or OperationAborted; every peer receives
// exactly the bytes reported transferred, in order; each socket's Close
// returns nil exactly once; an Engine.Close that returned nil has
// completed everything; afterwards every socket refuses with ErrClosed.
func TestFaultCloseStorm(t *testing.T) {
	for round := range faultRounds(3) {
		t.Run(fmt.Sprint(round), func(t *testing.T) { forEachBackend(t, closeStorm) })
	}
}

// closeStorm is one round of TestFaultCloseStorm.
func closeStorm(t *testing.T, eng *socket.Engine) {
	const sockets, per = 32, 120 // 3840 sends
	rng := newRand(t)
	type sock struct {
		s      *socket.Socket
		r      *peerReader
		gate   chan struct{}
		tr     *tracker
		args   []sendop.Args
		shapes []shape
		nils   atomic.Int32 // Closes that returned nil
	}
	closeS := func(k *sock) {
		switch err := closeSocket(k.s); {
		case err == nil:
			k.nils.Add(1)
		case !errors.Is(err, socket.ErrClosed):
			t.Errorf("Socket.Close: %v", err)
		}
	}
	var engNil atomic.Int32
	var outsideNil atomic.Bool // the nil went to the goroutine outside the handlers
	closeE := func(outside bool) {
		g := enterAPI()
		defer leaveAPI(g)
		switch err := eng.Close(); {
		case err == nil:
			engNil.Add(1)
			outsideNil.Store(outside)
		case !errors.Is(err, socket.ErrClosed):
			t.Errorf("Engine.Close: %v", err)
		}
	}
	var armed atomic.Bool
	var engFromHandler sync.Once
	socks := make([]*sock, sockets)
	for i := range socks {
		network := []string{"tcp", "unix", "tcp-accept"}[i%3]
		k := &sock{gate: make(chan struct{}), tr: newTracker(t, per), args: make([]sendop.Args, per)}
		s, peer := streamPair(t, eng, network, small)
		k.s = s
		var o peerOpts
		if i%4 != 0 { // a quarter of the peers drain at once; the rest wait
			o.gate = k.gate
		}
		o.chunk = 8 << 10
		k.r = startPeerReader(t, peer, o)
		k.shapes = make([]shape, per)
		for j := range k.shapes {
			k.shapes[j] = randomShape(rng, 16<<10, 6)
		}
		closeAt := -1
		if i%3 == 0 {
			closeAt = 3 + rng.IntN(20) // the handler of this completion closes the socket
		}
		var seen atomic.Int32
		var closeOnce sync.Once
		queueRange(t, s, k.args, k.shapes, k.tr, 0, per, func(j int, e *sendop.Args) {
			if n := int(seen.Add(1)); closeAt >= 0 && n >= closeAt && armed.Load() {
				closeOnce.Do(func() { closeS(k) })
			}
			if armed.Load() && i%5 == 1 {
				engFromHandler.Do(func() { closeE(false) })
			}
		})
		socks[i] = k
	}

	// Go: closers and the engine's Close race with the handlers.
	start := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			<-start
			r := rand.New(rand.NewPCG(uint64(c), 1))
			for _, i := range r.Perm(sockets)[:sockets/3] {
				closeS(socks[i])
			}
		})
	}
	engDone := make(chan struct{})
	wg.Go(func() {
		<-start
		time.Sleep(time.Millisecond)
		closeE(true)
		close(engDone)
	})
	armed.Store(true)
	for i, k := range socks {
		if i%2 == 0 {
			close(k.gate) // half the stalled peers start draining now
		}
	}
	close(start)
	waitChan(t, engDone, closeWait(), "Engine.Close racing the handlers and closers (deadlock?)")
	wg.Wait()
	left := 0
	for _, k := range socks {
		left += int(k.tr.left.Load())
	}
	if outsideNil.Load() && left > 0 {
		t.Errorf("Engine.Close returned nil with %d sends not completed", left)
	}
	for _, k := range socks {
		select {
		case <-k.gate:
		default:
			close(k.gate)
		}
	}
	var results = map[sendop.SocketError]int{}
	trs := make([]*tracker, 0, len(socks))
	for _, k := range socks {
		trs = append(trs, k.tr)
	}
	// Every socket was closed (by hand, from a handler, by an Engine.Close
	// that may have been a handler's): a Close now returns ErrClosed once
	// that close finished, every Completed of the socket returned.
	barriers := make([]func(), len(socks))
	for i, k := range socks {
		barriers[i] = closing(t, k.s, socket.ErrClosed)
	}
	waitTrackersAfter(t, barriers, trs...)
	for i, k := range socks {
		want, byErr := checkResults(t, k.args, k.shapes, sendop.OperationAborted)
		for se, n := range byErr {
			results[se] += n
		}
		got, err := k.r.wait(t)
		if err != nil || string(got) != string(want) {
			t.Fatalf("socket %d: peer read %d bytes (%v), want the %d reported sent; first difference at %d", i, len(got), err, len(want), firstDiff(got, want))
		}
		if n := k.nils.Load(); n > 1 {
			t.Fatalf("socket %d: %d Closes returned nil", i, n)
		}
		var e sendop.Args
		e.SetBuffer([]byte("late"))
		if _, err := sendAsync(k.s, &e); !errors.Is(err, socket.ErrClosed) {
			t.Fatalf("socket %d: SendAsync after the storm: %v, want ErrClosed", i, err)
		}
	}
	// Exactly one nil is checked by TestFaultEngineCloseTwiceFromHandler:
	// here a handler's Close and the outside one can both get nil.
	if n := engNil.Load(); n < 1 {
		t.Fatalf("no Engine.Close returned nil")
	}
	t.Logf("%d sends on %d sockets: %v", sockets*per, sockets, results)
}

// Engine.Close called twice from the same Completed handler: the first
// returns nil (the shutdown finishes after the handler), the second must
// say ErrClosed — as it does for any Close after the first, and as
// Socket.Close does. Every send still completes exactly once.
func TestFaultEngineCloseTwiceFromHandler(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		s, peer := tcpPair(t, eng, small)
		gate := make(chan struct{})
		r := startPeerReader(t, peer, peerOpts{gate: gate})
		shapes := randomShapes(t, 50, 16<<10, 4, true)
		tr := newTracker(t, len(shapes))
		errs := make(chan [2]error, 1)
		var once sync.Once
		var armed atomic.Bool
		args := queueAll(t, s, shapes, tr, func(int, *sendop.Args) {
			if !armed.Load() {
				return
			}
			once.Do(func() {
				first := eng.Close()
				errs <- [2]error{first, eng.Close()}
			})
		})
		armed.Store(true)
		close(gate)
		got := waitChan(t, errs, longWait(), "a Completed handler")
		tr.wait(closedByEngine(t, s))
		want, _ := checkResults(t, args, shapes, sendop.OperationAborted)
		if b, err := r.wait(t); err != nil || string(b) != string(want) {
			t.Fatalf("peer read %d bytes (%v), want %d", len(b), err, len(want))
		}
		if got[0] != nil || !errors.Is(got[1], socket.ErrClosed) {
			t.Fatalf("BUG: Engine.Close twice from a handler: %v, then %v; want nil, then ErrClosed "+
				"(closeFromHandler does not mark the engine closed before it returns nil)", got[0], got[1])
		}
	})
}
