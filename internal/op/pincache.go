package op

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// PinCache keeps the memory of one socket's sends pinned from one send to
// the next. runtime.Pinner's Pin and Unpin each take a span lock: a
// pipeline that sends the same buffers over and over paid about a third of
// its reaper's time for them. With a cache, a buffer is pinned the first
// time the socket sends from it and stays pinned until the cache is
// released, all at once (a Pinner cannot let go of one pointer):
//
//   - by Trim, when the socket's queue drains, if some entry was not sent
//     from since the previous Trim and the cache is past a small idle size
//     (pinCacheIdleEntries, pinCacheIdleBytes): a pipeline that reuses its
//     buffers touches them all between two drains and keeps them; a socket
//     that sends from a fresh buffer each time keeps its last one or two,
//     however large;
//   - by Sweep, which the engine calls about once a second for sockets
//     whose queue is empty and whose cache is not, if nothing was pinned
//     through the cache since the previous Sweep: an idle socket keeps
//     nothing its caller let go of for longer than two sweeps;
//   - by Release, when the socket leaves its engine.
//
// The idle size lets a socket that rotates a few small buffers, one send
// at a time (each send drains its queue), keep them without a Pin and an
// Unpin per send; Sweep bounds for how long that memory outlives its use.
// Past its hard limits the cache takes nothing more and such sends pin for
// themselves, from Begin to Complete, as without a cache.
//
// A cache belongs to one socket and is used under that socket's lock; Trim,
// Sweep and Release only when nothing sent from the cached memory is still
// in the kernel. Its zero value is ready to use.
type PinCache struct {
	// Exempt, when set, names memory the cache never pins nor records:
	// not Go memory (the engine's receive pools), which a Pinner would
	// not pin anyway — recording it would only grow the table and count
	// towards the cache's limits.
	Exempt *Exempt

	slots []pinSlot // open addressing by address; p == nil is an empty slot
	n     int       // pointers held
	bytes int       // bytes sent from them when they were added
	epoch uint64    // advanced by each Trim that keeps the cache
	fresh int       // entries sent from in this epoch (stamped with it)
	used  bool      // a pin was asked for since the last Sweep
	pins  pinSet
}

// pinSlot is a cached pointer and the epoch it was last sent from in. The
// stamp shares the pointer's cache line: a hit costs a compare, and a store
// only on an entry's first send of an epoch.
type pinSlot struct {
	p     unsafe.Pointer
	epoch uint64
}

// Limits of a PinCache. Trim releases a cache past either idle limit that
// holds an entry not sent from since the previous Trim; a cache at a hard
// limit takes no more pointers until it is released. The byte counts are
// the capacities of the slices sent from (what lies from the pointer to the
// end of its array): a lower bound of what the cache keeps reachable,
// whatever part of it was sent.
const (
	pinCacheIdleEntries = 64
	pinCacheIdleBytes   = 64 << 10
	pinCacheMaxEntries  = 2048
	pinCacheMaxBytes    = 8 << 20
	pinCacheMinSlots    = 16
	// pinCacheKeepSlots is the largest table a Trim's release keeps for
	// the next sends (2 KiB); Sweep drops any.
	pinCacheKeepSlots = 2 * pinCacheIdleEntries
)

// Len returns the number of pointers the cache holds pinned.
func (c *PinCache) Len() int { return c.n }

// pin makes sure p's object is pinned, by the cache if it holds p or has
// room for it. It reports false when the cache is full: the caller pins p
// itself for the duration of its send.
func (c *PinCache) pin(p unsafe.Pointer, size int) bool {
	if c.Exempt != nil && c.Exempt.has(p) {
		return true
	}
	c.used = true
	if c.slots != nil {
		mask := uint(len(c.slots) - 1)
		for i := pinHash(p) & mask; ; i = (i + 1) & mask {
			s := &c.slots[i]
			switch s.p {
			case p:
				if s.epoch != c.epoch {
					s.epoch = c.epoch
					c.fresh++
				}
				return true
			case nil:
				goto miss
			}
		}
	}
miss:
	if c.n >= pinCacheMaxEntries || c.bytes+size > pinCacheMaxBytes {
		return false
	}
	if 2*(c.n+1) > len(c.slots) {
		c.grow()
	}
	mask := uint(len(c.slots) - 1)
	i := pinHash(p) & mask
	for c.slots[i].p != nil {
		i = (i + 1) & mask
	}
	c.slots[i] = pinSlot{p, c.epoch}
	c.n++
	c.fresh++
	c.bytes += size
	c.pins.pin(p)
	return true
}

// grow doubles the table (load factor at most 1/2).
func (c *PinCache) grow() {
	old := c.slots
	c.slots = make([]pinSlot, max(pinCacheMinSlots, 2*len(old)))
	mask := uint(len(c.slots) - 1)
	for _, s := range old {
		if s.p == nil {
			continue
		}
		i := pinHash(s.p) & mask
		for c.slots[i].p != nil {
			i = (i + 1) & mask
		}
		c.slots[i] = s
	}
}

// Trim releases the cache if it holds an entry the socket has not sent
// from since the previous Trim and is past its idle size; otherwise a new
// epoch begins. The socket calls it when nothing it sent is in the kernel:
// when its queue drains. Entries count once however often they were sent
// from, so buffers sent again and again do not hide one no longer sent
// from.
func (c *PinCache) Trim() {
	if c.n == 0 {
		return
	}
	if c.fresh < c.n && (c.n > pinCacheIdleEntries || c.bytes > pinCacheIdleBytes) {
		c.release(pinCacheKeepSlots)
		return
	}
	c.epoch++
	c.fresh = 0
}

// Sweep releases the cache, and drops its table, if nothing was pinned
// through it since the previous Sweep (or if it is empty). It reports whether the cache is now
// empty: the engine sweeps a socket whose queue drained with a non-empty
// cache about once a second, until Sweep reports true, so an idle socket
// keeps none of its senders' memory for longer than two sweeps. The socket
// calls it with its lock held and only when nothing it sent is in the
// kernel (its queue is empty).
func (c *PinCache) Sweep() (empty bool) {
	if c.used && c.n > 0 {
		c.used = false
		return false
	}
	c.used = false
	c.release(0)
	return true
}

// Release unpins everything the cache holds and drops its table: the
// socket leaves its engine. Nothing sent from that memory may still be in
// the kernel.
func (c *PinCache) Release() { c.release(0) }

// release empties the cache, keeping its table if it has at most keep
// slots.
func (c *PinCache) release(keep int) {
	if c.n > 0 {
		c.pins.unpin()
	}
	if len(c.slots) > keep {
		c.slots = nil // a burst's table is not kept for an idle socket
	} else if c.n > 0 {
		clear(c.slots)
	}
	c.n, c.bytes, c.fresh = 0, 0, 0
}

// pinHash spreads addresses (16-byte aligned and clustered) over the table.
func pinHash(p unsafe.Pointer) uint {
	return uint((uint64(uintptr(p)) >> 4) * 0x9E3779B97F4A7C15 >> 32)
}

// Exempt is a set of memory ranges outside the Go heap that pin caches
// skip (PinCache.Exempt). It is shared by an engine's sockets; ranges are
// added rarely (a receive pool made) and read on every pin, so readers
// load a slice that Add replaces, never changes.
type Exempt struct {
	mu     sync.Mutex
	ranges atomic.Pointer[[]memRange]
}

type memRange struct{ lo, n uintptr }

// Add exempts b's memory. It must not be Go memory.
func (x *Exempt) Add(b []byte) {
	if len(b) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	var cur []memRange
	if p := x.ranges.Load(); p != nil {
		cur = *p
	}
	next := append(cur[:len(cur):len(cur)], memRange{uintptr(unsafe.Pointer(&b[0])), uintptr(len(b))})
	x.ranges.Store(&next)
}

// has reports whether p lies in an exempt range.
func (x *Exempt) has(p unsafe.Pointer) bool {
	rs := x.ranges.Load()
	if rs == nil {
		return false
	}
	for _, r := range *rs {
		if uintptr(p)-r.lo < r.n {
			return true
		}
	}
	return false
}
