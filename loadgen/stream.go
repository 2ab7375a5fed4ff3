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
	Cost              *Cost    `json:"cost"` // this interval's CPU and system calls
}

// writeInterval writes the interval that ended at "at" and lasted dt as
// one JSON line: now and prev are the counts at its end and its start,
// nowCost and prevCost the costs.
func (r *runner) writeInterval(w io.Writer, at, dt time.Duration, now, prev *snapshot, nowCost, prevCost *cost, includesSink bool) error {
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
		TCPInfo:         r.tcpInfo(false, nil),
		Cost:            nowCost.since(prevCost, d.messages, d.bytes, includesSink),
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
//
// The delivery rate is the kernel's estimate (tcpi_delivery_rate, bytes/s,
// here in bits/s) from the last ACKed flight of each connection: what the
// path delivered in that sample's interval, not what the run sent (that is
// the report's bits_per_second). On loopback, where a flight of 64 KiB
// segments is ACKed within microseconds, it reads hundreds of Gbit/s.
type TCPInfo struct {
	Connections    int     `json:"connections"` // that answered TCP_INFO
	Retransmits    uint64  `json:"retransmits"` // segments retransmitted (tcpi_total_retrans), summed
	BytesRetrans   uint64  `json:"bytes_retransmitted"`
	RTTMeanSeconds float64 `json:"rtt_mean_seconds"` // smoothed RTT, mean over connections
	RTTMaxSeconds  float64 `json:"rtt_max_seconds"`
	CwndMin        uint32  `json:"cwnd_min"` // congestion window, segments
	CwndMax        uint32  `json:"cwnd_max"`
	// DeliveryRate is the connections' delivery-rate estimates summed;
	// DeliveryRateMax the largest of one connection.
	DeliveryRate    float64 `json:"delivery_rate_bits_per_second"`
	DeliveryRateMax float64 `json:"delivery_rate_max_bits_per_second"`
}

// TCPConnInfo is TCP_INFO of one connection at the end of the run.
type TCPConnInfo struct {
	Connection    int     `json:"connection"` // its position in the run, as in connection_errors
	Local         string  `json:"local"`      // its local address (the sink's peer address)
	Retransmits   uint32  `json:"retransmits"`
	BytesRetrans  uint64  `json:"bytes_retransmitted"`
	BytesSent     uint64  `json:"bytes_sent"` // by TCP, retransmissions included
	BytesAcked    uint64  `json:"bytes_acked"`
	NotSentBytes  uint32  `json:"notsent_bytes"` // still in the send buffer
	RTTSeconds    float64 `json:"rtt_seconds"`   // smoothed
	RTTVarSeconds float64 `json:"rttvar_seconds"`
	MinRTTSeconds float64 `json:"min_rtt_seconds"`
	Cwnd          uint32  `json:"cwnd"` // segments
	MSS           uint32  `json:"mss"`
	DeliveryRate  float64 `json:"delivery_rate_bits_per_second"` // the kernel's estimate: see TCPInfo
	PacingRate    float64 `json:"pacing_rate_bits_per_second"`
	BusySeconds   float64 `json:"busy_seconds"`           // time with data in flight
	RwndLimited   float64 `json:"rwnd_limited_seconds"`   // of it, limited by the peer's receive window
	SndbufLimited float64 `json:"sndbuf_limited_seconds"` // limited by the send buffer
}

// MaxTCPInfoConnections bounds the report's tcp_info_connections.
const MaxTCPInfoConnections = 1000
