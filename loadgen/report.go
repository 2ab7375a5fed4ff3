package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Report is the result of a run. Its JSON form (WriteJSON) always has
// every key below; the command's -json prints it alone on stdout.
type Report struct {
	// What ran.
	Target      string  `json:"target"`        // URL sent to
	Backend     string  `json:"backend"`       // io_uring or epoll
	Fallback    string  `json:"fallback"`      // why auto chose epoll, or ""
	ZeroCopy    string  `json:"zerocopy"`      // as requested: auto, on, off
	ZeroCopyOn  bool    `json:"zerocopy_used"` // whether sends used SEND_ZC
	Batching    bool    `json:"batching"`      // connections coalesced queued sends
	Mode        string  `json:"mode"`          // buffer or bufferlist
	Segments    int     `json:"segments"`      // BufferList pieces (0 with buffer)
	Size        int64   `json:"size_bytes"`    // message size
	Conns       int     `json:"connections"`   // connections dialed
	Inflight    int     `json:"inflight"`      // sends in flight per connection (at most)
	Rate        float64 `json:"rate"`          // target messages/s (0: closed loop)
	Verify      bool    `json:"verify"`        // messages carried the verify header
	Interrupted bool    `json:"interrupted"`   // a signal ended the run early

	// What happened. Messages and Bytes count sends that completed with
	// Success; Errors those that completed with another SocketError,
	// ErrorsByKind by name; Aborted those the run's own shutdown aborted
	// (still in flight after the drain, or on a connection that had failed).
	Messages          uint64            `json:"messages"`
	Bytes             uint64            `json:"bytes"`
	Errors            uint64            `json:"errors"`
	ErrorsByKind      map[string]uint64 `json:"errors_by_kind"`
	Aborted           uint64            `json:"aborted"`
	ConnsFailed       int               `json:"connections_failed"`
	ConnErrors        []string          `json:"connection_errors"` // the first few
	SyncCompletions   uint64            `json:"sync_completions"`  // completed inside SendAsync
	SyncRatio         float64           `json:"sync_ratio"`        // of all completions
	DurationSeconds   float64           `json:"duration_seconds"`  // start to end of drain
	SendSeconds       float64           `json:"send_seconds"`      // start to stop of sending
	MessagesPerSecond float64           `json:"messages_per_second"`
	BitsPerSecond     float64           `json:"bits_per_second"` // of Bytes
	Latency           Latency           `json:"latency_seconds"` // of successful sends
	MetricsURL        string            `json:"metrics_url"`     // "" without -metrics-addr
	// Sink is the embedded sink's count, or null with a -target.
	Sink *SinkReport `json:"sink"`
}

// Latency holds latency percentiles in seconds: from SendAsync (closed
// loop) or from the intended send time (open loop) to completion.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

func latencyOf(h *hdr.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	q := func(p float64) float64 { return float64(h.ValueAtQuantile(p)) / 1e9 }
	return Latency{P50: q(50), P90: q(90), P99: q(99), P999: q(99.9), Max: float64(h.Max()) / 1e9}
}

func (r *runner) report(snap *snapshot, backend string, fallback error, sent, drained time.Duration) *Report {
	cfg := &r.cfg
	rep := &Report{
		Target:          cfg.Target.String(),
		Backend:         backend,
		ZeroCopy:        string(cfg.ZeroCopy),
		Mode:            string(cfg.Mode),
		Segments:        cfg.Segments,
		Size:            int64(cfg.Size),
		Conns:           cfg.Conns,
		Inflight:        cfg.Inflight,
		Rate:            float64(cfg.Rate),
		Verify:          cfg.Verify,
		Messages:        snap.messages,
		Bytes:           snap.bytes,
		Errors:          snap.errors,
		ErrorsByKind:    map[string]uint64{},
		Aborted:         snap.aborted,
		ConnsFailed:     int(r.failed.Load()),
		ConnErrors:      []string{},
		SyncCompletions: snap.sync,
		DurationSeconds: drained.Seconds(),
		SendSeconds:     sent.Seconds(),
		Latency:         latencyOf(r.st.total),
	}
	if fallback != nil {
		rep.Fallback = fallback.Error()
	}
	rep.ZeroCopyOn = r.eng.ZeroCopySends() > 0
	rep.Batching = cfg.batching()
	for k, v := range snap.byKind {
		rep.ErrorsByKind[k.String()] += v
	}
	r.mu.Lock()
	rep.ConnErrors = append(rep.ConnErrors, r.connErrs...)
	r.mu.Unlock()
	if n := snap.messages + snap.errors; n > 0 {
		rep.SyncRatio = float64(snap.sync) / float64(n)
	}
	if s := drained.Seconds(); s > 0 {
		rep.MessagesPerSecond = float64(snap.messages) / s
		rep.BitsPerSecond = 8 * float64(snap.bytes) / s
	}
	return rep
}

// WriteJSON writes r as one indented JSON object and a newline.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	loop := "closed loop"
	if r.Rate > 0 {
		loop = "open loop at " + Rate(r.Rate).String()
	}
	shape := Size(r.Size).String() + " buffer"
	if r.Mode == string(ModeBufferList) {
		shape = fmt.Sprintf("%v bufferlist of %d", Size(r.Size), r.Segments)
	}
	target := r.Target
	if r.Sink != nil {
		target += " (embedded sink)"
	}
	fmt.Fprintf(&b, "uringsend run: %s\n", target)
	fmt.Fprintf(&b, "  %d connections × up to %d in flight, %s messages, %s", r.Conns, r.Inflight, shape, loop)
	if r.Verify {
		b.WriteString(", verified")
	}
	b.WriteString("\n")
	zc := "zero-copy off"
	if r.ZeroCopyOn {
		zc = "zero-copy used"
	} else {
		if r.ZeroCopy != string(ZeroCopyOff) {
			zc = "zero-copy " + r.ZeroCopy + " requested, not used (no send reached 16 KiB, a loopback peer, or no SEND_ZC)"
		}
	}
	batching := ""
	if r.Batching {
		batching = ", batching"
	}
	fmt.Fprintf(&b, "  backend:     %s, %s%s\n", r.Backend, zc, batching)
	if r.Fallback != "" {
		fmt.Fprintf(&b, "               (io_uring unavailable: %s)\n", r.Fallback)
	}
	if r.Interrupted {
		fmt.Fprintf(&b, "  interrupted: partial report after %.2fs\n", r.DurationSeconds)
	}
	fmt.Fprintf(&b, "  duration:    %.2fs (sending %.2fs, then draining)\n", r.DurationSeconds, r.SendSeconds)
	fmt.Fprintf(&b, "  messages:    %s  (%s msg/s)\n", grouped(r.Messages), siCount(r.MessagesPerSecond))
	fmt.Fprintf(&b, "  bytes:       %s  (%s, %s)\n", grouped(r.Bytes), byteCount(float64(r.Bytes)), bitRate(r.BitsPerSecond))
	fmt.Fprintf(&b, "  sync:        %.1f%% of sends completed inside SendAsync\n", 100*r.SyncRatio)
	l := r.Latency
	fmt.Fprintf(&b, "  latency:     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		latency(l.P50*1e9), latency(l.P90*1e9), latency(l.P99*1e9), latency(l.P999*1e9), latency(l.Max*1e9))
	fmt.Fprintf(&b, "  errors:      %s", grouped(r.Errors))
	if len(r.ErrorsByKind) > 0 {
		kinds := make([]string, 0, len(r.ErrorsByKind))
		for k := range r.ErrorsByKind {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for i, k := range kinds {
			sep := ", "
			if i == 0 {
				sep = " ("
			}
			fmt.Fprintf(&b, "%s%s %s", sep, k, grouped(r.ErrorsByKind[k]))
		}
		b.WriteString(")")
	}
	if r.Aborted > 0 {
		fmt.Fprintf(&b, "; %s aborted at shutdown", grouped(r.Aborted))
	}
	b.WriteString("\n")
	if r.ConnsFailed > 0 {
		fmt.Fprintf(&b, "  failed:      %d of %d connections\n", r.ConnsFailed, r.Conns)
		for _, e := range r.ConnErrors {
			fmt.Fprintf(&b, "               %s\n", e)
		}
	}
	if s := r.Sink; s != nil {
		match := "matches"
		if s.Bytes != r.Bytes {
			match = fmt.Sprintf("the run counted %s", grouped(r.Bytes))
		}
		fmt.Fprintf(&b, "  sink:        received %s bytes on %d connections (%s)", grouped(s.Bytes), s.Conns, match)
		if s.Verify {
			fmt.Fprintf(&b, "; verified %s messages, %d bad", grouped(s.Verified), s.VerifyErrors())
		}
		b.WriteString("\n")
	}
	if r.MetricsURL != "" {
		fmt.Fprintf(&b, "  metrics:     %s\n", r.MetricsURL)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// SinkReport is what a sink received.
type SinkReport struct {
	Listen          string  `json:"listen"`
	Conns           uint64  `json:"connections"` // accepted; datagram peers for UDP
	Bytes           uint64  `json:"bytes"`
	Messages        uint64  `json:"messages"` // datagrams, or (with Verify) framed messages; 0 otherwise
	DurationSeconds float64 `json:"duration_seconds"`
	BitsPerSecond   float64 `json:"bits_per_second"`
	Verify          bool    `json:"verify"`
	// With Verify: messages whose checksum and order were right; corrupt
	// ones (bad header or checksum); ones behind their stream's sequence
	// (duplicated or reordered); and messages missing from a sequence
	// (lost: normal for UDP under load, an error on a stream).
	Verified   uint64 `json:"verified"`
	Corrupt    uint64 `json:"corrupt"`
	OutOfOrder uint64 `json:"out_of_order"`
	Lost       uint64 `json:"lost"`
	Stream     bool   `json:"-"`
}

// VerifyErrors is the number of verification failures: corrupt and
// out-of-order messages, and on stream transports lost ones too.
func (s *SinkReport) VerifyErrors() uint64 {
	n := s.Corrupt + s.OutOfOrder
	if s.Stream {
		n += s.Lost
	}
	return n
}

// WriteJSON writes s as one indented JSON object and a newline.
func (s *SinkReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteText writes s for people.
func (s *SinkReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "uringsend sink: %s\n", s.Listen)
	fmt.Fprintf(&b, "  duration:    %.2fs\n", s.DurationSeconds)
	fmt.Fprintf(&b, "  connections: %d\n", s.Conns)
	fmt.Fprintf(&b, "  bytes:       %s  (%s, %s)\n", grouped(s.Bytes), byteCount(float64(s.Bytes)), bitRate(s.BitsPerSecond))
	if s.Messages > 0 {
		fmt.Fprintf(&b, "  messages:    %s\n", grouped(s.Messages))
	}
	if s.Verify {
		fmt.Fprintf(&b, "  verified:    %s ok, %d corrupt, %d out of order, %d lost\n", grouped(s.Verified), s.Corrupt, s.OutOfOrder, s.Lost)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
