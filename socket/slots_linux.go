package socket

import (
	"sync"
	"sync/atomic"
)

// slotTable maps a ring's user_data slot index to its Socket. Registering
// and unregistering are O(1) and allocate nothing in steady state: slots
// live in chunks of slotChunk that are never copied or moved, so a lookup
// from the reaper is two atomic loads and no lock, whatever the number of
// live sockets. Only growing the table — a new chunk when every slot is
// taken — copies the short list of chunk pointers. Freed indexes are
// reused, last freed first; the generation in each user_data keeps a CQE
// of a socket that left from being taken for one that took its slot.
type slotTable struct {
	chunks atomic.Pointer[[]*slotChunkT] // copy-on-grow list of chunks
	mu     sync.Mutex                    // serializes put and del
	free   []uint32
	n      uint32 // slots handed out so far (the next new index)
}

const slotChunk = 1024

type slotChunkT [slotChunk]atomic.Pointer[Socket]

// put registers s and returns its index.
func (t *slotTable) put(s *Socket) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var idx uint32
	if n := len(t.free); n > 0 {
		idx = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		idx = t.n
		t.n++
		var chunks []*slotChunkT
		if p := t.chunks.Load(); p != nil {
			chunks = *p
		}
		if int(idx/slotChunk) == len(chunks) {
			grown := make([]*slotChunkT, len(chunks)+1)
			copy(grown, chunks)
			grown[len(chunks)] = new(slotChunkT)
			t.chunks.Store(&grown)
		}
	}
	t.slot(idx).Store(s)
	return idx
}

// del unregisters the socket at idx.
func (t *slotTable) del(idx uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.slot(idx).Store(nil)
	t.free = append(t.free, idx)
}

// get returns the socket at idx, or nil; it takes no lock.
func (t *slotTable) get(idx uint32) *Socket {
	p := t.chunks.Load()
	if p == nil || int(idx/slotChunk) >= len(*p) {
		return nil
	}
	return (*p)[idx/slotChunk][idx%slotChunk].Load()
}

func (t *slotTable) slot(idx uint32) *atomic.Pointer[Socket] {
	return &(*t.chunks.Load())[idx/slotChunk][idx%slotChunk]
}
