//go:build linux

package socket

import (
	"sync"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
)

// Close cancels by descriptor for its sends first, and that cancel also
// reaches the receive on the wire. The receives queued behind it must not
// go on receiving: once one has failed, every later one completes with
// OperationAborted, so a relay never sees bytes after a gap. A Close that
// cancels a send or receive running in an io-wq worker may see it end
// with EINTR: that is an abort too, not Interrupted.
func TestCloseAbortsReceivesBehindAFailedOne(t *testing.T) {
	eng, err := NewEngine(EngineConfig{Backend: BackendIOURing})
	if err != nil {
		t.Skip(err)
	}
	defer eng.Close()
	gaps := 0
	for round := range 40 {
		s, p := rxPair(t, eng)
		// A send that stays on the wire: the peer never reads.
		var se sendop.Args
		se.SetBuffer(make([]byte, 32<<20))
		sent := make(chan sendop.SocketError, 1)
		se.Completed = func(e *sendop.Args) { sent <- e.SocketError() }
		if pending, err := s.SendAsync(&se); err != nil || !pending {
			t.Fatalf("round %d: big send: pending %v, err %v", round, pending, err)
		}
		// The peer trickles bytes, so receives keep completing while
		// Close runs.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			b := []byte{1}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := p.Write(b); err != nil {
					return
				}
				time.Sleep(20 * time.Microsecond)
			}
		})
		const n = 64
		res := make([]rxResult, n)
		var done sync.WaitGroup
		for i := range n {
			e := &sendop.Args{}
			e.SetBuffer(make([]byte, 1))
			e.Completed = func(e *sendop.Args) {
				res[i] = rxResult{e.BytesTransferred(), e.SocketError(), e.Err()}
				done.Done()
			}
			done.Add(1)
			pending, err := s.ReceiveAsync(e)
			if err != nil {
				t.Fatalf("round %d: receive %d: %v", round, i, err)
			}
			if !pending {
				res[i] = rxResult{e.BytesTransferred(), e.SocketError(), e.Err()}
				done.Done()
			}
		}
		time.Sleep(time.Duration(round%5) * 100 * time.Microsecond)
		s.Close()
		close(stop)
		wg.Wait()
		done.Wait()
		if se := <-sent; se != sendop.OperationAborted {
			t.Fatalf("round %d: the pending send completed with %v, want OperationAborted", round, se)
		}
		failed := -1
		for i, r := range res {
			switch {
			case r.code != sendop.Success && r.code != sendop.OperationAborted:
				t.Fatalf("round %d: receive %d: %v (Close aborts; nothing else fails here)", round, i, r.code)
			case failed < 0 && r.code != sendop.Success:
				failed = i
			case failed >= 0 && r.code == sendop.Success:
				t.Errorf("round %d: receive %d got %d bytes after receive %d was aborted", round, i, r.n, failed)
				gaps++
			}
		}
		if gaps > 3 {
			t.FailNow()
		}
	}
}
