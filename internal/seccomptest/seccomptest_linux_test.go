package seccomptest

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setup calls io_uring_setup(1, params) and returns its errno.
func setup() syscall.Errno {
	var params [120]byte // struct io_uring_params
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params)), 0)
	if errno == 0 {
		unix.Close(int(fd))
	}
	return errno
}

func TestDenyIOUring(t *testing.T) {
	if !InChild() {
		RunChild(t, "TestDenyIOUring")
		// The parent keeps io_uring: the filter stayed in the child.
		if errno := setup(); errno == syscall.EPERM {
			t.Fatal("io_uring_setup refused in the parent")
		}
		return
	}
	if err := DenyIOUring(); err != nil {
		t.Fatal(err)
	}
	// Every thread, not only the calling one: try from many goroutines.
	errs := make(chan syscall.Errno, 16)
	for range cap(errs) {
		go func() { errs <- setup() }()
	}
	for range cap(errs) {
		if errno := <-errs; errno != syscall.EPERM {
			t.Errorf("io_uring_setup: errno %v, want EPERM", errno)
		}
	}
	for _, nr := range []uintptr{unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER} {
		if _, _, errno := unix.Syscall6(nr, ^uintptr(0), 0, 0, 0, 0, 0); errno != syscall.EPERM {
			t.Errorf("syscall %d: errno %v, want EPERM", nr, errno)
		}
	}
	// Other system calls still work.
	if _, err := os.Getwd(); err != nil {
		t.Fatal(err)
	}
}

func TestDenySyscallsOtherErrno(t *testing.T) {
	if !InChild() {
		RunChild(t, "TestDenySyscallsOtherErrno")
		return
	}
	if err := DenySyscalls(syscall.ENOSYS, unix.SYS_IO_URING_SETUP); err != nil {
		t.Fatal(err)
	}
	if errno := setup(); !errors.Is(errno, syscall.ENOSYS) {
		t.Fatalf("io_uring_setup: errno %v, want ENOSYS", errno)
	}
}
