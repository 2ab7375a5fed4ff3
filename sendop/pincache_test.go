//go:build linux

package sendop

import (
	"testing"
	"unsafe"

	"github.com/uringsend/uringsend/ring"
)

// testPins returns a socket's pin cache, released when the test ends.
func testPins(t testing.TB) *PinCache {
	pc := new(PinCache)
	t.Cleanup(pc.Release)
	return pc
}

// fullPins returns a cache at its entry limit: ops begun with it pin for
// themselves.
func fullPins(t testing.TB) *PinCache {
	pc := testPins(t)
	for range pinCacheMaxEntries {
		if !pc.pin(unsafe.Pointer(&make([]byte, 1)[0]), 1) {
			t.Fatal("cache full early")
		}
	}
	return pc
}

// A buffer sent again is pinned once, by the cache; the op holds no pins of
// its own, before or after it completes.
func TestPinCacheKeepsBuffers(t *testing.T) {
	pc := testPins(t)
	var e Args
	e.SetBuffer(make([]byte, 100))
	op := OpOf(&e)
	var sqe ring.SQE
	for range 3 {
		must(t, op.Claim(&e))
		op.Begin(&e, true, pc)
		if op.pins.n != 0 || pc.Len() != 1 {
			t.Fatalf("op pins %d, cache %d; want 0 and 1", op.pins.n, pc.Len())
		}
		op.MarkInline()
		op.Prep(&sqe, 3)
		op.Advance(100)
		op.Complete(0)
		op.Decide()
	}
	// A BufferList adds its segments, the iovec array and the Args (its
	// msghdr); the same list again adds nothing.
	bufs := [][]byte{make([]byte, 10), make([]byte, 20)}
	e.SetBuffer(nil)
	e.SetBufferList(bufs)
	for range 2 {
		must(t, op.Claim(&e))
		op.Begin(&e, true, pc)
		if op.pins.n != 0 || pc.Len() != 5 {
			t.Fatalf("op pins %d, cache %d; want 0 and 5", op.pins.n, pc.Len())
		}
		op.MarkInline()
		op.Prep(&sqe, 3)
		op.Advance(30)
		op.Complete(0)
		op.Decide()
	}
}

// At its limits the cache takes nothing more: the op pins for itself and
// lets go at Complete.
func TestPinCacheFullFallsBackToOpPins(t *testing.T) {
	pc := fullPins(t)
	var e Args
	e.SetBuffer(make([]byte, 8))
	op := OpOf(&e)
	must(t, op.Claim(&e))
	op.Begin(&e, true, pc)
	if op.pins.n != 1 || pc.Len() != pinCacheMaxEntries {
		t.Fatalf("op pins %d, cache %d; want 1 and %d", op.pins.n, pc.Len(), pinCacheMaxEntries)
	}
	op.MarkInline()
	op.Advance(8)
	op.Complete(0)
	if op.pins.n != 0 {
		t.Fatalf("op still holds %d pins after Complete", op.pins.n)
	}
	op.Decide()

	big := testPins(t)
	if big.pin(unsafe.Pointer(&make([]byte, 1)[0]), pinCacheMaxBytes+1) {
		t.Fatal("cache took more than its byte limit")
	}
}

// Trim keeps a small cache (an idle socket's buffer stays pinned for its
// next send) and releases one past the idle limits; Release empties it and
// it works again afterwards.
func TestPinCacheTrimRelease(t *testing.T) {
	pc := testPins(t)
	keep := make([][]byte, pinCacheIdleEntries+1)
	for i := range keep {
		keep[i] = make([]byte, 1)
	}
	for i := range pinCacheIdleEntries {
		pc.pin(unsafe.Pointer(&keep[i][0]), 1)
	}
	pc.Trim()
	if pc.Len() != pinCacheIdleEntries {
		t.Fatalf("Trim released a cache at the idle limit: %d", pc.Len())
	}
	pc.pin(unsafe.Pointer(&keep[pinCacheIdleEntries][0]), 1)
	// Past the idle limit, a cache whose entries the socket keeps sending
	// from stays.
	for i := range keep {
		pc.pin(unsafe.Pointer(&keep[i][0]), 1)
	}
	pc.Trim()
	if pc.Len() != len(keep) {
		t.Fatalf("Trim released a cache in use: %d left", pc.Len())
	}
	// One no longer sent from goes.
	pc.pin(unsafe.Pointer(&keep[0][0]), 1)
	pc.Trim()
	if pc.Len() != 0 {
		t.Fatalf("Trim kept %d past the idle limit", pc.Len())
	}
	pc.pin(unsafe.Pointer(&make([]byte, 1)[0]), pinCacheIdleBytes+1)
	pc.Trim()
	pc.Trim()
	if pc.Len() != 0 || pc.bytes != 0 {
		t.Fatalf("Trim kept %d entries, %d bytes past the byte limit", pc.Len(), pc.bytes)
	}
	// Every pointer is found again after the table grew and after a Release.
	for round := range 2 {
		for i := range keep {
			pc.pin(unsafe.Pointer(&keep[i][0]), 1)
		}
		for i := range keep {
			pc.pin(unsafe.Pointer(&keep[i][0]), 1)
		}
		if pc.Len() != len(keep) {
			t.Fatalf("round %d: %d entries for %d pointers", round, pc.Len(), len(keep))
		}
		pc.Release()
		if pc.Len() != 0 {
			t.Fatalf("Release left %d", pc.Len())
		}
	}
}

// Sending from the cache costs no Pin/Unpin: compare with an op that pins
// for itself (go test -bench PinCache ./sendop/).
func BenchmarkPinCacheHit(b *testing.B) {
	benchPinCycle(b, testPins(b))
}

func BenchmarkPinOpOwn(b *testing.B) {
	benchPinCycle(b, fullPins(b))
}

func benchPinCycle(b *testing.B, pc *PinCache) {
	var e Args
	e.SetBuffer(make([]byte, 64))
	op := OpOf(&e)
	var sqe ring.SQE
	b.ReportAllocs()
	for b.Loop() {
		op.Claim(&e)
		op.Begin(&e, true, pc)
		op.MarkInline()
		op.Prep(&sqe, 3)
		op.Advance(64)
		op.Complete(0)
		op.Decide()
	}
}
