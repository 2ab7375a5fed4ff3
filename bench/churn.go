//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uringsend/uringsend/proxy"
	"github.com/uringsend/uringsend/proxy/proxytest"
)

// The churn cases (issue 14) put uringproxy under connection churn, in
// this process, against the plain Go io.Copy proxy (proxytest.CopyProxy).
//
// L2: redis-benchmark -t get -k 0 -c 50 -n N through each proxy: -k 0
// opens a new connection for every request, so requests/s is connections
// per second through the proxy (accept, dial, one GET each way, two
// closes). The proxy is the only thing running in this process during a
// round, so the process's CPU time (getrusage) over the round divided by
// N is the proxy's CPU per connection; redis-server and redis-benchmark
// are other processes. Heap allocations per connection come from
// runtime.MemStats over the same round.
//
// L3: an accept storm. A child process (this binary again) runs an echo
// upstream and storm clients that connect through the proxy all at once;
// each sends its own 32 bytes, half-closes, and must read back exactly
// those bytes and EOF. The proxy side holds two descriptors per
// connection, the child two (client, upstream): neither process passes
// the 20,000 descriptor limit. Afterwards the proxy's descriptors and
// goroutines must be back where they were before the storm.

// churnRequests is L2's connections per run.
func (o options) churnRequests() int {
	if o.quick {
		return 3000
	}
	return 20000
}

// stormClients is L3's clients; stormRounds its rounds per proxy.
func (o options) stormClients() int {
	if o.quick {
		return 2000
	}
	return 8000
}

func (o options) stormRounds() int {
	if o.quick {
		return 1
	}
	return min(o.rounds, 3)
}

// skipRow is a case that could not run here, with why.
func skipRow(id, title, why string) []row {
	return []row{{Case: id, Title: title + " (skipped)", Target: "—", Verdict: "SKIP", noBase: true, Notes: []string{why}}}
}

// benchProxy is one proxy of the churn cases, started once per case.
type benchProxy struct {
	name  string
	start func(upstream string) (addr string, stop func(), err error)
}

func uringProxy(name string, recv string) benchProxy {
	return benchProxy{name, func(upstream string) (string, func(), error) {
		cfg := proxy.DefaultConfig()
		cfg.Listen, cfg.Upstream = "127.0.0.1:0", upstream
		if recv != "" {
			cfg.Recv = recv
		}
		p, err := proxy.New(cfg, nil)
		if err != nil {
			return "", nil, err
		}
		served := make(chan struct{})
		go func() {
			p.Serve()
			close(served)
		}()
		return p.Addr().String(), func() { p.Close(); <-served }, nil
	}}
}

var copyProxy = benchProxy{"io.Copy proxy", func(upstream string) (string, func(), error) {
	p, err := proxytest.CopyProxy("127.0.0.1:0", upstream)
	if err != nil {
		return "", nil, err
	}
	return p.Addr().String(), func() { p.Close() }, nil
}}

// redisServer is a redis-server child on a free loopback port.
type redisServer struct {
	cmd  *exec.Cmd
	addr string
	dir  string
}

func startRedis(bin string) (*redisServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir, err := os.MkdirTemp("", "bench-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	r := &redisServer{cmd: cmd, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir}
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", r.addr, time.Second)
		if err == nil {
			c.Close()
			return r, nil
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("redis-server not listening on %s after 10 s: %w", r.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *redisServer) stop() {
	r.cmd.Process.Kill()
	r.cmd.Wait()
	os.RemoveAll(r.dir)
}

var rbGet = regexp.MustCompile(`(?m)^GET: ([0-9.]+) requests per second`)

// redisChurn runs redis-benchmark -t get -k 0 -c 50 -n n against addr and
// returns its GET requests/s.
func redisChurn(bin, addr string, n int) (float64, error) {
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(bin, "-h", host, "-p", port, "-t", "get", "-k", "0", "-c", "50", "-n", strconv.Itoa(n), "-q").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark: %v\n%s", err, out)
	}
	m := rbGet.FindStringSubmatch(strings.ReplaceAll(string(out), "\r", "\n"))
	if m == nil {
		return 0, fmt.Errorf("redis-benchmark reported no GET rate:\n%s", out)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	if v <= 0 {
		return 0, fmt.Errorf("redis-benchmark reported a GET rate of %v", v)
	}
	return v, nil
}

// pingChurn opens n connections to addr one after the other; on each it
// sends PING and must read exactly +PONG and then EOF after it closes
// its side.
func pingChurn(addr string, n int) error {
	want := []byte("+PONG\r\n")
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Write([]byte("PING\r\n"))
		got := make([]byte, len(want))
		if err == nil {
			_, err = io.ReadFull(c, got)
		}
		if err == nil && !bytes.Equal(got, want) {
			err = fmt.Errorf("got %q, want %q", got, want)
		}
		if err == nil {
			c.(*net.TCPConn).CloseWrite()
			var rest []byte
			if rest, err = io.ReadAll(c); err == nil && len(rest) > 0 {
				err = fmt.Errorf("%d bytes after +PONG", len(rest))
			}
		}
		c.Close()
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
	}
	return nil
}

// l2 is the churn comparison: connections/s, CPU and allocations per
// connection.
func l2(o options, log io.Writer) ([]row, error) {
	const title = "redis GET, a new connection per request (-k 0 -c 50)"
	rbBin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return skipRow("L2", title, "redis-benchmark not found (Debian package redis-tools; make deps installs it)"), nil
	}
	srvBin, err := exec.LookPath("redis-server")
	if err != nil {
		return skipRow("L2", title, "redis-server not found (Debian package redis-server; make deps installs it)"), nil
	}
	rs, err := startRedis(srvBin)
	if err != nil {
		return nil, err
	}
	defer rs.stop()
	n := o.churnRequests()
	proxies := []benchProxy{uringProxy("uringproxy", ""), copyProxy, uringProxy("uringproxy -recv net", proxy.RecvNet)}
	arms := make([]arm, len(proxies))
	for i, bp := range proxies {
		addr, stop, err := bp.start(rs.addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", bp.name, err)
		}
		defer stop()
		arms[i] = arm{bp.name, func(r round) (sample, error) {
			if r.verify {
				const conns = 200
				if err := pingChurn(addr, conns); err != nil {
					return sample{}, err
				}
				return sample{msgs: conns, elapsed: time.Second, note: fmt.Sprintf("%d connections one after the other, each PING → exactly +PONG, then EOF", conns)}, nil
			}
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			rate, err := redisChurn(rbBin, addr, n)
			runtime.ReadMemStats(&m1)
			if err != nil {
				return sample{}, err
			}
			return sample{
				msgs: int64(n), elapsed: time.Duration(float64(n) / rate * float64(time.Second)),
				allocs: m1.Mallocs - m0.Mallocs, allocMsgs: int64(n),
			}, nil
		}}
	}
	rows, samples, err := runComparison(o, log, comparison{
		metric: msgRate,
		cand:   arms[0],
		bases: []baseline{
			{arm: arms[1], id: "L2", title: "connections/s: " + title, target: "≥ 1.0× (aim 1.2×)", pass: atLeast(1.0)},
			{arm: arms[2], id: "L2n", title: "connections/s vs uringproxy -recv net", target: "report"},
		},
	})
	if err != nil {
		return rows, err
	}
	// runComparison's note on receiver byte counts is not this case's:
	// here the verification round checks the bytes.
	rows[0].Notes = slices.DeleteFunc(rows[0].Notes, func(n string) bool { return strings.HasPrefix(n, "receiver byte counts") })
	rows[0].Notes = append([]string{
		fmt.Sprintf("msg = one connection through the proxy: accept, dial the upstream, GET and its reply, both closes; redis-benchmark -t get -k 0 -c 50 -n %d -q, its GET requests/s", n),
		"uringproxy: proxy.New in this process with the defaults (io_uring, -recv engine); the io.Copy proxy is proxy/internal/copyproxy",
	}, rows[0].Notes...)
	cpu := func(i int) []float64 { return cpuPerMsg(samples[i]) }
	allocs := func(i int) []float64 {
		v := make([]float64, len(samples[i]))
		for j, s := range samples[i] {
			v[j] = float64(s.allocs) / float64(max(s.allocMsgs, 1))
		}
		return v
	}
	cc, bc, nc := cpu(0), cpu(1), cpu(2)
	rows = append(rows, row{
		Case: "L2c", Title: "proxy CPU per connection (in-process proxy, getrusage)", Unit: "ns/op",
		Uringsend: median(cc), Baseline: median(bc), BaseName: proxies[1].name, Ratio: median(cc) / median(bc),
		Target: "≤ 1.0×", Verdict: verdict(median(cc)/median(bc) <= 1.0), CandRuns: cc, BaseRuns: bc,
		Notes: []string{fmt.Sprintf("getrusage(RUSAGE_SELF) user+system time over each round / connections; redis-server and redis-benchmark are other processes; uringproxy -recv net: %.0f ns/op", median(nc))},
	})
	ca, ba, na := allocs(0), allocs(1), allocs(2)
	rows = append(rows, row{
		Case: "L2a", Title: "heap allocations per connection", Unit: "allocs/conn",
		Uringsend: median(ca), Baseline: median(ba), BaseName: proxies[1].name, Ratio: median(ca) / median(ba),
		Target: "report", Verdict: "—", CandRuns: ca, BaseRuns: ba,
		Notes: []string{fmt.Sprintf("runtime.MemStats.Mallocs over each round / connections; uringproxy -recv net: %.1f", median(na))},
	})
	return rows, nil
}

// Storm child protocol: the bench binary, run with stormEnv set, starts an
// echo upstream and prints "upstream ADDR"; it then reads "go PROXYADDR N"
// on stdin, runs N clients at once through PROXYADDR and prints one line
// of JSON (stormResult). It exits when stdin closes.
const stormEnv = "UR_BENCH_STORM_CHILD"

type stormResult struct {
	OK      int      `json:"ok"`
	Failed  int      `json:"failed"`
	Errors  []string `json:"errors,omitempty"` // the first few
	Elapsed float64  `json:"elapsed_s"`        // from the start to the last client done
}

func init() {
	if os.Getenv(stormEnv) == "1" {
		os.Exit(stormChild(os.Stdin, os.Stdout))
	}
}

func stormChild(in io.Reader, out io.Writer) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "storm child:", err)
		return 1
	}
	go func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil { // EMFILE and the like: the storm goes on
				fmt.Fprintln(os.Stderr, "storm child: accept:", err)
				time.Sleep(5 * time.Millisecond)
				continue
			}
			go func() {
				// A read and write loop, not io.Copy: on TCP io.Copy
				// splices through a pipe (two more descriptors per
				// connection), and 8,000 of those pass the limit.
				var buf [512]byte
				for {
					n, err := c.Read(buf[:])
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
			}()
		}
	}()
	fmt.Fprintf(out, "upstream %s\n", ln.Addr())
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var addr string
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "go %s %d", &addr, &n); err != nil {
			fmt.Fprintln(os.Stderr, "storm child: bad command:", sc.Text())
			return 1
		}
		b, _ := json.Marshal(storm(addr, n))
		fmt.Fprintf(out, "%s\n", b)
	}
	return 0
}

// storm runs n clients at once against addr: each sends 32 bytes of its
// own, half-closes and must read exactly those bytes back, then EOF.
func storm(addr string, n int) stormResult {
	var (
		wg     sync.WaitGroup
		ok     atomic.Int64
		mu     sync.Mutex
		res    stormResult
		start  = make(chan struct{})
		dialer = net.Dialer{Timeout: 30 * time.Second}
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := stormClient(&dialer, addr, i)
			if err == nil {
				ok.Add(1)
				return
			}
			mu.Lock()
			res.Failed++
			if len(res.Errors) < 5 {
				res.Errors = append(res.Errors, fmt.Sprintf("client %d: %v", i, err))
			}
			mu.Unlock()
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	res.Elapsed = time.Since(t0).Seconds()
	res.OK = int(ok.Load())
	return res
}

func stormClient(d *net.Dialer, addr string, i int) error {
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var msg [32]byte
	for j := 0; j < len(msg); j += 8 {
		binary.LittleEndian.PutUint64(msg[j:], uint64(i)*0x9e3779b97f4a7c15+uint64(j))
	}
	if _, err := c.Write(msg[:]); err != nil {
		return err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, msg[:]) {
		return fmt.Errorf("read %d bytes back, not the 32 sent", len(got))
	}
	return nil
}

// stormProc is the storm child, running.
type stormProc struct {
	cmd      *exec.Cmd
	in       io.WriteCloser
	out      *bufio.Scanner
	upstream string
}

// startSelf starts this program again as a child with env added: the
// child's stdin (closed to stop it) and its stdout, line by line.
func startSelf(env ...string) (*exec.Cmd, io.WriteCloser, *bufio.Scanner, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	return cmd, in, bufio.NewScanner(outp), nil
}

func startStorm() (*stormProc, error) {
	cmd, in, out, err := startSelf(stormEnv + "=1")
	if err != nil {
		return nil, err
	}
	s := &stormProc{cmd: cmd, in: in, out: out}
	if !s.out.Scan() {
		s.stop()
		return nil, errors.New("storm child: no upstream line")
	}
	s.upstream = strings.TrimPrefix(s.out.Text(), "upstream ")
	return s, nil
}

func (s *stormProc) run(addr string, n int) (stormResult, error) {
	var r stormResult
	if _, err := fmt.Fprintf(s.in, "go %s %d\n", addr, n); err != nil {
		return r, err
	}
	if !s.out.Scan() {
		return r, fmt.Errorf("storm child: no result (%v)", s.out.Err())
	}
	err := json.Unmarshal(s.out.Bytes(), &r)
	return r, err
}

func (s *stormProc) stop() {
	s.in.Close()
	if s.cmd.Wait() != nil {
		s.cmd.Process.Kill()
	}
}

// churnFDs counts this process's descriptors.
func churnFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// settle waits (up to limit) until the descriptors and goroutines are
// back to fds and gs, and returns what it saw last.
func settle(fds, gs int, limit time.Duration) (int, int) {
	deadline := time.Now().Add(limit)
	for {
		f, g := churnFDs(), runtime.NumGoroutine()
		if f <= fds && g <= gs || time.Now().After(deadline) {
			return f, g
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listenOverflows is TcpExt ListenOverflows of /proc/net/netstat: the
// connections the kernel dropped because an accept queue was full (the
// listen backlog is net.core.somaxconn, 4096 by default, below a storm
// of 8,000); -1 when unknown.
func listenOverflows() int64 {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return -1
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(vals) != len(names) {
			continue
		}
		for j, n := range names {
			if n == "ListenOverflows" {
				v, _ := strconv.ParseInt(vals[j], 10, 64)
				return v
			}
		}
	}
	return -1
}

// l3 is the accept storm.
func l3(o options, log io.Writer) ([]row, error) {
	n := o.stormClients()
	title := fmt.Sprintf("accept storm: %d clients at once, one echo each", n)
	s, err := startStorm()
	if err != nil {
		return nil, err
	}
	defer s.stop()
	proxies := []benchProxy{uringProxy("uringproxy", ""), copyProxy}
	times := make([][]float64, len(proxies))
	var notes []string
	pass := true
	for r := range o.stormRounds() {
		for k := range proxies {
			i := k
			if r%2 == 1 {
				i = len(proxies) - 1 - k
			}
			bp := proxies[i]
			runtime.GC()
			fds0, gs0 := churnFDs(), runtime.NumGoroutine()
			addr, stop, err := bp.start(s.upstream)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", bp.name, err)
			}
			fds1, gs1 := churnFDs(), runtime.NumGoroutine()
			ov0 := listenOverflows()
			res, err := s.run(addr, n)
			ov := listenOverflows() - ov0
			if err != nil {
				stop()
				return nil, fmt.Errorf("%s: %w", bp.name, err)
			}
			// Served: every connection must be gone from the proxy
			// while it still runs.
			fds2, gs2 := settle(fds1, gs1, 10*time.Second)
			stop()
			fds3, gs3 := settle(fds0, gs0, 10*time.Second)
			ok := res.OK == n && res.Failed == 0 && fds2 <= fds1 && gs2 <= gs1 && fds3 <= fds0 && gs3 <= gs0
			if bp.name == proxies[0].name {
				pass = pass && ok
			}
			times[i] = append(times[i], res.Elapsed)
			line := fmt.Sprintf("round %d %s: %d/%d served in %.2f s; accept queue overflows %d; proxy fds %d → %d after (started with %d), goroutines %d → %d (%d)",
				r+1, bp.name, res.OK, n, res.Elapsed, ov, fds1, fds2, fds0, gs1, gs2, gs0)
			if len(res.Errors) > 0 {
				line += "; " + strings.Join(res.Errors, "; ")
			}
			fmt.Fprintln(log, "  "+line)
			if !ok {
				line = "FAILED " + line
			}
			notes = append(notes, line)
		}
	}
	cand, base := median(times[0]), median(times[1])
	return []row{{
		Case: "L3", Title: title + " (time to serve all)", Unit: "s",
		Uringsend: cand, Baseline: base, BaseName: proxies[1].name, Ratio: cand / base,
		Target: "all served, exact bytes, fds and goroutines back", Verdict: verdict(pass), CandRuns: times[0], BaseRuns: times[1],
		Notes: append([]string{
			fmt.Sprintf("a child process (this binary) runs the echo upstream and %d clients released at once: each connects through the proxy, sends 32 bytes of its own, half-closes and must read exactly them back and EOF; the proxy holds 2 descriptors per connection, the child 2", n),
			"PASS: in every round every client of uringproxy served, exact bytes, and the proxy process's descriptors and goroutines back to their count before the storm (with the proxy still running, and again after Close); the io.Copy proxy's rounds for reference",
			"accept queue overflows: TcpExt ListenOverflows over the round (the kernel drops a handshake's last ACK when the listener's queue, net.core.somaxconn, is full; the client retransmits)",
		}, notes...),
	}}, nil
}
