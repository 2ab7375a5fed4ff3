package loadgen

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// statusWriter writes the live status: on a terminal one line redrawn in
// place, otherwise one line per interval. Notes are whole lines either way.
type statusWriter struct {
	mu   sync.Mutex
	w    io.Writer
	tty  bool
	live bool // a status line is on screen (tty)
}

func newStatusWriter(w io.Writer) *statusWriter {
	return &statusWriter{w: w, tty: isTerminal(w)}
}

func (s *statusWriter) status(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tty {
		fmt.Fprint(s.w, "\r\x1b[K"+line)
		s.live = true
		return
	}
	fmt.Fprintln(s.w, line)
}

func (s *statusWriter) notef(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live {
		fmt.Fprint(s.w, "\r\x1b[K")
		s.live = false
	}
	fmt.Fprintf(s.w, format+"\n", args...)
}

// clear removes the live line, so that what follows starts on a clean line.
func (s *statusWriter) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live {
		fmt.Fprint(s.w, "\r\x1b[K")
		s.live = false
	}
}

// statusLine is the line for the interval that ended at "at" and lasted
// dt: elapsed/total, msgs/s, Gbit/s, p99 of the interval, sync share,
// errors so far, live connections.
func (r *runner) statusLine(at, dt time.Duration, now, prev *snapshot) string {
	var b strings.Builder
	switch {
	case r.cfg.Duration > 0:
		fmt.Fprintf(&b, "%6.1fs/%s", at.Seconds(), r.cfg.Duration)
	default:
		fmt.Fprintf(&b, "%6.1fs", at.Seconds())
	}
	if r.limit > 0 {
		fmt.Fprintf(&b, "  %s/%s msgs", siCount(float64(now.messages)), siCount(float64(r.limit)))
	}
	secs := dt.Seconds()
	msgs := float64(now.messages - prev.messages)
	bytes := float64(now.bytes - prev.bytes)
	fmt.Fprintf(&b, "  %s msg/s  %s", siCount(msgs/secs), bitRate(8*bytes/secs))
	if h := r.st.interval; h.TotalCount() > 0 {
		fmt.Fprintf(&b, "  p99 %s", latency(float64(h.ValueAtQuantile(99))))
	} else {
		b.WriteString("  p99 -")
	}
	if done := (now.messages + now.errors) - (prev.messages + prev.errors); done > 0 {
		fmt.Fprintf(&b, "  sync %.0f%%", 100*float64(now.sync-prev.sync)/float64(done))
	}
	fmt.Fprintf(&b, "  errors %d  conns %d/%d", now.errors, len(r.pos)-int(r.failed.Load()), len(r.pos))
	return b.String()
}

// siCount writes n with three significant digits and a k, M or G suffix.
func siCount(n float64) string {
	switch {
	case n >= 1e9:
		return sig3(n/1e9) + "G"
	case n >= 1e6:
		return sig3(n/1e6) + "M"
	case n >= 1e3:
		return sig3(n/1e3) + "k"
	}
	return strconv.FormatFloat(math.Round(n), 'f', -1, 64)
}

// sig3 writes f (>= 1) with three significant digits.
func sig3(f float64) string {
	switch {
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case f >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// bitRate writes bits per second: "632 Mbit/s", "1.23 Gbit/s".
func bitRate(bps float64) string {
	switch {
	case bps >= 1e9:
		return sig3(bps/1e9) + " Gbit/s"
	case bps >= 1e6:
		return sig3(bps/1e6) + " Mbit/s"
	case bps >= 1e3:
		return sig3(bps/1e3) + " kbit/s"
	}
	return strconv.FormatFloat(math.Round(bps), 'f', -1, 64) + " bit/s"
}

// byteCount writes a number of bytes in SI units: "790 MB".
func byteCount(n float64) string {
	switch {
	case n >= 1e12:
		return sig3(n/1e12) + " TB"
	case n >= 1e9:
		return sig3(n/1e9) + " GB"
	case n >= 1e6:
		return sig3(n/1e6) + " MB"
	case n >= 1e3:
		return sig3(n/1e3) + " kB"
	}
	return strconv.FormatFloat(n, 'f', 0, 64) + " B"
}

// latency writes nanoseconds with three significant digits: "850ns",
// "1.23µs", "45.6ms", "2.00s".
func latency(ns float64) string {
	switch {
	case ns >= 1e9:
		return sig3(ns/1e9) + "s"
	case ns >= 1e6:
		return sig3(ns/1e6) + "ms"
	case ns >= 1e3:
		return sig3(ns/1e3) + "µs"
	}
	return strconv.FormatFloat(ns, 'f', 0, 64) + "ns"
}

// grouped writes n with thousands separators: "12,345,678".
func grouped(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}
