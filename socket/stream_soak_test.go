//go:build linux

package socket

import (
	"io"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Found by the soak's chunk relays (soak/chunks.go): a Chunk's Bytes "stay
// valid until Release" (chunk.go), and a handler may Release "later, from
// another goroutine" — but on io_uring Engine.Close unmaps the receive
// pool's buffer ring while chunks are still held: finishClose closes the
// rings (engine_linux.go:239, u.close), whose unmap frees every BufRing
// (ring/ring_linux.go:308, closeBufRings → ring/bufring_linux.go:287,
// Munmap) without waiting for the pool's chunks to come back
// (chunkPool.out). Reading a held chunk then faults; sending it on a socket
// of another engine reads unmapped (or, after a later mmap, someone
// else's) memory. The epoll backend's pool is Go memory and keeps.
func TestSoakChunkHeldPastEngineClose(t *testing.T) {
	eng := streamEngine(t, BackendIOURing, EngineConfig{RecvBuffers: 4, RecvBufferSize: 4096})
	s, p := rxPair(t, eng)
	got := make(chan *Chunk, 1)
	if err := s.ReceiveChunks(func(c *Chunk, err error) {
		if c != nil {
			got <- c // held past the handler's return, as a relay does
		}
	}); err != nil {
		t.Fatal(err)
	}
	p.Write([]byte("held"))
	var c *Chunk
	select {
	case c = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no chunk")
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if e := recover(); e != nil {
			t.Fatalf("reading a held chunk's Bytes after Engine.Close: %v", e)
		}
	}()
	if b := c.Bytes(); string(b) != "held" {
		t.Fatalf("a held chunk reads %q after Engine.Close", b)
	}
	c.Release()
}

// Found by the soak under -race (go run -race ./soak): a stream that
// reaches its chunk limit on io_uring cancels its multishot receive from
// onStream (stream_linux.go:328, u.prepCancel then u.r.Submit) without the
// ring's submission lock, which prepCancel requires ("with the submission
// lock held", uring_linux.go:479; cancelUD takes it): GetSQE reads and
// moves the SQ's local tail and reserved count (ring/sq_linux.go:46,
// getSQE) while any sender of the same ring moves them under the lock. Two
// goroutines can take the same SQE — the cancel overwrites a send's (which
// then never completes) or a send overwrites the cancel — and the cancel
// is only published by whoever unlocks the SQ next. Here: streams that
// hold their limit (1) while another goroutine sends on the same engine;
// the race detector reports it (without -race the test passes, unless the
// SQE is lost and a Write never returns).
func TestSoakChunkLimitCancelWithoutSQLock(t *testing.T) {
	eng := streamEngine(t, BackendIOURing, EngineConfig{RecvBufferSize: 1024})
	out, pout := rxPair(t, eng)
	go io.Copy(io.Discard, pout)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		b := make([]byte, 64)
		for !stop.Load() {
			if _, err := out.Write(b); err != nil {
				t.Error(err)
				return
			}
		}
	})
	defer func() { stop.Store(true); wg.Wait() }()
	for range 200 {
		s, p := dialPeer(t, eng, WithChunkLimit(1))
		var mu sync.Mutex
		var held []*Chunk
		if err := s.ReceiveChunks(func(c *Chunk, err error) {
			if c != nil {
				mu.Lock()
				held = append(held, c) // kept: the stream stops at its limit
				mu.Unlock()
			}
		}); err != nil {
			t.Fatal(err)
		}
		p.Write(make([]byte, 64<<10))
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Microsecond) {
			mu.Lock()
			n := len(held)
			mu.Unlock()
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no chunk")
			}
		}
		s.Close()
		p.Close()
		mu.Lock()
		for _, c := range held {
			c.Release()
		}
		held = nil
		mu.Unlock()
	}
}
