//go:build linux

package tests

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uringsend/uringsend/sendop"
	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// FuzzOpSequence decodes a sequence of operations on one stream socket from
// the input — sends of Buffers and BufferLists, sends with a flag, chains
// that resend from Completed, reuse of an Args still in flight, SetBuffer
// on one in flight, Close (from the test or from the next Completed), a
// drain — and runs it against a model. The model predicts: each accepted
// send completes exactly once (pending ones through Completed only);
// SendAsync refuses exactly when it must (ErrClosed after Close,
// ErrInProgress only for an Args not yet completed); without Close every
// send succeeds and the peer receives every byte in call order; with
// Close the peer receives exactly the reported prefixes (Success or
// OperationAborted), with no gap.
//
// Input: byte 0 picks the backend, tcp or unix, batching, and whether the
// peer holds off reading until a drain; then each operation is an opcode
// byte followed by its arguments (see decodeOps).
func FuzzOpSequence(f *testing.F) {
	engs := map[string]*socket.Engine{}
	for _, be := range backends {
		engs[be] = newEngine(f, be)
	}
	for _, seed := range [][]byte{
		{0, 0, 1, 0, 0, 2, 0, 0, 1, 5, 0, 2, 3, 4, 5, 6},
		{1, 1, 4, 7, 8, 9, 10, 0, 2, 0, 3, 0},
		{2, 2, 2, 1, 7, 0, 2, 3, 0, 0, 4, 2, 3, 9, 9},
		{3, 0, 255, 255, 1, 8, 255, 255, 255, 255, 255, 255, 255, 255, 3, 1},
		{4, 6, 0, 0, 0, 6, 0, 1, 0, 7, 0, 2, 2, 4},
		{8, 0, 200, 0, 0, 200, 0, 0, 200, 0, 4, 0, 10, 0},
		{9, 2, 3, 16, 0, 2, 3, 32, 0, 3, 0, 0, 1, 0},
		{12, 1, 8, 1, 0, 2, 3, 4, 5, 6, 7, 8, 5, 40, 0, 3, 1, 0, 9, 0},
		{13, 5, 80, 0, 5, 81, 0, 4, 5, 82, 0},
		{14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 512 {
			data = data[:512]
		}
		runOpSequence(t, engs, data)
	})
}

// An operation decoded from fuzz input.
type fuzzOp struct {
	code  int     // opSend...
	sh    shape   // the shape to send
	chain []shape // opChain: the resends
	slot  int     // opReuse, opSetBuffer: which pooled Args
	flag  bool    // opClose: from the next Completed
}

const (
	opSend = iota
	opSendList
	opChain
	opClose
	opDrain
	opSendMore // with MSG_MORE
	opReuse    // a pooled Args, maybe still in flight
	opSetBuffer
	numOps
)

// fuzzBytes reads the input a byte at a time; past its end it reads 0.
type fuzzBytes []byte

func (b *fuzzBytes) next() int {
	if len(*b) == 0 {
		return 0
	}
	v := (*b)[0]
	*b = (*b)[1:]
	return int(v)
}

func (b *fuzzBytes) u16() int { return b.next() | b.next()<<8 }

// fuzzSlice cuts n bytes from the pool at an offset derived from k.
func fuzzSlice(k, n int) []byte {
	p := pool()
	off := (k * 7919) % (len(p) - n + 1)
	return p[off : off+n : off+n]
}

// fuzzShape decodes a shape: a Buffer of up to 64 KiB, or (list) a
// BufferList of up to 8 segments of up to 16 KiB, some nil or empty.
func fuzzShape(b *fuzzBytes, list bool) shape {
	if !list {
		n := b.u16()
		return shape{buf: fuzzSlice(n, n)}
	}
	segs := make([][]byte, b.next()%9)
	for i := range segs {
		switch v := b.next(); v {
		case 0:
			segs[i] = nil
		case 1:
			segs[i] = []byte{}
		default:
			segs[i] = fuzzSlice(v*31+i, v*64)
		}
	}
	return shape{bufs: segs}
}

func decodeOps(b *fuzzBytes) []fuzzOp {
	var ops []fuzzOp
	for len(*b) > 0 && len(ops) < 64 {
		op := fuzzOp{code: b.next() % numOps}
		switch op.code {
		case opSend, opSendMore:
			op.sh = fuzzShape(b, false)
		case opSendList:
			op.sh = fuzzShape(b, true)
		case opChain:
			op.sh = fuzzShape(b, false)
			for range 1 + b.next()%4 {
				op.chain = append(op.chain, fuzzShape(b, b.next()%2 == 1))
			}
		case opClose:
			op.flag = b.next()%2 == 1
		case opReuse, opSetBuffer:
			op.slot = b.next() % 4
			op.sh = fuzzShape(b, b.next()%2 == 1)
		}
		ops = append(ops, op)
	}
	return ops
}

func runOpSequence(t *testing.T, engs map[string]*socket.Engine, data []byte) {
	b := fuzzBytes(data)
	cfg := b.next()
	eng := engs[backends[cfg&1]]
	network := []string{"tcp", "unix"}[cfg>>1&1]
	gate := make(chan struct{})
	var gateOnce sync.Once
	openGate := func() { gateOnce.Do(func() { close(gate) }) }
	if cfg&8 == 0 {
		openGate()
	}
	s, r, closeS := streamPairOpts(t, eng, network, cfg&4 != 0, gate)
	ops := decodeOps(&b)

	var (
		l          sendLog
		closed     atomic.Bool // Close has been called (by the test or a handler)
		closeNext  atomic.Bool // the next Completed closes the socket
		closeClaim atomic.Bool
		closeDone  = make(chan struct{})
		closeErr   error
		chains     sync.WaitGroup
		// Known to the test goroutine only:
		closedByTest bool // the test called Close (it has returned)
		gateOpen     = cfg&8 == 0
		pool         [4]*sendop.Args
		poolEntry    [4]int // the log entry of each pooled Args' last send, -1 none
		poolBehind   [4]int // bytes accepted before it
		unexpected   = func(where string, err error) {
			t.Errorf("%s: unexpected error %v", where, err)
		}
	)
	// doClose closes the socket once; a caller that does not win waits
	// for the winner's Close unless it is a Completed handler, which must
	// not block (the winner's Close may wait for it).
	doClose := func(wait bool) {
		if closeClaim.CompareAndSwap(false, true) {
			closed.Store(true)
			closeErr = closeS()
			close(closeDone)
		} else if wait {
			<-closeDone
		}
	}
	onCompleted := func(e *sendop.Args) {
		l.completed(e)
		if closeNext.Load() {
			doClose(false)
		}
	}
	for i := range pool {
		pool[i] = &sendop.Args{Completed: onCompleted}
		poolEntry[i] = -1
	}
	// send sends sh with e from the test goroutine: refused with ErrClosed
	// exactly when Close was called (and maybe once a handler may close).
	send := func(e *sendop.Args, sh shape) error {
		_, err := l.send(s, e, sh)
		switch {
		case closedByTest && !errors.Is(err, socket.ErrClosed):
			t.Errorf("SendAsync after Close: %v, want ErrClosed", err)
		case !closedByTest && err != nil && !(closeNext.Load() && errors.Is(err, socket.ErrClosed)):
			unexpected("SendAsync", err)
		}
		return err
	}
	for _, op := range ops {
		switch op.code {
		case opSend, opSendList:
			send(&sendop.Args{Completed: onCompleted}, op.sh)
		case opSendMore:
			send(&sendop.Args{Completed: onCompleted, Flags: unix.MSG_MORE}, op.sh)
		case opChain:
			rest := op.chain
			e := &sendop.Args{}
			chains.Add(1)
			var next func()
			next = func() { // send what is left of the chain, until one is pending
				for len(rest) > 0 {
					sh := rest[0]
					rest = rest[1:]
					pending, err := l.send(s, e, sh)
					if err != nil {
						if !errors.Is(err, socket.ErrClosed) {
							unexpected("chain SendAsync", err)
						}
						break
					}
					if pending {
						return
					}
				}
				chains.Done()
			}
			e.Completed = func(e *sendop.Args) {
				onCompleted(e)
				next()
			}
			rest = append([]shape{op.sh}, rest...)
			next()
		case opClose:
			if op.flag {
				closeNext.Store(true)
				openGate() // completions must come for the handler to close
				gateOpen = true
			} else {
				doClose(true)
				closedByTest = true
			}
		case opDrain:
			openGate()
			gateOpen = true
			waitQuiet(t, &l, &chains)
		case opReuse:
			// An Args is free again when its Completed begins, and its
			// results are the handler's to read: reuse it once the
			// handler recorded them, or when it is sure to be in flight
			// (queued behind 1 MiB a stalled peer does not read), where
			// SendAsync must say ErrInProgress.
			e := pool[op.slot]
			done := poolEntry[op.slot] < 0 || l.doneAt(poolEntry[op.slot])
			stuck := !done && !gateOpen && !closed.Load() && poolBehind[op.slot] >= 1<<20
			if !done && !stuck {
				break
			}
			behind, n := l.bytes(), l.len()
			err := send(e, op.sh)
			switch {
			case stuck && !errors.Is(err, sendop.ErrInProgress):
				t.Errorf("SendAsync with an Args in flight: %v, want ErrInProgress", err)
			case !stuck && errors.Is(err, sendop.ErrInProgress):
				t.Errorf("ErrInProgress for an Args whose send had completed")
			case err == nil:
				poolEntry[op.slot], poolBehind[op.slot] = n, behind
			}
		case opSetBuffer:
			// Changing the buffer of an Args in flight changes nothing
			// of the send in flight (the log holds what it was given).
			pool[op.slot].SetBuffer(op.sh.buf)
			pool[op.slot].SetBufferList(op.sh.bufs)
		}
	}
	openGate()
	waitQuiet(t, &l, &chains)
	early := closed.Load() || closeNext.Load() // closed before everything completed
	doClose(true)
	if closeErr != nil {
		t.Fatalf("Close: %v", closeErr)
	}
	waitQuiet(t, &l, &chains)
	allowed := []sendop.SocketError{}
	if early {
		allowed = append(allowed, sendop.OperationAborted)
	}
	// The socket's Close was called (by the test or a handler, which
	// returns at once): a second Close returns ErrClosed once it finished,
	// every Completed returned.
	want, byErr := l.check(t, closing(t, s, socket.ErrClosed), allowed...)
	got, err := r.wait(t)
	if err != nil || string(got) != string(want) {
		t.Fatalf("peer read %d bytes (%v), want %d (%v); first difference at %d", len(got), err, len(want), byErr, firstDiff(got, want))
	}
}

// waitQuiet waits until no chain is running and every accepted send has
// completed.
func waitQuiet(t *testing.T, l *sendLog, chains *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { chains.Wait(); close(done) }()
	waitChan(t, done, longWait(), "the resend chains to finish")
	l.waitAll(t)
	deadline := time.Now().Add(longWait())
	for l.left() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}
