package proxy

import (
	"io"
	"net"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/uringsend/uringsend/socket"
)

// TestBackpressure: towards a peer that does not read, each direction
// holds at most MaxInflight bytes of buffers and then stops reading; the
// client's writes block instead of the proxy's memory growing. The
// metrics endpoint shows it.
func TestBackpressure(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		cfg.MaxInflight = 256 << 10
		cfg.BufferSize = 32 << 10
		cfg.SendTimeout = 0
		cfg.MetricsAddr = "127.0.0.1:0"
		release := make(chan struct{})
		var once sync.Once
		unblock := func() { once.Do(func() { close(release) }) }
		defer unblock() // before the upstream's cleanup waits for it
		cfg.Upstream = echoServer(t, func(c *net.TCPConn) {
			c.SetReadBuffer(64 << 10)
			<-release
			io.Copy(io.Discard, c)
		})
		p := startProxy(t, cfg)
		c := dial(t, p)
		c.SetWriteBuffer(64 << 10)
		wrote := make(chan error, 1)
		go func() {
			_, err := c.Write(make([]byte, 64<<20))
			wrote <- err
		}()
		waitBackedUp(t, p)
		conns := p.snapshot()
		if len(conns) != 1 {
			t.Fatalf("%d connections; want 1", len(conns))
		}
		held, bound := conns[0].up.held.Load(), int64(cfg.MaxInflight)
		if p.RecvPool() && p.Backend() == socket.BackendIOURing {
			// Each multishot request carries a byte budget of what the
			// chunk limit leaves (6.15): exact here. Before it, the
			// kernel fills buffers until it sees the socket's cancel:
			// 33–65 over the limit, the socket documents.
			bound += 72 * int64(cfg.BufferSize)
		}
		if held <= 0 || held > bound {
			t.Fatalf("%d bytes held towards the stalled upstream; want 1 to %d (MaxInflight %d)", held, bound, cfg.MaxInflight)
		}
		read := p.stats.snapshotBytes(directionIndexUp)
		time.Sleep(100 * time.Millisecond)
		if again := p.stats.snapshotBytes(directionIndexUp); again != read {
			t.Fatalf("the proxy read on (%d, then %d bytes) with MaxInflight in flight", read, again)
		}
		if read >= 64<<20 {
			t.Fatalf("the proxy read all %d bytes: no backpressure", read)
		}
		select {
		case err := <-wrote:
			t.Fatalf("the client's 64 MiB write finished (%v) while the upstream reads nothing", err)
		default:
		}
		t.Logf("backed up: %d bytes read, %d held, %d buffers", read, held, conns[0].up.buffers())

		body := get(t, p.MetricsURL())
		m := regexp.MustCompile(`(?m)^uringsend_proxy_inflight_buffer_bytes (\S+)$`).FindStringSubmatch(body)
		if m == nil || m[1] == "0" {
			t.Errorf("metrics: inflight buffer bytes %v; want positive\n", m)
		}
		for _, re := range []string{`(?m)^uringsend_proxy_open_connections 1$`, `(?m)^uringsend_engine_info\{backend="` + p.Backend() + `"`} {
			if !regexp.MustCompile(re).MatchString(body) {
				t.Errorf("metrics do not match %s", re)
			}
		}

		unblock() // the upstream reads: everything flows again
		select {
		case err := <-wrote:
			if err != nil {
				t.Fatalf("client write: %v", err)
			}
		case <-time.After(scaled(30 * time.Second)):
			t.Fatal("the client's write did not finish after the upstream started reading")
		}
	})
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
