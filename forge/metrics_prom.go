package forge

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	waitsDesc = prometheus.NewDesc("canarybot_github_waits_total",
		"GitHub calls that waited before being sent again, by reason (primary and secondary rate limits, 5xx, timeouts, write pacing).",
		[]string{"reason"}, nil)
	waitedDesc = prometheus.NewDesc("canarybot_github_wait_seconds_total",
		"Time spent waiting on GitHub's limits, 5xx, timeouts and write pacing.", nil, nil)
	gaveUpDesc = prometheus.NewDesc("canarybot_github_gave_up_total",
		"GitHub calls returned as failed after the most attempts or a wait longer than allowed.", nil, nil)
)

// Describe and Collect make Metrics a prometheus.Collector, so that every
// wait on GitHub shows on /metrics as well as in the logs.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- waitsDesc
	ch <- waitedDesc
	ch <- gaveUpDesc
}

func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range []struct {
		reason string
		n      int64
	}{
		{WaitPrimary, m.Primary.Load()}, {WaitSecondary, m.Secondary.Load()}, {WaitServer, m.Server.Load()},
		{WaitTimeout, m.Timeout.Load()}, {WaitPacing, m.Pacing.Load()},
	} {
		ch <- prometheus.MustNewConstMetric(waitsDesc, prometheus.CounterValue, float64(c.n), c.reason)
	}
	ch <- prometheus.MustNewConstMetric(waitedDesc, prometheus.CounterValue, time.Duration(m.Waited.Load()).Seconds())
	ch <- prometheus.MustNewConstMetric(gaveUpDesc, prometheus.CounterValue, float64(m.GaveUp.Load()))
}

var _ prometheus.Collector = (*Metrics)(nil)
