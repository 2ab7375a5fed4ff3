//go:build linux

package socket

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
)

// rvReaperStacks returns the stacks of the reaper goroutines (other
// engines of the package's tests may have theirs too).
func rvReaperStacks() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var st []string
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("ring.(*Reaper).loop")) {
			st = append(st, string(g))
		}
	}
	return st
}

// rvWaitReaperBlockedIn waits until a reaper (the test's: only it runs
// the socket package's handlers here) is blocked on a mutex inside fn.
func rvWaitReaperBlockedIn(t *testing.T, fn string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, st := range rvReaperStacks() {
			if strings.Contains(st, "Mutex") && strings.Contains(st, fn) {
				return
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
	t.Fatalf("reaper never blocked in %s:\n%s", fn, strings.Join(rvReaperStacks(), "\n\n"))
}

// rvWaitAnyBlockedIn waits until some goroutine other than the reaper is
// blocked inside fn.
func rvWaitAnyBlockedIn(t *testing.T, fn string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, fn) && strings.Contains(g, "Mutex") && !strings.Contains(g, "ring.(*Reaper).loop") {
				return
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
	t.Fatalf("no goroutine blocked in %s", fn)
}

// A send deferred to the reaper (scheduleFlush) wakes it with a NOP when
// the reaper looks idle. If an inline harvester (any SendAsync that
// completes synchronously on the same ring) consumes that NOP's CQE before
// the reaper sleeps, the harvester must pass the wake on (ring.passWake):
// before it did, the reaper parked in Go (or slept in io_uring_enter until
// an unrelated CQE) with the deferred send still in flushQ, and its
// Completed was never raised.
//
// The interleaving is forced deterministically by holding the reaper's own
// locks (raise.mu, flushMu) — the same locks inline harvesters contend on —
// so that the reaper has already decided "no flush pending" when the send
// is scheduled.
func TestWakeStolenByInlineHarvestIsPassedOn(t *testing.T) {
	eng, err := NewEngine(EngineConfig{Backend: BackendIOURing, Rings: 1})
	if err != nil {
		t.Skip(err)
	}
	defer eng.Close()

	peerA, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peerA.Close()
	peerB, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peerB.Close()
	// a: batching (every send is deferred to the reaper); b: ordinary
	// (its sends complete inline, harvested by the caller).
	a, err := Dial("udp4", peerA.LocalAddr().String(), WithEngine(eng), WithBatching())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Dial("udp4", peerB.LocalAddr().String(), WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	u := a.u

	done := make(chan struct{}, 10)
	var ea sendop.Args
	ea.SetBuffer([]byte("deferred"))
	ea.Completed = func(*sendop.Args) { done <- struct{}{} }
	// Warm up: the reaper has run and is idle again.
	if p, err := a.SendAsync(&ea); err != nil || !p {
		t.Fatalf("warm-up: %v %v", p, err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("warm-up send never completed")
	}
	for !u.idle.Load() {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)

	// 1. Stop the reaper's next cycle inside raiseAll, then inside flushAll.
	u.raise.mu.Lock()
	u.flushMu.Lock()
	u.r.Wake()
	rvWaitReaperBlockedIn(t, "raiseAll")
	u.raise.mu.Unlock()
	rvWaitReaperBlockedIn(t, "flushAll")
	// 2. Let it finish flushAll and find no flush pending; it then
	//    blocks in needsWake (raise.mu), past the hasFlush check.
	u.raise.mu.Lock()
	u.flushMu.Unlock()
	rvWaitReaperBlockedIn(t, "needsWake")

	// 3. The deferred send: scheduleFlush sees idle == true and wakes the
	//    reaper with a NOP (it is not parked).
	if p, err := a.SendAsync(&ea); err != nil || !p {
		u.raise.mu.Unlock()
		t.Fatalf("deferred send: %v %v", p, err)
	}
	// 4. An ordinary inline send on another socket of the ring harvests
	//    the NOP's CQE along with its own (then blocks in needsWake too).
	var eb sendop.Args
	eb.SetBuffer([]byte("inline"))
	bRes := make(chan error, 1)
	go func() {
		p, err := b.SendAsync(&eb)
		if err == nil && p {
			err = fmt.Errorf("b's send did not complete inline")
		}
		bRes <- err
	}()
	rvWaitAnyBlockedIn(t, "afterInlineHarvest")
	// 5. Let both go: the reaper finds nothing to raise and nothing in
	//    flight, and parks.
	u.raise.mu.Unlock()
	if err := <-bRes; err != nil {
		t.Logf("note: %v (the NOP may not have been stolen)", err)
	}

	select {
	case <-done:
		t.Log("deferred send completed: wake-up not lost")
	case <-time.After(3 * time.Second):
		t.Errorf("LOST WAKE-UP: a deferred send sat in flushQ for 3s (hasFlush=%v, reaper idle=%v, ring inflight=%d); reaper stack:\n%s",
			u.hasFlush(), u.idle.Load(), u.r.Inflight(), strings.Join(rvReaperStacks(), "\n\n"))
		// Rescue so the test can clean up.
		u.r.Wake()
		select {
		case <-done:
			t.Log("after an extra Wake the send completed")
		case <-time.After(5 * time.Second):
			t.Error("still not completed after an extra Wake")
		}
	}
}
