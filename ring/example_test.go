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

// Send a message on a socket through the ring and pick up its completion
// inline, right after the io_uring_enter that submitted it.
func Example() {
	r, err := ring.New(ring.Config{})
	if errors.Is(err, ring.ErrNotSupported) {
		log.Printf("no io_uring here, use write(2): %v", err)
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])

	msg := []byte("hello") // must stay reachable until its CQE
	r.LockSQ()
	sqe, err := r.GetSQE()
	if err != nil {
		r.UnlockSQ()
		log.Fatal(err)
	}
	ring.PrepSend(sqe, fds[0], msg, unix.MSG_NOSIGNAL)
	sqe.SetUserData(1)
	r.UnlockSQ() // publishes the SQE

	if _, err := r.Submit(); err != nil {
		log.Fatal(err)
	}
	// A send on an idle socket usually completes inside Submit; a reaper
	// (StartReaper) would deliver it otherwise.
	if n, ok := r.TryHarvest(printer{}); ok && n == 0 {
		fmt.Println("still in flight")
	}
}
