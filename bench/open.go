//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/uringsend/uringsend/socket"
	"golang.org/x/sys/unix"
)

// l1 is issue 14's L1: the cost of opening and closing a connection's
// Socket (FromFD of one end of a socketpair, then Close) while live other
// sockets are registered on the same engine, io_uring against the epoll
// backend, at 1k and 8k live. The fd limit here (20,000) allows 8k live
// sockets for one arm at a time, so each round builds its arm's live set
// before the clock starts and closes it after.
func l1(o options, log io.Writer) ([]row, error) {
	small, big := 1000, 8000
	rows, _, err := runComparison(o, log, comparison{
		metric: nsPerOp, noBytes: true,
		cand: arm{"io_uring 8k live", openClose(socket.BackendIOURing, big)},
		bases: []baseline{{
			arm: arm{"epoll backend 8k live", openClose(socket.BackendEpoll, big)},
			id:  "L1", title: "open+close per connection, 8k live (time/op)",
			target: "≤ 1.2×", pass: atMost(1.2),
		}, {
			arm: arm{"io_uring 1k live", openClose(socket.BackendIOURing, small)},
			id:  "L1s", title: "open+close per connection, io_uring 8k live / 1k live",
			target: "≤ 1.3×", pass: atMost(1.3),
		}, {
			arm: arm{"epoll backend 1k live", openClose(socket.BackendEpoll, small)},
			id:  "L1e", title: "open+close, io_uring 8k live vs epoll 1k live",
			target: "report",
		}},
	})
	return rows, err
}

// openClose is one arm of L1.
func openClose(backend string, live int) func(r round) (sample, error) {
	return func(r round) (sample, error) {
		fds0 := openFDs()
		eng, err := socket.NewEngine(socket.EngineConfig{Backend: backend})
		if err != nil {
			return sample{}, err
		}
		defer eng.Close()
		held := make([]*socket.Socket, 0, live)
		defer func() {
			for _, s := range held {
				s.Close()
			}
		}()
		for i := 0; i < live; i++ {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return sample{}, fmt.Errorf("live socket %d: %w", i, err)
			}
			unix.Close(fds[1]) // only the registered end counts
			s, err := socket.FromFD(fds[0], socket.WithEngine(eng))
			if err != nil {
				unix.Close(fds[0])
				return sample{}, err
			}
			held = append(held, s)
		}
		var n int64
		start := time.Now()
		for time.Since(start) < r.d {
			for i := 0; i < 64; i++ {
				fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return sample{}, err
				}
				s, err := socket.FromFD(fds[0], socket.WithEngine(eng))
				if err != nil {
					return sample{}, err
				}
				if err := s.Close(); err != nil {
					return sample{}, err
				}
				unix.Close(fds[1])
			}
			n += 64
		}
		smp := sample{msgs: n, elapsed: time.Since(start)}
		if r.verify {
			for _, s := range held {
				s.Close()
			}
			held = nil
			eng.Close()
			if fds := openFDs(); fds != fds0 {
				return smp, fmt.Errorf("%d fds open after closing everything, %d before", fds, fds0)
			}
			smp.note = fmt.Sprintf("fds back to %d after %d opens and closes with %d live", fds0, n, live)
		}
		return smp, nil
	}
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}
