package loadgen

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// stream returns stamped messages of the given sizes (cycled) on one
// stream, concatenated.
func stream(t testing.TB, id uint64, seqs []uint64, sizes ...int) []byte {
	t.Helper()
	var out []byte
	for i, seq := range seqs {
		msg, crc := newPayload(sizes[i%len(sizes)])
		stamp(msg, crc, id, seq)
		out = append(out, msg...)
	}
	return out
}

func seqs(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// feedChunks feeds b to a fresh verifier in random chunks.
func feedChunks(b []byte, rng *rand.Rand) verifyCounts {
	v := &streamVerifier{max: int(MaxSize)}
	var total verifyCounts
	for len(b) > 0 {
		n := min(len(b), 1+rng.IntN(300))
		v.feed(b[:n])
		b = b[n:]
		total.messages += v.c.messages
		total.verified += v.c.verified
		total.corrupt += v.c.corrupt
		total.outOfOrder += v.c.outOfOrder
		total.lost += v.c.lost
		v.c = verifyCounts{}
	}
	return total
}

func TestStreamVerifier(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	good := stream(t, 42, seqs(0, 200), HeaderSize, 33, 64, 1000, 4096)
	for range 20 {
		if got := feedChunks(good, rng); got != (verifyCounts{messages: 200, verified: 200}) {
			t.Fatalf("good stream: %+v", got)
		}
	}

	// A flipped body byte: that message is corrupt, framing survives.
	bad := bytes.Clone(good)
	off := HeaderSize + 33 + 40 // message 2's body (sizes 32, 33, 64, ...)
	bad[off] ^= 0x80
	if got := feedChunks(bad, rng); got != (verifyCounts{messages: 200, verified: 199, corrupt: 1}) {
		t.Errorf("flipped body byte: %+v", got)
	}

	// A broken magic: framing is lost; nothing after it is checked.
	bad = bytes.Clone(good)
	bad[HeaderSize+33] = 'X' // message 2's magic
	if got := feedChunks(bad, rng); got != (verifyCounts{messages: 2, verified: 2, corrupt: 1}) {
		t.Errorf("broken magic: %+v", got)
	}

	// Gaps and reordering.
	gappy := stream(t, 7, []uint64{0, 1, 2, 5, 6, 4, 7, 7, 8}, 100)
	if got := feedChunks(gappy, rng); got != (verifyCounts{messages: 9, verified: 6, lost: 2, outOfOrder: 2}) {
		t.Errorf("gaps: %+v", got)
	}
	// A stream that starts late lost its beginning.
	if got := feedChunks(stream(t, 7, seqs(3, 6), 64), rng); got != (verifyCounts{messages: 3, verified: 2, lost: 3}) {
		t.Errorf("late start: %+v", got)
	}
}

func TestVerifyDatagram(t *testing.T) {
	streams := map[uint64]*seqState{}
	var c verifyCounts
	for _, m := range []struct {
		id, seq uint64
	}{{1, 0}, {2, 0}, {1, 1}, {2, 2}, {1, 2}, {2, 1}} {
		msg, crc := newPayload(100)
		stamp(msg, crc, m.id, m.seq)
		verifyDatagram(msg, int(MaxSize), streams, &c)
	}
	if c != (verifyCounts{verified: 4, lost: 1, outOfOrder: 1}) {
		t.Errorf("%+v", c)
	}
	c = verifyCounts{}
	msg, crc := newPayload(100)
	stamp(msg, crc, 3, 0)
	verifyDatagram(msg[:99], int(MaxSize), streams, &c) // truncated
	verifyDatagram(msg[:10], int(MaxSize), streams, &c) // shorter than a header
	msg[50] ^= 1
	verifyDatagram(msg, int(MaxSize), streams, &c) // corrupt
	if c != (verifyCounts{corrupt: 3}) {
		t.Errorf("%+v", c)
	}
}

func TestSegments(t *testing.T) {
	msg := make([]byte, 10)
	for n := 1; n <= 10; n++ {
		segs := segments(msg, n)
		total := 0
		for _, s := range segs {
			total += len(s)
			if len(s) == 0 {
				t.Errorf("%d segments of 10 bytes: an empty one", n)
			}
		}
		if len(segs) != n || total != 10 {
			t.Errorf("%d segments: %d of total %d", n, len(segs), total)
		}
	}
}
