//go:build linux

package socket

import (
	"io"
	"testing"

	"github.com/uringsend/uringsend/sendop"
)

// Engine.Stats counts what each backend asked of the kernel: on epoll one
// sendto per small send that did not block and one recvfrom per receive;
// on io_uring the SQEs and enters. It allocates nothing.
func TestEngineStats(t *testing.T) {
	const n = 200
	for _, backend := range []string{BackendEpoll, BackendIOURing} {
		t.Run(backend, func(t *testing.T) {
			eng := newEngine(t, EngineConfig{Backend: backend})
			s, p := dialPeer(t, eng)
			before := eng.Stats()
			if before.Backend != backend {
				t.Fatalf("Backend %q", before.Backend)
			}
			msg := []byte("0123456789abcdef")
			for i := 0; i < n; i++ {
				if _, err := s.Write(msg); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := io.ReadFull(p, make([]byte, n*len(msg))); err != nil {
				t.Fatal(err)
			}
			// One receive that finds its byte waiting.
			if _, err := p.Write([]byte{7}); err != nil {
				t.Fatal(err)
			}
			var e sendop.Args
			e.SetBuffer(make([]byte, 1))
			got := make(chan int, 1)
			e.Completed = func(e *sendop.Args) { got <- e.BytesTransferred() }
			pending, err := s.ReceiveAsync(&e)
			if err != nil {
				t.Fatal(err)
			}
			if pending {
				<-got
			}
			st := eng.Stats()
			switch backend {
			case BackendEpoll:
				sends := st.SendCalls - before.SendCalls
				if sends-(st.WouldBlock-before.WouldBlock) != n {
					t.Errorf("epoll: %d send calls, %d would block; want %d that sent", sends, st.WouldBlock-before.WouldBlock, n)
				}
				if r := st.RecvCalls - before.RecvCalls; r < 1 {
					t.Errorf("epoll: %d recv calls", r)
				}
				if st.Enters != 0 || st.Submitted != 0 {
					t.Errorf("epoll engine counted ring work: %+v", st)
				}
			case BackendIOURing:
				if sub := st.Submitted - before.Submitted; sub < n+1 {
					t.Errorf("io_uring: %d SQEs for %d sends and a receive", sub, n)
				}
				if st.Enters-before.Enters < 1 || st.SendCalls != 0 {
					t.Errorf("io_uring: %+v", st)
				}
				if st.StaleCompletions != 0 {
					t.Errorf("stale completions: %d", st.StaleCompletions)
				}
			}
			if a := testing.AllocsPerRun(100, func() { eng.Stats() }); a != 0 {
				t.Errorf("Stats allocates %v times", a)
			}
		})
	}
}
