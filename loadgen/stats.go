package loadgen

import (
	"runtime"
	"sync"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/uringsend/uringsend/sendop"
)

// Latencies are recorded in nanoseconds, 1 ns to 1 h, to three
// significant digits (about 300 KB per histogram).
const (
	histMin     = 1
	histMax     = int64(3600e9)
	histSigFigs = 3
)

func newHist() *hdr.Histogram { return hdr.New(histMin, histMax, histSigFigs) }

// counts are the cumulative counters of a run.
type counts struct {
	messages uint64 // sends completed with Success
	bytes    uint64 // their bytes
	errors   uint64 // sends completed with another SocketError (not aborted by the run)
	sync     uint64 // completions inside SendAsync (Success or not)
	aborted  uint64 // sends aborted by the run's own shutdown (OperationAborted)
	late     uint64 // of messages: completed after sending stopped (not in the latency histogram)
}

// Kinds of failure that are not a SocketError, recorded beside them.
const (
	// kindEndOfStream: the peer closed the connection (rr).
	kindEndOfStream sendop.SocketError = -1000 - iota
	// kindEchoMismatch: an echoed byte differed from the one sent (rr).
	kindEchoMismatch
)

// kindName names a recorded kind of failure.
func kindName(k sendop.SocketError) string {
	switch k {
	case kindEndOfStream:
		return "EndOfStream"
	case kindEchoMismatch:
		return "EchoMismatch"
	}
	return k.String()
}

// sub returns c minus o (counts of a later moment minus an earlier one).
func (c counts) sub(o counts) counts {
	return counts{c.messages - o.messages, c.bytes - o.bytes, c.errors - o.errors, c.sync - o.sync, c.aborted - o.aborted, c.late - o.late}
}

func (c *counts) add(o *counts) {
	c.messages += o.messages
	c.bytes += o.bytes
	c.errors += o.errors
	c.sync += o.sync
	c.aborted += o.aborted
	c.late += o.late
}

// shard is where completions of some connections are recorded. The hot
// path takes the shard's lock, bumps counters and records a latency into
// the active histogram: no allocation (except the first error of a kind).
// The collector swaps the active histogram for the spare one each
// interval and merges what it took outside the lock.
type shard struct {
	mu     sync.Mutex
	c      counts
	byKind map[sendop.SocketError]uint64
	active *hdr.Histogram
	spare  *hdr.Histogram
	_      [64]byte // keep neighbouring shards' locks on other cache lines
}

// stats is the run's recording side: shards written by completions, and
// the collector's merged view.
type stats struct {
	shards []shard

	// Owned by the collector (one goroutine at a time); totalMu guards
	// total against readers elsewhere (the Prometheus collector).
	totalMu  sync.Mutex
	total    *hdr.Histogram // every latency so far (after -omit)
	interval *hdr.Histogram // the latencies of the current interval
}

func newStats(conns int) *stats {
	n := min(conns, 2*runtime.GOMAXPROCS(0), 16)
	s := &stats{shards: make([]shard, n), total: newHist(), interval: newHist()}
	for i := range s.shards {
		s.shards[i].byKind = make(map[sendop.SocketError]uint64)
		s.shards[i].active = newHist()
		s.shards[i].spare = newHist()
	}
	return s
}

func (s *stats) shard(conn int) *shard { return &s.shards[conn%len(s.shards)] }

// record records one completion. late says sending had stopped: the
// message counts, its latency does not (drain is not steady state).
func (sh *shard) record(se sendop.SocketError, n int, latency int64, sync, aborted, late bool) {
	sh.mu.Lock()
	if sync {
		sh.c.sync++
	}
	switch {
	case se == sendop.Success && late:
		sh.c.messages++
		sh.c.bytes += uint64(n)
		sh.c.late++
	case se == sendop.Success:
		sh.c.messages++
		sh.c.bytes += uint64(n)
		if latency < histMin {
			latency = histMin
		} else if latency > histMax {
			latency = histMax
		}
		sh.active.RecordValue(latency) // in range: clamped above
	case aborted:
		sh.c.aborted++
	default:
		sh.c.errors++
		sh.byKind[se]++
	}
	sh.mu.Unlock()
}

// snapshot is the counters at one moment.
type snapshot struct {
	counts
	byKind map[sendop.SocketError]uint64
}

// counters adds up the shards' counters without touching histograms.
func (s *stats) counters() snapshot {
	snap := snapshot{byKind: make(map[sendop.SocketError]uint64)}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		snap.add(&sh.c)
		for k, v := range sh.byKind {
			snap.byKind[k] += v
		}
		sh.mu.Unlock()
	}
	return snap
}

// collect moves the latencies recorded since the last collect into
// s.interval (reset first) and s.total, and returns the counters. Only
// the collector calls it.
func (s *stats) collect() snapshot {
	s.interval.Reset()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		h := sh.active
		sh.active, sh.spare = sh.spare, h
		sh.mu.Unlock()
		if h.TotalCount() > 0 {
			s.interval.Merge(h)
			h.Reset()
		}
	}
	s.totalMu.Lock()
	s.total.Merge(s.interval)
	s.totalMu.Unlock()
	return s.counters()
}

// resetTotal forgets the latencies so far (the end of -omit).
func (s *stats) resetTotal() {
	s.totalMu.Lock()
	s.total.Reset()
	s.totalMu.Unlock()
}

// readTotal calls f with the total histogram, which must not be kept.
func (s *stats) readTotal(f func(h *hdr.Histogram)) {
	s.totalMu.Lock()
	defer s.totalMu.Unlock()
	f(s.total)
}
