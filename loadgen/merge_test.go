package loadgen

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// shardReport is the report of shard i of n that recorded lats (ns),
// started at start and ran for d.
func shardReport(i, n int, lats []int64, start time.Time, d time.Duration) *Report {
	h := newHist()
	for _, v := range lats {
		h.RecordValue(v)
	}
	c := newHist()
	c.RecordValue(int64(1000 * (i + 1)))
	msgs := uint64(len(lats)) + 2 // two drained: counted, not in the histogram
	return &Report{
		Command: "run", Target: "tcp://10.0.0.9:7000", Backend: "io_uring", ZeroCopy: "auto", Mode: "buffer",
		Size: 100, Conns: 2, ConnsWanted: 2, Inflight: 64, Rate: 1000, Shards: n, ShardIndex: i,
		StartAt: start.UTC().Format(TimeFormat), StartedAt: start.Add(time.Duration(i) * time.Millisecond).UTC().Format(TimeFormat),
		EndedAt:         start.Add(d).UTC().Format(TimeFormat),
		StartLagSeconds: float64(i) / 1000,
		Messages:        msgs, Bytes: 100 * msgs, DrainMessages: 2, Errors: uint64(i),
		ErrorsByKind: map[string]uint64{"ConnectionReset": uint64(i)}, ConnErrors: []string{}, Failed: []string{},
		SyncCompletions: msgs / 2, DurationSeconds: d.Seconds(), SendSeconds: d.Seconds() - 0.1,
		Latency: latencyOf(h), LatencyKind: "send_completion", LatencyHistogram: encodeHist(h), HistogramUnit: "ns",
		ConnectLatency: latencyOf(c), ConnectLatencyHistogram: encodeHist(c),
		DialAttempts: 2, Cost: &Cost{UserSeconds: 1, SystemSeconds: 0.5, Enters: 10, SQEs: 30, SendCalls: 4, RecvCalls: 6, WouldBlock: 5},
		TCPInfo: &TCPInfo{Connections: 2, Retransmits: uint64(i), RTTMeanSeconds: float64(i+1) / 1e3, RTTMaxSeconds: float64(i+1) / 1e3, CwndMin: 10, CwndMax: uint32(10 + i)},
	}
}

// The merged report's counts are the sums and its percentiles those of
// one histogram of every latency of every shard: exact.
func TestMergeExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 17))
	start := time.Date(2026, 12, 3, 11, 10, 0, 0, time.UTC)
	all := newHist()
	var srcs []MergeSource
	for i := range 3 {
		lats := make([]int64, 1000*(i+1))
		for k := range lats {
			// Each shard its own distribution: percentiles of percentiles
			// would be wrong here.
			lats[k] = 1 + int64(rng.ExpFloat64()*float64(20_000*(1+4*i)))
			all.RecordValue(lats[k])
		}
		srcs = append(srcs, MergeSource{Name: []string{"a.json", "b.json", "c.json"}[i], Report: shardReport(i, 3, lats, start, 2*time.Second)})
	}
	m, err := MergeReports(srcs)
	if err != nil {
		t.Fatal(err)
	}
	if m.Latency != latencyOf(all) {
		t.Errorf("latency %+v; want that of all latencies, %+v", m.Latency, latencyOf(all))
	}
	if h, err := hdr.Decode([]byte(m.LatencyHistogram)); err != nil || !h.Equals(all) {
		t.Errorf("latency_histogram: %v; not the histogram of all latencies", err)
	}
	if m.Messages != 6006 || m.Bytes != 600600 || m.DrainMessages != 6 || m.Errors != 3 || m.ErrorsByKind["ConnectionReset"] != 3 ||
		m.Conns != 6 || m.Rate != 3000 || m.SyncCompletions != 3003 || m.DialAttempts != 6 {
		t.Errorf("sums: %d messages, %d bytes, %d drained, %d errors %v, %d conns, rate %v, %d sync, %d dials",
			m.Messages, m.Bytes, m.DrainMessages, m.Errors, m.ErrorsByKind, m.Conns, m.Rate, m.SyncCompletions, m.DialAttempts)
	}
	if m.StartedAt != "2026-12-03T11:10:00.000000000Z" || m.EndedAt != "2026-12-03T11:10:02.000000000Z" || m.DurationSeconds != 2 ||
		m.StartAt != srcs[0].Report.StartAt || m.StartLagSeconds != 0.002 || m.MessagesPerSecond != 3003 {
		t.Errorf("times: %s to %s (%vs), start_at %s, lag %v, %v msg/s", m.StartedAt, m.EndedAt, m.DurationSeconds, m.StartAt, m.StartLagSeconds, m.MessagesPerSecond)
	}
	if c := m.Cost; c == nil || c.UserSeconds != 3 || c.Enters != 30 || c.SQEsPerEnter != 3 || c.SendCalls != 12 || c.RecvCalls != 18 || c.WouldBlockRatio != 0.5 ||
		c.SendCallsPerMessage != 12.0/6006 {
		t.Errorf("cost %+v", c)
	}
	if ti := m.TCPInfo; ti == nil || ti.Connections != 6 || ti.Retransmits != 3 || ti.RTTMeanSeconds != 0.002 || ti.RTTMaxSeconds != 0.003 || ti.CwndMax != 12 {
		t.Errorf("tcp_info %+v", ti)
	}
	if c, _ := hdr.Decode([]byte(m.ConnectLatencyHistogram)); c == nil || c.TotalCount() != 3 {
		t.Errorf("connect_latency_histogram: want 3 values")
	}
	if m.Merged == nil || len(m.Merged.Problems) != 0 || len(m.Merged.Inputs) != 3 || m.Merged.Inputs[2].ShardIndex != 2 || m.Merged.Inputs[2].Messages != 3002 {
		t.Errorf("merged %+v", m.Merged)
	}
	// Text, and JSON with run's schema.
	var b strings.Builder
	m.WriteText(&b)
	for _, want := range []string{"uringsend merge: 3 reports of run: tcp://10.0.0.9:7000\n", "messages:    6,006", "the last generator began 2.00ms after it",
		"inputs:      a.json  shard 0, 1,002 messages", "c.json  shard 2, 3,002 messages, 300,200 bytes, started 2.00ms after -start-at"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	m.WriteJSON(&b)
	var keys map[string]json.RawMessage
	json.Unmarshal([]byte(b.String()), &keys)
	for _, k := range []string{"latency_histogram", "started_at", "ended_at", "histogram_unit", "merged", "messages", "latency_seconds"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
}

// Reports that measured different things are refused, naming both.
func TestMergeIncompatible(t *testing.T) {
	start := time.Now()
	base := func(i int) *Report { return shardReport(i, 2, []int64{1000, 2000}, start, time.Second) }
	otherHist := func(r *Report) {
		h := hdr.New(1, 10e9, 2)
		h.RecordValue(5)
		r.LatencyHistogram = encodeHist(h)
	}
	for _, c := range []struct {
		name string
		mod  func(*Report)
		want string
	}{
		{"size", func(r *Report) { r.Size = 200 }, "message sizes 200B and 100B"},
		{"command", func(r *Report) { r.Command, r.LatencyKind = "rr", "round_trip" }, "commands rr and run"},
		{"kind", func(r *Report) { r.LatencyKind = "round_trip" }, "latency kinds round_trip and send_completion"},
		{"mode", func(r *Report) { r.Mode, r.Segments = "bufferlist", 4 }, "modes bufferlist of 4 segments and buffer"},
		{"loop", func(r *Report) { r.Rate = 0 }, "closed loop and open loop (-rate)"},
		{"histogram", otherHist, "histogram settings 1 to"},
		{"unit", func(r *Report) { r.HistogramUnit = "us" }, `histogram_unit "us"`},
		{"none", func(r *Report) { r.LatencyHistogram = "" }, "no latency_histogram"},
		{"garbage", func(r *Report) { r.LatencyHistogram = "!!" }, "does not decode"},
		{"same shard", func(r *Report) { r.ShardIndex = 0 }, "both are shard 0 of 2"},
		{"shards", func(r *Report) { r.Shards = 3 }, "-shards 3 and 2"},
		{"merged", func(r *Report) { r.Merged = &MergeInfo{} }, "a merged report already"},
	} {
		b := base(1)
		c.mod(b)
		_, err := MergeReports([]MergeSource{{Name: "a.json", Report: base(0)}, {Name: "b.json", Report: b}})
		var ie *IncompatibleError
		if !errors.Is(err, ErrIncompatible) || !errors.As(err, &ie) || ie.File != "b.json" || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an IncompatibleError of b.json saying %q", c.name, err, c.want)
		}
	}
}

// ReadReport takes -json and -json-stream output and says what is wrong
// with anything else.
func TestReadReport(t *testing.T) {
	dir := t.TempDir()
	rep := shardReport(0, 1, []int64{1000}, time.Now(), time.Second)
	full, _ := json.MarshalIndent(rep, "", "  ")
	line, _ := json.Marshal(rep)
	interval := `{"type":"interval","at_seconds":1,"messages":5}` + "\n"
	files := map[string]string{
		"ok.json":        string(full) + "\n",
		"stream.json":    interval + interval + string(line) + "\n",
		"empty.json":     "",
		"blank.json":     " \n",
		"cut.json":       string(full[:len(full)/2]),
		"cutstream.json": interval + string(line[:100]),
		"intervals.json": interval + interval,
		"text.json":      "uringsend run: tcp://10.0.0.9:7000\n  messages: 5\n",
		"other.json":     `{"command":"bench"}`,
		"garbage.json":   "<html>",
		"logs.json":      "uringsend: connected; sending starts at 2026-12-03T11:10:00Z (in 3s)\n   1.0s/1s  4.51M msg/s\n" + string(full) + "\n",
		"notes.json":     "uringsend: connected; sending starts at 2026-12-03T11:10:00Z (in 3s)\n",
		"badline.json":   interval + "oops\n" + string(line) + "\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		file string
		want error
		says string
	}{
		{"ok.json", nil, ""},
		{"stream.json", nil, ""},
		{"missing.json", ErrReportMissing, "no such file"},
		{"empty.json", ErrReportShort, "empty"},
		{"blank.json", ErrReportShort, "empty"},
		{"cut.json", ErrReportShort, "cut off after"},
		{"cutstream.json", ErrReportShort, "after 1 interval lines"},
		{"intervals.json", ErrReportShort, "2 interval lines and no final report"},
		{"text.json", ErrNotReport, "a text report: run with -json"},
		{"other.json", ErrNotReport, `command "bench"`},
		{"garbage.json", ErrNotReport, `line 1: neither JSON nor a line of uringsend's: "<html>"`},
		{"logs.json", nil, ""},
		{"notes.json", ErrReportShort, "no report, 1 lines of notes"},
		{"badline.json", ErrNotReport, `line 2: neither JSON`},
	} {
		path := filepath.Join(dir, c.file)
		got, err := ReadReportFile(path)
		switch {
		case c.want == nil && (err != nil || got.Messages != rep.Messages || got.LatencyHistogram != rep.LatencyHistogram):
			t.Errorf("%s: %v", c.file, err)
		case c.want != nil && (!errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) || !strings.HasPrefix(err.Error(), path+": ")):
			t.Errorf("%s: %v; want %v naming the file and saying %q", c.file, err, c.want, c.says)
		}
	}
}

// Missing, short, interrupted and repeated reports: the merge names each,
// merges every readable report once, and says which shard is missing.
func TestMergeFilesProblems(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	write := func(name string, r *Report) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if r != nil {
			r.WriteJSON(f)
		}
		return p
	}
	r0 := shardReport(0, 4, []int64{1000, 2000}, start, time.Second)
	r2 := shardReport(2, 4, []int64{3000}, start, time.Second)
	r2.Interrupted = true
	a := write("r0.json", r0)
	copyOfA := write("r0-copy.json", r0)
	empty := write("r1.json", nil)
	c := write("r2.json", r2)
	missing := filepath.Join(dir, "r3.json")
	m, err := MergeFiles([]string{a, empty, c, missing, a, copyOfA})
	if err != nil {
		t.Fatal(err)
	}
	if m.Messages != r0.Messages+r2.Messages || m.Bytes != r0.Bytes+r2.Bytes || !m.Interrupted {
		t.Errorf("%d messages, %d bytes, interrupted %v; want r0's and r2's once each: %d, %d, interrupted",
			m.Messages, m.Bytes, m.Interrupted, r0.Messages+r2.Messages, r0.Bytes+r2.Bytes)
	}
	var statuses []string
	for _, in := range m.Merged.Inputs {
		statuses = append(statuses, in.Status)
	}
	if got := strings.Join(statuses, " "); got != "merged short interrupted missing duplicate duplicate" {
		t.Errorf("statuses %q", got)
	}
	problems := strings.Join(m.Merged.Problems, "\n")
	for _, want := range []string{empty + ": short, not merged: empty", c + ": interrupted after", missing + ": missing, not merged: no such file",
		a + ": duplicate, not merged: given twice", copyOfA + ": the same report as " + a, "shard 1 of 4: no report merged", "shard 3 of 4: no report merged"} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}
	if len(m.Merged.MissingShards) != 2 || m.Merged.MissingShards[0] != 1 || m.Merged.MissingShards[1] != 3 {
		t.Errorf("missing shards %v; want [1 3]", m.Merged.MissingShards)
	}
	var b strings.Builder
	m.WriteText(&b)
	for _, want := range []string{"SHORT: empty", "MISSING: no such file", "INTERRUPTED: stopped by a signal", "MISSING:     shard 1 of 4"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}

	if _, err := MergeFiles([]string{empty, missing}); !errors.Is(err, ErrNothingToMerge) || !strings.Contains(err.Error(), "r3.json") {
		t.Errorf("nothing readable: %v; want ErrNothingToMerge naming the files", err)
	}
}
