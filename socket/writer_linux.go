package socket

import (
	"io"
	"sync"
	"time"

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
	n, err := r.e.BytesTransferred(), r.e.Err()
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
// Socket an io.Writer.
func (s *Socket) Write(p []byte) (int, error) {
	r := writeReqs.Get().(*writeReq)
	r.e.SetBuffer(p)
	r.e.Timeout = s.writeTimeout
	pending, err := s.SendAsync(&r.e)
	if err != nil {
		r.e.SetBuffer(nil)
		writeReqs.Put(r)
		return 0, err
	}
	if pending {
		<-r.done
	}
	n, err := r.e.BytesTransferred(), r.e.Err()
	r.e.SetBuffer(nil)
	writeReqs.Put(r)
	return n, err
}

// WriteAsync starts sending p and returns; done is called exactly once
// with the result, on the engine's goroutine or — when the write
// completed at once — before WriteAsync returns. p must not be modified
// until then. With WithMaxInflightBytes, WriteAsync first waits while the
// socket has that many bytes in flight: backpressure for proxies. An error
// from WriteAsync means nothing was sent and done will not be called.
func (s *Socket) WriteAsync(p []byte, done func(n int, err error)) error {
	if err := s.acquireBytes(len(p)); err != nil {
		return err
	}
	r := writeReqs.Get().(*writeReq)
	r.e.SetBuffer(p)
	r.e.Timeout = s.writeTimeout
	r.cb, r.s, r.n = done, s, len(p)
	pending, err := s.SendAsync(&r.e)
	if err != nil {
		s.releaseBytes(len(p))
		r.cb, r.s = nil, nil
		r.e.SetBuffer(nil)
		writeReqs.Put(r)
		return err
	}
	if !pending {
		r.finish()
	}
	return nil
}

// ReadFrom copies r to the socket until EOF, keeping the next read going
// while the previous chunk is on the wire. It makes io.Copy use it.
func (s *Socket) ReadFrom(r io.Reader) (int64, error) {
	const chunk = 64 << 10
	bufs := [2][]byte{make([]byte, chunk), make([]byte, chunk)}
	var total int64
	var inflight chan struct {
		n   int
		err error
	}
	wait := func() error {
		if inflight == nil {
			return nil
		}
		res := <-inflight
		inflight = nil
		total += int64(res.n)
		return res.err
	}
	for i := 0; ; i ^= 1 {
		n, rerr := r.Read(bufs[i])
		if n > 0 {
			if err := wait(); err != nil {
				return total, err
			}
			ch := make(chan struct {
				n   int
				err error
			}, 1)
			if err := s.WriteAsync(bufs[i][:n], func(n int, err error) {
				ch <- struct {
					n   int
					err error
				}{n, err}
			}); err != nil {
				return total, err
			}
			inflight = ch
		}
		if rerr == io.EOF {
			return total, wait()
		}
		if rerr != nil {
			if err := wait(); err != nil {
				return total, err
			}
			return total, rerr
		}
	}
}

// WithWriteTimeout gives every Write and WriteAsync on the socket a
// sendop.Args.Timeout of d: a write still on the wire after d fails with
// TimedOut (errors.Is(err, syscall.ETIMEDOUT)) and the bytes it sent.
func WithWriteTimeout(d time.Duration) Option { return func(o *options) { o.writeTimeout = d } }

// WithMaxInflightBytes bounds the bytes WriteAsync keeps in flight on the
// socket: past n, WriteAsync waits until completions bring it below. One
// write larger than n is let through alone. It bounds a proxy's memory per
// connection when the peer reads slower than data arrives. WriteAsync must
// not be called from a Completed handler on such a socket: waiting there
// would hold up the completions it waits for.
func WithMaxInflightBytes(n int) Option { return func(o *options) { o.maxInflight = n } }

func (s *Socket) acquireBytes(n int) error {
	if s.maxInflight <= 0 {
		return nil
	}
	s.bpMu.Lock()
	defer s.bpMu.Unlock()
	for s.inflightBytes > 0 && s.inflightBytes+n > s.maxInflight {
		if s.closed.Load() {
			return ErrClosed
		}
		s.bpCond.Wait()
	}
	if s.closed.Load() {
		return ErrClosed
	}
	s.inflightBytes += n
	return nil
}

func (s *Socket) releaseBytes(n int) {
	if s.maxInflight <= 0 {
		return
	}
	s.bpMu.Lock()
	s.inflightBytes -= n
	s.bpMu.Unlock()
	s.bpCond.Broadcast()
}

// InflightBytes returns the bytes WriteAsync has in flight on s (counted
// only with WithMaxInflightBytes).
func (s *Socket) InflightBytes() int {
	s.bpMu.Lock()
	defer s.bpMu.Unlock()
	return s.inflightBytes
}
