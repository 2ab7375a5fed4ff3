//go:build linux

package socket

import (
	"crypto/sha256"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/uringsend/uringsend/ring"
	"github.com/uringsend/uringsend/sendop"
)

// Zero-copy sends (forced on loopback) deliver the exact bytes in order,
// single and coalesced, and complete once each — after the notification.
func TestZeroCopyLoopback(t *testing.T) {
	probe, err := ring.New(ring.Config{Entries: 2})
	if err != nil {
		t.Fatal(err)
	}
	ok := probe.Supports(ring.OpSendZC) && probe.Supports(ring.OpSendmsgZC)
	probe.Close()
	if !ok {
		t.Skip("kernel without IORING_OP_SEND_ZC / SENDMSG_ZC (6.0 / 6.1)")
	}
	for _, batching := range []bool{false, true} {
		name := "inline"
		var opts []Option
		if batching {
			name, opts = "batching", []Option{WithBatching()}
		}
		t.Run(name, func(t *testing.T) {
			eng, err := NewEngine(EngineConfig{Backend: BackendIOURing, ZeroCopy: ZeroCopyOn, ZeroCopyThreshold: 4096})
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
			s, err := Dial("tcp", l.Addr().String(), append(opts, WithEngine(eng))...)
			if err != nil {
				t.Fatal(err)
			}
			if !s.w.zc {
				t.Fatal("zero-copy not enabled on the socket with ZeroCopyOn")
			}
			rng := rand.New(rand.NewPCG(3, 4))
			want := sha256.New()
			const N = 400
			args := make([]sendop.Args, N)
			counts := make([]atomic.Int32, N)
			var wg sync.WaitGroup
			for i := range args {
				b := make([]byte, 1+rng.IntN(256<<10))
				for j := range b {
					b[j] = byte(rng.Uint32())
				}
				want.Write(b)
				e := &args[i]
				e.UserToken = i
				if i%3 == 0 {
					e.SetBufferList([][]byte{b[:len(b)/2], b[len(b)/2:]})
				} else {
					e.SetBuffer(b)
				}
				wg.Add(1)
				e.Completed = func(e *sendop.Args) { check(t, e, counts); wg.Done() }
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
				t.Fatal("receiver's SHA-256 differs")
			}
			if n := s.u.stale.Load(); n != 0 {
				t.Fatalf("%d stale CQEs", n)
			}
			if s.u.zcNotifs.Load() == 0 {
				t.Fatal("no zero-copy notification: SEND_ZC was not used")
			}
		})
	}
}

// In auto mode a socket whose notifications say "copied" (loopback
// always copies) stops using zero-copy; towards loopback auto never
// starts it.
func TestZeroCopyAutoSkipsLoopback(t *testing.T) {
	eng, err := NewEngine(EngineConfig{Backend: BackendIOURing})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	s, err := Dial("tcp", drainPeer(t), WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.w.zc {
		t.Fatal("auto mode enabled zero-copy towards a loopback peer")
	}
	// Forced on, the first notification reports a copy (loopback always
	// copies), and auto mode turns zero-copy off for the socket.
	s.w.zc = true
	var e sendop.Args
	e.SetBuffer(make([]byte, 1<<20))
	done := make(chan struct{}, 1)
	e.Completed = func(*sendop.Args) { done <- struct{}{} }
	if pending, err := s.SendAsync(&e); err != nil {
		t.Fatal(err)
	} else if pending {
		<-done
	}
	if e.SocketError() != sendop.Success || e.BytesTransferred() != 1<<20 {
		t.Fatalf("%v %d", e.SocketError(), e.BytesTransferred())
	}
	if s.u.zcNotifs.Load() == 0 {
		t.Fatal("no notification seen")
	}
	if s.w.zc {
		t.Fatal("zero-copy still on after a notification that said copied")
	}
}
