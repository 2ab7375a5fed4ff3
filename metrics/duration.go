package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// durationHist is uringsend_send_duration_seconds as classic buckets kept
// in atomic counters (the dbstats-collector pattern): an observation is a
// bucket search and two atomic adds, a reaper folds a whole batch in with
// one add per bucket it touched (LatencyBatch), and Collect emits const
// histograms. With Options.NativeHistograms the client_golang histogram is
// used instead, since native buckets need its sparse state.
type durationHist struct {
	desc     *prometheus.Desc
	bounds   []float64 // upper bounds, seconds
	boundsNs []int64   // the same in nanoseconds, for the search
	counts   [2][]atomic.Uint64
	sumNs    [2]atomic.Uint64
}

func newDurationHist(help string) *durationHist {
	h := &durationHist{
		desc:   prometheus.NewDesc(NameSendDuration, help, []string{labelCompletion}, nil),
		bounds: SendDurationBuckets(),
	}
	for _, b := range h.bounds {
		h.boundsNs = append(h.boundsNs, int64(b*1e9+0.5))
	}
	for i := range h.counts {
		h.counts[i] = make([]atomic.Uint64, len(h.bounds)+1) // last: +Inf
	}
	return h
}

// bucket returns the index of the first bound >= ns (len(bounds): +Inf).
func (h *durationHist) bucket(ns int64) int {
	lo, hi := 0, len(h.boundsNs)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if h.boundsNs[mid] < ns {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func (h *durationHist) observe(i int, ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.counts[i][h.bucket(ns)].Add(1)
	h.sumNs[i].Add(uint64(ns))
}

// Describe implements prometheus.Collector.
func (h *durationHist) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

// Collect implements prometheus.Collector.
func (h *durationHist) Collect(ch chan<- prometheus.Metric) {
	for i, label := range completions {
		buckets := make(map[float64]uint64, len(h.bounds))
		var cum uint64
		for j, b := range h.bounds {
			cum += h.counts[i][j].Load()
			buckets[b] = cum
		}
		cum += h.counts[i][len(h.bounds)].Load()
		sum := float64(h.sumNs[i].Load()) / 1e9
		ch <- prometheus.MustNewConstHistogram(h.desc, cum, sum, buckets, label)
	}
}

// LatencyBatch gathers send latencies on one goroutine (a reaper) with plain
// adds, and Flush folds them into the histogram with one atomic add per
// bucket touched. Not safe for concurrent use.
type LatencyBatch struct {
	m      *Metrics
	i      int
	counts []uint64
	sumNs  uint64
	dirty  bool
}

// NewLatencyBatch returns a batch for sync or async completions; nil for a
// nil *Metrics (whose batch methods do nothing).
func (m *Metrics) NewLatencyBatch(sync bool) *LatencyBatch {
	if m == nil {
		return nil
	}
	b := &LatencyBatch{m: m, i: completionIndex(sync)}
	if m.dur != nil {
		b.counts = make([]uint64, len(m.dur.counts[0]))
	}
	return b
}

// Latencies is NewLatencyBatch(sync) as the two functions an engine calls:
// observe (one send's duration in nanoseconds) and flush. Their types are
// Go's own, so socket.Observer can ask for them without importing this
// package.
func (m *Metrics) Latencies(sync bool) (observe func(ns int64), flush func()) {
	b := m.NewLatencyBatch(sync)
	return b.Observe, b.Flush
}

// Observe records one send's duration in nanoseconds.
func (b *LatencyBatch) Observe(ns int64) {
	if b == nil {
		return
	}
	if b.counts == nil { // native histograms: no batching
		b.m.duration[b.i].Observe(float64(ns) / 1e9)
		return
	}
	if ns < 0 {
		ns = 0
	}
	b.counts[b.m.dur.bucket(ns)]++
	b.sumNs += uint64(ns)
	b.dirty = true
}

// Flush adds what the batch holds to the histogram and empties it.
func (b *LatencyBatch) Flush() {
	if b == nil || !b.dirty {
		return
	}
	h := b.m.dur
	for j, n := range b.counts {
		if n != 0 {
			h.counts[b.i][j].Add(n)
			b.counts[j] = 0
		}
	}
	h.sumNs[b.i].Add(b.sumNs)
	b.sumNs, b.dirty = 0, false
}
