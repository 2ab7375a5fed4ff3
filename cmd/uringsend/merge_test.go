package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// mergeReport is the part of a (merged) JSON report these tests read.
type mergeReport struct {
	Messages         uint64             `json:"messages"`
	Bytes            uint64             `json:"bytes"`
	ShardIndex       int                `json:"shard_index"`
	StartAt          string             `json:"start_at"`
	StartedAt        string             `json:"started_at"`
	EndedAt          string             `json:"ended_at"`
	StartLag         float64            `json:"start_lag_seconds"`
	Late             bool               `json:"started_late"`
	Latency          map[string]float64 `json:"latency_seconds"`
	LatencyHistogram string             `json:"latency_histogram"`
	HistogramUnit    string             `json:"histogram_unit"`
	Merged           *struct {
		Problems      []string `json:"problems"`
		MissingShards []int    `json:"missing_shards"`
	} `json:"merged"`
}

// Two shards of one load, started together against one sink, then
// merged by the binary: counts add up to the sink's, the histogram is
// the sum; a missing report, another size and bad usage get their exit
// statuses.
func TestE2EMerge(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	sink := startSink(t, bin, "-listen", "tcp://127.0.0.1:0", "-interval", "0", "-json", "-verify")
	at := time.Now().Add(time.Second)
	startAt := at.UTC().Format(time.RFC3339Nano)
	type out struct {
		res  result
		file string
	}
	done := make(chan out, 2)
	for _, idx := range []string{"0", "1"} {
		go func() {
			res := runBin(t, bin, "run", "-target", "tcp://"+strings.TrimPrefix(sink.addr, "tcp://"), "-shards", "2", "-shard-index", idx,
				"-messages", "10001", "-rate", "10k/s", "-conns", "2", "-size", "128", "-verify", "-start-at", startAt, "-json", "-interval", "0")
			file := filepath.Join(dir, "r"+idx+".json")
			os.WriteFile(file, []byte(res.stdout), 0o644)
			done <- out{res, file}
		}()
	}
	var files []string
	var sum, sumBytes uint64
	var hists []*hdr.Histogram
	for range 2 {
		o := <-done
		if o.res.code != 0 {
			t.Fatalf("run: exit %d\n%s", o.res.code, o.res.stderr)
		}
		r := decode[mergeReport](t, o.res.stdout)
		if st, err := time.Parse(time.RFC3339Nano, r.StartAt); err != nil || !st.Equal(at) || r.Late || r.StartLag > 0.05 || r.HistogramUnit != "ns" {
			t.Errorf("%s: start_at %q (want %s), lag %v, late %v, unit %q", o.file, r.StartAt, startAt, r.StartLag, r.Late, r.HistogramUnit)
		}
		h, err := hdr.Decode([]byte(r.LatencyHistogram))
		if err != nil {
			t.Fatal(err)
		}
		hists = append(hists, h)
		files = append(files, o.file)
		sum += r.Messages
		sumBytes += r.Bytes
	}
	code, sinkOut := sink.stop(t)
	s := decode[sinkReport](t, sinkOut)
	if code != 0 || sum != 10001 || s.Verified != sum || s.Bytes != sumBytes {
		t.Fatalf("runs sent %d messages, %d bytes; the sink (exit %d) verified %d, %d bytes; want 10001", sum, sumBytes, code, s.Verified, s.Bytes)
	}

	res := runBin(t, bin, "merge", "-json", files[0], files[1])
	m := decode[mergeReport](t, res.stdout)
	hists[0].Merge(hists[1])
	mh, err := hdr.Decode([]byte(m.LatencyHistogram))
	if res.code != 0 || m.Messages != sum || m.Bytes != s.Bytes || err != nil || !mh.Equals(hists[0]) ||
		m.Latency["p99"] != float64(hists[0].ValueAtQuantile(99))/1e9 || m.Merged == nil || len(m.Merged.Problems) != 0 || m.ShardIndex != -1 {
		t.Errorf("merge: exit %d, %d messages, %d bytes, p99 %v (want %d, %d, %v), merged %+v\n%s",
			res.code, m.Messages, m.Bytes, m.Latency["p99"], sum, s.Bytes, float64(hists[0].ValueAtQuantile(99))/1e9, m.Merged, res.stderr)
	}
	if text := runBin(t, bin, "merge", files[0], files[1]); text.code != 0 || !strings.Contains(text.stdout, "uringsend merge: 2 reports of run") ||
		!strings.Contains(text.stdout, "messages:    10,001") {
		t.Errorf("merge (text): exit %d\n%s%s", text.code, text.stdout, text.stderr)
	}

	// A shard's report missing: the other is merged, exit 4.
	missing := filepath.Join(dir, "r2.json")
	res = runBin(t, bin, "merge", "-json", files[0], missing)
	m = decode[mergeReport](t, res.stdout)
	if res.code != ExitPartial || !strings.Contains(res.stderr, missing+": missing") || m.Merged == nil || len(m.Merged.MissingShards) != 1 {
		t.Errorf("merge with a missing report: exit %d, missing shards %+v\n%s", res.code, m.Merged, res.stderr)
	}
	// Another message size: refused, exit 1, nothing on stdout.
	other := runBin(t, bin, "run", "-messages", "100", "-size", "64", "-json", "-interval", "0")
	otherFile := filepath.Join(dir, "other.json")
	os.WriteFile(otherFile, []byte(other.stdout), 0o644)
	if res := runBin(t, bin, "merge", files[0], otherFile); res.code != 1 || res.stdout != "" || !strings.Contains(res.stderr, "message sizes 64B and 128B") {
		t.Errorf("merge of different sizes: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	// Usage.
	for _, args := range [][]string{{"merge"}, {"merge", "-bogus", files[0]}} {
		if res := runBin(t, bin, args...); res.code != 2 || !strings.Contains(res.stderr, "usage: uringsend merge") {
			t.Errorf("%v: exit %d\n%s", args, res.code, res.stderr)
		}
	}
	if res := runBin(t, bin, "merge", "-h"); res.code != 0 || !strings.Contains(res.stdout, "usage: uringsend merge") {
		t.Errorf("merge -h: exit %d\n%s", res.code, res.stdout)
	}
}

// A -start-at that is no time is refused with exit 2, naming the flag.
func TestE2EStartAtRefused(t *testing.T) {
	bin := build(t)
	for _, args := range [][]string{{"run", "-start-at", "soon"}, {"rr", "-start-at", "2026-13-01T00:00:00Z"}, {"run", "-start-at", ""}} {
		res := runBin(t, bin, args...)
		if res.code != 2 || !strings.Contains(res.stderr, "-start-at") {
			t.Errorf("%v: exit %d\n%s", args, res.code, res.stderr)
		}
	}
	res := runBin(t, bin, "run", "-metrics-linger", "1s")
	if res.code != 2 || !strings.Contains(res.stderr, "-metrics-linger 1s: needs -metrics-addr") {
		t.Errorf("-metrics-linger alone: exit %d\n%s", res.code, res.stderr)
	}
}
