//go:build !linux

package seccomptest

import (
	"errors"
	"syscall"
)

// DenyIOUring is only available on Linux.
func DenyIOUring() error { return errors.New("seccomptest: only on linux") }

// DenySyscalls is only available on Linux.
func DenySyscalls(errno syscall.Errno, nrs ...uintptr) error {
	return errors.New("seccomptest: only on linux")
}
