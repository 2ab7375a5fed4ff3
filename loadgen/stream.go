package loadgen

import (
	"encoding/json"
	"io"
	"time"
)

// IntervalReport is one line of -json-stream: what one interval saw.
type IntervalReport struct {
	Type              string   `json:"type"`       // "interval"
	AtSeconds         float64  `json:"at_seconds"` // since the start of sending
	IntervalSeconds   float64  `json:"interval_seconds"`
	Omitted           bool     `json:"omitted"` // within -omit: not in the report
	Messages          uint64   `json:"messages"`
	Bytes             uint64   `json:"bytes"`
	Errors            uint64   `json:"errors"`
	MessagesPerSecond float64  `json:"messages_per_second"`
	BitsPerSecond     float64  `json:"bits_per_second"`
	SyncRatio         float64  `json:"sync_ratio"`
	Latency           Latency  `json:"latency_seconds"` // of this interval's completions
	ConnectionsOpen   int      `json:"connections_open"`
	TCPInfo           *TCPInfo `json:"tcp_info"`
}

// writeInterval writes the interval that ended at "at" and lasted dt as
// one JSON line.
func (r *runner) writeInterval(w io.Writer, at, dt time.Duration, now, prev *snapshot) error {
	d := now.counts.sub(prev.counts)
	ir := IntervalReport{
		Type:            "interval",
		AtSeconds:       at.Seconds(),
		IntervalSeconds: dt.Seconds(),
		Omitted:         r.cfg.Omit > 0 && at <= r.cfg.Omit,
		Messages:        d.messages,
		Bytes:           d.bytes,
		Errors:          d.errors,
		Latency:         latencyOf(r.st.interval),
		ConnectionsOpen: len(r.pos) - int(r.failed.Load()),
		TCPInfo:         r.tcpInfo(false),
	}
	if s := dt.Seconds(); s > 0 {
		ir.MessagesPerSecond = float64(d.messages) / s
		ir.BitsPerSecond = 8 * float64(d.bytes) / s
	}
	if n := d.messages + d.errors; n > 0 {
		ir.SyncRatio = float64(d.sync) / float64(n)
	}
	return json.NewEncoder(w).Encode(&ir)
}

// WriteJSONLine writes r as one JSON line: the last line of -json-stream.
func (r *Report) WriteJSONLine(w io.Writer) error {
	return json.NewEncoder(w).Encode(r)
}

// TCPInfo is what TCP_INFO said of the run's connections just before they
// were closed: sums and the spread over connections.
type TCPInfo struct {
	Connections    int     `json:"connections"` // that answered TCP_INFO
	Retransmits    uint64  `json:"retransmits"` // segments retransmitted (tcpi_total_retrans), summed
	BytesRetrans   uint64  `json:"bytes_retransmitted"`
	RTTMeanSeconds float64 `json:"rtt_mean_seconds"` // smoothed RTT, mean over connections
	RTTMaxSeconds  float64 `json:"rtt_max_seconds"`
	CwndMin        uint32  `json:"cwnd_min"` // congestion window, segments
	CwndMax        uint32  `json:"cwnd_max"`
	DeliveryRate   float64 `json:"delivery_rate_bits_per_second"` // summed over connections
}
