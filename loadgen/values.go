package loadgen

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/uringsend/uringsend/internal/units"
)

// The typed flag values. Each implements flag.Value (Set on the pointer,
// String on the value) and has a Parse function of its own, so a Config
// can be filled from flags, from code or from tests alike. String returns
// a form that Parse accepts.

// Size is a number of bytes: "64", "64B", "1KiB", "128KiB", "1.5MiB",
// "1GiB" (binary, 1024) or "1kB", "1k", "2MB", "2M" (SI, 1000). It is
// units.Size, shared with the proxy's flags.
type Size = units.Size

// ParseSize parses s as a Size.
func ParseSize(s string) (Size, error) { return units.ParseSize(s) }

// Count is a number of messages: "1000", "10k", "2.5M", "1G" (SI
// suffixes k/K, M, G). Zero means no limit.
type Count uint64

// ParseCount parses s as a Count.
func ParseCount(s string) (Count, error) {
	f, err := parseSI(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("bad count %q: %v", s, err)
	}
	if f != math.Trunc(f) {
		return 0, fmt.Errorf("bad count %q: not a whole number", s)
	}
	if f > 1e18 {
		return 0, fmt.Errorf("bad count %q: too large", s)
	}
	return Count(f), nil
}

// Set implements flag.Value.
func (c *Count) Set(s string) error {
	v, err := ParseCount(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

func (c Count) String() string { return strconv.FormatUint(uint64(c), 10) }

// parseSI parses a non-negative decimal number with an optional SI
// suffix k/K (1e3), M (1e6) or G (1e9). A lower-case m is refused: it
// reads as milli as easily as mega.
func parseSI(s string) (float64, error) {
	mult := 1.0
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult, s = 1e3, s[:n-1]
		case 'M':
			mult, s = 1e6, s[:n-1]
		case 'G':
			mult, s = 1e9, s[:n-1]
		case 'm':
			return 0, errors.New("suffix m is ambiguous: use M for millions")
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || s == "" || strings.ContainsAny(s, "xXpP_") || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errors.New("want a number with an optional k, M or G suffix")
	}
	if f < 0 {
		return 0, errors.New("negative")
	}
	return f * mult, nil
}

// Rate is a number of messages per second. It is written as a count, an
// optional SI suffix and an optional "/unit": "50k/s", "50000", "1M/s",
// "100/ms", "6k/1m", "500/10s". The unit is s (the default), ms, us, µs,
// m (minute), h, or any time.Duration ("10s", "250ms"). Zero means no
// rate: the closed loop.
type Rate float64

// ParseRate parses s as a Rate.
func ParseRate(s string) (Rate, error) {
	t := strings.TrimSpace(s)
	num, per, hasPer := strings.Cut(t, "/")
	n, err := parseSI(strings.TrimSpace(num))
	if err != nil {
		return 0, fmt.Errorf("bad rate %q: %v (e.g. 50k/s, 1000/s, 100/ms)", s, err)
	}
	d := time.Second
	if hasPer {
		if d, err = parsePer(strings.TrimSpace(per)); err != nil {
			return 0, fmt.Errorf("bad rate %q: %v (e.g. 50k/s, 1000/s, 100/ms)", s, err)
		}
	}
	r := n / d.Seconds()
	if math.IsInf(r, 0) || r > 1e12 {
		return 0, fmt.Errorf("bad rate %q: too large", s)
	}
	return Rate(r), nil
}

func parsePer(u string) (time.Duration, error) {
	switch u {
	case "s", "sec":
		return time.Second, nil
	case "ms":
		return time.Millisecond, nil
	case "us", "µs":
		return time.Microsecond, nil
	case "m", "min":
		return time.Minute, nil
	case "h":
		return time.Hour, nil
	}
	d, err := time.ParseDuration(u)
	if err != nil {
		return 0, fmt.Errorf("bad unit %q", u)
	}
	if d <= 0 {
		return 0, fmt.Errorf("unit %q is not positive", u)
	}
	return d, nil
}

// Set implements flag.Value.
func (r *Rate) Set(s string) error {
	v, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// String returns r as "50k/s", "1.5M/s", "0.5/s" or "0" (no rate).
func (r Rate) String() string {
	if r == 0 {
		return "0"
	}
	return formatSI(float64(r)) + "/s"
}

// formatSI writes f with a k, M or G suffix when that is exact to three
// decimals, else as a plain number.
func formatSI(f float64) string {
	for _, u := range []struct {
		s string
		m float64
	}{{"G", 1e9}, {"M", 1e6}, {"k", 1e3}} {
		if f >= u.m {
			return strconv.FormatFloat(f/u.m, 'f', -1, 64) + u.s
		}
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// Target is where a run sends to or where a sink listens: a network as
// socket.Dial and net.Listen take it ("tcp", "udp", "unix") and an address.
// Its text form is a URL: tcp://host:port, udp://host:port (IPv6 hosts in
// brackets), unix:///absolute/path. The zero Target means "none".
type Target struct {
	Network string
	Address string
}

// ParseTarget parses a target URL. A sink may listen on port 0 (any free
// port) and an empty host (every interface); a run needs both.
func ParseTarget(s string) (Target, error) {
	bad := func(why string) (Target, error) {
		return Target{}, fmt.Errorf("bad target %q: %s (want tcp://host:port, udp://host:port or unix:///path)", s, why)
	}
	if s == "" {
		return Target{}, nil
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return bad("no scheme")
	}
	switch scheme {
	case "tcp", "udp":
		u, err := url.Parse(s)
		if err != nil {
			return bad("not a URL")
		}
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return bad("only host:port is allowed after " + scheme + "://")
		}
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil {
			return bad("want host:port")
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return bad("port must be a number from 0 to 65535")
		}
		return Target{Network: scheme, Address: net.JoinHostPort(host, strconv.FormatUint(p, 10))}, nil
	case "unix":
		if !strings.HasPrefix(rest, "/") {
			return bad("want an absolute path: unix:///path")
		}
		if strings.ContainsRune(rest, 0) {
			return bad("NUL in path")
		}
		if len(rest) > 107 {
			return bad("path longer than 107 bytes")
		}
		return Target{Network: "unix", Address: rest}, nil
	case "":
		return bad("no scheme")
	}
	return bad("unknown scheme " + strconv.Quote(scheme))
}

// Set implements flag.Value.
func (t *Target) Set(s string) error {
	v, err := ParseTarget(s)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// String returns the URL form, or "" for the zero Target.
func (t Target) String() string {
	if t.Network == "" {
		return ""
	}
	if t.Network == "unix" {
		return "unix://" + t.Address
	}
	// An IPv6 zone's % is escaped in a URL ("[fe80::1%25eth0]").
	return t.Network + "://" + strings.ReplaceAll(t.Address, "%", "%25")
}

// IsZero reports whether t is the zero Target.
func (t Target) IsZero() bool { return t.Network == "" }

// Stream reports whether t is a stream (byte-stream) transport: tcp, unix.
func (t Target) Stream() bool { return t.Network == "tcp" || t.Network == "unix" }

// Mode is how a message is handed to SendAsync: ModeBuffer (one buffer,
// Args.SetBuffer, IORING_OP_SEND) or ModeBufferList (Config.Segments
// buffers, Args.SetBufferList, IORING_OP_SENDMSG).
type Mode string

// The Modes.
const (
	ModeBuffer     Mode = "buffer"
	ModeBufferList Mode = "bufferlist"
)

// Set implements flag.Value.
func (m *Mode) Set(s string) error { return setChoice(m, s, "mode", ModeBuffer, ModeBufferList) }

func (m Mode) String() string { return string(m) }

// Switch is a setting that is auto, on or off: ZeroCopy and Batching.
type Switch string

// The Switch values.
const (
	SwitchAuto Switch = "auto"
	SwitchOn   Switch = "on"
	SwitchOff  Switch = "off"
)

// Set implements flag.Value. Its error leaves naming the flag to the
// flag package ("invalid value "x" for flag -zerocopy: want auto, on or off").
func (w *Switch) Set(s string) error { return setChoice(w, s, "", SwitchAuto, SwitchOn, SwitchOff) }

func (w Switch) String() string { return string(w) }

// ZeroCopy asks for IORING_OP_SEND_ZC: ZeroCopyAuto (above a size
// threshold, where the engine supports it), ZeroCopyOn, ZeroCopyOff.
type ZeroCopy = Switch

// The ZeroCopy settings.
const (
	ZeroCopyAuto = SwitchAuto
	ZeroCopyOn   = SwitchOn
	ZeroCopyOff  = SwitchOff
)

// Batching is the -batching switch: auto, on or off (see Config.Batching).
type Batching = Switch

// Batching values.
const (
	BatchingAuto = SwitchAuto
	BatchingOn   = SwitchOn
	BatchingOff  = SwitchOff
)

// Backend names the engine backend, as socket.EngineConfig.Backend takes
// it: BackendAuto (io_uring, or epoll where io_uring is refused),
// BackendIOURing (fail without io_uring), BackendEpoll.
type Backend string

// The Backends (the values of socket.BackendAuto, BackendIOURing and
// BackendEpoll).
const (
	BackendAuto    Backend = "auto"
	BackendIOURing Backend = "io_uring"
	BackendEpoll   Backend = "epoll"
)

// Set implements flag.Value.
func (b *Backend) Set(s string) error {
	return setChoice(b, s, "backend", BackendAuto, BackendIOURing, BackendEpoll)
}

func (b Backend) String() string { return string(b) }

// setChoice sets *dst to s if s is one of choices, else says what it wants:
// `bad backend "dpdk": want auto, io_uring or epoll` (what "": `want ...`).
func setChoice[T ~string](dst *T, s, what string, choices ...T) error {
	for _, c := range choices {
		if T(s) == c {
			*dst = c
			return nil
		}
	}
	want := ""
	for i, c := range choices {
		switch {
		case i == 0:
		case i == len(choices)-1:
			want += " or "
		default:
			want += ", "
		}
		want += string(c)
	}
	if what == "" {
		return fmt.Errorf("want %s", want)
	}
	return fmt.Errorf("bad %s %q: want %s", what, s, want)
}

// BitRate is a number of bits per second: "10Gbit/s", "500Mbit/s",
// "1.5Gbit/s", "64kbit/s", "1e9" (SI prefixes k, M, G, T; "bps" for
// "bit/s" too). Zero means none.
type BitRate float64

// ParseBitRate parses s as a BitRate.
func ParseBitRate(s string) (BitRate, error) {
	t := strings.TrimSpace(s)
	num, ok := strings.CutSuffix(t, "bit/s")
	if !ok {
		num, _ = strings.CutSuffix(t, "bps")
	}
	num = strings.TrimSpace(num)
	mult := 1.0
	if n := len(num); n > 0 {
		switch num[n-1] {
		case 'k', 'K':
			mult, num = 1e3, num[:n-1]
		case 'M':
			mult, num = 1e6, num[:n-1]
		case 'G':
			mult, num = 1e9, num[:n-1]
		case 'T':
			mult, num = 1e12, num[:n-1]
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || strings.ContainsAny(num, "xXpP_") || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("bad bit rate %q: want e.g. 10Gbit/s, 500Mbit/s", s)
	}
	if f*mult > 1e15 {
		return 0, fmt.Errorf("bad bit rate %q: too large", s)
	}
	return BitRate(f * mult), nil
}

// IsBitRate reports whether s is written as a bit rate ("10Gbit/s",
// "1Gbps") rather than a message rate.
func IsBitRate(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasSuffix(s, "bit/s") || strings.HasSuffix(s, "bps")
}

// Set implements flag.Value.
func (b *BitRate) Set(s string) error {
	v, err := ParseBitRate(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String returns b as "10Gbit/s", or "0".
func (b BitRate) String() string {
	if b == 0 {
		return "0"
	}
	return formatSI(float64(b)) + "bit/s"
}

// Addrs is a list of IP addresses, comma-separated; as a flag each use
// adds one (or a comma-separated few). The zero Addrs is empty. It is a
// string so that Config stays comparable.
type Addrs string

// List returns the addresses.
func (a Addrs) List() []string {
	if a == "" {
		return nil
	}
	return strings.Split(string(a), ",")
}

// Set implements flag.Value: it adds s.
func (a *Addrs) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			return fmt.Errorf("bad address list %q", s)
		}
		if *a != "" {
			*a += ","
		}
		*a += Addrs(p)
	}
	return nil
}

func (a Addrs) String() string { return string(a) }
