package plot

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Run is what one file held: a run's report, its intervals, or both.
type Run struct {
	// Name names the run in legends and the settings table: usually its
	// file's name.
	Name string
	// Report is the run's report: the whole -json output, or the last
	// line of -json-stream. Nil for a stream cut short before it.
	Report *Report
	// Intervals are the "type":"interval" lines of -json-stream, in file
	// order; nil for a -json report.
	Intervals []Interval

	hist *hdr.Histogram // Report.LatencyHistogram, decoded
	unit float64        // hist's values per second
}

// Report is the part of a uringsend run's JSON report that the page
// shows (loadgen.Report's JSON names; a field a report lacks stays zero).
type Report struct {
	Command      string  `json:"command"`
	Target       string  `json:"target"`
	Backend      string  `json:"backend"`
	Fallback     string  `json:"fallback"`
	ZeroCopy     string  `json:"zerocopy"`
	ZeroCopyUsed bool    `json:"zerocopy_used"`
	ZeroCopyWhy  string  `json:"zerocopy_reason"`
	Batching     bool    `json:"batching"`
	Mode         string  `json:"mode"`
	Segments     int     `json:"segments"`
	Size         int64   `json:"size_bytes"`
	Conns        int     `json:"connections"`
	ConnsWanted  int     `json:"connections_requested"`
	Inflight     int     `json:"inflight"`
	Window       int64   `json:"window_bytes"`
	Rate         float64 `json:"rate"`
	Verify       bool    `json:"verify"`
	Interrupted  bool    `json:"interrupted"`
	Shards       int     `json:"shards"` // -shards (0 or 1: one generator)
	ShardIndex   int     `json:"shard_index"`

	StartAt         string            `json:"start_at"`   // -start-at, RFC 3339
	StartedAt       string            `json:"started_at"` // RFC 3339
	EndedAt         string            `json:"ended_at"`
	StartLagSeconds float64           `json:"start_lag_seconds"`
	StartedLate     bool              `json:"started_late"`
	OmitSeconds     float64           `json:"omit_seconds"`
	DurationSeconds float64           `json:"duration_seconds"`
	SendSeconds     float64           `json:"send_seconds"`
	Messages        uint64            `json:"messages"`
	Bytes           uint64            `json:"bytes"`
	Errors          uint64            `json:"errors"`
	ErrorsByKind    map[string]uint64 `json:"errors_by_kind"`
	ConnsFailed     int               `json:"connections_failed"`
	SyncRatio       float64           `json:"sync_ratio"`
	MessagesPerSec  float64           `json:"messages_per_second"`
	BitsPerSecond   float64           `json:"bits_per_second"`
	Latency         Latency           `json:"latency_seconds"`
	LatencyKind     string            `json:"latency_kind"` // send_completion or round_trip
	Cost            *struct {
		UserSeconds   float64 `json:"user_seconds"`
		SystemSeconds float64 `json:"system_seconds"`
	} `json:"cost"`
	Failed []string `json:"thresholds_failed"`
	// Merged, in a report of "uringsend merge": what it was made of.
	Merged *struct {
		Inputs []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"inputs"`
		Problems []string `json:"problems"`
	} `json:"merged"`

	// LatencyHistogram is the run's latency histogram, as
	// hdrhistogram-go's Encode(V2CompressedEncodingCookieBase) writes it:
	// base64 text. "" in reports older than the field. Its values are in
	// HistogramUnit: "ns" ("" in a report that does not say: ns too).
	LatencyHistogram string `json:"latency_histogram"`
	HistogramUnit    string `json:"histogram_unit"`
}

// perSecond is how many of a histogram unit make a second.
var perSecond = map[string]float64{"": 1e9, "ns": 1e9, "us": 1e6, "µs": 1e6, "ms": 1e3, "s": 1}

// Latency holds latency percentiles in seconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// Interval is one "type":"interval" line of -json-stream.
type Interval struct {
	AtSeconds       float64 `json:"at_seconds"` // end of the interval, since the start of sending
	IntervalSeconds float64 `json:"interval_seconds"`
	Omitted         bool    `json:"omitted"` // within -omit
	Messages        uint64  `json:"messages"`
	Errors          uint64  `json:"errors"`
	MessagesPerSec  float64 `json:"messages_per_second"`
	BitsPerSecond   float64 `json:"bits_per_second"`
	Latency         Latency `json:"latency_seconds"` // of this interval's completions
}

// Read reads what "uringsend run" or "uringsend rr" printed with -json
// (one report object, indented or not) or -json-stream (interval objects
// one per line, then the report), telling them apart by content. name
// is the Run's name and prefixes errors. Lines of an unknown "type" are
// skipped; anything else that is no report or interval is an error
// saying which line.
func Read(name string, r io.Reader) (*Run, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	run := &Run{Name: name}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		start := skipSpace(data, int(dec.InputOffset()))
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			break
		}
		if err != nil {
			off := int(dec.InputOffset())
			var se *json.SyntaxError
			if errors.As(err, &se) {
				off = int(se.Offset)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				off = len(data)
			}
			return nil, fmt.Errorf("%s: line %d: not JSON: %w", name, lineAt(data, off), err)
		}
		line := lineAt(data, start)
		if len(raw) == 0 || raw[0] != '{' {
			return nil, fmt.Errorf("%s: line %d: a JSON value that is no object: not a uringsend report", name, line)
		}
		var probe struct {
			Type    *string         `json:"type"`
			Latency json.RawMessage `json:"latency_seconds"`
			Listen  *string         `json:"listen"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", name, line, err)
		}
		switch {
		case probe.Type != nil && *probe.Type == "interval":
			var iv Interval
			if err := json.Unmarshal(raw, &iv); err != nil {
				return nil, fmt.Errorf("%s: line %d: interval: %w", name, line, err)
			}
			run.Intervals = append(run.Intervals, iv)
		case probe.Type != nil:
			// A kind of line this version does not know.
		case probe.Latency != nil:
			if run.Report != nil {
				return nil, fmt.Errorf("%s: line %d: a second report (one file per run)", name, line)
			}
			run.Report = new(Report)
			if err := json.Unmarshal(raw, run.Report); err != nil {
				return nil, fmt.Errorf("%s: line %d: report: %w", name, line, err)
			}
		case probe.Listen != nil:
			return nil, fmt.Errorf("%s: line %d: a sink's report; plot draws those of run and rr", name, line)
		default:
			return nil, fmt.Errorf("%s: line %d: not a uringsend report (no latency_seconds) nor an interval", name, line)
		}
	}
	if run.Report == nil && len(run.Intervals) == 0 {
		return nil, fmt.Errorf("%s: no report and no intervals (the stdout of uringsend run -json or -json-stream?)", name)
	}
	if _, err := run.histogram(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return run, nil
}

// histogram returns the report's latency histogram, decoded once (r.unit
// says its unit); nil when the report has none.
func (r *Run) histogram() (*hdr.Histogram, error) {
	if r.hist != nil || r.Report == nil || r.Report.LatencyHistogram == "" {
		return r.hist, nil
	}
	unit, ok := perSecond[r.Report.HistogramUnit]
	if !ok {
		return nil, fmt.Errorf("histogram_unit %q: not one of ns, us, ms, s", r.Report.HistogramUnit)
	}
	s := []byte(r.Report.LatencyHistogram)
	h, err := hdr.Decode(s)
	if err != nil {
		// Encode's text base64-encoded once more (a []byte field in
		// JSON) is accepted too.
		if raw, err2 := base64.StdEncoding.DecodeString(string(s)); err2 == nil {
			if h2, err2 := hdr.Decode(raw); err2 == nil {
				h, err = h2, nil
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("latency_histogram: %w", err)
	}
	r.hist, r.unit = h, unit
	return h, nil
}

func skipSpace(data []byte, off int) int {
	for off < len(data) && (data[off] == ' ' || data[off] == '\t' || data[off] == '\r' || data[off] == '\n') {
		off++
	}
	return off
}

// lineAt is the 1-based line of data's byte offset off.
func lineAt(data []byte, off int) int {
	off = min(max(off, 0), len(data))
	return 1 + bytes.Count(data[:off], []byte{'\n'})
}
