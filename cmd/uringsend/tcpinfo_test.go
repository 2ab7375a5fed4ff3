package main

import (
	"strings"
	"testing"
)

// TCP_INFO of every connection at the end: what TCP sent on them, less
// what it sent twice, is exactly what the run counts; the text labels
// the loopback delivery rate for the estimate it is.
func TestE2ETCPInfoConnections(t *testing.T) {
	bin := build(t)
	res := runBin(t, bin, "run", "-conns", "3", "-duration", "500ms", "-json", "-interval", "0")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	type conn struct {
		Connection   int     `json:"connection"`
		Local        string  `json:"local"`
		BytesSent    uint64  `json:"bytes_sent"`
		BytesRetrans uint64  `json:"bytes_retransmitted"`
		RTT          float64 `json:"rtt_seconds"`
		Cwnd         uint32  `json:"cwnd"`
		MSS          uint32  `json:"mss"`
		DeliveryRate float64 `json:"delivery_rate_bits_per_second"`
	}
	rep := decode[struct {
		Bytes   uint64 `json:"bytes"`
		TCPInfo struct {
			Connections int     `json:"connections"`
			RateSum     float64 `json:"delivery_rate_bits_per_second"`
			RateMax     float64 `json:"delivery_rate_max_bits_per_second"`
		} `json:"tcp_info"`
		Conns []conn `json:"tcp_info_connections"`
	}](t, res.stdout)
	if len(rep.Conns) != 3 || rep.TCPInfo.Connections != 3 {
		t.Fatalf("tcp_info_connections: %+v; want 3", rep.Conns)
	}
	var sent uint64
	var maxRate float64
	seen := map[int]bool{}
	for _, c := range rep.Conns {
		if seen[c.Connection] || c.Connection < 0 || c.Connection > 2 || !strings.HasPrefix(c.Local, "127.0.0.1:") || c.RTT <= 0 || c.Cwnd == 0 || c.MSS == 0 {
			t.Errorf("connection %+v", c)
		}
		seen[c.Connection] = true
		sent += c.BytesSent - c.BytesRetrans
		maxRate = max(maxRate, c.DeliveryRate)
	}
	if sent != rep.Bytes {
		t.Errorf("TCP sent %d bytes (retransmissions left out) on the connections; the run counted %d", sent, rep.Bytes)
	}
	if rep.TCPInfo.RateMax != maxRate || rep.TCPInfo.RateMax > rep.TCPInfo.RateSum {
		t.Errorf("delivery rate max %v, sum %v; the connections' largest is %v", rep.TCPInfo.RateMax, rep.TCPInfo.RateSum, maxRate)
	}
	text := runBin(t, bin, "run", "-conns", "2", "-duration", "300ms", "-interval", "0")
	for _, want := range []string{"delivery-rate estimate up to", "per connection (loopback: no wire to measure)", "rwnd-limited  sndbuf-limited"} {
		if !strings.Contains(text.stdout, want) {
			t.Errorf("text lacks %q:\n%s", want, text.stdout)
		}
	}
}
