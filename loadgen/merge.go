package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Merging: the reports of generators that ran as one ("-shards N" on N
// machines, "-start-at" for all) become one report whose counts are the
// sums and whose percentiles come from the sum of their latency
// histograms — exact, where averaging percentiles is not.
//
// A report that cannot be read (missing, empty, cut off) or whose run was
// interrupted is named in the merged report's problems; the readable ones
// are merged, each once. Reports that measured different things are
// refused (IncompatibleError): different commands, latency kinds, message
// sizes, buffer modes, open against closed loop, histogram settings, or
// two reports of the same shard.

// Errors of ReadReport and ReadReportFile (in a *ReportError) and of
// MergeReports (in an *IncompatibleError).
var (
	// ErrReportMissing: the report's file does not exist.
	ErrReportMissing = errors.New("no report")
	// ErrReportShort: the report is empty, cut off, or (-json-stream)
	// has interval lines but not the final report: the run did not end.
	ErrReportShort = errors.New("short report")
	// ErrNotReport: the file is not a JSON report of uringsend run or rr.
	ErrNotReport = errors.New("not a JSON report of uringsend run or rr")
	// ErrIncompatible: the reports measured different things.
	ErrIncompatible = errors.New("reports cannot be merged")
	// ErrNothingToMerge: no input could be read.
	ErrNothingToMerge = errors.New("no report to merge")
)

// ReportError is a report that could not be read: Err is
// ErrReportMissing, ErrReportShort or ErrNotReport.
type ReportError struct {
	File   string
	Err    error
	Detail string
}

func (e *ReportError) Error() string {
	s := e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.File != "" {
		s = e.File + ": " + s
	}
	return s
}

func (e *ReportError) Unwrap() error { return e.Err }

// IncompatibleError says why two reports cannot be merged. It Is
// ErrIncompatible.
type IncompatibleError struct {
	File, Other string // the report refused, and the one it differs from
	What        string
}

func (e *IncompatibleError) Error() string {
	if e.Other == "" {
		return fmt.Sprintf("%s: cannot be merged: %s", e.File, e.What)
	}
	return fmt.Sprintf("%s and %s cannot be merged: %s", e.File, e.Other, e.What)
}

func (e *IncompatibleError) Unwrap() error { return ErrIncompatible }

// ReadReportFile reads the report in the named file: the object of -json,
// or the last line of -json-stream.
func ReadReportFile(name string) (*Report, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &ReportError{File: name, Err: ErrReportMissing, Detail: "no such file"}
	}
	if err != nil {
		return nil, &ReportError{File: name, Err: ErrReportMissing, Detail: err.Error()}
	}
	defer f.Close()
	rep, err := ReadReport(f)
	var re *ReportError
	if errors.As(err, &re) {
		re.File = name
	}
	return rep, err
}

// maxReportSize bounds what ReadReport reads: a report is a few KB, a
// -json-stream of a long run a few MB.
const maxReportSize = 256 << 20

// ReadReport reads a report: the JSON object of -json, or the NDJSON of
// -json-stream, whose last line is the report. Lines of uringsend's
// stderr (notes, status lines) before and between them are skipped, so
// that what "kubectl logs" prints of a run reads as its report. Errors
// are *ReportError.
func ReadReport(rd io.Reader) (*Report, error) {
	data, err := io.ReadAll(io.LimitReader(rd, maxReportSize+1))
	if err != nil {
		return nil, &ReportError{Err: ErrReportShort, Detail: err.Error()}
	}
	if len(data) > maxReportSize {
		return nil, &ReportError{Err: ErrNotReport, Detail: fmt.Sprintf("larger than %v", Size(maxReportSize))}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &ReportError{Err: ErrReportShort, Detail: "empty: the run wrote nothing (killed before its end?)"}
	}
	var last json.RawMessage
	intervals, notes, text := 0, 0, false
	for rest, line := data, 1; ; {
		// Between the JSON objects, lines of the command's stderr are
		// skipped: "kubectl logs" interleaves its notes and status lines
		// with the report.
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\r' || rest[0] == '\n') {
			if rest[0] == '\n' {
				line++
			}
			rest = rest[1:]
		}
		if len(rest) == 0 {
			break
		}
		if rest[0] != '{' {
			l, after, _ := bytes.Cut(rest, []byte("\n"))
			switch {
			case text: // the rest of a text report
			case bytes.HasPrefix(l, []byte("uringsend run: ")) || bytes.HasPrefix(l, []byte("uringsend rr: ")):
				text = true
			case bytes.HasPrefix(l, []byte("uringsend")) || l[0] >= '0' && l[0] <= '9':
				notes++ // a note, or a status line (its leading blanks are gone)
			default:
				return nil, &ReportError{Err: ErrNotReport, Detail: fmt.Sprintf("line %d: neither JSON nor a line of uringsend's: %.40q", line, l)}
			}
			rest = after
			line++
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(rest))
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &ReportError{Err: ErrReportShort, Detail: fmt.Sprintf("cut off after %d bytes%s (killed while writing?)", len(data), intervalNote(intervals))}
		}
		if err != nil {
			return nil, &ReportError{Err: ErrNotReport, Detail: fmt.Sprintf("line %d: %v", line, err)}
		}
		line += bytes.Count(rest[:dec.InputOffset()], []byte("\n"))
		rest = rest[dec.InputOffset():]
		var probe struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(raw, &probe) == nil && probe.Type == "interval" {
			intervals++
			last = nil
			continue
		}
		last = raw
	}
	switch {
	case last == nil && text:
		return nil, &ReportError{Err: ErrNotReport, Detail: "a text report: run with -json (or -json-stream)"}
	case last == nil && intervals == 0:
		return nil, &ReportError{Err: ErrReportShort, Detail: fmt.Sprintf("no report, %d lines of notes: the run did not end", notes)}
	case last == nil:
		return nil, &ReportError{Err: ErrReportShort, Detail: fmt.Sprintf("%d interval lines and no final report: the run did not end", intervals)}
	}
	var rep Report
	if err := json.Unmarshal(last, &rep); err != nil {
		return nil, &ReportError{Err: ErrNotReport, Detail: err.Error()}
	}
	if rep.Command != "run" && rep.Command != "rr" {
		return nil, &ReportError{Err: ErrNotReport, Detail: fmt.Sprintf("command %q", rep.Command)}
	}
	return &rep, nil
}

func intervalNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", after %d interval lines", n)
}

// MergeSource is one input of MergeReports: a report, or why there is
// none (Err, from ReadReportFile), under the name the merged report
// gives it.
type MergeSource struct {
	Name   string
	Report *Report
	Err    error
}

// MergeInfo is what a merged report was made of.
type MergeInfo struct {
	// Inputs are every source, in the order given.
	Inputs []MergeInput `json:"inputs"`
	// Problems say, one line each, which inputs are missing, short,
	// interrupted or duplicates, and which shards no input covers. Empty
	// when the merge is whole; the command then exits 0.
	Problems []string `json:"problems"`
	// MissingShards are the indices 0 to Shards-1 that no merged report
	// covers.
	MissingShards []int `json:"missing_shards"`
}

// MergeInput is one source of a merge.
type MergeInput struct {
	Name string `json:"name"`
	// Status: "merged"; "interrupted" (merged: its counts are true, but
	// it stopped early); "missing", "short", "not a report" or
	// "duplicate" (not merged). Detail says more.
	Status          string  `json:"status"`
	Detail          string  `json:"detail"`
	ShardIndex      int     `json:"shard_index"` // -1: not sharded, or no report
	Messages        uint64  `json:"messages"`
	Bytes           uint64  `json:"bytes"`
	StartedAt       string  `json:"started_at"`
	EndedAt         string  `json:"ended_at"`
	StartLagSeconds float64 `json:"start_lag_seconds"`
	StartedLate     bool    `json:"started_late"`
}

// MergeReports merges the sources' reports into one: counts summed,
// percentiles from the merged histogram, times spanning all. Sources
// without a report, or whose report repeats one already merged, are left
// out and named in Merged.Problems (with interrupted runs, which are
// merged). Reports that measured different things make it fail with an
// *IncompatibleError; no readable report, with ErrNothingToMerge.
func MergeReports(srcs []MergeSource) (*Report, error) {
	info := &MergeInfo{Inputs: []MergeInput{}, Problems: []string{}, MissingShards: []int{}}
	var reps []*Report
	var names []string
	seen := map[string]string{} // report identity → name
	byShard := map[int]string{}
	for _, s := range srcs {
		in := MergeInput{Name: s.Name, ShardIndex: -1}
		switch {
		case s.Err != nil || s.Report == nil:
			err := s.Err
			if err == nil {
				err = &ReportError{Err: ErrReportMissing}
			}
			in.Status, in.Detail = problemStatus(err), err.Error()
			if re := (*ReportError)(nil); errors.As(err, &re) {
				in.Detail = re.Detail
			}
			info.Problems = append(info.Problems, fmt.Sprintf("%s: %s, not merged: %s", s.Name, in.Status, in.Detail))
			info.Inputs = append(info.Inputs, in)
			continue
		}
		r := s.Report
		in.Messages, in.Bytes = r.Messages, r.Bytes
		if r.Shards > 1 {
			in.ShardIndex = r.ShardIndex
		}
		in.StartedAt, in.EndedAt, in.StartLagSeconds, in.StartedLate = r.StartedAt, r.EndedAt, r.StartLagSeconds, r.StartedLate
		if r.Merged != nil {
			return nil, &IncompatibleError{File: s.Name, What: "it is a merged report already: merge the runs' own reports"}
		}
		id := r.StartedAt + "|" + r.EndedAt + "|" + r.Target + "|" + r.LatencyHistogram
		if first, ok := seen[id]; ok {
			in.Status, in.Detail = "duplicate", "the same report as "+first
			info.Problems = append(info.Problems, fmt.Sprintf("%s: the same report as %s, merged once", s.Name, first))
			info.Inputs = append(info.Inputs, in)
			continue
		}
		seen[id] = s.Name
		if len(reps) > 0 {
			if err := compatible(reps[0], names[0], r, s.Name); err != nil {
				return nil, err
			}
		} else if err := compatible(r, s.Name, r, s.Name); err != nil {
			return nil, err
		}
		if r.Shards > 1 {
			if other, ok := byShard[r.ShardIndex]; ok {
				return nil, &IncompatibleError{File: s.Name, Other: other,
					What: fmt.Sprintf("both are shard %d of %d: a shard run twice would count its share twice; merge one of them", r.ShardIndex, r.Shards)}
			}
			byShard[r.ShardIndex] = s.Name
		}
		in.Status = "merged"
		if r.Interrupted {
			in.Status, in.Detail = "interrupted", fmt.Sprintf("stopped by a signal after %.2fs", r.DurationSeconds)
			info.Problems = append(info.Problems, fmt.Sprintf("%s: interrupted after %.2fs: merged, but it sent less than its share", s.Name, r.DurationSeconds))
		}
		info.Inputs = append(info.Inputs, in)
		reps = append(reps, r)
		names = append(names, s.Name)
	}
	if len(reps) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNothingToMerge, strings.Join(info.Problems, "; "))
	}
	if n := reps[0].Shards; n > 1 {
		for i := range n {
			if _, ok := byShard[i]; !ok {
				info.MissingShards = append(info.MissingShards, i)
				info.Problems = append(info.Problems, fmt.Sprintf("shard %d of %d: no report merged; the total lacks its share", i, n))
			}
		}
	}
	rep, err := sumReports(reps, names)
	if err != nil {
		return nil, err
	}
	rep.Merged = info
	return rep, nil
}

// problemStatus names what is wrong with a source that has no report.
func problemStatus(err error) string {
	switch {
	case errors.Is(err, ErrReportMissing):
		return "missing"
	case errors.Is(err, ErrReportShort):
		return "short"
	case errors.Is(err, errDuplicateName):
		return "duplicate"
	}
	return "not a report"
}

// histSettings are what two histograms must share to be merged.
type histSettings struct {
	lowest, highest int64
	sigFigs         int64
}

func decodeHist(s string) (*hdr.Histogram, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	return hdr.Decode([]byte(s))
}

func settingsOf(h *hdr.Histogram) histSettings {
	return histSettings{h.LowestTrackableValue(), h.HighestTrackableValue(), h.SignificantFigures()}
}

func (s histSettings) String() string {
	return fmt.Sprintf("%d to %d, %d significant figures", s.lowest, s.highest, s.sigFigs)
}

// compatible says why b (named nb) cannot be merged with a (named na), or
// nil. With a == b it checks b alone.
func compatible(a *Report, na string, b *Report, nb string) error {
	refuse := func(format string, args ...any) error {
		other := na
		if a == b {
			other = ""
		}
		return &IncompatibleError{File: nb, Other: other, What: fmt.Sprintf(format, args...)}
	}
	if b.LatencyHistogram == "" || b.HistogramUnit == "" {
		return refuse("no latency_histogram: written by an uringsend older than merge; run it again")
	}
	if b.HistogramUnit != HistogramUnit {
		return refuse("histogram_unit %q: this uringsend reads %q", b.HistogramUnit, HistogramUnit)
	}
	hb, err := decodeHist(b.LatencyHistogram)
	if err != nil {
		return refuse("latency_histogram does not decode: %v", err)
	}
	if a == b {
		return nil
	}
	ha, err := decodeHist(a.LatencyHistogram)
	if err != nil {
		return refuse("latency_histogram does not decode: %v", err)
	}
	loop := func(r *Report) string {
		if r.Rate > 0 {
			return "open loop (-rate)"
		}
		return "closed loop"
	}
	switch {
	case a.Command != b.Command:
		return refuse("commands %s and %s", b.Command, a.Command)
	case a.LatencyKind != b.LatencyKind:
		return refuse("latency kinds %s and %s", b.LatencyKind, a.LatencyKind)
	case a.Size != b.Size:
		return refuse("message sizes %v and %v", Size(b.Size), Size(a.Size))
	case a.Mode != b.Mode || a.Segments != b.Segments:
		return refuse("modes %s and %s", modeString(b), modeString(a))
	case (a.Rate > 0) != (b.Rate > 0):
		return refuse("%s and %s: their latencies count from different moments", loop(b), loop(a))
	case a.HistogramUnit != b.HistogramUnit:
		return refuse("histogram units %s and %s", b.HistogramUnit, a.HistogramUnit)
	case settingsOf(ha) != settingsOf(hb):
		return refuse("histogram settings %v and %v", settingsOf(hb), settingsOf(ha))
	case a.Shards != b.Shards:
		return refuse("-shards %d and %d", b.Shards, a.Shards)
	}
	return nil
}

func modeString(r *Report) string {
	if r.Mode == string(ModeBufferList) {
		return fmt.Sprintf("bufferlist of %d segments", r.Segments)
	}
	return r.Mode
}

// sumReports adds up compatible reports.
func sumReports(reps []*Report, names []string) (*Report, error) {
	first := reps[0]
	m := &Report{
		Command:      first.Command,
		LatencyKind:  first.LatencyKind,
		Mode:         first.Mode,
		Segments:     first.Segments,
		Size:         first.Size,
		Shards:       first.Shards,
		ShardIndex:   -1,
		ErrorsByKind: map[string]uint64{},
		ConnErrors:   []string{},
		Failed:       []string{},
	}
	latency, err := decodeHist(first.LatencyHistogram)
	if err != nil {
		return nil, err
	}
	set := settingsOf(latency)
	latency = hdr.New(set.lowest, set.highest, int(set.sigFigs))
	var connect *hdr.Histogram
	var start, end, sendEnd time.Time
	var targets, backends, fallbacks, zeroCopy, startAts []string
	sameWindow := true
	tcp := &TCPInfo{}
	sink := &SinkReport{}
	var cost *Cost
	for i, r := range reps {
		name := names[i]
		h, err := decodeHist(r.LatencyHistogram)
		if err != nil {
			return nil, &IncompatibleError{File: name, What: "latency_histogram does not decode: " + err.Error()}
		}
		if dropped := latency.Merge(h); dropped != 0 {
			return nil, &IncompatibleError{File: name, What: fmt.Sprintf("%d latencies out of the histogram's range", dropped)}
		}
		if c, err := decodeHist(r.ConnectLatencyHistogram); err == nil {
			if connect == nil {
				s := settingsOf(c)
				connect = hdr.New(s.lowest, s.highest, int(s.sigFigs))
			}
			connect.Merge(c)
		}
		// Each report's own span, from the end of its -omit.
		st, err1 := time.Parse(time.RFC3339Nano, r.StartedAt)
		en, err2 := time.Parse(time.RFC3339Nano, r.EndedAt)
		if err1 != nil || err2 != nil {
			return nil, &IncompatibleError{File: name, What: fmt.Sprintf("started_at %q, ended_at %q: want RFC 3339 times", r.StartedAt, r.EndedAt)}
		}
		st = st.Add(seconds(r.OmitSeconds))
		if start.IsZero() || st.Before(start) {
			start = st
		}
		if en.After(end) {
			end = en
		}
		if se := st.Add(seconds(r.SendSeconds)); se.After(sendEnd) {
			sendEnd = se
		}
		m.OmitSeconds = max(m.OmitSeconds, r.OmitSeconds)
		targets = appendNew(targets, r.Target)
		backends = appendNew(backends, r.Backend)
		fallbacks = appendNew(fallbacks, r.Fallback)
		zeroCopy = appendNew(zeroCopy, r.ZeroCopy)
		startAts = appendNew(startAts, r.StartAt)
		m.ZeroCopyOn = m.ZeroCopyOn || r.ZeroCopyOn
		if m.ZeroCopyWhy == "" {
			m.ZeroCopyWhy = r.ZeroCopyWhy
		}
		m.Batching = m.Batching || r.Batching
		m.Conns += r.Conns
		m.ConnsWanted += r.ConnsWanted
		sameWindow = sameWindow && r.Window == first.Window
		m.Inflight = max(m.Inflight, r.Inflight) // the text says "up to"
		m.Rate += r.Rate                         // each generator's share
		m.Verify = m.Verify || r.Verify
		m.Interrupted = m.Interrupted || r.Interrupted
		m.StartLagSeconds = max(m.StartLagSeconds, r.StartLagSeconds)
		m.StartedLate = m.StartedLate || r.StartedLate

		m.OmittedMessages += r.OmittedMessages
		m.OmittedBytes += r.OmittedBytes
		m.DrainMessages += r.DrainMessages
		m.Messages += r.Messages
		m.Bytes += r.Bytes
		m.Errors += r.Errors
		for k, v := range r.ErrorsByKind {
			m.ErrorsByKind[k] += v
		}
		m.Aborted += r.Aborted
		m.ConnsFailed += r.ConnsFailed
		for _, e := range r.ConnErrors {
			if len(m.ConnErrors) < 10 {
				m.ConnErrors = append(m.ConnErrors, name+": "+e)
			}
		}
		for _, f := range r.Failed {
			m.Failed = append(m.Failed, name+": "+f)
		}
		m.SyncCompletions += r.SyncCompletions
		m.DialAttempts += r.DialAttempts
		m.DialErrors += r.DialErrors
		m.ConnsReplaced += r.ConnsReplaced
		m.ReplaceErrors += r.ReplaceErrors
		if r.SinkError != "" {
			m.SinkError = appendSep(m.SinkError, name+": "+r.SinkError)
		}
		if c := r.Cost; c != nil {
			if cost == nil {
				cost = &Cost{}
			}
			cost.add(c)
		}
		if t := r.TCPInfo; t != nil && tcp != nil {
			tcp.merge(t)
			// Their connection numbers repeat; their local addresses tell them apart.
			m.TCPConns = append(m.TCPConns, r.TCPConns[:min(len(r.TCPConns), MaxTCPInfoConnections-len(m.TCPConns))]...)
		} else {
			tcp = nil // a total of some connections only would mislead
		}
		if s := r.Sink; s != nil && sink != nil {
			sink.merge(s)
		} else {
			sink = nil
		}
	}
	m.Target = strings.Join(targets, ", ")
	m.Backend = strings.Join(backends, ", ")
	m.Fallback = strings.Join(slices.DeleteFunc(fallbacks, func(s string) bool { return s == "" }), "; ")
	m.ZeroCopy = strings.Join(zeroCopy, ", ")
	if m.ZeroCopyOn {
		m.ZeroCopyWhy = ""
	}
	if sameWindow {
		m.Window = first.Window
	}
	if len(startAts) == 1 {
		m.StartAt = startAts[0]
	}
	m.StartedAt = start.UTC().Format(TimeFormat)
	m.EndedAt = end.UTC().Format(TimeFormat)
	m.DurationSeconds = end.Sub(start).Seconds()
	m.SendSeconds = sendEnd.Sub(start).Seconds()
	if n := m.Messages + m.Errors; n > 0 {
		m.SyncRatio = float64(m.SyncCompletions) / float64(n)
	}
	if s := m.DurationSeconds; s > 0 {
		m.MessagesPerSecond = float64(m.Messages) / s
		m.BitsPerSecond = 8 * float64(m.Bytes) / s
	}
	m.Latency = latencyOf(latency)
	m.LatencyHistogram = encodeHist(latency)
	m.HistogramUnit = HistogramUnit
	if connect != nil {
		m.ConnectLatency = latencyOf(connect)
		m.ConnectLatencyHistogram = encodeHist(connect)
	}
	if cost != nil {
		cost.setRatios(m.Messages, m.Bytes)
		m.Cost = cost
	}
	if tcp != nil && tcp.Connections > 0 {
		m.TCPInfo = tcp
	} else {
		m.TCPConns = nil
	}
	if sink != nil {
		sink.Stream = !strings.HasPrefix(m.Target, "udp://")
		if s := sink.DurationSeconds; s > 0 {
			sink.BitsPerSecond = 8 * float64(sink.Bytes) / s
		}
		sink.setReadsPerMessage()
		m.Sink = sink
	}
	sort.Strings(m.Failed)
	return m, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * 1e9) }

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func appendSep(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// merge folds o, another run's TCP_INFO summary, into t.
func (t *TCPInfo) merge(o *TCPInfo) {
	if o.Connections == 0 {
		return
	}
	if t.Connections == 0 || o.CwndMin < t.CwndMin {
		t.CwndMin = o.CwndMin
	}
	t.CwndMax = max(t.CwndMax, o.CwndMax)
	n := float64(t.Connections + o.Connections)
	t.RTTMeanSeconds = (t.RTTMeanSeconds*float64(t.Connections) + o.RTTMeanSeconds*float64(o.Connections)) / n
	t.RTTMaxSeconds = max(t.RTTMaxSeconds, o.RTTMaxSeconds)
	t.Connections += o.Connections
	t.Retransmits += o.Retransmits
	t.BytesRetrans += o.BytesRetrans
	t.DeliveryRate += o.DeliveryRate
	t.DeliveryRateMax = max(t.DeliveryRateMax, o.DeliveryRateMax)
}

// merge folds o, what a sink received from another run, into s.
func (s *SinkReport) merge(o *SinkReport) {
	if s.Listen == "" {
		s.Listen = o.Listen
	} else if !strings.Contains(s.Listen, o.Listen) {
		s.Listen += ", " + o.Listen
	}
	s.Conns += o.Conns
	s.Bytes += o.Bytes
	s.Messages += o.Messages
	s.DurationSeconds = max(s.DurationSeconds, o.DurationSeconds)
	s.Verify = s.Verify || o.Verify
	s.Verified += o.Verified
	s.Corrupt += o.Corrupt
	s.OutOfOrder += o.OutOfOrder
	s.Lost += o.Lost
	s.Echo = s.Echo || o.Echo
	s.Reads += o.Reads
	if s.Reader == "" {
		s.Reader = o.Reader
	}
	s.UserSeconds += o.UserSeconds
	s.SystemSeconds += o.SystemSeconds
	s.Missing += o.Missing
}

// MergeFiles reads the named reports and merges them (MergeReports),
// each under its name as given; a name given twice is read once.
func MergeFiles(names []string) (*Report, error) {
	srcs := make([]MergeSource, 0, len(names))
	read := map[string]string{}
	for _, n := range names {
		key := n
		if abs, err := filepath.Abs(n); err == nil {
			key = abs
		}
		if first, ok := read[key]; ok {
			srcs = append(srcs, MergeSource{Name: n, Err: &ReportError{File: n, Err: errDuplicateName, Detail: "given twice (as " + first + ")"}})
			continue
		}
		read[key] = n
		rep, err := ReadReportFile(n)
		srcs = append(srcs, MergeSource{Name: n, Report: rep, Err: err})
	}
	return MergeReports(srcs)
}

// errDuplicateName: a file named twice on the command line.
var errDuplicateName = errors.New("duplicate")
