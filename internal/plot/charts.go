package plot

import (
	"math"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Chart IDs: the id attributes of the page's SVG charts.
const (
	IDMessages     = "chart-messages-per-second"
	IDBits         = "chart-bits-per-second"
	IDLatencyTime  = "chart-latency-over-time"
	IDLatencyRange = "chart-latency-spectrum"
)

// percentiles are the latency percentiles drawn over time, each in a
// dash style of its own (the colour is the run's).
var percentiles = []struct {
	name, dash string
	get        func(Latency) float64
}{
	{"p50", "", func(l Latency) float64 { return l.P50 }},
	{"p90", "8 4", func(l Latency) float64 { return l.P90 }},
	{"p99", "3 3", func(l Latency) float64 { return l.P99 }},
	{"p99.9", "1 3", func(l Latency) float64 { return l.P999 }},
	{"max", "12 3 2 3", func(l Latency) float64 { return l.Max }},
}

const noIntervals = "No intervals to draw: run with -json-stream (and an -interval) for this chart."

func seconds(v float64) string { return num(v) + "s" }

// timeAxis spans the intervals of every run.
func timeAxis(runs []*Run) axis {
	hi := 0.0
	for _, r := range runs {
		for _, iv := range r.Intervals {
			hi = max(hi, iv.AtSeconds)
		}
	}
	return linAxis(hi, true, seconds)
}

// omitTo is where -omit ended, of any run with intervals: its report
// says, or its last interval within -omit.
func omitTo(runs []*Run) float64 {
	to := 0.0
	for _, r := range runs {
		if r.Report != nil && len(r.Intervals) > 0 {
			to = max(to, r.Report.OmitSeconds)
		}
		for _, iv := range r.Intervals {
			if iv.Omitted {
				to = max(to, iv.AtSeconds)
			}
		}
	}
	return to
}

// runLegend names every run in its colour, saying which have no data
// for the chart.
func runLegend(runs []*Run, has func(*Run) bool, without string) []legendEntry {
	var l []legendEntry
	for i, r := range runs {
		name := r.Name
		if !has(r) {
			name += " (" + without + ")"
		}
		l = append(l, legendEntry{Name: name, Color: color(i)})
	}
	return l
}

func hasIntervals(r *Run) bool { return len(r.Intervals) > 0 }

// rateChart draws one rate of the intervals over time, a line per run.
func rateChart(runs []*Run, id, title, yCaption string, get func(Interval) float64, label func(float64) string) *chart {
	c := &chart{id: id, title: title, xCaption: "time since sending began", yCapt: yCaption,
		legend: runLegend(runs, hasIntervals, "no intervals")}
	hi := 0.0
	for i, r := range runs {
		if len(r.Intervals) == 0 {
			continue
		}
		s := series{name: r.Name, color: color(i)}
		for _, iv := range r.Intervals {
			v := get(iv)
			s.points = append(s.points, pt{iv.AtSeconds, v})
			hi = max(hi, v)
		}
		c.series = append(c.series, s)
	}
	if len(c.series) == 0 {
		c.empty = noIntervals
		return c
	}
	c.x, c.y = timeAxis(runs), linAxis(hi, false, label)
	c.bandTo = omitTo(runs)
	return c
}

func latencyCaption(runs []*Run) string {
	kind := ""
	for _, r := range runs {
		if r.Report == nil {
			continue
		}
		switch {
		case kind == "":
			kind = r.Report.LatencyKind
		case kind != r.Report.LatencyKind:
			return "latency"
		}
	}
	switch kind {
	case "send_completion":
		return "send-completion latency"
	case "round_trip":
		return "round-trip latency"
	}
	return "latency"
}

// latencyTimeChart draws each run's interval percentiles over time: the
// run's colour, a dash style per percentile, a log scale.
func latencyTimeChart(runs []*Run) *chart {
	c := &chart{id: IDLatencyTime, title: "Latency percentiles over time", xCaption: "time since sending began",
		yCapt: latencyCaption(runs) + " (log scale)", legend: runLegend(runs, hasIntervals, "no intervals")}
	for _, p := range percentiles {
		c.styles = append(c.styles, legendEntry{Name: p.name, Color: "#555", Dash: p.dash})
	}
	lo, hi := math.Inf(1), 0.0
	for i, r := range runs {
		for _, p := range percentiles {
			s := series{name: r.Name + " " + p.name, color: color(i), dash: p.dash}
			for _, iv := range r.Intervals {
				v := p.get(iv.Latency)
				if v <= 0 { // an interval without completions
					v = math.NaN()
				} else {
					lo, hi = min(lo, v), max(hi, v)
				}
				s.points = append(s.points, pt{iv.AtSeconds, v})
			}
			if len(s.points) > 0 {
				c.series = append(c.series, s)
			}
		}
	}
	if hi == 0 {
		c.empty = noIntervals
		if len(c.series) > 0 {
			c.empty = "No interval completed a message."
		}
		c.series = nil
		return c
	}
	c.x, c.y = timeAxis(runs), logAxis(lo, hi, latency)
	c.bandTo = omitTo(runs)
	return c
}

// spectrumStep is the spacing of the spectrum's points, in decades of
// 1/(1-p).
const spectrumStep = 0.02

// spectrum is the percentile spectrum of h (unit values a second) in
// seconds at x = log10(1/(1-p)), from p = 0 to the last sample, which is
// h's max.
func spectrum(h *hdr.Histogram, unit float64) []pt {
	n := h.TotalCount()
	if n == 0 {
		return nil
	}
	xMax := math.Log10(float64(n))
	var xs, ps []float64
	for i := 0; float64(i)*spectrumStep < xMax-spectrumStep/2; i++ {
		x := float64(i) * spectrumStep
		xs = append(xs, x)
		ps = append(ps, 100*(1-math.Pow(10, -x)))
	}
	vals := h.ValueAtPercentilesSlice(ps)
	pts := make([]pt, 0, len(xs)+1)
	for i, x := range xs {
		pts = append(pts, pt{x, float64(vals[i]) / unit})
	}
	return append(pts, pt{xMax, float64(h.Max()) / unit})
}

// summarySpectrum places a report's five percentiles on the spectrum's
// axes: p50 … p99.9 where they belong, max at the last message (or
// after p99.9 if there were fewer than a thousand).
func summarySpectrum(r *Report) []pt {
	l := r.Latency
	if l.Max <= 0 {
		return nil
	}
	xMax := 3.5
	if r.Messages > 0 {
		xMax = max(xMax, math.Log10(float64(r.Messages)))
	}
	return []pt{{math.Log10(2), l.P50}, {1, l.P90}, {2, l.P99}, {3, l.P999}, {xMax, l.Max}}
}

// spectrumChart draws the latency distribution of every run's report.
func spectrumChart(runs []*Run) (*chart, error) {
	c := &chart{id: IDLatencyRange, title: "Latency distribution (percentile spectrum)",
		xCaption: "percentile (log scale of 1/(1−p))", yCapt: latencyCaption(runs) + " (log scale)"}
	lo, hi, xHi := math.Inf(1), 0.0, 1.0
	summaries := false
	for i, r := range runs {
		entry := legendEntry{Name: r.Name, Color: color(i)}
		h, err := r.histogram()
		if err != nil {
			return nil, err
		}
		s := series{name: r.Name, color: color(i)}
		switch {
		case h != nil:
			s.points = spectrum(h, r.unit)
		case r.Report != nil:
			s.points, s.markers = summarySpectrum(r.Report), true
			if s.points != nil {
				entry.Name += " (p50 … max only: no latency_histogram)"
				summaries = true
			}
		}
		if s.points == nil {
			entry.Name += " (no latencies)"
		}
		c.legend = append(c.legend, entry)
		for _, p := range s.points {
			if p.y > 0 {
				lo, hi = min(lo, p.y), max(hi, p.y)
			}
			xHi = max(xHi, p.x)
		}
		if s.points != nil {
			c.series = append(c.series, s)
		}
	}
	if hi == 0 {
		c.empty = "No latencies to draw: no report with a latency histogram or percentiles."
		c.series = nil
		return c, nil
	}
	c.x = axis{lo: 0, hi: math.Ceil(xHi - 1e-9), label: func(v float64) string { return percentileLabel(int(math.Round(v))) }}
	for d := 0.0; d <= c.x.hi; d++ {
		c.x.ticks = append(c.x.ticks, d)
	}
	c.y = logAxis(lo, hi, latency)
	c.note = "Each line ends at the run's maximum, at its last message."
	if summaries {
		c.note += " Runs drawn with dots have only the report's p50, p90, p99, p99.9 and max."
	}
	return c, nil
}
