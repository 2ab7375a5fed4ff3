package plot

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Row is a line of the settings table: a name and a value per run.
type Row struct {
	Name    string
	Values  []string
	Differs bool // the runs' values are not all the same
}

// field is a row's definition; optional rows are left out when no run
// has a value for them.
type field struct {
	name  string
	kind  fieldKind
	value func(*Run, *Report) string
}

type fieldKind int

const (
	setting  fieldKind = iota // a row that differs is marked
	result                    // differs as a matter of course
	optional                  // a result, left out when no run has one
)

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

var fields = []field{
	{"contents", result, func(r *Run, rep *Report) string {
		switch {
		case rep == nil:
			return fmt.Sprintf("%d intervals, no report (cut short?)", len(r.Intervals))
		case len(r.Intervals) == 0:
			return "report (-json)"
		}
		return fmt.Sprintf("%d intervals and the report (-json-stream)", len(r.Intervals))
	}},
	{"command", setting, func(_ *Run, rep *Report) string { return rep.Command }},
	{"target", setting, func(_ *Run, rep *Report) string { return rep.Target }},
	{"backend", setting, func(_ *Run, rep *Report) string {
		if rep.Fallback != "" {
			return rep.Backend + " (io_uring unavailable: " + rep.Fallback + ")"
		}
		return rep.Backend
	}},
	{"zero-copy", setting, func(_ *Run, rep *Report) string {
		switch {
		case rep.ZeroCopyUsed:
			return rep.ZeroCopy + ": used"
		case rep.ZeroCopyWhy != "":
			return rep.ZeroCopy + ": not used (" + rep.ZeroCopyWhy + ")"
		}
		return rep.ZeroCopy
	}},
	{"batching", setting, func(_ *Run, rep *Report) string { return yesNo(rep.Batching) }},
	{"message", setting, func(_ *Run, rep *Report) string {
		s := size(float64(rep.Size))
		if rep.Mode == "bufferlist" {
			return fmt.Sprintf("%s, a bufferlist of %d segments", s, rep.Segments)
		}
		if rep.Mode != "" {
			s += ", " + rep.Mode
		}
		return s
	}},
	{"connections", setting, func(_ *Run, rep *Report) string {
		s := fmt.Sprint(rep.Conns)
		if rep.ConnsWanted > rep.Conns {
			s += fmt.Sprintf(" of %d", rep.ConnsWanted)
		}
		if rep.ConnsFailed > 0 {
			s += fmt.Sprintf(", %d failed", rep.ConnsFailed)
		}
		return s
	}},
	{"in flight", setting, func(_ *Run, rep *Report) string {
		s := fmt.Sprintf("%d per connection", rep.Inflight)
		if rep.Window > 0 {
			s += " (a " + size(float64(rep.Window)) + " window)"
		}
		return s
	}},
	{"rate", setting, func(_ *Run, rep *Report) string {
		if rep.Rate == 0 {
			return "closed loop"
		}
		return si(rep.Rate) + " msg/s (open loop)"
	}},
	{"verify", setting, func(_ *Run, rep *Report) string { return yesNo(rep.Verify) }},
	{"shard", optional, func(_ *Run, rep *Report) string {
		if rep.Shards <= 1 {
			return ""
		}
		return fmt.Sprintf("%d of %d (-shard-index %d)", rep.ShardIndex+1, rep.Shards, rep.ShardIndex)
	}},
	{"merged from", optional, func(_ *Run, rep *Report) string {
		if rep.Merged == nil {
			return ""
		}
		var in []string
		for _, i := range rep.Merged.Inputs {
			in = append(in, i.Name+" ("+i.Status+")")
		}
		return strings.Join(in, ", ")
	}},
	{"merge problems", optional, func(_ *Run, rep *Report) string {
		if rep.Merged == nil {
			return ""
		}
		return strings.Join(rep.Merged.Problems, "; ")
	}},
	{"start at", optional, func(_ *Run, rep *Report) string {
		if rep.StartAt == "" {
			return ""
		}
		s := rep.StartAt + ": began " + latency(rep.StartLagSeconds) + " after"
		if rep.StartedLate {
			s += ", late"
		}
		return s
	}},
	{"started", optional, func(_ *Run, rep *Report) string { return rep.StartedAt }},
	{"ended", optional, func(_ *Run, rep *Report) string { return rep.EndedAt }},
	{"omitted", optional, func(_ *Run, rep *Report) string {
		if rep.OmitSeconds == 0 {
			return ""
		}
		return "the first " + seconds(rep.OmitSeconds)
	}},
	{"duration", result, func(_ *Run, rep *Report) string {
		s := fmt.Sprintf("%s (sending %s)", seconds(rep.DurationSeconds), seconds(rep.SendSeconds))
		if rep.Interrupted {
			s += ", interrupted"
		}
		return s
	}},
	{"messages", result, func(_ *Run, rep *Report) string { return grouped(rep.Messages) }},
	{"bytes", result, func(_ *Run, rep *Report) string {
		return grouped(rep.Bytes) + " (" + size(float64(rep.Bytes)) + ")"
	}},
	{"throughput", result, func(_ *Run, rep *Report) string {
		return si(rep.MessagesPerSec) + " msg/s, " + bitRate(rep.BitsPerSecond)
	}},
	{"errors", result, func(_ *Run, rep *Report) string {
		s := grouped(rep.Errors)
		if len(rep.ErrorsByKind) > 0 {
			var kinds []string
			for _, k := range slices.Sorted(maps.Keys(rep.ErrorsByKind)) {
				kinds = append(kinds, fmt.Sprintf("%s %s", k, grouped(rep.ErrorsByKind[k])))
			}
			s += " (" + strings.Join(kinds, ", ") + ")"
		}
		return s
	}},
	{"latency", result, func(_ *Run, rep *Report) string { return strings.ReplaceAll(rep.LatencyKind, "_", " ") }},
	{"p50", result, func(_ *Run, rep *Report) string { return latency(rep.Latency.P50) }},
	{"p90", result, func(_ *Run, rep *Report) string { return latency(rep.Latency.P90) }},
	{"p99", result, func(_ *Run, rep *Report) string { return latency(rep.Latency.P99) }},
	{"p99.9", result, func(_ *Run, rep *Report) string { return latency(rep.Latency.P999) }},
	{"max", result, func(_ *Run, rep *Report) string { return latency(rep.Latency.Max) }},
	{"latency histogram", result, func(r *Run, rep *Report) string {
		if h, _ := r.histogram(); h != nil {
			return fmt.Sprintf("%s values, %d significant digits", grouped(uint64(h.TotalCount())), h.SignificantFigures())
		}
		return "none (an older report)"
	}},
	{"sync completions", result, func(_ *Run, rep *Report) string { return num(100*rep.SyncRatio) + "%" }},
	{"cpu", optional, func(_ *Run, rep *Report) string {
		if rep.Cost == nil {
			return ""
		}
		return fmt.Sprintf("%s user + %s system", seconds(rep.Cost.UserSeconds), seconds(rep.Cost.SystemSeconds))
	}},
	{"thresholds failed", optional, func(_ *Run, rep *Report) string { return strings.Join(rep.Failed, "; ") }},
}

// rows is the settings table of runs; a run without a report has only
// its contents.
func rows(runs []*Run) []Row {
	var out []Row
	for _, f := range fields {
		row := Row{Name: f.name}
		some := false
		for _, r := range runs {
			v := ""
			if r.Report != nil || f.name == "contents" {
				v = f.value(r, r.Report)
			}
			some = some || v != ""
			if v == "" {
				v = "—"
			}
			row.Values = append(row.Values, v)
		}
		if f.kind == optional && !some {
			continue
		}
		for _, v := range row.Values[1:] {
			row.Differs = row.Differs || (f.kind == setting && v != row.Values[0])
		}
		out = append(out, row)
	}
	return out
}
