package loadgen

import (
	"flag"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
	}{
		{"64", 64},
		{"64B", 64},
		{"64b", 64},
		{" 64 ", 64},
		{"1KiB", 1024},
		{"1kib", 1024},
		{"128KiB", 128 << 10},
		{"1.5KiB", 1536},
		{"1MiB", 1 << 20},
		{"1GiB", 1 << 30},
		{"1kB", 1000},
		{"1KB", 1000},
		{"1k", 1000},
		{"2M", 2e6},
		{"2MB", 2e6},
		{"0", 0},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "B", "KiB", "abc", "12QB", "-1", "1.5", "0.1KiB", "0x40", "1e3xB", "NaN", "Inf", "1_000", "2TiB", "64 KiB B"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), "size") {
			t.Errorf("ParseSize(%q) error %q does not say what was wrong", in, err)
		}
	}
}

func TestSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   Size
		want string
	}{{64, "64B"}, {1024, "1KiB"}, {1536, "1536B"}, {128 << 10, "128KiB"}, {3 << 20, "3MiB"}, {1 << 30, "1GiB"}, {1000, "1000B"}} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		back, err := ParseSize(tc.in.String())
		if err != nil || back != tc.in {
			t.Errorf("ParseSize(%q) = %d, %v: does not round-trip", tc.in.String(), back, err)
		}
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rate
	}{
		{"50k/s", 50000},
		{"50K/s", 50000},
		{"50000", 50000},
		{"50000/s", 50000},
		{"1M/s", 1e6},
		{"1.5M", 1.5e6},
		{"100/ms", 100000},
		{"1/us", 1e6},
		{"1/µs", 1e6},
		{"6k/m", 100},
		{"6k/1m", 100},
		{"500/10s", 50},
		{"36k/h", 10},
		{"10/250ms", 40},
		{"0", 0},
		{"0/s", 0},
	} {
		got, err := ParseRate(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tc.in, float64(got), err, float64(tc.want))
		}
	}
	for _, in := range []string{"", "fast", "5m/s", "-1/s", "10/", "10/x", "10/0s", "10/-1s", "k/s", "1/s/s", "1e400"} {
		if got, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) = %v, want an error", in, float64(got))
		}
	}
	for _, r := range []Rate{0, 1, 50000, 1.5e6, 0.5, 123456} {
		back, err := ParseRate(r.String())
		if err != nil || back != r {
			t.Errorf("Rate %v: String %q parses to %v, %v", float64(r), r.String(), float64(back), err)
		}
	}
	if got := Rate(50000).String(); got != "50k/s" {
		t.Errorf("Rate(50000).String() = %q, want 50k/s", got)
	}
}

func TestParseCount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Count
	}{{"1000", 1000}, {"10k", 10000}, {"2.5M", 2500000}, {"1G", 1e9}, {"0", 0}} {
		got, err := ParseCount(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseCount(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "1.5", "-3", "1m", "lots", "1e30"} {
		if got, err := ParseCount(in); err == nil {
			t.Errorf("ParseCount(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Target
	}{
		{"tcp://127.0.0.1:9000", Target{"tcp", "127.0.0.1:9000"}},
		{"tcp://localhost:9000/", Target{"tcp", "localhost:9000"}},
		{"udp://10.0.0.2:53", Target{"udp", "10.0.0.2:53"}},
		{"tcp://[::1]:9000", Target{"tcp", "[::1]:9000"}},
		{"udp://[fe80::1%25eth0]:9000", Target{"udp", "[fe80::1%eth0]:9000"}},
		{"tcp://:9000", Target{"tcp", ":9000"}},
		{"tcp://127.0.0.1:0", Target{"tcp", "127.0.0.1:0"}},
		{"tcp://127.0.0.1:09000", Target{"tcp", "127.0.0.1:9000"}},
		{"unix:///run/sink.sock", Target{"unix", "/run/sink.sock"}},
		{"unix:///tmp/a b", Target{"unix", "/tmp/a b"}},
		{"", Target{}},
	} {
		got, err := ParseTarget(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if tc.in != "" {
			back, err := ParseTarget(got.String())
			if err != nil || back != got {
				t.Errorf("ParseTarget(%q).String() = %q does not round-trip: %+v, %v", tc.in, got.String(), back, err)
			}
		}
	}
	for _, in := range []string{
		"127.0.0.1:9000", "localhost", "http://x:80", "tcp://", "tcp://host", "tcp://host:", "tcp://host:http",
		"tcp://host:65536", "tcp://host:-1", "tcp://user@host:1", "tcp://host:1/path", "tcp://host:1?q=1",
		"unix://relative/path", "unix://", "unix:/tmp/x", "://x:1", "udp://[::1:9000", "unix:///" + strings.Repeat("x", 120),
	} {
		if got, err := ParseTarget(in); err == nil {
			t.Errorf("ParseTarget(%q) = %+v, want an error", in, got)
		} else if !strings.Contains(err.Error(), "tcp://host:port") {
			t.Errorf("ParseTarget(%q) error %q does not show the forms", in, err)
		}
	}
}

func TestEnumValues(t *testing.T) {
	var m Mode
	var z ZeroCopy
	var b Backend
	for _, tc := range []struct {
		v    flag.Value
		good []string
		bad  []string
	}{
		{&m, []string{"buffer", "bufferlist"}, []string{"", "Buffer", "list"}},
		{&z, []string{"auto", "on", "off"}, []string{"", "yes", "true"}},
		{&b, []string{"auto", "io_uring", "epoll"}, []string{"", "uring", "poll"}},
	} {
		for _, s := range tc.good {
			if err := tc.v.Set(s); err != nil || tc.v.String() != s {
				t.Errorf("%T.Set(%q): %v, String %q", tc.v, s, err, tc.v.String())
			}
		}
		for _, s := range tc.bad {
			if err := tc.v.Set(s); err == nil {
				t.Errorf("%T.Set(%q) succeeded, want an error", tc.v, s)
			}
		}
	}
}

func TestParseBitRate(t *testing.T) {
	for in, want := range map[string]BitRate{
		"10Gbit/s": 10e9, "500Mbit/s": 500e6, "1.5Gbit/s": 1.5e9, "64kbit/s": 64e3, "1Gbps": 1e9, "1e9": 1e9, "2Tbit/s": 2e12, "0": 0,
	} {
		got, err := ParseBitRate(in)
		if err != nil || got != want {
			t.Errorf("ParseBitRate(%q) = %v, %v; want %v", in, float64(got), err, float64(want))
		}
		if back, err := ParseBitRate(got.String()); err != nil || back != got {
			t.Errorf("BitRate %v: String %q parses to %v, %v", float64(got), got.String(), float64(back), err)
		}
	}
	for _, in := range []string{"", "fast", "-1Gbit/s", "10Qbit/s", "Gbit/s", "1e16"} {
		if got, err := ParseBitRate(in); err == nil {
			t.Errorf("ParseBitRate(%q) = %v, want an error", in, float64(got))
		}
	}
	// -rate takes either: a bit rate becomes messages of -size per second.
	c, err := ParseRunFlags([]string{"-rate", "10Mbit/s", "-size", "125"}, DefaultConfig())
	if err != nil || c.Rate != 10000 || c.RateBits != 10e6 {
		t.Errorf("-rate 10Mbit/s -size 125: rate %v, bits %v, %v", float64(c.Rate), float64(c.RateBits), err)
	}
	c, err = ParseRunFlags([]string{"-rate", "10Mbit/s", "-rate", "5k/s"}, DefaultConfig())
	if err != nil || c.Rate != 5000 || c.RateBits != 0 {
		t.Errorf("the last -rate wins: rate %v, bits %v, %v", float64(c.Rate), float64(c.RateBits), err)
	}
}

func TestAddrs(t *testing.T) {
	var a Addrs
	for _, s := range []string{"127.0.0.1", "::1,10.0.0.1"} {
		if err := a.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.List(); len(got) != 3 || got[0] != "127.0.0.1" || got[1] != "::1" || got[2] != "10.0.0.1" {
		t.Errorf("List = %q", got)
	}
	if err := a.Set("1.2.3.4,"); err == nil {
		t.Error("an empty address: no error")
	}
	if Addrs("").List() != nil {
		t.Error("the zero Addrs is not empty")
	}
}
