package proxy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uringsend/uringsend/proxy/internal/copyproxy"
	"github.com/uringsend/uringsend/proxy/proxytest"
)

// TestCompareProxies is the comparison benchmark of issue 7, in one run:
// uringproxy (this package, in-process; with its defaults and with
// variants of backend, receive mode and send timeout) against the plain Go io.Copy proxy (internal/copyproxy) and
// against no proxy at all, on redis-benchmark (pipelined SET and GET, 50
// clients, -P 16) and iperf3 (one stream, 2 s). Within each round the
// candidates run one after the other, in an order that alternates between
// rounds; the table shows the median of the rounds and the ratio to the
// io.Copy proxy. It runs only with UR_PROXY_BENCH=1:
//
//	UR_PROXY_BENCH=1 go test -run TestCompareProxies -v ./proxy/
//
// UR_PROXY_BENCH_ROUNDS (default 3) sets the rounds,
// UR_PROXY_BENCH_REQUESTS (default 400000) the redis-benchmark requests
// per run, UR_PROXY_BENCH_ONLY=name runs the candidates whose name starts
// with it (with -cpuprofile: UR_PROXY_BENCH_ONLY=uringproxy), and
// UR_PROXY_BENCH_OUT=path writes the table there as Markdown.
func TestCompareProxies(t *testing.T) {
	if os.Getenv("UR_PROXY_BENCH") != "1" {
		t.Skip("comparison benchmark: set UR_PROXY_BENCH=1")
	}
	rounds := envInt(t, "UR_PROXY_BENCH_ROUNDS", 3)
	requests := envInt(t, "UR_PROXY_BENCH_REQUESTS", 400000)
	only := os.Getenv("UR_PROXY_BENCH_ONLY")

	type candidate struct {
		name  string
		start func(t *testing.T, upstream string) (addr string, stop func())
	}
	uring := func(flags ...string) func(t *testing.T, upstream string) (string, func()) {
		return func(t *testing.T, upstream string) (string, func()) {
			cfg := DefaultConfig()
			applyFlags(t, &cfg, append([]string{"-listen", "127.0.0.1:0", "-upstream", upstream}, flags...))
			p := startProxy(t, cfg)
			return p.Addr().String(), func() { p.Close() }
		}
	}
	const baseline = "io.Copy proxy"
	all := []candidate{
		{"uringproxy (defaults: io_uring, -recv engine, -send-timeout 30s)", uring()},
		{"uringproxy -recv net", uring("-recv", "net")},
		{"uringproxy -backend epoll (-recv net)", uring("-backend", "epoll")},
		{"uringproxy -backend epoll -recv engine", uring("-backend", "epoll", "-recv", "engine")},
		{baseline, func(t *testing.T, upstream string) (string, func()) {
			p, err := copyproxy.Listen("127.0.0.1:0", upstream)
			if err != nil {
				t.Fatal(err)
			}
			return p.Addr().String(), func() { p.Close() }
		}},
		{"direct (no proxy)", func(t *testing.T, upstream string) (string, func()) { return upstream, func() {} }},
	}
	var cands []candidate
	for _, c := range all {
		if only == "" || strings.HasPrefix(c.name, only) {
			cands = append(cands, c)
		}
	}

	ctx := context.Background()
	redis := proxytest.Redis(t)
	const nMetrics = 3 // SET req/s, GET req/s, iperf3 Gbit/s
	results := make(map[string]*[nMetrics][]float64)
	for _, c := range cands {
		results[c.name] = new([nMetrics][]float64)
	}
	for r := range rounds {
		order := slices.Clone(cands)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, c := range order {
			addr, stop := c.start(t, redis)
			res := proxytest.RedisBenchmark(ctx, t, addr, 50, requests, 16)
			stop()
			ip := proxytest.Iperf3Server(t)
			addr, stop = c.start(t, ip)
			ir := proxytest.Iperf3Client(ctx, t, addr, 2)
			stop()
			got := [nMetrics]float64{res["SET"], res["GET"], ir.End.SumReceived.BitsPerSecond / 1e9}
			for i, v := range got {
				results[c.name][i] = append(results[c.name][i], v)
			}
			t.Logf("round %d  %-52s SET %9.0f/s  GET %9.0f/s  iperf3 %6.2f Gbit/s", r+1, c.name, got[0], got[1], got[2])
		}
	}

	med := func(name string, i int) float64 { return median(results[name][i][:]) }
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "Measured %s on %s (%d vCPU, Linux %s, %s, GOMAXPROCS %d): median of %d rounds, "+
		"candidates alternating; redis-benchmark -c 50 -n %d -P 16 -t set,get, iperf3 -t 2 (one stream); "+
		"all on loopback, sharing the CPUs.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), kernel(), runtime.Version(),
		runtime.GOMAXPROCS(0), rounds, requests)
	b.WriteString("| candidate | redis SET req/s | redis GET req/s | iperf3 Gbit/s |\n|---|---:|---:|---:|\n")
	for _, c := range cands {
		fmt.Fprintf(&b, "| %s |", c.name)
		for i := range nMetrics {
			v := med(c.name, i)
			if i < 2 {
				fmt.Fprintf(&b, " %.0f", v)
			} else {
				fmt.Fprintf(&b, " %.2f", v)
			}
			if base, ok := results[baseline]; ok && c.name != baseline {
				if bv := median(base[i][:]); bv > 0 {
					fmt.Fprintf(&b, " (%.2f×)", v/bv)
				}
			}
			b.WriteString(" |")
		}
		b.WriteString("\n")
	}
	t.Logf("\n%s", b.String())
	if path := os.Getenv("UR_PROXY_BENCH_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// TestChurnProfile runs redis-benchmark -t get -k 0 -c 50 (a new
// connection per request) through one in-process uringproxy, for a CPU
// profile of the proxy under connection churn (the bench command's L2
// compares it with the io.Copy proxy). It runs only with UR_PROXY_CHURN=1:
//
//	UR_PROXY_CHURN=1 go test -run TestChurnProfile -cpuprofile churn.prof ./proxy/
//
// UR_PROXY_CHURN_REQUESTS (default 20000) sets the connections,
// UR_PROXY_CHURN_FLAGS extra proxy flags ("-recv net"), UR_PROXY_CHURN_COPY=1
// runs the io.Copy proxy instead.
func TestChurnProfile(t *testing.T) {
	if os.Getenv("UR_PROXY_CHURN") != "1" {
		t.Skip("churn profile: set UR_PROXY_CHURN=1")
	}
	n := envInt(t, "UR_PROXY_CHURN_REQUESTS", 20000)
	bin := proxytest.Need(t, "redis-benchmark")
	redis := proxytest.Redis(t)
	cfg := DefaultConfig()
	applyFlags(t, &cfg, append([]string{"-listen", "127.0.0.1:0", "-upstream", redis}, strings.Fields(os.Getenv("UR_PROXY_CHURN_FLAGS"))...))
	addr := ""
	if os.Getenv("UR_PROXY_CHURN_COPY") == "1" {
		cp, err := copyproxy.Listen("127.0.0.1:0", redis)
		if err != nil {
			t.Fatal(err)
		}
		defer cp.Close()
		addr = cp.Addr().String()
	} else {
		addr = startProxy(t, cfg).Addr().String()
	}
	host, port, _ := strings.Cut(addr, ":")
	var c0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &c0)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	out, err := exec.Command(bin, "-h", host, "-p", port, "-t", "get", "-k", "0", "-c", "50", "-n", strconv.Itoa(n), "-q").CombinedOutput()
	took := time.Since(start)
	runtime.ReadMemStats(&m1)
	var c1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &c1)
	if err != nil {
		t.Fatalf("redis-benchmark: %v\n%s", err, out)
	}
	cpu := time.Duration(c1.Utime.Nano() + c1.Stime.Nano() - c0.Utime.Nano() - c0.Stime.Nano())
	sys := time.Duration(c1.Stime.Nano()-c0.Stime.Nano()) / time.Duration(n)
	t.Logf("%d connections in %v: %.0f conn/s, CPU %v/conn (system %v), %.1f allocs/conn, %.0f B/conn; %s", n, took, float64(n)/took.Seconds(), cpu/time.Duration(n), sys,
		float64(m1.Mallocs-m0.Mallocs)/float64(n), float64(m1.TotalAlloc-m0.TotalAlloc)/float64(n), lastLine(out))
}

// lastLine is redis-benchmark -q's result, without its progress lines.
func lastLine(out []byte) string {
	s := strings.TrimSpace(strings.ReplaceAll(string(out), "\r", "\n"))
	return s[strings.LastIndex(s, "\n")+1:]
}
