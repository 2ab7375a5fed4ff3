package socket

import (
	"io"
	"sync"

	"github.com/uringsend/uringsend/sendop"
)

// Blocking and callback writes over SendAsync, for code that wants an
// io.Writer (io.Copy, bufio, encoders) or many writes in flight without a
// goroutine each. Both draw Args from a pool, so they allocate nothing per
// write in steady state, and both keep SendAsync's guarantees: writes
// leave in call order, never interleave, and complete whole or with an
// error.

type writeReq struct {
	e    sendop.Args
	done chan struct{}
	cb   func(n int, err error)
	s    *Socket
	n    int
}

var writeReqs sync.Pool

func init() {
	writeReqs.New = func() any {
		r := &writeReq{done: make(chan struct{}, 1)}
		r.e.UserToken = r
		r.e.Completed = writeCompleted
		return r
	}
}

func writeCompleted(e *sendop.Args) {
	r := e.UserToken.(*writeReq)
	if r.cb != nil {
		r.finish()
		return
	}
	r.done <- struct{}{}
}

// finish reports a callback write and recycles its request.
func (r *writeReq) finish() {
	n, err := r.e.BytesTransferred(), r.s.opError("write", r.e.Err())
	cb, s := r.cb, r.s
	s.releaseBytes(r.n)
	r.cb, r.s = nil, nil
	r.e.SetBuffer(nil)
	writeReqs.Put(r)
	cb(n, err)
}

// Write sends p and returns when all of it has been handed to the kernel,
// or with the error that stopped it (and the bytes sent before). It is
// safe for concurrent use; concurrent writes never interleave. It makes
// Socket an io.Writer: an empty p returns 0, nil (on a datagram socket it
// sends an empty datagram, as net.UDPConn does). Its errors, WriteAsync's
// and ReadFrom's are *net.OpError, as net.Conn's are (Op "write" or
// "readfrom", the network, both addresses), wrapping ErrClosed, a
// *sendop.Error or another error of SendAsync: errors.Is and errors.As
// see through them.
func (s *Socket) Write(p []byte) (int, error) {
	if len(p) == 0 {
		if s.stream {
			return 0, s.opError("write", s.emptyWrite())
		}
		p = []byte{} // an empty datagram, as net.UDPConn sends (nil is no buffer to SendAsync)
	}
	r := writeReqs.Get().(*writeReq)
	r.e.SetBuffer(p)
	r.e.Timeout = s.opts.writeTimeout
	pending, err := s.SendAsync(&r.e)
	if err != nil {
		r.e.SetBuffer(nil)
		writeReqs.Put(r)
		return 0, s.opError("write", err)
	}
	if pending {
		<-r.done
	}
	n, err := r.e.BytesTransferred(), r.e.Err()
	r.e.SetBuffer(nil)
	writeReqs.Put(r)
	return n, s.opError("write", err)
}

// WriteAsync starts sending p and returns; done is called exactly once
// with the result, on the engine's goroutine or — when the write
// completed at once — before WriteAsync returns. p must not be modified
// until then. With WithMaxInflightBytes, WriteAsync first waits while the
// socket has that many bytes in flight: backpressure for proxies. An error
// from WriteAsync means nothing was sent and done will not be called. An
// empty p is Write's: on a stream socket done(0, nil) is called at once.
func (s *Socket) WriteAsync(p []byte, done func(n int, err error)) error {
	if len(p) == 0 {
		if s.stream {
			if err := s.emptyWrite(); err != nil {
				return s.opError("write", err)
			}
			done(0, nil)
			return nil
		}
		p = []byte{}
	}
	if err := s.acquireBytes(len(p)); err != nil {
		return s.opError("write", err)
	}
	r := writeReqs.Get().(*writeReq)
	r.e.SetBuffer(p)
	r.e.Timeout = s.opts.writeTimeout
	r.cb, r.s, r.n = done, s, len(p)
	pending, err := s.SendAsync(&r.e)
	if err != nil {
		s.releaseBytes(len(p))
		r.cb, r.s = nil, nil
		r.e.SetBuffer(nil)
		writeReqs.Put(r)
		return s.opError("write", err)
	}
	if !pending {
		r.finish()
	}
	return nil
}

// emptyWrite is a write of nothing on a stream socket: it sends nothing
// and fails only where any write would.
func (s *Socket) emptyWrite() error {
	if s.life.closing() {
		return ErrClosed
	}
	return s.checkConnected()
}

// ReadFrom copies r to the socket until EOF, reading the next chunk while
// the previous one is on the wire. It makes io.Copy use it (for a src
// without WriteTo). Chunks go out one at a time, so nothing is sent after
// a send that failed.
func (s *Socket) ReadFrom(r io.Reader) (int64, error) {
	st := readFromStates.Get().(*readFromState)
	n, err := st.copy(s, r)
	// Not reached with a send in flight (a Read that panicked): the state
	// is then dropped, not handed to another ReadFrom.
	readFromStates.Put(st)
	return n, s.opError("readfrom", err)
}

const readFromChunk = 64 << 10

// readFromState is a ReadFrom's two buffers and its send, pooled, so that
// a steady io.Copy into sockets allocates nothing.
type readFromState struct {
	bufs    [2][]byte
	e       sendop.Args
	done    chan struct{} // e's Completed: one send at a time
	pending bool          // e is in flight
	total   int64         // bytes sent so far
}

var readFromStates = sync.Pool{New: func() any {
	st := &readFromState{done: make(chan struct{}, 1)}
	b := make([]byte, 2*readFromChunk)
	st.bufs = [2][]byte{b[:readFromChunk:readFromChunk], b[readFromChunk:]}
	st.e.UserToken = st
	st.e.Completed = readFromCompleted
	return st
}}

func readFromCompleted(e *sendop.Args) { e.UserToken.(*readFromState).done <- struct{}{} }

// copy is ReadFrom. Its invariant: a buffer is read into only while no
// send uses it — the buffer of a pending send is the other one until that
// send has completed, whatever the reads in between return (a Read may
// return 0, nil).
func (st *readFromState) copy(s *Socket, r io.Reader) (int64, error) {
	st.total, st.pending = 0, false
	i := 0 // while a send is pending, it is from st.bufs[i^1]
	for {
		n, rerr := r.Read(st.bufs[i])
		if n > 0 {
			if err := st.drain(s); err != nil {
				return st.total, err
			}
			var err error
			if st.pending, err = st.send(s, st.bufs[i][:n]); err != nil {
				return st.total, err
			}
			if st.pending {
				i ^= 1
			} else if err := st.add(st.result(s)); err != nil {
				return st.total, err
			}
		}
		if rerr != nil {
			if err := st.drain(s); err != nil {
				return st.total, err
			}
			if rerr == io.EOF {
				return st.total, nil
			}
			return st.total, rerr
		}
	}
}

// drain waits for the send in flight, if any, and counts its result.
func (st *readFromState) drain(s *Socket) error {
	if !st.pending {
		return nil
	}
	st.pending = false
	<-st.done
	return st.add(st.result(s))
}

// add counts a send's bytes and passes its error on.
func (st *readFromState) add(n int, err error) error {
	st.total += int64(n)
	return err
}

// send starts sending b, a chunk just read; an error means nothing was
// sent and nothing is in flight.
func (st *readFromState) send(s *Socket, b []byte) (pending bool, err error) {
	if err := s.acquireBytes(len(b)); err != nil {
		return false, err
	}
	st.e.SetBuffer(b)
	st.e.Timeout = s.opts.writeTimeout
	if pending, err = s.SendAsync(&st.e); err != nil {
		s.releaseBytes(len(b))
		st.e.SetBuffer(nil)
	}
	return pending, err
}

// result takes the completed send's outcome and frees its bytes.
func (st *readFromState) result(s *Socket) (int, error) {
	s.releaseBytes(len(st.e.Buffer()))
	st.e.SetBuffer(nil)
	return st.e.BytesTransferred(), st.e.Err()
}

// backpressure is WithMaxInflightBytes' count of the bytes WriteAsync has
// in flight, and the writers waiting for room. Only sockets with the
// option have one: the rest do not pay its 80 bytes.
type backpressure struct {
	mu       sync.Mutex
	cond     sync.Cond
	inflight int
}

func newBackpressure() *backpressure {
	bp := &backpressure{}
	bp.cond.L = &bp.mu
	return bp
}

func (s *Socket) acquireBytes(n int) error {
	bp := s.bp
	if bp == nil {
		return nil
	}
	bp.mu.Lock()
	defer bp.mu.Unlock()
	for bp.inflight > 0 && bp.inflight+n > s.opts.maxInflight {
		if s.life.closing() {
			return ErrClosed
		}
		bp.cond.Wait()
	}
	if s.life.closing() {
		return ErrClosed
	}
	bp.inflight += n
	return nil
}

func (s *Socket) releaseBytes(n int) {
	bp := s.bp
	if bp == nil {
		return
	}
	bp.mu.Lock()
	bp.inflight -= n
	bp.mu.Unlock()
	bp.cond.Broadcast()
}

// wakeWriters wakes the writers waiting for room: the socket is closing.
func (s *Socket) wakeWriters() {
	if bp := s.bp; bp != nil {
		bp.mu.Lock()
		bp.cond.Broadcast()
		bp.mu.Unlock()
	}
}

// InflightBytes returns the bytes WriteAsync has in flight on s (counted
// only with WithMaxInflightBytes).
func (s *Socket) InflightBytes() int {
	bp := s.bp
	if bp == nil {
		return 0
	}
	bp.mu.Lock()
	defer bp.mu.Unlock()
	return bp.inflight
}
