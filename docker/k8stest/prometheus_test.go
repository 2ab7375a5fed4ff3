package k8stest

import (
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestPromtoolCheckConfig runs `promtool check config docker/prometheus.yml`,
// which also checks the rule files it names.
func TestPromtoolCheckConfig(t *testing.T) {
	runPromtool(t, "check", "config", dockerPath("prometheus.yml"))
}

func TestPromtoolCheckRules(t *testing.T) {
	runPromtool(t, "check", "rules", dockerPath("prometheus-rules.yml"))
}

// TestRulesNameExportedMetrics: every expression of docker/prometheus-rules.yml
// names only metrics the product exports, and the total of all generators,
// sum(rate(uringsend_sent_bytes_total[1m])), is recorded.
func TestRulesNameExportedMetrics(t *testing.T) {
	var rf struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Record, Alert, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(readFile(t, dockerPath("prometheus-rules.yml")), &rf); err != nil {
		t.Fatal(err)
	}
	exported := exportedMetricNames(t)
	var exprs []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
			for _, m := range metricsIn(r.Expr) {
				if unknownMetric(m, exported) {
					t.Errorf("rule %s%s: %s is not a metric uringsend exports", r.Record, r.Alert, m)
				}
			}
		}
	}
	if !slices.Contains(exprs, "sum(rate(uringsend_sent_bytes_total[1m]))") {
		t.Errorf("no rule is sum(rate(uringsend_sent_bytes_total[1m])); have %q", exprs)
	}
}
