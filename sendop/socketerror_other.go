//go:build !linux && !plan9

package sendop

import "syscall"

// SocketErrorOf translates an errno into a SocketError. It is the one place in
// uringsend where errnos are translated.
//
// uringsend sends only on Linux (see socketerror_linux.go for the mapping);
// elsewhere no send reaches the kernel, so this version only reports 0 as
// Success and any other errno as SocketErrorGeneric.
func SocketErrorOf(errno syscall.Errno) SocketError {
	if errno == 0 {
		return Success
	}
	return SocketErrorGeneric
}
