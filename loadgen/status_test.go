package loadgen

import (
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{siCount(0), "0"},
		{siCount(999), "999"},
		{siCount(1234), "1.23k"},
		{siCount(596123), "596k"},
		{siCount(12.5e6), "12.5M"},
		{bitRate(305e6), "305 Mbit/s"},
		{bitRate(27.2e9), "27.2 Gbit/s"},
		{bitRate(12), "12 bit/s"},
		{byteCount(381630144), "382 MB"},
		{byteCount(512), "512 B"},
		{latency(850), "850ns"},
		{latency(2640), "2.64µs"},
		{latency(3.44e6), "3.44ms"},
		{latency(2e9), "2.00s"},
		{grouped(0), "0"},
		{grouped(999), "999"},
		{grouped(1000), "1,000"},
		{grouped(5962971), "5,962,971"},
		{grouped(381630144), "381,630,144"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if s := (&Report{ErrorsByKind: map[string]uint64{"ConnectionReset": 3, "Shutdown": 1}, Errors: 4}); true {
		var b strings.Builder
		s.WriteText(&b)
		if !strings.Contains(b.String(), "errors:      4 (ConnectionReset 3, Shutdown 1)") {
			t.Errorf("errors line:\n%s", b.String())
		}
	}
}
