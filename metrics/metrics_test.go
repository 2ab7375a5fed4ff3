package metrics

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newMetrics(t testing.TB, opts Options) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := New(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

var allNames = []string{
	NameSendDuration, NameSends, NameSentBytes, NameInflightSends,
	NameRingEnterCalls, NameRingSubmitted, NameRingReaped, NameRingCQOverflows,
	NameReaperBatchSize, NameStaleCompletions, NameEngineInfo, NameRingSQFull,
}

// exercise gives every metric at least one series.
func exercise(m *Metrics) {
	m.ObserveSend(true, "Success", 100, 2e-6)
	m.ObserveSend(false, "MessageSize", 0, 3e-5)
	m.InflightAdd(1)
	m.ObserveReaperBatch(3)
	m.SetEngineInfo("io_uring", "6.8.0")
	m.AddRingSource(func() RingStats { return RingStats{Enters: 1, Submitted: 2, Reaped: 2} })
}

func TestLint(t *testing.T) {
	for _, native := range []bool{false, true} {
		t.Run(fmt.Sprintf("native=%v", native), func(t *testing.T) {
			m, reg := newMetrics(t, Options{NativeHistograms: native})
			exercise(m)
			problems, err := testutil.CollectAndLint(m)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("lint: %s: %s", p.Metric, p.Text)
			}
			// The pedantic registry checks each metric against its Desc.
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, mf := range mfs {
				got[mf.GetName()] = true
				if mf.GetHelp() == "" {
					t.Errorf("%s: no help", mf.GetName())
				}
			}
			for _, n := range allNames {
				if !got[n] {
					t.Errorf("metric %s not exposed", n)
				}
			}
			if len(mfs) != len(allNames) {
				t.Errorf("%d metric families, want %d", len(mfs), len(allNames))
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New(nil): no error")
	}
	reg := prometheus.NewRegistry()
	if _, err := New(reg, Options{}); err != nil {
		t.Fatal(err)
	}
	_, err := New(reg, Options{})
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("second New on one registry: %v, want AlreadyRegisteredError", err)
	}
}

func TestNilMetricsIsNoOp(t *testing.T) {
	var m *Metrics
	m.ObserveSend(true, "Success", 10, 1)
	m.ObserveSend(false, "ConnectionReset", 0, 1)
	m.InflightAdd(3)
	m.ObserveReaperBatch(7)
	m.SetEngineInfo("epoll", "6.1")
	m.ObserveLatency(true, 1)
	m.AddSends(false, "Success", 3, 100)
	remove := m.AddRingSource(func() RingStats { t.Error("source of nil Metrics read"); return RingStats{} })
	if remove == nil {
		t.Fatal("AddRingSource on nil Metrics returned a nil remove")
	}
	remove()
	remove()
}

func TestSendValues(t *testing.T) {
	m, reg := newMetrics(t, Options{})
	m.ObserveSend(true, "Success", 100, 1e-6)
	m.ObserveSend(true, "Success", 50, 2e-6)
	m.ObserveSend(false, "Success", 1000, 1e-3)
	m.ObserveSend(false, "MessageSize", 70000, 5e-6) // bytes not counted
	m.ObserveSend(false, "ConnectionReset", 10, 1)   // bytes not counted
	m.ObserveSend(true, "Success", -5, 1e-6)         // negative bytes ignored

	for _, c := range []struct {
		completion, result string
		want               float64
	}{
		{"sync", "Success", 3},
		{"async", "Success", 1},
		{"async", "MessageSize", 1},
		{"sync", "MessageSize", 0},
		{"async", "ConnectionReset", 1},
	} {
		if got := testutil.ToFloat64(m.sends.WithLabelValues(c.completion, c.result)); got != c.want {
			t.Errorf("sends_total{%s,%s} = %v, want %v", c.completion, c.result, got, c.want)
		}
	}
	if got := testutil.ToFloat64(m.sentBytes); got != 1150 {
		t.Errorf("sent_bytes_total = %v, want 1150", got)
	}
	if n := testutil.CollectAndCount(m.sends); n != 6 { // 3 results x 2 completions
		t.Errorf("sends_total has %d series, want 6", n)
	}

	h := histogram(t, reg, NameSendDuration, "completion", "sync")
	if h.GetSampleCount() != 3 || !near(h.GetSampleSum(), 4e-6) {
		t.Errorf("send_duration{sync}: count %d sum %v, want 3 and 4e-6", h.GetSampleCount(), h.GetSampleSum())
	}
	if b := h.GetBucket(); len(b) != 22 || !near(b[0].GetUpperBound(), 1e-6) || !near(b[21].GetUpperBound(), 10) {
		t.Errorf("send_duration buckets: %d from %v to %v, want 22 from 1e-6 to 10",
			len(b), b[0].GetUpperBound(), b[len(b)-1].GetUpperBound())
	} else if b[0].GetCumulativeCount() != 2 || b[1].GetCumulativeCount() != 3 {
		t.Errorf("send_duration{sync} first buckets %d, %d; want 2, 3", b[0].GetCumulativeCount(), b[1].GetCumulativeCount())
	}
	h = histogram(t, reg, NameSendDuration, "completion", "async")
	if h.GetSampleCount() != 3 || !near(h.GetSampleSum(), 1+1e-3+5e-6) {
		t.Errorf("send_duration{async}: count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
	if h.GetSchema() != 0 || len(h.GetPositiveSpan()) != 0 {
		t.Error("native buckets present without Options.NativeHistograms")
	}
}

func TestBatched(t *testing.T) {
	m, reg := newMetrics(t, Options{})
	m.AddSends(false, "Success", 16, 24000)
	m.AddSends(false, "ConnectionReset", 2, 99) // bytes not counted
	m.AddSends(true, "Success", 0, 500)         // nothing
	for range 18 {
		m.ObserveLatency(false, 1e-4)
	}
	if got := testutil.ToFloat64(m.sends.WithLabelValues("async", "Success")); got != 16 {
		t.Errorf("sends_total{async,Success} = %v, want 16", got)
	}
	if got := testutil.ToFloat64(m.sends.WithLabelValues("async", "ConnectionReset")); got != 2 {
		t.Errorf("sends_total{async,ConnectionReset} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.sentBytes); got != 24000 {
		t.Errorf("sent_bytes_total = %v, want 24000", got)
	}
	if h := histogram(t, reg, NameSendDuration, "completion", "async"); h.GetSampleCount() != 18 {
		t.Errorf("send_duration{async} count %d, want 18", h.GetSampleCount())
	}
	if h := histogram(t, reg, NameSendDuration, "completion", "sync"); h.GetSampleCount() != 0 {
		t.Errorf("send_duration{sync} count %d, want 0", h.GetSampleCount())
	}
}

func TestNativeHistograms(t *testing.T) {
	m, reg := newMetrics(t, Options{NativeHistograms: true})
	m.ObserveSend(true, "Success", 1, 1e-5)
	h := histogram(t, reg, NameSendDuration, "completion", "sync")
	if len(h.GetPositiveSpan()) == 0 || h.GetSchema() != 3 {
		t.Errorf("native histogram: schema %d, %d spans; want schema 3 and spans", h.GetSchema(), len(h.GetPositiveSpan()))
	}
	if len(h.GetBucket()) != 22 {
		t.Errorf("classic buckets: %d, want 22 besides the native ones", len(h.GetBucket()))
	}
}

func TestInflight(t *testing.T) {
	m, _ := newMetrics(t, Options{})
	m.InflightAdd(5)
	m.InflightAdd(-2)
	if got := testutil.ToFloat64(m.inflightFunc); got != 3 {
		t.Errorf("inflight = %v, want 3", got)
	}
}

func TestReaperBatch(t *testing.T) {
	m, _ := newMetrics(t, Options{})
	for _, n := range []int{1, 1, 3, 64, 2000} {
		m.ObserveReaperBatch(n)
	}
	want := `
# HELP uringsend_reaper_batch_size Number of CQEs the reaper harvested per batch.
# TYPE uringsend_reaper_batch_size histogram
uringsend_reaper_batch_size_bucket{le="1"} 2
uringsend_reaper_batch_size_bucket{le="2"} 2
uringsend_reaper_batch_size_bucket{le="4"} 3
uringsend_reaper_batch_size_bucket{le="8"} 3
uringsend_reaper_batch_size_bucket{le="16"} 3
uringsend_reaper_batch_size_bucket{le="32"} 3
uringsend_reaper_batch_size_bucket{le="64"} 4
uringsend_reaper_batch_size_bucket{le="128"} 4
uringsend_reaper_batch_size_bucket{le="256"} 4
uringsend_reaper_batch_size_bucket{le="512"} 4
uringsend_reaper_batch_size_bucket{le="1024"} 4
uringsend_reaper_batch_size_bucket{le="+Inf"} 5
uringsend_reaper_batch_size_sum 2069
uringsend_reaper_batch_size_count 5
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), NameReaperBatchSize); err != nil {
		t.Error(err)
	}
}

func TestEngineInfo(t *testing.T) {
	m, _ := newMetrics(t, Options{})
	m.SetEngineInfo("io_uring", "6.1.0")
	m.SetEngineInfo("epoll", "6.8.12-generic")
	want := `
# HELP uringsend_engine_info Always 1; labels name the engine's backend (io_uring or epoll) and the kernel release.
# TYPE uringsend_engine_info gauge
uringsend_engine_info{backend="epoll",kernel="6.8.12-generic"} 1
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), NameEngineInfo); err != nil {
		t.Error(err)
	}
}

func TestExposition(t *testing.T) {
	m, _ := newMetrics(t, Options{})
	m.ObserveSend(false, "Success", 4096, 1e-4)
	m.ObserveSend(false, "WouldBlock", 0, 1e-4)
	m.InflightAdd(2)
	m.AddRingSource(func() RingStats { return RingStats{Enters: 3, Submitted: 5, Reaped: 4, Overflows: 1} })
	want := `
# HELP uringsend_inflight_sends Sends accepted by SendAsync that have not completed yet.
# TYPE uringsend_inflight_sends gauge
uringsend_inflight_sends 2
# HELP uringsend_ring_cq_overflows_total Completion queue entries dropped or deferred because the completion queue was full.
# TYPE uringsend_ring_cq_overflows_total counter
uringsend_ring_cq_overflows_total 1
# HELP uringsend_ring_enter_calls_total io_uring_enter system calls made by the engine's rings (submit, wait or both).
# TYPE uringsend_ring_enter_calls_total counter
uringsend_ring_enter_calls_total 3
# HELP uringsend_ring_reaped_cqes_total Completion queue entries harvested by the reapers.
# TYPE uringsend_ring_reaped_cqes_total counter
uringsend_ring_reaped_cqes_total 4
# HELP uringsend_ring_submitted_sqes_total Submission queue entries consumed by the kernel.
# TYPE uringsend_ring_submitted_sqes_total counter
uringsend_ring_submitted_sqes_total 5
# HELP uringsend_sends_total Sends completed, by completion (sync or async) and result (the SocketError name, Success when every byte was sent).
# TYPE uringsend_sends_total counter
uringsend_sends_total{completion="async",result="Success"} 1
uringsend_sends_total{completion="async",result="WouldBlock"} 1
uringsend_sends_total{completion="sync",result="Success"} 0
uringsend_sends_total{completion="sync",result="WouldBlock"} 0
# HELP uringsend_sent_bytes_total Bytes handed to the kernel by sends that completed with Success.
# TYPE uringsend_sent_bytes_total counter
uringsend_sent_bytes_total 4096
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want),
		NameInflightSends, NameRingCQOverflows, NameRingEnterCalls, NameRingReaped, NameRingSubmitted,
		NameSends, NameSentBytes); err != nil {
		t.Error(err)
	}
}

func TestResultsBounded(t *testing.T) {
	m, _ := newMetrics(t, Options{})
	m.ObserveSend(true, "", 1, 1e-6)
	m.ObserveSend(true, "\xff", 1, 1e-6)
	for i := range maxResults + 10 {
		m.ObserveSend(true, fmt.Sprintf("R%d", i), 1, 1e-6)
	}
	// Success plus maxResults-1 named results, then Other for the rest.
	if n := testutil.CollectAndCount(m.sends); n != 2*(maxResults+1) {
		t.Errorf("sends_total has %d series, want %d", n, 2*(maxResults+1))
	}
	if got := testutil.ToFloat64(m.sends.WithLabelValues("sync", "Other")); got != 2+11 {
		t.Errorf(`sends_total{sync,Other} = %v, want 13`, got)
	}
}

func TestRingSources(t *testing.T) {
	m, _ := newMetrics(t, Options{})
	ringTotals := func() RingStats { t.Helper(); return ringTotals(t, m) }
	if got := ringTotals(); got != (RingStats{}) {
		t.Errorf("no sources: %+v, want zeros", got)
	}
	var a, b atomic.Uint64
	removeA := m.AddRingSource(func() RingStats { v := a.Load(); return RingStats{v, 2 * v, 3 * v, 0, v} })
	removeB := m.AddRingSource(func() RingStats { v := b.Load(); return RingStats{v, v, v, 1, 0} })
	a.Store(10)
	b.Store(100)
	if got, want := ringTotals(), (RingStats{110, 120, 130, 1, 10}); got != want {
		t.Errorf("two sources: %+v, want %+v", got, want)
	}
	a.Store(20)
	removeA() // its final values (20, 40, 60, 0) stay counted
	a.Store(1000)
	if got, want := ringTotals(), (RingStats{120, 140, 160, 1, 20}); got != want {
		t.Errorf("after removing A: %+v, want %+v", got, want)
	}
	removeA()   // idempotent
	b.Store(50) // a buggy source going backwards: the counters hold
	if got, want := ringTotals(), (RingStats{120, 140, 160, 1, 20}); got != want {
		t.Errorf("source going backwards: %+v, want %+v", got, want)
	}
	b.Store(200)
	removeB()
	removeC := m.AddRingSource(func() RingStats { return RingStats{Enters: 5} })
	if got, want := ringTotals(), (RingStats{225, 240, 260, 1, 20}); got != want {
		t.Errorf("after removing B, adding C: %+v, want %+v", got, want)
	}
	removeC()
	if got, want := ringTotals(), (RingStats{225, 240, 260, 1, 20}); got != want {
		t.Errorf("all removed: %+v, want %+v", got, want)
	}
	if m.AddRingSource(nil) == nil {
		t.Error("AddRingSource(nil) returned a nil remove")
	}
}

// ringTotals collects the ring counters of m.
func ringTotals(t testing.TB, m *Metrics) RingStats {
	t.Helper()
	s, err := readRing(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readRing(m *Metrics) (RingStats, error) {
	ch := make(chan prometheus.Metric, 5)
	m.ring.Collect(ch)
	close(ch)
	var s RingStats
	for mt := range ch {
		var d dto.Metric
		if err := mt.Write(&d); err != nil {
			return s, err
		}
		v := uint64(d.GetCounter().GetValue())
		switch mt.Desc() {
		case m.ring.enters:
			s.Enters = v
		case m.ring.submitted:
			s.Submitted = v
		case m.ring.reaped:
			s.Reaped = v
		case m.ring.overflows:
			s.Overflows = v
		case m.ring.sqFull:
			s.SQFull = v
		default:
			return s, fmt.Errorf("unexpected metric %v", mt.Desc())
		}
	}
	return s, nil
}

// TestConcurrent runs the hot path, ring sources and collection together
// under the race detector; counters must add up and never go down.
func TestConcurrent(t *testing.T) {
	m, reg := newMetrics(t, Options{NativeHistograms: true})
	const workers, perWorker = 8, 2000
	var wg sync.WaitGroup
	var ringVal atomic.Uint64
	stop := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			results := []string{"Success", "MessageSize", "ConnectionReset", fmt.Sprintf("W%d", w)}
			for i := range perWorker {
				m.InflightAdd(1)
				m.ObserveSend(i%2 == 0, results[i%len(results)], 10, float64(i)*1e-6)
				m.ObserveReaperBatch(i % 100)
				m.InflightAdd(-1)
				ringVal.Add(1)
			}
		})
	}
	collectorDone := make(chan struct{})
	go func() {
		defer close(collectorDone)
		var last uint64
		for {
			remove := m.AddRingSource(func() RingStats { return RingStats{Enters: ringVal.Load()} })
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
			remove()
			s, err := readRing(m)
			if err != nil {
				t.Error(err)
				return
			}
			v := s.Enters
			if v < last {
				t.Errorf("enter calls went down: %v after %v", v, last)
			}
			last = v
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-collectorDone
	var total float64
	for _, c := range completions {
		for _, r := range []string{"Success", "MessageSize", "ConnectionReset", "W0", "W7"} {
			total += testutil.ToFloat64(m.sends.WithLabelValues(c, r))
		}
	}
	want := float64(workers*perWorker*3/4 + 2*perWorker/4)
	if total != want {
		t.Errorf("sends counted %v, want %v", total, want)
	}
	if got := testutil.ToFloat64(m.inflightFunc); got != 0 {
		t.Errorf("inflight = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.sentBytes); got != workers*perWorker/4*10 {
		t.Errorf("sent bytes = %v, want %v", got, workers*perWorker/4*10)
	}
}

func TestZeroAllocs(t *testing.T) {
	for _, native := range []bool{false, true} {
		m, _ := newMetrics(t, Options{NativeHistograms: native})
		m.ObserveSend(true, "Success", 1, 1e-5) // warm: the result's children exist
		m.ObserveSend(false, "ConnectionReset", 1, 1e-5)
		m.ObserveReaperBatch(8)
		for _, c := range []struct {
			name string
			f    func()
		}{
			{"ObserveSend/sync/Success", func() { m.ObserveSend(true, "Success", 1500, 1e-5) }},
			{"ObserveSend/async/ConnectionReset", func() { m.ObserveSend(false, "ConnectionReset", 0, 1e-5) }},
			{"InflightAdd", func() { m.InflightAdd(1) }},
			{"ObserveLatency", func() { m.ObserveLatency(false, 1e-4) }},
			{"AddSends", func() { m.AddSends(false, "Success", 16, 16*1500) }},
			{"ObserveReaperBatch", func() { m.ObserveReaperBatch(8) }},
		} {
			if a := testing.AllocsPerRun(1000, c.f); a != 0 {
				t.Errorf("native=%v %s: %v allocs per call, want 0", native, c.name, a)
			}
		}
	}
}

func histogram(t testing.TB, g prometheus.Gatherer, name, label, value string) *dto.Histogram {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return mt.GetHistogram()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return nil
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func BenchmarkObserveSend(b *testing.B) {
	m, _ := newMetrics(b, Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveSend(true, "Success", 1500, 1e-5)
		}
	})
}

func BenchmarkObserveSendNil(b *testing.B) {
	var m *Metrics
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveSend(true, "Success", 1500, 1e-5)
	}
}

// The stale-completions counter counts each call once; a nil Metrics
// ignores it.
func TestStaleCompletions(t *testing.T) {
	var nilM *Metrics
	nilM.AddStaleCompletion()
	reg := prometheus.NewRegistry()
	m, err := New(reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.AddStaleCompletion()
	m.AddStaleCompletion()
	want := `
# HELP uringsend_stale_completions_total CQEs whose user_data matched no request in flight: completions that will never be raised. Always 0 unless the engine has a bug.
# TYPE uringsend_stale_completions_total counter
uringsend_stale_completions_total 2
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), NameStaleCompletions); err != nil {
		t.Fatal(err)
	}
}

// Bucket bounds print as short numbers in the exposition: three
// significant digits at most, increasing, from 1 µs to 10 s.
func TestSendDurationBucketsClean(t *testing.T) {
	b := SendDurationBuckets()
	if len(b) != 22 || b[0] != 1e-6 || b[len(b)-1] != 10 {
		t.Fatalf("buckets %v: want 22 from 1e-06 to 10", b)
	}
	for i, v := range b {
		s := strconv.FormatFloat(v, 'g', -1, 64)
		digits := strings.TrimLeft(strings.SplitN(strings.ReplaceAll(s, ".", ""), "e", 2)[0], "0")
		if len(digits) > 3 {
			t.Errorf("bound %d prints as %s", i, s)
		}
		if i > 0 && v <= b[i-1] {
			t.Errorf("bound %d (%v) not above %v", i, v, b[i-1])
		}
	}
}
