package plot

import (
	"bytes"
	"errors"
	"html/template"
	"io"
	"strings"
)

// Render writes the page of runs to w: a complete HTML document with
// the charts and the settings table (see the package documentation).
// title heads the page; "" makes one of the runs' names. The page is
// written only once it is whole: an error leaves w untouched.
func Render(w io.Writer, title string, runs []*Run) error {
	if len(runs) == 0 {
		return errors.New("plot: no runs to render")
	}
	var names []string
	for _, r := range runs {
		names = append(names, r.Name)
	}
	if title == "" {
		title = "uringsend: " + strings.Join(names, ", ")
	}
	spec, err := spectrumChart(runs)
	if err != nil {
		return err
	}
	charts := []*chart{
		rateChart(runs, IDMessages, "Throughput: messages per second", "messages/s", func(iv Interval) float64 { return iv.MessagesPerSec }, si),
		rateChart(runs, IDBits, "Throughput: bits per second", "bits/s", func(iv Interval) float64 { return iv.BitsPerSecond }, si),
		latencyTimeChart(runs),
		spec,
	}
	p := page{Title: title, Sources: strings.Join(names, ", "), Rows: rows(runs)}
	for i, r := range runs {
		p.Runs = append(p.Runs, legendEntry{Name: r.Name, Color: color(i)})
	}
	for _, c := range charts {
		p.Charts = append(p.Charts, c.layout())
	}
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, &p); err != nil {
		return err
	}
	_, err = w.Write(b.Bytes())
	return err
}

type page struct {
	Title, Sources string
	Charts         []*View
	Runs           []legendEntry
	Rows           []Row
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"f":   f1,
	"add": func(a, b float64) float64 { return a + b },
	"mid": func(a, b float64) float64 { return (a + b) / 2 },
	"neg": func(a float64) float64 { return -a },
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="uringsend plot">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #222; background: #fff; max-width: 1100px; margin: 20px auto; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 26px 0 4px; border-bottom: 1px solid #ddd; padding-bottom: 3px; }
h3 { font-size: 14px; margin: 14px 0 2px; font-weight: 600; }
p.sub { color: #666; font-size: 13px; margin: 0 0 8px; }
figure { margin: 0 0 10px; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart text { font-size: 13px; fill: #444; }
svg.chart text.caption { font-size: 13px; fill: #666; }
.grid { stroke: #e8e8e8; stroke-width: 1; }
.frame { fill: none; stroke: #aaa; stroke-width: 1; }
.series { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
.band { fill: #000; fill-opacity: 0.06; }
.legend { display: flex; flex-wrap: wrap; gap: 2px 18px; font-size: 13px; margin: 0 0 2px 8%; }
.legend span { white-space: nowrap; }
.legend svg, th svg { vertical-align: middle; margin-right: 4px; }
.empty, .note { color: #777; font-size: 13px; margin: 2px 0 8px 8%; }
.empty { font-style: italic; }
table.settings { border-collapse: collapse; font-size: 13px; }
table.settings th, table.settings td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid #eee; vertical-align: top; }
table.settings tbody th { font-weight: normal; color: #666; }
table.settings tr.differs td { background: #fff4d6; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="sub">Made by uringsend plot from {{.Sources}}.</p>
{{range $i, $c := .Charts}}{{if eq $i 0}}<h2>Throughput</h2>{{else if eq $i 2}}<h2>Latency</h2>{{end}}
<figure>
<h3>{{$c.Title}}</h3>
<div class="legend">{{range $c.Legend}}<span>{{template "swatch" .}}{{.Name}}</span>{{end}}{{range $c.Styles}}<span>{{template "swatch" .}}{{.Name}}</span>{{end}}</div>
{{if $c.Empty}}<p class="empty">{{$c.Empty}}</p>{{else}}<svg class="chart" id="{{$c.ID}}" viewBox="0 0 {{$c.W}} {{$c.H}}" role="img" aria-label="{{$c.Title}}">
{{with $c.Band}}<rect class="band" x="{{f .X}}" y="{{f $c.Top}}" width="{{f .W}}" height="{{f $c.PlotH}}"/><text class="caption" x="{{f (add .X 6)}}" y="{{f (add $c.Top 16)}}">{{.Label}}</text>{{end}}
{{range $c.YTicks}}<line class="grid" x1="{{f $c.Left}}" x2="{{f $c.Right}}" y1="{{f .Pos}}" y2="{{f .Pos}}"/><text class="tick y" x="{{f (add $c.Left -7)}}" y="{{f (add .Pos 4.5)}}" text-anchor="end">{{.Label}}</text>
{{end}}{{range $c.XTicks}}<line class="grid" x1="{{f .Pos}}" x2="{{f .Pos}}" y1="{{f $c.Top}}" y2="{{f $c.Bottom}}"/><text class="tick x" x="{{f .Pos}}" y="{{f (add $c.Bottom 18)}}" text-anchor="middle">{{.Label}}</text>
{{end}}<rect class="frame" x="{{f $c.Left}}" y="{{f $c.Top}}" width="{{f $c.PlotW}}" height="{{f $c.PlotH}}"/>
{{range $c.Series}}<path class="series" d="{{.D}}" stroke="{{.Color}}"{{if .Dash}} stroke-dasharray="{{.Dash}}"{{end}}><title>{{.Name}}</title></path>
{{$color := .Color}}{{range .Markers}}<circle class="marker" cx="{{f (index . 0)}}" cy="{{f (index . 1)}}" r="3.5" fill="{{$color}}"/>{{end}}{{end}}<text class="caption" x="{{f (mid $c.Left $c.Right)}}" y="{{f (add $c.Bottom 40)}}" text-anchor="middle">{{$c.XCaption}}</text>
<text class="caption" transform="rotate(-90)" x="{{f (neg (mid $c.Top $c.Bottom))}}" y="16" text-anchor="middle">{{$c.YCaption}}</text>
</svg>
{{with $c.Note}}<p class="note">{{.}}</p>{{end}}{{end}}
</figure>
{{end}}
<h2>Settings and results</h2>
<table class="settings">
<thead><tr><th></th>{{range .Runs}}<th>{{template "swatch" .}}{{.Name}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr{{if .Differs}} class="differs"{{end}}><th>{{.Name}}</th>{{range .Values}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
</body>
</html>
{{define "swatch"}}<svg width="26" height="10" aria-hidden="true"><line x1="1" y1="5" x2="25" y2="5" stroke="{{.Color}}" stroke-width="2.5"{{if .Dash}} stroke-dasharray="{{.Dash}}"{{end}}/></svg>{{end}}`
