package plot

import (
	"math"
	"strconv"
	"strings"
)

// num formats v with up to three significant digits, no trailing zeros.
func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	case math.Abs(v) >= 10:
		return trimZeros(strconv.FormatFloat(v, 'f', 1, 64))
	default:
		return trimZeros(strconv.FormatFloat(v, 'f', 2, 64))
	}
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// si formats v with an SI prefix: 950, 1.5k, 12M, 2G.
func si(v float64) string {
	for _, p := range []struct {
		f float64
		s string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if math.Abs(v) >= p.f {
			return num(v/p.f) + p.s
		}
	}
	return num(v)
}

// latency formats seconds: 850ns, 12.5µs, 1.2ms, 3s.
func latency(s float64) string {
	switch {
	case s == 0:
		return "0"
	case s < 1e-6:
		return num(s*1e9) + "ns"
	case s < 1e-3:
		return num(s*1e6) + "µs"
	case s < 1:
		return num(s*1e3) + "ms"
	default:
		return num(s) + "s"
	}
}

// bitRate formats bits/s: 9.4 Gbit/s.
func bitRate(v float64) string {
	s := si(v)
	if n := len(s); n > 0 && s[n-1] >= 'A' {
		return s[:n-1] + " " + s[n-1:] + "bit/s"
	}
	return s + " bit/s"
}

// size formats a byte count in binary units: 64 B, 1 KiB, 1.5 MiB.
func size(n float64) string {
	for _, p := range []struct {
		f float64
		s string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= p.f {
			return num(n/p.f) + " " + p.s
		}
	}
	return num(n) + " B"
}

// grouped formats n with thousands separators: 1,234,567.
func grouped(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// percentileLabel names the percentile at x = log10(1/(1-p)): 0%, 90%,
// 99%, 99.9%, …
func percentileLabel(x int) string {
	switch {
	case x <= 0:
		return "0%"
	case x == 1:
		return "90%"
	case x == 2:
		return "99%"
	default:
		return "99." + strings.Repeat("9", x-2) + "%"
	}
}
