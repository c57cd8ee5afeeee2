package report_test

import (
	"strings"
	"testing"

	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
)

// TestTableRowTrafficNote: the observed traffic split shows after the
// decision only when it needs a look (a mismatch, an observation that
// failed); the columns stay the runbook's either way.
func TestTableRowTrafficNote(t *testing.T) {
	p := testPlan()
	rd := report.Renderer{}
	base := func(o *rollout.TrafficObservation) rollout.Row {
		row := mkRow(p, at(10, 15), 2, runbookValues()[1], rollout.Decision{Kind: rollout.Continue})
		row.Traffic = o
		return row
	}
	long := "observed canary share: " + strings.Repeat("x", 200)
	cases := []struct {
		name string
		obs  *rollout.TrafficObservation
		want string
	}{
		{"none", nil, "watching"},
		{"match", &rollout.TrafficObservation{Weight: 5, Observed: 5.2, Status: rollout.TrafficMatch}, "watching"},
		{"no data", &rollout.TrafficObservation{Weight: 5, Status: rollout.TrafficNoData}, "watching"},
		{"settling", &rollout.TrafficObservation{Weight: 5, Observed: 1.1, Status: rollout.TrafficSettling}, "watching"},
		{"mismatch", &rollout.TrafficObservation{Weight: 5, Observed: 12.04, Status: rollout.TrafficMismatch},
			"watching ⚠ traffic: observed 12.0% vs weight 5% (mismatch)"},
		{"error with a regexp", &rollout.TrafficObservation{Status: rollout.TrafficError, Text: "sum(x{ingress=~\"spark|spark-canary\"}):\n  timeout"},
			"watching ⚠ traffic share unknown: sum(x{ingress=~\"spark¦spark-canary\"}): timeout"},
		{"long error", &rollout.TrafficObservation{Status: rollout.TrafficError, Text: long},
			"watching ⚠ traffic share unknown: " + long[:99] + "…"},
	}
	plain := cells(rd.TableRow(p, base(nil)))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := cells(rd.TableRow(p, base(c.obs)))
			if len(got) != len(plain) {
				t.Fatalf("%d cells, want %d: %q", len(got), len(plain), got)
			}
			if last := got[len(got)-1]; last != c.want {
				t.Errorf("decision cell = %q, want %q", last, c.want)
			}
			for i := range len(got) - 1 {
				if got[i] != plain[i] {
					t.Errorf("cell %d = %q, want %q as without an observation", i, got[i], plain[i])
				}
			}
		})
	}
}
