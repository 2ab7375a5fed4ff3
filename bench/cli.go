//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cliCase runs the load generator (cmd/uringsend) against an in-process
// discard sink and iperf3 against an iperf3 server, alternating, with the
// same message size on one connection.
func cliCase(o options, log io.Writer) ([]row, error) {
	rig, err := startCLIRig()
	if err != nil {
		return nil, err
	}
	defer rig.close()
	bin, iperf, srv, sink := rig.bin, rig.iperf, rig.iperfSrv, rig.sink

	secs := max(1, int(o.cliDuration.Round(time.Second)/time.Second))
	type cliPair struct {
		id, title string
		metric    metric
		cliArgs   []string
		iperfArgs []string
		size      int
		target    float64
	}
	pairs := []cliPair{
		{
			id: "C1", title: "CLI 128 KiB, 1 conn vs iperf3 -l 128K", metric: gbitRate, size: 128 << 10, target: 1.0,
			cliArgs:   []string{"-size", "128KiB", "-conns", "1"},
			iperfArgs: []string{"-l", "128K"},
		},
		{
			id: "C2", title: "CLI 64 B, 1 conn vs iperf3 -N -l 64", metric: msgRate, size: 64, target: 10,
			cliArgs:   []string{"-size", "64", "-conns", "1", "-inflight", "1024"},
			iperfArgs: []string{"-N", "-l", "64"},
		},
	}
	var rows []row
	for _, p := range pairs {
		cliArm := arm{"uringsend run", func(r round) (sample, error) {
			args := append([]string{"run", "-target", "tcp://" + sink.addr(), "-duration", fmt.Sprintf("%ds", secs), "-interval", "0", "-json"}, p.cliArgs...)
			return runCLI(bin, args, sink, p.size)
		}}
		iperfArm := arm{"iperf3", func(r round) (sample, error) {
			args := append([]string{"-c", "127.0.0.1", "-p", strconv.Itoa(srv.port), "-t", strconv.Itoa(secs), "-J"}, p.iperfArgs...)
			return runIperf(iperf, args, p.size)
		}}
		vnote, err := verifyCLI(bin, p.cliArgs)
		if err != nil {
			return rows, fmt.Errorf("%s verification run: %w", p.id, err)
		}
		var cand, base []float64
		notes := []string{vnote}
		for r := range o.cliRounds {
			order := []arm{cliArm, iperfArm}
			if r%2 == 1 {
				order = []arm{iperfArm, cliArm}
			}
			for _, a := range order {
				s, err := a.run(round{d: o.cliDuration})
				if err != nil {
					return rows, fmt.Errorf("%s %s: %w", p.id, a.name, err)
				}
				v := p.metric.of(s)
				if a.name == cliArm.name {
					cand = append(cand, v)
					if r == 0 && s.note != "" {
						notes = append(notes, s.note)
					}
				} else {
					base = append(base, v)
				}
				if o.verbose {
					fmt.Fprintf(log, "  %s round %d %-14s %s\n", p.id, r+1, a.name, formatValue(v, p.metric.unit()))
				}
			}
		}
		c, b := median(cand), median(base)
		rows = append(rows, row{
			Case: p.id, Title: p.title, Unit: p.metric.unit(),
			Uringsend: c, Baseline: b, BaseName: "iperf3", Ratio: c / b,
			Target: targetString(p.target), Verdict: verdict(c/b >= p.target),
			CandRuns: cand, BaseRuns: base,
			Notes: append([]string{
				fmt.Sprintf("uringsend run %s -duration %ds to an in-process discard sink; iperf3 -c 127.0.0.1 %s -t %d to iperf3 -s; %d rounds each, alternating",
					strings.Join(p.cliArgs, " "), secs, strings.Join(p.iperfArgs, " "), secs, o.cliRounds),
				"receiver byte counts matched the CLI's report in every round; iperf3's rate is its receiver's (sum_received)",
			}, notes...),
		})
	}
	return rows, nil
}

// cliRig is what the cases comparing the CLI with its peers start first:
// the CLI built, an iperf3 server and an in-process discard sink.
type cliRig struct {
	bin, iperf string
	iperfSrv   *iperfServer
	sink       *countingSink
}

func startCLIRig() (*cliRig, error) {
	iperf, err := lookTool("iperf3")
	if err != nil {
		return nil, err
	}
	bin, err := buildCLI()
	if err != nil {
		return nil, err
	}
	r := &cliRig{bin: bin, iperf: iperf}
	if r.iperfSrv, err = startIperfServer(iperf); err == nil {
		if r.sink, err = newCountingSink(); err == nil {
			return r, nil
		}
	}
	r.close()
	return nil, err
}

// close stops what started and removes the built CLI.
func (r *cliRig) close() {
	if r.sink != nil {
		r.sink.close()
	}
	if r.iperfSrv != nil {
		r.iperfSrv.stop()
	}
	os.RemoveAll(filepath.Dir(r.bin))
}

// lookTool finds a peer tool on the PATH.
func lookTool(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found (make deps installs it)", name)
	}
	return path, nil
}

// buildCLI builds cmd/uringsend of the module in the working directory
// into a temporary directory.
func buildCLI() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	if _, err := os.Stat(filepath.Join(root, "cmd", "uringsend")); err != nil {
		return "", fmt.Errorf("the CLI is not there: %w", err)
	}
	dir, err := os.MkdirTemp("", "uringsend-bench-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "uringsend")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/uringsend")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build ./cmd/uringsend: %v\n%s", err, out)
	}
	return bin, nil
}

// cliReport is the part of "uringsend run -json" the benchmark reads.
type cliReport struct {
	Messages       int64   `json:"messages"`
	Bytes          int64   `json:"bytes"`
	Errors         int64   `json:"errors"`
	Aborted        int64   `json:"aborted"`
	SendSeconds    float64 `json:"send_seconds"`
	Duration       float64 `json:"duration_seconds"`
	MsgsPerSecond  float64 `json:"messages_per_second"`
	BitsPerSecond  float64 `json:"bits_per_second"`
	SyncRatio      float64 `json:"sync_ratio"`
	Backend        string  `json:"backend"`
	ZeroCopyUsed   bool    `json:"zerocopy_used"`
	ConnectionsBad int64   `json:"connections_failed"`
}

func runCLI(bin string, args []string, sink *countingSink, size int) (sample, error) {
	before := sink.snapshot()
	out, err := runOut(bin, args...)
	if err != nil {
		return sample{}, err
	}
	var rep cliReport
	if err := json.NewDecoder(bytes.NewReader(out)).Decode(&rep); err != nil {
		return sample{}, fmt.Errorf("reading its -json report: %w", err)
	}
	if rep.Errors > 0 || rep.ConnectionsBad > 0 {
		return sample{}, fmt.Errorf("the run reported %d errors, %d failed connections", rep.Errors, rep.ConnectionsBad)
	}
	got, err := sink.waitIdle(before, 1)
	if err != nil {
		return sample{}, err
	}
	if got != rep.Bytes {
		return sample{}, fmt.Errorf("the sink received %d bytes, the CLI reported %d", got, rep.Bytes)
	}
	secs := rep.SendSeconds
	if secs <= 0 {
		secs = rep.Duration
	}
	return sample{
		msgs: rep.Messages, bytes: rep.Bytes, elapsed: time.Duration(secs * float64(time.Second)),
		note: fmt.Sprintf("CLI report: backend %s, sync ratio %.2f, zero-copy used %v", rep.Backend, rep.SyncRatio, rep.ZeroCopyUsed),
	}, nil
}

// sinkReport is the part of "uringsend sink -json" the benchmark reads.
type sinkReport struct {
	Bytes      int64 `json:"bytes"`
	Messages   int64 `json:"messages"`
	Verified   int64 `json:"verified"`
	Corrupt    int64 `json:"corrupt"`
	OutOfOrder int64 `json:"out_of_order"`
	Lost       int64 `json:"lost"`
}

// verifyCLI runs the CLI with -verify for a second against its own sink
// with -verify, which checks every message's sequence number and
// checksum.
func verifyCLI(bin string, args []string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	target := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	sink := exec.Command(bin, "sink", "-listen", target, "-verify", "-json", "-interval", "0")
	var sinkOut, sinkErr bytes.Buffer
	sink.Stdout, sink.Stderr = &sinkOut, &sinkErr
	if err := sink.Start(); err != nil {
		return "", err
	}
	defer sink.Process.Kill()
	for i := 0; ; i++ { // wait until it listens
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			return "", fmt.Errorf("uringsend sink did not listen: %s", sinkErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	runArgs := append([]string{"run", "-target", target, "-duration", "1s", "-interval", "0", "-json", "-verify"}, args...)
	out, err := exec.Command(bin, runArgs...).Output()
	if err != nil {
		return "", fmt.Errorf("uringsend run -verify: %v", err)
	}
	var run cliReport
	if err := json.Unmarshal(out, &run); err != nil {
		return "", err
	}
	sink.Process.Signal(os.Interrupt)
	if err := sink.Wait(); err != nil {
		return "", fmt.Errorf("uringsend sink: %v: %s", err, sinkErr.String())
	}
	var rep sinkReport
	if err := json.Unmarshal(sinkOut.Bytes(), &rep); err != nil {
		return "", fmt.Errorf("reading the sink's report: %w", err)
	}
	if rep.Corrupt+rep.OutOfOrder+rep.Lost > 0 || rep.Verified != run.Messages || rep.Bytes != run.Bytes {
		return "", fmt.Errorf("sink verified %d of %d messages (%d bytes of %d): %d corrupt, %d out of order, %d lost",
			rep.Verified, run.Messages, rep.Bytes, run.Bytes, rep.Corrupt, rep.OutOfOrder, rep.Lost)
	}
	return fmt.Sprintf("verification run (-verify, 1 s, to uringsend sink -verify): %d messages, %s, every sequence number and checksum checked", rep.Verified, sizeString(rep.Bytes)), nil
}

// iperfServer is an iperf3 -s process.
type iperfServer struct {
	cmd  *exec.Cmd
	port int
	done chan struct{}
}

func startIperfServer(bin string) (*iperfServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-s", "-B", "127.0.0.1", "-p", strconv.Itoa(port), "--forceflush")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &iperfServer{cmd: cmd, port: port, done: make(chan struct{})}
	ready := make(chan bool, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), "Server listening") {
				ready <- true
				signalled = true
			}
		}
		if !signalled {
			ready <- false
		}
		cmd.Wait()
	}()
	select {
	case ok := <-ready:
		if ok {
			return s, nil
		}
	case <-time.After(5 * time.Second):
	}
	s.stop()
	return nil, errors.New("iperf3 -s did not start listening")
}

func (s *iperfServer) stop() {
	s.cmd.Process.Kill()
	<-s.done
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// iperfReport is the part of iperf3 -J the benchmark reads.
type iperfReport struct {
	End struct {
		SumSent struct {
			Bytes   float64 `json:"bytes"`
			Seconds float64 `json:"seconds"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         float64 `json:"bytes"`
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

func runIperf(bin string, args []string, size int) (sample, error) {
	var out []byte
	var err error
	for attempt := 0; attempt < 3; attempt++ { // the server is busy for a moment after a test
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err = exec.CommandContext(ctx, bin, args...).Output()
		cancel()
		if err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	var rep iperfReport
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		return sample{}, fmt.Errorf("iperf3: %v, %v", err, jerr)
	}
	if rep.Error != "" {
		return sample{}, fmt.Errorf("iperf3: %s", rep.Error)
	}
	recv := rep.End.SumReceived
	if recv.Bytes <= 0 || recv.Seconds <= 0 {
		return sample{}, fmt.Errorf("iperf3 received nothing: %v", err)
	}
	return sample{
		msgs: int64(recv.Bytes) / int64(size), bytes: int64(recv.Bytes),
		elapsed: time.Duration(recv.Seconds * float64(time.Second)),
	}, nil
}

// countingSink accepts TCP connections on loopback and counts what they
// send.
type countingSink struct {
	l        net.Listener
	mu       sync.Mutex
	bytes    int64
	accepted int
	open     int
	wg       sync.WaitGroup
}

// sinkCount is a snapshot of a countingSink's counters.
type sinkCount struct {
	bytes    int64
	accepted int
}

func newCountingSink() (*countingSink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &countingSink{l: l}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.open++
			s.accepted++
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				buf := make([]byte, 256<<10)
				for {
					n, err := c.Read(buf)
					s.mu.Lock()
					s.bytes += int64(n)
					if err != nil {
						s.open--
					}
					s.mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return s, nil
}

func (s *countingSink) addr() string { return s.l.Addr().String() }

func (s *countingSink) snapshot() sinkCount {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sinkCount{s.bytes, s.accepted}
}

// waitIdle waits until conns connections have come since before and
// none is open, and returns the bytes received since before.
func (s *countingSink) waitIdle(before sinkCount, conns int) (int64, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		open, n, acc := s.open, s.bytes, s.accepted
		s.mu.Unlock()
		if open == 0 && acc-before.accepted >= conns {
			return n - before.bytes, nil
		}
		if time.Now().After(deadline) {
			return n - before.bytes, fmt.Errorf("the CLI left %d connection(s) open at the sink, %d accepted", open, acc-before.accepted)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *countingSink) close() {
	s.l.Close()
	s.wg.Wait()
}
