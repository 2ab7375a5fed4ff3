//go:build linux

package socket

import (
	"net"
	"testing"
	"time"
)

// Review (issue 18, uringproxy): a stream receive whose handler holds its
// chunks must stop near its limit while the peer keeps sending —
// TestReceiveChunksLimit bounds it at limit+128 ("never the pool") with a
// 1 MiB burst. With a peer that goes on writing (a client uploading
// through a proxy whose upstream stalled) the socket goes on taking
// buffers past the limit, up to the whole pool (864–1024 of 1024 in five
// runs): one stalled direction then parks every other stream of the ring
// (ENOBUFS).
//
// Why: onStream sends the cancel with u.prepCancel(c.UserData()) and
// u.r.Submit() without u.r.LockSQ()/UnlockSQ() around it. GetSQE wants
// the submission lock and only UnlockSQ publishes, so the SQE is not in
// the Submit; it leaves with someone else's later UnlockSQ, if at all
// (its CQE said -ENOENT in the runs seen), and capCancel keeps a second
// one from being sent. With LockSQ/UnlockSQ around prepCancel (tried in
// a scratch copy) the cancel's CQE is 0 and this test holds 17–128.
func TestReviewChunkLimitUnderSustainedSend(t *testing.T) {
	eng := streamEngine(t, BackendIOURing, EngineConfig{RecvBufferSize: 32 << 10})
	const limit = 16
	s, p := dialPeer(t, eng, WithChunkLimit(limit))
	k := newChunkSink()
	k.keep = true
	if err := s.ReceiveChunks(k.handle); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		buf := make([]byte, 256<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			p.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := p.Write(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					continue
				}
				return
			}
		}
	}()
	time.Sleep(time.Second)
	close(stop)
	<-wrote
	k.mu.Lock()
	maxOut, chunks := k.maxOut, k.chunks
	k.mu.Unlock()
	t.Logf("held at most %d chunks (limit %d, pool %d)", maxOut, limit, eng.recvBufs)
	if maxOut > limit+128 {
		t.Errorf("held %d chunks with a limit of %d (%d delivered; pool %d)", maxOut, limit, chunks, eng.recvBufs)
	}
	k.releaseAll()
}
