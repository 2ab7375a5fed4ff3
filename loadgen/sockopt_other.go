//go:build !linux

package loadgen

import (
	"syscall"
	"time"
)

// Off Linux no run gets this far (the engine is not supported): these
// only keep the package building.

func (c *Config) control() func(network, address string, rc syscall.RawConn) error { return nil }

type sockoptError struct {
	flag string
	err  error
}

func (e *sockoptError) Error() string { return e.flag + ": " + e.err.Error() }

type tcpInfoRaw struct{}

func (t *TCPInfo) add(*tcpInfoRaw)             {}
func (c *TCPConnInfo) set(*tcpInfoRaw)         {}
func tcpInfo(syscall.RawConn) *tcpInfoRaw      { return nil }
func cpuTimes() (user, sys time.Duration)      { return 0, 0 }
func cpuNow() [2]time.Duration                 { return [2]time.Duration{} }
func cpuSince([2]time.Duration) (u, s float64) { return 0, 0 }
