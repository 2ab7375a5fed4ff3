//go:build linux

package tests

import (
	"errors"
	"syscall"
	"testing"

	"github.com/uringsend/uringsend/internal/seccomptest"
	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// io_uring refused for real, as a container's seccomp profile refuses it:
// in a child process whose every thread gets EPERM from io_uring_setup,
// io_uring_enter and io_uring_register. There NewEngine(auto) falls back to
// epoll and says why; the contract holds on it (exactly once, every byte
// in order, also across a Close with sends pending); NewEngine(io_uring)
// fails with an error that Is ring.ErrNotSupported and syscall.EPERM.
func TestFaultIOUringRefused(t *testing.T) {
	if !seccomptest.InChild() {
		seccomptest.RunChild(t, "TestFaultIOUringRefused")
		return
	}
	if err := seccomptest.DenyIOUring(); err != nil {
		t.Fatal(err)
	}
	noSIGPIPE(t)

	eng, err := socket.NewEngine(socket.EngineConfig{Backend: socket.BackendIOURing})
	if err == nil {
		eng.Close()
		t.Fatal("NewEngine(io_uring) succeeded with io_uring refused")
	}
	if !errors.Is(err, ring.ErrNotSupported) || !errors.Is(err, syscall.EPERM) {
		t.Fatalf("NewEngine(io_uring): %v; want an error that Is ring.ErrNotSupported and EPERM", err)
	}
	t.Logf("NewEngine(io_uring): %v", err)

	for _, be := range []string{"", socket.BackendAuto} {
		eng := newEngineCfg(t, socket.EngineConfig{Backend: socket.BackendEpoll, Rings: 2})
		eng.Close() // an explicit epoll engine works, and closes, with io_uring refused
		auto, err := socket.NewEngine(socket.EngineConfig{Backend: be})
		if err != nil {
			t.Fatalf("NewEngine(%q) with io_uring refused: %v", be, err)
		}
		if auto.Backend() != socket.BackendEpoll {
			auto.Close()
			t.Fatalf("NewEngine(%q) runs on %s with io_uring refused", be, auto.Backend())
		}
		reason := auto.FallbackReason()
		if !errors.Is(reason, ring.ErrNotSupported) || !errors.Is(reason, syscall.EPERM) {
			auto.Close()
			t.Fatalf("FallbackReason() = %v; want ring.ErrNotSupported and EPERM", reason)
		}

		// The contract on the fallback: two sockets, every byte in order,
		// each send exactly once; then a Close with sends pending.
		for _, network := range []string{"tcp", "unix"} {
			s, peer := streamPair(t, auto, network, small)
			r := startPeerReader(t, peer, peerOpts{chunk: 8 << 10})
			shapes := randomShapes(t, 300, 32<<10, 8, false)
			tr := newTracker(t, len(shapes))
			args := queueAll(t, s, shapes, tr, nil)
			tr.wait(closing(t, s, nil))
			want, _ := checkResults(t, args, shapes)
			if got, err := r.wait(t); err != nil || sha(got) != sha(want) {
				t.Fatalf("%s: peer read %d bytes (%v), want %d", network, len(got), err, len(want))
			}
		}
		s, peer := tcpPair(t, auto, small)
		gate := make(chan struct{})
		r := startPeerReader(t, peer, peerOpts{gate: gate})
		shapes := randomShapes(t, 200, 32<<10, 8, true)
		tr := newTracker(t, len(shapes))
		args := queueAll(t, s, shapes, tr, nil)
		if err := closeSocket(s); err != nil {
			t.Fatal(err)
		}
		close(gate)
		tr.wait() // Close has returned: no Completed of s can follow
		want, byErr := checkResults(t, args, shapes, sendop.OperationAborted)
		if got, err := r.wait(t); err != nil || sha(got) != sha(want) {
			t.Fatalf("peer read %d bytes (%v), want %d", len(got), err, len(want))
		}
		if byErr[sendop.OperationAborted] == 0 {
			t.Fatal("nothing aborted by Close")
		}
		if err := auto.Close(); err != nil {
			t.Fatalf("Engine.Close: %v", err)
		}
		t.Logf("NewEngine(%q): epoll, because %v; results after Close: %v", be, reason, byErr)
	}
}
