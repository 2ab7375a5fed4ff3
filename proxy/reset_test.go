//go:build linux

package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"
)

// TestResetWhileBackedUp: one peer floods, the other reads nothing, until
// the proxy has stopped reading from the first (backpressure); then one of
// them resets (SO_LINGER 0). Whichever it is, the proxy resets the other
// peer within 2 s — far from SendTimeout (30 s here) — and the connection
// is gone from its count and its gauges. A reset of the peer the proxy
// sends to fails the send on the wire at once; one of the peer it has
// stopped reading (the flooder) has nothing posted on its socket that
// would see it, and is found by the sweeper's look at the sources of
// backed-up directions (at most a sweep, 1 s here, later).
func TestResetWhileBackedUp(t *testing.T) {
	for _, tc := range []struct {
		name     string
		flooder  string // the peer that writes; the other reads nothing
		resetter string
	}{
		{"to-client/client-resets", "upstream", "client"},
		{"to-client/upstream-resets", "upstream", "upstream"},
		{"to-upstream/client-resets", "client", "client"},
		{"to-upstream/upstream-resets", "client", "upstream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, cfg Config) {
				testResetWhileBackedUp(t, cfg, tc.flooder, tc.resetter)
			})
		})
	}
}

func testResetWhileBackedUp(t *testing.T, cfg Config, flooder, resetter string) {
	cfg.MaxInflight = 128 << 10
	cfg.BufferSize = 32 << 10
	cfg.SendTimeout = 30 * time.Second
	upstreams := holdUpstreams(t, &cfg)
	p := startProxy(t, cfg)
	peers := map[string]*net.TCPConn{"client": dial(t, p)}
	select {
	case peers["upstream"] = <-upstreams:
	case <-time.After(scaled(5 * time.Second)):
		t.Fatal("the proxy did not dial the upstream")
	}
	other := map[string]string{"client": "upstream", "upstream": "client"}
	direction := directionIndexUp
	if flooder == "upstream" {
		direction = directionIndexClient
	}
	peers[flooder].SetWriteBuffer(64 << 10)
	peers[other[flooder]].SetReadBuffer(64 << 10)
	wrote := make(chan error, 1)
	go func() {
		_, err := peers[flooder].Write(make([]byte, 64<<20))
		wrote <- err // the 64 MiB never all fit: it fails with the reset or the close
	}()
	waitDirectionBackedUp(t, p, direction)

	survivor := peers[other[resetter]]
	survivor.SetReadDeadline(time.Now().Add(scaled(2 * time.Second)))
	peers[resetter].SetLinger(0)
	start := time.Now()
	peers[resetter].Close()
	info, err := waitReset(survivor)
	took := time.Since(start)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("the %s still connected %v after the %s's RST (SendTimeout %v)", other[resetter], took.Round(time.Millisecond), resetter, cfg.SendTimeout)
	case err != nil:
		t.Fatal(err)
	case info.State != tcpClose:
		t.Fatalf("the %s's socket is in TCP state %d after the proxy's RST; want %d (TCP_CLOSE)", other[resetter], info.State, tcpClose)
	}
	t.Logf("the %s was reset %v after the %s's RST", other[resetter], took.Round(time.Microsecond), resetter)
	waitFor(t, "the connection to be closed", 5*time.Second, func() bool { return len(p.snapshot()) == 0 })
	select {
	case err := <-wrote:
		switch {
		case flooder == resetter && !errors.Is(err, net.ErrClosed):
			t.Errorf("the %s's write ended with %v; want net.ErrClosed (the test closed it)", flooder, err)
		case flooder != resetter && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE):
			t.Errorf("the %s's write ended with %v; want ECONNRESET, or EPIPE after part of it", flooder, err)
		}
	case <-time.After(scaled(5 * time.Second)):
		t.Fatalf("the %s's write still blocks after the reset", flooder)
	}

	// Ended once, reset: by the read of the resetter's side or by the send
	// to it that failed — by the read (the sweeper's look) when the
	// resetter was the flooder, to which nothing was being sent.
	resets, sendErrors := ends(p, endReset), ends(p, endSendError)
	if resets+sendErrors != 1 || resetter == flooder && resets != 1 {
		t.Errorf("connection ends: reset %d, send_error %d; want 1 in all (reset, when the %s flooded and reset)", resets, sendErrors, flooder)
	}
	for r := endEOF; r < numEndReasons; r++ {
		if r != endReset && r != endSendError && ends(p, r) != 0 {
			t.Errorf("connection ends: %s %d; want 0", r, ends(p, r))
		}
	}
	if err := testutil.CollectAndCompare(p.stats, strings.NewReader(`
# HELP uringsend_proxy_open_connections Client connections being proxied now.
# TYPE uringsend_proxy_open_connections gauge
uringsend_proxy_open_connections 0
# HELP uringsend_proxy_held_buffers Buffers the connections hold now: the proxy's own (being read into or sent) and the engine's receive pool's (being sent). An idle connection holds none, except with -recv-own-buffers (one per direction).
# TYPE uringsend_proxy_held_buffers gauge
uringsend_proxy_held_buffers 0
# HELP uringsend_proxy_inflight_buffer_bytes Bytes of read buffers held by sends the engine has not completed yet (each direction of a connection holds at most -max-inflight).
# TYPE uringsend_proxy_inflight_buffer_bytes gauge
uringsend_proxy_inflight_buffer_bytes 0
`), NameOpenConnections, NameHeldBuffers, NameHeldBytes); err != nil {
		t.Error(err)
	}
}

// TestResetNotPassedAsFIN: one peer writes without pause, the other reads
// some of it and resets (SO_LINGER 0). The proxy's send to the resetter
// can meet the RST first and take the socket's one ECONNRESET report; its
// receive from the resetter then reads end of stream, as after a FIN. The
// writer must be reset all the same and never get a FIN first, which
// would let a truncated stream pass for a complete one. Its TCP_INFO
// tells, whatever its own write took of the RST: a FIN counts one in
// tcpi_bytes_received, and the resetter sends no byte. 50 rounds each way
// in every mode on both backends; every connection ends reset or
// send_error, none eof.
func TestResetNotPassedAsFIN(t *testing.T) {
	for _, resetter := range []string{"client", "upstream"} {
		t.Run(resetter+"-resets", func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, cfg Config) {
				testResetNotPassedAsFIN(t, cfg, resetter)
			})
		})
	}
}

func testResetNotPassedAsFIN(t *testing.T, cfg Config, resetter string) {
	const rounds = 50
	upstreams := holdUpstreams(t, &cfg)
	p := startProxy(t, cfg)
	other := map[string]string{"client": "upstream", "upstream": "client"}
	buf := make([]byte, 16<<10)
	fins := 0
	start := time.Now()
	for range rounds {
		peers := map[string]*net.TCPConn{"client": dial(t, p)}
		select {
		case peers["upstream"] = <-upstreams:
		case <-time.After(scaled(5 * time.Second)):
			t.Fatal("the proxy did not dial the upstream")
		}
		writer, reader := peers[other[resetter]], peers[resetter]
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			for {
				if _, err := writer.Write(buf); err != nil {
					return // the proxy's RST, or the test closed it
				}
			}
		}()
		reader.SetReadDeadline(time.Now().Add(scaled(5 * time.Second)))
		if _, err := io.ReadFull(reader, make([]byte, 64<<10)); err != nil {
			t.Fatalf("the %s read: %v", resetter, err)
		}
		reader.SetLinger(0)
		reader.Close()
		writer.SetReadDeadline(time.Now().Add(scaled(2 * time.Second)))
		info, err := waitReset(writer)
		writer.Close()
		<-wrote
		switch {
		case err != nil:
			t.Fatalf("the %s after the %s's RST: %v", other[resetter], resetter, err)
		case info.State != tcpClose:
			t.Fatalf("the %s's socket is in TCP state %d after the proxy's RST; want %d (TCP_CLOSE)", other[resetter], info.State, tcpClose)
		case info.Bytes_received != 0:
			fins++
		}
	}
	if fins > 0 {
		t.Errorf("the %s got a FIN before the RST in %d of %d rounds after the %s reset", other[resetter], fins, rounds, resetter)
	}
	waitFor(t, "the connections to be closed", 5*time.Second, func() bool { return len(p.snapshot()) == 0 })
	t.Logf("%d rounds in %v: reset %d, send_error %d", rounds, time.Since(start).Round(time.Millisecond), ends(p, endReset), ends(p, endSendError))
	if n := ends(p, endReset) + ends(p, endSendError); n != rounds {
		t.Errorf("connection ends: reset %d, send_error %d; want %d in all", ends(p, endReset), ends(p, endSendError), rounds)
	}
	for r := endEOF; r < numEndReasons; r++ {
		if r != endReset && r != endSendError && ends(p, r) != 0 {
			t.Errorf("connection ends: %s %d; want 0", r, ends(p, r))
		}
	}
}

// waitReset waits, reading nothing, until c's socket reports that its
// peer reset the connection and returns c's TCP_INFO then;
// os.ErrDeadlineExceeded at c's read deadline. It waits for POLLHUP: c
// never shuts down its own side, so no exchange of FINs ends in POLLHUP,
// and the RST raises it once the socket is in TCP_CLOSE. Not POLLERR: the
// kernel sets the error a moment before it moves the state (seen twice in
// about 4,000 resets: POLLERR, ECONNRESET pending, the state ESTABLISHED).
func waitReset(c *net.TCPConn) (info *unix.TCPInfo, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var ferr error
	err = rc.Read(func(fd uintptr) bool {
		pfd := []unix.PollFd{{Fd: int32(fd)}}
		if _, ferr = unix.Poll(pfd, 0); ferr != nil {
			return true
		}
		if pfd[0].Revents&unix.POLLHUP == 0 {
			return false // wait for the next event
		}
		info, ferr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		return true
	})
	return info, errors.Join(err, ferr)
}

// holdUpstreams points cfg at an upstream server that hands each
// connection it accepts to the returned channel and keeps it open until
// the test ends.
func holdUpstreams(t *testing.T, cfg *Config) <-chan *net.TCPConn {
	t.Helper()
	upstreams := make(chan *net.TCPConn, 1)
	done := make(chan struct{})
	cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
		upstreams <- c
		<-done
	})
	// Registered after echoServer's cleanup, so it runs first: the
	// handlers return before that cleanup waits for them.
	t.Cleanup(func() { close(done) })
	return upstreams
}
