package socket

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/uringsend/uringsend/internal/seccomptest"
	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/sendop"
)

// Where a seccomp profile refuses io_uring (as Docker's and containerd's
// defaults do), BackendAuto falls back to epoll with the same contract,
// and BackendIOURing says why it cannot run.
func TestFallbackWhenIOURingRefused(t *testing.T) {
	if !seccomptest.InChild() {
		seccomptest.RunChild(t, "TestFallbackWhenIOURingRefused")
		return
	}
	if err := seccomptest.DenyIOUring(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewEngine(EngineConfig{Backend: BackendIOURing}); !errors.Is(err, ring.ErrNotSupported) || !errors.Is(err, syscall.EPERM) {
		t.Fatalf("io_uring engine under seccomp: %v, want ErrNotSupported wrapping EPERM", err)
	}
	eng, err := NewEngine(EngineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if eng.Backend() != BackendEpoll || !errors.Is(eng.FallbackReason(), ring.ErrNotSupported) {
		t.Fatalf("backend %q, reason %v", eng.Backend(), eng.FallbackReason())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	s, err := Dial("tcp", l.Addr().String(), WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	var e sendop.Args
	e.SetBuffer(make([]byte, 1000))
	done := make(chan struct{}, 1)
	e.Completed = func(*sendop.Args) { done <- struct{}{} }
	for i := 0; i < 100; i++ {
		pending, err := s.SendAsync(&e)
		if err != nil {
			t.Fatal(err)
		}
		if pending {
			<-done
		}
		if e.SocketError() != sendop.Success || e.BytesTransferred() != 1000 {
			t.Fatalf("send %d: %v %d", i, e.SocketError(), e.BytesTransferred())
		}
	}
	s.Close()
	if n := <-got; n != 100*1000 {
		t.Fatalf("peer got %d bytes, want %d", n, 100*1000)
	}
}
