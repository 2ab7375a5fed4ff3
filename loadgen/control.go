package loadgen

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// The sink's control exchange: how "uringsend run -sink-report" learns
// what a "uringsend sink" target received from it (iperf3's
// --get-server-output). After its connections are closed, the run opens
// one more connection to the sink and writes controlMagic, then the local
// addresses of its connections, one per line, then an empty line. The
// sink waits (at most controlWait) until each of those connections has
// reached end of file, and answers with one JSON SinkReport of what they
// carried, then closes. A target that is not a uringsend sink does not
// answer that way, and the run says so. On UDP the request and the
// answer are one datagram each, and the sink counts by source address.
const (
	controlMagic = "uringsend-sink-report/1\n"
	controlWait  = 2 * time.Second
	maxPeers     = 1 << 16 // finished connections the sink remembers
)

// peerCounts is what one connection to the sink carried.
type peerCounts struct {
	bytes uint64
	reads uint64 // the sink's Read calls on it (datagrams: one each)
	verifyCounts
}

func (p *peerCounts) add(c *verifyCounts) {
	p.messages += c.messages
	p.verified += c.verified
	p.corrupt += c.corrupt
	p.outOfOrder += c.outOfOrder
	p.lost += c.lost
}

// finished records what the connection from remote carried.
func (s *Sink) finished(remote string, p *peerCounts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.peers) >= maxPeers {
		clear(s.peers)
	}
	s.peers[remote] = *p
	close(s.peerCh)
	s.peerCh = make(chan struct{})
}

// control answers a control connection; rest is what followed the magic
// in its first read.
func (s *Sink) control(c net.Conn, rest []byte) {
	c.SetDeadline(time.Now().Add(controlWait + 5*time.Second))
	br := bufio.NewReader(&prefixReader{rest, c})
	var want []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		want = append(want, line)
	}
	deadline := time.NewTimer(controlWait)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		missing := 0
		for _, a := range want {
			if _, ok := s.peers[a]; !ok {
				missing++
			}
		}
		ch := s.peerCh
		s.mu.Unlock()
		if missing == 0 {
			break
		}
		select {
		case <-ch:
			continue
		case <-deadline.C:
		}
		break
	}
	s.mu.Lock()
	rep := s.sumPeers(want, func(a string) (peerCounts, bool) {
		p, ok := s.peers[a]
		return p, ok
	})
	s.mu.Unlock()
	json.NewEncoder(c).Encode(&rep)
}

// sumPeers returns the sink's report with the counts of the peers want
// only, as lookup finds them.
func (s *Sink) sumPeers(want []string, lookup func(string) (peerCounts, bool)) SinkReport {
	rep := s.Report()
	rep.Conns, rep.Bytes, rep.Messages, rep.Reads = 0, 0, 0, 0
	rep.Verified, rep.Corrupt, rep.OutOfOrder, rep.Lost = 0, 0, 0, 0
	for _, a := range want {
		p, ok := lookup(a)
		if !ok {
			continue
		}
		rep.Conns++
		rep.Bytes += p.bytes
		rep.Reads += p.reads
		rep.Messages += p.messages
		rep.Verified += p.verified
		rep.Corrupt += p.corrupt
		rep.OutOfOrder += p.outOfOrder
		rep.Lost += p.lost
	}
	rep.Missing = uint64(len(want)) - rep.Conns
	if d := rep.DurationSeconds; d > 0 {
		rep.BitsPerSecond = 8 * float64(rep.Bytes) / d
	}
	rep.setReadsPerMessage()
	return rep
}

// controlAddrs parses the address lines of a control request.
func controlAddrs(b []byte) []string {
	var a []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			a = append(a, l)
		}
	}
	return a
}

// prefixReader reads p, then r.
type prefixReader struct {
	p []byte
	r interface{ Read([]byte) (int, error) }
}

func (pr *prefixReader) Read(b []byte) (int, error) {
	if len(pr.p) > 0 {
		n := copy(b, pr.p)
		pr.p = pr.p[n:]
		return n, nil
	}
	return pr.r.Read(b)
}

// ErrNotASink: the target did not answer the control exchange as a
// uringsend sink does.
var ErrNotASink = errors.New("the target did not answer as a uringsend sink")

// askSink asks the uringsend sink at target what the connections with
// the given local addresses delivered.
func askSink(target Target, locals []string, timeout time.Duration) (*SinkReport, error) {
	if target.Network == "udp" {
		return askSinkUDP(target, locals)
	}
	c, err := net.DialTimeout(target.Network, target.Address, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout + controlWait + time.Second))
	var b strings.Builder
	b.WriteString(controlMagic)
	for _, a := range locals {
		b.WriteString(a + "\n")
	}
	b.WriteString("\n")
	if _, err := c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	var rep SinkReport
	dec := json.NewDecoder(c)
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNotASink, err)
	}
	if rep.Listen == "" {
		return nil, ErrNotASink
	}
	rep.Stream = target.Stream()
	return &rep, nil
}

// askSinkUDP asks a UDP sink in one datagram (three tries, a second
// each); the answer is one datagram too. On UDP the sink counts per
// source address and port: the run's sockets.
func askSinkUDP(target Target, locals []string) (*SinkReport, error) {
	c, err := net.Dial("udp", target.Address)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	req := controlMagic + strings.Join(locals, "\n") + "\n"
	if len(req) > 60000 {
		return nil, fmt.Errorf("%d connections are too many to ask about in one datagram", len(locals))
	}
	buf := make([]byte, 64<<10)
	var last error
	for try := 0; try < 3; try++ {
		if _, err := c.Write([]byte(req)); err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err != nil {
			last = err
			continue
		}
		var rep SinkReport
		if err := json.Unmarshal(buf[:n], &rep); err != nil || rep.Listen == "" {
			return nil, fmt.Errorf("%w (%v)", ErrNotASink, err)
		}
		return &rep, nil
	}
	return nil, fmt.Errorf("%w (%v)", ErrNotASink, last)
}
