//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"runtime/pprof"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// sample is what one round of one arm measured.
type sample struct {
	msgs      int64         // messages handed to the kernel (completed sends)
	bytes     int64         // their bytes, equal to what the receiver counted
	elapsed   time.Duration // from the first send to the last completion
	enters    float64       // P4: io_uring_enter calls in the round
	sends     float64       // P4: sends the metrics counted in the round
	syncs     int64         // P5: sends that completed synchronously
	allocs    uint64        // P6: heap allocations in the probe's window
	allocMsgs int64         // P6: messages in the probe's window
	cpu       time.Duration // user+system CPU time of the whole process during the round (runComparison fills it in)
	note      string        // what the arm wants said about this round (verification rounds)
}

// round says how an arm runs once.
type round struct {
	d      time.Duration // how long to keep sending
	verify bool          // hash the stream at both ends and compare
}

// arm is one way of sending, run round after round.
type arm struct {
	name string
	run  func(r round) (sample, error)
}

// metric is how a sample becomes the number compared.
type metric int

const (
	msgRate  metric = iota // messages per second, higher is better
	gbitRate               // Gbit/s, higher is better
	nsPerOp                // nanoseconds per message, lower is better
)

func (m metric) unit() string {
	switch m {
	case gbitRate:
		return "Gbit/s"
	case nsPerOp:
		return "ns/op"
	}
	return "msg/s"
}

func (m metric) of(s sample) float64 {
	secs := s.elapsed.Seconds()
	switch m {
	case gbitRate:
		return float64(s.bytes) * 8 / secs / 1e9
	case nsPerOp:
		return float64(s.elapsed.Nanoseconds()) / float64(s.msgs)
	}
	return float64(s.msgs) / secs
}

// baseline is an arm compared with the candidate, and the row it gets.
type baseline struct {
	arm
	id, title string
	target    string             // "≥ 20×", or "report"
	pass      func(float64) bool // nil: reported only
}

// comparison is a case that runs a candidate against baselines.
type comparison struct {
	metric  metric
	cand    arm
	bases   []baseline
	noBytes bool // the arms send nothing (L1): no byte counts to match
}

// runComparison runs one verification round per arm, then o.rounds timed
// rounds of every arm, alternating which goes first, and returns a row per
// baseline plus the candidate's samples.
func runComparison(o options, log io.Writer, c comparison) ([]row, [][]sample, error) {
	arms := []arm{c.cand}
	for _, b := range c.bases {
		arms = append(arms, b.arm)
	}
	// Goroutines inherit the labels: with -cpuprofile, "go tool pprof
	// -tagfocus arm=uringsend" shows one arm with its receivers and reaper.
	run := func(a arm, r round) (s sample, err error) {
		c0 := processCPU()
		pprof.Do(context.Background(), pprof.Labels("case", c.bases[0].id, "arm", a.name), func(context.Context) {
			s, err = a.run(r)
		})
		s.cpu = processCPU() - c0
		return s, err
	}
	var verified []string
	for _, a := range arms {
		s, err := run(a, round{d: o.verifyDur, verify: true})
		if err != nil {
			return nil, nil, fmt.Errorf("%s, verification round: %w", a.name, err)
		}
		if s.note != "" {
			verified = append(verified, a.name+": "+s.note)
		}
	}
	samples := make([][]sample, len(arms))
	for r := 0; r < o.rounds; r++ {
		order := make([]int, len(arms))
		for i := range order {
			order[i] = i
		}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, i := range order {
			s, err := run(arms[i], round{d: o.duration})
			if err != nil {
				return nil, nil, fmt.Errorf("%s, round %d: %w", arms[i].name, r+1, err)
			}
			samples[i] = append(samples[i], s)
			if o.verbose {
				fmt.Fprintf(log, "  round %d %-28s %s\n", r+1, arms[i].name, formatValue(c.metric.of(s), c.metric.unit()))
			}
		}
	}
	candVals := values(samples[0], c.metric)
	cand := median(candVals)
	var rows []row
	for i, b := range c.bases {
		baseVals := values(samples[i+1], c.metric)
		base := median(baseVals)
		ratio := cand / base // for nsPerOp, time per op: lower is better and the target is a ceiling
		rw := row{
			Case: b.id, Title: b.title, Unit: c.metric.unit(),
			Uringsend: cand, Baseline: base, BaseName: b.name, Ratio: ratio,
			Target: b.target, Verdict: "—", CandRuns: candVals, BaseRuns: baseVals,
		}
		if b.pass != nil {
			rw.Verdict = verdict(b.pass(ratio))
		}
		if i == 0 {
			if !c.noBytes {
				rw.Notes = append(rw.Notes, fmt.Sprintf("receiver byte counts matched the senders' in all %d rounds of every arm", o.rounds))
			}
			rw.Notes = append(rw.Notes, verified...)
		}
		rows = append(rows, rw)
	}
	return rows, samples, nil
}

// processCPU is the user and system CPU time the process has used.
func processCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPerMsg is the process CPU time per message of each sample, in ns.
func cpuPerMsg(ss []sample) []float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = float64(s.cpu.Nanoseconds()) / float64(max(s.msgs, 1))
	}
	return v
}

func values(ss []sample, m metric) []float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = m.of(s)
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

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func atLeast(x float64) func(float64) bool { return func(r float64) bool { return r >= x } }
func atMost(x float64) func(float64) bool  { return func(r float64) bool { return r <= x } }

// caseDef is one entry of the table (one or more rows).
type caseDef struct {
	id, title string
	run       func(o options, log io.Writer) ([]row, error)
}
