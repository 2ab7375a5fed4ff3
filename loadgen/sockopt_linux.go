package loadgen

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// control returns the net.Dialer Control function that sets c's socket
// options on a socket before it connects, or nil if none is set.
func (c *Config) control() func(network, address string, rc syscall.RawConn) error {
	if c.SndBuf == 0 && !c.Nagle && c.Congestion == "" && c.FQRate == 0 && c.TOS == 0 {
		return nil
	}
	return func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			s := int(fd)
			set := func(what string, err error) {
				if err != nil && serr == nil {
					serr = &sockoptError{what, err}
				}
			}
			if c.SndBuf > 0 {
				set("-sndbuf", unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, int(c.SndBuf)))
			}
			if c.FQRate > 0 {
				// SO_MAX_PACING_RATE is in bytes per second.
				set("-fq-rate", unix.SetsockoptUint64(s, unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE, uint64(c.FQRate/8)))
			}
			if c.TOS != 0 {
				if network == "tcp6" || network == "udp6" {
					set("-tos", unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, c.TOS))
				} else {
					set("-tos", unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_TOS, c.TOS))
				}
			}
			if c.Congestion != "" {
				set("-congestion", unix.SetsockoptString(s, unix.IPPROTO_TCP, unix.TCP_CONGESTION, c.Congestion))
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// sockoptError is a socket option the kernel refused.
type sockoptError struct {
	flag string
	err  error
}

func (e *sockoptError) Error() string { return e.flag + ": " + e.err.Error() }
func (e *sockoptError) Unwrap() error { return e.err }

// add folds one connection's TCP_INFO into t.
func (t *TCPInfo) add(i *unix.TCPInfo) {
	rtt := (time.Duration(i.Rtt) * time.Microsecond).Seconds()
	if t.Connections == 0 || i.Snd_cwnd < t.CwndMin {
		t.CwndMin = i.Snd_cwnd
	}
	t.CwndMax = max(t.CwndMax, i.Snd_cwnd)
	t.RTTMeanSeconds = (t.RTTMeanSeconds*float64(t.Connections) + rtt) / float64(t.Connections+1)
	t.RTTMaxSeconds = max(t.RTTMaxSeconds, rtt)
	t.Connections++
	t.Retransmits += uint64(i.Total_retrans)
	t.BytesRetrans += i.Bytes_retrans
	rate := 8 * float64(i.Delivery_rate) // bytes/s in TCP_INFO
	t.DeliveryRate += rate
	t.DeliveryRateMax = max(t.DeliveryRateMax, rate)
}

// set fills c from one connection's TCP_INFO.
func (c *TCPConnInfo) set(i *unix.TCPInfo) {
	us := func(v uint64) float64 { return float64(v) / 1e6 }
	c.Retransmits = i.Total_retrans
	c.BytesRetrans = i.Bytes_retrans
	c.BytesSent = i.Bytes_sent
	c.BytesAcked = i.Bytes_acked
	c.NotSentBytes = i.Notsent_bytes
	c.RTTSeconds = us(uint64(i.Rtt))
	c.RTTVarSeconds = us(uint64(i.Rttvar))
	c.MinRTTSeconds = us(uint64(i.Min_rtt))
	c.Cwnd = i.Snd_cwnd
	c.MSS = i.Snd_mss
	c.DeliveryRate = 8 * float64(i.Delivery_rate)
	if i.Pacing_rate != ^uint64(0) { // unlimited
		c.PacingRate = 8 * float64(i.Pacing_rate)
	}
	c.BusySeconds = us(i.Busy_time)
	c.RwndLimited = us(i.Rwnd_limited)
	c.SndbufLimited = us(i.Sndbuf_limited)
}

// tcpInfo reads TCP_INFO of a TCP connection; nil otherwise.
func tcpInfo(rc syscall.RawConn) *unix.TCPInfo {
	var info *unix.TCPInfo
	rc.Control(func(fd uintptr) {
		info, _ = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	return info
}

// cpuTimes returns the process's user and system CPU time so far.
func cpuTimes() (user, sys time.Duration) {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// cpuNow returns the process's user and system CPU time.
func cpuNow() [2]time.Duration {
	u, s := cpuTimes()
	return [2]time.Duration{u, s}
}

// cpuSince returns the user and system CPU seconds since t0.
func cpuSince(t0 [2]time.Duration) (user, sys float64) {
	u, s := cpuTimes()
	return (u - t0[0]).Seconds(), (s - t0[1]).Seconds()
}
