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
	switch errno {
	case 0:
		return Success
	case syscall.EAGAIN: // == syscall.EWOULDBLOCK on Linux
		return WouldBlock
	case syscall.EMSGSIZE:
		return MessageSize
	case syscall.EPIPE, syscall.ESHUTDOWN:
		return Shutdown
	case syscall.ECONNRESET:
		return ConnectionReset
	case syscall.ECANCELED, syscall.EBADF:
		return OperationAborted
	case syscall.ENOTCONN:
		return NotConnected
	case syscall.ENOBUFS, syscall.ENOMEM:
		return NoBufferSpaceAvailable
	case syscall.ETIMEDOUT, syscall.ETIME:
		return TimedOut
	case syscall.ECONNREFUSED:
		return ConnectionRefused
	case syscall.ECONNABORTED:
		return ConnectionAborted
	case syscall.EHOSTUNREACH:
		return HostUnreachable
	case syscall.EHOSTDOWN:
		return HostDown
	case syscall.ENETUNREACH:
		return NetworkUnreachable
	case syscall.ENETDOWN:
		return NetworkDown
	case syscall.ENETRESET:
		return NetworkReset
	case syscall.EINTR:
		return Interrupted
	case syscall.EACCES, syscall.EPERM:
		return AccessDenied
	case syscall.EFAULT:
		return Fault
	case syscall.EINVAL:
		return InvalidArgument
	case syscall.EMFILE, syscall.ENFILE:
		return TooManyOpenSockets
	case syscall.EINPROGRESS:
		return InProgress
	case syscall.EALREADY:
		return AlreadyInProgress
	case syscall.ENOTSOCK:
		return NotSocket
	case syscall.EDESTADDRREQ:
		return DestinationAddressRequired
	case syscall.EPROTOTYPE:
		return ProtocolType
	case syscall.ENOPROTOOPT:
		return ProtocolOption
	case syscall.EPROTONOSUPPORT:
		return ProtocolNotSupported
	case syscall.ESOCKTNOSUPPORT:
		return SocketNotSupported
	case syscall.EOPNOTSUPP: // == syscall.ENOTSUP on Linux
		return OperationNotSupported
	case syscall.EPFNOSUPPORT:
		return ProtocolFamilyNotSupported
	case syscall.EAFNOSUPPORT:
		return AddressFamilyNotSupported
	case syscall.EADDRINUSE:
		return AddressAlreadyInUse
	case syscall.EADDRNOTAVAIL:
		return AddressNotAvailable
	case syscall.EISCONN:
		return IsConnected
	}
	return SocketErrorGeneric
}
