package sendop

import "syscall"

// SocketErrorOf translates a Linux errno (as found, negated, in a CQE's res,
// or returned by send/sendmsg) into a SocketError. It is the one place in
// uringsend where errnos are translated; everything else calls it.
//
// The mapping follows .NET's Unix PAL (SystemNative_ConvertErrorPlatformToPal
// and SocketErrorPal), so a send that fails the same way reports the same
// SocketError as under .NET on Linux: 0 is Success; EPIPE and ESHUTDOWN are
// Shutdown; ECANCELED and EBADF (the socket was closed) are OperationAborted;
// ENOBUFS and ENOMEM are NoBufferSpaceAvailable; an errno without a
// counterpart is SocketErrorGeneric. SocketErrorOf does not allocate.
func SocketErrorOf(errno syscall.Errno) SocketError {
	if errno == 0 {
		return Success
	}
	if errno < syscall.Errno(len(errnoSocketErrors)) {
		if s := errnoSocketErrors[errno]; s != Success {
			return s
		}
	}
	return SocketErrorGeneric
}

// errnoSocketErrors is SocketErrorOf's table, indexed by errno: one row per
// errno with a counterpart (the compiler refuses a row given twice); the
// zero value, Success, marks an errno without one.
var errnoSocketErrors = [...]SocketError{
	syscall.EAGAIN:          WouldBlock, // == syscall.EWOULDBLOCK on Linux
	syscall.EMSGSIZE:        MessageSize,
	syscall.EPIPE:           Shutdown,
	syscall.ESHUTDOWN:       Shutdown,
	syscall.ECONNRESET:      ConnectionReset,
	syscall.ECANCELED:       OperationAborted,
	syscall.EBADF:           OperationAborted,
	syscall.ENOTCONN:        NotConnected,
	syscall.ENOBUFS:         NoBufferSpaceAvailable,
	syscall.ENOMEM:          NoBufferSpaceAvailable,
	syscall.ETIMEDOUT:       TimedOut,
	syscall.ETIME:           TimedOut,
	syscall.ECONNREFUSED:    ConnectionRefused,
	syscall.ECONNABORTED:    ConnectionAborted,
	syscall.EHOSTUNREACH:    HostUnreachable,
	syscall.EHOSTDOWN:       HostDown,
	syscall.ENETUNREACH:     NetworkUnreachable,
	syscall.ENETDOWN:        NetworkDown,
	syscall.ENETRESET:       NetworkReset,
	syscall.EINTR:           Interrupted,
	syscall.EACCES:          AccessDenied,
	syscall.EPERM:           AccessDenied,
	syscall.EFAULT:          Fault,
	syscall.EINVAL:          InvalidArgument,
	syscall.EMFILE:          TooManyOpenSockets,
	syscall.ENFILE:          TooManyOpenSockets,
	syscall.EINPROGRESS:     InProgress,
	syscall.EALREADY:        AlreadyInProgress,
	syscall.ENOTSOCK:        NotSocket,
	syscall.EDESTADDRREQ:    DestinationAddressRequired,
	syscall.EPROTOTYPE:      ProtocolType,
	syscall.ENOPROTOOPT:     ProtocolOption,
	syscall.EPROTONOSUPPORT: ProtocolNotSupported,
	syscall.ESOCKTNOSUPPORT: SocketNotSupported,
	syscall.EOPNOTSUPP:      OperationNotSupported, // == syscall.ENOTSUP on Linux
	syscall.EPFNOSUPPORT:    ProtocolFamilyNotSupported,
	syscall.EAFNOSUPPORT:    AddressFamilyNotSupported,
	syscall.EADDRINUSE:      AddressAlreadyInUse,
	syscall.EADDRNOTAVAIL:   AddressNotAvailable,
	syscall.EISCONN:         IsConnected,
}
