package report_test

import (
	"fmt"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

// The fixtures mirror the runbook: its plan (stages, the 8 signals and their
// bounds) and its example war-room table. They are built here, not taken from
// config.Default(), so the golden files change only when rendering does.

func at(h, m int) time.Time {
	return time.Date(2026, 11, 27, h, m, 0, 0, time.UTC)
}

func testPlan() *rollout.Plan {
	q := func(metric string) string { return metric + `{track="canary"}[{{window}}]` }
	return &rollout.Plan{
		Service: "spark",
		Stages: []rollout.Stage{
			{Weight: 1, Dwell: 15 * time.Minute},
			{Weight: 5, Dwell: 15 * time.Minute},
			{Weight: 25, Dwell: 15 * time.Minute},
			{Weight: 50, Dwell: 15 * time.Minute},
			{Weight: 100, Dwell: 30 * time.Minute},
		},
		Tick:   30 * time.Second,
		Hold:   15 * time.Minute,
		Window: "2m",
		// Plan order differs from the table's on purpose: the table must
		// follow the runbook, not the plan.
		Signals: []rollout.SignalSpec{
			{Name: "api_p95", Column: "p95", Title: "API P95", Query: q("api_p95"), Op: rollout.OpLE, Threshold: 0.200, Unit: rollout.UnitSeconds},
			{Name: "error_5xx", Column: "5xx", Title: "5xx Rate", Query: q("error_5xx"), Op: rollout.OpLE, Threshold: 0.01, Unit: rollout.UnitRatio},
			{Name: "ws_staleness", Column: "ws_stale", Title: "WS Staleness p95", Query: q("ws_staleness"), Op: rollout.OpLE, Threshold: 30, Unit: rollout.UnitSecondsCoarse},
			{Name: "risk_blocks", Column: "risk", Title: "Risk Blocks", Query: q("risk_blocks"), Op: rollout.OpLT, Threshold: 0.5, Unit: rollout.UnitPerMinute},
			{Name: "idempotency_conflicts", Column: "idemp%", Title: "Idempotency Conflicts", Query: q("idempotency_conflicts"), Op: rollout.OpLE, Threshold: 0.01, Unit: rollout.UnitRatio},
			{Name: "csp_violations", Column: "csp", Title: "CSP Violations per request", Query: q("csp_violations"), BaselineQuery: `csp{track="stable"}`, Op: rollout.OpLE, Threshold: 0.10, Relative: true, Unit: rollout.UnitRatio},
			{Name: "eventloop_p95", Column: "eloop", Title: "Event-Loop P95", Query: q("eventloop_p95"), Op: rollout.OpLE, Threshold: 0.050, Unit: rollout.UnitSeconds},
			{Name: "gc_pause_avg", Column: "gc", Title: "GC Pause Avg", Query: q("gc_pause_avg"), Op: rollout.OpLE, Threshold: 0.020, Unit: rollout.UnitSeconds},
		},
		Triggers: rollout.Triggers{Labels: map[string]string{"auto_rollback": "true"}},
		Trend:    rollout.TrendRule{MinPoints: 4, Horizon: 15 * time.Minute, Lookback: 15 * time.Minute},
		OnBreach: rollout.BreachRollback,
		FirstNight: rollout.FirstNight{Cadence: []rollout.Cadence{
			{Until: 2 * time.Hour, Every: 15 * time.Minute},
			{Until: 6 * time.Hour, Every: 30 * time.Minute},
			{Until: 24 * time.Hour, Every: time.Hour},
		}},
	}
}

// cspBaseline is the stable track's CSP violations per request.
const cspBaseline = 0.002

// vals is one tick's values in the runbook's units: ms, %, s, /min, %,
// % above the CSP baseline, ms, ms.
type vals struct {
	p95, e5xx, ws, risk, idemp, csp, eloop, gc float64
}

// readings turns vals into all-Pass measurements; the spec's resolved query
// is recorded as the engine does.
func readings(p *rollout.Plan, t time.Time, v vals) []rollout.Measurement {
	base := map[string]float64{
		"api_p95":               v.p95 / 1000,
		"error_5xx":             v.e5xx / 100,
		"ws_staleness":          v.ws,
		"risk_blocks":           v.risk,
		"idempotency_conflicts": v.idemp / 100,
		"csp_violations":        cspBaseline * (1 + v.csp/100),
		"eventloop_p95":         v.eloop / 1000,
		"gc_pause_avg":          v.gc / 1000,
	}
	var out []rollout.Measurement
	for _, s := range p.Signals {
		m := rollout.Measurement{
			Signal: s.Name, At: t, Query: p.ResolveQuery(s.Query),
			Value: base[s.Name], Bound: s.Threshold, Verdict: rollout.Pass,
		}
		if s.Relative {
			b := cspBaseline
			m.Baseline = &b
			m.Bound = b * (1 + s.Threshold)
		}
		out = append(out, m)
	}
	return out
}

func mkRow(p *rollout.Plan, t time.Time, stage int, v vals, d rollout.Decision) rollout.Row {
	phase, w := rollout.PhaseFirstNight, 100
	if stage > 0 {
		phase, w = rollout.PhaseStage, p.Stages[stage-1].Weight
	}
	return rollout.Row{At: t, Phase: phase, Stage: stage, Weight: w, Readings: readings(p, t, v), Decision: d}
}

// setReading replaces one signal's measurement in a row.
func setReading(row *rollout.Row, m rollout.Measurement) {
	for i := range row.Readings {
		if row.Readings[i].Signal == m.Signal {
			row.Readings[i] = m
			return
		}
	}
	row.Readings = append(row.Readings, m)
}

// dropReading removes a signal from a row, as if it had never been read.
func dropReading(row *rollout.Row, signal string) {
	var keep []rollout.Measurement
	for _, m := range row.Readings {
		if m.Signal != signal {
			keep = append(keep, m)
		}
	}
	row.Readings = keep
}

// runbookValues are the runbook's example table; risk (absent there) is the
// one-liner's 0.1/min and csp's 3..7 are read as % above the baseline.
func runbookValues() []vals {
	return []vals{
		{142, 0.2, 8, 0.1, 0.1, 3, 12, 8},
		{145, 0.3, 9, 0.1, 0.2, 4, 15, 10},
		{148, 0.3, 11, 0.1, 0.2, 5, 18, 12},
		{152, 0.4, 12, 0.1, 0.3, 6, 20, 14},
		{156, 0.4, 13, 0.1, 0.3, 7, 22, 16},
	}
}

func proceed(i int, p *rollout.Plan) rollout.Decision {
	return rollout.Decision{Kind: rollout.Proceed, Reason: fmt.Sprintf("dwell %s over, 8/8 signals pass", p.Stages[i].Dwell)}
}

func passedSteps() []rollout.StepRecord {
	return []rollout.StepRecord{
		{Name: rollout.StepFreeze, Status: rollout.GatePassed, Detail: "12 PRs labelled hold-for-canary", By: "canarybot", At: at(9, 30)},
		{Name: rollout.StepWarRoom, Status: rollout.GatePassed, By: "canarybot", At: at(9, 40)},
		{Name: rollout.StepPreflight, Status: rollout.GatePassed, Detail: "10/10 checks", By: "canarybot", At: at(9, 50)},
		{Name: rollout.StepBlast, Status: rollout.GateSkipped, Detail: "no blast-radius target configured", By: "canarybot", At: at(9, 51)},
		{Name: rollout.StepRedTeam, Status: rollout.GatePassed, Detail: "15/15", By: "bob", At: at(9, 55)},
		{Name: rollout.StepGreenButton, Status: rollout.GatePassed, By: "canarybot", At: at(9, 58)},
		{Name: rollout.StepGoNoGo, Status: rollout.GatePassed, Detail: "GO", By: "alice", At: at(10, 0)},
	}
}

// exampleRelease is the runbook's example: five stages a quarter hour apart,
// each Proceed, then two first-night snapshots. The second snapshot's
// event-loop p95 has moved most of the way to its bound.
func exampleRelease(p *rollout.Plan) *rollout.Release {
	r := &rollout.Release{
		ID: "rel-1", Version: "v1.4.0", IC: "alice",
		Phase: rollout.PhaseComplete, Stage: 4,
		Created: at(9, 30), PhaseStarted: at(11, 30), Weight: 100,
		Steps: passedSteps(), Snapshots: 2, Ended: at(12, 0),
	}
	for i, v := range runbookValues() {
		r.Rows = append(r.Rows, mkRow(p, at(10, 15*i), i+1, v, proceed(i, p)))
	}
	r.Rows = append(r.Rows,
		mkRow(p, at(11, 45), 0, vals{161, 0.4, 13, 0.1, 0.3, 7, 23, 16}, rollout.Decision{Kind: rollout.Continue, Reason: "first night: all signals pass"}),
		mkRow(p, at(12, 0), 0, vals{161, 0.4, 13, 0.1, 0.3, 7, 40, 16}, rollout.Decision{Kind: rollout.Continue, Reason: "first night: all signals pass"}),
	)
	r.Log = []rollout.LogEntry{
		{At: at(9, 30), User: "alice", Kind: rollout.LogSystem, Text: "release v1.4.0 started by alice (IC)"},
		{At: at(10, 14), User: "carol", Kind: rollout.LogRefused, Text: "promote — refused: only the Incident Commander (alice) may promote"},
		{At: at(10, 15), User: "alice", Kind: rollout.LogCommand, Text: "promote"},
		{At: at(10, 15), User: "canarybot", Kind: rollout.LogDecision, Text: "Stage 2/5: canary weight 5% for 15m0s"},
		{At: at(12, 0), User: "canarybot", Kind: rollout.LogSystem, Text: "release complete: first night over"},
	}
	return r
}

// rolledBackRelease climbs in stage 3: p95 rises (a hold), then breaches and
// the engine rolls back at 10:42, twelve minutes into the stage.
func rolledBackRelease(p *rollout.Plan) *rollout.Release {
	r := &rollout.Release{
		ID: "rel-2", Version: "v1.4.0", IC: "alice",
		Phase: rollout.PhaseRolledBack, Stage: 2,
		Created: at(9, 30), PhaseStarted: at(10, 30), Weight: 0,
		Steps: passedSteps(), Ended: at(10, 42),
	}
	v := runbookValues()
	r.Rows = append(r.Rows,
		mkRow(p, at(10, 0), 1, v[0], proceed(0, p)),
		mkRow(p, at(10, 15), 2, v[1], proceed(1, p)),
		mkRow(p, at(10, 30), 3, vals{150, 0.3, 11, 0.1, 0.2, 5, 18, 12}, rollout.Decision{Kind: rollout.Continue, Reason: "all signals pass; 15m0s of dwell left"}),
	)
	holdReason := "trend: api_p95 = 185ms rising 4ms/min, projected 245ms in 15m0s, bound ≤ 200ms; re-evaluate at 10:50"
	for _, t := range []time.Time{at(10, 35), at(10, 40)} {
		row := mkRow(p, t, 3, vals{185, 0.3, 11, 0.1, 0.2, 5, 18, 12}, rollout.Decision{Kind: rollout.Hold, Signals: []string{"api_p95"}, Reason: holdReason})
		proj := 0.245
		setReading(&row, rollout.Measurement{
			Signal: "api_p95", At: t, Query: p.ResolveQuery(p.Signals[0].Query), Value: 0.185, Bound: 0.2,
			Projected: &proj, Slope: 0.004, Verdict: rollout.Rising,
			Reason: "api_p95 = 185ms rising 4ms/min, projected 245ms in 15m0s, bound ≤ 200ms",
		})
		r.Rows = append(r.Rows, row)
	}
	breach := mkRow(p, at(10, 42), 3, vals{312, 0.3, 11, 0.1, 0.2, 5, 18, 12}, rollout.Decision{
		Kind: rollout.Rollback, Auto: true, Signals: []string{"api_p95"}, Reason: "breach: api_p95 = 312ms, bound ≤ 200ms",
	})
	setReading(&breach, rollout.Measurement{
		Signal: "api_p95", At: at(10, 42), Query: p.ResolveQuery(p.Signals[0].Query), Value: 0.312, Bound: 0.2,
		Verdict: rollout.Breach, Reason: "api_p95 = 312ms, bound ≤ 200ms",
	})
	r.Rows = append(r.Rows, breach)
	r.Rollback = &rollout.RollbackRecord{
		At: at(10, 42), Reason: "breach: api_p95 = 312ms, bound ≤ 200ms", Stage: 3, Weight: 25,
		Signals: []string{"api_p95"}, By: "canarybot (auto)",
	}
	r.Log = []rollout.LogEntry{
		{At: at(10, 35), User: "canarybot", Kind: rollout.LogDecision, Text: "HOLD: " + holdReason},
		{At: at(10, 42), User: "canarybot (auto)", Kind: rollout.LogDecision, Text: "ROLLBACK by canarybot (auto): breach: api_p95 = 312ms, bound ≤ 200ms. Canary weight → 0."},
	}
	return r
}

// alertRollbackRelease rolls back in stage 2 on a firing trigger.
func alertRollbackRelease(p *rollout.Plan) *rollout.Release {
	r := &rollout.Release{
		ID: "rel-3", Version: "v1.4.1", IC: "alice",
		Phase: rollout.PhaseRolledBack, Stage: 1, PhaseStarted: at(10, 15), Ended: at(10, 20),
	}
	v := runbookValues()
	r.Rows = append(r.Rows, mkRow(p, at(10, 0), 1, v[0], proceed(0, p)))
	row := mkRow(p, at(10, 20), 2, v[1], rollout.Decision{
		Kind: rollout.Rollback, Auto: true, Signals: []string{"EventLoopBackpressure"}, Reason: "trigger firing: EventLoopBackpressure",
	})
	row.Alerts = []rollout.Alert{{
		Name: "EventLoopBackpressure", Summary: "event loop lag p95 > 100ms for 2m", Since: at(10, 18),
		Labels: map[string]string{"severity": "critical", "auto_rollback": "true", "alertname": "EventLoopBackpressure"},
	}}
	r.Rows = append(r.Rows, row)
	r.Rollback = &rollout.RollbackRecord{
		At: at(10, 20), Reason: "trigger firing: EventLoopBackpressure", Stage: 2, Weight: 5,
		Signals: []string{"EventLoopBackpressure"}, By: "canarybot (auto)",
	}
	return r
}

// degradedRow has one signal of every kind of trouble: NoData, Error,
// Rising, Breach, and risk_blocks not read at all.
func degradedRow(p *rollout.Plan) rollout.Row {
	row := mkRow(p, at(10, 20), 2, runbookValues()[1], rollout.Decision{
		Kind: rollout.Rollback, Auto: true, Signals: []string{"gc_pause_avg"}, Reason: "breach: gc_pause_avg = 31ms, bound ≤ 20ms",
	})
	setReading(&row, rollout.Measurement{Signal: "error_5xx", At: row.At, Verdict: rollout.NoData, Reason: "NaN (no traffic in the window?)"})
	setReading(&row, rollout.Measurement{Signal: "ws_staleness", At: row.At, Verdict: rollout.Error, Reason: "bad_data: parse error"})
	proj := 0.061
	setReading(&row, rollout.Measurement{Signal: "eventloop_p95", At: row.At, Value: 0.041, Bound: 0.05, Projected: &proj, Slope: 0.0013, Verdict: rollout.Rising, Reason: "eventloop_p95 = 41ms rising"})
	setReading(&row, rollout.Measurement{Signal: "gc_pause_avg", At: row.At, Value: 0.031, Bound: 0.02, Verdict: rollout.Breach, Reason: "gc_pause_avg = 31ms, bound ≤ 20ms"})
	dropReading(&row, "risk_blocks")
	return row
}

// noRiskRelease is the runbook example with risk_blocks never read (its
// metric not exported) and one stage-100 NoData p95.
func noRiskRelease(p *rollout.Plan) *rollout.Release {
	r := exampleRelease(p)
	r.Rows = r.Rows[:5]
	for i := range r.Rows {
		dropReading(&r.Rows[i], "risk_blocks")
	}
	setReading(&r.Rows[4], rollout.Measurement{Signal: "api_p95", At: r.Rows[4].At, Verdict: rollout.NoData, Reason: "no series matched"})
	return r
}

// nightRollbackRelease completes the stages, takes one snapshot, and rolls
// back three hours into the first night on a firing trigger.
func nightRollbackRelease(p *rollout.Plan) *rollout.Release {
	r := exampleRelease(p)
	r.Phase, r.PhaseStarted, r.Weight, r.Ended, r.Snapshots = rollout.PhaseRolledBack, at(11, 30), 0, at(14, 30), 1
	r.Rows = r.Rows[:6]
	row := mkRow(p, at(14, 30), 0, runbookValues()[4], rollout.Decision{
		Kind: rollout.Rollback, Auto: true, Signals: []string{"PGBouncerSaturated"}, Reason: "trigger firing: PGBouncerSaturated",
	})
	row.Alerts = []rollout.Alert{{Name: "PGBouncerSaturated", Labels: map[string]string{"auto_rollback": "true"}, Since: at(14, 28)}}
	r.Rows = append(r.Rows, row)
	r.Rollback = &rollout.RollbackRecord{
		At: at(14, 30), Reason: "trigger firing: PGBouncerSaturated", Stage: 0, Weight: 100,
		Signals: []string{"PGBouncerSaturated"}, By: "canarybot (auto)",
	}
	return r
}
