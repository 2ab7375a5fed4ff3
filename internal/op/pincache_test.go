//go:build linux

package op

import (
	"runtime"

	"golang.org/x/sys/unix"
	"testing"
	"unsafe"
	"weak"

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
	var e testArgs
	e.SetBuffer(make([]byte, 100))
	op := &e.op
	var sqe ring.SQE
	for range 3 {
		must(t, e.claim())
		op.Begin(true, pc)
		if op.pins.n != 0 || pc.Len() != 1 {
			t.Fatalf("op pins %d, cache %d; want 0 and 1", op.pins.n, pc.Len())
		}
		op.MarkInline()
		op.Prep(&sqe, 3)
		op.Advance(100)
		op.Complete(0)
		op.Decide()
	}
	// A BufferList adds its segments, the iovec array and the testArgs (its
	// msghdr); the same list again adds nothing.
	bufs := [][]byte{make([]byte, 10), make([]byte, 20)}
	e.SetBuffer(nil)
	e.SetBufferList(bufs)
	for range 2 {
		must(t, e.claim())
		op.Begin(true, pc)
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
	var e testArgs
	e.SetBuffer(make([]byte, 8))
	op := &e.op
	must(t, e.claim())
	op.Begin(true, pc)
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

// Trim keeps a small cache even with entries no longer sent from (a
// socket rotating a few small buffers, one send per drain, pins each once)
// and releases one past the idle limits; Release empties it and it works
// again afterwards.
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
	pc.pin(unsafe.Pointer(&keep[0][0]), 1)
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
	// The last buffer stays, whatever its size, until a Trim finds it no
	// longer sent from.
	pc.pin(unsafe.Pointer(&make([]byte, 1)[0]), pinCacheIdleBytes+1)
	pc.Trim()
	if pc.Len() != 1 {
		t.Fatalf("Trim released the buffer just sent from: %d left", pc.Len())
	}
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

// sendOnce sends b through op like a socket's inline send: pinned through
// pc at Begin, done at Complete. Nothing of b is left in e or op.
func sendOnce(e *testArgs, pc *PinCache, b []byte) {
	op := &e.op
	e.SetBuffer(b)
	if e.claim() != nil {
		panic("sendOnce: testArgs in use")
	}
	op.Begin(true, pc)
	op.MarkInline()
	op.Advance(int32(len(b)))
	op.Complete(0)
	op.Decide()
	e.SetBuffer(nil)
}

// sendFresh sends from a new buffer of size bytes that nothing else
// references and returns a weak pointer to it.
//
//go:noinline
func sendFresh(e *testArgs, pc *PinCache, size int) weak.Pointer[byte] {
	b := make([]byte, size)
	sendOnce(e, pc, b)
	return weak.Make(&b[0])
}

// alive collects garbage and counts the buffers still reachable.
func alive(wps []weak.Pointer[byte]) int {
	runtime.GC()
	runtime.GC()
	n := 0
	for _, wp := range wps {
		if wp.Value() != nil {
			n++
		}
	}
	return n
}

// Issue 13, item 4: a socket that sends from a fresh 64 KiB buffer each
// time, its queue draining after each send, kept every one of them pinned,
// and so reachable, while the cache stayed under 1 MiB: 15 of 15 dropped
// buffers were alive after a GC. Now it keeps at most the last.
func TestPinCacheTrimLetsFreshBuffersGo(t *testing.T) {
	pc := testPins(t)
	var e testArgs
	wps := make([]weak.Pointer[byte], 15)
	for i := range wps {
		wps[i] = sendFresh(&e, pc, 64<<10)
		pc.Trim() // the queue drained
	}
	if n := alive(wps); n > 1 || pc.Len() > 1 {
		t.Fatalf("%d of %d dropped 64 KiB buffers still alive, %d pinned by the cache after Trim; want at most 1", n, len(wps), pc.Len())
	}
}

// An entry sent from many times counts once: it does not hide an entry no
// longer sent from.
func TestPinCacheTrimCountsEntriesOnce(t *testing.T) {
	pc := testPins(t)
	var e testArgs
	hot := make([]byte, 64<<10)
	wps := []weak.Pointer[byte]{sendFresh(&e, pc, 64<<10)}
	pc.Trim()
	for range 8 {
		sendOnce(&e, pc, hot)
	}
	pc.Trim()
	if n := alive(wps); n != 0 {
		t.Fatalf("a buffer no longer sent from is alive behind one sent 8 times (cache %d)", pc.Len())
	}
	runtime.KeepAlive(hot)
}

// Sweep releases a cache nothing was pinned through since the previous
// Sweep, keeps one that was, and reports whether the cache is empty.
func TestPinCacheSweep(t *testing.T) {
	pc := testPins(t)
	if !pc.Sweep() {
		t.Fatal("Sweep of an empty cache reports it not empty")
	}
	var e testArgs
	// Under the idle size, Trim keeps it; a drain is no use for Sweep.
	wps := []weak.Pointer[byte]{sendFresh(&e, pc, 4<<10)}
	pc.Trim()
	if pc.Sweep() || pc.Len() != 1 {
		t.Fatalf("Sweep right after a send released the cache (%d left)", pc.Len())
	}
	buf := make([]byte, 64)
	sendOnce(&e, pc, buf)
	pc.Trim()
	if pc.Sweep() || pc.Len() != 2 {
		t.Fatalf("Sweep released a cache sent through since the last Sweep (%d left)", pc.Len())
	}
	if !pc.Sweep() || pc.Len() != 0 || pc.slots != nil {
		t.Fatalf("Sweep kept an untouched cache: %d entries, %d slots", pc.Len(), len(pc.slots))
	}
	if n := alive(wps); n != 0 {
		t.Fatal("a swept buffer is still alive")
	}
	// The cache works again, and the next Sweep sees the use.
	sendOnce(&e, pc, buf)
	if pc.Len() != 1 || pc.Sweep() {
		t.Fatalf("after a sweep: %d entries, or the next Sweep missed a use", pc.Len())
	}
}

// A pipeline that reuses its buffers keeps them across drains, whatever
// their size, and pays neither a Pin nor an allocation per send: 8 testArgs
// sent in bursts that each touch all of them (the P1 shape), and a socket
// rotating 8 small buffers one send per drain.
func TestPinCachePipelineKeepsBuffers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  int
		burst int // sends between two drains
	}{
		{"bursts of 8x64KiB", 64 << 10, 8},
		{"one 64B send per drain", 64, 1},
		{"three 64B sends per drain", 64, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := testPins(t)
			args := make([]testArgs, 8)
			bufs := make([][]byte, len(args))
			for i := range bufs {
				bufs[i] = make([]byte, tc.size)
			}
			next := 0
			burst := func() {
				for range tc.burst {
					sendOnce(&args[next], pc, bufs[next])
					next = (next + 1) % len(args)
				}
				pc.Trim()
			}
			for range len(args) { // warm up: every buffer sent once
				burst()
			}
			released := 0
			allocs := testing.AllocsPerRun(1000, func() {
				burst()
				if pc.Len() != len(bufs) {
					released++
				}
			})
			if released > 0 || pc.Len() != len(bufs) {
				t.Fatalf("cache released %d times in 1000 bursts (holds %d of %d)", released, pc.Len(), len(bufs))
			}
			if allocs != 0 {
				t.Fatalf("%v allocations per burst; want 0", allocs)
			}
		})
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
	var e testArgs
	e.SetBuffer(make([]byte, 64))
	op := &e.op
	var sqe ring.SQE
	b.ReportAllocs()
	for b.Loop() {
		e.claim()
		op.Begin(true, pc)
		op.MarkInline()
		op.Prep(&sqe, 3)
		op.Advance(64)
		op.Complete(0)
		op.Decide()
	}
}

// Memory outside the Go heap that the cache is told of (a receive pool)
// is neither pinned nor recorded; Go memory still is.
func TestPinCacheExempt(t *testing.T) {
	mem, err := unix.Mmap(-1, 0, 1<<16, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	pc := testPins(t)
	pc.Exempt = new(Exempt)
	pc.Exempt.Add(mem[:1<<15])
	for _, off := range []int{0, 4096, 1<<15 - 1} {
		if !pc.pin(unsafe.Pointer(&mem[off]), 1) {
			t.Fatalf("pin of exempt memory at %d refused", off)
		}
	}
	if pc.Len() != 0 {
		t.Fatalf("cache holds %d pointers into exempt memory, want 0", pc.Len())
	}
	pc.pin(unsafe.Pointer(&mem[1<<15]), 1) // past the range: recorded
	goMem := make([]byte, 64)
	pc.pin(unsafe.Pointer(&goMem[0]), len(goMem))
	if pc.Len() != 2 {
		t.Fatalf("cache holds %d pointers, want 2 (one past the exempt range, one of Go memory)", pc.Len())
	}
}
