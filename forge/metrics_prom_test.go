package forge

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsCollector: the transport's wait counters read on /metrics as
// they were counted.
func TestMetricsCollector(t *testing.T) {
	m := &Metrics{}
	m.add(WaitSecondary, 2*time.Second)
	m.add(WaitSecondary, time.Second)
	m.add(WaitPacing, 500*time.Millisecond)
	m.GaveUp.Add(1)
	want := `
# HELP canarybot_github_gave_up_total GitHub calls returned as failed after the most attempts or a wait longer than allowed.
# TYPE canarybot_github_gave_up_total counter
canarybot_github_gave_up_total 1
# HELP canarybot_github_wait_seconds_total Time spent waiting on GitHub's limits, 5xx, timeouts and write pacing.
# TYPE canarybot_github_wait_seconds_total counter
canarybot_github_wait_seconds_total 3.5
# HELP canarybot_github_waits_total GitHub calls that waited before being sent again, by reason (primary and secondary rate limits, 5xx, timeouts, write pacing).
# TYPE canarybot_github_waits_total counter
canarybot_github_waits_total{reason="pacing"} 1
canarybot_github_waits_total{reason="primary_rate_limit"} 0
canarybot_github_waits_total{reason="secondary_rate_limit"} 2
canarybot_github_waits_total{reason="server_error"} 0
canarybot_github_waits_total{reason="timeout"} 0
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
