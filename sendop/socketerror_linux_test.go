package sendop

import (
	"syscall"
	"testing"
)

// socketErrorOfTable is the Linux errno → SocketError mapping of .NET's Unix
// PAL, with one row per errno (aliases such as EWOULDBLOCK included).
var socketErrorOfTable = []struct {
	errno syscall.Errno
	want  SocketError
}{
	{0, Success},
	{syscall.EMSGSIZE, MessageSize},
	{syscall.EPIPE, Shutdown},
	{syscall.ECONNRESET, ConnectionReset},
	{syscall.ECANCELED, OperationAborted},
	{syscall.EBADF, OperationAborted},
	{syscall.ENOTCONN, NotConnected},
	{syscall.EAGAIN, WouldBlock},
	{syscall.EWOULDBLOCK, WouldBlock},
	{syscall.ENOBUFS, NoBufferSpaceAvailable},
	{syscall.ENOMEM, NoBufferSpaceAvailable},
	{syscall.ETIMEDOUT, TimedOut},
	{syscall.ETIME, TimedOut},
	{syscall.ECONNREFUSED, ConnectionRefused},
	{syscall.ECONNABORTED, ConnectionAborted},
	{syscall.EHOSTUNREACH, HostUnreachable},
	{syscall.EHOSTDOWN, HostDown},
	{syscall.ENETUNREACH, NetworkUnreachable},
	{syscall.ENETDOWN, NetworkDown},
	{syscall.ENETRESET, NetworkReset},
	{syscall.EINTR, Interrupted},
	{syscall.EACCES, AccessDenied},
	{syscall.EPERM, AccessDenied},
	{syscall.EFAULT, Fault},
	{syscall.EINVAL, InvalidArgument},
	{syscall.EMFILE, TooManyOpenSockets},
	{syscall.ENFILE, TooManyOpenSockets},
	{syscall.EINPROGRESS, InProgress},
	{syscall.EALREADY, AlreadyInProgress},
	{syscall.ENOTSOCK, NotSocket},
	{syscall.EDESTADDRREQ, DestinationAddressRequired},
	{syscall.EPROTOTYPE, ProtocolType},
	{syscall.ENOPROTOOPT, ProtocolOption},
	{syscall.EPROTONOSUPPORT, ProtocolNotSupported},
	{syscall.ESOCKTNOSUPPORT, SocketNotSupported},
	{syscall.EOPNOTSUPP, OperationNotSupported},
	{syscall.ENOTSUP, OperationNotSupported},
	{syscall.EPFNOSUPPORT, ProtocolFamilyNotSupported},
	{syscall.EAFNOSUPPORT, AddressFamilyNotSupported},
	{syscall.EADDRINUSE, AddressAlreadyInUse},
	{syscall.EADDRNOTAVAIL, AddressNotAvailable},
	{syscall.EISCONN, IsConnected},
	{syscall.ESHUTDOWN, Shutdown},
	// No counterpart: SocketErrorGeneric.
	{syscall.ENOENT, SocketErrorGeneric},
	{syscall.EIO, SocketErrorGeneric},
	{syscall.ENXIO, SocketErrorGeneric},
	{syscall.Errno(4095), SocketErrorGeneric},
}

func TestSocketErrorOf(t *testing.T) {
	for _, tt := range socketErrorOfTable {
		if got := SocketErrorOf(tt.errno); got != tt.want {
			t.Errorf("SocketErrorOf(%d %v) = %v, want %v", uintptr(tt.errno), tt.errno, got, tt.want)
		}
	}
}

func TestSocketErrorOfAllocs(t *testing.T) {
	var sink SocketError
	for _, tt := range socketErrorOfTable {
		if n := testing.AllocsPerRun(100, func() { sink = SocketErrorOf(tt.errno) }); n != 0 {
			t.Errorf("SocketErrorOf(%v) allocates %v times, want 0", tt.errno, n)
		}
	}
	_ = sink
}
