//go:build linux

package socket

import (
	"io"
	"net"
	"testing"

	"github.com/uringsend/uringsend/sendop"
	"golang.org/x/sys/unix"
)

// tcpPair returns a connected loopback pair: the sending side as a
// *net.TCPConn and a goroutine draining the other side.
func benchPair(b *testing.B) *net.TCPConn {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		c, err := l.Accept()
		l.Close()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func benchSync(b *testing.B, backend string, size int) {
	benchSyncCfg(b, EngineConfig{Backend: backend}, size)
}

func benchSyncCfg(b *testing.B, cfg EngineConfig, size int) {
	eng, err := NewEngine(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	c := benchPair(b)
	s, err := FromConn(c, WithEngine(eng))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var e sendop.Args
	e.SetBuffer(make([]byte, size))
	done := make(chan struct{}, 1)
	e.Completed = func(*sendop.Args) { done <- struct{}{} }
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	async := 0
	for i := 0; i < b.N; i++ {
		pending, err := s.SendAsync(&e)
		if err != nil {
			b.Fatal(err)
		}
		if pending {
			<-done
			async++
		}
	}
	b.ReportMetric(float64(b.N-async)/float64(b.N), "sync/op")
}

// BenchmarkSendAsyncSync64 is the sync path of P5: an idle socket, 64 B.
func BenchmarkSendAsyncSync64(b *testing.B) {
	b.Run("io_uring", func(b *testing.B) { benchSync(b, BackendIOURing, 64) })
	b.Run("epoll", func(b *testing.B) { benchSync(b, BackendEpoll, 64) })
	b.Run("unix.Write", func(b *testing.B) {
		c := benchPair(b)
		rc, _ := c.SyscallConn()
		var fd int
		rc.Control(func(f uintptr) { fd = int(f) })
		buf := make([]byte, 64)
		b.SetBytes(64)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := unix.Write(fd, buf); err != nil && err != unix.EAGAIN {
				b.Fatal(err)
			}
		}
	})
	b.Run("net.Conn.Write", func(b *testing.B) {
		c := benchPair(b)
		buf := make([]byte, 64)
		b.SetBytes(64)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOpenClose is issue 14's L1 per backend: FromFD + Close of a
// socketpair's end while live other sockets are registered on the same
// engine. Cost per connection should not grow with live.
func BenchmarkOpenClose(b *testing.B) {
	for _, be := range []string{BackendIOURing, BackendEpoll} {
		for _, live := range []int{1000, 8000} {
			b.Run(be+"/live="+itoa(live), func(b *testing.B) {
				benchOpenClose(b, be, live)
			})
		}
	}
}

func itoa(n int) string {
	if n%1000 == 0 {
		return string(rune('0'+n/1000)) + "k"
	}
	return "n"
}

func benchOpenClose(b *testing.B, backend string, live int) {
	eng, err := NewEngine(EngineConfig{Backend: backend})
	if err != nil {
		b.Skip(err)
	}
	defer eng.Close()
	for i := 0; i < live; i++ {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Skip(err) // fd limit
		}
		s, err := FromFD(fds[0], WithEngine(eng))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close(); unix.Close(fds[1]) })
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		s, err := FromFD(fds[0], WithEngine(eng))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		unix.Close(fds[1])
	}
}
