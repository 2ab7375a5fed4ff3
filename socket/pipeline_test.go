//go:build linux

package socket

import (
	"crypto/sha256"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// hashPeer accepts one connection on l and returns the SHA-256 of all it
// reads, slowly when slow is set so that sends queue up and coalesce.
func hashPeer(t testing.TB, l net.Listener, slow bool) <-chan [32]byte {
	got := make(chan [32]byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- [32]byte{}
			return
		}
		defer c.Close()
		h := sha256.New()
		buf := make([]byte, 4096)
		for i := 0; ; i++ {
			if slow && i%64 == 0 {
				runtimeGosched()
			}
			n, err := c.Read(buf)
			h.Write(buf[:n])
			if err != nil {
				break
			}
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- sum
	}()
	return got
}

// Sends of random shapes queued deep behind each other go out coalesced,
// complete exactly once each, and arrive byte for byte in call order.
func TestCoalescedPipelineHash(t *testing.T) {
	for _, be := range []string{BackendIOURing, BackendEpoll} {
		t.Run(be, func(t *testing.T) {
			eng, err := NewEngine(EngineConfig{Backend: be})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			got := hashPeer(t, l, true)
			s, err := Dial("tcp", l.Addr().String(), WithEngine(eng))
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			want := sha256.New()
			const N = 30000
			args := make([]sendop.Args, N)
			counts := make([]atomic.Int32, N)
			var wg sync.WaitGroup
			for i := range args {
				e := &args[i]
				e.UserToken = i
				size := rng.IntN(300)
				if rng.IntN(50) == 0 {
					size = rng.IntN(200 << 10)
				}
				b := make([]byte, size)
				for j := range b {
					b[j] = byte(rng.Uint32())
				}
				want.Write(b)
				switch rng.IntN(10) {
				case 0:
					cut := rng.IntN(size + 1)
					e.SetBufferList([][]byte{b[:cut], nil, b[cut:]})
				case 1:
					e.SetBuffer(b)
					e.Flags = unix.MSG_MORE // not coalescable
				default:
					e.SetBuffer(b)
				}
				wg.Add(1)
				e.Completed = func(e *sendop.Args) {
					check(t, e, counts)
					wg.Done()
				}
				pending, err := s.SendAsync(e)
				if err != nil {
					t.Fatal(err)
				}
				if !pending {
					check(t, e, counts)
					wg.Done()
				}
			}
			wg.Wait()
			s.Close()
			var w [32]byte
			copy(w[:], want.Sum(nil))
			if <-got != w {
				t.Fatal("receiver's SHA-256 differs: bytes lost, duplicated or out of order")
			}
		})
	}
}

func check(t testing.TB, e *sendop.Args, counts []atomic.Int32) {
	i := e.UserToken.(int)
	if n := counts[i].Add(1); n != 1 {
		t.Errorf("send %d completed %d times", i, n)
	}
	want := len(e.Buffer())
	for _, b := range e.BufferList() {
		want += len(b)
	}
	if e.SocketError() != sendop.Success || e.BytesTransferred() != want {
		t.Errorf("send %d: %v, %d of %d bytes", i, e.SocketError(), e.BytesTransferred(), want)
	}
}

// BenchmarkPipeline64 is P1: 64 B messages on one TCP connection with a
// deep pipeline (1024 sends in flight, each resent from Completed),
// against a net.Conn.Write loop in the same run.
func BenchmarkPipeline64(b *testing.B) {
	for _, be := range []string{BackendIOURing, BackendEpoll} {
		b.Run(be, func(b *testing.B) { benchPipeline(b, be, 64, 1024) })
	}
	b.Run("io_uring-batching", func(b *testing.B) { benchPipeline(b, BackendIOURing, 64, 1024, WithBatching()) })
	b.Run("net.Conn.Write", func(b *testing.B) {
		c := benchPair(b)
		buf := make([]byte, 64)
		b.SetBytes(64)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchPipeline(b *testing.B, backend string, size, depth int, opts ...Option) {
	benchPipelineCfg(b, EngineConfig{Backend: backend}, size, depth, opts...)
}

func benchPipelineCfg(b *testing.B, cfg EngineConfig, size, depth int, opts ...Option) {
	eng, err := NewEngine(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	s, err := FromConn(benchPair(b), append(opts, WithEngine(eng))...)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var left atomic.Int64
	left.Store(int64(b.N))
	done := make(chan struct{})
	var finished atomic.Int64
	buf := make([]byte, size)
	resend := func(e *sendop.Args) {
		for {
			if e.SocketError() != sendop.Success {
				b.Error(e.Err())
			}
			if finished.Add(1) == int64(b.N) {
				close(done)
			}
			if left.Add(-1) < 0 {
				return
			}
			pending, err := s.SendAsync(e)
			if err != nil {
				b.Error(err)
				return
			}
			if pending {
				return
			}
		}
	}
	args := make([]sendop.Args, depth)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	finished.Store(-int64(depth)) // the first call of resend per Args is a start, not a completion
	for i := range args {
		args[i].SetBuffer(buf)
		args[i].Completed = resend
		resend(&args[i])
	}
	<-done
}

func runtimeGosched() { runtime.Gosched() }

// BenchmarkManyConns is P4's shape: 1000 connections × 1 KiB, each with a
// few sends in flight resent from Completed, on one engine; it reports
// io_uring_enter calls per send.
func BenchmarkManyConns(b *testing.B) {
	for _, batching := range []bool{false, true} {
		name := "inline"
		if batching {
			name = "batching"
		}
		b.Run(name, func(b *testing.B) {
			eng, err := NewEngine(EngineConfig{Backend: BackendIOURing})
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			addr := drainPeer(b)
			const conns, depth = 1000, 2
			var opts []Option
			if batching {
				opts = append(opts, WithBatching())
			}
			socks := make([]*Socket, conns)
			for i := range socks {
				if socks[i], err = Dial("tcp", addr, append(opts, WithEngine(eng))...); err != nil {
					b.Fatal(err)
				}
			}
			var left, finished atomic.Int64
			left.Store(int64(b.N))
			done := make(chan struct{})
			buf := make([]byte, 1024)
			resend := func(e *sendop.Args) {
				s := e.UserToken.(*Socket)
				for {
					if finished.Add(1) == int64(b.N) {
						close(done)
					}
					if left.Add(-1) < 0 {
						return
					}
					if pending, err := s.SendAsync(e); err != nil || pending {
						return
					}
				}
			}
			args := make([]sendop.Args, conns*depth)
			b.SetBytes(1024)
			b.ResetTimer()
			before := eng.rings[0].r.Stats().Enters
			finished.Store(-int64(len(args)))
			for i := range args {
				args[i].SetBuffer(buf)
				args[i].UserToken = socks[i%conns]
				args[i].Completed = resend
				resend(&args[i])
			}
			<-done
			b.StopTimer()
			b.ReportMetric(float64(eng.rings[0].r.Stats().Enters-before)/float64(b.N), "enters/send")
			for _, s := range socks {
				s.Close()
			}
		})
	}
}
