//go:build linux

package ring_test

import (
	"errors"
	"fmt"
	"log"

	"golang.org/x/sys/unix"

	"github.com/uringsend/uringsend/ring"
)

// printer is a Handler that prints each completion.
type printer struct{}

func (printer) HandleCQEs(cqes []ring.CQE) {
	for _, c := range cqes {
		if c.Result() < 0 {
			fmt.Printf("op %d failed: %v\n", c.UserData(), unix.Errno(-c.Result()))
			continue
		}
		fmt.Printf("op %d sent %d bytes\n", c.UserData(), c.Result())
	}
}

func (printer) AfterHarvest() {}

// Send a message on a socket through the ring, wait for its completion
// and hand it to a Handler. Without io_uring (an old kernel, a seccomp
// profile, kernel.io_uring_disabled) a program falls back to write(2).
func Example() {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	msg := []byte("hello") // must stay reachable until its CQE

	r, err := ring.New(ring.Config{})
	if errors.Is(err, ring.ErrNotSupported) {
		n, err := unix.Write(fds[0], msg)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("op 1 sent %d bytes\n", n)
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	r.LockSQ()
	sqe, err := r.GetSQE()
	if err != nil {
		r.UnlockSQ()
		log.Fatal(err)
	}
	ring.PrepSend(sqe, fds[0], msg, unix.MSG_NOSIGNAL)
	sqe.SetUserData(1)
	r.UnlockSQ() // publishes the SQE

	// Submit and wait for one completion in one io_uring_enter; a program
	// with a reaper (StartReaper) lets it deliver completions instead.
	if _, err := r.SubmitAndWait(1, 0); err != nil {
		log.Fatal(err)
	}
	if n, ok := r.TryHarvest(printer{}); !ok || n != 1 {
		log.Fatalf("harvested %d completions", n)
	}
	// Output: op 1 sent 5 bytes
}
