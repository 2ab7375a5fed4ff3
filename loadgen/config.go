package loadgen

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// Config describes a run: what to send, where, how hard and for how long.
// DefaultConfig returns the defaults; ParseRunFlags fills a Config from
// the command line of "uringsend run". Run validates it.
type Config struct {
	// Target is where to send: tcp://host:port, udp://host:port or
	// unix:///path. The zero Target starts an embedded sink on a loopback
	// TCP port for the length of the run (the demo).
	Target Target
	// Conns is the number of connections (default 8).
	Conns int
	// Size is the size of one message in bytes (default 64). With Verify
	// it must hold the header: at least HeaderSize.
	Size Size
	// Mode is ModeBuffer (SetBuffer) or ModeBufferList (SetBufferList of
	// Segments pieces).
	Mode Mode
	// Segments is the number of buffers of a BufferList message, 1 to 1024;
	// 0 means 4 (or Size, if smaller). Only with ModeBufferList.
	Segments int
	// Inflight is the number of sends in flight per connection: the
	// closed loop's concurrency, and in the open loop the most a
	// connection may have outstanding before the pacer waits (the wait
	// counts as latency). 0 means: as many as Window holds (at least
	// MinWindowInflight, at most MaxWindowInflight); DefaultOpenInflight
	// with a Rate; 1 for RR.
	Inflight int
	// Window is the bytes a connection keeps in flight in the closed loop
	// when Inflight is 0 (default DefaultWindow): small messages get many
	// sends in flight, large ones few, so one connection fills the wire
	// without tuning. A set Inflight pins the number instead.
	Window Size
	// RR makes the run a request–response run ("uringsend rr"): each
	// connection sends a message and waits until the same number of bytes
	// has come back (an echo peer: "uringsend sink -echo", socat PIPE),
	// checks them against what it sent, and only then sends the next.
	// Latency is then the round trip. One request is in flight per
	// connection (Inflight 1).
	RR bool
	// Rate is the total number of messages per second over all
	// connections: the open loop. Latency is measured from each message's
	// intended send time, so a stall is not hidden by the sends it delays
	// (coordinated omission, corrected as wrk2 does). 0: closed loop.
	Rate Rate
	// RateBits is Rate given in bits per second ("-rate 10Gbit/s"):
	// Validate sets Rate to RateBits / (8 × Size).
	RateBits BitRate
	// Duration is how long to send; 0 means until Messages are sent.
	Duration time.Duration
	// Messages is the total number of messages to send; 0 means until
	// Duration has passed. With both, whichever comes first ends the run.
	Messages Count
	// ZeroCopy is the engine's zero-copy mode (socket.EngineConfig.ZeroCopy):
	// auto sends wires of 16 KiB and more with SEND_ZC to non-loopback
	// peers; on uses it on loopback too; off never.
	ZeroCopy ZeroCopy
	// Shards splits one load over N generators (a Kubernetes Indexed Job's
	// pods, say): this one sends its share, ShardIndex of Shards, of Rate
	// and Messages (the remainder of Messages goes to the lowest indices).
	// 0 or 1: one generator. ParseRunFlags takes ShardIndex from the
	// environment variable JOB_COMPLETION_INDEX unless -shard-index is set.
	Shards     int
	ShardIndex int
	// Batching puts connections in socket.WithBatching mode: sends queue
	// and leave coalesced, many per SENDMSG on a stream, a run of
	// equal-size datagrams per UDP GSO sendmsg on UDP. BatchingAuto (default)
	// turns it on when Inflight > 1 in the closed loop, where many sends
	// are in flight per connection anyway; with Inflight 1 each send goes
	// out inline and usually completes synchronously.
	Batching Batching
	// Backend selects the engine backend (default BackendAuto).
	Backend Backend
	// MetricsAddr is where to serve Prometheus metrics (host:port); empty:
	// off. If it is DefaultMetricsAddr and that port is taken, Run serves on
	// a free port of the same host instead and says so.
	MetricsAddr string
	// Interval is the period of the status line on the status writer;
	// 0: no status line.
	Interval time.Duration
	// JSON asks the command for the report as JSON (Run ignores it).
	JSON bool
	// Verify puts a header in every message — stream id, per-connection
	// sequence number, CRC-32C of the message — for a sink run with Verify
	// to check order and integrity. In the closed loop, sends of one
	// connection are then issued by one goroutine (Completed hands the
	// slot back to it) so that sequence order is wire order.
	Verify bool
	// DialTimeout bounds each connection attempt (default 5s).
	DialTimeout time.Duration
	// DrainTimeout is how long to wait, after the last send was started,
	// for the sends in flight to complete before the connections are
	// closed and what is left is aborted (default 5s).
	DrainTimeout time.Duration
	// Omit leaves the first Omit of the run out of the report's counts,
	// rates and latencies (warm-up); the messages omitted are reported
	// apart.
	Omit time.Duration
	// JSONStream asks for one JSON object per Interval on the report's
	// writer (NDJSON), then the report as one line.
	JSONStream bool
	// MaxP99 and MaxErrors are pass/fail thresholds: a run whose p99
	// latency is above MaxP99 (0: no threshold), or that has more than
	// MaxErrors errors (-1: no threshold), fails with ExitThreshold.
	MaxP99    time.Duration
	MaxErrors int64
	// DialRetries is how many times a connection that cannot be
	// established is tried again (with backoff from 10 ms to 1 s) before
	// it counts as failed; the run goes on with the connections that
	// were established and fails only when none was.
	DialRetries int
	// ConnectRate bounds how many connections are established per
	// second (0: as fast as they go, 32 at a time).
	ConnectRate Rate
	// ConnLifetime, if set, replaces each connection after about that
	// long (one position every ConnLifetime/Conns): the new connection is
	// dialed, the old one sends no more and is closed once its sends in
	// flight are done. For connection-churn tests; the connect latency of
	// every dial is in the report.
	ConnLifetime time.Duration
	// Socket options, set on every connection before it connects: source
	// addresses (Bind, comma-separated; connections take them in turn),
	// SO_SNDBUF (0: the kernel's), Nagle (TCP_NODELAY off; Go turns it
	// on by default), TCP_CONGESTION, SO_MAX_PACING_RATE (FQRate, in
	// bits per second; enforced by the fq qdisc or TCP's internal
	// pacing), IP_TOS / IPV6_TCLASS (TOS; 0: not set).
	Bind       Addrs
	SndBuf     Size
	Nagle      bool
	Congestion string
	FQRate     BitRate
	TOS        int
	// Engine settings (socket.EngineConfig): rings, SQ entries per ring,
	// the smallest wire sent with SEND_ZC. 0: the engine's default.
	Rings       int
	SQEntries   int
	ZCThreshold Size
	// StartAt, if not zero, is when sending begins: the run connects
	// (and serves its metrics) first, then waits for this instant of the
	// wall clock, so that generators on many machines start together
	// (their clocks kept by NTP or PTP). The report gives the start lag
	// and flags a start later than StartLateAfter. ParseRunFlags takes it
	// from $URINGSEND_START_AT (StartAtEnv) unless -start-at is set.
	StartAt time.Time
	// MetricsLinger keeps the metrics server up this long after the run
	// has ended (the report is then complete), so that Prometheus scrapes
	// the final counts of a process that exits afterwards: without it the
	// sends of the last scrape interval are missing from the sums. A
	// signal cuts it short. Needs MetricsAddr.
	MetricsLinger time.Duration
	// SinkReport asks a "uringsend sink" target, at the end of the run,
	// for what it received from this run's connections (on unix, the
	// connections bind to abstract names for the sink to know them by);
	// the embedded sink always reports.
	SinkReport bool
}

// Defaults.
const (
	DefaultConns        = 8
	DefaultSize         = Size(64)
	DefaultSegments     = 4
	DefaultInflight     = 8 // with -rate: DefaultOpenInflight
	DefaultOpenInflight = 64
	DefaultWindow       = Size(256 << 10)
	MinWindowInflight   = 2
	MaxWindowInflight   = 1024
	DefaultDialRetries  = 3
	DefaultDuration     = 10 * time.Second
	DefaultInterval     = time.Second
	DefaultDialTimeout  = 5 * time.Second
	DefaultDrainTimeout = 5 * time.Second
	// DefaultMetricsAddr is the no-argument demo's metrics address: loopback
	// only, on the port registered for OpenTelemetry's Prometheus exporter.
	DefaultMetricsAddr = "127.0.0.1:9464"
)

// Limits.
const (
	MaxConns    = 100000
	MaxInflight = 65536
	MaxSize     = Size(64 << 20)
	MaxSegments = 1024  // IOV_MAX
	MaxUDPSize  = 65507 // IPv4 UDP payload
	// MaxSlots bounds Conns × Inflight: the Args preallocated.
	MaxSlots = 1 << 22
	// MaxVerifyMemory bounds the buffers of a run with Verify, where every
	// slot has its own (without Verify all slots share one).
	MaxVerifyMemory = Size(2 << 30)
)

// DefaultConfig returns the configuration of "uringsend run" without
// flags: the embedded sink, 8 connections, 64-byte messages, a 256 KiB
// window of sends in flight per connection (1024 sends of 64 B), 10 s.
func DefaultConfig() Config {
	return Config{
		Conns:        DefaultConns,
		Size:         DefaultSize,
		Mode:         ModeBuffer,
		Duration:     DefaultDuration,
		ZeroCopy:     ZeroCopyAuto,
		Batching:     BatchingAuto,
		Backend:      BackendAuto,
		Interval:     DefaultInterval,
		DialTimeout:  DefaultDialTimeout,
		DrainTimeout: DefaultDrainTimeout,
		Window:       DefaultWindow,
		MaxErrors:    -1,
		DialRetries:  DefaultDialRetries,
	}
}

// ConfigError is a Config that cannot run: a bad flag or an impossible
// combination. The command answers it with the usage and exit status 2.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

func configErrorf(format string, args ...any) error {
	return &ConfigError{Msg: fmt.Sprintf(format, args...)}
}

// IsConfigError reports whether err is a ConfigError.
func IsConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

// Validate checks c and fills in the values whose zero means a default
// (Segments, Inflight, Mode, ZeroCopy, Backend, timeouts). Errors are
// ConfigErrors.
func (c *Config) Validate() error {
	if c.Mode == "" {
		c.Mode = ModeBuffer
	}
	if c.ZeroCopy == "" {
		c.ZeroCopy = ZeroCopyAuto
	}
	if c.Batching == "" {
		c.Batching = BatchingAuto
	}
	if c.Backend == "" {
		c.Backend = BackendAuto
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.RateBits > 0 && c.Size > 0 {
		c.Rate = Rate(float64(c.RateBits) / (8 * float64(c.Size)))
	}
	switch {
	case !c.Target.IsZero() && c.Target.Network != "tcp" && c.Target.Network != "udp" && c.Target.Network != "unix":
		return configErrorf("-target: unknown network %q", c.Target.Network)
	case c.Conns < 1 || c.Conns > MaxConns:
		return configErrorf("-conns %d: want 1 to %d", c.Conns, MaxConns)
	case c.Size < 1 || c.Size > MaxSize:
		return configErrorf("-size %v: want 1B to %v", c.Size, MaxSize)
	case c.Verify && c.Size < HeaderSize:
		return configErrorf("-size %v: -verify needs at least %dB for its header", c.Size, HeaderSize)
	case c.Target.Network == "udp" && c.Size > MaxUDPSize:
		return configErrorf("-size %v: a UDP datagram holds at most %d bytes", c.Size, MaxUDPSize)
	case c.Mode != ModeBuffer && c.Mode != ModeBufferList:
		return configErrorf("-mode %q: want buffer or bufferlist", c.Mode)
	case c.Segments != 0 && c.Mode != ModeBufferList:
		return configErrorf("-segments needs -mode bufferlist")
	case c.Segments < 0 || c.Segments > MaxSegments:
		return configErrorf("-segments %d: want 1 to %d", c.Segments, MaxSegments)
	case c.Segments > 0 && Size(c.Segments) > c.Size:
		return configErrorf("-segments %d: more segments than the %v of a message", c.Segments, c.Size)
	case c.Inflight < 0 || c.Inflight > MaxInflight:
		return configErrorf("-inflight %d: want 1 to %d", c.Inflight, MaxInflight)
	case c.Rate < 0 || c.RateBits < 0:
		return configErrorf("-rate %v: negative", c.Rate)
	case c.Duration < 0:
		return configErrorf("-duration %v: negative", c.Duration)
	case c.Duration == 0 && c.Messages == 0:
		return configErrorf("nothing ends the run: set -duration or -messages")
	case c.Interval < 0:
		return configErrorf("-interval %v: negative", c.Interval)
	case c.Interval > 0 && c.Interval < 10*time.Millisecond:
		return configErrorf("-interval %v: at least 10ms", c.Interval)
	case c.ZeroCopy != ZeroCopyAuto && c.ZeroCopy != ZeroCopyOn && c.ZeroCopy != ZeroCopyOff:
		return configErrorf("-zerocopy %q: want auto, on or off", c.ZeroCopy)
	case c.Batching != BatchingAuto && c.Batching != BatchingOn && c.Batching != BatchingOff:
		return configErrorf("-batching %q: want auto, on or off", c.Batching)
	case c.Backend != BackendAuto && c.Backend != BackendIOURing && c.Backend != BackendEpoll:
		return configErrorf("-backend %q: want auto, io_uring or epoll", c.Backend)
	case c.DialTimeout < 0 || c.DrainTimeout < 0:
		return configErrorf("negative timeout")
	case c.Shards < 0 || c.Shards > MaxConns:
		return configErrorf("-shards %d: want 1 to %d", c.Shards, MaxConns)
	case c.ShardIndex < 0 || c.ShardIndex >= max(c.Shards, 1):
		return configErrorf("-shard-index %d: want 0 to %d", c.ShardIndex, max(c.Shards, 1)-1)
	case c.Window < 0 || c.Window > MaxSize:
		return configErrorf("-window %v: want 1B to %v", c.Window, MaxSize)
	case c.RR && c.Inflight > 1:
		return configErrorf("-inflight %d: rr keeps one request in flight per connection", c.Inflight)
	case c.RR && c.Target.Network == "udp":
		return configErrorf("-target %v: rr needs a stream (tcp or unix)", c.Target)
	case c.RR && c.Verify:
		return configErrorf("-verify: rr checks every echoed byte already")
	case c.Omit < 0 || (c.Duration > 0 && c.Omit >= c.Duration):
		return configErrorf("-omit %v: want 0 to less than -duration", c.Omit)
	case c.JSONStream && c.Interval == 0:
		return configErrorf("-json-stream needs an -interval")
	case c.MaxP99 < 0:
		return configErrorf("-max-p99 %v: negative", c.MaxP99)
	case c.DialRetries < 0 || c.DialRetries > 100:
		return configErrorf("-dial-retries %d: want 0 to 100", c.DialRetries)
	case c.ConnLifetime < 0 || (c.ConnLifetime > 0 && c.ConnLifetime < 10*time.Millisecond):
		return configErrorf("-conn-lifetime %v: at least 10ms", c.ConnLifetime)
	case c.ConnectRate < 0:
		return configErrorf("-connect-rate %v: negative", c.ConnectRate)
	case c.SndBuf < 0 || c.SndBuf > 1<<30:
		return configErrorf("-sndbuf %v: want 0 to 1GiB", c.SndBuf)
	case c.FQRate < 0:
		return configErrorf("-fq-rate %v: negative", c.FQRate)
	case c.TOS < 0 || c.TOS > 255:
		return configErrorf("-tos %d: want 0 to 255", c.TOS)
	case (c.Congestion != "" || c.Nagle) && c.Target.Network != "" && c.Target.Network != "tcp":
		return configErrorf("-congestion and -nodelay apply to tcp targets only")
	case c.Rings < 0 || c.Rings > 64:
		return configErrorf("-rings %d: want 1 to 64", c.Rings)
	case c.SQEntries < 0 || c.SQEntries == 1 || c.SQEntries > 32768:
		return configErrorf("-sq-entries %d: want 2 to 32768", c.SQEntries)
	case c.ZCThreshold < 0 || c.ZCThreshold > MaxSize:
		return configErrorf("-zc-threshold %v: want 1B to %v", c.ZCThreshold, MaxSize)
	case c.MetricsLinger < 0:
		return configErrorf("-metrics-linger %v: negative", c.MetricsLinger)
	case c.MetricsLinger > 0 && c.MetricsAddr == "":
		return configErrorf("-metrics-linger %v: needs -metrics-addr", c.MetricsLinger)
	case c.Shards > 1 && c.Messages > 0 && uint64(c.Messages) < uint64(c.Shards):
		return configErrorf("-messages %v over -shards %d: fewer messages than generators", c.Messages, c.Shards)
	}
	if c.Target.Network == "tcp" || c.Target.Network == "udp" {
		host, port, err := net.SplitHostPort(c.Target.Address)
		if err != nil || host == "" || port == "0" {
			return configErrorf("-target %v: a run needs a host and a port other than 0", c.Target)
		}
	}
	if c.Mode == ModeBufferList && c.Segments == 0 {
		c.Segments = int(min(Size(DefaultSegments), c.Size))
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Inflight == 0 {
		c.Inflight = c.windowInflight()
	}
	if slots := int64(c.Conns) * int64(c.Inflight); slots > MaxSlots {
		return configErrorf("-conns %d × -inflight %d: more than %d sends in flight", c.Conns, c.Inflight, MaxSlots)
	} else if c.Verify && slots*int64(c.Size) > int64(MaxVerifyMemory) {
		return configErrorf("-verify gives every send in flight its own buffer: -conns %d × -inflight %d × -size %v is more than %v",
			c.Conns, c.Inflight, c.Size, MaxVerifyMemory)
	}
	for _, a := range c.Bind.List() {
		if _, err := netip.ParseAddr(a); err != nil {
			return configErrorf("-bind %q: want an IP address", a)
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return configErrorf("-metrics-addr %q: want host:port", c.MetricsAddr)
		}
	}
	return nil
}

// RunUsage is the synopsis of "uringsend run".
const RunUsage = `usage: uringsend run [flags]

Sends messages through the uringsend engine and reports throughput,
send-completion latency, how many sends completed synchronously and what
it cost: CPU, and system calls per message (io_uring_enter calls and SQEs
per enter on io_uring; sendmsg/sendto calls and the share that would
block, EAGAIN, on epoll).

Examples:
  uringsend run                                    # 10 s against an embedded sink
  uringsend run -target tcp://10.0.0.2:9000 -conns 16 -size 1KiB
  uringsend run -target udp://127.0.0.1:9000 -rate 50k/s -duration 30s
  uringsend run -target tcp://10.0.0.2:9000 -size 128KiB -rate 10Gbit/s -omit 2s -json-stream
  uringsend run -target unix:///run/sink.sock -mode bufferlist -segments 8 -size 128KiB
  uringsend run -target tcp://127.0.0.1:9000 -messages 1M -verify -sink-report -json
  uringsend run -target tcp://10.0.0.2:9000 -shards 3 -shard-index 0 -start-at 2026-12-03T11:10:00Z -json > r0.json
  uringsend merge r0.json r1.json r2.json          # one report, exact percentiles

Flags:
`

// RRUsage is the synopsis of "uringsend rr".
const RRUsage = `usage: uringsend rr -target URL [flags]

Request–response: each connection sends a message and waits for the same
number of bytes to come back from an echo peer ("uringsend sink -echo",
socat PIPE, ...), checks every byte, and sends the next. Reports
round-trip latency, transactions per second and what it cost (CPU;
io_uring_enter, or sendmsg/sendto and recvfrom, calls per request). The flags
are run's; one request is in flight per connection; -rate makes the loop
open (latency from each request's due time).

Examples:
  uringsend sink -listen tcp://127.0.0.1:9000 -echo &
  uringsend rr -target tcp://127.0.0.1:9000 -size 64 -duration 10s
  uringsend rr -target tcp://127.0.0.1:9000 -conns 50 -rate 100k/s -max-p99 1ms

Flags:
`

// rateFlag is -rate: messages per second ("50k/s") or bits per second
// ("10Gbit/s", into RateBits).
type rateFlag struct{ c *Config }

func (f rateFlag) String() string {
	if f.c == nil {
		return "0"
	}
	if f.c.RateBits > 0 {
		return f.c.RateBits.String()
	}
	return f.c.Rate.String()
}

func (f rateFlag) Set(s string) error {
	if IsBitRate(s) {
		f.c.Rate = 0
		return f.c.RateBits.Set(s)
	}
	f.c.RateBits = 0
	return f.c.Rate.Set(s)
}

// nagleFlag is -nodelay: true (the default) leaves TCP_NODELAY on.
type nagleFlag struct{ c *Config }

func (f nagleFlag) String() string   { return strconv.FormatBool(f.c == nil || !f.c.Nagle) }
func (f nagleFlag) IsBoolFlag() bool { return true }
func (f nagleFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	f.c.Nagle = !v
	return nil
}

// NewRunFlagSet returns the flag set of "uringsend run" (and rr), writing
// into c (whose current values are the defaults shown). Errors are
// returned, not printed: the caller prints one line and the usage.
func NewRunFlagSet(name string, c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&c.Target, "target", "where to send: tcp://host:port, udp://host:port or unix:///path (empty: an embedded sink on loopback)")
	fs.IntVar(&c.Conns, "conns", c.Conns, "number of connections")
	fs.Var(&c.Size, "size", "message size: 64, 1KiB, 128KiB, 1MiB, ...")
	fs.Var(&c.Mode, "mode", "buffer (SetBuffer) or bufferlist (SetBufferList)")
	fs.IntVar(&c.Segments, "segments", c.Segments, "buffers per message with -mode bufferlist, 1 to 1024 (default 4)")
	fs.IntVar(&c.Inflight, "inflight", c.Inflight, fmt.Sprintf("sends in flight per connection, 1 to %d (default: what -window holds; %d with -rate; 1 for rr)", MaxInflight, DefaultOpenInflight))
	fs.Var(&c.Window, "window", fmt.Sprintf("bytes in flight per connection when -inflight is not set: -window/-size sends, %d to %d", MinWindowInflight, MaxWindowInflight))
	fs.Var(rateFlag{c}, "rate", "total messages per second, e.g. 50k/s, or bits per second, e.g. 10Gbit/s (open loop; default: closed loop)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long to send (0: until -messages are sent)")
	fs.Var(&c.Messages, "messages", "total messages to send, e.g. 1M (ends the run; without -duration, the only limit)")
	fs.DurationVar(&c.Omit, "omit", c.Omit, "leave the first part of the run out of counts, rates and latencies (warm-up)")
	fs.Var(&c.ZeroCopy, "zerocopy", "SEND_ZC: auto, on or off")
	fs.IntVar(&c.Shards, "shards", c.Shards, "split -rate and -messages over this many generators (default 1; needs -shard-index or $JOB_COMPLETION_INDEX)")
	fs.IntVar(&c.ShardIndex, "shard-index", c.ShardIndex, "this generator's share, 0 to -shards-1 (default: $JOB_COMPLETION_INDEX)")
	fs.Var(&c.Batching, "batching", "coalesce queued sends: auto (on when -inflight > 1 in the closed loop), on or off")
	fs.Var(&c.Backend, "backend", "engine backend: auto, io_uring or epoll")
	fs.IntVar(&c.Rings, "rings", c.Rings, "io_uring instances of the engine (default 1)")
	fs.IntVar(&c.SQEntries, "sq-entries", c.SQEntries, "SQ entries per ring (default 256)")
	fs.Var(&c.ZCThreshold, "zc-threshold", "smallest send that goes out with SEND_ZC (default 16KiB)")
	fs.Var(&c.Bind, "bind", "source IP address; repeat (or comma-separate) for several, taken in turn")
	fs.Var(&c.SndBuf, "sndbuf", "SO_SNDBUF of each connection (default: the kernel's)")
	fs.Var(nagleFlag{c}, "nodelay", "TCP_NODELAY, on by default as Go sets it (-nodelay=false: Nagle's algorithm)")
	fs.StringVar(&c.Congestion, "congestion", c.Congestion, "TCP_CONGESTION, e.g. cubic, bbr, reno (default: the system's)")
	fs.Var(&c.FQRate, "fq-rate", "SO_MAX_PACING_RATE per connection, e.g. 1Gbit/s (default: none)")
	fs.IntVar(&c.TOS, "tos", c.TOS, "IP_TOS / IPV6_TCLASS byte, e.g. 0x10 (default: not set)")
	fs.DurationVar(&c.DialTimeout, "dial-timeout", c.DialTimeout, "bound of each connection attempt")
	fs.IntVar(&c.DialRetries, "dial-retries", c.DialRetries, "attempts after a failed dial, with backoff; the run fails only if no connection is made")
	fs.DurationVar(&c.ConnLifetime, "conn-lifetime", c.ConnLifetime, "replace each connection after this long (connection churn; default: never)")
	fs.Var(&c.ConnectRate, "connect-rate", "connections established per second, e.g. 1k/s (default: 32 at a time, unpaced)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "after sending stops (end or first Ctrl-C), how long to wait for sends in flight")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "serve Prometheus metrics on host:port (empty: off)")
	fs.DurationVar(&c.MetricsLinger, "metrics-linger", c.MetricsLinger, "keep serving metrics this long after the run, for a last scrape of the final counts")
	fs.Var(startAtFlag{&c.StartAt}, "start-at", "connect, then start sending at this time: RFC 3339 (2026-12-03T11:10:00Z) or unix seconds (default: at once, or $"+StartAtEnv+")")
	fs.DurationVar(&c.Interval, "interval", c.Interval, "status line period (0: none)")
	fs.BoolVar(&c.JSON, "json", c.JSON, "print only the report, as JSON, on stdout")
	fs.BoolVar(&c.JSONStream, "json-stream", c.JSONStream, "print one JSON object per -interval on stdout (NDJSON), then the report as one line")
	fs.DurationVar(&c.MaxP99, "max-p99", c.MaxP99, fmt.Sprintf("fail (exit %d) if the p99 latency is above this (default: no threshold)", ExitThreshold))
	fs.Int64Var(&c.MaxErrors, "max-errors", c.MaxErrors, fmt.Sprintf("fail (exit %d) if there are more errors than this (-1: no threshold)", ExitThreshold))
	fs.BoolVar(&c.Verify, "verify", c.Verify, "stamp messages with a sequence number and checksum for a -verify sink")
	fs.BoolVar(&c.SinkReport, "sink-report", c.SinkReport, "ask a uringsend sink target what it received from this run, for the report")
	return fs
}

// ExitThreshold is the exit status of a run that broke -max-p99 or
// -max-errors.
const ExitThreshold = 3

// ParseRunFlags parses the arguments of "uringsend run" over defaults
// and validates the result. A -messages without -duration removes the
// default duration. Errors are ConfigErrors, or flag.ErrHelp.
func ParseRunFlags(args []string, defaults Config) (Config, error) {
	c := defaults
	fs := NewRunFlagSet("run", &c)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, &ConfigError{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return c, configErrorf("unexpected argument %q (flags only; the target is -target)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["messages"] && !set["duration"] {
		c.Duration = 0
	}
	// Zero means "the default" in a Config; on the command line it is a
	// mistake, as -conns 0 is.
	for _, z := range []struct {
		name string
		v    int64
	}{{"inflight", int64(c.Inflight)}, {"segments", int64(c.Segments)}, {"window", int64(c.Window)}, {"rings", int64(c.Rings)},
		{"sq-entries", int64(c.SQEntries)}, {"zc-threshold", int64(c.ZCThreshold)}, {"dial-timeout", int64(c.DialTimeout)},
		{"drain-timeout", int64(c.DrainTimeout)}} {
		if set[z.name] && z.v == 0 {
			return c, configErrorf("-%s 0: must be positive", z.name)
		}
	}
	if c.Shards > 1 && !set["shard-index"] {
		idx, ok := os.LookupEnv(ShardIndexEnv)
		if !ok {
			return c, configErrorf("-shards %d: say which share is this generator's with -shard-index or $%s", c.Shards, ShardIndexEnv)
		}
		i, err := strconv.Atoi(idx)
		if err != nil {
			return c, configErrorf("$%s %q: not a number", ShardIndexEnv, idx)
		}
		c.ShardIndex = i
	}
	if !set["start-at"] {
		if v := os.Getenv(StartAtEnv); v != "" {
			t, err := ParseStartAt(v)
			if err != nil {
				return c, configErrorf("-start-at from $%s: %v", StartAtEnv, err)
			}
			c.StartAt = t
		}
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// RunFlagUsage writes the flag defaults of "uringsend run" to w.
func RunFlagUsage(w io.Writer) {
	c := DefaultConfig()
	fs := NewRunFlagSet("run", &c)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// SinkConfig describes a sink: a receiver that counts what it is sent
// and, with Verify, checks it.
type SinkConfig struct {
	// Listen is where to listen: tcp://host:port, udp://host:port or
	// unix:///path; port 0 picks a free port.
	Listen Target
	// Verify checks the header of every message (see Config.Verify):
	// integrity (CRC-32C), and order per stream.
	Verify bool
	// Interval is the period of the receive-rate lines on the status
	// writer; 0: none.
	Interval time.Duration
	// JSON asks the command for the summary as JSON (RunSink ignores it).
	JSON bool
	// MaxSize is the largest message a verifying sink accepts (default
	// MaxSize).
	MaxSize Size
	// MetricsAddr is where to serve the sink's Prometheus metrics
	// (uringsend_sink_*); empty: off.
	MetricsAddr string
	// Echo writes every byte received on a stream connection back to
	// its sender: the peer of "uringsend rr".
	Echo bool
}

// SinkUsage is the synopsis of "uringsend sink".
const SinkUsage = `usage: uringsend sink -listen URL [flags]

Accepts any number of connections (or datagrams), counts what arrives,
prints receive rates and, on SIGINT or SIGTERM, a summary with its cost:
CPU and read calls. The sink reads with Go's net package, not the engine.

Examples:
  uringsend sink -listen tcp://0.0.0.0:9000
  uringsend sink -listen udp://127.0.0.1:9000 -verify
  uringsend sink -listen unix:///run/sink.sock -json
  uringsend sink -listen tcp://127.0.0.1:9000 -echo     # for uringsend rr

Flags:
`

// NewSinkFlagSet returns the flag set of "uringsend sink", writing into c.
func NewSinkFlagSet(name string, c *SinkConfig) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&c.Listen, "listen", "where to listen: tcp://host:port, udp://host:port or unix:///path (port 0: any)")
	fs.BoolVar(&c.Verify, "verify", c.Verify, "check the sequence and checksum of messages from a run with -verify")
	fs.DurationVar(&c.Interval, "interval", c.Interval, "receive-rate line period (0: none)")
	fs.BoolVar(&c.JSON, "json", c.JSON, "print only the summary, as JSON, on stdout")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "serve Prometheus metrics on host:port (empty: off)")
	fs.BoolVar(&c.Echo, "echo", c.Echo, "write what arrives back to its sender (the peer of uringsend rr; tcp and unix)")
	return fs
}

// ParseSinkFlags parses the arguments of "uringsend sink".
func ParseSinkFlags(args []string) (SinkConfig, error) {
	c := SinkConfig{Interval: DefaultInterval}
	fs := NewSinkFlagSet("sink", &c)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, &ConfigError{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return c, configErrorf("unexpected argument %q", fs.Arg(0))
	}
	return c, c.Validate()
}

// SinkFlagUsage writes the flag defaults of "uringsend sink" to w.
func SinkFlagUsage(w io.Writer) {
	c := SinkConfig{Interval: DefaultInterval}
	fs := NewSinkFlagSet("sink", &c)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// Validate checks c and fills in defaults.
func (c *SinkConfig) Validate() error {
	if c.Listen.IsZero() {
		return configErrorf("-listen is required (tcp://host:port, udp://host:port or unix:///path)")
	}
	if c.Interval < 0 {
		return configErrorf("-interval %v: negative", c.Interval)
	}
	if c.Echo && !c.Listen.Stream() {
		return configErrorf("-echo: a stream (tcp or unix) only")
	}
	if c.MaxSize == 0 {
		c.MaxSize = MaxSize
	}
	return nil
}

// windowInflight is the number of sends in flight per connection when
// -inflight is not set: DefaultOpenInflight in the open loop, 1 for rr,
// else as many messages as Window holds (MinWindowInflight to
// MaxWindowInflight), fewer if Conns of them would be more than MaxSlots,
// or more than MaxVerifyMemory with Verify.
func (c *Config) windowInflight() int {
	switch {
	case c.RR:
		return 1
	case c.Rate > 0:
		return DefaultOpenInflight
	}
	n := int((c.Window + c.Size - 1) / max(c.Size, 1))
	n = min(max(n, MinWindowInflight), MaxWindowInflight, max(MaxSlots/max(c.Conns, 1), 1))
	if c.Verify && c.Size > 0 {
		n = min(n, max(int(int64(MaxVerifyMemory)/(int64(c.Conns)*int64(c.Size))), 1))
	}
	return n
}

// batching reports whether connections run in socket.WithBatching mode.
func (c *Config) batching() bool {
	switch c.Batching {
	case BatchingOn:
		return true
	case BatchingOff:
		return false
	}
	return c.Inflight > 1 && c.Rate == 0
}

// ShardIndexEnv is where a Kubernetes Indexed Job tells each pod its index.
const ShardIndexEnv = "JOB_COMPLETION_INDEX"

// sharded returns c with Rate and Messages cut to this generator's share.
func (c Config) sharded() Config {
	if c.Shards <= 1 {
		return c
	}
	n := uint64(c.Shards)
	c.Rate /= Rate(n)
	if m := uint64(c.Messages); m > 0 {
		share := m / n
		if uint64(c.ShardIndex) < m%n {
			share++
		}
		c.Messages = Count(share)
	}
	return c
}
