package sendop

import "strconv"

// SocketError is the result code of a send, the analogue of .NET's
// System.Net.Sockets.SocketError.
//
// Its numeric values are exactly .NET's (which are the Winsock codes): a
// program ported from .NET that logs, stores or compares the number — for
// example MessageSize == 10040 — keeps working unchanged. Do not renumber.
//
// A Linux errno becomes a SocketError in one place only, SocketErrorOf; no
// other code translates errnos.
type SocketError int

// The values of .NET's System.Net.Sockets.SocketError.
const (
	Success                    SocketError = 0     // the operation succeeded
	SocketErrorGeneric         SocketError = -1    // an unspecified error (.NET: SocketError)
	IOPending                  SocketError = 997   // an overlapped operation is in progress
	OperationAborted           SocketError = 995   // aborted, typically because the socket was closed
	Interrupted                SocketError = 10004 // a blocking call was interrupted
	AccessDenied               SocketError = 10013 // permission denied
	Fault                      SocketError = 10014 // a bad pointer address
	InvalidArgument            SocketError = 10022 // an invalid argument
	TooManyOpenSockets         SocketError = 10024 // too many open descriptors
	WouldBlock                 SocketError = 10035 // the operation would block
	InProgress                 SocketError = 10036 // a blocking operation is in progress
	AlreadyInProgress          SocketError = 10037 // an operation is already in progress
	NotSocket                  SocketError = 10038 // the descriptor is not a socket
	DestinationAddressRequired SocketError = 10039 // a required address was omitted
	MessageSize                SocketError = 10040 // the datagram is too long
	ProtocolType               SocketError = 10041 // the protocol type is wrong for this socket
	ProtocolOption             SocketError = 10042 // an unknown or unsupported option
	ProtocolNotSupported       SocketError = 10043 // the protocol is not supported
	SocketNotSupported         SocketError = 10044 // the socket type is not supported
	OperationNotSupported      SocketError = 10045 // the operation is not supported for this socket
	ProtocolFamilyNotSupported SocketError = 10046 // the protocol family is not supported
	AddressFamilyNotSupported  SocketError = 10047 // the address family is not supported
	AddressAlreadyInUse        SocketError = 10048 // the address is already in use
	AddressNotAvailable        SocketError = 10049 // the address is not valid in this context
	NetworkDown                SocketError = 10050 // the network is down
	NetworkUnreachable         SocketError = 10051 // no route to the network
	NetworkReset               SocketError = 10052 // the connection was broken by a network reset
	ConnectionAborted          SocketError = 10053 // the connection was aborted locally
	ConnectionReset            SocketError = 10054 // the connection was reset by the peer
	NoBufferSpaceAvailable     SocketError = 10055 // no buffer space or memory is available
	IsConnected                SocketError = 10056 // the socket is already connected
	NotConnected               SocketError = 10057 // the socket is not connected
	Shutdown                   SocketError = 10058 // the socket has been shut down for sending
	TimedOut                   SocketError = 10060 // the operation timed out
	ConnectionRefused          SocketError = 10061 // the peer refused the connection
	HostDown                   SocketError = 10064 // the remote host is down
	HostUnreachable            SocketError = 10065 // no route to the host
	ProcessLimit               SocketError = 10067 // too many processes use the sockets provider
	SystemNotReady             SocketError = 10091 // the network subsystem is unavailable
	VersionNotSupported        SocketError = 10092 // the sockets provider version is not supported
	NotInitialized             SocketError = 10093 // the sockets provider is not initialized
	Disconnecting              SocketError = 10101 // a graceful shutdown is in progress
	TypeNotFound               SocketError = 10109 // the class type was not found
	HostNotFound               SocketError = 11001 // no such host is known
	TryAgain                   SocketError = 11002 // the name could not be resolved; retry
	NoRecovery                 SocketError = 11003 // a non-recoverable name resolution error
	NoData                     SocketError = 11004 // the name has no data of the requested type
)

// socketErrorNames are .NET's names of the values above.
var socketErrorNames = map[SocketError]string{
	Success:                    "Success",
	SocketErrorGeneric:         "SocketError",
	IOPending:                  "IOPending",
	OperationAborted:           "OperationAborted",
	Interrupted:                "Interrupted",
	AccessDenied:               "AccessDenied",
	Fault:                      "Fault",
	InvalidArgument:            "InvalidArgument",
	TooManyOpenSockets:         "TooManyOpenSockets",
	WouldBlock:                 "WouldBlock",
	InProgress:                 "InProgress",
	AlreadyInProgress:          "AlreadyInProgress",
	NotSocket:                  "NotSocket",
	DestinationAddressRequired: "DestinationAddressRequired",
	MessageSize:                "MessageSize",
	ProtocolType:               "ProtocolType",
	ProtocolOption:             "ProtocolOption",
	ProtocolNotSupported:       "ProtocolNotSupported",
	SocketNotSupported:         "SocketNotSupported",
	OperationNotSupported:      "OperationNotSupported",
	ProtocolFamilyNotSupported: "ProtocolFamilyNotSupported",
	AddressFamilyNotSupported:  "AddressFamilyNotSupported",
	AddressAlreadyInUse:        "AddressAlreadyInUse",
	AddressNotAvailable:        "AddressNotAvailable",
	NetworkDown:                "NetworkDown",
	NetworkUnreachable:         "NetworkUnreachable",
	NetworkReset:               "NetworkReset",
	ConnectionAborted:          "ConnectionAborted",
	ConnectionReset:            "ConnectionReset",
	NoBufferSpaceAvailable:     "NoBufferSpaceAvailable",
	IsConnected:                "IsConnected",
	NotConnected:               "NotConnected",
	Shutdown:                   "Shutdown",
	TimedOut:                   "TimedOut",
	ConnectionRefused:          "ConnectionRefused",
	HostDown:                   "HostDown",
	HostUnreachable:            "HostUnreachable",
	ProcessLimit:               "ProcessLimit",
	SystemNotReady:             "SystemNotReady",
	VersionNotSupported:        "VersionNotSupported",
	NotInitialized:             "NotInitialized",
	Disconnecting:              "Disconnecting",
	TypeNotFound:               "TypeNotFound",
	HostNotFound:               "HostNotFound",
	TryAgain:                   "TryAgain",
	NoRecovery:                 "NoRecovery",
	NoData:                     "NoData",
}

// String returns the .NET name of s ("MessageSize", "SocketError" for
// SocketErrorGeneric), or "SocketError(n)" for a value .NET does not define.
// It allocates only for undefined values.
func (s SocketError) String() string {
	if s == Success { // every successful send's metrics label: no lookup
		return "Success"
	}
	if name, ok := socketErrorNames[s]; ok {
		return name
	}
	return "SocketError(" + strconv.Itoa(int(s)) + ")"
}
