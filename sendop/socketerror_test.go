package sendop

import "testing"

// socketErrorTable is .NET's System.Net.Sockets.SocketError, written out by
// hand: each constant, its .NET number and its .NET name.
var socketErrorTable = []struct {
	s     SocketError
	value int
	name  string
}{
	{Success, 0, "Success"},
	{SocketErrorGeneric, -1, "SocketError"},
	{IOPending, 997, "IOPending"},
	{OperationAborted, 995, "OperationAborted"},
	{Interrupted, 10004, "Interrupted"},
	{AccessDenied, 10013, "AccessDenied"},
	{Fault, 10014, "Fault"},
	{InvalidArgument, 10022, "InvalidArgument"},
	{TooManyOpenSockets, 10024, "TooManyOpenSockets"},
	{WouldBlock, 10035, "WouldBlock"},
	{InProgress, 10036, "InProgress"},
	{AlreadyInProgress, 10037, "AlreadyInProgress"},
	{NotSocket, 10038, "NotSocket"},
	{DestinationAddressRequired, 10039, "DestinationAddressRequired"},
	{MessageSize, 10040, "MessageSize"},
	{ProtocolType, 10041, "ProtocolType"},
	{ProtocolOption, 10042, "ProtocolOption"},
	{ProtocolNotSupported, 10043, "ProtocolNotSupported"},
	{SocketNotSupported, 10044, "SocketNotSupported"},
	{OperationNotSupported, 10045, "OperationNotSupported"},
	{ProtocolFamilyNotSupported, 10046, "ProtocolFamilyNotSupported"},
	{AddressFamilyNotSupported, 10047, "AddressFamilyNotSupported"},
	{AddressAlreadyInUse, 10048, "AddressAlreadyInUse"},
	{AddressNotAvailable, 10049, "AddressNotAvailable"},
	{NetworkDown, 10050, "NetworkDown"},
	{NetworkUnreachable, 10051, "NetworkUnreachable"},
	{NetworkReset, 10052, "NetworkReset"},
	{ConnectionAborted, 10053, "ConnectionAborted"},
	{ConnectionReset, 10054, "ConnectionReset"},
	{NoBufferSpaceAvailable, 10055, "NoBufferSpaceAvailable"},
	{IsConnected, 10056, "IsConnected"},
	{NotConnected, 10057, "NotConnected"},
	{Shutdown, 10058, "Shutdown"},
	{TimedOut, 10060, "TimedOut"},
	{ConnectionRefused, 10061, "ConnectionRefused"},
	{HostDown, 10064, "HostDown"},
	{HostUnreachable, 10065, "HostUnreachable"},
	{ProcessLimit, 10067, "ProcessLimit"},
	{SystemNotReady, 10091, "SystemNotReady"},
	{VersionNotSupported, 10092, "VersionNotSupported"},
	{NotInitialized, 10093, "NotInitialized"},
	{Disconnecting, 10101, "Disconnecting"},
	{TypeNotFound, 10109, "TypeNotFound"},
	{HostNotFound, 11001, "HostNotFound"},
	{TryAgain, 11002, "TryAgain"},
	{NoRecovery, 11003, "NoRecovery"},
	{NoData, 11004, "NoData"},
}

func TestSocketErrorValuesMatchDotNet(t *testing.T) {
	if got, want := len(socketErrorTable), 47; got != want {
		t.Fatalf("table has %d SocketErrors, .NET defines %d", got, want)
	}
	seen := make(map[SocketError]string)
	for _, tt := range socketErrorTable {
		if int(tt.s) != tt.value {
			t.Errorf("%s = %d, want %d", tt.name, int(tt.s), tt.value)
		}
		if prev, dup := seen[tt.s]; dup {
			t.Errorf("%s and %s share the value %d", prev, tt.name, tt.value)
		}
		seen[tt.s] = tt.name
	}
}

func TestSocketErrorString(t *testing.T) {
	for _, tt := range socketErrorTable {
		if got := tt.s.String(); got != tt.name {
			t.Errorf("SocketError(%d).String() = %q, want %q", tt.value, got, tt.name)
		}
	}
}

func TestSocketErrorStringUnknown(t *testing.T) {
	for _, tt := range []struct {
		s    SocketError
		want string
	}{
		{12345, "SocketError(12345)"},
		{-2, "SocketError(-2)"},
		{10059, "SocketError(10059)"}, // a gap in .NET's numbering
	} {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("SocketError(%d).String() = %q, want %q", int(tt.s), got, tt.want)
		}
	}
}

func TestSocketErrorStringAllocs(t *testing.T) {
	var sink string
	for _, tt := range socketErrorTable {
		if n := testing.AllocsPerRun(100, func() { sink = tt.s.String() }); n != 0 {
			t.Errorf("%s.String() allocates %v times, want 0", tt.name, n)
		}
	}
	_ = sink
}
