//go:build linux

package main

import (
	"crypto/sha256"
	"io"
	"net"
	"time"
)

// peer is the receiving end of a connection: it reads everything and
// hashes it, slowly, with a stall, or until it resets or closes the
// connection, as its plan says.
type peer struct {
	c       net.Conn
	n       int64
	sum     [32]byte
	err     error
	faulted bool // it reset or closed the connection itself
	done    chan struct{}
}

func startPeer(c net.Conn, p plan) *peer {
	r := &peer{c: c, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		h := sha256.New()
		defer func() { copy(r.sum[:], h.Sum(nil)) }()
		chunk := 64 << 10
		if p.peer == "slow-reader" {
			chunk = 4 << 10
		}
		buf := make([]byte, chunk)
		stalled := false
		for i := 0; ; i++ {
			n, err := c.Read(buf)
			h.Write(buf[:n])
			r.n += int64(n)
			if err != nil {
				if err != io.EOF {
					r.err = err
				}
				c.Close()
				return
			}
			switch {
			case p.peer == "slow-reader" && i%4 == 0:
				time.Sleep(200 * time.Microsecond)
			case p.peer == "stall" && !stalled && r.n >= p.peerAt:
				stalled = true
				time.Sleep(time.Duration(p.stallMs) * time.Millisecond)
			case p.peer == "peer-reset" && r.n >= p.peerAt:
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				r.faulted = true
				c.Close()
				return
			case p.peer == "peer-close" && r.n >= p.peerAt:
				r.faulted = true
				c.Close()
				return
			}
		}
	}()
	return r
}

// wait waits up to d for the peer to stop reading.
func (r *peer) wait(d time.Duration) bool {
	select {
	case <-r.done:
		return true
	case <-time.After(d):
		return false
	}
}
