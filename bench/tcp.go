//go:build linux

package main

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"
)

// recvResult is what a receiver saw on one connection.
type recvResult struct {
	bytes int64
	sum   [32]byte  // SHA-256 of the stream, when hashing
	last  time.Time // when the last byte arrived
	err   error
}

// receive reads c until EOF in a goroutine, counting every byte and, if
// hashing, computing the stream's SHA-256.
func receive(c net.Conn, hashing bool, bufSize int) <-chan recvResult {
	ch := make(chan recvResult, 1)
	go func() {
		defer c.Close()
		buf := make([]byte, bufSize)
		var h hash.Hash
		if hashing {
			h = sha256.New()
		}
		var res recvResult
		for {
			n, err := c.Read(buf)
			if n > 0 {
				res.bytes += int64(n)
				res.last = time.Now()
				if h != nil {
					h.Write(buf[:n])
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					res.err = err
				}
				break
			}
		}
		if h != nil {
			copy(res.sum[:], h.Sum(nil))
		}
		ch <- res
	}()
	return ch
}

// tcpPairs connects n loopback TCP connections and returns the sending
// sides and the receiving sides, pairwise.
func tcpPairs(n int) (clients, servers []*net.TCPConn, err error) {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	byPort := make(map[int]*net.TCPConn, n)
	accErr := make(chan error, 1)
	go func() {
		for range n {
			c, err := l.AcceptTCP()
			if err != nil {
				accErr <- err
				return
			}
			byPort[c.RemoteAddr().(*net.TCPAddr).Port] = c
		}
		accErr <- nil
	}()
	for range n {
		c, err := net.DialTCP("tcp", nil, l.Addr().(*net.TCPAddr))
		if err != nil {
			closeAll(clients)
			<-acceptAbort(l, accErr)
			closeAll(mapValues(byPort))
			return nil, nil, err
		}
		clients = append(clients, c)
	}
	if err := <-accErr; err != nil {
		closeAll(clients)
		closeAll(mapValues(byPort))
		return nil, nil, err
	}
	for _, c := range clients {
		s := byPort[c.LocalAddr().(*net.TCPAddr).Port]
		if s == nil {
			closeAll(clients)
			closeAll(mapValues(byPort))
			return nil, nil, fmt.Errorf("accepted connections do not match the dialled ones")
		}
		servers = append(servers, s)
	}
	return clients, servers, nil
}

func acceptAbort(l *net.TCPListener, ch chan error) chan error {
	l.Close()
	return ch
}

func mapValues(m map[int]*net.TCPConn) []*net.TCPConn {
	var v []*net.TCPConn
	for _, c := range m {
		v = append(v, c)
	}
	return v
}

func closeAll(cs []*net.TCPConn) {
	for _, c := range cs {
		c.Close()
	}
}

// tcpPair is tcpPairs(1).
func tcpPair() (client, server *net.TCPConn, err error) {
	cs, ss, err := tcpPairs(1)
	if err != nil {
		return nil, nil, err
	}
	return cs[0], ss[0], nil
}

// payload makes message contents for verification rounds: a sequence
// number in the first 8 bytes over random filler, so that a lost,
// duplicated or reordered message changes the stream's hash.
type payload struct {
	filler []byte
	seq    uint64
}

func newPayload(size int) *payload {
	p := &payload{filler: make([]byte, size)}
	r := rand.New(rand.NewPCG(uint64(size), 0x75726e67))
	for i := range p.filler {
		p.filler[i] = byte(r.Uint32())
	}
	return p
}

// next fills b with the next message.
func (p *payload) next(b []byte) {
	copy(b, p.filler)
	p.seq++
	if len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, p.seq)
	}
}

// senderHash is the sending side of a verification: the hash of every
// message in the order it was handed to the send call.
type senderHash struct {
	h hash.Hash
	p *payload
}

func newSenderHash(size int) *senderHash {
	return &senderHash{h: sha256.New(), p: newPayload(size)}
}

// senderHash is the sending side's hash of a verification round, nil in
// the others.
func (r round) senderHash(size int) *senderHash {
	if !r.verify {
		return nil
	}
	return newSenderHash(size)
}

// fill writes the next message into b and hashes it.
func (s *senderHash) fill(b []byte) {
	s.p.next(b)
	s.h.Write(b)
}

func (s *senderHash) sum() (sum [32]byte) {
	copy(sum[:], s.h.Sum(nil))
	return sum
}

// finish closes the sending side of a TCP connection, waits for its
// receiver, and checks the byte count and, if sh is not nil (a
// verification round), the hash. It raises *last to the time the receiver
// got its last byte.
func finish(c *net.TCPConn, ch <-chan recvResult, bytes int64, sh *senderHash, last *time.Time) error {
	c.CloseWrite()
	defer c.Close()
	var res recvResult
	select {
	case res = <-ch:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("receiver did not see EOF within 30 s")
	}
	if res.last.After(*last) {
		*last = res.last
	}
	if res.err != nil {
		return fmt.Errorf("receiver: %w", res.err)
	}
	if res.bytes != bytes {
		return fmt.Errorf("receiver counted %d bytes, the sender completed %d", res.bytes, bytes)
	}
	if sh != nil && res.sum != sh.sum() {
		return fmt.Errorf("receiver's SHA-256 differs from the sender's (%d bytes): bytes lost, duplicated or reordered", bytes)
	}
	return nil
}

// finishOne is finish for a round on one connection: what finish finds
// joins err, and a verification that passed is noted. It returns when the
// receiver got the last byte.
func (s *sample) finishOne(c *net.TCPConn, ch <-chan recvResult, sh *senderHash, err error) (last time.Time, _ error) {
	if ferr := finish(c, ch, s.bytes, sh, &last); ferr != nil {
		err = errors.Join(err, ferr)
	}
	if err == nil && sh != nil {
		s.note = fmt.Sprintf("SHA-256 of %s matched", sizeString(s.bytes))
	}
	return last, err
}

// fdPair is tcpPair for the arms that make their own system calls on the
// sending side's descriptor fd: the receiving side is read (receive) from
// the start.
func fdPair(verify bool) (c *net.TCPConn, recv <-chan recvResult, rc syscall.RawConn, fd int, err error) {
	c, srv, err := tcpPair()
	if err != nil {
		return nil, nil, nil, 0, err
	}
	recv = receive(srv, verify, 256<<10)
	if rc, err = c.SyscallConn(); err != nil {
		c.Close()
		return nil, nil, nil, 0, err
	}
	rc.Control(func(f uintptr) { fd = int(f) })
	return c, recv, rc, fd, nil
}

// delivered extends a sample's elapsed time to the arrival of the last
// byte at the receivers: rates are of delivered data, not of data left
// in socket buffers when the round ended.
func (s *sample) delivered(t0, last time.Time) {
	if d := last.Sub(t0); d > s.elapsed {
		s.elapsed = d
	}
}
