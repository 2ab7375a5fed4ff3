package proxy

import (
	"errors"
	"flag"
	"fmt"
	"github.com/uringsend/uringsend/internal/units"
	"net"
	"strconv"
	"time"

	"github.com/uringsend/uringsend/socket"
)

// Config configures a Proxy. Fill it with DefaultConfig and RegisterFlags
// (or by hand), then check it with Validate; New validates it again.
type Config struct {
	// Listen is the TCP address to accept clients on, "host:port"; port 0
	// picks a free port (Proxy.Addr tells which).
	Listen string
	// Upstream is the TCP address dialed for every client, "host:port".
	Upstream string
	// MetricsAddr, when not empty, serves the engine's and the proxy's
	// Prometheus metrics at http://MetricsAddr/metrics.
	MetricsAddr string
	// Backend is the engine's backend: socket.BackendAuto, BackendIOURing
	// or BackendEpoll.
	Backend string
	// Recv is how the proxy reads: RecvEngine (the engine runs both the
	// reads and the sends: Socket.ReceiveChunks into its receive pool,
	// or ReceiveAsync into buffers of the proxy's own), RecvNet (Go's
	// net.Conn.Read, a goroutine per direction), or RecvAuto: the engine
	// on io_uring, Go's net on epoll.
	Recv string
	// RecvOwnBuffers makes receive mode engine read into buffers of the
	// proxy's own (Socket.ReceiveAsync; an idle connection holds one per
	// direction) instead of the engine's receive pool (ReceiveChunks;
	// an idle connection holds none). The proxy does so by itself on
	// kernels without multishot receive (before 6.0).
	RecvOwnBuffers bool
	// RecvPool is the number of buffers (of BufferSize) in the engine's
	// receive pool, shared by every connection of a ring (receive mode
	// engine); 0: 1024. A direction holds at most MaxInflight of them,
	// so the pool runs dry — and every connection waits until sends
	// complete or SendTimeout resets the stalled ones — only once
	// RecvPool/(MaxInflight/BufferSize) directions are backed up at
	// once. Pages are used only as buffers fill, but a busy proxy ends
	// up touching the whole pool.
	RecvPool int
	// MaxInflight bounds the bytes of buffers each direction of a
	// connection has handed to the engine and not yet got back; past it,
	// that direction stops reading until sends complete. At least
	// BufferSize. With the receive pool, on io_uring, a direction may go
	// past it by what the kernel received before it saw the stop (a few
	// buffers).
	MaxInflight Size
	// BufferSize is the size of one read (and so of the largest send),
	// and of the receive pool's buffers.
	BufferSize Size
	// SendTimeout bounds how long one send may wait on the wire for the
	// peer to read; a connection whose send times out is reset. 0: none.
	// In receive mode engine it is checked by the sweeper, so a stalled
	// connection goes up to about SendTimeout/8 (at most 1 s) later.
	SendTimeout time.Duration
	// IdleTimeout closes a connection after that long without a read in
	// either direction. 0 (the default): never. A proxy must not cut what
	// its upstream keeps open: pooled and pub/sub clients sit idle for
	// minutes, and the server (redis' timeout, 0 by default) decides when
	// they end. Like HAProxy's "timeout client", set it only to bound the
	// connections held by clients that vanished without a FIN; then make
	// it longer than any idle time the clients and the upstream allow.
	IdleTimeout time.Duration
	// DialTimeout bounds the connection to Upstream.
	DialTimeout time.Duration
}

// Defaults.
const (
	DefaultBackend     = socket.BackendAuto
	DefaultRecv        = RecvAuto
	DefaultMaxInflight = 512 << 10 // 16 buffers: the kernel's socket buffers hold the rest
	DefaultRecvPool    = 0         // the engine's: 1024 buffers a ring
	DefaultBufferSize  = 32 << 10
	DefaultSendTimeout = 30 * time.Second
	DefaultIdleTimeout = 0 // off: the upstream decides how long an idle connection lives
	DefaultDialTimeout = 10 * time.Second
)

// Receive modes (Config.Recv).
const (
	RecvAuto   = "auto"
	RecvEngine = "engine"
	RecvNet    = "net"
)

// DefaultConfig returns a Config with every default filled in and no
// addresses.
func DefaultConfig() Config {
	return Config{
		Backend:     DefaultBackend,
		Recv:        DefaultRecv,
		MaxInflight: DefaultMaxInflight,
		RecvPool:    DefaultRecvPool,
		BufferSize:  DefaultBufferSize,
		SendTimeout: DefaultSendTimeout,
		IdleTimeout: DefaultIdleTimeout,
		DialTimeout: DefaultDialTimeout,
	}
}

// RegisterFlags defines the command-line flags of c on fs, with c's
// current values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "`address` to accept clients on, host:port (required; port 0 picks one)")
	fs.StringVar(&c.Upstream, "upstream", c.Upstream, "`address` to forward every client to, host:port (required)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "serve Prometheus metrics at http://`address`/metrics (e.g. 127.0.0.1:9465; empty: off)")
	fs.StringVar(&c.Backend, "backend", c.Backend, "send engine backend: auto, io_uring or epoll")
	fs.StringVar(&c.Recv, "recv", c.Recv, "how to read: engine (reads and sends on the engine; reads into its receive pool), net (Go's net, a goroutine per direction) or auto (engine on io_uring, net on epoll)")
	fs.BoolVar(&c.RecvOwnBuffers, "recv-own-buffers", c.RecvOwnBuffers, "-recv engine: read into buffers of the proxy's own (ReceiveAsync; an idle connection holds one per direction), not the engine's receive pool (the fallback before Linux 6.0)")
	fs.IntVar(&c.RecvPool, "recv-pool", c.RecvPool, "-recv engine: `buffers` of -buffer-size in the engine's receive pool, shared by all connections (0: 1024); the pool runs dry once recv-pool/(max-inflight/buffer-size) directions are backed up at once")
	fs.Var(&c.MaxInflight, "max-inflight", "bytes (`size`) each direction of a connection may have in flight before it stops reading (e.g. 512KiB)")
	fs.Var(&c.BufferSize, "buffer-size", "`size` of one read and of the receive pool's buffers (e.g. 32KiB)")
	fs.DurationVar(&c.SendTimeout, "send-timeout", c.SendTimeout, "reset a connection whose peer has not taken a send for this long (0: never)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "close a connection with nothing read either way for this long; 0 (the default) never does: the upstream decides how long an idle client may stay (redis pooled and pub/sub clients idle for minutes). Set it only to reclaim connections of clients that vanished, longer than any idle time the clients expect")
	fs.DurationVar(&c.DialTimeout, "dial-timeout", c.DialTimeout, "time limit for connecting to the upstream")
}

// Validate reports the first problem of c as an error of one line.
func (c *Config) Validate() error {
	if c.Listen == "" {
		return errors.New("-listen is required")
	}
	if err := checkHostPort("-listen", c.Listen, true); err != nil {
		return err
	}
	if c.Upstream == "" {
		return errors.New("-upstream is required")
	}
	if err := checkHostPort("-upstream", c.Upstream, false); err != nil {
		return err
	}
	if c.MetricsAddr != "" {
		if err := checkHostPort("-metrics-addr", c.MetricsAddr, true); err != nil {
			return err
		}
	}
	switch c.Backend {
	case "", socket.BackendAuto, socket.BackendIOURing, socket.BackendEpoll:
	default:
		return fmt.Errorf("-backend %q: want auto, io_uring or epoll", c.Backend)
	}
	switch c.Recv {
	case "", RecvAuto, RecvEngine, RecvNet:
	default:
		return fmt.Errorf("-recv %q: want auto, engine or net", c.Recv)
	}
	if c.BufferSize < 512 || c.BufferSize > 16<<20 {
		return fmt.Errorf("-buffer-size %v: want 512B to 16MiB", c.BufferSize)
	}
	if c.MaxInflight < c.BufferSize {
		return fmt.Errorf("-max-inflight %v: want at least -buffer-size (%v)", c.MaxInflight, c.BufferSize)
	}
	if c.MaxInflight > 1<<30 {
		return fmt.Errorf("-max-inflight %v: want at most 1GiB", c.MaxInflight)
	}
	if c.RecvPool < 0 || c.RecvPool > maxRecvPool {
		return fmt.Errorf("-recv-pool %d: want 0 to %d", c.RecvPool, maxRecvPool)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"-send-timeout", c.SendTimeout}, {"-idle-timeout", c.IdleTimeout}, {"-dial-timeout", c.DialTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("%s %v: negative", d.name, d.v)
		}
	}
	if c.DialTimeout == 0 {
		return errors.New("-dial-timeout 0: want a positive duration")
	}
	return nil
}

func checkHostPort(flag, addr string, portZeroOK bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port", flag, addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		if _, lerr := net.LookupPort("tcp", port); lerr != nil {
			return fmt.Errorf("%s %q: bad port %q", flag, addr, port)
		}
		return nil
	}
	if n == 0 && !portZeroOK {
		return fmt.Errorf("%s %q: port 0", flag, addr)
	}
	if host == "" && !portZeroOK {
		return fmt.Errorf("%s %q: no host", flag, addr)
	}
	return nil
}

// maxRecvPool is the most buffers a provided buffer ring may have
// (ring.MaxBufRingEntries).
const maxRecvPool = 1 << 15

// slots is the number of buffers one direction may have in flight.
func (c *Config) slots() int { return max(1, int(c.MaxInflight/c.BufferSize)) }

// Size is a number of bytes, a flag.Value: "512", "32KiB", "4MiB", "64kB"
// — units.Size, shared with the load generator, so both commands read
// sizes alike.
type Size = units.Size

// ParseSize parses s as a Size.
func ParseSize(s string) (Size, error) { return units.ParseSize(s) }
