package plot

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// report is a run's -json report as loadgen writes it (a subset), for
// the tests to marshal.
func report(t *testing.T, extra map[string]any) map[string]any {
	t.Helper()
	r := map[string]any{
		"command": "run", "target": "tcp://127.0.0.1:9000", "backend": "io_uring", "fallback": "",
		"zerocopy": "auto", "zerocopy_used": false, "zerocopy_reason": "loopback", "batching": true,
		"mode": "buffer", "segments": 0, "size_bytes": 1024, "connections": 8, "connections_requested": 8,
		"inflight": 256, "window_bytes": 262144, "rate": 0, "verify": false, "interrupted": false,
		"omit_seconds": 0, "messages": 1000000, "bytes": 1024000000, "errors": 0, "errors_by_kind": map[string]int{},
		"duration_seconds": 3.01, "send_seconds": 3, "messages_per_second": 332225.9, "bits_per_second": 2.72e9,
		"latency_seconds": map[string]float64{"p50": 20e-6, "p90": 40e-6, "p99": 120e-6, "p999": 900e-6, "max": 4e-3},
		"latency_kind":    "send_completion", "sync_ratio": 0.25, "thresholds_failed": []string{},
		"cost": map[string]any{"user_seconds": 1.5, "system_seconds": 2.25},
	}
	for k, v := range extra {
		r[k] = v
	}
	return r
}

func interval(at float64, msgs float64, p50 float64) map[string]any {
	return map[string]any{
		"type": "interval", "at_seconds": at, "interval_seconds": 1, "omitted": at <= 1, "messages": msgs,
		"bytes": msgs * 1024, "errors": 0, "messages_per_second": msgs, "bits_per_second": msgs * 8192,
		"latency_seconds":  map[string]float64{"p50": p50, "p90": 2 * p50, "p99": 5 * p50, "p999": 10 * p50, "max": 20 * p50},
		"connections_open": 8, "tcp_info": nil,
	}
}

// ndjson writes vs one per line, as -json-stream does.
func ndjson(t *testing.T, vs ...any) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for _, v := range vs {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// indented writes v as -json does.
func indented(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// histogram records a known distribution (nanoseconds) and returns it
// and its encoding.
func histogram(t *testing.T) (*hdr.Histogram, string) {
	t.Helper()
	h := hdr.New(1, 3600e9, 3)
	for i := int64(1); i <= 100000; i++ {
		v := 10000 + i // 10 µs … 110 µs, evenly
		if i%1000 == 0 {
			v = 5_000_000 // and one in a thousand at 5 ms
		}
		if err := h.RecordValue(v); err != nil {
			t.Fatal(err)
		}
	}
	enc, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		t.Fatal(err)
	}
	return h, string(enc)
}

func read(t *testing.T, name, s string) *Run {
	t.Helper()
	r, err := Read(name, strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func render(t *testing.T, title string, runs ...*Run) string {
	t.Helper()
	var b bytes.Buffer
	if err := Render(&b, title, runs); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// svgChart is what a test reads of one of the page's charts.
type svgChart struct {
	paths   []svgPath
	texts   []string // tick labels and captions
	circles int
	band    bool
}

type svgPath struct{ d, stroke, dash, title string }

var svgRE = regexp.MustCompile(`(?s)<svg class="chart" id="([^"]+)".*?</svg>`)

// charts parses the page's charts as XML (the SVG must be well formed).
func charts(t *testing.T, page string) map[string]*svgChart {
	t.Helper()
	out := map[string]*svgChart{}
	for _, m := range svgRE.FindAllStringSubmatch(page, -1) {
		c := &svgChart{}
		out[m[1]] = c
		dec := xml.NewDecoder(strings.NewReader(m[0]))
		var cur *svgPath
		inText := false
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("chart %s is no well-formed SVG: %v", m[1], err)
			}
			switch tok := tok.(type) {
			case xml.StartElement:
				attr := func(name string) string {
					for _, a := range tok.Attr {
						if a.Name.Local == name {
							return a.Value
						}
					}
					return ""
				}
				switch tok.Name.Local {
				case "path":
					c.paths = append(c.paths, svgPath{d: attr("d"), stroke: attr("stroke"), dash: attr("stroke-dasharray")})
					cur = &c.paths[len(c.paths)-1]
				case "text":
					inText = true
					c.texts = append(c.texts, "")
				case "circle":
					c.circles++
				case "rect":
					c.band = c.band || attr("class") == "band"
				}
			case xml.EndElement:
				switch tok.Name.Local {
				case "path":
					cur = nil
				case "text":
					inText = false
				}
			case xml.CharData:
				if inText {
					c.texts[len(c.texts)-1] += string(tok)
				} else if cur != nil {
					cur.title += strings.TrimSpace(string(tok))
				}
			}
		}
	}
	return out
}

func TestReadJSONReport(t *testing.T) {
	r := read(t, "a.json", indented(t, report(t, nil)))
	if r.Report == nil || r.Intervals != nil || r.Name != "a.json" {
		t.Fatalf("%+v", r)
	}
	if r.Report.Messages != 1000000 || r.Report.Latency.P99 != 120e-6 || r.Report.Cost.SystemSeconds != 2.25 || r.Report.Window != 262144 {
		t.Errorf("%+v", r.Report)
	}
}

// A -json-stream is told from a -json report by its content: interval
// lines, then the report on one line; CRLF and blank lines do not
// matter, and lines of a type this version does not know are skipped.
func TestReadStream(t *testing.T) {
	s := ndjson(t, interval(1, 100, 1e-3), map[string]any{"type": "future-kind", "x": 1}, interval(2, 200, 2e-3), report(t, nil))
	s = strings.ReplaceAll(s, "\n", "\r\n\n")
	r := read(t, "s.ndjson", s)
	if len(r.Intervals) != 2 || r.Report == nil {
		t.Fatalf("%d intervals, report %v", len(r.Intervals), r.Report != nil)
	}
	if iv := r.Intervals[1]; iv.AtSeconds != 2 || iv.MessagesPerSec != 200 || iv.BitsPerSecond != 200*8192 || iv.Latency.P50 != 2e-3 || iv.Omitted {
		t.Errorf("%+v", iv)
	}
	if !r.Intervals[0].Omitted {
		t.Error("the first interval's omitted is lost")
	}

	// Cut short: intervals and no report.
	r = read(t, "cut.ndjson", ndjson(t, interval(1, 100, 1e-3), interval(2, 200, 2e-3)))
	if len(r.Intervals) != 2 || r.Report != nil {
		t.Errorf("%d intervals, report %v", len(r.Intervals), r.Report)
	}
}

func TestReadErrors(t *testing.T) {
	_, enc := histogram(t)
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "f: no report and no intervals"},
		{"blank", "\n \n", "f: no report and no intervals"},
		{"text report", "uringsend run: tcp://127.0.0.1:9000\n", "f: line 1: not JSON"},
		{"bad third line", ndjson(t, interval(1, 1, 1)) + ndjson(t, interval(2, 1, 1)) + "{\"type\": \"interval\", oops}\n", "f: line 3: not JSON"},
		{"truncated", `{"type": "interval", "at_seconds": 1`, "f: line 1: not JSON"},
		{"array", `[1, 2]`, "f: line 1: a JSON value that is no object"},
		{"no report", `{"hello": "world"}`, "f: line 1: not a uringsend report"},
		{"sink report", `{"listen": "tcp://[::]:9000", "bytes": 1}`, "f: line 1: a sink's report"},
		{"two reports", ndjson(t, report(t, nil), report(t, nil)), "f: line 2: a second report"},
		{"wrong type", `{"type": "interval", "at_seconds": "soon"}`, "f: line 1: interval: json: cannot unmarshal"},
		{"bad histogram", ndjson(t, report(t, map[string]any{"latency_histogram": "bm90IGEgaGlzdG9ncmFt"})), "f: latency_histogram: "},
		{"cut histogram", ndjson(t, report(t, map[string]any{"latency_histogram": enc[:len(enc)/2]})), "f: latency_histogram: "},
		{"histogram unit", ndjson(t, report(t, map[string]any{"latency_histogram": enc, "histogram_unit": "fortnights"})), `f: histogram_unit "fortnights": not one of ns, us, ms, s`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read("f", strings.NewReader(tc.in))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want %q…", err, tc.want)
			}
		})
	}
}

// The report's histogram comes back as it was recorded, whether the
// field holds Encode's base64 text or that base64-encoded once more.
func TestHistogramRoundTrip(t *testing.T) {
	h, enc := histogram(t)
	for name, field := range map[string]string{
		"encode":       enc,
		"double64":     base64.StdEncoding.EncodeToString([]byte(enc)),
		"ndjson field": enc,
	} {
		t.Run(name, func(t *testing.T) {
			in := indented(t, report(t, map[string]any{"latency_histogram": field}))
			if name == "ndjson field" {
				in = ndjson(t, interval(1, 1, 1e-3), report(t, map[string]any{"latency_histogram": field}))
			}
			r := read(t, "h.json", in)
			got, err := r.histogram()
			if err != nil || got == nil {
				t.Fatalf("%v %v", got, err)
			}
			if !got.Equals(h) {
				t.Errorf("decoded histogram differs: %d values, max %d; want %d, %d", got.TotalCount(), got.Max(), h.TotalCount(), h.Max())
			}
		})
	}

	// histogram_unit says what the values are: ns when it does not say.
	for unit, perSec := range map[string]float64{"": 1e9, "ns": 1e9, "us": 1e6, "ms": 1e3} {
		r := read(t, "u.json", indented(t, report(t, map[string]any{"latency_histogram": enc, "histogram_unit": unit})))
		c, err := spectrumChart([]*Run{r})
		if err != nil {
			t.Fatal(err)
		}
		if pts := c.series[0].points; pts[len(pts)-1].y != float64(h.Max())/perSec {
			t.Errorf("unit %q: max %v s", unit, pts[len(pts)-1].y)
		}
	}
}

// The spectrum follows the histogram: p = 1 - 10^-x at x, nondecreasing,
// ending at the last value, the max, at x = log10(count).
func TestSpectrum(t *testing.T) {
	h, _ := histogram(t)
	pts := spectrum(h, 1e9)
	if want := int(math.Ceil(5/spectrumStep)) + 1; len(pts) != want {
		t.Fatalf("%d points, want %d", len(pts), want)
	}
	last := pts[len(pts)-1]
	if last.x != 5 || last.y != float64(h.Max())/1e9 || last.y < 5e-3 {
		t.Errorf("last point %+v, want (5, max %d ns)", last, h.Max())
	}
	for i, p := range pts {
		if i > 0 && (p.y < pts[i-1].y || p.x <= pts[i-1].x) {
			t.Fatalf("point %d %+v after %+v", i, p, pts[i-1])
		}
	}
	for _, x := range []float64{0, 1, 2, 3, 4} { // 0%, 90%, 99%, 99.9%, 99.99%
		i := int(math.Round(x / spectrumStep))
		want := float64(h.ValueAtQuantile(100*(1-math.Pow(10, -x)))) / 1e9
		if math.Abs(pts[i].x-x) > 1e-9 || pts[i].y != want {
			t.Errorf("x=%v: point %+v, want %v s", x, pts[i], want)
		}
	}
	// The recorded shape: p50 ≈ 60 µs, p99.9 and up 5 ms.
	if p50 := pts[int(math.Round(math.Log10(2)/spectrumStep))].y; p50 < 55e-6 || p50 > 65e-6 {
		t.Errorf("p50 %v", p50)
	}
	if hdr.New(1, 10, 1).TotalCount() != 0 || spectrum(hdr.New(1, 10, 1), 1e9) != nil {
		t.Error("an empty histogram has a spectrum")
	}
}

// The page of a stream (intervals and a report with a histogram) and an
// older -json report (no histogram): every chart, one series per run
// (five per run over time), the axes labelled, the settings side by side.
func TestRenderCharts(t *testing.T) {
	_, enc := histogram(t)
	stream := read(t, "stream.ndjson", ndjson(t,
		interval(1, 1000, 20e-6), interval(2, 3000, 25e-6), interval(3, 2000, 0), interval(4, 4000, 30e-6),
		report(t, map[string]any{"latency_histogram": enc, "started_at": "2026-12-03T11:00:00Z", "omit_seconds": 1})))
	old := read(t, "old.json", indented(t, report(t, map[string]any{"connections": 2, "rate": 20000})))
	page := render(t, "", stream, old)

	for _, want := range []string{
		"<title>uringsend: stream.ndjson, old.json</title>",
		`content="default-src 'none'; style-src 'unsafe-inline'"`,
		"<h2>Throughput</h2>", "<h2>Latency</h2>", "<h2>Settings and results</h2>",
		"old.json (no intervals)",
		"old.json (p50 … max only: no latency_histogram)",
		"100,000 values, 3 significant digits",
		"none (an older report)",
		"2026-12-03T11:00:00Z",
		"20k msg/s (open loop)",
		`<tr class="differs"><th>connections</th><td>8</td><td>2 of 8</td></tr>`,
		"<tr><th>target</th><td>tcp://127.0.0.1:9000</td><td>tcp://127.0.0.1:9000</td></tr>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") || regexp.MustCompile(`(?i)(src|href)=`).MatchString(page) {
		t.Error("the page has a script or a link")
	}

	cs := charts(t, page)
	if len(cs) != 4 {
		t.Fatalf("%d charts: %v", len(cs), slices.Collect(func(yield func(string) bool) {
			for id := range cs {
				yield(id)
			}
		}))
	}
	blue, orange := color(0), color(1)
	for id, tc := range map[string]struct {
		paths   int
		texts   []string
		circles int
		band    bool
	}{
		IDMessages:    {1, []string{"0", "1k", "2k", "3k", "4k", "0s", "1s", "4s", "messages/s", "time since sending began"}, 0, true},
		IDBits:        {1, []string{"0", "10M", "30M", "bits/s"}, 0, true},
		IDLatencyTime: {5, []string{"10µs", "20µs", "50µs", "100µs", "1ms", "send-completion latency (log scale)"}, 0, true},
		// The stream's spectrum, and old.json's five percentiles as dots.
		IDLatencyRange: {2, []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%", "10µs", "1ms", "10ms", "percentile (log scale of 1/(1−p))"}, 5, false},
	} {
		c := cs[id]
		if c == nil {
			t.Errorf("no chart %s", id)
			continue
		}
		if len(c.paths) != tc.paths || c.circles != tc.circles || c.band != tc.band {
			t.Errorf("%s: %d paths, %d circles, band %v; want %d, %d, %v", id, len(c.paths), c.circles, c.band, tc.paths, tc.circles, tc.band)
		}
		for _, want := range tc.texts {
			if !slices.Contains(c.texts, want) {
				t.Errorf("%s: no label %q in %q", id, want, c.texts)
			}
		}
		for _, p := range c.paths {
			if !regexp.MustCompile(`^M[0-9.]+,[0-9.]+((L| M)[0-9.]+,[0-9.]+)*$`).MatchString(p.d) {
				t.Errorf("%s: path %q", id, p.d)
			}
		}
	}

	// Over time: the stream's four intervals; the empty third breaks the
	// latency lines, not the throughput's.
	if p := cs[IDMessages].paths[0]; strings.Count(p.d, "L") != 3 || p.stroke != blue || p.title != "stream.ndjson" {
		t.Errorf("messages/s path %+v", p)
	}
	var dashes []string
	for _, p := range cs[IDLatencyTime].paths {
		dashes = append(dashes, p.dash)
		if strings.Count(p.d, "M") != 2 || strings.Count(p.d, "L") != 1 || p.stroke != blue {
			t.Errorf("latency path %+v", p)
		}
	}
	if want := []string{"", "8 4", "3 3", "1 3", "12 3 2 3"}; !slices.Equal(dashes, want) {
		t.Errorf("dashes %q, want %q", dashes, want)
	}
	spec := cs[IDLatencyRange].paths
	if spec[0].stroke != blue || spec[0].title != "stream.ndjson" || strings.Count(spec[0].d, "L") != 250 ||
		spec[1].stroke != orange || spec[1].title != "old.json" || strings.Count(spec[1].d, "L") != 4 {
		t.Errorf("spectrum paths %+v", spec)
	}
}

// Report strings reach the page as text, never as markup.
func TestRenderEscapes(t *testing.T) {
	evil := `<script>alert("x")</script>`
	r := read(t, `<img src=x onerror=alert(1)>.json`, ndjson(t, interval(1, 1, 1e-3),
		report(t, map[string]any{"target": "tcp://" + evil, "errors_by_kind": map[string]int{evil: 1}, "thresholds_failed": []string{"</td></tr></table>" + evil}})))
	page := render(t, "title "+evil, r)
	for _, bad := range []string{"<script", "<img", "</table>" + "<script"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page has %q", bad)
		}
	}
	for _, want := range []string{
		"<title>title &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</title>",
		"<td>tcp://&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</td>",
		"&lt;img src=x onerror=alert(1)&gt;.json",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Count(page, "</table>") != 1 {
		t.Error("a report string closed the table")
	}
	charts(t, page) // still well formed
}

// Without intervals or latencies the charts say why instead.
func TestRenderEmpty(t *testing.T) {
	r := read(t, "none.json", indented(t, report(t, map[string]any{"latency_seconds": map[string]float64{}, "messages": 0})))
	page := render(t, "", r)
	if n := len(charts(t, page)); n != 0 {
		t.Errorf("%d charts", n)
	}
	if strings.Count(page, noIntervals) != 3 || !strings.Contains(page, "No latencies to draw") {
		t.Error("the empty charts do not say why")
	}
	if err := Render(io.Discard, "", nil); err == nil {
		t.Error("no runs rendered")
	}
}

func TestAxes(t *testing.T) {
	for _, tc := range []struct {
		hi    float64
		tight bool
		top   float64
		ticks int
	}{
		{3.2e6, false, 4e6, 5}, {5.5e6, false, 6e6, 7}, {1, false, 1, 6}, {0, false, 1, 6}, {99, false, 100, 6},
		{3.05, true, 3.05, 4}, {10.4, true, 10.4, 6},
	} {
		a := linAxis(tc.hi, tc.tight, num)
		if math.Abs(a.hi-tc.top) > 1e-9 || len(a.ticks) != tc.ticks || a.ticks[0] != 0 || a.ticks[len(a.ticks)-1] > a.hi+1e-9 {
			t.Errorf("linAxis(%v, %v): %v %v", tc.hi, tc.tight, a.hi, a.ticks)
		}
	}
	a := logAxis(23e-6, 4.1e-3, latency)
	var labels []string
	for _, v := range a.ticks {
		labels = append(labels, a.label(v))
	}
	if a.lo != 1e-5 || math.Abs(a.hi-1e-2) > 1e-15 || !slices.Equal(labels, []string{"10µs", "100µs", "1ms", "10ms"}) {
		t.Errorf("logAxis: %v–%v %q", a.lo, a.hi, labels)
	}
	if f := a.frac(1e-4); math.Abs(f-1.0/3) > 1e-9 {
		t.Errorf("frac(100µs) = %v", f)
	}
	a = logAxis(20e-6, 60e-6, latency)
	labels = nil
	for _, v := range a.ticks {
		labels = append(labels, a.label(v))
	}
	if !slices.Equal(labels, []string{"10µs", "20µs", "50µs", "100µs"}) {
		t.Errorf("logAxis of one decade: %q", labels)
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{latency(850e-9), "850ns"}, {latency(12.5e-6), "12.5µs"}, {latency(1.234e-3), "1.23ms"}, {latency(3), "3s"}, {latency(0), "0"},
		{si(950), "950"}, {si(1500), "1.5k"}, {si(12e6), "12M"}, {bitRate(9.4e9), "9.4 Gbit/s"}, {bitRate(0), "0 bit/s"},
		{size(64), "64 B"}, {size(1024), "1 KiB"}, {size(1.5 * 1024 * 1024), "1.5 MiB"},
		{grouped(0), "0"}, {grouped(1234567), "1,234,567"}, {grouped(100), "100"},
		{percentileLabel(0), "0%"}, {percentileLabel(1), "90%"}, {percentileLabel(2), "99%"}, {percentileLabel(5), "99.999%"},
	} {
		if tc.got != tc.want {
			t.Errorf("%q, want %q", tc.got, tc.want)
		}
	}
}

func ExampleRender() {
	// The stdout of "uringsend run -json-stream": intervals, then the report.
	stream := `{"type":"interval","at_seconds":1,"interval_seconds":1,"messages":1000,"messages_per_second":1000,"bits_per_second":8192000,"latency_seconds":{"p50":2e-05,"p90":3e-05,"p99":5e-05,"p999":8e-05,"max":0.0001}}
{"type":"interval","at_seconds":2,"interval_seconds":1,"messages":1200,"messages_per_second":1200,"bits_per_second":9830400,"latency_seconds":{"p50":2e-05,"p90":3e-05,"p99":6e-05,"p999":9e-05,"max":0.0002}}
{"command":"run","target":"tcp://10.0.0.2:9000","messages":2200,"latency_seconds":{"p50":2e-05,"p90":3e-05,"p99":5e-05,"p999":9e-05,"max":0.0002}}
`
	run, err := Read("a.ndjson", strings.NewReader(stream))
	if err != nil {
		fmt.Println(err)
		return
	}
	var page bytes.Buffer
	if err := Render(&page, "A run", []*Run{run}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(run.Intervals), "intervals,", strings.Count(page.String(), `<svg class="chart"`), "charts")
	// Output: 2 intervals, 4 charts
}
