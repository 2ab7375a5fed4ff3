//go:build linux

package socket

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// onExitingThread runs f on a goroutine locked to an OS thread other than
// the main one, and lets the goroutine exit locked: Go then ends the
// thread (the main thread it would only park). It returns f's result once
// the thread is gone from /proc/self/task.
func onExitingThread(t *testing.T, f func() bool) bool {
	t.Helper()
	hold := make(chan struct{})
	defer close(hold)
	for {
		res := make(chan bool, 1)
		tid := make(chan int, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			id := unix.Gettid()
			if id == unix.Getpid() {
				tid <- 0
				<-hold // keep the main thread busy: the next try lands elsewhere
				return
			}
			tid <- id
			res <- f()
		}()
		id := <-tid
		if id == 0 {
			continue
		}
		r := <-res
		task := fmt.Sprintf("/proc/self/task/%d", id)
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if _, err := os.Stat(task); os.IsNotExist(err) {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("thread %d still there 5 s after its locked goroutine returned", id)
			}
		}
	}
}

// A send with a Timeout (a SEND linked to an IORING_OP_LINK_TIMEOUT)
// submitted by a thread that then exits still times out (found by the
// session-6 review; it never did before timeoutLost). When the timer
// fires, io_uring runs the timeout's task work for a dead task: it
// completes the LINK_TIMEOUT with -ECANCELED and does not cancel the send
// (io_req_task_link_timeout under io_should_terminate_tw), so the send
// waits for its peer for as long as the peer likes — here until the test
// drains it, seconds later — although its Timeout was 100 ms; the engine
// now sees that CQE come first, past the deadline, and cancels the send
// itself. Untimed
// sends and receives are covered by retriable (ECANCELED when their poll
// fires, resubmitted: TestSendSubmittedByExitedThread); the lost timeout is
// not. Any goroutine's SendAsync may be the one whose thread ends: a
// goroutine that locked its thread and returned, or a locked reaper whose
// Completed handler called runtime.LockOSThread (allowed) and whose
// engine then closed — that reaper submitted the handler's sends on other
// engines' sockets.
func TestTimedSendSubmittedByExitedThread(t *testing.T) {
	eng := newEngine(t, EngineConfig{Backend: BackendIOURing})
	a, b := tcpPair(t)
	defer b.Close()
	s, err := FromConn(a, WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer s.Close()
	done := make(chan *sendop.Args, 1)
	var e sendop.Args
	e.Completed = func(e *sendop.Args) { done <- e }
	e.SetBuffer(make([]byte, 8<<20)) // more than the peer's buffers take
	e.Timeout = 100 * time.Millisecond
	pending := onExitingThread(t, func() bool {
		p, err := s.SendAsync(&e)
		if err != nil {
			t.Error(err)
		}
		return p
	})
	if !pending {
		t.Fatal("the send completed at once: the peer's buffers took 8 MiB")
	}
	select {
	case got := <-done:
		if got.SocketError() != sendop.TimedOut {
			t.Fatalf("the send completed with %v after %d bytes, want TimedOut", got.SocketError(), got.BytesTransferred())
		}
	case <-time.After(2 * time.Second):
		go io.Copy(io.Discard, b) // let it finish, for the cleanup
		got := <-done
		t.Fatalf("a send with Timeout 100ms was still pending after 2 s; it completed (%v, %d bytes) only once the peer read",
			got.SocketError(), got.BytesTransferred())
	}
}
