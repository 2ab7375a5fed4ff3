package proxy

import "golang.org/x/sys/unix"

// tcpState is fd's TCP state (TCP_INFO's tcpi_state), or 0 when it cannot
// be read.
func tcpState(fd int) uint8 {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0
	}
	return info.State
}
