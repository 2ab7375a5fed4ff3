//go:build linux

package main

import (
	"io"
	"math/rand/v2"
	"sync"

	"github.com/uringsend/uringsend/sendop"
)

// shape is what one send carries: a Buffer, or a BufferList (bufs != nil).
type shape struct {
	buf  []byte
	bufs [][]byte
}

func (sh shape) total() int {
	n := len(sh.buf)
	for _, b := range sh.bufs {
		n += len(b)
	}
	return n
}

// apply sets sh on e, clearing the other kind of buffer.
func (sh shape) apply(e *sendop.Args) {
	if sh.bufs != nil {
		e.SetBuffer(nil)
		e.SetBufferList(sh.bufs)
	} else {
		e.SetBufferList(nil)
		e.SetBuffer(sh.buf)
	}
}

// writePrefix writes the first n bytes of sh to w.
func (sh shape) writePrefix(w io.Writer, n int) {
	if sh.bufs == nil {
		w.Write(sh.buf[:n])
		return
	}
	for _, b := range sh.bufs {
		if n == 0 {
			return
		}
		k := min(n, len(b))
		w.Write(b[:k])
		n -= k
	}
}

const poolSize = 8<<20 + 13 // not a power of two: no alignment hides a reorder

var pool = sync.OnceValue(func() []byte {
	p := make([]byte, poolSize)
	rand.NewChaCha8([32]byte{'s', 'o', 'a', 'k'}).Read(p)
	return p
})

// poolSlice returns n bytes of the pool at a random offset.
func poolSlice(rng *rand.Rand, n int) []byte {
	p := pool()
	off := rng.IntN(len(p) - n + 1)
	return p[off : off+n : off+n]
}

// randomShape makes a Buffer or a BufferList of up to maxSegs segments
// (some nil or empty; now and then more than IOV_MAX) of up to maxSize
// bytes, biased to small sends.
func randomShape(rng *rand.Rand, maxSize, maxSegs int) shape {
	size := rng.IntN(maxSize + 1)
	if rng.IntN(2) == 0 {
		size = rng.IntN(min(maxSize, 1<<10) + 1)
	}
	if maxSegs == 0 || rng.IntN(2) == 0 {
		return shape{buf: poolSlice(rng, size)}
	}
	n := 1 + rng.IntN(maxSegs)
	if rng.IntN(64) == 0 {
		n = sendop.IOVMax + 1 + rng.IntN(500)
	}
	bufs := make([][]byte, n)
	left := size
	for i := range bufs {
		switch {
		case rng.IntN(10) == 0:
			bufs[i] = nil
		case i == n-1:
			bufs[i] = poolSlice(rng, left)
			left = 0
		default:
			k := min(rng.IntN(left/max(1, n-i)*2+1), left)
			bufs[i] = poolSlice(rng, k)
			left -= k
		}
	}
	return shape{bufs: bufs}
}
