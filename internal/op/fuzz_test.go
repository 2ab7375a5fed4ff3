//go:build linux

package op

import (
	"syscall"
	"testing"
)

// FuzzLifecycle drives testArgs through byte-encoded sequences of sends:
// each send picks inline or queued, a Buffer or BufferList shape, a
// sequence of short results or an error, and when the caller decides
// relative to the harvester. The model: every send completes exactly once
// (a false from Decide or one Completed), with BytesTransferred equal to
// what the results added up to, and the testArgs is reusable afterwards.
func FuzzLifecycle(f *testing.F) {
	f.Add([]byte{0, 10, 3, 1, 2, 0})
	f.Add([]byte{1, 200, 7, 5, 9, 255, 4})
	f.Add([]byte{2, 0, 0})
	f.Add([]byte{3, 64, 1, 64, 2, 1, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return int(b)
		}
		var e testArgs
		raised := 0
		e.Completed = func(*testArgs) { raised++ }
		op := &e.op
		pc := new(PinCache) // the socket's
		defer pc.Release()
		for round := 0; len(data) > 0 && round < 64; round++ {
			mode, size := next(), next()
			if mode&4 != 0 {
				segs := make([][]byte, 1+next()%5)
				for i := range segs {
					segs[i] = make([]byte, size/len(segs))
				}
				e.SetBuffer(nil)
				e.SetBufferList(segs)
			} else {
				e.SetBufferList(nil)
				e.SetBuffer(make([]byte, size))
			}
			if err := e.claim(); err != nil {
				t.Fatalf("round %d: Claim: %v", round, err)
			}
			op.Begin(mode&8 == 0, pc)
			inline := mode&1 == 0
			decideEarly := mode&2 != 0
			if inline {
				op.MarkInline()
			} else {
				op.MarkQueued()
			}
			pending, decided := !inline, !inline
			if inline && decideEarly {
				pending, decided = op.Decide(), true
			}
			want := 0
			for done := false; !done; {
				r := next()
				var res int32
				switch {
				case r == 255:
					res = -int32(syscall.EPIPE)
				case r == 0 && op.Total() > op.Transferred():
					res = int32(op.Total() - op.Transferred()) // the rest at once
				default:
					res = int32(min(r, op.Total()-op.Transferred()))
				}
				if res > 0 {
					want += int(res)
				}
				done = op.Advance(res)
				if len(data) == 0 && !done {
					res = int32(op.Total() - op.Transferred())
					want += int(res)
					done = op.Advance(res)
				}
			}
			before := raised
			if op.Complete(0) {
				e.raise()
			}
			if !decided {
				pending = op.Decide()
			}
			completions := raised - before
			if !pending {
				completions++
			}
			if completions != 1 {
				t.Fatalf("round %d: %d completions (pending=%v raised=%d)", round, completions, pending, raised-before)
			}
			if e.BytesTransferred() != want {
				t.Fatalf("round %d: BytesTransferred %d, want %d", round, e.BytesTransferred(), want)
			}
		}
	})
}
