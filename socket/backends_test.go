package socket

import (
	"crypto/sha256"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/uringsend/uringsend/sendop"
)

func TestBothBackendsHashAndOrder(t *testing.T) {
	for _, be := range []string{BackendIOURing, BackendEpoll} {
		t.Run(be, func(t *testing.T) {
			eng, err := NewEngine(EngineConfig{Backend: be})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			defer l.Close()
			got := make(chan [32]byte)
			go func() {
				c, _ := l.Accept()
				h := sha256.New()
				io.Copy(h, c)
				var sum [32]byte
				copy(sum[:], h.Sum(nil))
				got <- sum
			}()
			s, err := Dial("tcp", l.Addr().String(), WithEngine(eng))
			if err != nil {
				t.Fatal(err)
			}
			want := sha256.New()
			var sync0, async0 atomic.Int64
			var wg sync.WaitGroup
			const N = 20000
			args := make([]sendop.Args, N)
			for i := range args {
				b := make([]byte, 64+i%3000)
				for j := range b {
					b[j] = byte(i + j)
				}
				want.Write(b)
				if i%7 == 0 {
					args[i].SetBufferList([][]byte{b[:10], nil, b[10:]})
				} else {
					args[i].SetBuffer(b)
				}
				args[i].Completed = func(e *sendop.Args) {
					if e.SocketError() != sendop.Success {
						t.Errorf("async: %v", e.Err())
					}
					async0.Add(1)
					wg.Done()
				}
				wg.Add(1)
				pending, err := s.SendAsync(&args[i])
				if err != nil {
					t.Fatal(err)
				}
				if !pending {
					if args[i].SocketError() != sendop.Success || args[i].BytesTransferred() != len(b) {
						t.Fatalf("sync: %v %d", args[i].Err(), args[i].BytesTransferred())
					}
					sync0.Add(1)
					wg.Done()
				}
			}
			wg.Wait()
			s.Close()
			sum := <-got
			var w [32]byte
			copy(w[:], want.Sum(nil))
			if sum != w {
				t.Fatal("hash mismatch")
			}
			t.Logf("sync %d async %d", sync0.Load(), async0.Load())
		})
	}
}
