package loadgen

import (
	"encoding/binary"
	"hash/crc32"
)

// The verify header. With Config.Verify every message starts with it
// (little-endian):
//
//	offset size
//	0      4    magic "USv1"
//	4      4    message length, header included
//	8      8    stream id: random, one per connection per run
//	16     8    sequence number within the stream, from 0
//	24     4    reserved, 0
//	28     4    CRC-32C (Castagnoli) of the body followed by bytes 0..27
//
// The body — the bytes after the header — is a fixed pattern (byte i of
// the message is byte(i*31+7)). The checksum covers the body first so that
// a sender computes the body's CRC once and a receiver can checksum a
// stream's body as it arrives and the header last.
const (
	HeaderSize = 32
	magic      = "USv1"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fillPattern writes the body pattern into b, which starts at message
// offset off.
func fillPattern(b []byte, off int) {
	for i := range b {
		b[i] = byte((off+i)*31 + 7)
	}
}

// newPayload returns a message of size bytes with the body pattern, and
// the CRC-32C of its body (the bytes after the header).
func newPayload(size int) (msg []byte, bodyCRC uint32) {
	msg = make([]byte, size)
	fillPattern(msg, 0)
	if size >= HeaderSize {
		bodyCRC = crc32.Checksum(msg[HeaderSize:], castagnoli)
	}
	return msg, bodyCRC
}

// stamp writes the header of message msg (whose body CRC is bodyCRC).
func stamp(msg []byte, bodyCRC uint32, stream, seq uint64) {
	h := msg[:HeaderSize]
	copy(h[0:4], magic)
	binary.LittleEndian.PutUint32(h[4:8], uint32(len(msg)))
	binary.LittleEndian.PutUint64(h[8:16], stream)
	binary.LittleEndian.PutUint64(h[16:24], seq)
	binary.LittleEndian.PutUint32(h[24:28], 0)
	binary.LittleEndian.PutUint32(h[28:32], crc32.Update(bodyCRC, castagnoli, h[:28]))
}

// header is a parsed verify header.
type header struct {
	length int
	stream uint64
	seq    uint64
	crc    uint32
}

// parseHeader parses h (HeaderSize bytes); ok is false if the magic or
// the length is wrong.
func parseHeader(h []byte, maxSize int) (hd header, ok bool) {
	if string(h[0:4]) != magic {
		return hd, false
	}
	hd.length = int(binary.LittleEndian.Uint32(h[4:8]))
	hd.stream = binary.LittleEndian.Uint64(h[8:16])
	hd.seq = binary.LittleEndian.Uint64(h[16:24])
	hd.crc = binary.LittleEndian.Uint32(h[28:32])
	return hd, hd.length >= HeaderSize && hd.length <= maxSize
}

// messageCRC finishes a message's checksum: bodyCRC over its body, then
// the header's first 28 bytes.
func messageCRC(bodyCRC uint32, h []byte) uint32 {
	return crc32.Update(bodyCRC, castagnoli, h[:28])
}

// segments splits msg into n nearly equal consecutive pieces.
func segments(msg []byte, n int) [][]byte {
	if n < 1 {
		n = 1
	}
	segs := make([][]byte, n)
	for i := range segs {
		lo, hi := len(msg)*i/n, len(msg)*(i+1)/n
		segs[i] = msg[lo:hi:hi]
	}
	return segs
}
