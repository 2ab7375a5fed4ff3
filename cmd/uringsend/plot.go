package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/uringsend/uringsend/internal/plot"
)

const plotUsage = `usage: uringsend plot [-title T] -o report.html report.json...

Draws the reports of runs into one self-contained HTML page (inline SVG,
no scripts, nothing fetched): throughput and latency percentiles over
time from -json-stream intervals, the latency distribution as a
percentile spectrum (from the report's latency histogram, or its
p50…max), and the runs' settings. Several files: one series per file in
every chart, and a column per file in the table.

Each file is the stdout of "uringsend run" or "uringsend rr" with -json
(one report) or -json-stream (intervals, then the report); "-" reads
stdin. Flags may come before or after the files.

  uringsend run -target tcp://10.0.0.2:9000 -json-stream > a.ndjson
  uringsend plot a.ndjson b.json -o report.html

Flags:
`

// plotMain runs "uringsend plot" with args (after "plot") and returns
// its exit status: 0, 1 when a file cannot be read, is no report or the
// page cannot be written, 2 for bad usage.
func plotMain(args []string) int {
	return plotCmd(args, os.Stdin, os.Stdout, os.Stderr)
}

func plotCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	const name = "uringsend plot"
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("o", "", "write the page to this `file` (- for stdout); required")
	title := fs.String("title", "", "the page's `title` (default: uringsend and the files' names)")
	usage := func(w io.Writer) {
		fmt.Fprint(w, plotUsage)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "%s: %s\n", name, fmt.Sprintf(format, a...))
		usage(stderr)
		return 2
	}
	// Files and flags in any order: parse, take a file, parse the rest.
	var files []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		if err != nil {
			return bad("%v", err)
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			files = append(files, rest...) // after --, only files
			break
		}
		if len(rest) == 0 {
			break
		}
		files, args = append(files, rest[0]), rest[1:]
	}
	if len(files) == 0 {
		return bad("no report files: name one or more -json or -json-stream outputs")
	}
	if *out == "" {
		return bad("-o is required: the HTML file to write, or - for stdout")
	}

	stdinUsed := false
	for _, path := range files {
		if path == "-" && stdinUsed {
			return bad("- (stdin) given twice")
		}
		stdinUsed = stdinUsed || path == "-"
	}

	var runs []*plot.Run
	for i, path := range files {
		var r io.Reader = stdin
		readName := path
		if path == "-" {
			readName = "stdin"
		} else {
			f, err := os.Open(path)
			if err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", name, err)
				return 1
			}
			defer f.Close()
			r = f
		}
		run, err := plot.Read(readName, r)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		run.Name = legendName(files, i)
		runs = append(runs, run)
	}

	var page bytes.Buffer
	if err := plot.Render(&page, *title, runs); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	var err error
	if *out == "-" {
		_, err = stdout.Write(page.Bytes())
	} else {
		err = os.WriteFile(*out, page.Bytes(), 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// legendName names files[i] in the page: its base name, or the path as
// given when another file has the same base name (runner-1/report.json,
// runner-2/report.json).
func legendName(files []string, i int) string {
	if files[i] == "-" {
		return "stdin"
	}
	base := filepath.Base(files[i])
	for j, f := range files {
		if j != i && filepath.Base(f) == base {
			return files[i]
		}
	}
	return base
}
