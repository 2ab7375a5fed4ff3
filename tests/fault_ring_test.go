//go:build linux

package tests

import (
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uringsend/uringsend/metrics"
	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
)

// The ring under pressure: a completion queue far smaller than what is in
// flight (the kernel overflows into its list, the ring flushes it back),
// and a submission queue of two entries shared by many senders. On epoll
// the sizes mean nothing; the same load runs there too.

// engineMetrics returns an engine config with metrics on a registry of
// its own, and a reader of one of its counters or gauges.
func engineMetrics(t testing.TB, cfg socket.EngineConfig) (socket.EngineConfig, func(name string) float64) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Metrics = m
	return cfg, func(name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				switch {
				case m.Counter != nil:
					sum += m.Counter.GetValue()
				case m.Gauge != nil:
					sum += m.Gauge.GetValue()
				}
			}
		}
		return sum
	}
}

// loadSockets opens n stream sockets (tcp, unix; some batching) with peers
// that wait for gate, queues per random sends on each, opens the gate and
// checks: each send exactly once and a Success, every peer gets its bytes.
func loadSockets(t *testing.T, eng *socket.Engine, n, per int) {
	rng := newRand(t)
	gate := make(chan struct{})
	type sock struct {
		s      *socket.Socket
		r      *peerReader
		close  func() error
		tr     *tracker
		args   []sendop.Args
		shapes []shape
	}
	socks := make([]*sock, n)
	for i := range socks {
		k := &sock{tr: newTracker(t, per), args: make([]sendop.Args, per), shapes: make([]shape, per)}
		k.s, k.r, k.close = streamPairOpts(t, eng, []string{"tcp", "unix"}[i%2], i%3 == 2, gate)
		for j := range k.shapes {
			k.shapes[j] = randomShape(rng, 16<<10, 6)
		}
		socks[i] = k
	}
	// Queue from several goroutines at once, with the peers still stalled,
	// then let every peer go: all the heads complete together.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < n; i += 4 {
				k := socks[i]
				queueRange(t, k.s, k.args, k.shapes, k.tr, 0, per, nil)
			}
		})
	}
	wg.Wait()
	close(gate)
	trs := make([]*tracker, n)
	for i, k := range socks {
		trs[i] = k.tr
	}
	waitTrackers(t, trs...)
	for i, k := range socks {
		want, _ := checkResults(t, k.args, k.shapes) // Success only
		if err := k.close(); err != nil {
			t.Fatalf("socket %d: Close: %v", i, err)
		}
		got, err := k.r.wait(t)
		if err != nil || string(got) != string(want) {
			t.Fatalf("socket %d: peer read %d bytes (%v), want %d; first difference at %d", i, len(got), err, len(want), firstDiff(got, want))
		}
	}
}

// streamPairOpts is streamPair with small buffers and a peerReader that
// waits for gate; with batch, the Socket is made by FromConn with
// WithBatching. close closes the Socket (and the connection under it).
func streamPairOpts(t *testing.T, eng *socket.Engine, network string, batch bool, gate chan struct{}) (s *socket.Socket, r *peerReader, close func() error) {
	t.Helper()
	if !batch {
		s, peer := streamPair(t, eng, network, small)
		return s, startPeerReader(t, peer, peerOpts{gate: gate, chunk: 16 << 10}), func() error { return closeSocket(s) }
	}
	c, peer := connPair(t, network, small)
	s, err := socket.FromConn(c, socket.WithEngine(eng), socket.WithBatching())
	if err != nil {
		t.Fatal(err)
	}
	closeSocketAtEnd(t, s)
	return s, startPeerReader(t, peer, peerOpts{gate: gate, chunk: 16 << 10}), func() error {
		err := closeSocket(s)
		c.Close()
		return err
	}
}

func TestFaultCQOverflow(t *testing.T) {
	for _, be := range backends {
		t.Run(be, func(t *testing.T) {
			cfg, metric := engineMetrics(t, socket.EngineConfig{Backend: be, Entries: 4, CQEntries: 8})
			eng := newEngineCfg(t, cfg)
			// Whether the CQ overflows depends on how many completions
			// land before the reaper runs: on a loaded machine one load
			// may not do it, so up to three (each checked in full).
			var overflows float64
			for round := 0; round < 3 && (round == 0 || be == socket.BackendIOURing && overflows == 0); round++ {
				loadSockets(t, eng, 48, 25)
				overflows = metric(metrics.NameRingCQOverflows)
			}
			t.Logf("CQ overflows: %v", overflows)
			if be == socket.BackendIOURing && overflows == 0 {
				t.Error("the CQ of 8 entries never overflowed with 48 sockets completing at once")
			}
			if n := metric(metrics.NameInflightSends); n != 0 {
				t.Fatalf("%s = %v after every send completed", metrics.NameInflightSends, n)
			}
		})
	}
}

func TestFaultSQFull(t *testing.T) {
	forEachBackendCfg(t, socket.EngineConfig{Entries: 2}, func(t *testing.T, eng *socket.Engine) {
		loadSockets(t, eng, 24, 40)
	})
}
