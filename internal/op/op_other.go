//go:build !linux

package op

import "syscall"

const allowedFlags = 0x1 | 0x4 | 0x80 // MSG_OOB | MSG_DONTROUTE | MSG_EOR
const msgNoSignal = 0

type opSys struct{}

func (o *Op) pinSys(*PinCache) {}

func (o *Op) sysAlloc() {}

// Check reports that nothing can be sent on this platform.
func (o *Op) Check() syscall.Errno { return syscall.Errno(0x5f) } // EOPNOTSUPP on most systems
