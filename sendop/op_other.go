//go:build !linux

package sendop

import (
	"syscall"
	"unsafe"
)

const allowedFlags = 0x1 | 0x4 | 0x80 // MSG_OOB | MSG_DONTROUTE | MSG_EOR
const msgNoSignal = 0

type opSys struct{}

func argsOf(o *Op) *Args {
	return (*Args)(unsafe.Add(unsafe.Pointer(o), -int(unsafe.Offsetof(Args{}.op))))
}

func (o *Op) pinSys(*PinCache) {}

func (o *Op) sysAlloc() {}

// Check reports that nothing can be sent on this platform.
func (o *Op) Check() syscall.Errno { return syscall.Errno(0x5f) } // EOPNOTSUPP on most systems
