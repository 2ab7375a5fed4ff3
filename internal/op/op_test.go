//go:build linux

package op

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
	"unsafe"

	"github.com/uringsend/uringsend/ring"
	"golang.org/x/sys/unix"
)

func TestClaimValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(e *testArgs)
		want error
	}{
		{"neither", func(e *testArgs) {}, ErrNoBuffer},
		{"both", func(e *testArgs) { e.SetBuffer([]byte{1}); e.SetBufferList([][]byte{{1}}) }, ErrBufferConflict},
		{"dontwait", func(e *testArgs) { e.SetBuffer([]byte{1}); e.Flags = unix.MSG_DONTWAIT }, ErrBadFlags},
		{"unknown flag", func(e *testArgs) { e.SetBuffer([]byte{1}); e.Flags = 1 << 30 }, ErrBadFlags},
		{"ok", func(e *testArgs) { e.SetBuffer([]byte{1}); e.Flags = unix.MSG_MORE }, nil},
		{"empty buffer", func(e *testArgs) { e.SetBuffer([]byte{}) }, nil},
		{"empty list", func(e *testArgs) { e.SetBufferList([][]byte{}) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e testArgs
			tc.set(&e)
			err := e.claim()
			if !errors.Is(err, tc.want) {
				t.Fatalf("Claim = %v, want %v", err, tc.want)
			}
			if err != nil && e.op.state.load() != stateFree {
				t.Fatal("a refused testArgs is not free")
			}
		})
	}
}

func TestClaimTwiceIsInProgress(t *testing.T) {
	var e testArgs
	e.SetBuffer([]byte("x"))
	op := &e.op
	if err := e.claim(); err != nil {
		t.Fatal(err)
	}
	if err := e.claim(); !errors.Is(err, ErrInProgress) {
		t.Fatalf("second Claim = %v, want ErrInProgress", err)
	}
	op.Abandon()
	if err := e.claim(); err != nil {
		t.Fatalf("Claim after Abandon = %v", err)
	}
}

// The two ways out of inline: the caller deciding first, or the harvester.
func TestRaceOutcomes(t *testing.T) {
	var e testArgs
	e.SetBuffer([]byte("abc"))
	op := &e.op
	raised := 0
	e.Completed = func(*testArgs) { raised++ }

	// Harvester first: SendAsync returns false, nothing raised.
	must(t, e.claim())
	op.Begin(true, testPins(t))
	op.MarkInline()
	if op.Advance(3) != true || op.Complete(0) {
		t.Fatal("harvest before decide must not raise")
	}
	if op.Decide() {
		t.Fatal("Decide after harvest must say completed")
	}
	if e.BytesTransferred() != 3 || e.Errno() != 0 {
		t.Fatalf("result %d %v", e.BytesTransferred(), e.Errno())
	}

	// Caller first: pending, then one Completed.
	must(t, e.claim())
	op.Begin(true, testPins(t))
	op.MarkInline()
	if !op.Decide() {
		t.Fatal("Decide before harvest must say pending")
	}
	if op.Advance(-int32(syscall.EPIPE)) != true || !op.Complete(0) {
		t.Fatal("harvest after decide must raise")
	}
	e.raise()
	if raised != 1 || e.Errno() != syscall.EPIPE {
		t.Fatalf("raised %d, %v", raised, e.Errno())
	}
	if err := e.claim(); err != nil {
		t.Fatalf("testArgs not free after Completed: %v", err)
	}
}

func TestImpossibleTransitionPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("MarkQueued of a free op did not panic")
		}
	}()
	var e testArgs
	e.op.MarkQueued()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// iovBytes flattens the iovecs Prep built.
func iovBytes(msg *unix.Msghdr) []byte {
	var out []byte
	iov := unsafe.Slice(msg.Iov, msg.Iovlen)
	for _, v := range iov {
		out = append(out, unsafe.Slice(v.Base, v.Len)...)
	}
	return out
}

// A short send continues at the right segment and offset; lists longer
// than IOVMax go out in pieces on streams.
func TestAdvanceContinuesBufferList(t *testing.T) {
	var all []byte
	var bufs [][]byte
	for i := 0; i < 3000; i++ {
		b := bytes.Repeat([]byte{byte(i)}, i%7)
		all = append(all, b...)
		bufs = append(bufs, b)
	}
	var e testArgs
	e.SetBufferList(bufs)
	op := &e.op
	must(t, e.claim())
	op.Begin(true, testPins(t))
	var sent []byte
	var sqe ring.SQE
	for step := 0; ; step++ {
		op.Prep(&sqe, 3)
		if sqe.Opcode() != ring.OpSendmsg {
			t.Fatalf("opcode %d", sqe.Opcode())
		}
		msg := &op.sys.msg
		if msg.Iovlen > IOVMax {
			t.Fatalf("%d iovecs", msg.Iovlen)
		}
		chunk := iovBytes(msg)
		n := min(len(chunk), 1+step*37%1000) // short sends of odd sizes
		sent = append(sent, chunk[:n]...)
		if op.Advance(int32(n)) {
			break
		}
	}
	if !bytes.Equal(sent, all) || op.Transferred() != len(all) {
		t.Fatalf("sent %d bytes, want %d (equal=%v)", len(sent), len(all), bytes.Equal(sent, all))
	}
	op.MarkInline()
	op.Complete(0)
	op.Decide()
}

func TestDatagramChecks(t *testing.T) {
	var e testArgs
	e.SetBufferList(make([][]byte, IOVMax+1))
	op := &e.op
	must(t, e.claim())
	op.Begin(false, testPins(t))
	if op.Check() != unix.EMSGSIZE {
		t.Fatal("datagram list over IOVMax must be EMSGSIZE")
	}
	op.Abandon()
	op.Begin(true, testPins(t))
	if op.Check() != 0 {
		t.Fatal("stream list over IOVMax must be allowed")
	}
}

func TestErrorAfterProgressKeepsBytes(t *testing.T) {
	var e testArgs
	e.SetBuffer(make([]byte, 100))
	op := &e.op
	must(t, e.claim())
	op.Begin(true, testPins(t))
	if op.Advance(40) {
		t.Fatal("short stream send finished")
	}
	if !op.Advance(-int32(syscall.ECONNRESET)) {
		t.Fatal("error did not finish")
	}
	op.MarkInline()
	op.Complete(0)
	op.Decide()
	if e.BytesTransferred() != 40 || e.Errno() != syscall.ECONNRESET {
		t.Fatalf("%d %v", e.BytesTransferred(), e.Errno())
	}
}

func TestQueueFIFO(t *testing.T) {
	var q Queue
	ops := make([]Op, 5)
	for i := range ops {
		q.Push(&ops[i])
	}
	if q.Len() != 5 || q.Head() != &ops[0] {
		t.Fatal("push")
	}
	for i := range ops {
		if q.Pop() != &ops[i] {
			t.Fatalf("pop %d out of order", i)
		}
	}
	if q.Pop() != nil || q.Len() != 0 || q.Head() != nil {
		t.Fatal("empty queue")
	}
}

// Steady state: claiming, preparing and completing an op allocates nothing.
func TestOpCycleAllocs(t *testing.T) {
	pc := testPins(t)
	var e testArgs
	e.SetBufferList([][]byte{make([]byte, 10), make([]byte, 20)})
	op := &e.op
	var sqe ring.SQE
	cycle := func() {
		must(t, e.claim())
		op.Begin(true, pc)
		op.MarkInline()
		op.Prep(&sqe, 3)
		op.Advance(30)
		op.Complete(0)
		op.Decide()
	}
	cycle()
	if n := testing.AllocsPerRun(1000, cycle); n != 0 {
		t.Fatalf("%v allocs per op cycle", n)
	}
}

// A long BufferList pins every segment without allocating once its shape
// has been seen (runtime.Pinner alone would allocate past a few pins) —
// also when the socket's cache is full and the op pins for itself.
func TestLongBufferListAllocs(t *testing.T) {
	pc := fullPins(t)
	var e testArgs
	bufs := make([][]byte, 50)
	for i := range bufs {
		bufs[i] = make([]byte, 10)
	}
	e.SetBufferList(bufs)
	op := &e.op
	var sqe ring.SQE
	cycle := func() {
		must(t, e.claim())
		op.Begin(true, pc)
		if op.pins.n != 52 {
			t.Fatalf("op pinned %d pointers itself, want 52", op.pins.n)
		}
		op.MarkInline()
		op.Prep(&sqe, 3)
		op.Advance(500)
		op.Complete(0)
		op.Decide()
	}
	cycle()
	if n := testing.AllocsPerRun(1000, cycle); n != 0 {
		t.Fatalf("%v allocs per op cycle with 50 segments", n)
	}
}
