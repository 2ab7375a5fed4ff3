package ring

import (
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxBufRingEntries is the most entries a provided buffer ring may have:
// the kernel's ring index is 16 bits and it refuses 65536.
const MaxBufRingEntries = 1 << 15

// BufRing is a provided buffer ring (IORING_REGISTER_PBUF_RING, 5.19): a
// group of equal buffers, named by a buffer group id, from which the
// kernel takes one when data arrives for a request that selects from the
// group (PrepRecvMultishot). Its CQE names the buffer by id (BufferID);
// the caller reads the bytes (Buf, Bundle) and gives the buffer back
// (Recycle) once done with them — typically when the send of those bytes
// has completed. An idle request holds no buffer.
//
// Memory: one anonymous mapping, page aligned, outside the Go heap, so
// the garbage collector neither moves nor scans it and the kernel may
// write into it at any time: the ring of Entries struct io_uring_buf
// entries, then Entries buffers of Size bytes (buffer id i at offset
// i × Size). Nothing is copied on the way in or out.
//
// Ownership: a buffer id is either in the ring (the kernel may take it)
// or out (the caller's, from the CQE that names it until Recycle). The
// ring's tail is ours: Recycle writes the entry at tail & mask and then
// publishes the new tail with a release store, which the kernel reads
// with an acquire load. The head is the kernel's and is not visible here.
// Since there are exactly Entries buffers, the ring never holds more
// than it has room for — as long as no id is recycled while it is in the
// ring (twice, or one no CQE has named): that corrupts the ring and is
// not detected.
//
// Concurrency: Buf, Bundle and the accessors may run on any goroutine at
// any time before Close. Recycle and RecycleBatch may run concurrently
// with each other and with everything else: a small mutex serializes the
// tail, since entry and tail must be written together and Go has no
// 16-bit atomics (a lock-free scheme would have recyclers wait for
// each other to publish in order anyway). Close may race with Recycle
// (a late Recycle does nothing), but the caller must not use a slice
// from Buf or Bundle after Close: the memory is unmapped. The ring's Close
// only unregisters the group, so that buffers still held stay readable.
type BufRing struct {
	r    *Ring
	bgid uint16
	mask uint16
	size int

	mem  []byte     // the whole mapping; nil once freed (under mu)
	ring []bufEntry // the first entries × 16 bytes of mem; never reassigned
	bufs []byte     // the buffers, after the ring's pages; never reassigned
	// pos[bid] is the ring position (an unwrapped 16-bit index) where
	// bid was last put. Bundle starts its walk there. Atomic because the
	// reader learns of the write through the kernel, which the race
	// detector cannot see.
	pos []atomic.Uint32

	mu         sync.Mutex
	tail       uint16 // next position to fill; published under mu
	registered bool   // the kernel knows the group (under mu)
}

// RegisterBufRing maps a buffer ring of entries buffers of bufSize bytes
// each, fills it with every buffer (ids 0 … entries-1) and registers it
// as buffer group bgid. entries must be a power of two up to
// MaxBufRingEntries. The ring's Close unregisters it too; its memory lives
// until BufRing.Close.
//
// Errors: a *FeatureError (Is ErrNotSupported) without FeatureBufRing;
// ErrClosed once Close has begun; the kernel's errno, wrapped, when it
// refuses the registration (EEXIST: bgid is taken; EACCES: a restricted
// ring that does not allow it; ENOMEM: RLIMIT_MEMLOCK on the ring's
// pinned pages).
func (r *Ring) RegisterBufRing(bgid uint16, entries, bufSize int) (*BufRing, error) {
	if err := r.Require(FeatureBufRing); err != nil {
		return nil, err
	}
	if r.closing() || !r.acquire() {
		return nil, ErrClosed
	}
	// Held until the BufRing is in r.bufRings: Close then frees it.
	defer r.release()
	br, err := r.registerBufRing(bgid, entries, bufSize)
	if err != nil {
		return nil, err
	}
	r.bufMu.Lock()
	if r.bufRings == nil {
		r.bufRings = make(map[uint16]*BufRing)
	}
	r.bufRings[bgid] = br
	r.bufMu.Unlock()
	return br, nil
}

// registerBufRing makes and registers a BufRing without recording it in
// the ring: New's probe uses it as is.
func (r *Ring) registerBufRing(bgid uint16, entries, bufSize int) (*BufRing, error) {
	if entries < 1 || entries > MaxBufRingEntries || entries&(entries-1) != 0 {
		return nil, errorf("buffer ring entries %d: want a power of two in [1, %d]", entries, MaxBufRingEntries)
	}
	if bufSize < 1 || uint64(bufSize) > 1<<31 {
		return nil, errorf("buffer size %d: want 1 to 2 GiB", bufSize)
	}
	page := os.Getpagesize()
	ringBytes := roundUp(entries*int(unsafe.Sizeof(bufEntry{})), page)
	hi, slab := bits.Mul64(uint64(entries), uint64(bufSize))
	if hi != 0 || slab > uint64(maxInt-ringBytes-page) {
		return nil, errorf("buffer ring of %d × %d bytes is too large", entries, bufSize)
	}
	mem, err := unix.Mmap(-1, 0, ringBytes+roundUp(int(slab), page),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, errorf("mmap buffer ring: %w", err)
	}
	br := &BufRing{
		r: r, bgid: bgid, mask: uint16(entries - 1), size: bufSize,
		mem:  mem,
		ring: unsafe.Slice((*bufEntry)(unsafe.Pointer(&mem[0])), entries),
		bufs: mem[ringBytes : ringBytes+int(slab)],
		pos:  make([]atomic.Uint32, entries),

		registered: true,
	}
	reg := bufReg{ringAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), ringEntries: uint32(entries), bgid: bgid}
	if err := r.register(registerPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		unix.Munmap(mem)
		return nil, errorf("register buffer ring %d: %w", bgid, err)
	}
	br.mu.Lock()
	for bid := range entries {
		br.put(uint16(bid))
	}
	br.publish()
	br.mu.Unlock()
	return br, nil
}

const maxInt = int(^uint(0) >> 1)

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// Group returns the buffer group id (the SQE's buf_group).
func (br *BufRing) Group() uint16 { return br.bgid }

// Entries returns the number of buffers, which is also the ring's size.
func (br *BufRing) Entries() int { return len(br.ring) }

// Size returns the size of each buffer.
func (br *BufRing) Size() int { return br.size }

// Memory returns every buffer of the ring, in id order, as one slice: the
// range a caller checks a buffer's address against. It is not Go memory
// (the garbage collector neither moves nor frees it), and it stays valid
// until the BufRing is closed.
func (br *BufRing) Memory() []byte { return br.bufs }

// Buf returns the first n bytes of buffer bid: what a CQE naming bid with
// res n received. Its capacity is the buffer's size, so an append never
// reaches the next buffer. The slice is valid until bid is recycled or
// the BufRing closed. It panics when bid or n is out of range.
func (br *BufRing) Buf(bid uint16, n int) []byte {
	off := int(bid) * br.size
	return br.bufs[off : off+n : off+br.size]
}

// Recycle gives buffer bid back to the kernel: it fills the entry at the
// tail and publishes the tail at once, so the buffer is usable by the
// next receive. A Recycle after Close does nothing. It panics when bid
// is not one of the ring's.
//
// Each call publishes: a buffer is never left unpublished by a caller
// that forgot a second step, and the release store costs about what the
// lock does. Callers that give back several buffers at once (a bundle)
// use RecycleBatch: one lock and one store for all.
func (br *BufRing) Recycle(bid uint16) {
	br.checkBid(bid)
	br.mu.Lock()
	if br.mem != nil {
		br.put(bid)
		br.publish()
	}
	br.mu.Unlock()
}

// RecycleBatch gives back every buffer in bids, in order, with one
// publication of the tail. See Recycle.
func (br *BufRing) RecycleBatch(bids []uint16) {
	for _, bid := range bids {
		br.checkBid(bid)
	}
	br.mu.Lock()
	if br.mem != nil && len(bids) > 0 {
		for _, bid := range bids {
			br.put(bid)
		}
		br.publish()
	}
	br.mu.Unlock()
}

func (br *BufRing) checkBid(bid uint16) {
	if int(bid) >= len(br.ring) {
		panic("ring: buffer id out of range of its BufRing")
	}
}

// put writes bid's entry at the tail and moves the local tail. The
// kernel does not read it before publish. Caller holds br.mu.
func (br *BufRing) put(bid uint16) {
	e := &br.ring[br.tail&br.mask]
	e.addr = uint64(uintptr(unsafe.Pointer(&br.bufs[int(bid)*br.size])))
	e.len = uint32(br.size) // a bundle may have shortened it
	e.bid = bid
	br.pos[bid].Store(uint32(br.tail))
	br.tail++
}

// publish stores the tail where the kernel reads it, with release
// semantics: every entry put before is visible to the kernel first. The
// tail shares its 32-bit word with entry 0's bid, which only put writes
// (under br.mu), so the word is stored whole. Caller holds br.mu.
func (br *BufRing) publish() {
	word := (*uint32)(unsafe.Pointer(&br.ring[0].bid))
	half := bufEntry{bid: br.ring[0].bid, resv: br.tail}
	atomic.StoreUint32(word, *(*uint32)(unsafe.Pointer(&half.bid)))
}

// Close unregisters the buffer group, if the ring's Close has not done so
// already, and unmaps the memory. The caller must first end every request
// that selects from the group (cancel it and see its final CQE): until
// then the kernel may write into the buffers. Slices from Buf and Bundle
// are invalid afterwards. A second Close returns nil.
//
// When the kernel refuses to unregister (EEXIST: a SINGLE_ISSUER ring and
// a thread other than its issuer) Close returns the error and changes
// nothing. After the ring's Close abandoned requests in flight Close
// leaves the memory mapped (leaked): the kernel may still write into it,
// and the next mmap could hand it out.
func (br *BufRing) Close() error {
	r := br.r
	open := r.acquire()
	if open {
		defer r.release()
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.mem == nil {
		return nil
	}
	if open {
		if err := br.unregisterLocked(); err != nil {
			return err
		}
		r.bufMu.Lock()
		if r.bufRings[br.bgid] == br {
			delete(r.bufRings, br.bgid)
		}
		r.bufMu.Unlock()
	} else if r.inflight.Load() > 0 {
		br.mem = nil
		return nil
	}
	err := unix.Munmap(br.mem)
	// ring and bufs keep pointing at the old addresses: Recycle's range
	// check reads them without the lock, and nobody may touch the bytes.
	br.mem = nil
	if err != nil {
		return errorf("munmap buffer ring: %w", err)
	}
	return nil
}

// unregisterLocked unregisters the group unless that was done already.
// The ring's fd must be open; the caller holds br.mu.
func (br *BufRing) unregisterLocked() error {
	if !br.registered {
		return nil
	}
	reg := bufReg{bgid: br.bgid}
	if err := br.r.register(unregisterPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		return errorf("unregister buffer ring %d: %w", br.bgid, err)
	}
	br.registered = false
	return nil
}

// closeBufRings unregisters every BufRing of the ring as it closes (the
// fd is still open, every user has gone). Their memory stays mapped until
// BufRing.Close: buffers handed out may still be read and sent after the
// ring has gone — a relay that holds received bytes past its engine's
// Close — and only their owner knows when they are back. A failed
// unregister is left to the fd's close, which drops the registration.
func (r *Ring) closeBufRings() {
	r.bufMu.Lock()
	brs := r.bufRings
	r.bufRings = nil
	r.bufMu.Unlock()
	for _, br := range brs {
		br.mu.Lock()
		if br.mem != nil {
			br.unregisterLocked()
		}
		br.mu.Unlock()
	}
}
