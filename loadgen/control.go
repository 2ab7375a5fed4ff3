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
// answer that way, and the run says so.
const (
	controlMagic = "uringsend-sink-report/1\n"
	controlWait  = 2 * time.Second
	maxPeers     = 1 << 16 // finished connections the sink remembers
)

// peerCounts is what one connection to the sink carried.
type peerCounts struct {
	bytes uint64
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
	rep := s.Report()
	rep.Conns, rep.Bytes, rep.Messages = 0, 0, 0
	rep.Verified, rep.Corrupt, rep.OutOfOrder, rep.Lost = 0, 0, 0, 0
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
	for _, a := range want {
		p, ok := s.peers[a]
		if !ok {
			continue
		}
		rep.Conns++
		rep.Bytes += p.bytes
		rep.Messages += p.messages
		rep.Verified += p.verified
		rep.Corrupt += p.corrupt
		rep.OutOfOrder += p.outOfOrder
		rep.Lost += p.lost
	}
	s.mu.Unlock()
	rep.Missing = uint64(len(want)) - rep.Conns
	json.NewEncoder(c).Encode(&rep)
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
