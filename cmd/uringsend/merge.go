package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/uringsend/uringsend/loadgen"
)

const mergeUsage = `usage: uringsend merge [-json] report.json...

Merges the JSON reports (-json, or -json-stream) of generators that ran
as one — "-shards N" on N machines, started together with -start-at —
into one report: counts are the sums, percentiles come from the sum of
their latency histograms (exact, not averaged), times span them all.

Reports of different commands (run, rr), latency kinds, message sizes,
modes, open and closed loop, histogram settings, or of the same shard
twice, are refused (exit 1). A report that is missing, empty, cut off or
interrupted is named; the others are merged, each once, and the exit
status is 4.

Examples:
  uringsend merge r0.json r1.json r2.json
  uringsend merge -json reports/*.json > merged.json

Flags:
`

// ExitPartial is the exit status of a merge that printed a report
// without some of its inputs (missing, short, duplicates) or with an
// interrupted one, or that lacks a shard.
const ExitPartial = 4

func mergeCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print the merged report as JSON (run's schema, with \"merged\" set)")
	printUsage := func(w io.Writer) {
		fmt.Fprint(w, mergeUsage)
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "uringsend merge: %v\n", err)
		printUsage(stderr)
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintf(stderr, "uringsend merge: no report given\n")
		printUsage(stderr)
		return 2
	}
	rep, err := loadgen.MergeFiles(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "uringsend merge: %v\n", err)
		return 1
	}
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "uringsend merge: %v\n", err)
		return 1
	}
	if p := rep.Merged.Problems; len(p) > 0 {
		for _, line := range p {
			fmt.Fprintf(stderr, "uringsend merge: %s\n", line)
		}
		return ExitPartial
	}
	return 0
}
