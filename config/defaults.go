package config

import (
	"time"

	"github.com/canarybot/canarybot/rollout"
)

// The runbook's metric selectors. Every signal reads the canary track by its
// `track` label; the stable track is the baseline.
const (
	canary = `track="canary"`
	stable = `track="stable"`
)

// DefaultSignals are the runbook's 8 golden signals over the metric names the
// runbook's Node.js service exposes (prom-client) and conventional ones
// elsewhere. {{window}} is the plan's query window.
func DefaultSignals() []rollout.SignalSpec {
	return []rollout.SignalSpec{
		{
			Name: "api_p95", Column: "p95", Title: "API P95",
			Query: `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{` + canary + `}[{{window}}])))`,
			Op:    rollout.OpLE, Threshold: 0.200, Unit: rollout.UnitSeconds,
		},
		{
			Name: "error_5xx", Column: "5xx", Title: "5xx Rate",
			Query: `(sum(rate(http_requests_total{` + canary + `,code=~"5.."}[{{window}}])) or vector(0)) / sum(rate(http_requests_total{` + canary + `}[{{window}}]))`,
			Op:    rollout.OpLE, Threshold: 0.01, Unit: rollout.UnitRatio,
		},
		{
			Name: "ws_staleness", Column: "ws_stale", Title: "WS Staleness p95",
			Query: `histogram_quantile(0.95, sum by (le) (rate(ws_message_staleness_seconds_bucket{` + canary + `}[{{window}}])))`,
			Op:    rollout.OpLE, Threshold: 30, Unit: rollout.UnitSecondsCoarse,
		},
		{
			Name: "risk_blocks", Column: "risk", Title: "Risk Blocks",
			Query: `(sum(rate(risk_blocks_total{` + canary + `}[{{window}}])) or vector(0)) * 60`,
			Op:    rollout.OpLT, Threshold: 0.5, Unit: rollout.UnitPerMinute,
		},
		{
			Name: "idempotency_conflicts", Column: "idemp%", Title: "Idempotency Conflicts",
			Query: `(sum(rate(idempotency_conflicts_total{` + canary + `}[{{window}}])) or vector(0)) / sum(rate(idempotency_requests_total{` + canary + `}[{{window}}]))`,
			Op:    rollout.OpLE, Threshold: 0.01, Unit: rollout.UnitRatio,
		},
		{
			Name: "csp_violations", Column: "csp", Title: "CSP Violations per request",
			Query:         `(sum(rate(csp_violations_total{` + canary + `}[{{window}}])) or vector(0)) / sum(rate(http_requests_total{` + canary + `}[{{window}}]))`,
			BaselineQuery: `(sum(rate(csp_violations_total{` + stable + `}[{{window}}])) or vector(0)) / sum(rate(http_requests_total{` + stable + `}[{{window}}]))`,
			Op:            rollout.OpLE, Threshold: 0.10, Relative: true, Unit: rollout.UnitRatio,
		},
		{
			Name: "eventloop_p95", Column: "eloop", Title: "Event-Loop P95",
			Query: `max(quantile_over_time(0.95, nodejs_eventloop_lag_seconds{` + canary + `}[{{window}}]))`,
			Op:    rollout.OpLE, Threshold: 0.050, Unit: rollout.UnitSeconds,
		},
		{
			Name: "gc_pause_avg", Column: "gc", Title: "GC Pause Avg",
			Query: `sum(rate(nodejs_gc_duration_seconds_sum{` + canary + `}[{{window}}])) / sum(rate(nodejs_gc_duration_seconds_count{` + canary + `}[{{window}}]))`,
			Op:    rollout.OpLE, Threshold: 0.020, Unit: rollout.UnitSeconds,
		},
	}
}

// Default is the runbook's plan: stages 1/5/25/50/100 % with 15/15/15/15/30
// minute dwell, a 30 s tick, a 15 minute hold, the 8 signals, the
// auto_rollback="true" triggers, the T-minus timeline and the first night.
func Default() rollout.Plan {
	return rollout.Plan{
		Service: "spark",
		Stages: []rollout.Stage{
			{Weight: 1, Dwell: 15 * time.Minute},
			{Weight: 5, Dwell: 15 * time.Minute},
			{Weight: 25, Dwell: 15 * time.Minute},
			{Weight: 50, Dwell: 15 * time.Minute},
			{Weight: 100, Dwell: 30 * time.Minute},
		},
		Tick:     30 * time.Second,
		Hold:     15 * time.Minute,
		Window:   "2m",
		Signals:  DefaultSignals(),
		Triggers: rollout.Triggers{Labels: map[string]string{"auto_rollback": "true"}},
		Trend: rollout.TrendRule{
			MinPoints: 4,
			Horizon:   15 * time.Minute,
			Lookback:  15 * time.Minute,
		},
		OnBreach:       rollout.BreachRollback,
		AutoPromote:    false,
		MaxQueryErrors: 3,
		Timeline: []rollout.Step{
			{Name: rollout.StepFreeze, Offset: -30 * time.Minute},
			{Name: rollout.StepWarRoom, Offset: -20 * time.Minute},
			{Name: rollout.StepPreflight, Offset: -10 * time.Minute},
			{Name: rollout.StepBlast, Offset: -9 * time.Minute},
			{Name: rollout.StepRedTeam, Offset: -5 * time.Minute},
			{Name: rollout.StepGreenButton, Offset: -2 * time.Minute},
			{Name: rollout.StepGoNoGo, Offset: 0},
		},
		FirstNight: rollout.FirstNight{Cadence: []rollout.Cadence{
			{Until: 2 * time.Hour, Every: 15 * time.Minute},
			{Until: 6 * time.Hour, Every: 30 * time.Minute},
			{Until: 24 * time.Hour, Every: time.Hour},
		}},
	}
}
