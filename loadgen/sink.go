package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uringsend/uringsend/metrics"
	"hash/crc32"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ReaderGoNet is SinkReport.Reader of a uringsend sink: it reads with
// Go's net package, not with the engine.
const ReaderGoNet = "go_net"

// setReadsPerMessage sets ReadsPerMessage from Reads and Messages.
func (s *SinkReport) setReadsPerMessage() {
	s.ReadsPerMessage = 0
	if s.Messages > 0 {
		s.ReadsPerMessage = float64(s.Reads) / float64(s.Messages)
	}
}

// Sink receives what runs send: it accepts any number of connections (or
// reads datagrams), counts bytes and messages, and with Verify checks
// every message's checksum and its stream's sequence. It reads with
// Go's net package, independently of the engine it measures; with Echo
// it writes what it reads back.
type Sink struct {
	cfg   SinkConfig
	addr  Target
	ln    net.Listener
	pc    *net.UDPConn
	start time.Time

	bytes, messages, conns        atomic.Uint64
	reads                         atomic.Uint64 // read(2) calls of the sink (recvfrom for UDP)
	verified, corrupt, outOfOrder atomic.Uint64
	lost                          atomic.Uint64

	mu      sync.Mutex
	open    map[net.Conn]struct{}
	peers   map[string]peerCounts // what finished connections received, by remote address
	peerCh  chan struct{}         // closed and replaced when a connection finishes
	closing bool
	wg      sync.WaitGroup

	closeOnce sync.Once
	final     SinkReport
	cpu0      [2]time.Duration // user, system CPU of the process at the start
}

// StartSink listens as cfg says and starts receiving.
func StartSink(cfg SinkConfig) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, open: make(map[net.Conn]struct{}), peers: make(map[string]peerCounts), peerCh: make(chan struct{})}
	switch cfg.Listen.Network {
	case "udp":
		a, err := net.ResolveUDPAddr("udp", cfg.Listen.Address)
		if err != nil {
			return nil, err
		}
		pc, err := net.ListenUDP("udp", a)
		if err != nil {
			return nil, err
		}
		pc.SetReadBuffer(8 << 20) // best effort: fewer drops under load
		s.pc = pc
		s.addr = Target{Network: "udp", Address: pc.LocalAddr().String()}
	case "tcp", "unix":
		if cfg.Listen.Network == "unix" {
			removeStaleSocket(cfg.Listen.Address)
		}
		ln, err := net.Listen(cfg.Listen.Network, cfg.Listen.Address)
		if err != nil {
			return nil, err
		}
		s.ln = ln
		s.addr = Target{Network: cfg.Listen.Network, Address: ln.Addr().String()}
	default:
		return nil, configErrorf("-listen: unknown network %q", cfg.Listen.Network)
	}
	s.start = time.Now()
	s.cpu0 = cpuNow()
	s.wg.Add(1)
	if s.pc != nil {
		go s.readDatagrams()
	} else {
		go s.accept()
	}
	return s, nil
}

// removeStaleSocket removes a socket file nobody listens on, left by a
// sink that did not exit cleanly.
func removeStaleSocket(path string) {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		os.Remove(path)
	}
}

// Addr returns where the sink listens, with the real port.
func (s *Sink) Addr() Target { return s.addr }

func (s *Sink) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				s.mu.Lock()
				closing := s.closing
				s.mu.Unlock()
				if closing { // the backlog is empty: done
					s.ln.Close()
					return
				}
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return // closed
		}
		// While closing, what is still in the backlog is accepted too:
		// a sender's connections that it made (and maybe sent on) just
		// before the end; their bytes count.
		s.mu.Lock()
		s.open[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.conns.Add(1)
		go s.serve(c)
	}
}

func (s *Sink) serve(c net.Conn) {
	defer s.wg.Done()
	var mine peerCounts
	defer func() {
		s.mu.Lock()
		delete(s.open, c)
		s.mu.Unlock()
		c.Close()
		s.finished(c.RemoteAddr().String(), &mine)
	}()
	buf := make([]byte, 256<<10)
	var v *streamVerifier
	if s.cfg.Verify {
		v = &streamVerifier{max: int(s.cfg.MaxSize)}
	}
	// A connection that starts with controlMagic asks for a report; any
	// other is data. Until its first bytes differ from the magic, they
	// are held back.
	held := 0
	first := true
	for {
		n, err := c.Read(buf[held:])
		s.reads.Add(1)
		mine.reads++
		if first && n > 0 {
			k := held + n
			switch m := min(k, len(controlMagic)); {
			case string(buf[:m]) != controlMagic[:m]:
				first, n, held = false, k, 0
			case k >= len(controlMagic):
				s.conns.Add(^uint64(0)) // a control connection is not a sender
				s.control(c, buf[len(controlMagic):k])
				return
			default:
				held = k
				n = 0
			}
		}
		if n > 0 {
			s.bytes.Add(uint64(n))
			mine.bytes += uint64(n)
			if s.cfg.Echo {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if v != nil {
				v.feed(buf[:n])
				mine.add(&v.c)
				v.flush(s)
			}
		}
		if err != nil {
			if held > 0 { // a short data connection that began like the magic
				s.bytes.Add(uint64(held))
				mine.bytes += uint64(held)
			}
			return
		}
	}
}

// seqState follows one stream's sequence numbers.
type seqState struct {
	next uint64 // the sequence number expected next
}

// check counts seq against the expected sequence: in order, a gap (lost),
// or behind (duplicated or reordered).
func (q *seqState) check(seq uint64, c *verifyCounts) {
	switch {
	case seq == q.next:
		q.next++
	case seq > q.next:
		c.lost += seq - q.next
		q.next = seq + 1
	default:
		c.outOfOrder++
	}
}

type verifyCounts struct {
	messages, verified, corrupt, outOfOrder, lost uint64
}

func (s *Sink) add(c *verifyCounts) {
	if c.messages > 0 {
		s.messages.Add(c.messages)
	}
	if c.verified > 0 {
		s.verified.Add(c.verified)
	}
	if c.corrupt > 0 {
		s.corrupt.Add(c.corrupt)
	}
	if c.outOfOrder > 0 {
		s.outOfOrder.Add(c.outOfOrder)
	}
	if c.lost > 0 {
		s.lost.Add(c.lost)
	}
	*c = verifyCounts{}
}

// streamVerifier checks the messages of one stream connection as its
// bytes arrive: it collects the header, checksums the body in passing and
// the header last. After a bad header it has lost the framing and only
// counts bytes.
type streamVerifier struct {
	max    int
	hdr    [HeaderSize]byte
	hn     int // header bytes collected
	hd     header
	left   int    // body bytes still to come
	crc    uint32 // of the body so far
	seq    seqState
	stream uint64
	seen   bool
	desync bool
	c      verifyCounts
}

func (v *streamVerifier) feed(p []byte) {
	for !v.desync {
		if v.hn < HeaderSize {
			if len(p) == 0 {
				return
			}
			k := copy(v.hdr[v.hn:], p)
			v.hn += k
			p = p[k:]
			if v.hn < HeaderSize {
				return
			}
			hd, ok := parseHeader(v.hdr[:], v.max)
			if !ok {
				v.c.corrupt++
				v.desync = true
				return
			}
			v.hd, v.left, v.crc = hd, hd.length-HeaderSize, 0
		}
		k := min(v.left, len(p))
		v.crc = crc32.Update(v.crc, castagnoli, p[:k])
		v.left -= k
		p = p[k:]
		if v.left > 0 {
			return
		}
		v.done()
		v.hn = 0
	}
}

func (v *streamVerifier) done() {
	v.c.messages++
	if messageCRC(v.crc, v.hdr[:]) != v.hd.crc {
		// Its header cannot be trusted, but it took its place in the
		// stream: the next message is expected after it.
		v.c.corrupt++
		v.seq.next++
		return
	}
	if !v.seen || v.hd.stream != v.stream {
		// One connection carries one stream; a new id starts over.
		v.seen, v.stream, v.seq = true, v.hd.stream, seqState{}
	}
	before := v.c.outOfOrder + v.c.lost
	v.seq.check(v.hd.seq, &v.c)
	if v.c.outOfOrder+v.c.lost == before {
		v.c.verified++
	}
}

func (v *streamVerifier) flush(s *Sink) { s.add(&v.c) }

func (s *Sink) readDatagrams() {
	defer s.wg.Done()
	buf := make([]byte, 64<<10)
	peers := make(map[netip.AddrPort]*peerCounts)
	streams := make(map[uint64]*seqState)
	var c verifyCounts
	for {
		n, from, err := s.pc.ReadFromUDPAddrPort(buf)
		s.reads.Add(1)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				s.mu.Lock()
				closing := s.closing
				s.mu.Unlock()
				if closing {
					return
				}
				continue
			}
			return
		}
		s.mu.Lock()
		if s.closing {
			// Closing: keep reading while datagrams come, 100 ms at a time.
			s.pc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		}
		s.mu.Unlock()
		if n >= len(controlMagic) && string(buf[:len(controlMagic)]) == controlMagic {
			// Datagrams are read in order: those the asking run sent
			// before have been counted.
			rep := s.sumPeers(controlAddrs(buf[len(controlMagic):n]), func(a string) (peerCounts, bool) {
				ap, err := netip.ParseAddrPort(a)
				if p := peers[ap]; err == nil && p != nil {
					return *p, true
				}
				return peerCounts{}, false
			})
			if b, err := json.Marshal(rep); err == nil {
				s.pc.WriteToUDPAddrPort(b, from)
			}
			continue
		}
		p := peers[from]
		if p == nil {
			if len(peers) >= maxPeers {
				clear(peers)
			}
			p = &peerCounts{}
			peers[from] = p
			s.conns.Add(1)
		}
		s.bytes.Add(uint64(n))
		p.bytes += uint64(n)
		p.reads++
		c.messages++
		if s.cfg.Verify {
			verifyDatagram(buf[:n], int(s.cfg.MaxSize), streams, &c)
		}
		p.add(&c)
		s.add(&c)
	}
}

func verifyDatagram(d []byte, max int, streams map[uint64]*seqState, c *verifyCounts) {
	if len(d) < HeaderSize {
		c.corrupt++
		return
	}
	hd, ok := parseHeader(d[:HeaderSize], max)
	if !ok || hd.length != len(d) || messageCRC(crc32.Checksum(d[HeaderSize:], castagnoli), d) != hd.crc {
		c.corrupt++
		return
	}
	q := streams[hd.stream]
	if q == nil {
		q = &seqState{}
		streams[hd.stream] = q
	}
	before := c.outOfOrder + c.lost
	q.check(hd.seq, c)
	if c.outOfOrder+c.lost == before {
		c.verified++
	}
}

// Report returns the counts so far.
func (s *Sink) Report() SinkReport {
	d := time.Since(s.start)
	r := SinkReport{
		Listen:          s.addr.String(),
		Conns:           s.conns.Load(),
		Bytes:           s.bytes.Load(),
		Messages:        s.messages.Load(),
		DurationSeconds: d.Seconds(),
		Verify:          s.cfg.Verify,
		Verified:        s.verified.Load(),
		Corrupt:         s.corrupt.Load(),
		OutOfOrder:      s.outOfOrder.Load(),
		Lost:            s.lost.Load(),
		Stream:          s.addr.Stream(),
		Echo:            s.cfg.Echo,
		Reader:          ReaderGoNet,
		Reads:           s.reads.Load(),
	}
	if d > 0 {
		r.BitsPerSecond = 8 * float64(r.Bytes) / d.Seconds()
	}
	r.setReadsPerMessage()
	r.UserSeconds, r.SystemSeconds = cpuSince(s.cpu0)
	return r
}

// backlogWait is how long a closing sink waits for connections still in
// its listener's backlog.
const backlogWait = 20 * time.Millisecond

// Close stops accepting (once what is in the backlog, made before Close,
// is accepted), lets open connections deliver what they still
// have until they reach end of file (at most grace; datagrams until none
// has come for 100 ms), closes everything and returns the final counts.
// Later calls return the same counts.
func (s *Sink) Close(grace time.Duration) SinkReport {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		done := make(chan struct{})
		if s.ln != nil {
			// Accept what is in the backlog (accept then stops at the
			// deadline and closes the listener), or close at once.
			dl, ok := s.ln.(interface{ SetDeadline(time.Time) error })
			if !ok || dl.SetDeadline(time.Now().Add(backlogWait)) != nil {
				s.ln.Close()
			}
		} else {
			s.pc.SetReadDeadline(time.Now().Add(min(grace, 100*time.Millisecond)))
		}
		go func() {
			s.wg.Wait()
			close(done)
		}()
		t := time.NewTimer(grace)
		select {
		case <-done:
		case <-t.C:
			if s.ln != nil {
				s.ln.Close()
			}
			s.mu.Lock()
			for c := range s.open {
				c.SetReadDeadline(time.Unix(1, 0))
			}
			s.mu.Unlock()
			if s.pc != nil {
				s.pc.SetReadDeadline(time.Unix(1, 0))
			}
			<-done
		}
		t.Stop()
		if s.pc != nil {
			s.pc.Close()
		}
		s.final = s.Report()
	})
	return s.final
}

// RunSink runs the sink command: it listens, prints the address and then
// the receive rate every Interval on status, until a signal arrives on
// sig; then it closes (waiting up to 2 s for senders to finish) and
// returns the summary. A second signal while closing returns
// ErrInterrupted.
func RunSink(cfg SinkConfig, sig <-chan os.Signal, status io.Writer) (*SinkReport, error) {
	if status == nil {
		status = io.Discard
	}
	s, err := StartSink(cfg)
	if err != nil {
		return nil, err
	}
	out := newStatusWriter(status)
	out.notef("uringsend sink: listening on %v", s.Addr())
	if cfg.MetricsAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(newSinkCollector(s))
		srv, err := metrics.Serve(cfg.MetricsAddr, reg)
		if err != nil {
			s.Close(0)
			return nil, fmt.Errorf("metrics: %w", err)
		}
		defer srv.Close()
		out.notef("uringsend sink: metrics at %s", srv.URL())
	}
	var tick <-chan time.Time
	if cfg.Interval > 0 {
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	prev := s.Report()
	prevAt := time.Duration(0)
	for {
		select {
		case <-tick:
			now := s.Report()
			at := time.Since(s.start)
			out.status(sinkLine(at, at-prevAt, &now, &prev))
			prev, prevAt = now, at
			continue
		case <-sig:
		}
		break
	}
	out.clear()
	done := make(chan SinkReport, 1)
	go func() { done <- s.Close(sinkGrace) }()
	select {
	case rep := <-done:
		return &rep, nil
	case <-sig:
		return nil, ErrInterrupted
	}
}

func sinkLine(at, dt time.Duration, now, prev *SinkReport) string {
	secs := dt.Seconds()
	line := fmt.Sprintf("%6.1fs  rx %s", at.Seconds(), bitRate(8*float64(now.Bytes-prev.Bytes)/secs))
	if now.Messages > 0 {
		line += fmt.Sprintf("  %s msg/s", siCount(float64(now.Messages-prev.Messages)/secs))
	}
	line += fmt.Sprintf("  total %s  conns %d", byteCount(float64(now.Bytes)), now.Conns)
	if now.Verify {
		line += fmt.Sprintf("  bad %d", now.VerifyErrors())
	}
	return line
}

// sinkCollector exposes the sink's counters at scrape time.
type sinkCollector struct {
	s                                                *Sink
	bytes, messages, conns, verified, corrupt, order *prometheus.Desc
}

func newSinkCollector(s *Sink) *sinkCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &sinkCollector{
		s:        s,
		bytes:    d("uringsend_sink_received_bytes_total", "Bytes the sink received."),
		messages: d("uringsend_sink_messages_total", "Messages the sink counted (datagrams, or verified stream messages)."),
		conns:    d("uringsend_sink_connections_total", "Connections the sink accepted."),
		verified: d("uringsend_sink_verified_messages_total", "Messages whose checksum and sequence checked out (-verify)."),
		corrupt:  d("uringsend_sink_corrupt_messages_total", "Messages with a bad checksum (-verify)."),
		order:    d("uringsend_sink_out_of_order_messages_total", "Messages out of sequence (-verify)."),
	}
}

func (c *sinkCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.bytes, c.messages, c.conns, c.verified, c.corrupt, c.order} {
		ch <- d
	}
}

func (c *sinkCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.s.Report()
	for _, m := range []struct {
		d *prometheus.Desc
		v uint64
	}{{c.bytes, r.Bytes}, {c.messages, r.Messages}, {c.conns, r.Conns}, {c.verified, r.Verified}, {c.corrupt, r.Corrupt}, {c.order, r.OutOfOrder}} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v))
	}
}
