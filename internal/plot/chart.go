package plot

import (
	"math"
	"strconv"
	"strings"
)

// A chart's frame in SVG user units (the SVG scales to the page width).
const (
	chartW, chartH         = 1000, 270
	padL, padR, padT, padB = 80, 44, 14, 48
)

// palette colours the runs in order (Tableau 10), then again.
var palette = []string{"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"}

func color(i int) string { return palette[i%len(palette)] }

// pt is a point in data coordinates; a NaN y breaks the line.
type pt struct{ x, y float64 }

// axis maps data values to [0, 1] along the axis, linearly or on a
// log10 scale (lo > 0), and says where its ticks are and how to read them.
type axis struct {
	lo, hi float64
	log    bool
	ticks  []float64
	label  func(float64) string
}

func (a *axis) frac(v float64) float64 {
	if a.log {
		return (math.Log10(v) - math.Log10(a.lo)) / (math.Log10(a.hi) - math.Log10(a.lo))
	}
	return (v - a.lo) / (a.hi - a.lo)
}

// linAxis is a linear axis from 0 to a round number at or above hi,
// with four to seven ticks at multiples of 1, 2 or 5 × 10^k; tight, it
// ends at hi itself.
func linAxis(hi float64, tight bool, label func(float64) string) axis {
	if !(hi > 0) || math.IsInf(hi, 0) {
		hi = 1
	}
	raw := hi / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	n := math.Ceil(hi/step - 1e-9)
	a := axis{lo: 0, hi: n * step, label: label}
	if tight {
		n = math.Floor(hi/step + 1e-9)
		a.hi = hi
	}
	for i := 0.0; i <= n; i++ {
		a.ticks = append(a.ticks, i*step)
	}
	return a
}

// logAxis is a log10 axis over whole decades around [lo, hi] (lo > 0),
// ticked at every decade, and at 2 and 5 × too when it spans at most two.
func logAxis(lo, hi float64, label func(float64) string) axis {
	d0, d1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if d1 <= d0 {
		d1 = d0 + 1
	}
	a := axis{lo: math.Pow(10, d0), hi: math.Pow(10, d1), log: true, label: label}
	mants := []float64{1}
	if d1-d0 <= 2 {
		mants = []float64{1, 2, 5}
	}
	every := math.Ceil((d1 - d0) / 8) // at most about eight decade labels
	for d := d0; d <= d1; d++ {
		if math.Mod(d-d0, every) != 0 {
			continue
		}
		for _, m := range mants {
			if v := m * math.Pow(10, d); v <= a.hi*(1+1e-9) {
				a.ticks = append(a.ticks, v)
			}
		}
	}
	return a
}

// series is one line of a chart.
type series struct {
	name    string // the run's, and what the line shows
	color   string
	dash    string // stroke-dasharray; "" solid
	markers bool   // a dot at every point (few points)
	points  []pt
}

// chart is a chart before layout.
type chart struct {
	id, title       string
	xCaption, yCapt string
	x, y            axis
	series          []series
	bandTo          float64 // > 0: shade x in [0, bandTo] (-omit)
	legend, styles  []legendEntry
	empty           string // no chart, and why
	note            string // under the chart
}

type legendEntry struct{ Name, Color, Dash string }

// View is a laid-out chart as the page template draws it: positions in
// SVG user units.
type View struct {
	ID, Title, XCaption, YCaption string
	Empty, Note                   string
	W, H                          int
	Left, Top, Right, Bottom      float64 // the plot area
	PlotW, PlotH                  float64
	XTicks, YTicks                []Tick
	Series                        []ViewSeries
	Band                          *Band
	Legend, Styles                []legendEntry
}

// Tick is a tick position and label.
type Tick struct {
	Pos   float64
	Label string
}

// ViewSeries is a series' SVG path.
type ViewSeries struct {
	Name, Color, Dash, D string
	Markers              [][2]float64
}

// Band is a shaded stretch of the x axis.
type Band struct {
	X, W  float64
	Label string
}

func (c *chart) layout() *View {
	v := &View{ID: c.id, Title: c.title, XCaption: c.xCaption, YCaption: c.yCapt,
		Empty: c.empty, Note: c.note, Legend: c.legend, Styles: c.styles,
		W: chartW, H: chartH, Left: padL, Top: padT, Right: chartW - padR, Bottom: chartH - padB,
		PlotW: chartW - padR - padL, PlotH: chartH - padB - padT}
	if c.empty != "" {
		return v
	}
	px := func(x float64) float64 { return v.Left + c.x.frac(x)*(v.Right-v.Left) }
	py := func(y float64) float64 { return v.Bottom - c.y.frac(y)*(v.Bottom-v.Top) }
	for _, t := range c.x.ticks {
		v.XTicks = append(v.XTicks, Tick{px(t), c.x.label(t)})
	}
	for _, t := range c.y.ticks {
		v.YTicks = append(v.YTicks, Tick{py(t), c.y.label(t)})
	}
	if c.bandTo > 0 {
		v.Band = &Band{X: v.Left, W: px(min(c.bandTo, c.x.hi)) - v.Left, Label: "-omit"}
	}
	for _, s := range c.series {
		var d strings.Builder
		vs := ViewSeries{Name: s.name, Color: s.color, Dash: s.dash}
		pen := false
		var drawn [][2]float64
		for _, p := range s.points {
			if math.IsNaN(p.y) || (c.y.log && p.y <= 0) {
				pen = false
				continue
			}
			x, y := px(p.x), py(p.y)
			if pen {
				d.WriteByte('L')
			} else {
				if d.Len() > 0 {
					d.WriteByte(' ')
				}
				d.WriteByte('M')
			}
			d.WriteString(f1(x))
			d.WriteByte(',')
			d.WriteString(f1(y))
			pen = true
			drawn = append(drawn, [2]float64{x, y})
		}
		if len(drawn) == 0 {
			continue
		}
		if s.markers || len(drawn) <= 2 { // a line of one point shows nothing
			vs.Markers = drawn
		}
		vs.D = d.String()
		v.Series = append(v.Series, vs)
	}
	return v
}

// f1 formats an SVG coordinate.
func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
