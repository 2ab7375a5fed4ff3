package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/uringsend/uringsend/loadgen"
)

const usage = `usage: uringsend [command] [flags]

Commands:
  run      send through the uringsend engine and report (default)
  rr       request–response: send, wait for the echo, report round trips
  sink     receive, count and verify what runs send (-echo: for rr)
  merge    merge the -json reports of generators that ran as one (exact percentiles)
  plot     draw -json reports into one self-contained HTML page (-o report.html)
  version  print the version

Without a command, uringsend runs a 10 s demo against an embedded sink on
loopback and serves metrics on 127.0.0.1:9464. "uringsend <command> -h"
lists a command's flags.
`

func main() {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	os.Exit(run(os.Args[1:], sig, os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit status.
func run(args []string, sig <-chan os.Signal, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(stdout, usage+"\nFlags of run (and of the demo):\n")
		loadgen.RunFlagUsage(stdout)
		return 0
	}
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "":
		// The demo: "run" with metrics on by default.
		defaults := loadgen.DefaultConfig()
		defaults.MetricsAddr = loadgen.DefaultMetricsAddr
		return runCmd("uringsend", args, defaults, sig, stdout, stderr)
	case "run":
		return runCmd("uringsend run", args, loadgen.DefaultConfig(), sig, stdout, stderr)
	case "rr":
		defaults := loadgen.DefaultConfig()
		defaults.RR = true
		return runCmd("uringsend rr", args, defaults, sig, stdout, stderr)
	case "sink":
		return sinkCmd(args, sig, stdout, stderr)
	case "merge":
		return mergeCmd(args, stdout, stderr)
	case "plot":
		return plotMain(args)
	case "version":
		fmt.Fprintln(stdout, "uringsend", version())
		return 0
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "uringsend: unknown command %q\n%s", cmd, usage)
	return 2
}

func runCmd(name string, args []string, defaults loadgen.Config, sig <-chan os.Signal, stdout, stderr io.Writer) int {
	usage := loadgen.RunUsage
	if defaults.RR {
		usage = loadgen.RRUsage
	}
	cfg, err := loadgen.ParseRunFlags(args, defaults)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		loadgen.RunFlagUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n%s", name, err, usage)
		loadgen.RunFlagUsage(stderr)
		return 2
	}
	rep, err := loadgen.RunStream(cfg, sig, stderr, stdout)
	switch {
	case errors.Is(err, loadgen.ErrInterrupted):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 130
	case loadgen.IsConfigError(err):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	case err != nil && rep == nil:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", name, err) // the report follows
	}
	switch {
	case cfg.JSONStream:
		err = rep.WriteJSONLine(stdout)
	case cfg.JSON:
		err = rep.WriteJSON(stdout)
	default:
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return exitStatus(name, rep, stderr)
}

// exitStatus is the exit status of a run that produced rep, and the
// line on stderr that says why it is not 0.
func exitStatus(name string, rep *loadgen.Report, stderr io.Writer) int {
	refused := rep.ErrorsByKind["ConnectionRefused"]
	// The most specific reason first.
	switch {
	case rep.ErrorsByKind["EchoMismatch"] > 0:
		fmt.Fprintf(stderr, "%s: %d echoes differed from what was sent\n", name, rep.ErrorsByKind["EchoMismatch"])
		return 1
	case rep.Sink != nil && rep.Sink.VerifyErrors() > 0:
		fmt.Fprintf(stderr, "%s: the sink found %d bad messages\n", name, rep.Sink.VerifyErrors())
		return 1
	case refused > 0:
		fmt.Fprintf(stderr, "%s: the target refused %d sends (ConnectionRefused): nothing listens there\n", name, refused)
		return 1
	case rep.Messages == 0 && !rep.Interrupted:
		fmt.Fprintf(stderr, "%s: no message was delivered\n", name)
		return 1
	case rep.ConnsFailed == rep.Conns:
		fmt.Fprintf(stderr, "%s: every connection failed\n", name)
		return 1
	case len(rep.Failed) > 0:
		for _, f := range rep.Failed {
			fmt.Fprintf(stderr, "%s: threshold broken: %s\n", name, f)
		}
		return loadgen.ExitThreshold
	}
	return 0
}

func sinkCmd(args []string, sig <-chan os.Signal, stdout, stderr io.Writer) int {
	cfg, err := loadgen.ParseSinkFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, loadgen.SinkUsage)
		loadgen.SinkFlagUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "uringsend sink: %v\n%s", err, loadgen.SinkUsage)
		loadgen.SinkFlagUsage(stderr)
		return 2
	}
	rep, err := loadgen.RunSink(cfg, sig, stderr)
	switch {
	case errors.Is(err, loadgen.ErrInterrupted):
		fmt.Fprintf(stderr, "uringsend sink: %v\n", err)
		return 130
	case err != nil:
		fmt.Fprintf(stderr, "uringsend sink: %v\n", err)
		return 1
	}
	if cfg.JSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "uringsend sink: %v\n", err)
		return 1
	}
	if n := rep.VerifyErrors(); n > 0 {
		fmt.Fprintf(stderr, "uringsend sink: %d bad messages\n", n)
		return 1
	}
	return 0
}

// version is the module version, and the VCS revision when built from a
// checkout.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " " + rev + dirty
	}
	return v + " " + bi.GoVersion
}
