//go:build linux

package tests

import (
	"testing"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// On an idle socket a small send completes inside SendAsync: the inline
// submit-and-peek (io_uring) or the inline send (epoll) wins the race, so
// SendAsync returns pending == false. This is a ratio, not a timing.
func TestSyncRatioIdleTCP(t *testing.T) {
	const n, size, minRatio = 10000, 64, 0.95
	forEachBackend(t, func(t *testing.T, eng *socket.Engine) {
		rng := newRand(t)
		s, peer := tcpPair(t, eng, pairConfig{})
		r := startReader(t, peer, readOpts{})
		w := newWatched(t)
		want := newExpect()
		syncs := 0
		for i := range n {
			b := poolSlice(rng, size)
			want.Write(b)
			w.SetBuffer(b)
			pending, err := sendAsync(s, &w.Args)
			if err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			if pending {
				waitChan(t, w.ch, longWait(), "Completed")
			} else {
				syncs++
			}
			if w.SocketError() != sendop.Success || w.BytesTransferred() != size {
				t.Fatalf("send %d: %v, %d bytes", i, w.Err(), w.BytesTransferred())
			}
		}
		w.noneRaised(t, closing(t, s, nil))
		if got := int(w.raised.Load()); got != n-syncs {
			t.Fatalf("%d pending sends but %d Completed", n-syncs, got)
		}
		ratio := float64(syncs) / n
		t.Logf("%s: %d of %d sends of %d B synchronous: ratio %.4f", eng.Backend(), syncs, n, size, ratio)
		if ratio < minRatio {
			t.Errorf("synchronous ratio %.4f < %.2f on an idle socket", ratio, minRatio)
		}
		checkReceived(t, r, want)
	})
}
