//go:build linux

package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/uringsend/uringsend/internal/netnstest"
	"github.com/uringsend/uringsend/internal/promtest"
	"github.com/uringsend/uringsend/loadgen"
)

// Load from many machines as one run (issue 17), on real hosts: five
// network namespaces on one bridge (netnstest), each with its own address,
//
//	10.231.0.1-3  `uringsend run -shards 3 -shard-index i -start-at T`
//	10.231.0.4    `uringsend sink -verify`
//	10.231.0.5    Prometheus (Debian's), scraping the runners and the sink
//	              through file_sd target files the test writes,
//
// all of them the real built binaries. TestMultiHost checks that
//
//   - every runner began sending within multihostMaxLag of -start-at;
//   - each runner sent exactly its share of -messages, the merged report
//     (`uringsend merge`, the real binary) has their sum and the sink
//     received and verified exactly that many messages and bytes;
//   - Prometheus's sum(increase(uringsend_sent_bytes_total[...])) equals
//     what the sink received: exactly, evaluated at each runner's last
//     scrape, which came after its run ended (-metrics-linger), and within
//     Prometheus's extrapolation (about one scrape interval's worth) when
//     evaluated at an arbitrary later time;
//   - killed (SIGKILL) mid-run, a runner leaves no report: the others
//     finish, merge names the short report and the missing shard, exits
//     ExitPartial, and counts only the reports it has; the sink received
//     those plus what the killed runner sent before it died.
//
// It needs root and iproute2 (else it skips, as netnstest does) and the
// prometheus binary (skips, or fails under CI=true, as promtest does).
// `make multihost` runs it alone.

const (
	// multihostMaxLag bounds a runner's start lag. The wait ends in
	// nanosleep with 1 ns timer slack, which wakes within a millisecond
	// even on a loaded machine; 50 ms leaves room for a CPU-starved CI
	// runner while still proving the runners start together (without
	// -start-at they would start seconds apart: process start, dialing).
	multihostMaxLag = 50 * time.Millisecond
	// multihostScrape is Prometheus's scrape interval here: short, so
	// that the lingering runners are scraped at least twice after their
	// end and the test stays short.
	multihostScrape = 500 * time.Millisecond
	// multihostLinger is each runner's -metrics-linger: three scrape
	// intervals, so that a scrape after the end of the run is certain.
	multihostLinger = 3 * multihostScrape
	multihostSize   = 256
	multihostConns  = 2
	multihostShards = 3
)

func TestMultiHost(t *testing.T) {
	hosts := netnstest.Hosts(t, multihostShards+2) // skips without namespaces
	promBin := promtest.Binary(t, "prometheus")
	bin := buildUringsend(t)
	runners, sinkHost, promHost := hosts[:multihostShards], hosts[multihostShards], hosts[multihostShards+1]
	dir := t.TempDir()

	// Scenario 1 uses metrics port 9464, scenario 2 9465: each runner's
	// counters are then series of their own in each scenario.
	var loadTargets, sinkTargets []string
	for _, port := range []int{9464, 9465} {
		for _, h := range runners {
			loadTargets = append(loadTargets, h.HostPort(port))
		}
		sinkTargets = append(sinkTargets, sinkHost.HostPort(port))
	}
	p := startNetnsProm(t, promHost, promBin, dir, loadTargets, sinkTargets)
	// Prometheus applies discovered targets a few seconds after its start
	// (its scrape manager reloads every 5 s); every target is scraped (up
	// is written, 0 while nothing listens) before anything starts, so
	// that each runner is scraped at 0 before -start-at.
	p.waitValue(t, "count(up)", float64(len(loadTargets)+len(sinkTargets)))

	t.Run("together", func(t *testing.T) {
		multihostTogether(t, bin, p, runners, sinkHost, filepath.Join(dir, "together"))
	})
	t.Run("killed", func(t *testing.T) {
		multihostKilled(t, bin, p, runners, sinkHost, filepath.Join(dir, "killed"))
	})
}

// multihostTogether: three runners share 45,000 messages at 30,000/s
// (1.5 s), started together; everything must add up exactly.
func multihostTogether(t *testing.T, bin string, p *netnsProm, runners []*netnstest.Host, sinkHost *netnstest.Host, dir string) {
	const total, port, mport = 45000, 7000, 9464
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sink := startNetnsSink(t, bin, sinkHost, port, mport)
	startAt := time.Now().Add(scaled(3 * time.Second)) // connect, and be scraped at 0, first
	procs := startRunners(t, bin, runners, sinkHost.HostPort(port), mport, startAt, dir,
		"-messages", strconv.Itoa(total), "-rate", "30k/s")
	reps := make([]*loadgen.Report, len(procs))
	var sum uint64
	for i, pr := range procs {
		if code, stderr := pr.wait(t); code != 0 {
			t.Fatalf("runner %d: exit %d\n%s", i, code, stderr)
		}
		reps[i] = readRunnerReport(t, pr.out)
		r := reps[i]
		lag := time.Duration(r.StartLagSeconds * 1e9)
		t.Logf("runner %d (%v): %d messages, %d bytes, start lag %v, p99 %v", i, runners[i].Addr, r.Messages, r.Bytes, lag,
			time.Duration(r.Latency.P99*1e9))
		if want := uint64(total / multihostShards); r.Messages != want || r.Bytes != want*multihostSize || r.Errors != 0 || r.ShardIndex != i || r.Shards != multihostShards {
			t.Errorf("runner %d: shard %d of %d, %d messages, %d bytes, %d errors; want shard %d of %d, %d messages of %d B, no error",
				i, r.ShardIndex, r.Shards, r.Messages, r.Bytes, r.Errors, i, multihostShards, want, multihostSize)
		}
		if lag < -time.Millisecond || lag > multihostMaxLag || r.StartedLate {
			t.Errorf("runner %d: started %v after -start-at (late: %v); want within %v", i, lag, r.StartedLate, multihostMaxLag)
		}
		if st, _ := time.Parse(time.RFC3339Nano, r.StartAt); !st.Equal(startAt) {
			t.Errorf("runner %d: start_at %q; want %v", i, r.StartAt, startAt.UTC())
		}
		sum += r.Bytes
	}

	// The sink has everything once the runners have ended (they closed
	// their connections); Prometheus sees it at its next scrape.
	p.waitValue(t, fmt.Sprintf(`uringsend_sink_received_bytes_total{instance=%q}`, sinkHost.HostPort(mport)), float64(sum))
	sr := sink.stop(t)
	t.Logf("sink: %d messages verified, %d bytes on %d connections", sr.Verified, sr.Bytes, sr.Conns)
	if sr.Bytes != sum || sr.Messages != total || sr.Verified != total || sr.VerifyErrors() != 0 || sr.Lost != 0 {
		t.Errorf("sink: %d bytes, %d messages, %d verified, %d corrupt, %d out of order, %d lost; want %d bytes, %d messages all verified",
			sr.Bytes, sr.Messages, sr.Verified, sr.Corrupt, sr.OutOfOrder, sr.Lost, sum, total)
	}

	// Prometheus: each runner's series from 0 (scraped before -start-at)
	// to its report's bytes (scraped during -metrics-linger).
	last := map[string]string{} // instance → timestamp of its last sample
	for i, h := range runners {
		inst := h.HostPort(mport)
		ss := p.samples(t, fmt.Sprintf(`uringsend_sent_bytes_total{job="uringsend-loadgen",instance=%q}[5m]`, inst))
		if len(ss) < 2 || ss[0].v != 0 || ss[len(ss)-1].v != float64(reps[i].Bytes) {
			t.Fatalf("runner %d: Prometheus has %d samples of uringsend_sent_bytes_total, %v; want from 0 (before -start-at) to %d (after the end)",
				i, len(ss), ss, reps[i].Bytes)
		}
		last[inst] = ss[len(ss)-1].ts
	}
	// sum(increase()) at each runner's last scrape: no extrapolation at
	// either end (the first sample is 0, the last is at the evaluation
	// time), so it must be exact.
	var parts []string
	for inst, ts := range last {
		parts = append(parts, fmt.Sprintf(`increase(uringsend_sent_bytes_total{job="uringsend-loadgen",instance=%q}[5m] @ %s)`, inst, ts))
	}
	exact := p.scalar(t, "sum("+strings.Join(parts, " or ")+")")
	t.Logf("Prometheus: sum(increase(uringsend_sent_bytes_total)) at the runners' last scrapes = %.0f; sink received %d", exact, sr.Bytes)
	if exact != float64(sr.Bytes) {
		t.Errorf("sum(increase(uringsend_sent_bytes_total)) = %.0f; the sink received %d", exact, sr.Bytes)
	}
	// The dashboards' form, evaluated now: Prometheus extrapolates each
	// series past its last sample by at most 1.1 average scrape intervals
	// (less: half of one), i.e. by one scrape interval's worth of the
	// series' average rate over its samples.
	plain := p.scalar(t, `sum(increase(uringsend_sent_bytes_total{job="uringsend-loadgen",instance=~".*:9464"}[5m]))`)
	var slack float64
	for i, h := range runners {
		ss := p.samples(t, fmt.Sprintf(`uringsend_sent_bytes_total{instance=%q}[5m]`, h.HostPort(mport)))
		first, _ := strconv.ParseFloat(ss[0].ts, 64)
		end, _ := strconv.ParseFloat(ss[len(ss)-1].ts, 64)
		avg := (end - first) / float64(len(ss)-1)
		slack += float64(reps[i].Bytes) * 1.1 * avg / (end - first)
	}
	t.Logf("Prometheus: sum(increase(uringsend_sent_bytes_total[5m])) now = %.0f (extrapolated; bound %.0f + %.0f)", plain, exact, slack)
	if plain < exact || plain > exact+slack {
		t.Errorf("sum(increase(uringsend_sent_bytes_total[5m])) = %.0f; want %.0f to %.0f", plain, exact, exact+slack)
	}

	// merge, the real binary: sums exact, percentiles from the sum of the
	// histograms.
	files := []string{procs[0].out, procs[1].out, procs[2].out}
	res := runMerge(t, bin, append([]string{"-json"}, files...)...)
	if res.code != 0 {
		t.Fatalf("uringsend merge: exit %d\n%s", res.code, res.stderr)
	}
	var m loadgen.Report
	if err := json.Unmarshal([]byte(res.stdout), &m); err != nil {
		t.Fatalf("merge -json: %v\n%s", err, res.stdout)
	}
	want := mergeHists(t, reps)
	got := decodeHist(t, m.LatencyHistogram)
	t.Logf("merged: %d messages, %d bytes, p50 %v p99 %v max %v, start lag ≤ %v",
		m.Messages, m.Bytes, time.Duration(m.Latency.P50*1e9), time.Duration(m.Latency.P99*1e9), time.Duration(m.Latency.Max*1e9),
		time.Duration(m.StartLagSeconds*1e9))
	if m.Messages != total || m.Bytes != sr.Bytes || m.Errors != 0 || len(m.Merged.Problems) != 0 {
		t.Errorf("merged: %d messages, %d bytes, %d errors, problems %q; want %d messages, %d bytes (the sink's), none",
			m.Messages, m.Bytes, m.Errors, m.Merged.Problems, total, sr.Bytes)
	}
	if !got.Equals(want) || m.Latency.P99 != float64(want.ValueAtQuantile(99))/1e9 || m.Latency.Max != float64(want.Max())/1e9 {
		t.Errorf("merged histogram: %d values, p99 %v; want the sum of the runners' (%d values, p99 %d ns)",
			got.TotalCount(), m.Latency.P99, want.TotalCount(), want.ValueAtQuantile(99))
	}
	if text := runMerge(t, bin, files...); text.code != 0 || !strings.Contains(text.stdout, "uringsend merge: 3 reports of run") {
		t.Errorf("uringsend merge (text): exit %d\n%s%s", text.code, text.stdout, text.stderr)
	} else {
		t.Logf("uringsend merge:\n%s", text.stdout)
	}
}

// multihostKilled: three runners share 60,000 messages at 24,000/s
// (2.5 s); runner 1 is killed with SIGKILL a second in.
func multihostKilled(t *testing.T, bin string, p *netnsProm, runners []*netnstest.Host, sinkHost *netnstest.Host, dir string) {
	const total, port, mport, killed = 60000, 7001, 9465, 1
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sink := startNetnsSink(t, bin, sinkHost, port, mport)
	startAt := time.Now().Add(scaled(2 * time.Second))
	procs := startRunners(t, bin, runners, sinkHost.HostPort(port), mport, startAt, dir,
		"-messages", strconv.Itoa(total), "-rate", "24k/s")
	time.Sleep(time.Until(startAt.Add(time.Second))) // mid-run: the kill is what is tested, not a negative check
	if err := procs[killed].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var sumMsgs, sumBytes uint64
	for i, pr := range procs {
		code, stderr := pr.wait(t)
		if i == killed {
			if code != -1 {
				t.Errorf("killed runner: exit %d; want killed by a signal", code)
			}
			continue
		}
		if code != 0 {
			t.Fatalf("runner %d: exit %d\n%s", i, code, stderr)
		}
		r := readRunnerReport(t, pr.out)
		t.Logf("runner %d: %d messages, %d bytes, start lag %v", i, r.Messages, r.Bytes, time.Duration(r.StartLagSeconds*1e9))
		if want := uint64(total / multihostShards); r.Messages != want {
			t.Errorf("runner %d: %d messages; want its share, %d", i, r.Messages, want)
		}
		sumMsgs += r.Messages
		sumBytes += r.Bytes
	}
	if fi, err := os.Stat(procs[killed].out); err != nil || fi.Size() != 0 {
		t.Fatalf("the killed runner's report: %v, %v; want an empty file", fi, err)
	}
	// What the killed runner had sent when Prometheus last scraped it:
	// less than the sink received from it (the kernel delivers what a
	// killed process had handed it).
	ss := p.samples(t, fmt.Sprintf(`uringsend_sent_bytes_total{instance=%q}[5m]`, runners[killed].HostPort(mport)))
	if len(ss) == 0 {
		t.Fatal("Prometheus has no sample of the killed runner")
	}
	scraped := ss[len(ss)-1].v
	sr := sink.stop(t) // after the grace for the connections to end

	res := runMerge(t, bin, "-json", procs[0].out, procs[1].out, procs[2].out)
	if res.code != 4 {
		t.Fatalf("uringsend merge with a killed runner's report: exit %d; want 4 (ExitPartial)\n%s", res.code, res.stderr)
	}
	t.Logf("uringsend merge (stderr):\n%s", res.stderr)
	short := filepath.Base(procs[killed].out)
	if !strings.Contains(res.stderr, short+": short") || !strings.Contains(res.stderr, "shard 1 of 3: no report") {
		t.Errorf("merge's stderr does not name %s as short and shard 1 as missing:\n%s", short, res.stderr)
	}
	var m loadgen.Report
	if err := json.Unmarshal([]byte(res.stdout), &m); err != nil {
		t.Fatalf("merge -json: %v\n%s", err, res.stdout)
	}
	if m.Messages != sumMsgs || m.Bytes != sumBytes || len(m.Merged.MissingShards) != 1 || m.Merged.MissingShards[0] != killed ||
		m.Merged.Inputs[killed].Status != "short" {
		t.Errorf("merged: %d messages, %d bytes, missing shards %v, inputs %+v; want %d, %d (runners 0 and 2 only), shard %d missing",
			m.Messages, m.Bytes, m.Merged.MissingShards, m.Merged.Inputs, sumMsgs, sumBytes, killed)
	}
	// The sink has the two reports' messages and the killed runner's
	// whole messages (a message cut by the kill is not counted; its bytes
	// are), nothing else.
	fromKilled := sr.Bytes - sumBytes
	t.Logf("sink: %d messages, %d bytes; merged %d messages; the killed runner: %d messages (%d bytes) at the sink, %.0f bytes at its last scrape",
		sr.Verified, sr.Bytes, m.Messages, sr.Verified-sumMsgs, fromKilled, scraped)
	if sr.VerifyErrors() != 0 || sr.Verified != sr.Messages || sr.Verified <= sumMsgs || sr.Verified-sumMsgs >= total/multihostShards {
		t.Errorf("sink: %d messages verified, %d bad; want the merged %d plus 1 to %d from the killed runner",
			sr.Verified, sr.VerifyErrors(), sumMsgs, total/multihostShards-1)
	}
	if k := sr.Verified - sumMsgs; fromKilled < k*multihostSize || fromKilled >= (k+multihostConns)*multihostSize || scraped <= 0 || scraped > float64(fromKilled) {
		t.Errorf("the killed runner: %d whole messages but %d bytes at the sink, %.0f bytes scraped from it", k, fromKilled, scraped)
	}
}

// ---- processes ---------------------------------------------------------------

// buildUringsend builds cmd/uringsend into a temporary directory.
func buildUringsend(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "uringsend")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/uringsend/uringsend/cmd/uringsend").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type proc struct {
	cmd    *exec.Cmd
	out    string // stdout's file
	stderr *promtest.SyncBuffer
	done   chan struct{}
}

// startProc starts cmd with stdout to the file out and kills it (if still
// running) when the test ends.
func startProc(t *testing.T, cmd *exec.Cmd, out string) *proc {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := &proc{cmd: cmd, out: out, stderr: &promtest.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = f, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for the process (at most a minute) and returns its exit
// status (-1: killed by a signal) and stderr.
func (p *proc) wait(t *testing.T) (int, string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(scaled(time.Minute)):
		t.Fatalf("%v: still running after a minute", p.cmd.Args)
	}
	return p.cmd.ProcessState.ExitCode(), p.stderr.String()
}

// startRunners starts `uringsend run` in each runner host, shard i of
// len(hosts), its JSON report to dir/r<i>.json.
func startRunners(t *testing.T, bin string, hosts []*netnstest.Host, target string, mport int, startAt time.Time, dir string, extra ...string) []*proc {
	t.Helper()
	var ps []*proc
	for i, h := range hosts {
		args := append([]string{"run",
			"-target", "tcp://" + target,
			"-shards", strconv.Itoa(len(hosts)), "-shard-index", strconv.Itoa(i),
			"-start-at", startAt.UTC().Format(time.RFC3339Nano),
			"-size", strconv.Itoa(multihostSize), "-conns", strconv.Itoa(multihostConns), "-verify",
			"-metrics-addr", h.HostPort(mport), "-metrics-linger", multihostLinger.String(),
			"-interval", "0", "-json"}, extra...)
		ps = append(ps, startProc(t, h.Command(bin, args...), filepath.Join(dir, fmt.Sprintf("r%d.json", i))))
	}
	return ps
}

func readRunnerReport(t *testing.T, file string) *loadgen.Report {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var r loadgen.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v\n%s", file, err, b)
	}
	return &r
}

type netnsSink struct {
	p   *proc
	out string
}

// startNetnsSink starts `uringsend sink -verify` in h on port, with
// metrics on mport, and waits until it listens.
func startNetnsSink(t *testing.T, bin string, h *netnstest.Host, port, mport int) *netnsSink {
	t.Helper()
	cmd := h.Command(bin, "sink", "-listen", "tcp://"+h.HostPort(port), "-verify", "-json", "-interval", "0",
		"-metrics-addr", h.HostPort(mport))
	pr, pw := io.Pipe()
	out := filepath.Join(t.TempDir(), "sink.json")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &netnsSink{p: &proc{cmd: cmd, out: out, stderr: &promtest.SyncBuffer{}, done: make(chan struct{})}, out: out}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		seen := false
		for sc.Scan() {
			fmt.Fprintln(s.p.stderr, sc.Text())
			if !seen && strings.Contains(sc.Text(), "metrics at") {
				seen = true
				close(listening)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(s.p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.p.done
	})
	select {
	case <-listening:
	case <-s.p.done:
		t.Fatalf("sink exited: %v", cmd.ProcessState)
	case <-time.After(scaled(10 * time.Second)):
		t.Fatal("sink: not listening after 10 s")
	}
	return s
}

// stop ends the sink with SIGTERM and returns its summary.
func (s *netnsSink) stop(t *testing.T) *loadgen.SinkReport {
	t.Helper()
	if err := s.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.p.done:
	case <-time.After(scaled(20 * time.Second)):
		t.Fatal("sink: still running 20 s after SIGTERM")
	}
	b, err := os.ReadFile(s.out)
	if err != nil {
		t.Fatal(err)
	}
	var r loadgen.SinkReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("sink report: %v\n%s", err, b)
	}
	r.Stream = true // not in the JSON: a TCP sink
	return &r
}

type mergeResult struct {
	code           int
	stdout, stderr string
}

func runMerge(t *testing.T, bin string, args ...string) mergeResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, append([]string{"merge"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return mergeResult{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
}

func decodeHist(t *testing.T, s string) *hdr.Histogram {
	t.Helper()
	h, err := hdr.Decode([]byte(s))
	if err != nil {
		t.Fatalf("latency_histogram: %v", err)
	}
	return h
}

// mergeHists adds up the reports' histograms, as merge should.
func mergeHists(t *testing.T, reps []*loadgen.Report) *hdr.Histogram {
	t.Helper()
	var sum *hdr.Histogram
	for _, r := range reps {
		h := decodeHist(t, r.LatencyHistogram)
		if sum == nil {
			sum = hdr.New(h.LowestTrackableValue(), h.HighestTrackableValue(), int(h.SignificantFigures()))
		}
		sum.Merge(h)
	}
	return sum
}

// ---- Prometheus in a namespace ------------------------------------------------

// netnsProm is a Prometheus server running in a host, queried over HTTP
// connections made in that host.
type netnsProm struct {
	url    string
	client *http.Client
}

// startNetnsProm starts Prometheus in h, scraping loadTargets as job
// uringsend-loadgen and sinkTargets as uringsend-sink, each through a
// file_sd target file, every multihostScrape.
func startNetnsProm(t *testing.T, h *netnstest.Host, bin, dir string, loadTargets, sinkTargets []string) *netnsProm {
	t.Helper()
	sd := func(name string, targets []string) string {
		b, _ := json.Marshal([]map[string]any{{"targets": targets}})
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
scrape_configs:
  - job_name: uringsend-loadgen
    file_sd_configs: [{files: [%[2]q]}]
  - job_name: uringsend-sink
    file_sd_configs: [{files: [%[3]q]}]
`, multihostScrape, sd("loadgen.json", loadTargets), sd("sink.json", sinkTargets))
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := h.HostPort(9090)
	cmd := h.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	pr := startProc(t, cmd, filepath.Join(dir, "prometheus.out"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prometheus stderr:\n%s", pr.stderr.String())
		}
	})
	tr := &http.Transport{DialContext: func(_ context.Context, network, address string) (net.Conn, error) {
		return h.DialWith(&net.Dialer{Timeout: 5 * time.Second}, network, address)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	p := &netnsProm{url: "http://" + addr, client: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
	deadline := time.Now().Add(scaled(20 * time.Second))
	for {
		resp, err := p.client.Get(p.url + "/-/ready")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-pr.done:
			t.Fatalf("prometheus exited: %v\n%s", cmd.ProcessState, pr.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready: %v", err)
		}
	}
}

// query evaluates expr now and returns the result's type and value.
func (p *netnsProm) query(t *testing.T, expr string) (string, json.RawMessage) {
	t.Helper()
	resp, err := p.client.Get(p.url + "/api/v1/query?" + url.Values{"query": {expr}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("query %s: %v", expr, err)
	}
	if r.Status != "success" {
		t.Fatalf("query %s: %s", expr, r.Error)
	}
	return r.Data.ResultType, r.Data.Result
}

// sample is one sample of a series: its timestamp as Prometheus wrote
// it (seconds, to the millisecond) and its value.
type sample struct {
	ts string
	v  float64
}

func (s sample) String() string {
	return fmt.Sprintf("%s@%s", strconv.FormatFloat(s.v, 'f', -1, 64), s.ts)
}

// samples returns the raw samples of the one series a range selector
// expr selects.
func (p *netnsProm) samples(t *testing.T, expr string) []sample {
	t.Helper()
	typ, raw := p.query(t, expr)
	var m []struct {
		Values [][2]json.RawMessage `json:"values"`
	}
	if typ != "matrix" || json.Unmarshal(raw, &m) != nil || len(m) > 1 {
		t.Fatalf("query %s: %s %s; want one series", expr, typ, raw)
	}
	if len(m) == 0 {
		return nil
	}
	var ss []sample
	for _, v := range m[0].Values {
		var s string
		if err := json.Unmarshal(v[1], &s); err != nil {
			t.Fatal(err)
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, sample{ts: string(v[0]), v: f})
	}
	return ss
}

// scalar evaluates expr, which must give one sample, and returns it.
func (p *netnsProm) scalar(t *testing.T, expr string) float64 {
	t.Helper()
	v, ok := p.one(t, expr)
	if !ok {
		t.Fatalf("query %s: want one sample", expr)
	}
	return v
}

func (p *netnsProm) one(t *testing.T, expr string) (float64, bool) {
	t.Helper()
	typ, raw := p.query(t, expr)
	var vs []struct {
		Value [2]json.RawMessage `json:"value"`
	}
	if typ != "vector" || json.Unmarshal(raw, &vs) != nil || len(vs) != 1 {
		return 0, false
	}
	var s string
	if json.Unmarshal(vs[0].Value[1], &s) != nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// waitValue waits (up to 20 s) until expr gives one sample equal to want.
func (p *netnsProm) waitValue(t *testing.T, expr string, want float64) {
	t.Helper()
	deadline := time.Now().Add(scaled(20 * time.Second))
	for {
		v, ok := p.one(t, expr)
		if ok && v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (%v); want %v", expr, v, ok, want)
		}
		time.Sleep(multihostScrape / 4)
	}
}
