// Package plot renders the reports of uringsend runs as one
// self-contained HTML page: the command "uringsend plot" is its front end.
//
// Read takes what a run printed on stdout — a -json report (one JSON
// object) or a -json-stream file (one "type":"interval" object per line,
// usually followed by the report on one line) — and tells them apart by
// their content. Render draws one or more of them into a page with
//
//   - throughput over time, in messages/s and in bits/s, and latency
//     percentiles (p50, p90, p99, p99.9, max) over time, from the
//     intervals of -json-stream;
//   - the latency distribution as a percentile spectrum, as HdrHistogram
//     plots it: x is 1/(1-p) on a log scale (0%, 90%, 99%, 99.9%, …), y
//     the latency on a log scale; from the report's latency_histogram
//     (the run's whole histogram, HdrHistogram's V2 compressed encoding in
//     base64, values in nanoseconds), or, in reports that lack it, the
//     p50 … max of latency_seconds;
//   - a table of the runs' settings and results, one column per run, the
//     rows that differ between runs marked.
//
// Several runs share each chart, one series (one colour) per run, named
// in the legend by Run.Name.
//
// The page has no script and fetches nothing: the charts are inline SVG
// drawn here, the styles inline, the fonts the browser's own; a
// Content-Security-Policy of default-src 'none' makes any fetch a console
// error. Every string from a report (targets, file names, error texts)
// goes through html/template's escaping.
//
// The package reads the report's JSON into structs of its own, a subset
// of loadgen's Report and IntervalReport keyed by the same JSON names, so
// it draws reports of older and newer versions alike: a field a report
// lacks is left out of the page.
package plot
