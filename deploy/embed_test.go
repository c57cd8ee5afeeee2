package deploy

import (
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

var runbookReason = regexp.MustCompile(`^auto_trigger_[a-z0-9_]+$`)

// promQL242Functions are the functions Prometheus 2.42 knows (Debian's
// version): a rule calling anything else would fail `promtool check rules`
// there even though this module's 3.x parser accepts it.
func promQL242Functions() map[string]bool {
	return map[string]bool{
		"abs": true, "absent": true, "absent_over_time": true, "acos": true, "acosh": true,
		"asin": true, "asinh": true, "atan": true, "atanh": true, "avg_over_time": true,
		"ceil": true, "changes": true, "clamp": true, "clamp_max": true, "clamp_min": true,
		"cos": true, "cosh": true, "count_over_time": true, "days_in_month": true,
		"day_of_month": true, "day_of_week": true, "day_of_year": true, "deg": true,
		"delta": true, "deriv": true, "exp": true, "floor": true, "histogram_count": true,
		"histogram_fraction": true, "histogram_quantile": true, "histogram_sum": true,
		"holt_winters": true, "hour": true, "idelta": true, "increase": true, "irate": true,
		"label_join": true, "label_replace": true, "last_over_time": true, "ln": true,
		"log10": true, "log2": true, "max_over_time": true, "min_over_time": true,
		"minute": true, "month": true, "pi": true, "predict_linear": true,
		"present_over_time": true, "quantile_over_time": true, "rad": true, "rate": true,
		"resets": true, "round": true, "scalar": true, "sgn": true, "sin": true, "sinh": true,
		"sort": true, "sort_desc": true, "sqrt": true, "stddev_over_time": true,
		"stdvar_over_time": true, "sum_over_time": true, "tan": true, "tanh": true,
		"time": true, "timestamp": true, "vector": true, "year": true,
	}
}

func parseCanaryRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	// Legacy name validation: Prometheus 2.42 knows no UTF-8 names.
	rgs, errs := rulefmt.Parse(CanaryRules(), false, model.LegacyValidation, parser.NewParser(parser.Options{}), nil)
	for _, err := range errs {
		t.Errorf("canary-rules.yml: %v", err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return rgs
}

func TestCanaryRulesAreTheRunbooks20Triggers(t *testing.T) {
	rgs := parseCanaryRules(t)
	if len(rgs.Groups) != 1 || rgs.Groups[0].Name != "canary-auto-rollback" {
		t.Fatalf("want exactly one group canary-auto-rollback, got %d groups", len(rgs.Groups))
	}
	rs := rgs.Groups[0].Rules
	if len(rs) != 20 {
		t.Fatalf("want the runbook's 20 triggers, got %d rules", len(rs))
	}
	p := parser.NewParser(parser.Options{})
	known := promQL242Functions()
	names := map[string]bool{}
	reasons := map[string]bool{}
	for i, r := range rs {
		if r.Alert == "" {
			t.Errorf("rule %d (%s) is a recording rule; every trigger must be an alert", i, r.Record)
			continue
		}
		if names[r.Alert] {
			t.Errorf("alert name %s is used twice", r.Alert)
		}
		names[r.Alert] = true
		for k, want := range map[string]string{"auto_rollback": "true", "severity": "critical", "service": "spark"} {
			if got := r.Labels[k]; got != want {
				t.Errorf("%s: label %s = %q, want %q", r.Alert, k, got, want)
			}
		}
		if r.Annotations["summary"] == "" {
			t.Errorf("%s: no summary annotation", r.Alert)
		}
		reason := r.Annotations["runbook"]
		if !runbookReason.MatchString(reason) {
			t.Errorf("%s: runbook annotation %q is not an auto_trigger_… reason", r.Alert, reason)
		}
		if reasons[reason] {
			t.Errorf("%s: runbook reason %s is used by another alert", r.Alert, reason)
		}
		reasons[reason] = true

		expr, err := p.ParseExpr(r.Expr)
		if err != nil {
			t.Errorf("%s: expr does not parse: %v", r.Alert, err)
			continue
		}
		readsCanary := false
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			switch n := n.(type) {
			case *parser.Call:
				if !known[n.Func.Name] {
					t.Errorf("%s: function %s() is not in Prometheus 2.42", r.Alert, n.Func.Name)
				}
			case *parser.VectorSelector:
				for _, m := range n.LabelMatchers {
					if m.Name == "track" && m.Type == labels.MatchEqual && m.Value == "canary" {
						readsCanary = true
					}
				}
			}
			return nil
		})
		if !readsCanary {
			t.Errorf("%s: expr does not select track=\"canary\": %s", r.Alert, r.Expr)
		}
	}
}

// TestCanaryRulesThresholds pins the runbook's numbers for the triggers it
// names, so an edit cannot loosen one silently.
func TestCanaryRulesThresholds(t *testing.T) {
	tests := []struct {
		alert string
		expr  string // the expression, as the parser prints it
		for_  time.Duration
	}{
		{"CanaryP95LatencyCritical", `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{track="canary"}[2m]))) > 0.4`, 2 * time.Minute},
		{"Canary5xxSpike", `sum(rate(http_requests_total{code=~"5..",track="canary"}[2m])) / sum(rate(http_requests_total{track="canary"}[2m])) > 0.05`, time.Minute},
		{"CanaryWSStalenessCritical", `histogram_quantile(0.95, sum by (le) (rate(ws_message_staleness_seconds_bucket{track="canary"}[2m]))) > 60`, 2 * time.Minute},
		{"CanaryRiskBlocksSurge", `sum(rate(risk_blocks_total{track="canary"}[5m])) * 60 > 2`, 2 * time.Minute},
		{"CanaryEventLoopBackpressure", `max(quantile_over_time(0.95, nodejs_eventloop_lag_seconds{track="canary"}[2m])) > 0.2`, time.Minute},
		{"CanaryGCPauseCritical", `sum(rate(nodejs_gc_duration_seconds_sum{track="canary"}[5m])) / sum(rate(nodejs_gc_duration_seconds_count{track="canary"}[5m])) > 0.1`, 2 * time.Minute},
		{"CanaryDown", `up{track="canary"} == 0`, time.Minute},
		{"CanaryOutboxLagCritical", `max(outbox_lag_seconds{track="canary"}) > 30`, 30 * time.Second},
		{"CanaryRestartLoop", `changes(process_start_time_seconds{track="canary"}[10m]) > 2`, 0},
		{"CanaryScrapeTargetsMissing", `absent(up{job="spark",track="canary"})`, time.Minute},
	}
	rgs := parseCanaryRules(t)
	byName := map[string]rulefmt.Rule{}
	for _, r := range rgs.Groups[0].Rules {
		byName[r.Alert] = r
	}
	p := parser.NewParser(parser.Options{})
	for _, tt := range tests {
		t.Run(tt.alert, func(t *testing.T) {
			r, ok := byName[tt.alert]
			if !ok {
				t.Fatalf("no alert %s", tt.alert)
			}
			expr, err := p.ParseExpr(r.Expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := expr.String(); got != tt.expr {
				t.Errorf("expr\n got %s\nwant %s", got, tt.expr)
			}
			if got := time.Duration(r.For); got != tt.for_ {
				t.Errorf("for = %s, want %s", got, tt.for_)
			}
		})
	}
}
