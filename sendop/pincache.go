package sendop

import "unsafe"

// PinCache keeps the memory of one socket's sends pinned from one send to
// the next. runtime.Pinner's Pin and Unpin each take a span lock: a
// pipeline that sends the same buffers over and over paid about a third of
// its reaper's time for them. With a cache, a buffer is pinned the first
// time the socket sends from it and stays pinned until the cache is
// released: by Trim when the socket is idle (nothing of it in the kernel)
// and the cache has grown past a small size with memory the socket has
// stopped sending from, and by Release when the socket leaves its engine. Past its hard limits the cache takes nothing
// more and such sends pin for themselves, from Begin to Complete, as
// without a cache.
//
// A cache belongs to one socket and is used under that socket's lock. Its
// zero value is ready to use.
type PinCache struct {
	keys    []unsafe.Pointer // open addressing by address; nil is an empty slot
	n       int              // pointers held
	bytes   int              // bytes sent from them when they were added
	touches int              // pins asked for since the last Trim
	pins    pinSet
}

// Limits of a PinCache. Trim releases a cache above the idle limits; a
// cache at a hard limit takes no more pointers until it is released. The
// byte counts are the capacities of the slices sent from (what lies from
// the pointer to the end of its array): a lower bound of what the cache
// keeps reachable, whatever part of it was sent.
const (
	pinCacheIdleEntries = 64
	pinCacheIdleBytes   = 1 << 20
	pinCacheMaxEntries  = 2048
	pinCacheMaxBytes    = 8 << 20
	pinCacheMinSlots    = 16
)

// Len returns the number of pointers the cache holds pinned.
func (c *PinCache) Len() int { return c.n }

// pin makes sure p's object is pinned, by the cache if it holds p or has
// room for it. It reports false when the cache is full: the caller pins p
// itself for the duration of its send.
func (c *PinCache) pin(p unsafe.Pointer, size int) bool {
	c.touches++
	if c.keys != nil {
		mask := uint(len(c.keys) - 1)
		for i := pinHash(p) & mask; ; i = (i + 1) & mask {
			switch c.keys[i] {
			case p:
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
	if 2*(c.n+1) > len(c.keys) {
		c.grow()
	}
	mask := uint(len(c.keys) - 1)
	i := pinHash(p) & mask
	for c.keys[i] != nil {
		i = (i + 1) & mask
	}
	c.keys[i] = p
	c.n++
	c.bytes += size
	c.pins.pin(p)
	return true
}

// grow doubles the table (load factor at most 1/2).
func (c *PinCache) grow() {
	old := c.keys
	c.keys = make([]unsafe.Pointer, max(pinCacheMinSlots, 2*len(old)))
	mask := uint(len(c.keys) - 1)
	for _, p := range old {
		if p == nil {
			continue
		}
		i := pinHash(p) & mask
		for c.keys[i] != nil {
			i = (i + 1) & mask
		}
		c.keys[i] = p
	}
}

// Trim releases the cache if it holds more than an idle socket should keep
// and the sends since the last Trim did not touch as many entries as it
// holds: then some of it is memory the socket no longer sends from (a
// pipeline that reuses its buffers touches them all between two idle
// moments and keeps them; a socket that sends from a fresh buffer each
// time keeps only the last). The socket calls it when nothing it sent is
// in the kernel: when its queue drains.
func (c *PinCache) Trim() {
	if (c.n > pinCacheIdleEntries || c.bytes > pinCacheIdleBytes) && c.touches < c.n {
		c.Release()
	}
	c.touches = 0
}

// Release unpins everything the cache holds. Nothing sent from that
// memory may still be in the kernel.
func (c *PinCache) Release() {
	if c.n == 0 {
		return
	}
	c.pins.unpin()
	if len(c.keys) > 4*pinCacheMinSlots {
		c.keys = nil // a burst's table is not kept for an idle socket
	} else {
		clear(c.keys)
	}
	c.n, c.bytes, c.touches = 0, 0, 0
}

// pinHash spreads addresses (16-byte aligned and clustered) over the table.
func pinHash(p unsafe.Pointer) uint {
	return uint((uint64(uintptr(p)) >> 4) * 0x9E3779B97F4A7C15 >> 32)
}
