//go:build linux

package socket

import (
	"io"
	"net"
	"runtime"
	"testing"

	"github.com/uringsend/uringsend/sendop"
)

// The pin cache must not keep what a socket no longer sends from: a
// socket that sends buf[:n] from a fresh buffer each time (read into a new
// buffer, send what was read) and then stays open and idle keeps at most
// the last buffer reachable and pinned, not every one it ever sent from.
// The cache counts what it pins by capacity, not by the bytes sent, and
// trims when the socket's queue drains.
func TestPinCacheKeepsOnlyWhatIsSentFrom(t *testing.T) {
	eng, err := NewEngine(EngineConfig{Backend: BackendIOURing})
	if err != nil {
		t.Skip(err)
	}
	defer eng.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	s, err := Dial("tcp", ln.Addr().String(), WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	const bufs, bufSize = 64, 4 << 20
	done := make(chan struct{}, 1)
	func() {
		var e sendop.Args
		e.Completed = func(*sendop.Args) { done <- struct{}{} }
		for i := 0; i < bufs; i++ {
			buf := make([]byte, bufSize) // a fresh read buffer
			e.SetBuffer(buf[:100])       // send what was "read"
			p, err := s.SendAsync(&e)
			if err != nil {
				t.Fatal(err)
			}
			if p {
				<-done
			}
		}
		e.SetBuffer(nil)
	}()
	after := heap()
	s.mu.Lock()
	entries := s.pins.Len()
	s.mu.Unlock()
	retained := int64(after) - int64(before)
	t.Logf("socket idle, caller holds no buffer: pin cache entries=%d, heap retained %d MiB", entries, retained>>20)
	if retained > 2*bufSize {
		t.Errorf("an idle open socket keeps %d MiB of dropped send buffers reachable and pinned (%d entries)", retained>>20, entries)
	}
}
