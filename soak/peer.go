//go:build linux

package main

import (
	"crypto/sha256"
	"hash"
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
	h       hash.Hash // of what it read; sum takes it when it is done
}

// goPeer starts a peer of c that reads with read in a goroutine of its
// own; sum is the hash of what it read once done is closed.
func goPeer(c net.Conn, read func(r *peer)) *peer {
	r := &peer{c: c, done: make(chan struct{}), h: sha256.New()}
	go func() {
		defer close(r.done)
		defer func() { copy(r.sum[:], r.h.Sum(nil)) }()
		read(r)
	}()
	return r
}

// read reads once into b, hashing and counting what came; at the end of
// the stream or on an error (kept in err) it closes c and returns false.
func (r *peer) read(b []byte) bool {
	n, err := r.c.Read(b)
	r.h.Write(b[:n])
	r.n += int64(n)
	if err != nil {
		if err != io.EOF {
			r.err = err
		}
		r.c.Close()
		return false
	}
	return true
}

func startPeer(c net.Conn, p plan) *peer {
	return goPeer(c, func(r *peer) {
		chunk := 64 << 10
		if p.peer == "slow-reader" {
			chunk = 4 << 10
		}
		buf := make([]byte, chunk)
		stalled := false
		for i := 0; r.read(buf); i++ {
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
	})
}

// wait waits up to d for the peer to stop reading.
func (r *peer) wait(d time.Duration) bool { return waitClosed(r.done, d) }

// waitClosed waits up to d for done to be closed and reports whether it
// was.
func waitClosed(done <-chan struct{}, d time.Duration) bool {
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
