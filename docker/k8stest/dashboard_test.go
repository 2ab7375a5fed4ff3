package k8stest

import (
	"encoding/json"
	"slices"
	"sort"
	"testing"

	"github.com/uringsend/uringsend/metrics"
)

// TestDashboardNamesOnlyExportedMetrics parses the Grafana dashboard and
// checks that every metric its PromQL names — in panel targets and in
// template variable queries — is one the product exports (the names in
// package metrics, and the load generator's own), or the _bucket, _sum or
// _count series of one.
func TestDashboardNamesOnlyExportedMetrics(t *testing.T) {
	var dash any
	if err := json.Unmarshal(readFile(t, dockerPath("grafana", "uringsend-dashboard.json")), &dash); err != nil {
		t.Fatalf("uringsend-dashboard.json: %v", err)
	}
	exported := exportedMetricNames(t)
	// The scan of package metrics must find its Name constants.
	for _, n := range []string{metrics.NameSendDuration, metrics.NameSends, metrics.NameSentBytes,
		metrics.NameInflightSends, metrics.NameRingEnterCalls, metrics.NameRingSubmitted,
		metrics.NameRingReaped, metrics.NameRingCQOverflows, metrics.NameReaperBatchSize,
		metrics.NameEngineInfo} {
		if !exported[n] {
			t.Fatalf("exportedMetricNames misses metrics constant %q", n)
		}
	}

	var queries []string
	collectQueries(dash, "", &queries)
	if len(queries) < 5 {
		t.Fatalf("found only %d PromQL expressions in the dashboard: %q", len(queries), queries)
	}
	used := map[string]bool{}
	for _, q := range queries {
		names := metricsIn(q)
		for _, m := range names {
			used[m] = true
			if unknownMetric(m, exported) {
				t.Errorf("dashboard query %q names %s, which uringsend does not export", q, m)
			}
		}
	}
	var u []string
	for m := range used {
		u = append(u, m)
	}
	sort.Strings(u)
	t.Logf("%d queries name %d metrics: %v", len(queries), len(u), u)
	if !used[metrics.NameSentBytes] {
		t.Errorf("the dashboard does not show %s", metrics.NameSentBytes)
	}
}

// collectQueries appends every PromQL string of a Grafana dashboard: the
// "expr" of targets, and the "query"/"definition" of template variables.
func collectQueries(v any, key string, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			collectQueries(x, k, out)
		}
	case []any:
		for _, x := range v {
			collectQueries(x, key, out)
		}
	case string:
		if slices.Contains([]string{"expr", "query", "definition"}, key) && v != "" {
			*out = append(*out, v)
		}
	}
}
