//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// peersCase measures the load generator with its defaults against the
// tools people compare it with, each to its own receiver, in one run,
// alternating rounds:
//
//   - C3: "uringsend run -conns 1 -size 64" (defaults: the byte window)
//     to an in-process discard sink vs "sockperf tp --tcp -m 64" to
//     "sockperf sr";
//   - C4: the same run vs "iperf3 -N -l 64" to "iperf3 -s";
//   - R1–R3: "uringsend rr -conns 1 -size 64" to "uringsend sink -echo" vs
//     "sockperf ping-pong --tcp -m 64 --mps=max --full-rtt" to "sockperf
//     sr": round-trip p50, p99 and transactions per second.
func peersCase(o options, log io.Writer) ([]row, error) {
	sockperf, err := lookTool("sockperf")
	if err != nil {
		return nil, err
	}
	rig, err := startCLIRig()
	if err != nil {
		return nil, err
	}
	defer rig.close()
	bin, iperf, isrv, sink := rig.bin, rig.iperf, rig.iperfSrv, rig.sink
	srPort, err := freePort()
	if err != nil {
		return nil, err
	}
	sr, err := startProc(sockperf, nil, "sr", "--tcp", "-i", "127.0.0.1", "-p", strconv.Itoa(srPort))
	if err != nil {
		return nil, err
	}
	defer sr.stop()
	if err := waitListen(srPort); err != nil {
		return nil, fmt.Errorf("sockperf sr: %w", err)
	}
	echo, err := startProc(bin, regexp.MustCompile(`listening on (tcp://\S+)`), "sink", "-listen", "tcp://127.0.0.1:0", "-echo", "-interval", "0")
	if err != nil {
		return nil, err
	}
	defer echo.stop()

	secs := max(1, int(o.cliDuration.Round(time.Second)/time.Second))
	dur := fmt.Sprintf("%ds", secs)
	runDefaults := func() (sample, error) {
		return runCLI(bin, []string{"run", "-target", "tcp://" + sink.addr(), "-conns", "1", "-size", "64", "-duration", dur, "-interval", "0", "-json"}, sink, 64)
	}
	type rrSample struct{ p50, p99, rate float64 }
	var cliTP, sockTP, iperfTP []float64
	var rrS, ppS []rrSample
	var notes []string
	for r := range o.cliRounds {
		steps := []func() error{
			func() error {
				s, err := runDefaults()
				if err != nil {
					return fmt.Errorf("uringsend run: %w", err)
				}
				cliTP = append(cliTP, msgRate.of(s))
				if r == 0 {
					notes = append(notes, s.note)
				}
				return nil
			},
			func() error {
				v, err := sockperfTP(sockperf, srPort, secs)
				if err != nil {
					return err
				}
				sockTP = append(sockTP, v)
				return nil
			},
			func() error {
				s, err := runIperf(iperf, []string{"-c", "127.0.0.1", "-p", strconv.Itoa(isrv.port), "-t", strconv.Itoa(secs), "-J", "-N", "-l", "64"}, 64)
				if err != nil {
					return err
				}
				iperfTP = append(iperfTP, msgRate.of(s))
				return nil
			},
			func() error {
				p50, p99, rate, err := runRR(bin, echo.addr, dur)
				if err != nil {
					return err
				}
				rrS = append(rrS, rrSample{p50, p99, rate})
				return nil
			},
			func() error {
				p50, p99, rate, err := sockperfPP(sockperf, srPort, secs)
				if err != nil {
					return err
				}
				ppS = append(ppS, rrSample{p50, p99, rate})
				return nil
			},
		}
		if r%2 == 1 { // alternate who goes first
			for i, j := 0, len(steps)-1; i < j; i, j = i+1, j-1 {
				steps[i], steps[j] = steps[j], steps[i]
			}
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return nil, err
			}
		}
		if o.verbose {
			fmt.Fprintf(log, "  peers round %d: run %.0f, sockperf tp %.0f, iperf3 %.0f msg/s; rr p50 %.1f µs, pp p50 %.1f µs\n",
				r+1, cliTP[r], sockTP[r], iperfTP[r], rrS[r].p50, ppS[r].p50)
		}
	}
	pick := func(s []rrSample, f func(rrSample) float64) []float64 {
		v := make([]float64, len(s))
		for i, x := range s {
			v[i] = f(x)
		}
		return v
	}
	p50s, pp50s := pick(rrS, func(s rrSample) float64 { return s.p50 }), pick(ppS, func(s rrSample) float64 { return s.p50 })
	p99s, pp99s := pick(rrS, func(s rrSample) float64 { return s.p99 }), pick(ppS, func(s rrSample) float64 { return s.p99 })
	rates, pprates := pick(rrS, func(s rrSample) float64 { return s.rate }), pick(ppS, func(s rrSample) float64 { return s.rate })
	how := fmt.Sprintf("%d rounds of %d s each, alternating; median", o.cliRounds, secs)
	mk := func(id, title, unit, base string, cand, baseRuns []float64, target string, pass bool, notes ...string) row {
		c, b := median(cand), median(baseRuns)
		return row{Case: id, Title: title, Unit: unit, Uringsend: c, Baseline: b, BaseName: base, Ratio: c / b,
			Target: target, Verdict: verdict(pass), CandRuns: cand, BaseRuns: baseRuns, Notes: notes}
	}
	c3 := mk("C3", "CLI defaults 64 B, 1 conn vs sockperf tp -m 64", "msg/s", "sockperf tp", cliTP, sockTP, "≥ 3×",
		median(cliTP)/median(sockTP) >= 3,
		append([]string{"uringsend run -conns 1 -size 64 (no -inflight: the 256 KiB window, 1024 sends) to an in-process discard sink, " +
			"the bytes it counted equal to the run's; sockperf tp --tcp -m 64 to sockperf sr, its sender's message rate; " + how}, notes...)...)
	c4 := mk("C4", "CLI defaults 64 B, 1 conn vs iperf3 -N -l 64", "msg/s", "iperf3", cliTP, iperfTP, "≥ 10×",
		median(cliTP)/median(iperfTP) >= 10,
		"the same uringsend runs as C3; iperf3 -c -N -l 64 to iperf3 -s, its receiver's rate; "+how)
	r1 := mk("R1", "rr 64 B, 1 conn, round-trip p50 vs sockperf ping-pong", "µs", "sockperf pp", p50s, pp50s, "≤ 1.2×",
		median(p50s)/median(pp50s) <= 1.2,
		"uringsend rr -conns 1 -size 64 -omit 400ms to uringsend sink -echo (another process, Go's net); sockperf ping-pong --tcp -m 64 "+
			"--mps=max --full-rtt to sockperf sr (its warm-up, 400 ms, left out as -omit does); each client to its own echo server; "+how)
	r2 := mk("R2", "rr 64 B, 1 conn, round-trip p99 vs sockperf ping-pong", "µs", "sockperf pp", p99s, pp99s, "report", true)
	r2.Verdict = "—"
	r3 := mk("R3", "rr 64 B, 1 conn, transactions/s vs sockperf ping-pong", "msg/s", "sockperf pp", rates, pprates, "≥ 1.0×",
		median(rates)/median(pprates) >= 1.0)
	return []row{c3, c4, r1, r2, r3}, nil
}

// proc is a peer process started for the case.
type proc struct {
	cmd  *exec.Cmd
	addr string // what the pattern found on its output
	out  *bytes.Buffer
}

// startProc starts bin with args and, with a pattern, waits (at most 5 s)
// until a line of its output matches; addr is the first group.
func startProc(bin string, pattern *regexp.Regexp, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, out: &bytes.Buffer{}}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if pattern != nil {
				if m := pattern.FindStringSubmatch(sc.Text()); m != nil {
					select {
					case found <- m[1]:
					default:
					}
				}
			}
		}
	}()
	go func() { cmd.Wait(); pw.Close() }()
	if pattern == nil {
		return p, nil
	}
	select {
	case p.addr = <-found:
		return p, nil
	case <-time.After(5 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s did not start", filepath.Base(bin))
	}
}

func (p *proc) stop() { p.cmd.Process.Kill() }

// waitListen waits (at most 5 s) until something accepts connections
// on the loopback port.
func waitListen(port int) error {
	for i := 0; i < 100; i++ {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on 127.0.0.1:%d", port)
}

// runOut runs bin with args (at most a minute) and returns its stdout,
// then its stderr (where sockperf reports).
func runOut(bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %v: %s", filepath.Base(bin), err, strings.TrimSpace(stderr.String()))
	}
	return append(out, stderr.Bytes()...), nil
}

// sockperfTP runs sockperf's throughput mode and returns its message rate.
func sockperfTP(bin string, port, secs int) (float64, error) {
	out, err := runOut(bin, "tp", "--tcp", "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-m", "64", "-t", strconv.Itoa(secs))
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`Message Rate is (\d+) \[msg/sec\]`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("sockperf tp: no message rate in:\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// sockperfPP runs sockperf's ping-pong mode as fast as it goes and returns
// its round-trip p50 and p99 (µs) and round trips per second.
func sockperfPP(bin string, port, secs int) (p50, p99, rate float64, err error) {
	out, err := runOut(bin, "ping-pong", "--tcp", "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-m", "64", "-t", strconv.Itoa(secs),
		"--mps=max", "--full-rtt")
	if err != nil {
		return 0, 0, 0, err
	}
	num := func(re string) float64 {
		if m := regexp.MustCompile(re).FindSubmatch(out); m != nil {
			v, _ := strconv.ParseFloat(string(m[1]), 64)
			return v
		}
		return 0
	}
	p50 = num(`percentile 50\.000 =\s+([\d.]+)`)
	p99 = num(`percentile 99\.000 =\s+([\d.]+)`)
	secsValid := num(`\[Valid Duration\] RunTime=([\d.]+) sec`)
	recv := num(`\[Valid Duration\] RunTime=[\d.]+ sec; SentMessages=\d+; ReceivedMessages=(\d+)`)
	if p50 == 0 || p99 == 0 || secsValid == 0 || recv == 0 {
		return 0, 0, 0, fmt.Errorf("sockperf ping-pong: no percentiles in:\n%s", out)
	}
	return p50, p99, recv / secsValid, nil
}

// runRR runs "uringsend rr" against an echo server and returns its
// round-trip p50 and p99 (µs) and round trips per second.
func runRR(bin, target, dur string) (p50, p99, rate float64, err error) {
	out, err := runOut(bin, "rr", "-target", target, "-conns", "1", "-size", "64", "-duration", dur, "-omit", "400ms", "-interval", "0", "-json")
	if err != nil {
		return 0, 0, 0, err
	}
	var rep struct {
		Messages int64   `json:"messages"`
		Errors   int64   `json:"errors"`
		Rate     float64 `json:"messages_per_second"`
		Latency  struct {
			P50 float64 `json:"p50"`
			P99 float64 `json:"p99"`
		} `json:"latency_seconds"`
	}
	if err := json.NewDecoder(bytes.NewReader(out)).Decode(&rep); err != nil {
		return 0, 0, 0, fmt.Errorf("uringsend rr: reading its report: %w", err)
	}
	if rep.Errors > 0 || rep.Messages == 0 {
		return 0, 0, 0, fmt.Errorf("uringsend rr: %d round trips, %d errors", rep.Messages, rep.Errors)
	}
	return rep.Latency.P50 * 1e6, rep.Latency.P99 * 1e6, rep.Rate, nil
}
