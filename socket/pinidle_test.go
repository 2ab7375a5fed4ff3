//go:build linux

package socket

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"
	"weak"
)

// pinIdleSocket returns a socket on an io_uring engine, connected over TCP
// loopback to a peer that reads everything; all of it closes when the test
// ends.
func pinIdleSocket(t *testing.T) *Socket {
	t.Helper()
	eng, err := NewEngine(EngineConfig{Backend: BackendIOURing})
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { eng.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	peer := make(chan struct{})
	go func() {
		defer close(peer)
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
	t.Cleanup(func() {
		s.Close()
		<-peer
	})
	return s
}

// writeFresh writes a new buffer of size bytes that nothing else
// references, and returns a weak pointer to it.
//
//go:noinline
func writeFresh(t *testing.T, s *Socket, size int) weak.Pointer[byte] {
	b := make([]byte, size)
	if n, err := s.Write(b); n != size || err != nil {
		t.Fatalf("Write: %d of %d bytes, %v", n, size, err)
	}
	return weak.Make(&b[0])
}

// aliveAfterGC collects garbage and counts the buffers still reachable.
func aliveAfterGC(wps []weak.Pointer[byte]) int {
	runtime.GC()
	runtime.GC()
	n := 0
	for _, wp := range wps {
		if wp.Value() != nil {
			n++
		}
	}
	return n
}

// Issue 13, item 4: an open socket that had written from 15 fresh 64 KiB
// buffers, one after another, kept all 15 pinned by its pin cache, and so
// reachable, after its caller dropped them: the cache released only past
// 64 entries or 1 MiB. The queue drains after each Write; now the cache
// keeps at most the last buffer.
func TestPinCacheIdleSocketLetsBuffersGo(t *testing.T) {
	s := pinIdleSocket(t)
	wps := make([]weak.Pointer[byte], 15)
	for i := range wps {
		wps[i] = writeFresh(t, s, 64<<10)
	}
	n := aliveAfterGC(wps)
	s.mu.Lock()
	entries := s.pins.Len()
	s.mu.Unlock()
	if n > 1 {
		t.Fatalf("%d of %d dropped 64 KiB buffers still alive on an idle socket (pin cache holds %d); want at most 1", n, len(wps), entries)
	}
}

// An idle socket keeps none of its callers' buffers: the engine sweeps the
// pin cache of a socket whose queue drained, and a cache nothing was sent
// through since the previous sweep is released (about two sweeps).
func TestPinCacheIdleSocketSwept(t *testing.T) {

	s := pinIdleSocket(t)
	wps := make([]weak.Pointer[byte], 3)
	for i := range wps {
		wps[i] = writeFresh(t, s, 4<<10) // small: Trim keeps them
	}
	deadline := time.Now().Add(5 * time.Second)
	for aliveAfterGC(wps) > 0 {
		if time.Now().After(deadline) {
			s.mu.Lock()
			entries := s.pins.Len()
			s.mu.Unlock()
			t.Fatalf("%d of %d dropped buffers still alive 5 s after the socket went idle (pin cache holds %d)", aliveAfterGC(wps), len(wps), entries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
