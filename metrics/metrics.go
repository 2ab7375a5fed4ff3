package metrics

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names. They are fixed: dashboards and alerts depend on them.
const (
	NameSendDuration     = "uringsend_send_duration_seconds"
	NameSends            = "uringsend_sends_total"
	NameSentBytes        = "uringsend_sent_bytes_total"
	NameInflightSends    = "uringsend_inflight_sends"
	NameRingEnterCalls   = "uringsend_ring_enter_calls_total"
	NameRingSubmitted    = "uringsend_ring_submitted_sqes_total"
	NameRingReaped       = "uringsend_ring_reaped_cqes_total"
	NameRingCQOverflows  = "uringsend_ring_cq_overflows_total"
	NameReaperBatchSize  = "uringsend_reaper_batch_size"
	NameRingSQFull       = "uringsend_ring_sq_full_total"
	NameStaleCompletions = "uringsend_stale_completions_total"
	NameEngineInfo       = "uringsend_engine_info"
	labelCompletion      = "completion"
	labelResult          = "result"
	labelBackend         = "backend"
	labelKernel          = "kernel"
	completionSync       = "sync"
	completionAsync      = "async"
	resultSuccess        = "Success"
	resultOther          = "Other"
	maxResults           = 64 // distinct result label values before folding into resultOther
	nativeBucketFactor   = 1.1
	nativeMaxBuckets     = 160
	nativeMinResetPeriod = time.Hour
)

// Options configures New.
type Options struct {
	// NativeHistograms adds native (sparse) histogram buckets to
	// uringsend_send_duration_seconds, besides the classic buckets, for
	// Prometheus servers that ingest them (protobuf scrape with the
	// native-histograms feature). Off by default.
	NativeHistograms bool
}

// SendDurationBuckets are the classic buckets of
// uringsend_send_duration_seconds (and uringsend_loadgen_latency_seconds):
// 22 exponential buckets from 1 µs to 10 s, three per decade, each rounded
// to three significant digits so that it prints as written (le="2.15e-06",
// not le="2.1544346900318843e-06").
func SendDurationBuckets() []float64 {
	b := prometheus.ExponentialBucketsRange(1e-6, 10, 22)
	for i, v := range b {
		b[i], _ = strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64)
	}
	return b
}

// ReaperBatchBuckets are the buckets of uringsend_reaper_batch_size:
// 1, 2, 4, ..., 1024 CQEs.
func ReaperBatchBuckets() []float64 { return prometheus.ExponentialBuckets(1, 2, 11) }

// RingStats is a snapshot of one ring's cumulative counters, as returned by
// a source registered with AddRingSource. Every field only ever grows.
//
// It is an alias of an unnamed struct type, as is socket.RingStats: the
// two are one type, so *Metrics is a socket.Observer without this package
// and socket importing each other (a program that sends without metrics
// links no Prometheus code).
type RingStats = struct {
	Enters    uint64 // io_uring_enter system calls
	Submitted uint64 // SQEs consumed by the kernel
	Reaped    uint64 // CQEs harvested
	Overflows uint64 // CQEs the kernel could not post (CQ overflow)
	SQFull    uint64 // times a submitter found the SQ full
}

// addStats adds o to s.
func addStats(s *RingStats, o RingStats) {
	s.Enters += o.Enters
	s.Submitted += o.Submitted
	s.Reaped += o.Reaped
	s.Overflows += o.Overflows
	s.SQFull += o.SQFull
}

// atLeast returns s with each field raised to at least o's.
func atLeast(s, o RingStats) RingStats {
	return RingStats{
		Enters:    max(s.Enters, o.Enters),
		Submitted: max(s.Submitted, o.Submitted),
		Reaped:    max(s.Reaped, o.Reaped),
		Overflows: max(s.Overflows, o.Overflows),
		SQFull:    max(s.SQFull, o.SQFull),
	}
}

// Metrics holds the uringsend collectors. A nil *Metrics is valid: every
// method is then a no-op, so an engine without metrics pays one nil check.
// *Metrics is a prometheus.Collector of all its metrics; New registers it.
type Metrics struct {
	dur          *durationHist            // classic buckets in atomics; nil with native histograms
	sendDuration *prometheus.HistogramVec // only with native histograms
	duration     [2]prometheus.Observer   // [completionIndex]
	sends        *prometheus.CounterVec
	sentBytes    prometheus.Counter
	inflight     atomic.Int64
	inflightFunc prometheus.GaugeFunc
	reaperBatch  prometheus.Histogram
	stale        prometheus.Counter
	info         *prometheus.GaugeVec
	infoMu       sync.Mutex

	// results maps a result label value to its sends_total children. It is
	// copied on write (under resultsMu), so the hot path reads it with one
	// atomic load and a map lookup.
	results   atomic.Pointer[map[string]*resultCounters]
	resultsMu sync.Mutex
	other     *resultCounters // under resultsMu

	ring ringCollector
}

type resultCounters [2]prometheus.Counter // [completionIndex]

func completionIndex(sync bool) int {
	if sync {
		return 0
	}
	return 1
}

var completions = [2]string{completionSync, completionAsync}

// New creates the uringsend collectors and registers them on reg, which
// belongs to the caller (New never touches the default registry). It fails
// if reg is nil or the metrics are already registered there.
func New(reg prometheus.Registerer, opts Options) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: nil Registerer")
	}
	m := &Metrics{}
	hopts := prometheus.HistogramOpts{
		Name:    NameSendDuration,
		Help:    "Time from SendAsync to the send's completion, in seconds; completion=sync when SendAsync returned the result, async when Completed was raised.",
		Buckets: SendDurationBuckets(),
	}
	if opts.NativeHistograms {
		hopts.NativeHistogramBucketFactor = nativeBucketFactor
		hopts.NativeHistogramMaxBucketNumber = nativeMaxBuckets
		hopts.NativeHistogramMinResetDuration = nativeMinResetPeriod
	}
	if opts.NativeHistograms {
		m.sendDuration = prometheus.NewHistogramVec(hopts, []string{labelCompletion})
		for i, c := range completions {
			m.duration[i] = m.sendDuration.WithLabelValues(c)
		}
	} else {
		m.dur = newDurationHist(hopts.Help)
	}
	m.sends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameSends,
		Help: "Sends completed, by completion (sync or async) and result (the SocketError name, Success when every byte was sent).",
	}, []string{labelCompletion, labelResult})
	m.results.Store(&map[string]*resultCounters{})
	m.resultCounters(resultSuccess) // the Success series exist from the start
	m.sentBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: NameSentBytes,
		Help: "Bytes handed to the kernel by sends that completed with Success.",
	})
	m.inflightFunc = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: NameInflightSends,
		Help: "Sends accepted by SendAsync that have not completed yet.",
	}, func() float64 { return float64(m.inflight.Load()) })
	m.reaperBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    NameReaperBatchSize,
		Help:    "Number of CQEs the reaper harvested per batch.",
		Buckets: ReaperBatchBuckets(),
	})
	m.stale = prometheus.NewCounter(prometheus.CounterOpts{
		Name: NameStaleCompletions,
		Help: "CQEs whose user_data matched no request in flight: completions that will never be raised. Always 0 unless the engine has a bug.",
	})
	m.info = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: NameEngineInfo,
		Help: "Always 1; labels name the engine's backend (io_uring or epoll) and the kernel release.",
	}, []string{labelBackend, labelKernel})
	m.ring.init()
	if err := reg.Register(m); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) collectors() []prometheus.Collector {
	var duration prometheus.Collector = m.sendDuration
	if m.dur != nil {
		duration = m.dur
	}
	return []prometheus.Collector{duration, m.sends, m.sentBytes, m.inflightFunc, &m.ring, m.reaperBatch, m.stale, m.info}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

// ObserveSend records one completed send: its duration in seconds from
// SendAsync to completion, whether it completed synchronously (SendAsync
// returned false) or through Completed, and its result, the SocketError
// name ("Success", "MessageSize", ...). bytes counts toward
// uringsend_sent_bytes_total only when result is "Success".
//
// Results form a bounded set; after 64 distinct values, new ones (and an
// empty or invalid UTF-8 result) are counted as "Other". Once a result has been seen, ObserveSend allocates
// nothing.
func (m *Metrics) ObserveSend(sync bool, result string, bytes int, seconds float64) {
	if m == nil {
		return
	}
	i := completionIndex(sync)
	m.observe(i, seconds)
	m.resultCounters(result)[i].Inc()
	if result == resultSuccess && bytes > 0 {
		m.sentBytes.Add(float64(bytes))
	}
}

func (m *Metrics) observe(i int, seconds float64) {
	if m.dur != nil {
		m.dur.observe(i, int64(seconds*1e9))
		return
	}
	m.duration[i].Observe(seconds)
}

// resultCounters returns the sends_total children of result, creating them
// on first use.
func (m *Metrics) resultCounters(result string) *resultCounters {
	if c, ok := (*m.results.Load())[result]; ok {
		return c
	}
	m.resultsMu.Lock()
	defer m.resultsMu.Unlock()
	old := *m.results.Load()
	if c, ok := old[result]; ok {
		return c
	}
	if len(old) >= maxResults || result == "" || !utf8.ValidString(result) {
		// Unbounded or unusable label values all count as Other, which
		// is not remembered under their name: the map stays bounded.
		if m.other == nil {
			m.other = m.newResultCounters(resultOther)
		}
		return m.other
	}
	c := m.newResultCounters(result)
	next := make(map[string]*resultCounters, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[result] = c
	m.results.Store(&next)
	return c
}

func (m *Metrics) newResultCounters(label string) *resultCounters {
	var c resultCounters
	for i, comp := range completions {
		c[i] = m.sends.WithLabelValues(comp, label)
	}
	return &c
}

// InflightAdd adds delta to uringsend_inflight_sends: +1 when SendAsync
// accepts a send, -1 when it completes.
func (m *Metrics) InflightAdd(delta int) {
	if m == nil {
		return
	}
	m.inflight.Add(int64(delta))
}

// AddStaleCompletion counts a CQE that matched no request in flight.
func (m *Metrics) AddStaleCompletion() {
	if m == nil {
		return
	}
	m.stale.Inc()
}

// ObserveReaperBatch records that the reaper harvested n CQEs in one batch.
func (m *Metrics) ObserveReaperBatch(n int) {
	if m == nil {
		return
	}
	m.reaperBatch.Observe(float64(n))
}

// SetEngineInfo sets uringsend_engine_info{backend,kernel} to 1, removing
// the series of earlier label values.
func (m *Metrics) SetEngineInfo(backend, kernel string) {
	if m == nil {
		return
	}
	m.infoMu.Lock()
	defer m.infoMu.Unlock()
	m.info.Reset()
	g, err := m.info.GetMetricWithLabelValues(backend, kernel)
	if err != nil { // not valid UTF-8
		g = m.info.WithLabelValues(backend, "unknown")
	}
	g.Set(1)
}

// AddRingSource registers f, which returns a ring's cumulative counters. f
// is called at Collect time (on each scrape), never on the send path;
// uringsend_ring_*_total are the sums over all sources. f must be cheap and
// safe for concurrent use (loads of atomics, typically), and must not call
// the Metrics nor block on a lock held by a caller of remove.
//
// The returned remove unregisters f after reading it one last time; its
// final values stay counted, so the counters never go down. remove is
// idempotent.
func (m *Metrics) AddRingSource(f func() RingStats) (remove func()) {
	if m == nil || f == nil {
		return func() {}
	}
	return m.ring.add(f)
}

// ringCollector emits the ring counters as const metrics summed over the
// sources registered at Collect time (the dbstats-collector pattern).
type ringCollector struct {
	enters, submitted, reaped, overflows, sqFull *prometheus.Desc

	mu      sync.Mutex
	next    uint64
	sources map[uint64]*ringSource
	base    RingStats // final values of removed sources
	last    RingStats // totals last emitted; never emit less
}

type ringSource struct {
	f    func() RingStats
	last RingStats // highest values seen
}

func (r *ringCollector) init() {
	r.enters = prometheus.NewDesc(NameRingEnterCalls,
		"io_uring_enter system calls made by the engine's rings (submit, wait or both).", nil, nil)
	r.submitted = prometheus.NewDesc(NameRingSubmitted,
		"Submission queue entries consumed by the kernel.", nil, nil)
	r.reaped = prometheus.NewDesc(NameRingReaped,
		"Completion queue entries harvested by the reapers.", nil, nil)
	r.overflows = prometheus.NewDesc(NameRingCQOverflows,
		"Completion queue entries dropped or deferred because the completion queue was full.", nil, nil)
	r.sqFull = prometheus.NewDesc(NameRingSQFull,
		"Times a submitter found the submission queue full and submitted what it held to make room.", nil, nil)
	r.sources = make(map[uint64]*ringSource)
}

func (r *ringCollector) add(f func() RingStats) func() {
	r.mu.Lock()
	id := r.next
	r.next++
	r.sources[id] = &ringSource{f: f}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		s, ok := r.sources[id]
		if !ok {
			return
		}
		delete(r.sources, id)
		addStats(&r.base, s.read())
	}
}

// read calls the source and returns its values, never less than before.
func (s *ringSource) read() RingStats {
	s.last = atLeast(s.f(), s.last)
	return s.last
}

// Describe implements prometheus.Collector.
func (r *ringCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- r.enters
	ch <- r.submitted
	ch <- r.reaped
	ch <- r.overflows
	ch <- r.sqFull
}

// Collect implements prometheus.Collector. The lock is held while the
// sources are read so that concurrent Collects and removes see one order
// and the totals stay monotonic.
func (r *ringCollector) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	sum := r.base
	for _, s := range r.sources {
		addStats(&sum, s.read())
	}
	sum = atLeast(sum, r.last)
	r.last = sum
	r.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(r.enters, prometheus.CounterValue, float64(sum.Enters))
	ch <- prometheus.MustNewConstMetric(r.submitted, prometheus.CounterValue, float64(sum.Submitted))
	ch <- prometheus.MustNewConstMetric(r.reaped, prometheus.CounterValue, float64(sum.Reaped))
	ch <- prometheus.MustNewConstMetric(r.overflows, prometheus.CounterValue, float64(sum.Overflows))
	ch <- prometheus.MustNewConstMetric(r.sqFull, prometheus.CounterValue, float64(sum.SQFull))
}
