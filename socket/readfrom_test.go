//go:build linux

package socket

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// streamByte is byte i of the pseudo-random stream the ReadFrom tests
// send: cheap to recompute at the receiver, and different at every offset
// of a 64 KiB buffer, so a buffer overwritten while it is sent shows.
func streamByte(i int) byte {
	x := uint32(i) * 2654435761
	return byte(x>>24 ^ x>>11 ^ uint32(i))
}

// stutterReader yields total bytes of the stream in chunks of random
// size, returning (0, nil) between them about a third of the time (io.Reader
// allows it), then io.EOF.
type stutterReader struct {
	rng   *rand.Rand
	off   int
	total int
}

func (r *stutterReader) Read(p []byte) (int, error) {
	if r.off == r.total {
		return 0, io.EOF
	}
	if r.rng.IntN(3) == 0 {
		return 0, nil
	}
	n := min(1+r.rng.IntN(len(p)), r.total-r.off)
	for i := range n {
		p[i] = streamByte(r.off + i)
	}
	r.off += n
	return n, nil
}

// smallBuffers shrinks the kernel buffers of both ends, so sends from
// ReadFrom stay in flight while it reads the next chunk.
func smallBuffers(t *testing.T, s *Socket, p net.Conn) {
	t.Helper()
	if err := unix.SetsockoptInt(s.FD(), unix.SOL_SOCKET, unix.SO_SNDBUF, 16<<10); err != nil {
		t.Fatal(err)
	}
	if err := p.(*net.TCPConn).SetReadBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
}

// ReadFrom never reads into a buffer a send is still using: a reader that
// returns (0, nil) between chunks used to make it read the next chunk into
// the buffer on the wire, and the receiver's stream diverged.
func TestReadFromZeroReadsKeepInflightBuffer(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		s, p := dialPeer(t, eng)
		smallBuffers(t, s, p)
		const total = 6<<20 + 4321
		got := make(chan [32]byte, 1)
		go func() {
			h := sha256.New()
			io.Copy(h, p)
			got <- [32]byte(h.Sum(nil))
		}()
		r := &stutterReader{rng: rand.New(rand.NewPCG(1, 2)), total: total}
		n, err := s.ReadFrom(r)
		if err != nil || n != total {
			t.Fatalf("ReadFrom = %d, %v; want %d, nil", n, err, total)
		}
		s.Close()
		want := sha256.New()
		buf := make([]byte, total)
		for i := range buf {
			buf[i] = streamByte(i)
		}
		want.Write(buf)
		if <-got != [32]byte(want.Sum(nil)) {
			t.Fatal("receiver's SHA-256 differs from the stream's")
		}
	})
}

// chunkReader returns n full chunks of the same bytes, then io.EOF.
type chunkReader struct{ n int }

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	r.n--
	return len(p), nil
}

// readFromChunks is how many chunks each measured ReadFrom copies.
const readFromChunks = 64

// ReadFrom allocates nothing per chunk, and — its buffers pooled —
// nothing per call in steady state. The race detector's sync.Pool drops
// some Puts, so there a call may refill the pool: a few allocations per
// call of 64 chunks, never one per chunk. On epoll, starting a writer
// goroutine costs one (go s.writeLoop() allocates its closure), when a
// send finds the socket full: rare with a peer that drains.
func TestReadFromAllocs(t *testing.T) {
	eachBackend(t, func(t *testing.T, eng *Engine) {
		s, err := Dial("tcp", drainPeer(t), WithEngine(eng))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		r := &chunkReader{}
		copyAll := func() {
			r.n = readFromChunks
			if n, err := s.ReadFrom(r); err != nil || n != readFromChunks*64<<10 {
				t.Fatalf("ReadFrom = %d, %v", n, err)
			}
		}
		copyAll()
		allocs := testing.AllocsPerRun(50, copyAll)
		t.Logf("%s: %.2f allocs per ReadFrom of %d chunks", eng.Backend(), allocs, readFromChunks)
		limit := 0.0
		if eng.Backend() == BackendEpoll {
			limit = readFromChunks / 16
		}
		if raceEnabled {
			limit = 8
		}
		if allocs > limit {
			t.Fatalf("%.2f allocs per ReadFrom of %d chunks, want <= %v", allocs, readFromChunks, limit)
		}
	})
}

func BenchmarkReadFrom(b *testing.B) {
	for _, be := range []string{BackendIOURing, BackendEpoll} {
		b.Run(be, func(b *testing.B) {
			eng, err := NewEngine(EngineConfig{Backend: be})
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			s, err := Dial("tcp", drainPeer(b), WithEngine(eng))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			r := &chunkReader{}
			b.SetBytes(readFromChunks * 64 << 10)
			b.ReportAllocs()
			for b.Loop() {
				r.n = readFromChunks
				if _, err := s.ReadFrom(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
