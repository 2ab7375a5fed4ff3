package socket

import (
	"sync"
	"time"
)

// The idle sweep. A socket's pin cache keeps the buffers it sends from
// pinned — and so alive — from one send to the next; when its queue
// drains it drops the ones it stopped sending from (PinCache.Trim), but
// the last ones stay. A socket left idle would keep them for its whole
// life, out of reach of the garbage collector and of sync.Pool. So a
// socket whose queue drained with something cached goes on its ring's
// sweep list, and about once a second the sweep releases the cache of each
// listed socket that sent nothing through it since the previous sweep.
// Only sockets with a cache are on the list, each once; the timer runs
// only while the list is not empty. The epoll backend pins nothing.

// sweepEvery is the period of a ring's idle sweep: how long, at most,
// memory a socket has stopped sending from stays pinned.
const sweepEvery = time.Second

// sweeper is a ring's sweep list and its timer.
type sweeper struct {
	mu    sync.Mutex
	socks []*Socket
	timer *time.Timer
	armed bool
}

// add lists s, whose queue just drained with its cache not empty (s.swept
// was false; s.mu is held).
func (w *sweeper) add(s *Socket) {
	w.mu.Lock()
	w.socks = append(w.socks, s)
	if !w.armed {
		w.armed = true
		if w.timer == nil {
			w.timer = time.AfterFunc(sweepEvery, w.run)
		} else {
			w.timer.Reset(sweepEvery)
		}
	}
	w.mu.Unlock()
}

// run sweeps every listed socket once and keeps those whose cache is still
// in use; it runs on the timer's goroutine.
func (w *sweeper) run() {
	w.mu.Lock()
	socks := w.socks
	w.socks = nil
	w.mu.Unlock()
	keep := socks[:0]
	for _, s := range socks {
		s.mu.Lock()
		switch {
		case s.life.closing():
			s.swept = false // Engine.remove releases the cache
		case s.q.Len() > 0 || !s.pins.Sweep():
			// Busy, or sent from its cache since the last sweep. Sweep
			// is called only with nothing of s in the kernel.
			keep = append(keep, s)
		default:
			s.swept = false
		}
		s.mu.Unlock()
	}
	clear(socks[len(keep):])
	w.mu.Lock()
	w.socks = append(keep, w.socks...)
	if len(w.socks) > 0 {
		w.timer.Reset(sweepEvery)
	} else {
		w.armed = false
	}
	w.mu.Unlock()
}

// stop ends the timer when the ring closes.
func (w *sweeper) stop() {
	w.mu.Lock()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.socks, w.armed = nil, false
	w.mu.Unlock()
}
