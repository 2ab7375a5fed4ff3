// Package proxytest starts the real servers and clients the proxy's tests
// and benchmarks drive — redis-server, redis-benchmark, redis-cli, iperf3,
// all from Debian's packages (make deps) — on loopback, each stopped by a
// t.Cleanup.
//
// A missing binary skips the test with the package to install; under
// CI=true it fails it instead, so CI cannot pass by skipping.
package proxytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var packages = map[string]string{
	"redis-server":    "redis-server",
	"redis-cli":       "redis-tools",
	"redis-benchmark": "redis-tools",
	"iperf3":          "iperf3",
}

// Need returns the path of the binary name, or skips t (fails it under
// CI=true) when it is not installed.
func Need(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found (Debian package %s; run make deps)", name, packages[name])
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true: failing instead of skipping")
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start runs cmd, and stops it (SIGKILL) and waits for it in t.Cleanup.
// Its output goes to a buffer that is logged if the test fails.
func Start(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	var out bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &out
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		if t.Failed() && out.Len() > 0 {
			t.Logf("output of %s:\n%s", strings.Join(cmd.Args, " "), out.String())
		}
	})
}

// WaitListening waits until addr accepts TCP connections.
func WaitListening(t testing.TB, addr string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening after %v: %v", addr, limit, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Redis starts redis-server on a free loopback port and returns its
// address.
func Redis(t testing.TB) string {
	t.Helper()
	bin := Need(t, "redis-server")
	port := FreePort(t)
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no")
	cmd.Dir = t.TempDir()
	Start(t, cmd)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	WaitListening(t, addr, 10*time.Second)
	return addr
}

// Iperf3Server starts "iperf3 -s -1" (one test, then exit) on a free
// loopback port and returns its address.
func Iperf3Server(t testing.TB) string {
	t.Helper()
	bin := Need(t, "iperf3")
	port := FreePort(t)
	Start(t, exec.Command(bin, "-s", "-1", "-B", "127.0.0.1", "-p", strconv.Itoa(port)))
	// Not WaitListening: with -1 a probe connection would be its one test.
	deadline := time.Now().Add(10 * time.Second)
	for !tcpListening(port) {
		if time.Now().After(deadline) {
			t.Fatalf("iperf3 -s not listening on port %d after 10s", port)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// tcpListening reports whether a socket listens on 127.0.0.1:port,
// without connecting to it: ss(8) asks the kernel over netlink
// (inet_diag). /proc/net/tcp is not enough: some kernels (6.18 here)
// leave listening sockets out of it.
func tcpListening(port int) bool {
	out, err := exec.Command("ss", "-Hltn", fmt.Sprintf("src 127.0.0.1:%d", port)).Output()
	if err == nil {
		return len(strings.TrimSpace(string(out))) > 0
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	want := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == want && f[3] == "0A" { // TCP_LISTEN
			return true
		}
	}
	return false
}

func split(t testing.TB, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// RedisBenchmarkResult is what redis-benchmark -q reports per test.
type RedisBenchmarkResult map[string]float64 // "SET", "GET" → requests/s

var rbLine = regexp.MustCompile(`(?m)^([A-Z_ ]+?): ([0-9.]+) requests per second`)

// RedisBenchmark runs redis-benchmark against addr with clients
// connections, requests requests and pipeline depth P, tests "set,get",
// and returns requests/s per test. It fails t if the tool fails or reports
// no positive rate.
func RedisBenchmark(ctx context.Context, t testing.TB, addr string, clients, requests, pipeline int) RedisBenchmarkResult {
	t.Helper()
	bin := Need(t, "redis-benchmark")
	host, port := split(t, addr)
	cmd := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-c", strconv.Itoa(clients),
		"-n", strconv.Itoa(requests), "-P", strconv.Itoa(pipeline), "-t", "set,get", "-q")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-benchmark: %v\n%s", err, out)
	}
	// -q rewrites a progress line with \r; the final results end in \n.
	text := strings.ReplaceAll(string(out), "\r", "\n")
	res := RedisBenchmarkResult{}
	for _, m := range rbLine.FindAllStringSubmatch(text, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		res[strings.TrimSpace(m[1])] = v
	}
	for _, k := range []string{"SET", "GET"} {
		if res[k] <= 0 {
			t.Fatalf("redis-benchmark reported no positive %s rate:\n%s", k, text)
		}
	}
	return res
}

// RedisCLI runs redis-cli against addr with args (stdin from stdin, when
// not nil) and returns its output without the final newline.
func RedisCLI(t testing.TB, addr string, stdin []byte, args ...string) string {
	t.Helper()
	bin := Need(t, "redis-cli")
	host, port := split(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-h", host, "-p", port}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSuffix(string(out), "\n")
}

// Iperf3Result is the part of iperf3 -J's report the tests read.
type Iperf3Result struct {
	Error string `json:"error"`
	End   struct {
		SumSent struct {
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

// Iperf3Client runs "iperf3 -c host -p port -t secs -J" (plus extra args)
// and returns the parsed report; it fails t if iperf3 fails, reports an
// error, or measured nothing.
func Iperf3Client(ctx context.Context, t testing.TB, addr string, secs int, extra ...string) Iperf3Result {
	t.Helper()
	bin := Need(t, "iperf3")
	host, port := split(t, addr)
	args := append([]string{"-c", host, "-p", port, "-t", strconv.Itoa(secs), "-J"}, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.Output()
	var res Iperf3Result
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		t.Fatalf("iperf3 %s: %v; report not JSON (%v):\n%s", strings.Join(args, " "), err, jerr, out)
	}
	if err != nil || res.Error != "" {
		t.Fatalf("iperf3 %s: exit %v, error %q", strings.Join(args, " "), err, res.Error)
	}
	if res.End.SumReceived.BitsPerSecond <= 0 || res.End.SumSent.BitsPerSecond <= 0 {
		t.Fatalf("iperf3 measured nothing:\n%s", out)
	}
	return res
}
