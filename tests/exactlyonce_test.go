//go:build linux

package tests

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// Invariant 1: every accepted SendAsync completes exactly once — a
// synchronous return or one Completed, never both, never neither — and
// Completed never runs on the caller's goroutine.

// senderSet remembers the goroutines that call SendAsync in a test.
type senderSet struct{ m sync.Map }

func (ss *senderSet) add() { ss.m.Store(goid(), true) }

func (ss *senderSet) has() bool { _, ok := ss.m.Load(goid()); return ok }

func TestExactlyOnceRandomShapes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		rng := newRand(t)
		const (
			soloN     = 1500 // sends on a socket with one sending goroutine
			sharers   = 3    // goroutines sharing a second socket
			perSharer = 500
		)
		solo, soloPeer := tcpPair(t, eng, pairConfig{rcvbuf: 64 << 10})
		soloR := startReader(t, soloPeer, readOpts{chunk: 16 << 10, pause: time.Millisecond, pauseEvery: 8})
		shared, sharedPeer := streamPair(t, eng, "unix", pairConfig{sndbuf: 32 << 10})
		sharedR := startReader(t, sharedPeer, readOpts{chunk: 8 << 10, pause: time.Millisecond, pauseEvery: 16})

		n := soloN + sharers*perSharer
		tr := newTracker(t, n)
		args := make([]sendop.Args, n)
		shapes := make([]shape, n)
		var senders senderSet
		var wrongG atomic.Int64
		completed := func(e *sendop.Args) {
			i := e.UserToken.(int)
			if senders.has() {
				wrongG.Add(1)
			}
			if e.SocketError() != sendop.Success || e.BytesTransferred() != shapes[i].total() {
				t.Errorf("send %d (async): %v, %d of %d bytes", i, e.Err(), e.BytesTransferred(), shapes[i].total())
			}
			tr.completed(i)
		}
		for i := range args {
			shapes[i] = randomShape(rng, 64<<10, 40)
			args[i].UserToken = i
			args[i].Completed = completed
			shapes[i].apply(&args[i])
		}
		run := func(s *socket.Socket, from, to int) {
			senders.add()
			for i := from; i < to; i++ {
				pending, err := sendAsync(s, &args[i])
				if err != nil {
					t.Errorf("send %d: SendAsync: %v", i, err)
					tr.refused(i)
					continue
				}
				if !pending {
					if args[i].SocketError() != sendop.Success || args[i].BytesTransferred() != shapes[i].total() {
						t.Errorf("send %d (sync): %v, %d of %d bytes", i, args[i].Err(), args[i].BytesTransferred(), shapes[i].total())
					}
					tr.sync(i)
				}
			}
		}
		var wg sync.WaitGroup
		wg.Go(func() { run(solo, 0, soloN) })
		for k := range sharers {
			from := soloN + k*perSharer
			wg.Go(func() { run(shared, from, from+perSharer) })
		}
		wg.Wait()
		tr.wait(closing(t, solo, nil), closing(t, shared, nil))
		t.Logf("%d sends: %d synchronous, %d Completed", n, tr.syncs.Load(), tr.raised.Load())
		if wrongG.Load() != 0 {
			t.Fatalf("%d Completed ran on a goroutine that calls SendAsync", wrongG.Load())
		}
		if tr.raised.Load() == 0 {
			t.Fatal("no send was pending: the slow readers did not stall anything")
		}

		want := newExpect()
		for i := range soloN {
			shapes[i].writePrefix(want, -1)
		}
		sharedWant := newExpect()
		for i := soloN; i < n; i++ {
			shapes[i].writePrefix(sharedWant, -1)
		}
		checkReceived(t, soloR, want)
		if got, _ := sharedR.wait(t); got != sharedWant.n {
			t.Fatalf("shared socket: peer received %d bytes, want %d", got, sharedWant.n)
		}
	})
}

// checkPrefixes checks the results of sends that were cut short by Close or
// an error: each is a full success or failed with a prefix of its bytes;
// after the first that did not send everything, none sent anything (the
// stream has no gaps). It returns what the peer must have received.
func checkPrefixes(t *testing.T, args []sendop.Args, shapes []shape, allowed ...sendop.SocketError) (*expect, map[sendop.SocketError]int) {
	t.Helper()
	want := newExpect()
	byErr := make(map[sendop.SocketError]int)
	cut := -1
	for i := range args {
		e := &args[i]
		se, bt, total := e.SocketError(), e.BytesTransferred(), shapes[i].total()
		byErr[se]++
		ok := se == sendop.Success
		for _, a := range allowed {
			ok = ok || se == a
		}
		if !ok {
			t.Fatalf("send %d: unexpected result %v (%v)", i, se, e.Err())
		}
		if se == sendop.Success && bt != total {
			t.Fatalf("send %d: Success with %d of %d bytes", i, bt, total)
		}
		if se != sendop.Success && (bt < 0 || bt > total || (bt == total && total > 0)) {
			t.Fatalf("send %d: %v with %d of %d bytes", i, se, bt, total)
		}
		if se != sendop.Success && e.Err() == nil {
			t.Fatalf("send %d: %v but Err() is nil", i, se)
		}
		if cut >= 0 && bt > 0 {
			t.Fatalf("send %d sent %d bytes after send %d stopped short: a gap in the stream", i, bt, cut)
		}
		if cut < 0 && bt < total {
			cut = i
		}
		shapes[i].writePrefix(want, bt)
	}
	return want, byErr
}

// Close with hundreds of sends queued behind a peer that does not read:
// each completes exactly once; the ones not sent get OperationAborted and
// the peer receives exactly the bytes reported as transferred.
func TestExactlyOnceAcrossClose(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		rng := newRand(t)
		s, peer := tcpPair(t, eng, small)
		r := startReader(t, peer, readOpts{gated: true})
		const n = 400
		tr := newTracker(t, n)
		args := make([]sendop.Args, n)
		shapes := make([]shape, n)
		var senders senderSet
		senders.add()
		for i := range args {
			shapes[i] = randomShape(rng, 64<<10, 20)
			shapes[i].apply(&args[i])
			args[i].UserToken = i
			args[i].Completed = func(e *sendop.Args) {
				if senders.has() {
					t.Errorf("send %d: Completed on the sending goroutine", i)
				}
				tr.completed(e.UserToken.(int))
			}
			pending, err := sendAsync(s, &args[i])
			if err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			if !pending {
				tr.sync(i)
			}
		}
		if err := closeSocket(s); err != nil {
			t.Fatalf("Close: %v", err)
		}
		tr.wait() // Close has returned: no Completed of s can follow
		want, byErr := checkPrefixes(t, args, shapes, sendop.OperationAborted)
		t.Logf("results: %v (sync %d)", byErr, tr.syncs.Load())
		if byErr[sendop.OperationAborted] == 0 {
			t.Fatal("nothing was aborted: the peer should have stalled the queue")
		}
		for i := range args {
			if args[i].SocketError() == sendop.OperationAborted && !errors.Is(args[i].Err(), sendop.ErrNilArgs) && args[i].Err() == nil {
				t.Fatalf("send %d: OperationAborted without an error", i)
			}
		}
		checkReceived(t, r, want)
	})
}

// Close races sends from several goroutines: a send either is refused with
// ErrClosed or completes exactly once.
func TestExactlyOnceCloseWhileSending(t *testing.T) {
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		const goroutines, per = 4, 200
		s, peer := tcpPair(t, eng, small)
		r := startReader(t, peer, readOpts{chunk: 4 << 10, pause: time.Millisecond, pauseEvery: 4})
		n := goroutines * per
		tr := newTracker(t, n)
		args := make([]sendop.Args, n)
		var refused, issued atomic.Int64
		completed := func(e *sendop.Args) {
			switch e.SocketError() {
			case sendop.Success, sendop.OperationAborted:
			default:
				t.Errorf("send %d: %v", e.UserToken, e.Err())
			}
			tr.completed(e.UserToken.(int))
		}
		seed := rand.Uint64()
		var wg sync.WaitGroup
		started := make(chan struct{}, goroutines)
		for g := range goroutines {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed, uint64(g)))
				started <- struct{}{}
				for i := g * per; i < (g+1)*per; i++ {
					randomShape(rng, 16<<10, 8).apply(&args[i])
					args[i].UserToken = i
					args[i].Completed = completed
					pending, err := sendAsync(s, &args[i])
					issued.Add(1)
					switch {
					case errors.Is(err, socket.ErrClosed):
						refused.Add(1)
						tr.refused(i)
					case err != nil:
						t.Errorf("send %d: %v", i, err)
						tr.refused(i)
					case !pending:
						tr.sync(i)
					}
				}
			})
		}
		for range goroutines {
			<-started
		}
		// Close once the senders are under way (an eighth of the sends
		// made), not after a fixed time that a loaded machine may spend
		// before any send.
		deadline := time.Now().Add(longWait())
		for issued.Load() < int64(n/8) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
		if err := closeSocket(s); err != nil {
			t.Fatalf("Close: %v", err)
		}
		wg.Wait()
		tr.wait() // Close has returned: no Completed of s can follow
		t.Logf("%d refused with ErrClosed, %d sync, %d Completed", refused.Load(), tr.syncs.Load(), tr.raised.Load())
		r.wait(t)
	})
}
