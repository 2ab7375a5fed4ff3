//go:build linux

// Command bench measures uringsend against the ways Go programs send
// today, in one run on one machine, and prints a table of ratios.
//
//	go run ./bench                 # every case, 5 rounds of 1 s per arm (~3 min)
//	go run ./bench -quick          # 3 rounds of 0.25 s, short CLI runs (~30 s)
//	go run ./bench -cases P1,P4 -rounds 7 -duration 2s -json
//	go run -tags iceber -ldflags=-checklinkname=0 ./bench -cases iceber
//
// Every case alternates its arms round by round (candidate first in even
// rounds, baseline first in odd ones), takes the median of each arm's
// rounds and prints median(uringsend) / median(baseline). Before the
// timed rounds, each arm runs one verification round in which the
// receiver hashes the whole stream with SHA-256 and compares it with the
// sender's hash; in every round the receiver counts every byte and the
// count must equal what the sender's completions reported.
//
// Loopback only. The receivers run in this process, on the same cores as
// the senders: a case measures the whole path, as a proxy on one host
// would see it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// options are the command line.
type options struct {
	rounds      int
	duration    time.Duration
	verifyDur   time.Duration
	cases       map[string]bool
	jsonOut     bool
	quick       bool
	cpuprofile  string
	mutexprof   string
	cliRounds   int
	cliDuration time.Duration
	depth64     int // P1 Args in flight
	depth1K     int // P2
	depth64K    int // P3
	conns       int // P4 connections
	depthConn   int // P4 Args in flight per connection
	rings       int // P4 rings of the engine
	noCoop      bool
	udpSockets  int // P7 sockets
	udpDepth    int // P7 Args in flight per socket
	verbose     bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if o.mutexprof != "" {
		runtime.SetMutexProfileFraction(1)
		defer func() {
			f, err := os.Create(o.mutexprof)
			if err == nil {
				err = pprof.Lookup("mutex").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintln(stderr, "bench:", err)
			}
		}()
	}
	rep := report{Header: machineHeader(o)}
	progress := stderr
	if !o.verbose && o.jsonOut {
		progress = io.Discard
	}
	failed := false
	for _, c := range allCases(o) {
		if !o.cases["all"] && !o.cases[strings.ToLower(c.id)] {
			continue
		}
		if c.id == "iceber" && !o.cases["iceber"] && !iceberBuilt {
			continue // "all" means the cases this binary can run
		}
		fmt.Fprintf(progress, "%s %s ...\n", c.id, c.title)
		start := time.Now()
		rows, err := c.run(o, progress)
		if err != nil {
			failed = true
			fmt.Fprintf(stderr, "bench: %s: %v\n", c.id, err)
			rows = append(rows, row{Case: c.id, Title: c.title, Verdict: "ERROR", Notes: []string{err.Error()}})
		}
		for _, r := range rows {
			if r.Verdict == "ERROR" {
				failed = true
			}
		}
		rep.Rows = append(rep.Rows, rows...)
		fmt.Fprintf(progress, "%s done in %.1fs\n", c.id, time.Since(start).Seconds())
	}
	rep.Header.Elapsed = time.Since(rep.Header.start).Round(100 * time.Millisecond).String()
	rep.Header.LoadEnd = loadAvg()
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	} else {
		printReport(stdout, rep)
	}
	if failed {
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.rounds, "rounds", 5, "timed rounds per arm (the median is reported)")
	fs.DurationVar(&o.duration, "duration", time.Second, "length of one round")
	fs.DurationVar(&o.verifyDur, "verify-duration", 0, "length of each arm's SHA-256 verification round (default duration/4)")
	cases := fs.String("cases", "all", "comma-separated cases: P1..P7, cli, peers, iceber, or all")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON on stdout (progress goes nowhere unless -v)")
	fs.BoolVar(&o.quick, "quick", false, "3 rounds of 250 ms, CLI runs of 1 s: about 30 s in all")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&o.mutexprof, "mutexprofile", "", "write a mutex contention profile of the whole run to this file")
	fs.IntVar(&o.cliRounds, "cli-rounds", 3, "rounds of each CLI and iperf3 run")
	fs.DurationVar(&o.cliDuration, "cli-duration", 3*time.Second, "length of each CLI and iperf3 run")
	fs.IntVar(&o.depth64, "depth64", 1024, "P1: Args in flight on the connection")
	fs.IntVar(&o.depth1K, "depth1k", 1024, "P2: Args in flight on the connection")
	fs.IntVar(&o.depth64K, "depth64k", 64, "P3: Args in flight on the connection")
	fs.IntVar(&o.conns, "conns", 1000, "P4: connections")
	fs.IntVar(&o.depthConn, "depth-conn", 32, "P4: Args in flight per connection")
	fs.IntVar(&o.rings, "rings", 1, "P4: io_uring instances of the engine (each with a reaper)")
	fs.BoolVar(&o.noCoop, "no-coop-taskrun", false, "engines: ring.Config.NoCoopTaskrun (an experiment: task work notified by IPI)")
	fs.IntVar(&o.udpSockets, "udp-sockets", 8, "P7m: sending sockets (each with its own receiver); P7 uses one")
	fs.IntVar(&o.udpDepth, "udp-depth", 64, "P7: Args in flight per socket on the pipelined arm")
	fs.BoolVar(&o.verbose, "v", false, "per-round values on stderr")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["rounds"] {
			o.rounds = 3
		}
		if !set["duration"] {
			o.duration = 250 * time.Millisecond
		}
		if !set["cli-rounds"] {
			o.cliRounds = 1
		}
		if !set["cli-duration"] {
			o.cliDuration = time.Second
		}
	}
	if o.verifyDur <= 0 {
		o.verifyDur = max(o.duration/4, 100*time.Millisecond)
	}
	if o.rounds < 1 || o.duration <= 0 || o.cliRounds < 1 || o.cliDuration < time.Second {
		return o, fmt.Errorf("need -rounds >= 1, -duration > 0, -cli-rounds >= 1, -cli-duration >= 1s")
	}
	if o.depth64 < 1 || o.depth1K < 1 || o.depth64K < 1 || o.conns < 1 || o.depthConn < 1 || o.udpSockets < 1 || o.udpDepth < 1 {
		return o, fmt.Errorf("depths, -conns and -udp-sockets must be positive")
	}
	o.cases = map[string]bool{}
	for _, c := range strings.Split(*cases, ",") {
		if c = strings.ToLower(strings.TrimSpace(c)); c != "" {
			o.cases[c] = true
		}
	}
	known := []string{"all"}
	for _, c := range allCases(o) {
		known = append(known, strings.ToLower(c.id))
	}
	for c := range o.cases {
		if !slices.Contains(known, c) {
			return o, fmt.Errorf("unknown case %q (known: %s)", c, strings.Join(known, ", "))
		}
	}
	return o, nil
}

// header describes the machine and the run.
type header struct {
	Date       string `json:"date"`
	Kernel     string `json:"kernel"`
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
	Rounds     int    `json:"rounds"`
	Duration   string `json:"round_duration"`
	Elapsed    string `json:"elapsed"`
	LoadStart  string `json:"loadavg_start"` // /proc/loadavg: other work on the machine skews every ratio
	LoadEnd    string `json:"loadavg_end"`
	start      time.Time
}

func machineHeader(o options) header {
	now := time.Now()
	return header{
		Date:       now.UTC().Format("2006-01-02 15:04 MST"),
		Kernel:     kernelRelease(),
		CPU:        cpuModel(),
		Cores:      runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Go:         runtime.Version(),
		Rounds:     o.rounds,
		Duration:   o.duration.String(),
		LoadStart:  loadAvg(),
		start:      now,
	}
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// report is what the program prints, as a table or as JSON.
type report struct {
	Header header `json:"header"`
	Rows   []row  `json:"rows"`
}

// row is one line of the table.
type row struct {
	Case      string    `json:"case"`
	Title     string    `json:"title"`
	Unit      string    `json:"unit,omitempty"`
	Uringsend float64   `json:"uringsend"`
	Baseline  float64   `json:"baseline,omitempty"`
	BaseName  string    `json:"baseline_name,omitempty"`
	Ratio     float64   `json:"ratio,omitempty"`
	Target    string    `json:"target"`
	Verdict   string    `json:"verdict"` // PASS, MISS, "—" (reported only) or ERROR
	CandRuns  []float64 `json:"uringsend_rounds,omitempty"`
	BaseRuns  []float64 `json:"baseline_rounds,omitempty"`
	Notes     []string  `json:"notes,omitempty"`
	noBase    bool      // the value has no baseline (P4 enters, P6)
}

func printReport(w io.Writer, rep report) {
	h := rep.Header
	fmt.Fprintf(w, "uringsend benchmark — %s\n", h.Date)
	fmt.Fprintf(w, "kernel %s · %s · %d cores (GOMAXPROCS %d) · %s · %d rounds × %s, median · loopback · took %s\n",
		h.Kernel, h.CPU, h.Cores, h.GOMAXPROCS, h.Go, h.Rounds, h.Duration, h.Elapsed)
	fmt.Fprintf(w, "load average before %s, after %s\n\n", h.LoadStart, h.LoadEnd)
	fmt.Fprintln(w, "| case | uringsend | baseline | ratio | target | verdict |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	var notes []string
	for _, r := range rep.Rows {
		cand, base, ratio := "—", "—", "—"
		if r.Verdict != "ERROR" {
			cand = formatValue(r.Uringsend, r.Unit)
			if !r.noBase && r.BaseName != "" {
				base = formatValue(r.Baseline, r.Unit) + " " + r.BaseName
				ratio = fmt.Sprintf("%.2f×", r.Ratio)
			}
		}
		fmt.Fprintf(w, "| %s %s | %s | %s | %s | %s | %s |\n", r.Case, r.Title, cand, base, ratio, r.Target, r.Verdict)
		for _, n := range r.Notes {
			notes = append(notes, r.Case+": "+n)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
}

func formatValue(v float64, unit string) string {
	switch unit {
	case "msg/s":
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%.2f M msg/s", v/1e6)
		case v >= 1e3:
			return fmt.Sprintf("%.0f k msg/s", v/1e3)
		}
		return fmt.Sprintf("%.0f msg/s", v)
	case "Gbit/s":
		return fmt.Sprintf("%.2f Gbit/s", v)
	case "ns/op":
		return fmt.Sprintf("%.0f ns/op", v)
	case "enter/send", "allocs/send":
		return fmt.Sprintf("%.4f %s", v, unit)
	case "ratio":
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
