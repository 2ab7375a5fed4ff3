package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Tests of what "uringsend run" and "rr" report and how they exit:
// the byte window, rr against echo peers, cost, TCP_INFO, dialing,
// -omit, -json-stream, thresholds, -sink-report.

// fullReport is the run's JSON report with the fields these tests read.
type fullReport struct {
	Command         string             `json:"command"`
	Messages        uint64             `json:"messages"`
	Bytes           uint64             `json:"bytes"`
	Errors          uint64             `json:"errors"`
	ErrorsByKind    map[string]uint64  `json:"errors_by_kind"`
	Inflight        int                `json:"inflight"`
	Window          int64              `json:"window_bytes"`
	Rate            float64            `json:"rate"`
	Conns           int                `json:"connections"`
	ConnsWanted     int                `json:"connections_requested"`
	Backend         string             `json:"backend"`
	OmitSeconds     float64            `json:"omit_seconds"`
	OmittedMessages uint64             `json:"omitted_messages"`
	OmittedBytes    uint64             `json:"omitted_bytes"`
	DrainMessages   uint64             `json:"drain_messages"`
	LatencyKind     string             `json:"latency_kind"`
	Latency         map[string]float64 `json:"latency_seconds"`
	Failed          []string           `json:"thresholds_failed"`
	DialAttempts    int64              `json:"dial_attempts"`
	ConnsReplaced   int64              `json:"connections_replaced"`
	ReplaceErrors   int64              `json:"replace_errors"`
	DialErrors      int64              `json:"dial_errors"`
	ConnectLatency  map[string]float64 `json:"connect_latency_seconds"`
	SinkError       string             `json:"sink_error"`
	Sink            *struct {
		Conns    uint64 `json:"connections"`
		Bytes    uint64 `json:"bytes"`
		Messages uint64 `json:"messages"`
		Verified uint64 `json:"verified"`
		Corrupt  uint64 `json:"corrupt"`
		Lost     uint64 `json:"lost"`
		Missing  uint64 `json:"missing_connections"`
		Echo     bool   `json:"echo"`
		Reader   string `json:"reader"`
		Reads    uint64 `json:"read_calls"`
	} `json:"sink"`
	Cost    *costReport `json:"cost"`
	TCPInfo *struct {
		Connections int     `json:"connections"`
		RTTMean     float64 `json:"rtt_mean_seconds"`
		CwndMin     uint32  `json:"cwnd_min"`
	} `json:"tcp_info"`
}

// costReport is the report's cost (and an interval's).
type costReport struct {
	User            float64 `json:"user_seconds"`
	Sys             float64 `json:"system_seconds"`
	PerMessage      float64 `json:"cpu_seconds_per_message"`
	PerGB           float64 `json:"cpu_seconds_per_gb"`
	EntersPerMsg    float64 `json:"io_uring_enter_per_message"`
	SQEsPerEnter    float64 `json:"sqes_per_enter"`
	Enters          uint64  `json:"io_uring_enter_calls"`
	SQEs            uint64  `json:"sqes_submitted"`
	Waits           uint64  `json:"io_uring_waits"`
	SendCalls       uint64  `json:"send_calls"`
	RecvCalls       uint64  `json:"recv_calls"`
	WouldBlock      uint64  `json:"would_block"`
	SendCallsPerMsg float64 `json:"send_calls_per_message"`
	RecvCallsPerMsg float64 `json:"recv_calls_per_message"`
	WouldBlockRatio float64 `json:"would_block_ratio"`
	IncludesSink    bool    `json:"includes_sink"`
}

// costKeys are the keys of the report's cost object.
var costKeys = []string{
	"cpu_seconds_per_gb", "cpu_seconds_per_message", "includes_sink", "io_uring_enter_calls", "io_uring_enter_per_message", "io_uring_waits",
	"reaper_parks", "recv_calls", "recv_calls_per_message", "send_calls", "send_calls_per_message", "sq_full", "sqes_per_enter", "sqes_submitted",
	"system_seconds", "user_seconds", "would_block", "would_block_ratio",
}

// needSocat returns socat's path, or skips (fails on CI).
func needSocat(t *testing.T) string {
	t.Helper()
	socat, err := exec.LookPath("socat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("socat is missing (make deps installs it)")
		}
		t.Skip("socat not installed (make deps installs it)")
	}
	return socat
}

// socatEcho starts socat as a TCP echo server (PIPE, a process per
// connection) and returns its target URL. socat and the processes it
// forks are a process group of their own, killed together at the end.
func socatEcho(t *testing.T) string {
	t.Helper()
	socat := needSocat(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(socat, "TCP-LISTEN:"+port+",bind=127.0.0.1,reuseaddr,fork", "PIPE")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return "tcp://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("socat does not listen on %s: %v", addr, err)
		}
	}
}

// Without -inflight, a connection keeps a 256 KiB window in flight: 1024
// sends of 64 B, 2 of 128 KiB; -inflight pins the number.
func TestE2EDefaultWindow(t *testing.T) {
	bin := build(t)
	for _, tc := range []struct {
		args     []string
		inflight int
		window   int64
	}{
		{[]string{"-size", "64"}, 1024, 256 << 10},
		{[]string{"-size", "1KiB"}, 256, 256 << 10},
		{[]string{"-size", "128KiB"}, 2, 256 << 10},
		{[]string{"-size", "64", "-window", "4KiB"}, 64, 4 << 10},
		{[]string{"-size", "64", "-inflight", "8"}, 8, 0},
		{[]string{"-size", "64", "-rate", "10k/s"}, 64, 0},
	} {
		res := runBin(t, bin, append([]string{"run", "-conns", "1", "-duration", "500ms", "-interval", "0", "-json"}, tc.args...)...)
		if res.code != 0 {
			t.Fatalf("%v: exit %d\n%s", tc.args, res.code, res.stderr)
		}
		rep := decode[fullReport](t, res.stdout)
		if rep.Inflight != tc.inflight || rep.Window != tc.window {
			t.Errorf("%v: inflight %d, window %d; want %d, %d", tc.args, rep.Inflight, rep.Window, tc.inflight, tc.window)
		}
		if rep.Sink == nil || rep.Sink.Bytes != rep.Bytes {
			t.Errorf("%v: the embedded sink's bytes differ from the run's: %+v, %d", tc.args, rep.Sink, rep.Bytes)
		}
	}
}

// Values that mean "the default" inside a Config are refused on the
// command line, and every bad flag is named.
func TestE2ERefusedFlags(t *testing.T) {
	bin := build(t)
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"run", "-inflight", "0"}, "-inflight"},
		{[]string{"run", "-mode", "bufferlist", "-segments", "0"}, "-segments"},
		{[]string{"run", "-shards", "4"}, "-shards"},
		{[]string{"run", "-window", "0"}, "-window"},
		{[]string{"run", "-omit", "20s"}, "-omit"},
		{[]string{"run", "-json-stream", "-interval", "0"}, "-json-stream"},
		{[]string{"run", "-tos", "300"}, "-tos"},
		{[]string{"run", "-bind", "nonsense"}, "-bind"},
		{[]string{"run", "-rate", "10Qbit/s"}, "-rate"},
		{[]string{"run", "-sq-entries", "1"}, "-sq-entries"},
		{[]string{"run", "-max-p99", "-1s"}, "-max-p99"},
		{[]string{"run", "-conn-lifetime", "1ms"}, "-conn-lifetime"},
		{[]string{"rr", "-inflight", "2"}, "-inflight"},
		{[]string{"rr", "-target", "udp://127.0.0.1:9"}, "-target"},
		{[]string{"sink", "-listen", "udp://127.0.0.1:0", "-echo"}, "-echo"},
	} {
		res := runBin(t, bin, tc.args...)
		first, _, _ := strings.Cut(res.stderr, "\n")
		if res.code != 2 || res.stdout != "" || !strings.Contains(first, tc.flag) {
			t.Errorf("%v: exit %d, first line %q; want 2 naming %s", tc.args, res.code, first, tc.flag)
		}
	}
	// Every new flag is in -h.
	res := runBin(t, bin, "run", "-h")
	for _, f := range []string{"-window", "-omit", "-json-stream", "-max-p99", "-max-errors", "-dial-retries", "-connect-rate",
		"-bind", "-sndbuf", "-nodelay", "-congestion", "-fq-rate", "-tos", "-rings", "-sq-entries", "-zc-threshold",
		"-drain-timeout", "-dial-timeout", "-sink-report", "-conn-lifetime"} {
		if !strings.Contains(res.stdout, "\n  "+f+" ") && !strings.Contains(res.stdout, "\n  "+f+"\n") {
			t.Errorf("run -h lacks %s", f)
		}
	}
	if res := runBin(t, bin, "rr", "-h"); res.code != 0 || !strings.Contains(res.stdout, "usage: uringsend rr") {
		t.Errorf("rr -h: exit %d\n%s", res.code, res.stdout)
	}
	if res := runBin(t, bin, "sink", "-h"); !strings.Contains(res.stdout, "-echo") {
		t.Errorf("sink -h lacks -echo:\n%s", res.stdout)
	}
}

// A UDP target that refuses everything (ICMP port unreachable) makes the
// run exit 1, saying so.
func TestE2EUDPRefused(t *testing.T) {
	bin := build(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	res := runBin(t, bin, "run", "-target", "udp://"+addr, "-duration", "500ms", "-conns", "1", "-json")
	rep := decode[fullReport](t, res.stdout)
	if res.code != 1 || rep.ErrorsByKind["ConnectionRefused"] == 0 || !strings.Contains(res.stderr, "ConnectionRefused") {
		t.Errorf("exit %d, %d ConnectionRefused\n%s", res.code, rep.ErrorsByKind["ConnectionRefused"], res.stderr)
	}
}

// rr against socat's echo (PIPE): exactly the requests asked for come
// back, byte for byte, in the closed and the open loop, small and larger
// than the socket buffers.
func TestE2ERRSocat(t *testing.T) {
	bin := build(t)
	target := socatEcho(t)
	for _, tc := range []struct {
		name string
		args []string
		size uint64
		n    uint64
	}{
		{"64B", []string{"-size", "64", "-conns", "2"}, 64, 2000},
		{"1MiB", []string{"-size", "1MiB", "-conns", "1"}, 1 << 20, 20},
		{"open", []string{"-size", "100", "-conns", "2", "-rate", "2k/s"}, 100, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"rr", "-target", target, "-messages", strconv.FormatUint(tc.n, 10), "-json", "-interval", "0"}, tc.args...)
			res := runBin(t, bin, args...)
			if res.code != 0 {
				t.Fatalf("exit %d\n%s", res.code, res.stderr)
			}
			rep := decode[fullReport](t, res.stdout)
			if rep.Command != "rr" || rep.LatencyKind != "round_trip" || rep.Messages != tc.n || rep.Bytes != tc.n*tc.size || rep.Errors != 0 ||
				rep.Inflight != 1 || rep.Latency["p50"] <= 0 {
				t.Errorf("report: %s\nstderr:\n%s", res.stdout, res.stderr)
			}
		})
	}
}

// rr against "uringsend sink -echo" in another process; the sink's
// summary counts the bytes that were echoed.
func TestE2ERREchoSink(t *testing.T) {
	bin := build(t)
	sink := startSink(t, bin, "-listen", "tcp://127.0.0.1:0", "-echo", "-json", "-interval", "0")
	res := runBin(t, bin, "rr", "-target", sink.addr, "-messages", "3000", "-size", "200", "-conns", "3", "-json", "-sink-report")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	rep := decode[fullReport](t, res.stdout)
	if rep.Messages != 3000 || rep.Bytes != 600000 || rep.Sink == nil || rep.Sink.Bytes != 600000 || rep.Sink.Conns != 3 || !rep.Sink.Echo {
		t.Errorf("report: %s", res.stdout)
	}
	code, out := sink.stop(t)
	var srep struct {
		Bytes  uint64 `json:"bytes"`
		Echo   bool   `json:"echo"`
		Reader string `json:"reader"`
		Reads  uint64 `json:"read_calls"`
	}
	// The sink reads with Go's net, not the engine: its cost is read calls.
	if err := json.Unmarshal([]byte(out), &srep); err != nil || code != 0 || srep.Bytes != 600000 || !srep.Echo || srep.Reads == 0 || srep.Reader != "go_net" {
		t.Errorf("sink exit %d: %v %s", code, err, out)
	}
}

// An echo that differs from what was sent fails the run: exit 1, the
// mismatch counted, the connection closed.
func TestE2ERRMismatch(t *testing.T) {
	bin := build(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 4096)
				total := 0
				for {
					n, err := c.Read(buf)
					if n > 0 {
						// The 151st byte of the stream comes back wrong.
						if total <= 150 && total+n > 150 {
							buf[150-total] ^= 0xff
						}
						total += n
						c.Write(buf[:n])
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	res := runBin(t, bin, "rr", "-target", "tcp://"+ln.Addr().String(), "-size", "100", "-conns", "1", "-duration", "2s", "-json")
	rep := decode[fullReport](t, res.stdout)
	if res.code != 1 || rep.Messages != 1 || rep.ErrorsByKind["EchoMismatch"] != 1 || !strings.Contains(res.stderr, "echoes differed") {
		t.Errorf("exit %d, report %s\n%s", res.code, res.stdout, res.stderr)
	}
}

// The report gives the run's own cost, TCP_INFO and the connect latency.
// The cost's system calls are the engine's (Engine.Stats): io_uring_enter
// calls on io_uring, where a TCP send makes no direct system call;
// sendmsg/sendto calls on epoll.
func TestE2ECostAndTCPInfo(t *testing.T) {
	bin := build(t)
	for _, backend := range []string{"io_uring", "epoll"} {
		res := runBin(t, bin, "run", "-backend", backend, "-conns", "3", "-duration", "1s", "-json")
		if res.code != 0 {
			t.Fatalf("%s: exit %d\n%s", backend, res.code, res.stderr)
		}
		rep := decode[fullReport](t, res.stdout)
		checkCostKeys(t, backend, res.stdout)
		c := rep.Cost
		if c == nil || c.User+c.Sys <= 0 || c.PerMessage <= 0 || c.PerGB <= 0 || !c.IncludesSink {
			t.Errorf("%s: cost %+v", backend, c)
			continue
		}
		if backend == "io_uring" && (c.Enters == 0 || c.SQEs < c.Enters || c.EntersPerMsg <= 0 || c.EntersPerMsg >= 1 || c.SQEsPerEnter < 1 ||
			c.Waits > c.Enters || c.SendCalls != 0 || c.SendCallsPerMsg != 0) {
			t.Errorf("io_uring: cost %+v", c)
		}
		// Batching coalesces queued sends: at most one call per message
		// and each EAGAIN, at least one per coalesced wire.
		if backend == "epoll" && (c.Enters != 0 || c.SQEs != 0 || c.SendCalls == 0 || c.SendCallsPerMsg <= 0 ||
			c.SendCalls > rep.Messages+c.WouldBlock || c.RecvCalls != 0 || c.WouldBlockRatio < 0 || c.WouldBlockRatio >= 1) {
			t.Errorf("epoll: cost %+v, %d messages", c, rep.Messages)
		}
		if rep.TCPInfo == nil || rep.TCPInfo.Connections != 3 || rep.TCPInfo.RTTMean <= 0 || rep.TCPInfo.CwndMin == 0 {
			t.Errorf("%s: tcp_info %+v", backend, rep.TCPInfo)
		}
		if rep.DialAttempts != 3 || rep.DialErrors != 0 || rep.ConnectLatency["p50"] <= 0 {
			t.Errorf("%s: dial %d attempts, %d errors, connect latency %v", backend, rep.DialAttempts, rep.DialErrors, rep.ConnectLatency)
		}
	}
}

// checkCostKeys checks that the report's cost has every key.
func checkCostKeys(t *testing.T, what, report string) {
	t.Helper()
	var obj struct {
		Cost map[string]json.RawMessage `json:"cost"`
	}
	if err := json.Unmarshal([]byte(report), &obj); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	got := make([]string, 0, len(obj.Cost))
	for k := range obj.Cost {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, costKeys) {
		t.Errorf("%s: cost keys\n got  %v\n want %v", what, got, costKeys)
	}
}

// With one send in flight and no batching, an epoll send is one
// sendto(2) that sends the whole 64 B message (it completes inside
// SendAsync) or answers EAGAIN, and the message is sent again when the
// netpoller says the socket is writable: send_calls is messages plus
// would_block, send_calls_per_message 1 plus the EAGAINs per message.
// An rr request is one send and at least one recvfrom that returns
// bytes, plus the EAGAINs; on io_uring it takes io_uring_enter calls
// and no direct ones. The text report gives the same figures.
func TestE2ESyscallsPerMessage(t *testing.T) {
	bin := build(t)
	res := runBin(t, bin, "run", "-backend", "epoll", "-conns", "1", "-inflight", "1", "-size", "64", "-duration", "500ms", "-json")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	rep := decode[fullReport](t, res.stdout)
	c := rep.Cost
	if c == nil || rep.Messages == 0 || rep.Errors != 0 || c.SendCalls != rep.Messages+c.WouldBlock || c.RecvCalls != 0 ||
		c.SendCallsPerMsg < 1 || c.SendCallsPerMsg > 1+float64(c.WouldBlock)/float64(rep.Messages)+1e-9 || c.SendCallsPerMsg > 2 {
		t.Errorf("epoll, one in flight: %d messages, cost %+v", rep.Messages, c)
	}

	for _, backend := range []string{"epoll", "io_uring"} {
		res := runBin(t, bin, "rr", "-backend", backend, "-conns", "2", "-messages", "2000", "-json")
		if res.code != 0 {
			t.Fatalf("rr %s: exit %d\n%s", backend, res.code, res.stderr)
		}
		checkCostKeys(t, "rr "+backend, res.stdout)
		rep := decode[fullReport](t, res.stdout)
		c := rep.Cost
		switch {
		case c == nil || rep.Messages != 2000:
			t.Errorf("rr %s: %s", backend, res.stdout)
		case backend == "epoll" && (c.Enters != 0 || c.SendCalls < rep.Messages || c.RecvCalls < rep.Messages ||
			c.SendCalls+c.RecvCalls > 2*(rep.Messages+1)+c.WouldBlock || c.SendCallsPerMsg < 1 || c.RecvCallsPerMsg < 1):
			t.Errorf("rr epoll: cost %+v", c)
		case backend == "io_uring" && (c.Enters == 0 || c.EntersPerMsg <= 0 || c.SendCalls+c.RecvCalls != 0):
			t.Errorf("rr io_uring: cost %+v", c)
		}
		if rep.Sink == nil || rep.Sink.Reader != "go_net" || rep.Sink.Reads == 0 {
			t.Errorf("rr %s: the embedded sink's reads: %+v", backend, rep.Sink)
		}
	}

	for backend, want := range map[string]*regexp.Regexp{
		"epoll":    regexp.MustCompile(`\n  syscalls:    1\.\d{3} sendmsg/sendto per message, \d+\.\d% of them would block \(EAGAIN\)\n`),
		"io_uring": regexp.MustCompile(`\n  syscalls:    \d\.\d{4} io_uring_enter per message, \d+\.\d SQEs per enter, `),
	} {
		res := runBin(t, bin, "run", "-backend", backend, "-conns", "1", "-inflight", "1", "-duration", "300ms")
		if res.code != 0 || !want.MatchString(res.stdout) || !strings.Contains(res.stdout, " read calls (") ||
			!strings.Contains(res.stdout, "through Go's net") {
			t.Errorf("%s: exit %d, text does not match %v:\n%s", backend, res.code, want, res.stdout)
		}
	}
}

// A connection that cannot be made is retried, then given up; the run
// goes on with the others and counts every attempt.
func TestE2EDialRetries(t *testing.T) {
	bin := build(t)
	// 192.0.2.1 (TEST-NET-1) is no address of this machine: binding to
	// it fails (EADDRNOTAVAIL) at once, on every attempt.
	res := runBin(t, bin, "run", "-conns", "4", "-bind", "127.0.0.1", "-bind", "192.0.2.1", "-dial-retries", "2",
		"-connect-rate", "100/s", "-duration", "500ms", "-json")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	rep := decode[fullReport](t, res.stdout)
	// Connections 0 and 2 bind to 127.0.0.1; 1 and 3 try 1+2 times each.
	if rep.ConnsWanted != 4 || rep.Conns != 2 || rep.DialAttempts != 2+2*3 || rep.DialErrors != 2*3 || rep.Messages == 0 {
		t.Errorf("report: %s", res.stdout)
	}
	if !strings.Contains(res.stderr, "2 of 4 connections could not be established") {
		t.Errorf("stderr:\n%s", res.stderr)
	}
	// A socket option the kernel refuses is not retried.
	res = runBin(t, bin, "run", "-congestion", "no-such-algorithm", "-duration", "500ms")
	if res.code != 1 || !strings.Contains(res.stderr, "-congestion: ") {
		t.Errorf("-congestion no-such-algorithm: exit %d\n%s", res.code, res.stderr)
	}
}

// Socket options are set: the run works with each, and TCP_INFO shows
// the congestion control's effect where it can.
func TestE2ESocketOptions(t *testing.T) {
	bin := build(t)
	res := runBin(t, bin, "run", "-conns", "2", "-duration", "500ms", "-json", "-sndbuf", "64KiB", "-nodelay=false",
		"-congestion", "reno", "-fq-rate", "1Gbit/s", "-tos", "16", "-rings", "2", "-sq-entries", "64", "-zc-threshold", "32KiB")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	rep := decode[fullReport](t, res.stdout)
	if rep.Messages == 0 || rep.Sink == nil || rep.Sink.Bytes != rep.Bytes {
		t.Errorf("report: %s", res.stdout)
	}
	// -rate in bits per second: 10 Mbit/s of 125-byte messages is 10,000/s.
	res = runBin(t, bin, "run", "-conns", "1", "-size", "125", "-rate", "10Mbit/s", "-duration", "500ms", "-json")
	if rep := decode[fullReport](t, res.stdout); res.code != 0 || rep.Rate != 10000 {
		t.Errorf("-rate 10Mbit/s: exit %d, rate %v", res.code, rep.Rate)
	}
}

// -omit leaves the warm-up out; what the sink received is the run's
// bytes and the omitted ones, exactly.
func TestE2EOmit(t *testing.T) {
	bin := build(t)
	res := runBin(t, bin, "run", "-conns", "2", "-omit", "400ms", "-duration", "1200ms", "-json")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	rep := decode[fullReport](t, res.stdout)
	if rep.OmitSeconds < 0.4 || rep.OmitSeconds > 1 || rep.OmittedMessages == 0 || rep.OmittedBytes != 64*rep.OmittedMessages ||
		rep.Sink == nil || rep.Sink.Bytes != rep.Bytes+rep.OmittedBytes {
		t.Errorf("report: %s", res.stdout)
	}
}

// -json-stream: one JSON object per interval, then the report, one per
// line; the intervals add up to at most the run.
func TestE2EJSONStream(t *testing.T) {
	bin := build(t)
	res := runBin(t, bin, "run", "-conns", "2", "-interval", "200ms", "-duration", "1100ms", "-json-stream")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	// Five intervals end within the run; a late tick on a loaded machine
	// may merge two.
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) < 4 || len(lines) > 6 {
		t.Fatalf("%d lines, want 3 to 5 intervals and the report:\n%s", len(lines), res.stdout)
	}
	last := len(lines) - 1
	var sum, calls uint64
	for i, l := range lines[:last] {
		var ir struct {
			Type     string  `json:"type"`
			At       float64 `json:"at_seconds"`
			Messages uint64  `json:"messages"`
			TCPInfo  *struct {
				Connections int `json:"connections"`
			} `json:"tcp_info"`
			Cost *costReport `json:"cost"`
		}
		// A late tick on a loaded machine can leave an interval empty.
		if err := json.Unmarshal([]byte(l), &ir); err != nil || ir.Type != "interval" || ir.TCPInfo == nil || ir.TCPInfo.Connections != 2 || ir.Cost == nil {
			t.Errorf("line %d: %v %s", i, err, l)
			continue
		}
		sum += ir.Messages
		calls += ir.Cost.Enters + ir.Cost.SendCalls
	}
	if sum == 0 || calls == 0 {
		t.Errorf("no interval counted a message (or a system call):\n%s", res.stdout)
	}
	rep := decode[fullReport](t, lines[last])
	if rep.Messages < sum || rep.Messages == 0 {
		t.Errorf("the report's %d messages, the intervals' %d", rep.Messages, sum)
	}
}

// -max-p99 and -max-errors: a run that breaks one exits 3 and says which.
func TestE2EThresholds(t *testing.T) {
	bin := build(t)
	res := runBin(t, bin, "run", "-conns", "1", "-duration", "300ms", "-max-p99", "1ns", "-json")
	rep := decode[fullReport](t, res.stdout)
	if res.code != 3 || len(rep.Failed) != 1 || !strings.HasPrefix(rep.Failed[0], "-max-p99 1ns: p99 was ") ||
		!strings.Contains(res.stderr, "threshold broken: -max-p99") {
		t.Errorf("-max-p99 1ns: exit %d, failed %q\n%s", res.code, rep.Failed, res.stderr)
	}
	res = runBin(t, bin, "run", "-conns", "1", "-duration", "300ms", "-max-p99", "10s", "-max-errors", "0", "-json")
	if rep := decode[fullReport](t, res.stdout); res.code != 0 || len(rep.Failed) != 0 {
		t.Errorf("within thresholds: exit %d, failed %q", res.code, rep.Failed)
	}
}

// -sink-report: a uringsend sink in another process tells the run what
// it received from the run's connections — and only those.
func TestE2ESinkReport(t *testing.T) {
	bin := build(t)
	sink := startSink(t, bin, "-listen", "tcp://127.0.0.1:0", "-verify", "-interval", "0")
	// Another sender's bytes are not the run's.
	other, err := net.Dial("tcp", strings.TrimPrefix(sink.addr, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	res := runBin(t, bin, "run", "-target", sink.addr, "-messages", "20000", "-size", "100", "-conns", "3", "-verify", "-sink-report", "-json")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	rep := decode[fullReport](t, res.stdout)
	if s := rep.Sink; rep.Messages != 20000 || s == nil || s.Conns != 3 || s.Bytes != 2000000 || s.Verified != 20000 ||
		s.Corrupt != 0 || s.Lost != 0 || s.Missing != 0 {
		t.Errorf("report: %s", res.stdout)
	}
	// UDP: the sink counts by source address; the request and the answer
	// are a datagram each.
	usink := startSink(t, bin, "-listen", "udp://127.0.0.1:0", "-verify", "-interval", "0")
	res = runBin(t, bin, "run", "-target", usink.addr, "-messages", "5000", "-rate", "50k/s", "-size", "100", "-conns", "2", "-verify", "-sink-report", "-json")
	if res.code != 0 {
		t.Fatalf("udp: exit %d\n%s", res.code, res.stderr)
	}
	rep = decode[fullReport](t, res.stdout)
	if s := rep.Sink; rep.Messages != 5000 || s == nil || s.Conns != 2 || s.Messages > 5000 || s.Messages < 4500 ||
		s.Bytes != 100*s.Messages || s.Verified != s.Messages || s.Corrupt != 0 || s.Missing != 0 {
		t.Errorf("udp report: %s", res.stdout)
	}
	// unix: the run's sockets bind to abstract names for the sink to
	// know them by.
	xsink := startSink(t, bin, "-listen", "unix://"+filepath.Join(t.TempDir(), "sink.sock"), "-verify", "-interval", "0")
	res = runBin(t, bin, "run", "-target", xsink.addr, "-messages", "7000", "-size", "64", "-conns", "2", "-verify", "-sink-report", "-json")
	if res.code != 0 {
		t.Fatalf("unix: exit %d\n%s", res.code, res.stderr)
	}
	rep = decode[fullReport](t, res.stdout)
	if s := rep.Sink; rep.Messages != 7000 || s == nil || s.Conns != 2 || s.Bytes != 7000*64 || s.Verified != 7000 || s.Missing != 0 {
		t.Errorf("unix report: %s", res.stdout)
	}
	// A target that is no uringsend sink: the run says so and succeeds.
	target := socatEcho(t)
	res = runBin(t, bin, "run", "-target", target, "-duration", "300ms", "-conns", "1", "-sink-report", "-json")
	if rep := decode[fullReport](t, res.stdout); res.code != 0 || rep.Sink != nil || !strings.Contains(rep.SinkError, "did not answer as a uringsend sink") {
		t.Errorf("socat: exit %d, sink %v, sink_error %q", res.code, rep.Sink, rep.SinkError)
	}
}

// The first SIGINT says that the run drains and how long that may take.
func TestE2EDrainMessage(t *testing.T) {
	bin := build(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "-duration", "30s", "-drain-timeout", "3s", "-json")
	var stdout strings.Builder
	stderr, _ := cmd.StderrPipe()
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && !strings.Contains(sc.Text(), "msg/s") {
	}
	cmd.Process.Signal(os.Interrupt)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "uringsend: draining (Ctrl-C again to quit; at most 3s)") {
		t.Errorf("stderr after SIGINT:\n%s", strings.Join(lines, "\n"))
	}
	if rep := decode[fullReport](t, stdout.String()); rep.Messages == 0 || rep.Latency["max"] <= 0 {
		t.Errorf("report: %s", stdout.String())
	}
}

// -conn-lifetime replaces connections while the run goes on: every
// message of every connection, old and new, arrives verified, and each
// replacement is one more dial and one more connection at the sink.
func TestE2EConnLifetime(t *testing.T) {
	bin := build(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"closed", []string{"run", "-verify"}},
		{"open", []string{"run", "-verify", "-rate", "20k/s"}},
		{"rr", []string{"rr"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runBin(t, bin, append(tc.args, "-conns", "2", "-conn-lifetime", "100ms", "-duration", "1s", "-json", "-interval", "0")...)
			if res.code != 0 {
				t.Fatalf("exit %d\n%s", res.code, res.stderr)
			}
			rep := decode[fullReport](t, res.stdout)
			s := rep.Sink
			if rep.ConnsReplaced < 5 || rep.ReplaceErrors != 0 || rep.Errors != 0 || rep.DialAttempts != 2+rep.ConnsReplaced ||
				s == nil || s.Conns != uint64(2+rep.ConnsReplaced) || s.Bytes != rep.Bytes {
				t.Errorf("report: %s", res.stdout)
			}
			if tc.args[0] == "run" && (s.Verified != rep.Messages || s.Corrupt+s.Lost != 0) {
				t.Errorf("sink verified %d of %d messages, %d corrupt, %d lost", s.Verified, rep.Messages, s.Corrupt, s.Lost)
			}
		})
	}
}
