package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/proxy/proxytest"
	"go.uber.org/goleak"
)

// No goroutine may outlive the tests; the binary's build directory goes.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var buildDir string

// binary builds cmd/uringproxy once per test run; build copies it into
// each test's t.TempDir.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "uringproxy-test-")
	if err != nil {
		return "", err
	}
	buildDir = dir
	bin := filepath.Join(dir, "uringproxy")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func build(t *testing.T) string {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	// Copy it into the test's own directory, removed with it.
	dst := filepath.Join(t.TempDir(), "uringproxy")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// startedProxy is a running uringproxy process.
type startedProxy struct {
	cmd        *exec.Cmd
	addr       string // where it listens
	metricsURL string
	out        *lineBuffer
	done       chan struct{}
}

var listening = regexp.MustCompile(`listening on (\S+), upstream .*?(?:, metrics (\S+))?$`)

// startBinary runs the built uringproxy with args in front of upstream
// (listening on a free port) and waits until it says where it listens.
// It is killed in t.Cleanup if the test has not stopped it.
func startBinary(t *testing.T, upstream string, args ...string) *startedProxy {
	t.Helper()
	args = append([]string{"-listen", "127.0.0.1:0", "-upstream", upstream, "-metrics-addr", "127.0.0.1:0"}, args...)
	return startCmd(t, exec.Command(build(t), args...))
}

// startCmd starts cmd, a uringproxy, and waits until it says where it
// listens (and where it serves metrics, if it does). It is killed in
// t.Cleanup if the test has not stopped it.
func startCmd(t *testing.T, cmd *exec.Cmd) *startedProxy {
	t.Helper()
	p := &startedProxy{cmd: cmd, out: newLineBuffer(listening), done: make(chan struct{})}
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("uringproxy output:\n%s", p.out.String())
		}
	})
	select {
	case m := <-p.out.match:
		p.addr, p.metricsURL = m[1], m[2]
	case <-p.done:
		t.Fatalf("uringproxy exited at start:\n%s", p.out.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("uringproxy did not start in 10 s:\n%s", p.out.String())
	}
	return p
}

// stop sends sig and returns the exit status.
func (p *startedProxy) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("uringproxy did not exit 30 s after a signal")
	}
	return p.cmd.ProcessState.ExitCode()
}

// lineBuffer collects output and reports the first line matching re.
type lineBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	re    *regexp.Regexp
	match chan []string
	seen  int
	found bool
}

func newLineBuffer(re *regexp.Regexp) *lineBuffer {
	return &lineBuffer{re: re, match: make(chan []string, 1)}
}

func (l *lineBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(b)
	for !l.found {
		rest := l.buf.Bytes()[l.seen:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		line := string(rest[:i])
		l.seen += i + 1
		if m := l.re.FindStringSubmatch(line); m != nil {
			l.found = true
			l.match <- m
		}
	}
	return len(b), nil
}

func (l *lineBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestRedis puts uringproxy in front of redis-server: redis-benchmark
// (pipelined SET/GET, 50 clients) runs through it, and redis-cli gets the
// right replies, a 1 MiB value included. Then SIGTERM stops it with 0.
func TestRedis(t *testing.T) {
	for _, mode := range []struct{ name, line string }{
		{"engine", "recv engine (receive pool)"},
		{"engine-own", "recv engine (own buffers)"},
		{"net", "recv net"},
	} {
		t.Run("recv="+mode.name, func(t *testing.T) {
			recv, own, _ := strings.Cut(mode.name, "-")
			args := []string{"-recv", recv}
			if own != "" {
				args = append(args, "-recv-own-buffers")
			}
			testRedis(t, mode.line, args...)
		})
	}
}

func testRedis(t *testing.T, line string, args ...string) {
	redis := proxytest.Redis(t)
	p := startBinary(t, redis, args...)
	if !strings.Contains(p.out.String(), line) {
		t.Fatalf("the start line does not say %q:\n%s", line, p.out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	res := proxytest.RedisBenchmark(ctx, t, p.addr, 50, 20000, 16)
	t.Logf("redis-benchmark through uringproxy: SET %.0f/s, GET %.0f/s", res["SET"], res["GET"])

	if got := proxytest.RedisCLI(t, p.addr, nil, "SET", "k", "v"); got != "OK" {
		t.Fatalf("SET k v: %q; want OK", got)
	}
	if got := proxytest.RedisCLI(t, p.addr, nil, "GET", "k"); got != "v" {
		t.Fatalf("GET k: %q; want v", got)
	}
	// A 1 MiB value (printable, so redis-cli returns it raw) both ways.
	big := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for i := range big {
		big[i] = letters[r.IntN(len(letters))]
	}
	if got := proxytest.RedisCLI(t, p.addr, big, "-x", "SET", "big"); got != "OK" {
		t.Fatalf("SET big (1 MiB): %q; want OK", got)
	}
	if got := proxytest.RedisCLI(t, p.addr, nil, "STRLEN", "big"); got != "1048576" {
		t.Fatalf("STRLEN big: %q; want 1048576", got)
	}
	if got := proxytest.RedisCLI(t, p.addr, nil, "--raw", "GET", "big"); got != string(big) {
		t.Fatalf("GET big: %d bytes, not the 1 MiB value set", len(got))
	}

	// The engine's metrics and the proxy's, from the metrics endpoint.
	body := scrape(t, p.metricsURL)
	for _, re := range []string{
		`(?m)^uringsend_sends_total\{completion="(?:sync|async)",result="Success"\} [1-9]`,
		`(?m)^uringsend_sent_bytes_total [1-9]`,
		`(?m)^uringsend_proxy_connections_total [1-9][0-9]`,
		`(?m)^uringsend_proxy_read_bytes_total\{direction="to_client"\} [1-9]`,
		`(?m)^uringsend_engine_info\{backend="io_uring"`,
	} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("metrics do not match %s", re)
		}
	}

	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM; want 0", code)
	}
	if out := p.out.String(); !strings.Contains(out, "uringproxy: stopped") {
		t.Fatalf("no \"stopped\" line after SIGTERM:\n%s", out)
	}
}

// TestIdleRedisClientKept: a redis client that says nothing for a while
// is still served through the binary with its default flags (issue 14:
// the old 30 s default idle timeout cut pooled and pub/sub clients that
// redis itself keeps).
func TestIdleRedisClientKept(t *testing.T) {
	redis := proxytest.Redis(t)
	p := startBinary(t, redis)
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 7)
	for i := range 2 {
		if i > 0 {
			time.Sleep(2 * time.Second)
		}
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			t.Fatalf("PING %d: %v", i, err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "+PONG\r\n" {
			t.Fatalf("PING %d after silence: %q, %v; want +PONG", i, buf, err)
		}
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM; want 0", code)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	if url == "" {
		t.Fatal("uringproxy printed no metrics URL")
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %v", url, resp.Status, err)
	}
	return string(b)
}

// TestIperf3 runs iperf3 through uringproxy, on both backends.
func TestIperf3(t *testing.T) {
	for _, mode := range [][2]string{{"io_uring", "engine"}, {"io_uring", "net"}, {"epoll", "engine"}, {"epoll", "net"}} {
		backend := mode[0]
		t.Run(backend+"/recv="+mode[1], func(t *testing.T) {
			srv := proxytest.Iperf3Server(t)
			p := startBinary(t, srv, "-backend", backend, "-recv", mode[1])
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res := proxytest.Iperf3Client(ctx, t, p.addr, 2)
			t.Logf("iperf3 through uringproxy (%s): %.2f Gbit/s", backend, res.End.SumReceived.BitsPerSecond/1e9)
			if code := p.stop(t, syscall.SIGINT); code != 0 {
				t.Fatalf("exit status %d after SIGINT; want 0", code)
			}
		})
	}
}

// TestBadFlags: bad usage is one line of error, the usage, and status 2.
func TestBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string // in the first line
	}{
		{nil, "-listen is required"},
		{[]string{"-listen", "127.0.0.1:0"}, "-upstream is required"},
		{[]string{"-listen", "nohostport", "-upstream", "127.0.0.1:1"}, `-listen "nohostport": want host:port`},
		{[]string{"-listen", "127.0.0.1:0", "-upstream", "127.0.0.1:0"}, "port 0"},
		{[]string{"-listen", "127.0.0.1:0", "-upstream", "127.0.0.1:1", "-backend", "kqueue"}, `-backend "kqueue"`},
		{[]string{"-listen", "127.0.0.1:0", "-upstream", "127.0.0.1:1", "-max-inflight", "4XB"}, "bad size"},
		{[]string{"-listen", "127.0.0.1:0", "-upstream", "127.0.0.1:1", "-max-inflight", "1KiB"}, "at least -buffer-size"},
		{[]string{"-listen", "127.0.0.1:0", "-upstream", "127.0.0.1:1", "-send-timeout", "-1s"}, "negative"},
		{[]string{"-listen", "127.0.0.1:0", "-upstream", "127.0.0.1:1", "-idle-timeout", "soon"}, "invalid value"},
		{[]string{"-listen", "127.0.0.1:0", "-upstream", "127.0.0.1:1", "-nosuchflag"}, "flag provided but not defined"},
		{[]string{"-listen", "127.0.0.1:0", "-upstream", "127.0.0.1:1", "extra"}, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		code := run(c.args, nil, &stderr)
		first, rest, _ := strings.Cut(stderr.String(), "\n")
		if code != 2 || !strings.HasPrefix(first, "uringproxy: ") || !strings.Contains(first, c.want) ||
			!strings.HasPrefix(rest, "usage: uringproxy") {
			t.Errorf("run %q: status %d, output\n%s\nwant status 2, one line with %q, then the usage", c.args, code, stderr.String(), c.want)
		}
	}
	// The real binary's exit status.
	cmd := exec.Command(build(t), "-listen", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 {
		t.Fatalf("uringproxy -listen only: %v; want exit status 2\n%s", err, out)
	}
}

// TestHelp: -h prints the usage and exits 0.
func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"-h"}, nil, &stderr); code != 0 || !strings.Contains(stderr.String(), "-upstream address") {
		t.Fatalf("-h: status %d, output\n%s", code, stderr.String())
	}
	// The idle timeout is off unless asked for (issue 14), and -h says so.
	if !regexp.MustCompile(`-idle-timeout duration\s+.*0 \(the default\) never`).MatchString(stderr.String()) {
		t.Fatalf("-h does not say that -idle-timeout is off by default:\n%s", stderr.String())
	}
}

// TestRunSignals drives run in-process: the first signal drains and
// exits 0.
func TestRunSignals(t *testing.T) {
	sig := make(chan os.Signal, 2)
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"-listen", "127.0.0.1:0", "-upstream", "127.0.0.1:1", "-idle-timeout", "0"}, sig, &stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "listening on") {
		if time.Now().After(deadline) {
			t.Fatalf("run did not start:\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	sig <- syscall.SIGTERM
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("status %d after SIGTERM; want 0\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run still going 10 s after SIGTERM")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
