//go:build linux

package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/uringsend/uringsend/proxy"
	"github.com/uringsend/uringsend/proxy/proxytest"
)

// The proxy comparison cases (issue 18) run each proxy as a child process
// of its own — this binary again — so that its CPU time (utime+stime of
// /proc/<pid>/stat) and its memory (VmRSS) are the proxy's alone; the
// clients, redis-server and iperf3 are other processes.
//
//	L4  redis-benchmark -P 16 -c 50 -t set,get through each proxy: requests/s, proxy CPU per request
//	L5  the same with -P 1
//	L6  iperf3 (one stream) through each proxy: Gbit/s, proxy CPU per byte
//	L7  3,000 idle connections (one PING each to redis): proxy RSS per connection
//
// The proxies: uringproxy with its defaults (io_uring, -recv engine into
// the engine's receive pool), the io.Copy proxy (proxy/internal/copyproxy:
// two goroutines per connection; Go turns io.Copy into splice(2)), and
// uringproxy -recv-own-buffers (reads into buffers of its own with
// ReceiveAsync: the path before the receive pool, for before/after). In
// every round the proxies run one after the other, in an order that
// alternates; the table gives medians. Before the rounds every proxy
// passes exact bytes both ways: a 1 MiB random value SET and read back
// through redis (L4, L5), 32 MiB each way through an echo upstream
// checked with SHA-256 (L6); L7 checks each PING's +PONG.

// proxyChildEnv makes this binary a proxy child: "uring", "uring-own" or
// "copy", in front of proxyUpstreamEnv. It prints "listen ADDR", answers
// "stats" with a line of JSON (childStats), and exits when stdin closes.
const (
	proxyChildEnv    = "UR_BENCH_PROXY_CHILD"
	proxyUpstreamEnv = "UR_BENCH_PROXY_UPSTREAM"
)

func init() {
	if kind := os.Getenv(proxyChildEnv); kind != "" {
		os.Exit(proxyChildMain(kind, os.Getenv(proxyUpstreamEnv), os.Stdin, os.Stdout))
	}
}

// childStats is what a proxy child says of itself.
type childStats struct {
	HeldBuffers int64  `json:"held_buffers"` // uringproxy's gauge; -1 for the io.Copy proxy
	RecvPool    bool   `json:"recv_pool"`    // uringproxy reads into the engine's receive pool
	Goroutines  int    `json:"goroutines"`
	HeapAlloc   uint64 `json:"heap_alloc"` // live and not yet swept
	HeapInuse   uint64 `json:"heap_inuse"`
	StackInuse  uint64 `json:"stack_inuse"`
	RuntimeSys  uint64 `json:"runtime_sys"` // the runtime's own: spans, GC metadata, netpoll descriptors, ...
}

func proxyChildMain(kind, upstream string, in io.Reader, out io.Writer) int {
	var (
		addr  net.Addr
		stop  func()
		stats = func() childStats { return childStats{HeldBuffers: -1} }
	)
	switch kind {
	case "uring", "uring-own":
		cfg := proxy.DefaultConfig()
		cfg.Listen, cfg.Upstream = "127.0.0.1:0", upstream
		cfg.RecvOwnBuffers = kind == "uring-own"
		p, err := proxy.New(cfg, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "proxy child:", err)
			return 1
		}
		served := make(chan struct{})
		go func() { p.Serve(); close(served) }()
		addr, stop = p.Addr(), func() { p.Close(); <-served }
		stats = func() childStats {
			s := childStats{RecvPool: p.RecvPool()}
			mfs, _ := p.Gatherer().Gather()
			for _, mf := range mfs {
				if mf.GetName() == proxy.NameHeldBuffers {
					s.HeldBuffers = int64(gaugeValue(mf))
				}
			}
			return s
		}
	case "copy":
		p, err := proxytest.CopyProxy("127.0.0.1:0", upstream)
		if err != nil {
			fmt.Fprintln(os.Stderr, "proxy child:", err)
			return 1
		}
		addr, stop = p.Addr(), func() { p.Close() }
	default:
		fmt.Fprintf(os.Stderr, "proxy child: unknown kind %q\n", kind)
		return 2
	}
	fmt.Fprintf(out, "listen %s\n", addr)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if sc.Text() != "stats" {
			continue
		}
		s := stats()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		s.Goroutines, s.HeapAlloc, s.HeapInuse, s.StackInuse = runtime.NumGoroutine(), m.HeapAlloc, m.HeapInuse, m.StackInuse
		s.RuntimeSys = m.MSpanSys + m.MCacheSys + m.BuckHashSys + m.GCSys + m.OtherSys
		b, _ := json.Marshal(s)
		fmt.Fprintf(out, "%s\n", b)
	}
	stop()
	return 0
}

func gaugeValue(mf *dto.MetricFamily) float64 {
	var v float64
	for _, m := range mf.GetMetric() {
		v += m.GetGauge().GetValue()
	}
	return v
}

// proxyChild is a proxy child, running.
type proxyChild struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

func startProxyChild(kind, upstream string) (*proxyChild, error) {
	cmd, in, out, err := startSelf(proxyChildEnv+"="+kind, proxyUpstreamEnv+"="+upstream)
	if err != nil {
		return nil, err
	}
	c := &proxyChild{cmd: cmd, in: in, out: out}
	if !c.out.Scan() || !strings.HasPrefix(c.out.Text(), "listen ") {
		c.stop()
		return nil, fmt.Errorf("proxy child %s: no listen line", kind)
	}
	c.addr = strings.TrimPrefix(c.out.Text(), "listen ")
	return c, nil
}

func (c *proxyChild) stop() {
	c.in.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

func (c *proxyChild) stats() (childStats, error) {
	var s childStats
	if _, err := io.WriteString(c.in, "stats\n"); err != nil {
		return s, err
	}
	if !c.out.Scan() {
		return s, fmt.Errorf("proxy child: no stats (%v)", c.out.Err())
	}
	return s, json.Unmarshal(c.out.Bytes(), &s)
}

// userHZ is the unit of /proc/<pid>/stat's utime and stime (USER_HZ,
// 100 on every Linux architecture Go runs on).
const userHZ = 100

// cpu is the child's user+system CPU time so far (all its threads).
func (c *proxyChild) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", c.cmd.Process.Pid, s)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// rss is the child's resident set (VmRSS), in bytes.
func (c *proxyChild) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", c.cmd.Process.Pid)
}

// cmpProxy is one proxy of the comparison.
type cmpProxy struct{ name, kind string }

var cmpProxies = []cmpProxy{
	{"uringproxy", "uring"},
	{"io.Copy proxy", "copy"},
	{"uringproxy -recv-own-buffers", "uring-own"},
}

// proxySample is one round of one proxy.
type proxySample struct {
	rate float64       // requests/s, or Gbit/s
	ops  float64       // requests, or bytes
	cpu  time.Duration // the proxy child's CPU time over the round
}

// runProxyRounds starts every proxy in front of upstream, checks it with
// verify, then runs o.rounds rounds of work through each (alternating the
// order) and returns the samples per proxy.
func runProxyRounds(o options, log io.Writer, upstream string, verify func(addr string) error, work func(addr string) (rate, ops float64, err error)) ([][]proxySample, error) {
	children := make([]*proxyChild, len(cmpProxies))
	defer func() {
		for _, c := range children {
			if c != nil {
				c.stop()
			}
		}
	}()
	for i, p := range cmpProxies {
		c, err := startProxyChild(p.kind, upstream)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		children[i] = c
		if verify != nil {
			if err := verify(c.addr); err != nil {
				return nil, fmt.Errorf("%s, verification: %w", p.name, err)
			}
		}
	}
	samples := make([][]proxySample, len(cmpProxies))
	for r := range o.rounds {
		for k := range cmpProxies {
			i := k
			if r%2 == 1 {
				i = len(cmpProxies) - 1 - k
			}
			c := children[i]
			c0, err := c.cpu()
			if err != nil {
				return nil, err
			}
			rate, ops, err := work(c.addr)
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", cmpProxies[i].name, r+1, err)
			}
			c1, err := c.cpu()
			if err != nil {
				return nil, err
			}
			samples[i] = append(samples[i], proxySample{rate, ops, c1 - c0})
			if o.verbose {
				fmt.Fprintf(log, "  round %d %-30s %.4g/s, CPU %v for %.4g\n", r+1, cmpProxies[i].name, rate, c1-c0, ops)
			}
		}
	}
	return samples, nil
}

// proxyRows turns the samples into the rate row and the CPU row (per op,
// scaled by cpuScale) of uringproxy against the io.Copy proxy; the notes
// give -recv-own-buffers against the io.Copy proxy too.
func proxyRows(id, title, unit string, samples [][]proxySample, rateTarget string, ratePass func(float64) bool,
	cpuUnit string, cpuScale float64, cpuTarget string, cpuPass func(float64) bool, notes []string) []row {
	rates := func(i int) []float64 {
		v := make([]float64, len(samples[i]))
		for j, s := range samples[i] {
			v[j] = s.rate
		}
		return v
	}
	cpus := func(i int) []float64 {
		v := make([]float64, len(samples[i]))
		for j, s := range samples[i] {
			v[j] = float64(s.cpu.Nanoseconds()) / s.ops * cpuScale
		}
		return v
	}
	cr, br, or := rates(0), rates(1), rates(2)
	cc, bc, oc := cpus(0), cpus(1), cpus(2)
	base := cmpProxies[1].name
	rate := row{
		Case: id, Title: title, Unit: unit,
		Uringsend: median(cr), Baseline: median(br), BaseName: base, Ratio: median(cr) / median(br),
		Target: rateTarget, Verdict: verdict(ratePass(median(cr) / median(br))), CandRuns: cr, BaseRuns: br,
		Notes: append(notes, fmt.Sprintf("%s: %.4g %s (%.2f× the io.Copy proxy), rounds %v", cmpProxies[2].name, median(or), unit, median(or)/median(br), roundList(or))),
	}
	cpu := row{
		Case: id + "c", Title: "proxy CPU per " + strings.TrimPrefix(cpuUnit, "ns/") + " (" + title + ")", Unit: cpuUnit,
		Uringsend: median(cc), Baseline: median(bc), BaseName: base, Ratio: median(cc) / median(bc),
		Target: cpuTarget, Verdict: verdict(cpuPass(median(cc) / median(bc))), CandRuns: cc, BaseRuns: bc,
		Notes: []string{
			"utime+stime of the proxy's own process (/proc/<pid>/stat, 10 ms ticks) over each round / what went through it",
			fmt.Sprintf("%s: %.4g %s (%.2f× the io.Copy proxy)", cmpProxies[2].name, median(oc), cpuUnit, median(oc)/median(bc)),
		},
	}
	return []row{rate, cpu}
}

func roundList(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.4g", x)
	}
	return strings.Join(s, " ")
}

var rbRate = regexp.MustCompile(`(?m)^(SET|GET): ([0-9.]+) requests per second`)

// redisBench runs redis-benchmark -t set,get -c 50 -n n -P pipeline
// against addr; it returns the requests/s over both tests (all requests
// over the sum of the tests' times) and the requests.
func redisBench(bin, addr string, n, pipeline int) (float64, float64, error) {
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(bin, "-h", host, "-p", port, "-t", "set,get", "-c", "50", "-n", strconv.Itoa(n), "-P", strconv.Itoa(pipeline), "-q").CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("redis-benchmark: %v\n%s", err, out)
	}
	ms := rbRate.FindAllStringSubmatch(strings.ReplaceAll(string(out), "\r", "\n"), -1)
	if len(ms) != 2 {
		return 0, 0, fmt.Errorf("redis-benchmark: want SET and GET rates:\n%s", out)
	}
	var secs float64
	for _, m := range ms {
		v, _ := strconv.ParseFloat(m[2], 64)
		if v <= 0 {
			return 0, 0, fmt.Errorf("redis-benchmark: a rate of %v:\n%s", v, out)
		}
		secs += float64(n) / v
	}
	return 2 * float64(n) / secs, 2 * float64(n), nil
}

// redisRoundTrip SETs a 1 MiB random value through addr and reads it back:
// exact bytes both ways.
func redisRoundTrip(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	val := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(18, 1))
	for i := range val {
		val[i] = byte(r.Uint32())
	}
	key := "bench-proxy-verify"
	req := fmt.Sprintf("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n", len(key), key, len(val))
	go func() {
		c.Write([]byte(req))
		c.Write(val)
		fmt.Fprintf(c, "\r\n*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key)
	}()
	br := bufio.NewReader(c)
	if l, err := br.ReadString('\n'); err != nil || l != "+OK\r\n" {
		return fmt.Errorf("SET: %q, %v", l, err)
	}
	if l, err := br.ReadString('\n'); err != nil || l != fmt.Sprintf("$%d\r\n", len(val)) {
		return fmt.Errorf("GET: %q, %v", l, err)
	}
	got := make([]byte, len(val)+2)
	if _, err := io.ReadFull(br, got); err != nil {
		return err
	}
	if !bytes.Equal(got[:len(val)], val) {
		return errors.New("GET returned other bytes than SET")
	}
	return nil
}

// redisCase is L4 (-P 16) and L5 (-P 1).
func redisCase(id string, pipeline int, rateTarget float64, cpuTarget, cpuAim float64) func(o options, log io.Writer) ([]row, error) {
	return func(o options, log io.Writer) ([]row, error) {
		title := fmt.Sprintf("redis-benchmark -P %d -c 50 SET+GET through the proxy", pipeline)
		rbBin, err1 := exec.LookPath("redis-benchmark")
		srvBin, err2 := exec.LookPath("redis-server")
		if errors.Join(err1, err2) != nil {
			return skipRow(id, title, "redis-server or redis-benchmark not found (Debian packages redis-server, redis-tools; make deps installs them)"), nil
		}
		rs, err := startRedis(srvBin)
		if err != nil {
			return nil, err
		}
		defer rs.stop()
		n := 1000000
		if pipeline == 1 {
			n = 200000
		}
		if o.quick {
			n /= 5
		}
		samples, err := runProxyRounds(o, log, rs.addr, redisRoundTrip, func(addr string) (float64, float64, error) {
			return redisBench(rbBin, addr, n, pipeline)
		})
		if err != nil {
			return nil, err
		}
		return proxyRows(id, title, "req/s", samples, fmt.Sprintf("≥ %.2f×", rateTarget), atLeast(rateTarget),
			"ns/request", 1, fmt.Sprintf("≤ %.2f× (aim %.2f×)", cpuTarget, cpuAim), atMost(cpuTarget),
			[]string{
				fmt.Sprintf("redis-benchmark -t set,get -c 50 -n %d -P %d -q; req/s = all requests / the two tests' times; proxies are child processes of bench, started once for the case", n, pipeline),
				"verified: a 1 MiB random value SET through each proxy and read back, byte for byte",
			}), nil
	}
}

// l6 is iperf3 through each proxy.
func l6(o options, log io.Writer) ([]row, error) {
	const title = "iperf3 through the proxy (one stream)"
	bin, err := exec.LookPath("iperf3")
	if err != nil {
		return skipRow("L6", title, "iperf3 not found (Debian package iperf3; make deps installs it)"), nil
	}
	srv, err := startIperf3(bin)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	// The verification: exact bytes both ways through each proxy, in
	// front of an echo upstream of this process's.
	echo, err := startHashEcho()
	if err != nil {
		return nil, err
	}
	defer echo.Close()
	for _, p := range cmpProxies {
		c, err := startProxyChild(p.kind, echo.Addr().String())
		if err != nil {
			return nil, err
		}
		err = echoVerify(c.addr, 32<<20)
		c.stop()
		if err != nil {
			return nil, fmt.Errorf("%s, verification: %w", p.name, err)
		}
	}
	secs := int(o.cliDuration.Round(time.Second) / time.Second)
	samples, err := runProxyRounds(o, log, srv.addr, nil, func(addr string) (float64, float64, error) {
		return iperf3Through(bin, addr, secs)
	})
	if err != nil {
		return nil, err
	}
	return proxyRows("L6", title, "Gbit/s", samples, "≥ 1.0×", atLeast(1.0),
		"ns/KiB", 1024, "≤ 0.9×", atMost(0.9),
		[]string{
			fmt.Sprintf("iperf3 -c -t %d -J through the proxy to one iperf3 -s; Gbit/s and bytes from end.sum_received (at least 90%% of end.sum_sent: the rest was still in the socket buffers and the proxy when the test ended)", secs),
			"verified: 32 MiB of random bytes each way at once through each proxy to an echo upstream, SHA-256 at both ends",
		}), nil
}

type iperf3Server struct {
	cmd  *exec.Cmd
	addr string
}

func startIperf3(bin string) (*iperf3Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "-s", "-B", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &iperf3Server{cmd: cmd, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	// Wait for its listener without connecting: a probe would be a test.
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, _ := exec.Command("ss", "-Hltn", "src "+s.addr).Output()
		if len(bytes.TrimSpace(out)) > 0 {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("iperf3 -s not listening on %s after 10 s", s.addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *iperf3Server) stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// iperf3Through runs one iperf3 client through addr; it returns Gbit/s
// and the bytes received.
func iperf3Through(bin, addr string, secs int) (float64, float64, error) {
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(bin, "-c", host, "-p", port, "-t", strconv.Itoa(secs), "-J").Output()
	if err != nil {
		return 0, 0, fmt.Errorf("iperf3: %v\n%s", err, out)
	}
	var res struct {
		End struct {
			SumSent     struct{ Bytes float64 } `json:"sum_sent"`
			SumReceived struct {
				Bytes         float64
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		}
		Error string
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, 0, fmt.Errorf("iperf3 -J: %v", err)
	}
	if res.Error != "" {
		return 0, 0, fmt.Errorf("iperf3: %s", res.Error)
	}
	// The client counts what it wrote into its socket, the server what it
	// read by the end of the test: the bytes still in the proxy and the
	// socket buffers (a few MB) are the difference.
	if res.End.SumReceived.Bytes <= 0 || res.End.SumReceived.Bytes > res.End.SumSent.Bytes || res.End.SumReceived.Bytes < 0.9*res.End.SumSent.Bytes {
		return 0, 0, fmt.Errorf("iperf3: received %.0f bytes of %.0f sent", res.End.SumReceived.Bytes, res.End.SumSent.Bytes)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, res.End.SumReceived.Bytes, nil
}

// startHashEcho is an echo server: each connection's bytes go back as
// they come.
func startHashEcho() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 256<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						c.(*net.TCPConn).CloseWrite()
						return
					}
				}
			}()
		}
	}()
	return ln, nil
}

// echoVerify sends n random bytes through addr to an echo upstream while
// reading them back, then half-closes; the SHA-256 of what comes back
// must be the sent one's, and then EOF.
func echoVerify(addr string, n int) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(18, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	var werr error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, werr = c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	})
	h := sha256.New()
	got, err := io.Copy(h, c)
	wg.Wait()
	if err := errors.Join(err, werr); err != nil {
		return err
	}
	if want := sha256.Sum256(data); got != int64(n) || !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("echo: %d of %d bytes back, SHA-256 differs", got, n)
	}
	return nil
}

// l7 is the idle connections' memory.
func l7(o options, log io.Writer) ([]row, error) {
	const conns = 3000
	title := fmt.Sprintf("proxy RSS per idle connection (%d connections, one PING each)", conns)
	srvBin, err := exec.LookPath("redis-server")
	if err != nil {
		return skipRow("L7", title, "redis-server not found (Debian package redis-server; make deps installs it)"), nil
	}
	rs, err := startRedis(srvBin)
	if err != nil {
		return nil, err
	}
	defer rs.stop()
	per := make([][]float64, len(cmpProxies))  // RSS bytes per connection, from the warmed-up proxy
	cold := make([][]float64, len(cmpProxies)) // from the fresh proxy
	notes := make([][]string, len(cmpProxies)) // the last round's breakdown per proxy
	rounds := o.rounds
	for r := range rounds {
		for k := range cmpProxies {
			i := k
			if r%2 == 1 {
				i = len(cmpProxies) - 1 - k
			}
			p := cmpProxies[i]
			res, err := idleRound(p.kind, rs.addr, conns)
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", p.name, r+1, err)
			}
			per[i] = append(per[i], res.perConn)
			cold[i] = append(cold[i], res.perConnCold)
			notes[i] = []string{res.note}
			if o.verbose {
				fmt.Fprintf(log, "  round %d %-30s %s\n", r+1, p.name, res.note)
			}
		}
	}
	kib := func(v []float64) []float64 {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = x / 1024
		}
		return out
	}
	c, b, w := kib(per[0]), kib(per[1]), kib(per[2])
	ratio := median(c) / median(b)
	return []row{{
		Case: "L7", Title: title, Unit: "KiB/conn",
		Uringsend: median(c), Baseline: median(b), BaseName: cmpProxies[1].name, Ratio: ratio,
		Target: "≤ 0.5× (aim 0.25×)", Verdict: verdict(ratio <= 0.5), CandRuns: c, BaseRuns: b,
		Notes: append([]string{
			fmt.Sprintf("a fresh proxy child per round: warmed up (one connection, 2,048 PINGs: the receive pool's buffers are taken in ring order, so each has been used once), VmRSS read; then %d connections, each PING → exactly +PONG, left open; VmRSS again after 3 s; (after − before) / %d", conns, conns),
			fmt.Sprintf("counted from the fresh process instead (the warm-up's pool pages included): uringproxy %.2f KiB/conn, io.Copy proxy %.2f, -recv-own-buffers %.2f", median(kib(cold[0])), median(kib(cold[1])), median(kib(cold[2]))),
			fmt.Sprintf("%s: %.2f KiB/conn (%.2f× the io.Copy proxy), rounds %s", cmpProxies[2].name, median(w), median(w)/median(b), roundList(w)),
		}, append(append(notes[0], notes[1]...), notes[2]...)...),
	}}, nil
}

type idleResult struct {
	perConn, perConnCold float64
	note                 string
}

// idleRound starts a proxy child of kind in front of redis, warms it up,
// opens conns connections through it (one PING each) and measures.
func idleRound(kind, upstream string, conns int) (idleResult, error) {
	var res idleResult
	c, err := startProxyChild(kind, upstream)
	if err != nil {
		return res, err
	}
	defer c.stop()
	rss0, err := c.rss()
	if err != nil {
		return res, err
	}
	if err := pings(c.addr, 1, 2048); err != nil {
		return res, fmt.Errorf("warm-up: %w", err)
	}
	time.Sleep(500 * time.Millisecond)
	rss1, err := c.rss()
	if err != nil {
		return res, err
	}
	open := make([]net.Conn, 0, conns)
	defer func() {
		for _, x := range open {
			x.Close()
		}
	}()
	for i := range conns {
		x, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return res, fmt.Errorf("connection %d: %w", i, err)
		}
		open = append(open, x)
		if err := ping(x, 1); err != nil {
			return res, fmt.Errorf("connection %d: %w", i, err)
		}
	}
	// Idle: the engine lets go of an idle socket's send state (its pin
	// cache) within two of its one-second sweeps.
	time.Sleep(3 * time.Second)
	rss2, err := c.rss()
	if err != nil {
		return res, err
	}
	st, err := c.stats()
	if err != nil {
		return res, err
	}
	res.perConn = float64(rss2-rss1) / float64(conns)
	res.perConnCold = float64(rss2-rss0) / float64(conns)
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	res.note = fmt.Sprintf("%s: VmRSS %.1f MiB fresh, %.1f warmed up, %.1f with %d idle connections; %d goroutines, heap %.1f MiB allocated (%.1f in use), stacks %.1f MiB, the runtime's own %.1f MiB",
		kind, mib(uint64(rss0)), mib(uint64(rss1)), mib(uint64(rss2)), conns, st.Goroutines, mib(st.HeapAlloc), mib(st.HeapInuse), mib(st.StackInuse), mib(st.RuntimeSys))
	if st.HeldBuffers >= 0 {
		res.note += fmt.Sprintf("; buffers held by the idle connections (uringsend_proxy_held_buffers): %d, receive pool %v", st.HeldBuffers, st.RecvPool)
		if kind == "uring" && (st.HeldBuffers != 0 || !st.RecvPool) {
			return res, fmt.Errorf("idle connections hold %d buffers (receive pool %v); want 0", st.HeldBuffers, st.RecvPool)
		}
	}
	return res, nil
}

// pings opens conns connections to addr one after the other and sends n
// PINGs on each, reading +PONG after each.
func pings(addr string, conns, n int) error {
	for range conns {
		x, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		err = ping(x, n)
		x.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// ping sends PING n times on c, each answered by exactly +PONG.
func ping(c net.Conn, n int) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	want := []byte("+PONG\r\n")
	got := make([]byte, len(want))
	for range n {
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("got %q, want %q", got, want)
		}
	}
	return nil
}
