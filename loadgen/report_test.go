package loadgen

import (
	"fmt"
	"strings"
	"testing"
)

// The text report's rough edges of issue 16: one number format, the
// shape of a bufferlist message, why zero-copy was not used, no link to
// a metrics server that has stopped.
func TestReportText(t *testing.T) {
	rep := &Report{
		Command: "run", Target: "tcp://10.0.0.2:9000", Backend: "io_uring", ZeroCopy: "auto",
		ZeroCopyWhy: "a loopback peer: auto uses it towards other hosts; -zerocopy on forces it",
		Mode:        "bufferlist", Segments: 8, Size: 128 << 10, Conns: 2, ConnsWanted: 3, Inflight: 2, Window: 256 << 10,
		Messages: 1234567, Bytes: 1234567 * 131072, DrainMessages: 4, OmitSeconds: 1, OmittedMessages: 5000,
		LatencyKind: "send_completion", MetricsURL: "http://127.0.0.1:9464/metrics",
		ErrorsByKind: map[string]uint64{}, Failed: []string{"-max-p99 1ms: p99 was 2.00ms"},
		Cost: &Cost{UserSeconds: 1, SystemSeconds: 2, Enters: 10, SQEs: 20, EntersPerMessage: 0.001, SQEsPerEnter: 2},
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"uringsend run: tcp://10.0.0.2:9000\n",
		"2 of 3 connections × up to 2 in flight (a 256KiB window), 128KiB messages, each a bufferlist of 8 segments, closed loop",
		"zero-copy auto requested, not used (a loopback peer: auto uses it towards other hosts; -zerocopy on forces it)",
		"after 1.00s omitted (5,000 messages)",
		"messages:    1,234,567", "; 4 of them completed while draining, not in the latencies",
		"latency:     send completion p50",
		"syscalls:    0.0010 io_uring_enter per message, 2.0 SQEs per enter",
		"FAILED:      -max-p99 1ms: p99 was 2.00ms",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "metrics") || strings.Contains(out, "16 KiB") {
		t.Errorf("names the stopped metrics server or a threshold that was not the reason:\n%s", out)
	}

	// epoll: the engine's direct calls, per request for rr.
	rep.Command, rep.Backend = "rr", "epoll"
	rep.Cost = &Cost{SendCalls: 1000, RecvCalls: 3000, WouldBlock: 2000}
	rep.Cost.setRatios(1000, 64000)
	b.Reset()
	rep.WriteText(&b)
	if want := "syscalls:    1.000 sendmsg/sendto per request, 3.000 recvfrom per request, 50.0% of them would block (EAGAIN)\n"; !strings.Contains(b.String(), want) {
		t.Errorf("lacks %q:\n%s", want, b.String())
	}

	srep := &SinkReport{Listen: "tcp://127.0.0.1:9000", Verify: true, Verified: 300006, Corrupt: 150001, OutOfOrder: 1234, Lost: 5678, Reads: 1000, Messages: 2000, Reader: ReaderGoNet}
	srep.setReadsPerMessage()
	b.Reset()
	if err := srep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"verified:    300,006 ok, 150,001 corrupt, 1,234 out of order, 5,678 lost", "1,000 read calls (0.500 per message) through Go's net, not the engine"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("sink report lacks %q:\n%s", want, b.String())
		}
	}
}

// Why zero-copy was not used follows from the target, the size and the
// threshold.
func TestZeroCopyReason(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Target: Target{"unix", "/x"}, ZeroCopy: ZeroCopyAuto, Size: 1 << 20}, "SEND_ZC is for TCP"},
		{Config{Target: Target{"tcp", "10.0.0.2:1"}, ZeroCopy: ZeroCopyOn, Size: 64, Inflight: 1, Batching: BatchingOff}, "messages under the 16KiB threshold"},
		{Config{Target: Target{"tcp", "10.0.0.2:1"}, ZeroCopy: ZeroCopyOn, Size: 64 << 10, ZCThreshold: 128 << 10, Batching: BatchingOff}, "messages under the 128KiB threshold"},
		{Config{Target: Target{"tcp", "10.0.0.2:1"}, ZeroCopy: ZeroCopyOn, Size: 128 << 10}, "this kernel has no SEND_ZC (or it reported copying)"},
	} {
		r := &runner{cfg: tc.cfg}
		if got := r.zeroCopyReason(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.cfg, got, tc.want)
		}
	}
}

// TCP_INFO in the text: the delivery rate is labelled an estimate (the
// largest of a connection, never a sum), loopback says so, and a table
// shows the connections with the most retransmits first.
func TestReportTCPConns(t *testing.T) {
	rep := &Report{
		Command: "run", Target: "tcp://10.0.0.2:9000", Backend: "io_uring", ZeroCopy: "off", Mode: "buffer", Size: 64, Conns: 6,
		LatencyKind: "send_completion", ErrorsByKind: map[string]uint64{},
		TCPInfo: &TCPInfo{Connections: 6, Retransmits: 5, DeliveryRate: 60e9, DeliveryRateMax: 12e9},
	}
	for i := range 6 {
		rep.TCPConns = append(rep.TCPConns, TCPConnInfo{Connection: i, Local: fmt.Sprintf("10.0.0.1:%d", 40000+i),
			Retransmits: uint32(i % 3), RTTSeconds: float64(i) * 1e-4, Cwnd: 10, BytesSent: 1e6, BusySeconds: 1, RwndLimited: 0.25})
	}
	text := func() string {
		var b strings.Builder
		rep.WriteText(&b)
		return b.String()
	}
	out := text()
	for _, want := range []string{
		"; delivery-rate estimate up to 12.0 Gbit/s per connection\n",
		"conn  local           retrans       rtt   cwnd       sent  rwnd-limited  sndbuf-limited\n",
		"5     10.0.0.1:40005        2     500µs     10    1.00 MB           25%              0%\n" +
			"               2     10.0.0.1:40002        2     200µs     10    1.00 MB           25%              0%\n" +
			"               4     10.0.0.1:40004        1     400µs     10    1.00 MB           25%              0%\n" +
			"               1     10.0.0.1:40001        1     100µs",
		"(2 more; every connection's in -json: tcp_info_connections)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "loopback") || strings.Contains(out, "60.0 Gbit/s") || strings.Contains(out, "10.0.0.1:40003") {
		t.Errorf("a sum of estimates, a loopback note or a fifth row:\n%s", out)
	}
	rep.Target = "tcp://127.0.0.1:9000"
	if out := text(); !strings.Contains(out, "per connection (loopback: no wire to measure)\n") {
		t.Errorf("no loopback note:\n%s", out)
	}
}
