//go:build linux

package socket

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
)

// The lifecycle word's transitions, one by one (state_linux.go's diagram).
func TestLifeWordTransitions(t *testing.T) {
	var l lifeWord
	if l.closing() || l.released() {
		t.Fatal("a new word is not open")
	}
	l.set(lifeWrShut | lifeShutPending)
	l.clear(lifeShutPending)
	if !l.has(lifeWrShut) || l.has(lifeShutPending) || l.closing() {
		t.Fatalf("CloseWrite flags: %#x", l.v.Load())
	}
	if !l.beginClose(true) {
		t.Fatal("first beginClose refused")
	}
	if l.beginClose(false) {
		t.Fatal("second beginClose accepted")
	}
	if !l.closing() || l.released() || !l.has(lifeSendHeld) || !l.has(lifeWrShut) {
		t.Fatalf("after beginClose(send busy): %#x", l.v.Load())
	}
	l.holdSide(lifeRxHeld)
	if !l.tryHold() { // a linger timer's
		t.Fatal("tryHold refused while holds remain")
	}
	// Holds now: Close, send, receive, linger.
	if !l.dropSide(lifeSendHeld) || l.dropSide(lifeSendHeld) {
		t.Fatal("dropSide must report the flag once")
	}
	for i, want := range []bool{false, false, false, true} {
		if i == 1 && !l.dropSide(lifeRxHeld) {
			t.Fatal("rx flag missing")
		}
		if got := l.letGo(); got != want {
			t.Fatalf("letGo #%d = %v, want %v (%#x)", i, got, want, l.v.Load())
		}
	}
	if l.tryHold() {
		t.Fatal("tryHold after the last hold")
	}
	if l.advance(phaseReleased, phaseQuiet) {
		t.Fatal("quiet before released")
	}
	if !l.advance(phaseClosing, phaseReleased) || !l.released() {
		t.Fatal("release")
	}
	if !l.advance(phaseReleased, phaseQuiet) || l.advance(phaseReleased, phaseQuiet) {
		t.Fatal("quiet must be reached once")
	}
	if !l.has(lifeWrShut) || l.phase() != phaseQuiet {
		t.Fatalf("end: %#x", l.v.Load())
	}
}

// Of many goroutines letting go of holds and taking transient ones at
// once, exactly one sees the last hold go, and nobody takes a hold after.
func TestLifeWordLastHoldOnce(t *testing.T) {
	for round := 0; round < 200; round++ {
		var l lifeWord
		l.beginClose(true)
		l.holdSide(lifeRxHeld)
		var last, lateHolds sync.WaitGroup
		var mu sync.Mutex
		lasts := 0
		drop := func(side uint64) {
			defer last.Done()
			if side != 0 && !l.dropSide(side) {
				t.Error("side flag missing")
			}
			if l.letGo() {
				mu.Lock()
				lasts++
				mu.Unlock()
			}
		}
		last.Add(3)
		go drop(lifeSendHeld)
		go drop(lifeRxHeld)
		lateHolds.Add(4)
		for i := 0; i < 4; i++ {
			go func() {
				defer lateHolds.Done()
				if l.tryHold() {
					last.Add(1)
					drop(0)
				}
			}()
		}
		drop(0) // Close's own
		lateHolds.Wait()
		last.Wait()
		if lasts != 1 {
			t.Fatalf("round %d: %d goroutines saw the last hold go", round, lasts)
		}
		if l.tryHold() {
			t.Fatal("hold taken after release")
		}
	}
}

// Close knows the goroutine raising Completed by its locked thread, not by
// a goroutine id: a Close from a handler returns at once (it cannot wait
// for itself), while a Close from another goroutine — made while the
// raiser sits in a handler — still waits for the socket's last Completed.
func TestCloseKnowsTheRaiser(t *testing.T) {
	for _, backend := range []string{BackendIOURing, BackendEpoll} {
		t.Run(backend, func(t *testing.T) {
			eng, err := NewEngine(EngineConfig{Backend: backend, Rings: 1})
			if err != nil {
				t.Skip(err)
			}
			defer eng.Close()
			a, pa := rxPair(t, eng)
			b, _ := rxPair(t, eng)
			c, _ := rxPair(t, eng)

			var mu sync.Mutex
			var order []string
			note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }

			// b's receive waits in the kernel until b is closed.
			var eb sendop.Args
			eb.SetBuffer(make([]byte, 8))
			eb.Completed = func(*sendop.Args) { note("b completed") }
			if p, err := b.ReceiveAsync(&eb); err != nil || !p {
				t.Fatalf("b: pending %v, err %v", p, err)
			}
			// a's handler: closes c from the raiser (must not wait), then
			// holds the raiser until the gate opens.
			inHandler, gate := make(chan error, 1), make(chan struct{})
			var ea sendop.Args
			ea.SetBuffer(make([]byte, 8))
			ea.Completed = func(*sendop.Args) {
				inHandler <- c.Close() // c is idle but for nothing: returns at once either way
				<-gate
			}
			if p, err := a.ReceiveAsync(&ea); err != nil || !p {
				t.Fatalf("a: pending %v, err %v", p, err)
			}
			// c has a receive on the wire, so its Close has a Completed
			// to wait for: from the handler it must not.
			var ec sendop.Args
			ec.SetBuffer(make([]byte, 8))
			ec.Completed = func(*sendop.Args) { note("c completed") }
			if p, err := c.ReceiveAsync(&ec); err != nil || !p {
				t.Fatalf("c: pending %v, err %v", p, err)
			}
			if _, err := pa.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := <-inHandler; err != nil {
				t.Fatalf("Close from the handler: %v", err)
			}
			// The raiser is held in a's handler. Close b from here: it
			// must wait for b's Completed, which only the raiser can run.
			closed := make(chan error, 1)
			go func() { err := b.Close(); note("b.Close returned"); closed <- err }()
			deadline := time.Now().Add(5 * time.Second)
			for !goroutineIn("(*Socket).awaitClose") {
				select {
				case err := <-closed:
					close(gate)
					t.Fatalf("b.Close returned (%v) while the raiser was held in a handler", err)
				default:
				}
				if time.Now().After(deadline) {
					close(gate)
					t.Fatal("b.Close never waited")
				}
				time.Sleep(100 * time.Microsecond)
			}
			close(gate)
			if err := <-closed; err != nil {
				t.Fatalf("b.Close: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			bi, ci, ri := -1, -1, -1
			for i, s := range order {
				switch s {
				case "b completed":
					bi = i
				case "c completed":
					ci = i
				case "b.Close returned":
					ri = i
				}
			}
			if bi < 0 || ci < 0 || ri < 0 || bi > ri {
				t.Fatalf("order %q: b's Completed must come before b.Close returns", order)
			}
		})
	}
}

// goroutineIn reports whether some goroutine's stack has fn.
func goroutineIn(fn string) bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), fn)
}
