//go:build linux

package sendop

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
		set  func(e *Args)
		want error
	}{
		{"neither", func(e *Args) {}, ErrNoBuffer},
		{"both", func(e *Args) { e.SetBuffer([]byte{1}); e.SetBufferList([][]byte{{1}}) }, ErrBufferConflict},
		{"dontwait", func(e *Args) { e.SetBuffer([]byte{1}); e.Flags = unix.MSG_DONTWAIT }, ErrBadFlags},
		{"unknown flag", func(e *Args) { e.SetBuffer([]byte{1}); e.Flags = 1 << 30 }, ErrBadFlags},
		{"ok", func(e *Args) { e.SetBuffer([]byte{1}); e.Flags = unix.MSG_MORE }, nil},
		{"empty buffer", func(e *Args) { e.SetBuffer([]byte{}) }, nil},
		{"empty list", func(e *Args) { e.SetBufferList([][]byte{}) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e Args
			tc.set(&e)
			err := OpOf(&e).Claim(&e)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Claim = %v, want %v", err, tc.want)
			}
			if err != nil && OpOf(&e).state.load() != stateFree {
				t.Fatal("a refused Args is not free")
			}
		})
	}
	if err := (&Op{}).Claim(nil); !errors.Is(err, ErrNilArgs) {
		t.Fatalf("Claim(nil) = %v", err)
	}
}

func TestClaimTwiceIsInProgress(t *testing.T) {
	var e Args
	e.SetBuffer([]byte("x"))
	op := OpOf(&e)
	if err := op.Claim(&e); err != nil {
		t.Fatal(err)
	}
	if err := op.Claim(&e); !errors.Is(err, ErrInProgress) {
		t.Fatalf("second Claim = %v, want ErrInProgress", err)
	}
	op.Abandon()
	if err := op.Claim(&e); err != nil {
		t.Fatalf("Claim after Abandon = %v", err)
	}
}

// The two ways out of inline: the caller deciding first, or the harvester.
func TestRaceOutcomes(t *testing.T) {
	var e Args
	e.SetBuffer([]byte("abc"))
	op := OpOf(&e)
	raised := 0
	e.Completed = func(*Args) { raised++ }

	// Harvester first: SendAsync returns false, nothing raised.
	must(t, op.Claim(&e))
	op.Begin(&e, true, testPins(t))
	op.MarkInline()
	if op.Advance(3) != true || op.Complete(0) {
		t.Fatal("harvest before decide must not raise")
	}
	if op.Decide() {
		t.Fatal("Decide after harvest must say completed")
	}
	if e.BytesTransferred() != 3 || e.SocketError() != Success || e.Err() != nil {
		t.Fatalf("result %d %v", e.BytesTransferred(), e.SocketError())
	}

	// Caller first: pending, then one Completed.
	must(t, op.Claim(&e))
	op.Begin(&e, true, testPins(t))
	op.MarkInline()
	if !op.Decide() {
		t.Fatal("Decide before harvest must say pending")
	}
	if op.Advance(-int32(syscall.EPIPE)) != true || !op.Complete(0) {
		t.Fatal("harvest after decide must raise")
	}
	op.Raise()
	if raised != 1 || e.SocketError() != Shutdown || !errors.Is(e.Err(), syscall.EPIPE) {
		t.Fatalf("raised %d, %v %v", raised, e.SocketError(), e.Err())
	}
	if err := op.Claim(&e); err != nil {
		t.Fatalf("Args not free after Completed: %v", err)
	}
}

func TestImpossibleTransitionPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("MarkQueued of a free op did not panic")
		}
	}()
	var e Args
	OpOf(&e).MarkQueued()
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
	var e Args
	e.SetBufferList(bufs)
	op := OpOf(&e)
	must(t, op.Claim(&e))
	op.Begin(&e, true, testPins(t))
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
	var e Args
	e.SetBufferList(make([][]byte, IOVMax+1))
	op := OpOf(&e)
	must(t, op.Claim(&e))
	op.Begin(&e, false, testPins(t))
	if op.Check() != unix.EMSGSIZE {
		t.Fatal("datagram list over IOVMax must be EMSGSIZE")
	}
	op.Abandon()
	op.Begin(&e, true, testPins(t))
	if op.Check() != 0 {
		t.Fatal("stream list over IOVMax must be allowed")
	}
}

func TestErrorAfterProgressKeepsBytes(t *testing.T) {
	var e Args
	e.SetBuffer(make([]byte, 100))
	op := OpOf(&e)
	must(t, op.Claim(&e))
	op.Begin(&e, true, testPins(t))
	if op.Advance(40) {
		t.Fatal("short stream send finished")
	}
	if !op.Advance(-int32(syscall.ECONNRESET)) {
		t.Fatal("error did not finish")
	}
	op.MarkInline()
	op.Complete(0)
	op.Decide()
	if e.BytesTransferred() != 40 || e.SocketError() != ConnectionReset {
		t.Fatalf("%d %v", e.BytesTransferred(), e.SocketError())
	}
}

func TestQueueFIFO(t *testing.T) {
	var q Queue
	args := make([]Args, 5)
	for i := range args {
		q.Push(&args[i])
	}
	if q.Len() != 5 || q.Head() != &args[0] {
		t.Fatal("push")
	}
	for i := range args {
		if q.Pop() != &args[i] {
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
	var e Args
	e.SetBufferList([][]byte{make([]byte, 10), make([]byte, 20)})
	op := OpOf(&e)
	var sqe ring.SQE
	cycle := func() {
		must(t, op.Claim(&e))
		op.Begin(&e, true, pc)
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
	var e Args
	bufs := make([][]byte, 50)
	for i := range bufs {
		bufs[i] = make([]byte, 10)
	}
	e.SetBufferList(bufs)
	op := OpOf(&e)
	var sqe ring.SQE
	cycle := func() {
		must(t, op.Claim(&e))
		op.Begin(&e, true, pc)
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
