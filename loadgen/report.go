package loadgen

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Report is the result of a run. Its JSON form (WriteJSON) always has
// every key below; the command's -json prints it alone on stdout.
type Report struct {
	// What ran.
	Command     string  `json:"command"`         // run or rr
	Target      string  `json:"target"`          // URL sent to
	Backend     string  `json:"backend"`         // io_uring or epoll
	Fallback    string  `json:"fallback"`        // why auto chose epoll, or ""
	ZeroCopy    string  `json:"zerocopy"`        // as requested: auto, on, off
	ZeroCopyOn  bool    `json:"zerocopy_used"`   // whether sends used SEND_ZC
	ZeroCopyWhy string  `json:"zerocopy_reason"` // why not, when requested and not used
	Batching    bool    `json:"batching"`        // connections coalesced queued sends
	Mode        string  `json:"mode"`            // buffer or bufferlist
	Segments    int     `json:"segments"`        // BufferList pieces (0 with buffer)
	Size        int64   `json:"size_bytes"`      // message size
	Conns       int     `json:"connections"`     // connections dialed
	ConnsWanted int     `json:"connections_requested"`
	Inflight    int     `json:"inflight"`     // sends in flight per connection (at most)
	Window      int64   `json:"window_bytes"` // what Inflight was derived from (0: -inflight was set)
	Rate        float64 `json:"rate"`         // target messages/s (0: closed loop)
	Verify      bool    `json:"verify"`       // messages carried the verify header
	Interrupted bool    `json:"interrupted"`  // a signal ended the run early
	Shards      int     `json:"shards"`       // -shards: generators sharing the load (0 or 1: one)
	ShardIndex  int     `json:"shard_index"`  // this generator's share, 0 to Shards-1

	// When (TimeFormat, UTC): StartAt is -start-at ("" without it),
	// StartedAt when sending began, EndedAt when the drain ended.
	// StartLagSeconds is StartedAt − StartAt (0 without -start-at);
	// StartedLate says it was more than StartLateAfter: the generator was
	// not ready in time (still connecting, say) or its thread woke late.
	StartAt         string  `json:"start_at"`
	StartedAt       string  `json:"started_at"`
	EndedAt         string  `json:"ended_at"`
	StartLagSeconds float64 `json:"start_lag_seconds"`
	StartedLate     bool    `json:"started_late"`

	// What happened. Messages and Bytes count sends (rr: requests whose
	// echo came back whole) that completed with Success, after -omit;
	// DrainMessages of them completed after sending stopped and are not in
	// the latency percentiles; OmittedMessages completed during -omit and
	// are counted nowhere else. Errors those that completed with another
	// SocketError (rr also: EndOfStream, EchoMismatch), ErrorsByKind by
	// name; Aborted those the run's own shutdown aborted (still in flight
	// after the drain, or on a connection that had failed).
	OmitSeconds       float64           `json:"omit_seconds"`
	OmittedMessages   uint64            `json:"omitted_messages"`
	OmittedBytes      uint64            `json:"omitted_bytes"`
	DrainMessages     uint64            `json:"drain_messages"`
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
	// Latency is of successful sends: send-completion latency for run,
	// round trip for rr (LatencyKind says which).
	Latency     Latency `json:"latency_seconds"`
	LatencyKind string  `json:"latency_kind"` // send_completion or round_trip
	// LatencyHistogram is the whole histogram behind Latency, in
	// HdrHistogram's own serialized form (V2 compressed, base64: what
	// hdrhistogram-go's Encode and every HdrHistogram's decoder speak),
	// for "uringsend merge" to add runs up exactly. Its values are in
	// HistogramUnit ("ns"); its lowest and highest trackable values and
	// significant figures are inside the encoding.
	// ConnectLatencyHistogram is ConnectLatency's, alike. In a report that
	// Run returns they are filled when it is marshaled (WriteJSON,
	// json.Marshal): encoding allocates per bucket, which a run leaves to
	// those who want it.
	LatencyHistogram        string `json:"latency_histogram"`
	HistogramUnit           string `json:"histogram_unit"`
	ConnectLatencyHistogram string `json:"connect_latency_histogram"`
	MetricsURL              string `json:"metrics_url"` // "" without -metrics-addr
	// Sink is what the sink received: the embedded sink's count, or with
	// -sink-report what a uringsend sink target received from this run's
	// connections; null otherwise. SinkError says why -sink-report failed.
	Sink      *SinkReport `json:"sink"`
	SinkError string      `json:"sink_error,omitempty"`
	// Cost is the run's own CPU time and system calls.
	Cost *Cost `json:"cost"`
	// TCPInfo aggregates TCP_INFO of the connections at the end (null
	// off TCP); TCPConns is each open connection's (the first
	// MaxTCPInfoConnections; null off TCP).
	TCPInfo  *TCPInfo      `json:"tcp_info"`
	TCPConns []TCPConnInfo `json:"tcp_info_connections"`
	// Dialing: attempts (retries included), failed attempts, and the
	// connect latency of the successful ones.
	DialAttempts int64 `json:"dial_attempts"`
	DialErrors   int64 `json:"dial_errors"`
	// -conn-lifetime: connections replaced by new ones, and replacements
	// that failed to connect (the old connection went on).
	ConnsReplaced  int64   `json:"connections_replaced"`
	ReplaceErrors  int64   `json:"replace_errors"`
	ConnectLatency Latency `json:"connect_latency_seconds"`
	// Failed lists the thresholds (-max-p99, -max-errors) the run broke;
	// the command then exits with ExitThreshold.
	Failed []string `json:"thresholds_failed"`
	// Merged, in a report of "uringsend merge", lists the reports it was
	// made of and what was wrong with the others; null in a run's.
	Merged *MergeInfo `json:"merged"`

	// The histograms behind LatencyHistogram and ConnectLatencyHistogram
	// until they are encoded; no longer written to.
	latencyHist, connectHist *hdr.Histogram
}

// MarshalJSON encodes r, its histograms serialized.
func (r Report) MarshalJSON() ([]byte, error) {
	if r.LatencyHistogram == "" && r.latencyHist != nil {
		r.LatencyHistogram = encodeHist(r.latencyHist)
	}
	if r.ConnectLatencyHistogram == "" && r.connectHist != nil {
		r.ConnectLatencyHistogram = encodeHist(r.connectHist)
	}
	type plain Report // without this method
	return json.Marshal(plain(r))
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
	all := snap.counts
	c := all.sub(r.omitted)
	rep := &Report{
		Command:         "run",
		LatencyKind:     "send_completion",
		OmitSeconds:     r.omitAt.Seconds(),
		OmittedMessages: r.omitted.messages,
		OmittedBytes:    r.omitted.bytes,
		DrainMessages:   c.late,
		ConnsWanted:     cfg.Conns,
		Target:          cfg.Target.String(),
		Backend:         backend,
		ZeroCopy:        string(cfg.ZeroCopy),
		Mode:            string(cfg.Mode),
		Segments:        cfg.Segments,
		Size:            int64(cfg.Size),
		Conns:           len(r.pos),
		Inflight:        cfg.Inflight,
		Rate:            float64(cfg.Rate),
		Verify:          cfg.Verify,
		Messages:        c.messages,
		Bytes:           c.bytes,
		Errors:          c.errors,
		ErrorsByKind:    map[string]uint64{},
		Aborted:         c.aborted,
		ConnsFailed:     int(r.failed.Load()),
		ConnErrors:      []string{},
		SyncCompletions: c.sync,
		DurationSeconds: (drained - r.omitAt).Seconds(),
		SendSeconds:     (sent - r.omitAt).Seconds(),
		DialAttempts:    r.dialAttempts.Load(),
		DialErrors:      r.dialErrors.Load(),
		ConnsReplaced:   r.replaced.Load(),
		ReplaceErrors:   r.replaceErrors.Load(),
		Failed:          []string{},
	}
	// The run has ended: nothing records into these any more, and the
	// report may keep them.
	r.st.readTotal(func(h *hdr.Histogram) {
		rep.Latency = latencyOf(h)
		rep.latencyHist = h
	})
	r.connectMu.Lock()
	rep.ConnectLatency = latencyOf(r.connect)
	rep.connectHist = r.connect
	r.connectMu.Unlock()
	rep.HistogramUnit = HistogramUnit
	rep.Shards, rep.ShardIndex = cfg.Shards, cfg.ShardIndex
	if cfg.RR {
		rep.Command, rep.LatencyKind = "rr", "round_trip"
	}
	if cfg.Inflight == cfg.windowInflight() && !cfg.RR && cfg.Rate == 0 {
		rep.Window = int64(cfg.Window)
	}
	if fallback != nil {
		rep.Fallback = fallback.Error()
	}
	rep.ZeroCopyOn = r.eng.ZeroCopySends() > 0
	if !rep.ZeroCopyOn && cfg.ZeroCopy != ZeroCopyOff {
		rep.ZeroCopyWhy = r.zeroCopyReason()
	}
	rep.Batching = cfg.batching()
	for k, v := range snap.byKind {
		if v -= r.omittedKinds[k]; v > 0 {
			rep.ErrorsByKind[kindName(k)] += v
		}
	}
	r.mu.Lock()
	rep.ConnErrors = append(rep.ConnErrors, r.connErrs...)
	r.mu.Unlock()
	if n := c.messages + c.errors; n > 0 {
		rep.SyncRatio = float64(c.sync) / float64(n)
	}
	if s := rep.DurationSeconds; s > 0 {
		rep.MessagesPerSecond = float64(c.messages) / s
		rep.BitsPerSecond = 8 * float64(c.bytes) / s
	}
	if cfg.MaxP99 > 0 && rep.Latency.P99 > cfg.MaxP99.Seconds() {
		rep.Failed = append(rep.Failed, fmt.Sprintf("-max-p99 %v: p99 was %s", cfg.MaxP99, latency(rep.Latency.P99*1e9)))
	}
	if cfg.MaxErrors >= 0 && rep.Errors > uint64(cfg.MaxErrors) {
		rep.Failed = append(rep.Failed, fmt.Sprintf("-max-errors %d: %s errors", cfg.MaxErrors, grouped(rep.Errors)))
	}
	return rep
}

// HistogramUnit is the unit of the values of the report's histograms.
const HistogramUnit = "ns"

// encodeHist serializes h for the report: V2 compressed, base64.
func encodeHist(h *hdr.Histogram) string {
	b, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return "" // cannot happen with a valid histogram; merge refuses ""
	}
	return string(b)
}

// setTimes sets the report's times from the start of sending and the
// end of the drain (since start), and the start lag against startAt
// (-start-at; zero: none).
func (rep *Report) setTimes(start time.Time, drained time.Duration, startAt time.Time) {
	rep.StartedAt = start.UTC().Format(TimeFormat)
	rep.EndedAt = start.Add(drained).UTC().Format(TimeFormat)
	if startAt.IsZero() {
		return
	}
	lag := start.Sub(startAt) // startAt has no monotonic reading: wall clock
	rep.StartAt = startAt.UTC().Format(TimeFormat)
	rep.StartLagSeconds = lag.Seconds()
	rep.StartedLate = lag > StartLateAfter
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
	shape := Size(r.Size).String() + " messages, one buffer each"
	if r.Mode == string(ModeBufferList) {
		shape = fmt.Sprintf("%v messages, each a bufferlist of %d segments", Size(r.Size), r.Segments)
	}
	target := r.Target
	if r.Sink != nil && r.Sink.Listen == r.Target && r.Cost != nil && r.Cost.IncludesSink {
		target += " (embedded sink)"
	}
	command := r.Command
	if command == "" {
		command = "run"
	}
	switch {
	case r.Merged != nil:
		reports := "reports"
		if merged(r.Merged) == 1 {
			reports = "report"
		}
		fmt.Fprintf(&b, "uringsend merge: %d %s of %s: %s\n", merged(r.Merged), reports, command, target)
	case r.Shards > 1:
		fmt.Fprintf(&b, "uringsend %s: %s (shard %d of %d)\n", command, target, r.ShardIndex, r.Shards)
	default:
		fmt.Fprintf(&b, "uringsend %s: %s\n", command, target)
	}
	conns := fmt.Sprintf("%d connections", r.Conns)
	if r.ConnsWanted > r.Conns {
		conns = fmt.Sprintf("%d of %d connections", r.Conns, r.ConnsWanted)
	}
	inflight := fmt.Sprintf("up to %d in flight", r.Inflight)
	switch {
	case r.Command == "rr":
		inflight = "1 request in flight"
	case r.Window > 0:
		inflight += fmt.Sprintf(" (a %v window)", Size(r.Window))
	}
	fmt.Fprintf(&b, "  %s × %s, %s, %s", conns, inflight, shape, loop)
	if r.Verify {
		b.WriteString(", verified")
	}
	b.WriteString("\n")
	zc := "zero-copy off"
	if r.ZeroCopyOn {
		zc = "zero-copy used"
	} else if r.ZeroCopy != string(ZeroCopyOff) {
		zc = "zero-copy " + r.ZeroCopy + " requested, not used (" + r.ZeroCopyWhy + ")"
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
	if r.StartAt != "" || (r.Merged != nil && r.StartLagSeconds != 0) {
		at := "-start-at " + r.StartAt
		if r.StartAt == "" {
			at = "-start-at (different ones)"
		}
		who := "sending began"
		if r.Merged != nil {
			who = "the last generator began"
		}
		late := ""
		if r.StartedLate {
			late = fmt.Sprintf("LATE (more than %v): ", StartLateAfter)
		}
		if r.Merged == nil && r.Interrupted && r.StartLagSeconds < 0 && r.Messages == 0 {
			fmt.Fprintf(&b, "  start:       %s: interrupted %s before it; nothing sent\n", at, latency(-r.StartLagSeconds*1e9))
		} else {
			fmt.Fprintf(&b, "  start:       %s: %s%s %s it\n", at, late, who, lagText(r.StartLagSeconds))
		}
	}
	fmt.Fprintf(&b, "  duration:    %.2fs (sending %.2fs, then draining)", r.DurationSeconds, r.SendSeconds)
	if r.OmitSeconds > 0 {
		fmt.Fprintf(&b, " after %.2fs omitted (%s messages)", r.OmitSeconds, grouped(r.OmittedMessages))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  messages:    %s  (%s msg/s)", grouped(r.Messages), siCount(r.MessagesPerSecond))
	if r.DrainMessages > 0 {
		fmt.Fprintf(&b, "; %s of them completed while draining, not in the latencies", grouped(r.DrainMessages))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  bytes:       %s  (%s, %s)\n", grouped(r.Bytes), byteCount(float64(r.Bytes)), bitRate(r.BitsPerSecond))
	fmt.Fprintf(&b, "  sync:        %.1f%% of sends completed inside SendAsync\n", 100*r.SyncRatio)
	l := r.Latency
	what := ""
	switch r.LatencyKind {
	case "round_trip":
		what = "round trip "
	case "send_completion":
		what = "send completion "
	}
	fmt.Fprintf(&b, "  latency:     %sp50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", what,
		latency(l.P50*1e9), latency(l.P90*1e9), latency(l.P99*1e9), latency(l.P999*1e9), latency(l.Max*1e9))
	if c := r.Cost; c != nil {
		fmt.Fprintf(&b, "  cpu:         %.2fs user + %.2fs system; %s per message, %.2fs per GB",
			c.UserSeconds, c.SystemSeconds, latency(c.CPUPerMessage*1e9), c.CPUPerGB)
		if c.IncludesSink {
			b.WriteString(" (the embedded sink's included)")
		}
		b.WriteString("\n")
		if s := syscallsText(c, r.Command == "rr"); s != "" {
			fmt.Fprintf(&b, "  syscalls:    %s\n", s)
		}
	}
	if t := r.TCPInfo; t != nil {
		// The delivery rate is the kernel's estimate from one flight per
		// connection, not a throughput: the largest, never a sum.
		est := "delivery-rate estimate up to " + bitRate(t.DeliveryRateMax) + " per connection"
		if loopbackTarget(r.Target) {
			est += " (loopback: no wire to measure)"
		}
		fmt.Fprintf(&b, "  tcp_info:    %s retransmits (%s bytes), rtt mean %s max %s, cwnd %d–%d; %s\n",
			grouped(t.Retransmits), grouped(t.BytesRetrans), latency(t.RTTMeanSeconds*1e9), latency(t.RTTMaxSeconds*1e9),
			t.CwndMin, t.CwndMax, est)
		writeTCPConns(&b, r.TCPConns, t.Connections)
	}
	if r.DialAttempts > 0 {
		cl := r.ConnectLatency
		fmt.Fprintf(&b, "  connect:     p50 %s  p99 %s  max %s; %d attempts, %d failed",
			latency(cl.P50*1e9), latency(cl.P99*1e9), latency(cl.Max*1e9), r.DialAttempts, r.DialErrors)
		if r.ConnsReplaced > 0 || r.ReplaceErrors > 0 {
			fmt.Fprintf(&b, "; %s connections replaced (-conn-lifetime), %d replacements failed", grouped(uint64(r.ConnsReplaced)), r.ReplaceErrors)
		}
		b.WriteString("\n")
	}
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
		if sent := r.Bytes + r.OmittedBytes; s.Bytes != sent {
			match = fmt.Sprintf("the run counted %s", grouped(sent))
		}
		fmt.Fprintf(&b, "  sink:        received %s bytes on %d connections (%s)", grouped(s.Bytes), s.Conns, match)
		if s.Verify {
			fmt.Fprintf(&b, "; verified %s messages, %s bad", grouped(s.Verified), grouped(s.VerifyErrors()))
		}
		if s.Missing > 0 {
			fmt.Fprintf(&b, "; %d connections not seen to finish", s.Missing)
		}
		if sent := r.Messages + r.OmittedMessages; !s.Stream && s.Messages < sent {
			fmt.Fprintf(&b, "; %s of %s datagrams lost", grouped(sent-s.Messages), grouped(sent))
		}
		if s.Reads > 0 {
			fmt.Fprintf(&b, "; %s read calls", grouped(s.Reads))
			if sent := r.Messages + r.OmittedMessages; sent > 0 {
				fmt.Fprintf(&b, " (%.3f per message sent)", float64(s.Reads)/float64(sent))
			}
			if s.Reader == ReaderGoNet {
				b.WriteString(" through Go's net")
			}
		}
		b.WriteString("\n")
	}
	if r.SinkError != "" {
		fmt.Fprintf(&b, "  sink:        no report (%s)\n", r.SinkError)
	}
	for _, f := range r.Failed {
		fmt.Fprintf(&b, "  FAILED:      %s\n", f)
	}
	if m := r.Merged; m != nil {
		writeInputs(&b, m)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// tcpConnRows is how many connections the text report shows TCP_INFO of.
const tcpConnRows = 4

// writeTCPConns writes a table of the connections' TCP_INFO: the few with
// the most retransmits (then the longest RTT), of n that answered.
func writeTCPConns(b *strings.Builder, conns []TCPConnInfo, n int) {
	if len(conns) == 0 {
		return
	}
	cs := slices.Clone(conns)
	slices.SortStableFunc(cs, func(x, y TCPConnInfo) int {
		if c := cmp.Compare(y.Retransmits, x.Retransmits); c != 0 {
			return c
		}
		return cmp.Compare(y.RTTSeconds, x.RTTSeconds)
	})
	cs = cs[:min(len(cs), tcpConnRows)]
	width := len("local")
	for _, c := range cs {
		width = max(width, len(c.Local))
	}
	share := func(part, whole float64) string {
		if whole <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", 100*part/whole)
	}
	// Limited: the share of the time with data in flight that the peer's
	// receive window, or the send buffer, held the connection back.
	const row = "               %-5v %-*s  %7v  %8v  %5v  %9v  %12v  %14v\n"
	fmt.Fprintf(b, row, "conn", width, "local", "retrans", "rtt", "cwnd", "sent", "rwnd-limited", "sndbuf-limited")
	for _, c := range cs {
		fmt.Fprintf(b, row, c.Connection, width, c.Local, c.Retransmits, latency(c.RTTSeconds*1e9), c.Cwnd,
			byteCount(float64(c.BytesSent)), share(c.RwndLimited, c.BusySeconds), share(c.SndbufLimited, c.BusySeconds))
	}
	if more := n - len(cs); more > 0 {
		fmt.Fprintf(b, "               (%d more; every connection's in -json: tcp_info_connections)\n", more)
	}
}

// loopbackTarget reports whether a report's target is a loopback address.
func loopbackTarget(target string) bool {
	t, err := ParseTarget(target)
	if err != nil || t.Network != "tcp" {
		return false
	}
	host, _, err := net.SplitHostPort(t.Address)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return host == "localhost" || err == nil && a.IsLoopback()
}

// lagText says how far from -start-at a start was: "210µs after",
// "3µs before" (the clocks of the wait and of the report differ by that
// much at most).
func lagText(sec float64) string {
	if sec < 0 {
		return latency(-sec*1e9) + " before"
	}
	return latency(sec*1e9) + " after"
}

// merged counts the inputs a merge merged.
func merged(m *MergeInfo) int {
	n := 0
	for _, in := range m.Inputs {
		if in.Status == "merged" || in.Status == "interrupted" {
			n++
		}
	}
	return n
}

// writeInputs lists a merge's inputs and its problems.
func writeInputs(b *strings.Builder, m *MergeInfo) {
	width := 0
	for _, in := range m.Inputs {
		width = max(width, len(in.Name))
	}
	for i, in := range m.Inputs {
		label := "  inputs:     "
		if i > 0 {
			label = "              "
		}
		fmt.Fprintf(b, "%s %-*s  ", label, width, in.Name)
		switch in.Status {
		case "merged", "interrupted":
			if in.ShardIndex >= 0 {
				fmt.Fprintf(b, "shard %d, ", in.ShardIndex)
			}
			fmt.Fprintf(b, "%s messages, %s bytes", grouped(in.Messages), grouped(in.Bytes))
			if in.StartLagSeconds != 0 {
				fmt.Fprintf(b, ", started %s -start-at", lagText(in.StartLagSeconds))
			}
			if in.StartedLate {
				b.WriteString(" (LATE)")
			}
			if in.Status == "interrupted" {
				b.WriteString("; INTERRUPTED: " + in.Detail)
			}
		default:
			fmt.Fprintf(b, "%s: %s (not merged)", strings.ToUpper(in.Status), in.Detail)
		}
		b.WriteString("\n")
	}
	// The other problems are the inputs' statuses above.
	for _, p := range m.Problems {
		if strings.HasPrefix(p, "shard ") {
			fmt.Fprintf(b, "  MISSING:     %s\n", p)
		}
	}
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
	Echo       bool   `json:"echo"` // wrote what it received back
	// Its cost. Reader says what reads: "go_net", Go's net package, not
	// the engine — so there are no io_uring_enter or epoll-engine counts
	// for a sink. Reads counts its Read calls (ReadFrom on UDP): each one
	// read(2) (recvfrom) that returned data or an error; a read(2) that
	// answered EAGAIN, after which Go's netpoller waited, is not counted.
	// ReadsPerMessage is Reads per message where messages are counted (0
	// otherwise). The CPU time is the sink process's since it started
	// (with an embedded sink: the whole process's).
	Reader          string  `json:"reader"`
	Reads           uint64  `json:"read_calls"`
	ReadsPerMessage float64 `json:"read_calls_per_message"`
	UserSeconds     float64 `json:"user_seconds"`
	SystemSeconds   float64 `json:"system_seconds"`
	// Missing, in an answer to -sink-report: connections of the run the
	// sink had not seen finish.
	Missing uint64 `json:"missing_connections"`
	Stream  bool   `json:"-"`
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
		fmt.Fprintf(&b, "  verified:    %s ok, %s corrupt, %s out of order, %s lost\n", grouped(s.Verified), grouped(s.Corrupt), grouped(s.OutOfOrder), grouped(s.Lost))
	}
	if s.Echo {
		b.WriteString("  echo:        every byte written back\n")
	}
	fmt.Fprintf(&b, "  cost:        %.2fs user + %.2fs system, %s read calls", s.UserSeconds, s.SystemSeconds, grouped(s.Reads))
	if s.Messages > 0 {
		fmt.Fprintf(&b, " (%.3f per message)", s.ReadsPerMessage)
	}
	if s.Reader == ReaderGoNet {
		b.WriteString(" through Go's net, not the engine (no io_uring or epoll-engine counts; EAGAINs not counted)")
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// syscallsText is the report's syscalls line: the engine's system calls
// per message (rr: per request) — io_uring_enter calls and what they
// carried, and the direct sendmsg/sendto and recvfrom calls (all of
// epoll's) with the share that answered EAGAIN; "" if it made none. An
// embedded sink's reads are not the engine's: the sink line gives them.
func syscallsText(c *Cost, rr bool) string {
	per := "message"
	if rr {
		per = "request"
	}
	var parts []string
	if c.Enters > 0 {
		s := fmt.Sprintf("%.4f io_uring_enter per %s, %.1f SQEs per enter, %.1f%% of enters waited for a completion",
			c.EntersPerMessage, per, c.SQEsPerEnter, 100*float64(c.Waits)/float64(c.Enters))
		if c.Parks > 0 {
			s += ", reapers parked " + times(c.Parks)
		}
		if c.SQFull > 0 {
			s += ", SQ full " + times(c.SQFull)
		}
		parts = append(parts, s)
	}
	if c.SendCalls+c.RecvCalls > 0 {
		s := fmt.Sprintf("%.3f sendmsg/sendto per %s", c.SendCallsPerMessage, per)
		if c.RecvCalls > 0 {
			s += fmt.Sprintf(", %.3f recvfrom per %s", c.RecvCallsPerMessage, per)
		}
		s += fmt.Sprintf(", %.1f%% of them would block (EAGAIN)", 100*c.WouldBlockRatio)
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// times is "once" or "n times".
func times(n uint64) string {
	if n == 1 {
		return "once"
	}
	return grouped(n) + " times"
}
