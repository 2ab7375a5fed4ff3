package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests: build the binary and run it as a user would.

// build compiles uringsend into a fresh temporary directory.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "uringsend")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type result struct {
	code           int
	stdout, stderr string
}

// runBin runs bin with args to completion (at most a minute).
func runBin(t *testing.T, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return result{code, stdout.String(), stderr.String()}
}

// runReport is the part of the run's JSON report the tests read.
type runReport struct {
	Messages     uint64             `json:"messages"`
	Bytes        uint64             `json:"bytes"`
	Errors       uint64             `json:"errors"`
	ErrorsByKind map[string]uint64  `json:"errors_by_kind"`
	Interrupted  bool               `json:"interrupted"`
	Duration     float64            `json:"duration_seconds"`
	Backend      string             `json:"backend"`
	SyncRatio    float64            `json:"sync_ratio"`
	ConnsFailed  int                `json:"connections_failed"`
	MessagesPerS float64            `json:"messages_per_second"`
	Latency      map[string]float64 `json:"latency_seconds"`
	Sink         *sinkReport        `json:"sink"`
}

type sinkReport struct {
	Conns      uint64 `json:"connections"`
	Bytes      uint64 `json:"bytes"`
	Messages   uint64 `json:"messages"`
	Verified   uint64 `json:"verified"`
	Corrupt    uint64 `json:"corrupt"`
	OutOfOrder uint64 `json:"out_of_order"`
	Lost       uint64 `json:"lost"`
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}

// sinkProc is a running "uringsend sink".
type sinkProc struct {
	cmd    *exec.Cmd
	addr   string
	stdout bytes.Buffer
	stderr *bufio.Reader
}

func startSink(t *testing.T, bin string, args ...string) *sinkProc {
	t.Helper()
	p := &sinkProc{cmd: exec.Command(bin, append([]string{"sink"}, args...)...)}
	p.cmd.Stdout = &p.stdout
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	p.stderr = bufio.NewReader(errPipe)
	line, err := p.stderr.ReadString('\n')
	if err != nil {
		t.Fatalf("sink: %v %q", err, line)
	}
	const prefix = "uringsend sink: listening on "
	if !strings.HasPrefix(line, prefix) {
		t.Fatalf("sink's first line: %q", line)
	}
	p.addr = strings.TrimSpace(strings.TrimPrefix(line, prefix))
	go io.Copy(io.Discard, p.stderr)
	return p
}

// stop interrupts the sink and returns its exit code and summary.
func (p *sinkProc) stop(t *testing.T) (int, string) {
	t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	err := p.cmd.Wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, p.stdout.String()
}

// The run's own sink, in another process, verifies every message and
// counts the same bytes as the run.
func TestE2EOwnSinkVerify(t *testing.T) {
	bin := build(t)
	for _, tc := range []struct {
		name   string
		listen string
		args   []string
	}{
		{"tcp", "tcp://127.0.0.1:0", []string{"-conns", "4"}},
		{"tcp-epoll-bufferlist", "tcp://127.0.0.1:0", []string{"-conns", "2", "-size", "64KiB", "-mode", "bufferlist", "-segments", "7", "-backend", "epoll"}},
		{"unix-open-loop", "unix://" + filepath.Join(t.TempDir(), "sink.sock"), []string{"-rate", "20k/s", "-size", "100"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := startSink(t, bin, "-listen", tc.listen, "-verify", "-json")
			res := runBin(t, bin, append([]string{"run", "-target", sink.addr, "-verify", "-duration", "1s", "-json"}, tc.args...)...)
			if res.code != 0 {
				t.Fatalf("run exit %d\n%s", res.code, res.stderr)
			}
			rep := decode[runReport](t, res.stdout)
			code, out := sink.stop(t)
			if code != 0 {
				t.Errorf("sink exit %d", code)
			}
			srep := decode[sinkReport](t, out)
			if rep.Messages == 0 || rep.Errors != 0 {
				t.Errorf("run: %d messages, %d errors %v", rep.Messages, rep.Errors, rep.ErrorsByKind)
			}
			if srep.Bytes != rep.Bytes || srep.Messages != rep.Messages || srep.Verified != rep.Messages ||
				srep.Corrupt+srep.OutOfOrder+srep.Lost != 0 {
				t.Errorf("the sink received %+v; the run sent %d messages, %d bytes", srep, rep.Messages, rep.Bytes)
			}
			t.Logf("%d messages, %d bytes, %.0f msg/s, sync %.3f, %s", rep.Messages, rep.Bytes, rep.MessagesPerS, rep.SyncRatio, rep.Backend)
		})
	}
}

// A sink nobody here wrote: socat counts what it receives, which must be
// exactly the report's bytes.
func TestE2ESocat(t *testing.T) {
	socat, err := exec.LookPath("socat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("socat is missing (make deps installs it)")
		}
		t.Skip("socat not installed (make deps installs it)")
	}
	bin := build(t)
	sock := filepath.Join(t.TempDir(), "socat.sock")
	for _, tc := range []struct {
		name   string
		listen string
		args   []string
	}{
		{"tcp", "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr", []string{"-size", "1KiB"}},
		{"tcp-bufferlist", "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr", []string{"-size", "300", "-mode", "bufferlist", "-inflight", "32"}},
		{"unix", "UNIX-LISTEN:" + sock, []string{"-size", "64", "-rate", "50k/s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(socat, "-d", "-d", "-u", tc.listen, "STDOUT")
			stdout, _ := cmd.StdoutPipe()
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			// "... N listening on AF=2 127.0.0.1:40001" / "AF=1 \"/path\""
			target := ""
			sc := bufio.NewScanner(stderr)
			for target == "" && sc.Scan() {
				line := sc.Text()
				if m := regexp.MustCompile(`listening on AF=2 (\S+)`).FindStringSubmatch(line); m != nil {
					target = "tcp://" + m[1]
				} else if strings.Contains(line, "listening on AF=1") {
					target = "unix://" + sock
				}
			}
			if target == "" {
				t.Fatalf("socat did not say where it listens: %v", sc.Err())
			}
			go io.Copy(io.Discard, stderr)
			counted := make(chan int64, 1)
			go func() {
				n, _ := io.Copy(io.Discard, stdout)
				counted <- n
			}()

			res := runBin(t, bin, append([]string{"run", "-target", target, "-conns", "1", "-duration", "1s", "-json"}, tc.args...)...)
			if res.code != 0 {
				t.Fatalf("run exit %d\n%s", res.code, res.stderr)
			}
			rep := decode[runReport](t, res.stdout)
			var got int64
			select {
			case got = <-counted: // socat exits at end of file
			case <-time.After(10 * time.Second):
				t.Fatal("socat did not finish")
			}
			if rep.Messages == 0 || rep.Errors != 0 || uint64(got) != rep.Bytes {
				t.Errorf("socat received %d bytes; the report says %d bytes in %d messages, %d errors", got, rep.Bytes, rep.Messages, rep.Errors)
			}
		})
	}
}

// -json prints exactly one JSON object with the documented keys, and
// nothing else, on stdout.
func TestE2EJSONSchema(t *testing.T) {
	bin := build(t)
	res := runBin(t, bin, "run", "-duration", "1s", "-json", "-conns", "2")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(strings.NewReader(res.stdout))
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, res.stdout)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); strings.TrimSpace(string(rest)) != "" || dec.More() {
		t.Errorf("more than one JSON object on stdout:\n%s", res.stdout)
	}
	keys := func(m map[string]json.RawMessage) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	want := []string{
		"aborted", "backend", "batching", "bits_per_second", "bytes", "command", "connect_latency_histogram", "connect_latency_seconds", "connection_errors",
		"connections", "connections_failed", "connections_replaced", "connections_requested", "cost", "dial_attempts", "dial_errors", "drain_messages",
		"duration_seconds", "ended_at", "errors", "errors_by_kind", "fallback", "histogram_unit", "inflight", "interrupted", "latency_histogram", "latency_kind", "latency_seconds",
		"merged", "messages", "messages_per_second", "metrics_url", "mode", "omit_seconds", "omitted_bytes", "omitted_messages", "rate", "replace_errors",
		"segments", "send_seconds", "shard_index", "shards", "sink", "size_bytes", "start_at", "start_lag_seconds", "started_at", "started_late",
		"sync_completions", "sync_ratio", "target", "tcp_info", "tcp_info_connections", "thresholds_failed", "verify", "window_bytes", "zerocopy", "zerocopy_reason", "zerocopy_used",
	}
	if got := keys(obj); !slices.Equal(got, want) {
		t.Errorf("keys\n got  %v\n want %v", got, want)
	}
	var lat map[string]json.RawMessage
	json.Unmarshal(obj["latency_seconds"], &lat)
	if got := keys(lat); !slices.Equal(got, []string{"max", "p50", "p90", "p99", "p999"}) {
		t.Errorf("latency_seconds keys %v", got)
	}
	var ebk map[string]uint64
	if err := json.Unmarshal(obj["errors_by_kind"], &ebk); err != nil || ebk == nil {
		t.Errorf("errors_by_kind is not an object: %s", obj["errors_by_kind"])
	}
	rep := decode[runReport](t, res.stdout)
	if rep.Messages == 0 || rep.Bytes != rep.Messages*64 || rep.Duration < 1 || rep.Duration > 10 ||
		rep.Latency["p50"] <= 0 || rep.Latency["p50"] > rep.Latency["max"] || rep.SyncRatio < 0 || rep.SyncRatio > 1 ||
		(rep.Backend != "io_uring" && rep.Backend != "epoll") || rep.Sink == nil || rep.Sink.Bytes != rep.Bytes {
		t.Errorf("implausible report:\n%s", res.stdout)
	}
	// Status lines go to stderr, one per interval when it is no terminal.
	if !strings.Contains(res.stderr, "msg/s") || strings.Contains(res.stderr, "\r") {
		t.Errorf("stderr:\n%q", res.stderr)
	}
}

func TestE2EBadInput(t *testing.T) {
	bin := build(t)
	for _, args := range [][]string{
		{"run", "-bogus"},
		{"run", "-size", "12QB"},
		{"run", "-size", "-1"},
		{"run", "-rate", "fast"},
		{"run", "-target", "http://127.0.0.1:80"},
		{"run", "-target", "127.0.0.1:9000"},
		{"run", "-conns", "0"},
		{"run", "-mode", "vector"},
		{"run", "-zerocopy", "maybe"},
		{"run", "-backend", "dpdk"},
		{"run", "extra"},
		{"-bogus"},
		{"frobnicate"},
		{"sink"},
		{"sink", "-listen", "ftp://x:1"},
	} {
		res := runBin(t, bin, args...)
		lines := strings.Split(res.stderr, "\n")
		if res.code != 2 || res.stdout != "" || !strings.HasPrefix(lines[0], "uringsend") || !strings.Contains(res.stderr, "usage: uringsend") {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s", args, res.code, res.stdout, res.stderr)
		}
	}
	for _, args := range [][]string{{"-h"}, {"run", "-h"}, {"sink", "-h"}, {"help"}} {
		if res := runBin(t, bin, args...); res.code != 0 || !strings.Contains(res.stdout, "usage: uringsend") {
			t.Errorf("%v: exit %d\n%s%s", args, res.code, res.stdout, res.stderr)
		}
	}
	if res := runBin(t, bin, "version"); res.code != 0 || !strings.HasPrefix(res.stdout, "uringsend ") {
		t.Errorf("version: exit %d, %q", res.code, res.stdout)
	}
}

func TestE2EUnreachable(t *testing.T) {
	bin := build(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, target := range []string{"tcp://" + addr, "unix://" + filepath.Join(t.TempDir(), "nobody.sock")} {
		res := runBin(t, bin, "run", "-target", target, "-duration", "1s")
		if res.code != 1 || !strings.Contains(res.stderr, "cannot connect to "+target) || strings.Contains(res.stderr, "usage:") {
			t.Errorf("%s: exit %d, stderr:\n%s", target, res.code, res.stderr)
		}
	}
}

// SIGINT mid-run stops it early with a partial report.
func TestE2ESIGINT(t *testing.T) {
	bin := build(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"json", []string{"-json"}},
		{"text", nil},
		{"open-loop", []string{"-json", "-rate", "10k/s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"run", "-duration", "30s"}, tc.args...)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1500 * time.Millisecond)
			start := time.Now()
			cmd.Process.Signal(syscall.SIGINT)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit: %v\n%s", err, stderr.String())
				}
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				t.Fatal("no exit 15 s after SIGINT")
			}
			t.Logf("exited %v after SIGINT", time.Since(start))
			if tc.args == nil {
				for _, want := range []string{"interrupted: partial report", "messages:", "latency:", "sink:"} {
					if !strings.Contains(stdout.String(), want) {
						t.Errorf("text report lacks %q:\n%s", want, stdout.String())
					}
				}
				return
			}
			rep := decode[runReport](t, stdout.String())
			if !rep.Interrupted || rep.Messages == 0 || rep.Duration > 10 || rep.Errors != 0 {
				t.Errorf("interrupted %v, %d messages in %.2fs, %d errors", rep.Interrupted, rep.Messages, rep.Duration, rep.Errors)
			}
		})
	}
}

// The no-argument demo, shortened: text report, embedded sink, metrics.
func TestE2EDemo(t *testing.T) {
	bin := build(t)
	res := runBin(t, bin, "-duration", "2s")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{"(embedded sink)", "messages:", "bytes:", "sync:", "latency:     send completion p50", "p99.9", "errors:      0",
		"(matches)", "× up to 1024 in flight (a 256KiB window)", "cpu:", "io_uring_enter per message", "tcp_info:", "connect:",
		"zero-copy auto requested, not used (a loopback peer"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, res.stdout)
		}
	}
	// The metrics server has stopped when the report is printed: the
	// report does not point at it.
	if strings.Contains(res.stdout, "metrics") {
		t.Errorf("the report names the stopped metrics server:\n%s", res.stdout)
	}
	if !regexp.MustCompile(`metrics at http://127\.0\.0\.1:\d+/metrics`).MatchString(res.stderr) {
		t.Errorf("stderr does not say where metrics are:\n%s", res.stderr)
	}
	t.Logf("\n%s", res.stdout)
}
