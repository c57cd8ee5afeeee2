package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/rollout"
)

// runbookExample is the runbook's war-room table: the canary's values at
// each of the five stages.
var runbookExample = []map[string]float64{
	{"api_p95": 0.142, "error_5xx": 0.002, "ws_staleness": 8, "idempotency_conflicts": 0.001, "csp_violations": 0.0200, "eventloop_p95": 0.012, "gc_pause_avg": 0.008, "risk_blocks": 0.1},
	{"api_p95": 0.145, "error_5xx": 0.003, "ws_staleness": 9, "idempotency_conflicts": 0.002, "csp_violations": 0.0202, "eventloop_p95": 0.015, "gc_pause_avg": 0.010, "risk_blocks": 0.1},
	{"api_p95": 0.148, "error_5xx": 0.003, "ws_staleness": 11, "idempotency_conflicts": 0.002, "csp_violations": 0.0204, "eventloop_p95": 0.018, "gc_pause_avg": 0.012, "risk_blocks": 0.1},
	{"api_p95": 0.152, "error_5xx": 0.004, "ws_staleness": 12, "idempotency_conflicts": 0.003, "csp_violations": 0.0206, "eventloop_p95": 0.020, "gc_pause_avg": 0.014, "risk_blocks": 0.2},
	{"api_p95": 0.156, "error_5xx": 0.004, "ws_staleness": 13, "idempotency_conflicts": 0.003, "csp_violations": 0.0208, "eventloop_p95": 0.022, "gc_pause_avg": 0.016, "risk_blocks": 0.2},
}

const cspBaseline = 0.02

// readingsAt builds a tick's readings from a table of values; a missing
// value reads as an empty result.
func readingsAt(p *rollout.Plan, at time.Time, vals map[string]float64) []rollout.Reading {
	var out []rollout.Reading
	for _, s := range p.Signals {
		rd := rollout.Reading{Signal: s.Name, At: at, Query: p.ResolveQuery(s.Query), Baseline: cspBaseline}
		v, ok := vals[s.Name]
		if ok {
			rd.Value = v
		} else {
			rd.Err = rollout.ErrNoValues
		}
		out = append(out, rd)
	}
	return out
}

func with(base map[string]float64, k string, v float64) map[string]float64 {
	out := map[string]float64{}
	for a, b := range base {
		out[a] = b
	}
	out[k] = v
	return out
}

func without(base map[string]float64, k string) map[string]float64 {
	out := with(base, k, 0)
	delete(out, k)
	return out
}

// stageRelease returns a release at the start of stage i of the default plan.
func stageRelease(m *rollout.Machine, i int) *rollout.Release {
	r := &rollout.Release{ID: "r", Version: "v1.4.0", IC: "alice", Phase: rollout.PhaseStage, Stage: i, PhaseStarted: t0, CleanSince: t0, Weight: m.Plan.Stages[i].Weight}
	return r
}

// TestDecisions drives a stage of the default plan tick by tick and checks
// the decision after the last tick.
func TestDecisions(t *testing.T) {
	plan := config.Default()
	tick := plan.Tick
	steady := func(vals map[string]float64) func(i int) map[string]float64 {
		return func(int) map[string]float64 { return vals }
	}
	tests := []struct {
		name  string
		stage int
		ticks int // 30 s ticks; 30 = a whole 15-minute dwell
		vals  func(i int) map[string]float64
		fire  func(i int) []rollout.Alert
		aerr  error
		want  rollout.DecisionKind
		auto  bool
		why   string
	}{
		{name: "runbook stage 1 after its dwell", stage: 0, ticks: 30, vals: steady(runbookExample[0]), want: rollout.Proceed},
		{name: "runbook stage 4 after its dwell", stage: 3, ticks: 30, vals: steady(runbookExample[3]), want: rollout.Proceed},
		{name: "runbook stage 5 needs its 30-minute dwell", stage: 4, ticks: 30, vals: steady(runbookExample[4]), want: rollout.Continue},
		{name: "runbook stage 5 after 30 minutes", stage: 4, ticks: 60, vals: steady(runbookExample[4]), want: rollout.Proceed},
		{name: "healthy but dwell not over", stage: 0, ticks: 10, vals: steady(runbookExample[0]), want: rollout.Continue},
		{name: "p95 climbing 120→190ms within the stage holds", stage: 1, ticks: 30, vals: func(i int) map[string]float64 {
			return with(runbookExample[1], "api_p95", 0.120+0.070*float64(i)/29)
		}, want: rollout.Hold, why: "api_p95"},
		{name: "breach rolls back at once", stage: 2, ticks: 3, vals: func(i int) map[string]float64 {
			if i == 2 {
				return with(runbookExample[2], "api_p95", 0.312)
			}
			return runbookExample[2]
		}, want: rollout.Rollback, auto: true, why: "api_p95"},
		{name: "NaN never proceeds", stage: 0, ticks: 30, vals: func(i int) map[string]float64 {
			return with(runbookExample[0], "error_5xx", math.NaN())
		}, want: rollout.Hold, why: "no data"},
		{name: "empty result never proceeds", stage: 0, ticks: 30, vals: func(i int) map[string]float64 {
			return without(runbookExample[0], "gc_pause_avg")
		}, want: rollout.Hold, why: "gc_pause_avg"},
		{name: "firing trigger rolls back", stage: 0, ticks: 2, vals: steady(runbookExample[0]), fire: func(i int) []rollout.Alert {
			if i == 1 {
				return []rollout.Alert{{Name: "EventLoopBackpressure", Labels: map[string]string{"auto_rollback": "true"}}}
			}
			return nil
		}, want: rollout.Rollback, auto: true, why: "EventLoopBackpressure"},
		{name: "alert without the trigger label is not a trigger", stage: 0, ticks: 30, vals: steady(runbookExample[0]), fire: func(i int) []rollout.Alert {
			return []rollout.Alert{{Name: "Info", Labels: map[string]string{"severity": "info"}}}
		}, want: rollout.Proceed},
		{name: "CSP at baseline+9% passes", stage: 0, ticks: 30, vals: steady(with(runbookExample[0], "csp_violations", cspBaseline*1.09)), want: rollout.Proceed},
		{name: "CSP at baseline+11% rolls back", stage: 0, ticks: 1, vals: steady(with(runbookExample[0], "csp_violations", cspBaseline*1.11)), want: rollout.Rollback, auto: true, why: "csp_violations"},
		{name: "alerts unreadable three times holds", stage: 0, ticks: 30, vals: steady(runbookExample[0]), aerr: errors.New("prometheus down"), want: rollout.Hold, why: "alerts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &rollout.Machine{Plan: &plan, Render: textRenderer{}}
			r := stageRelease(m, tc.stage)
			var d rollout.Decision
			for i := 0; i < tc.ticks && !r.Phase.Terminal(); i++ {
				at := t0.Add(time.Duration(i+1) * tick)
				var fire []rollout.Alert
				if tc.fire != nil {
					fire = tc.fire(i)
				}
				d = m.Tick(r, readingsAt(&plan, at, tc.vals(i)), fire, tc.aerr, at)
			}
			if d.Kind != tc.want {
				t.Fatalf("decision %s (%s), want %s", d.Kind, d.Reason, tc.want)
			}
			if d.Auto != tc.auto {
				t.Errorf("auto = %v, want %v", d.Auto, tc.auto)
			}
			if !strings.Contains(d.Reason+strings.Join(d.Signals, ","), tc.why) {
				t.Errorf("decision %q does not name %q", d.Reason, tc.why)
			}
			if tc.want == rollout.Rollback && (r.Phase != rollout.PhaseRolledBack || r.Weight != 0) {
				t.Errorf("after rollback phase=%s weight=%d", r.Phase, r.Weight)
			}
		})
	}
}

// TestQueryErrorsRetryThenHold: a failing query is retried (Continue) until
// MaxQueryErrors in a row, then the release holds and pages the IC once.
func TestQueryErrorsRetryThenHold(t *testing.T) {
	plan := config.Default()
	m := &rollout.Machine{Plan: &plan, Render: textRenderer{}}
	r := stageRelease(m, 0)
	var kinds []rollout.DecisionKind
	for i := range 5 {
		at := t0.Add(time.Duration(i+1) * plan.Tick)
		rds := readingsAt(&plan, at, runbookExample[0])
		rds[0].Err = errors.New("context deadline exceeded")
		kinds = append(kinds, m.Tick(r, rds, nil, nil, at).Kind)
	}
	want := []rollout.DecisionKind{rollout.Continue, rollout.Continue, rollout.Hold, rollout.Hold, rollout.Hold}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("decisions %v, want %v", kinds, want)
	}
	pages := 0
	for _, e := range r.Log {
		if strings.Contains(e.Text, "PAGE IC") {
			pages++
		}
	}
	if pages != 1 {
		t.Errorf("paged %d times, want once", pages)
	}
	// The query recovers: the hold lifts without a timer.
	at := t0.Add(6 * plan.Tick)
	if d := m.Tick(r, readingsAt(&plan, at, runbookExample[0]), nil, nil, at); d.Kind != rollout.Continue {
		t.Errorf("after recovery: %s (%s), want Continue", d.Kind, d.Reason)
	}
}

// TestRisingHoldsFifteenMinutes: a Rising signal holds for plan.Hold, and
// the stage proceeds only when the hold is over and the trend has gone.
func TestRisingHoldsFifteenMinutes(t *testing.T) {
	plan := config.Default()
	m := &rollout.Machine{Plan: &plan, Render: textRenderer{}}
	r := stageRelease(m, 0)
	i := 0
	tickAt := func(v float64) rollout.Decision {
		i++
		at := t0.Add(time.Duration(i) * plan.Tick)
		return m.Tick(r, readingsAt(&plan, at, with(runbookExample[0], "api_p95", v)), nil, nil, at)
	}
	for k := range 12 {
		tickAt(0.120 + 0.006*float64(k))
	}
	if r.Last.Kind != rollout.Hold {
		t.Fatalf("climb: %s, want Hold", r.Last.Kind)
	}
	holdEnd := r.HoldUntil
	if got := holdEnd.Sub(r.Rows[len(r.Rows)-1].At); got > plan.Hold {
		t.Fatalf("hold lasts %s, want at most %s", got, plan.Hold)
	}
	// Flat again from here; the hold still runs until its end.
	for t0.Add(time.Duration(i+1) * plan.Tick).Before(holdEnd) {
		if d := tickAt(0.150); d.Kind == rollout.Proceed {
			t.Fatalf("proceeded during the hold at tick %d (hold until %s)", i, holdEnd.Format("15:04:05"))
		}
	}
	// The lookback still sees the climb for a while; once it ages out the
	// stage proceeds.
	var d rollout.Decision
	for range 40 {
		if d = tickAt(0.150); d.Kind == rollout.Proceed {
			break
		}
	}
	if d.Kind != rollout.Proceed {
		t.Fatalf("never proceeded after the hold: %s (%s)", d.Kind, d.Reason)
	}
}

// TestCommandAuthority: only the IC promotes, holds, resumes, rolls back; a
// refusal changes nothing but the log.
func TestCommandAuthority(t *testing.T) {
	plan := config.Default()
	tests := []struct {
		name    string
		setup   func(r *rollout.Release)
		cmd     rollout.Command
		refused string
	}{
		{name: "IC promotes on Proceed", setup: func(r *rollout.Release) { r.Last = rollout.Decision{Kind: rollout.Proceed} }, cmd: rollout.Command{Kind: rollout.CmdPromote, User: "alice"}},
		{name: "other user may not promote", setup: func(r *rollout.Release) { r.Last = rollout.Decision{Kind: rollout.Proceed} }, cmd: rollout.Command{Kind: rollout.CmdPromote, User: "bob"}, refused: "only the Incident Commander (alice)"},
		{name: "no promote on Hold", setup: func(r *rollout.Release) { r.Last = rollout.Decision{Kind: rollout.Hold, Reason: "no data"} }, cmd: rollout.Command{Kind: rollout.CmdPromote, User: "alice"}, refused: "last decision is Hold"},
		{name: "no promote before a decision", setup: func(r *rollout.Release) {}, cmd: rollout.Command{Kind: rollout.CmdPromote, User: "alice"}, refused: "not decided yet"},
		{name: "IC holds", setup: func(r *rollout.Release) {}, cmd: rollout.Command{Kind: rollout.CmdHold, User: "alice", Duration: 10 * time.Minute}},
		{name: "resume when not holding", setup: func(r *rollout.Release) {}, cmd: rollout.Command{Kind: rollout.CmdResume, User: "alice"}, refused: "not holding"},
		{name: "IC rolls back", setup: func(r *rollout.Release) {}, cmd: rollout.Command{Kind: rollout.CmdRollback, User: "alice", Reason: "drill gone wrong"}},
		{name: "a release manager rolls back", setup: func(r *rollout.Release) {}, cmd: rollout.Command{Kind: rollout.CmdRollback, User: "bob", Manager: true, Reason: "pager"}},
		{name: "a release manager may not promote", setup: func(r *rollout.Release) { r.Last = rollout.Decision{Kind: rollout.Proceed} }, cmd: rollout.Command{Kind: rollout.CmdPromote, User: "bob", Manager: true}, refused: "only the Incident Commander (alice)"},
		{name: "other user may not roll back", setup: func(r *rollout.Release) {}, cmd: rollout.Command{Kind: rollout.CmdRollback, User: "mallory"}, refused: "only the Incident Commander"},
		{name: "GO outside go/no-go", setup: func(r *rollout.Release) {}, cmd: rollout.Command{Kind: rollout.CmdGo, User: "alice"}, refused: "not at go/no-go"},
		{name: "abort after traffic moved", setup: func(r *rollout.Release) {}, cmd: rollout.Command{Kind: rollout.CmdAbort, User: "alice"}, refused: "use rollback"},
		{name: "hand over command", setup: func(r *rollout.Release) {}, cmd: rollout.Command{Kind: rollout.CmdHandover, User: "alice", Target: "carol"}},
		{name: "hand over to the IC", setup: func(r *rollout.Release) {}, cmd: rollout.Command{Kind: rollout.CmdHandover, User: "alice", Target: "alice"}, refused: "already the Incident Commander"},
		{name: "unknown command", setup: func(r *rollout.Release) {}, cmd: rollout.Command{Kind: "deploy", User: "alice"}, refused: "unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &rollout.Machine{Plan: &plan, Render: textRenderer{}}
			r := stageRelease(m, 1)
			tc.setup(r)
			before := *r
			err := m.Apply(r, tc.cmd, t0)
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got := r.Log[len(before.Log)]; got.Kind != rollout.LogCommand || got.User != tc.cmd.User {
					t.Errorf("accepted command not logged as %s's command: %+v", tc.cmd.User, got)
				}
				return
			}
			var re *rollout.RefusedError
			if !errors.As(err, &re) || !strings.Contains(re.Why, tc.refused) {
				t.Fatalf("err %v, want a refusal saying %q", err, tc.refused)
			}
			if r.Phase != before.Phase || r.Stage != before.Stage || r.Weight != before.Weight || r.IC != before.IC || !r.HoldUntil.Equal(before.HoldUntil) {
				t.Errorf("a refused command changed the release")
			}
			if got := r.Log[len(r.Log)-1]; got.Kind != rollout.LogRefused || got.User != tc.cmd.User {
				t.Errorf("refusal not logged: %+v", got)
			}
		})
	}
}

func TestCommandIdempotent(t *testing.T) {
	plan := config.Default()
	m := &rollout.Machine{Plan: &plan, Render: textRenderer{}}
	r := stageRelease(m, 0)
	r.Last = rollout.Decision{Kind: rollout.Proceed}
	c := rollout.Command{ID: "c1", Kind: rollout.CmdPromote, User: "alice"}
	if err := m.Apply(r, c, t0); err != nil {
		t.Fatal(err)
	}
	r.Last = rollout.Decision{Kind: rollout.Proceed}
	if err := m.Apply(r, c, t0); err != nil {
		t.Fatal(err)
	}
	if r.Stage != 1 {
		t.Fatalf("stage %d after the same promote twice, want 1", r.Stage+1)
	}
}

// runRelease drives a whole release with the given ports until it ends or
// the run fails.
func newRunner(plan *rollout.Plan, st rollout.Store, w *world, clk rollout.Clock, metrics rollout.Metrics, inbox rollout.Inbox) *rollout.Runner {
	return &rollout.Runner{
		Machine: &rollout.Machine{Plan: plan, Render: textRenderer{}},
		Metrics: metrics, Alerts: noAlerts{}, Traffic: w, Notifier: w, Evidence: w,
		Store: st, Clock: clk, Inbox: inbox,
	}
}

// shortPlan is the default plan with minutes instead of quarter hours, so a
// whole release is a few dozen ticks.
func shortPlan() *rollout.Plan {
	p := config.Default()
	for i := range p.Stages {
		p.Stages[i].Dwell = 2 * time.Minute
	}
	p.Hold = time.Minute
	p.FirstNight.Cadence = []rollout.Cadence{{Until: 2 * time.Minute, Every: time.Minute}, {Until: 4 * time.Minute, Every: 2 * time.Minute}}
	return &p
}

func healthy(plan *rollout.Plan) scriptedMetrics {
	return scriptedMetrics{plan: plan, value: func(signal string, baseline bool, at time.Time) (float64, error) {
		if baseline {
			return cspBaseline, nil
		}
		return runbookExample[0][signal], nil
	}}
}

func TestWholeReleaseCompletes(t *testing.T) {
	plan := shortPlan()
	st, w := newMemStore(), newWorld()
	clk := clock.NewFake(t0)
	rn := newRunner(plan, st, w, clk, healthy(plan), scriptedIC{store: st, user: "alice"})
	ctx := context.Background()
	if _, err := rn.Start(ctx, "rel", "v1.4.0", "alice", time.Time{}); err != nil {
		t.Fatal(err)
	}
	r, err := rn.Run(ctx, "rel")
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase != rollout.PhaseComplete {
		t.Fatalf("phase %s, want complete", r.Phase)
	}
	if fmt.Sprint(w.changes) != "[1 5 25 50 100]" {
		t.Errorf("weights %v, want the five stages", w.changes)
	}
	for _, step := range []rollout.StepName{rollout.StepFreeze, rollout.StepPreflight, rollout.StepGreenButton} {
		rec, ok := r.StepRecord(step)
		if !ok || rec.Status != rollout.GateSkipped {
			t.Errorf("step %s: %+v, want recorded as skipped (no gate configured)", step, rec)
		}
	}
	for _, f := range []string{"rollout_stage_1.txt", "rollout_stage_100.txt", "summary_stage_25.txt", "baseline_v1.4.0.prom", "release_oneliner.txt", "mini_rca_v1.4.0.md", "warroom_log.txt"} {
		if _, ok := w.files[f]; !ok {
			t.Errorf("evidence %s missing; have %v", f, w.fileNames())
		}
	}
	if n := r.Snapshots; n != 3 {
		t.Errorf("first-night snapshots %d, want 3", n)
	}
}

// TestScheduledTimeline: with a T-0, each step runs at its T-minus offset
// and stage 1 starts at T-0, after the GO.
func TestScheduledTimeline(t *testing.T) {
	plan := shortPlan()
	st, w := newMemStore(), newWorld()
	start := t0.Add(-45 * time.Minute)
	clk := clock.NewFake(start)
	rn := newRunner(plan, st, w, clk, healthy(plan), scriptedIC{store: st, user: "alice", waitDue: true})
	ctx := context.Background()
	if _, err := rn.Start(ctx, "rel", "v1.4.0", "alice", t0); err != nil {
		t.Fatal(err)
	}
	r, err := rn.Run(ctx, "rel")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range plan.Timeline {
		rec, ok := r.StepRecord(s.Name)
		if !ok {
			t.Fatalf("step %s never ran", s.Name)
		}
		if s.Name == rollout.StepRedTeam || s.Name == rollout.StepGoNoGo {
			continue // recorded when the person acted
		}
		if due := t0.Add(s.Offset); rec.At.Before(due) || rec.At.After(due.Add(plan.Tick)) {
			t.Errorf("step %s ran at %s, due %s", s.Name, rec.At.Format("15:04:05"), due.Format("15:04:05"))
		}
	}
	first := r.Rows[0]
	if first.Stage != 1 || first.At.Before(t0) {
		t.Errorf("first stage row at %s (stage %d), want at or after T-0", first.At, first.Stage)
	}
	// The people's steps are announced once each, when they come due, and
	// every step's announcement says which step and how it ended.
	due := map[rollout.StepName][]time.Time{}
	steps := map[rollout.StepName]rollout.GateStatus{}
	for _, key := range w.order {
		ev := w.sent[key]
		switch ev.Kind {
		case rollout.EventDue:
			due[ev.Step] = append(due[ev.Step], ev.At)
		case rollout.EventPhase:
			if ev.Step != "" {
				steps[ev.Step] = ev.Status
			}
		case rollout.EventCommand:
			if ev.Command == "" || ev.User != "alice" {
				t.Errorf("command event %q carries command %q by %q, want its kind by alice", ev.Text, ev.Command, ev.User)
			}
		}
		if ev.IC != "alice" {
			t.Errorf("event %s carries IC %q, want alice", key, ev.IC)
		}
	}
	for _, name := range []rollout.StepName{rollout.StepRedTeam, rollout.StepGoNoGo} {
		off, _ := plan.StepAt(name)
		if got := due[name]; len(got) != 1 || got[0].Before(t0.Add(off)) {
			t.Errorf("due announcements of %s: %v, want one at or after %s", name, got, t0.Add(off).Format("15:04:05"))
		}
	}
	if steps[rollout.StepFreeze] != rollout.GateSkipped || steps[rollout.StepGoNoGo] != rollout.GatePassed {
		t.Errorf("step events carry statuses %v, want freeze skipped and go_nogo passed", steps)
	}
}

// TestResumeAtEveryStop stops the process at every operation that touches
// the world — every save and every side effect, before and after it takes
// effect — then resumes from the store with a new process. Each resumed run
// must end where the uninterrupted one ends, with the same weight changes,
// the same messages and evidence, and no traffic change repeated.
func TestResumeAtEveryStop(t *testing.T) {
	plan := shortPlan()
	plan.Tick = time.Minute // fewer ticks, same transitions
	breach := scriptedMetrics{plan: plan, value: func(signal string, baseline bool, at time.Time) (float64, error) {
		if baseline {
			return cspBaseline, nil
		}
		if signal == "api_p95" && at.After(t0.Add(5*time.Minute)) {
			return 0.350, nil
		}
		return runbookExample[0][signal], nil
	}}
	scenarios := []struct {
		name    string
		metrics rollout.Metrics
		at      time.Time // T-0; zero runs the steps back to back
		want    rollout.Phase
	}{
		{"complete", healthy(plan), time.Time{}, rollout.PhaseComplete},
		{"rollback", breach, time.Time{}, rollout.PhaseRolledBack},
		{"scheduled", healthy(plan), t0.Add(35 * time.Minute), rollout.PhaseComplete},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			resumeAtEveryStop(t, plan, sc.metrics, sc.at, sc.want)
		})
	}
}

func resumeAtEveryStop(t *testing.T, plan *rollout.Plan, metrics rollout.Metrics, at time.Time, want rollout.Phase) {
	ctx := context.Background()
	// attempt runs fn, turning the fakes' crash panic into errCrash.
	attempt := func(fn func() error) (err error) {
		defer func() {
			if p := recover(); p != nil {
				if p != errCrash {
					panic(p)
				}
				err = errCrash
			}
		}()
		return fn()
	}
	run := func(c *crasher) (*rollout.Release, *world, error) {
		st, w := newMemStore(), newWorld()
		st.crash, w.crash, w.store = c, c, st
		clk := clock.NewFake(t0)
		ic := scriptedIC{store: st, user: "alice"}
		var r *rollout.Release
		err := attempt(func() error {
			rn := newRunner(plan, st, w, clk, metrics, ic)
			if _, err := rn.Start(ctx, "rel", "v1.4.0", "alice", at); err != nil {
				return err
			}
			var err error
			r, err = rn.Run(ctx, "rel")
			return err
		})
		if err == nil {
			return r, w, nil
		}
		if !errors.Is(err, errCrash) {
			return nil, w, err
		}
		// A new process: new runner and machine, same store and world.
		st.crash, w.crash = nil, nil
		rn := newRunner(plan, st, w, clk, metrics, ic)
		if _, lerr := st.Load(ctx, "rel"); errors.Is(lerr, rollout.ErrNotFound) {
			// Stopped before the release was first saved: start it again.
			if _, err := rn.Start(ctx, "rel", "v1.4.0", "alice", at); err != nil {
				return nil, w, err
			}
		}
		r, err = rn.Run(ctx, "rel")
		return r, w, err
	}
	ref, refWorld, err := run(nil)
	if err != nil {
		t.Fatal(err)
	}
	if ref.Phase != want {
		t.Fatalf("uninterrupted run ended %s, want %s", ref.Phase, want)
	}
	if len(refWorld.unrecorded) > 0 {
		t.Fatalf("side effects carried out before they were persisted: %v", refWorld.unrecorded)
	}
	total := &crasher{}
	if _, _, err := run(total); err != nil {
		t.Fatal(err)
	}
	if total.ops < 50 {
		t.Fatalf("only %d operations in a whole release; the test would prove little", total.ops)
	}
	for at := 1; at <= total.ops; at++ {
		for _, before := range []bool{true, false} {
			r, w, err := run(&crasher{at: at, before: before})
			name := fmt.Sprintf("stop at op %d/%d (before=%v)", at, total.ops, before)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if r.Phase != ref.Phase || r.Stage != ref.Stage || len(r.Rows) != len(ref.Rows) || r.Snapshots != ref.Snapshots {
				t.Fatalf("%s: ended %s stage %d rows %d, want %s stage %d rows %d", name, r.Phase, r.Stage, len(r.Rows), ref.Phase, ref.Stage, len(ref.Rows))
			}
			if fmt.Sprint(w.changes) != fmt.Sprint(refWorld.changes) {
				t.Fatalf("%s: weight changes %v, want %v", name, w.changes, refWorld.changes)
			}
			if len(w.sent) != len(refWorld.sent) {
				t.Fatalf("%s: %d messages, want %d", name, len(w.sent), len(refWorld.sent))
			}
			for k, ev := range refWorld.sent {
				if got, ok := w.sent[k]; !ok || got.Text != ev.Text {
					t.Fatalf("%s: message %s = %q, want %q", name, k, got.Text, ev.Text)
				}
			}
			if len(w.unrecorded) > 0 {
				t.Fatalf("%s: side effects carried out before they were persisted: %v", name, w.unrecorded)
			}
			if w.repeats > 1 {
				t.Fatalf("%s: %d messages delivered again; at most the one in flight may be", name, w.repeats)
			}
			if fmt.Sprint(w.fileNames()) != fmt.Sprint(refWorld.fileNames()) {
				t.Fatalf("%s: evidence %v, want %v", name, w.fileNames(), refWorld.fileNames())
			}
			for f, data := range refWorld.files {
				if string(w.files[f]) != string(data) {
					t.Fatalf("%s: evidence %s differs:\n%s\nwant\n%s", name, f, w.files[f], data)
				}
			}
		}
	}
}

// TestRecordedBaselineAt100: at 100% the stable track has no traffic, so a
// relative signal falls back to the last live baseline of the release.
func TestRecordedBaselineAt100(t *testing.T) {
	plan := config.Default()
	m := &rollout.Machine{Plan: &plan, Render: textRenderer{}}
	r := stageRelease(m, 3)
	at := t0.Add(plan.Tick)
	m.Tick(r, readingsAt(&plan, at, runbookExample[3]), nil, nil, at)
	r.Phase, r.Stage, r.PhaseStarted = rollout.PhaseStage, 4, at
	for i, tc := range []struct {
		csp  float64
		want rollout.Verdict
	}{{0.0218, rollout.Pass}, {0.0223, rollout.Breach}} {
		at := at.Add(time.Duration(i+1) * plan.Tick)
		rds := readingsAt(&plan, at, with(runbookExample[4], "csp_violations", tc.csp))
		for k := range rds {
			if rds[k].Signal == "csp_violations" {
				rds[k].Baseline, rds[k].BaselineErr = 0, rollout.ErrNoValues
			}
		}
		m.Tick(r, rds, nil, nil, at)
		got, _ := r.Rows[len(r.Rows)-1].Reading("csp_violations")
		if got.Verdict != tc.want || !got.BaselineRecorded || got.Baseline == nil || *got.Baseline != cspBaseline {
			t.Errorf("csp %.4f at 100%%: %s (recorded=%v baseline=%v), want %s against the recorded %.3f", tc.csp, got.Verdict, got.BaselineRecorded, got.Baseline, tc.want, cspBaseline)
		}
	}
}

// TestRunbookExampleTable: the runbook's example war-room table, each stage
// read for its whole dwell, is Proceed at every stage.
func TestRunbookExampleTable(t *testing.T) {
	plan := config.Default()
	m := &rollout.Machine{Plan: &plan, Render: textRenderer{}}
	r := stageRelease(m, 0)
	at := t0
	for stage, vals := range runbookExample {
		if r.Stage != stage || r.Phase != rollout.PhaseStage {
			t.Fatalf("at stage %d: release in %s stage %d", stage+1, r.Phase, r.Stage+1)
		}
		var d rollout.Decision
		for d.Kind != rollout.Proceed {
			at = at.Add(plan.Tick)
			if at.Sub(r.PhaseStarted) > plan.Stages[stage].Dwell+plan.Tick {
				t.Fatalf("stage %d not Proceed after its dwell: %s (%s)", stage+1, d.Kind, d.Reason)
			}
			d = m.Tick(r, readingsAt(&plan, at, vals), nil, nil, at)
			if d.Kind != rollout.Continue && d.Kind != rollout.Proceed {
				t.Fatalf("stage %d at %s: %s (%s)", stage+1, at.Format("15:04:05"), d.Kind, d.Reason)
			}
		}
		if stage < len(runbookExample)-1 {
			if err := m.Apply(r, rollout.Command{Kind: rollout.CmdPromote, User: "alice"}, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	if r.Phase != rollout.PhaseFirstNight {
		t.Fatalf("after stage 5: %s, want first night", r.Phase)
	}
}

// TestReconcileWeight: a process that restarts finds the router at another
// weight than the release records (a crash between persisting and
// patching, or a person's hand) and sets it back before anything else.
func TestReconcileWeight(t *testing.T) {
	plan := shortPlan()
	st, w := newMemStore(), newWorld()
	clk := clock.NewFake(t0)
	ctx := context.Background()
	m := &rollout.Machine{Plan: plan, Render: textRenderer{}}
	r := stageRelease(m, 2) // 25 %
	r.ID = "rel"
	if err := st.Save(ctx, r); err != nil {
		t.Fatal(err)
	}
	w.weight = 100
	rn := newRunner(plan, st, w, clk, healthy(plan), scriptedIC{store: st, user: "alice"})
	got, err := rn.Run(ctx, "rel")
	if err != nil {
		t.Fatal(err)
	}
	if len(w.changes) == 0 || w.changes[0] != 25 {
		t.Fatalf("weight changes %v: the first must restore 25", w.changes)
	}
	var logged bool
	for _, e := range got.Log {
		logged = logged || strings.Contains(e.Text, "router weight was 100%, release records 25%")
	}
	if !logged {
		t.Error("the reconciliation is not in the war-room log")
	}
	if got.Phase != rollout.PhaseComplete {
		t.Errorf("phase %s after resuming, want complete", got.Phase)
	}
}

// TestNoProceedAfterGaps: the dwell counts from the last tick that was not
// all Pass, so a stage of NoData ticks followed by one good one does not
// proceed.
func TestNoProceedAfterGaps(t *testing.T) {
	plan := config.Default()
	m := &rollout.Machine{Plan: &plan, Render: textRenderer{}}
	r := stageRelease(m, 0)
	at := t0
	for range 29 {
		at = at.Add(plan.Tick)
		m.Tick(r, readingsAt(&plan, at, without(runbookExample[0], "ws_staleness")), nil, nil, at)
	}
	at = at.Add(plan.Tick)
	d := m.Tick(r, readingsAt(&plan, at, runbookExample[0]), nil, nil, at)
	if d.Kind != rollout.Continue || !strings.Contains(d.Reason, "counted from") {
		t.Fatalf("after 29 NoData ticks and one Pass: %s (%s), want Continue counting the dwell anew", d.Kind, d.Reason)
	}
	for range 29 {
		at = at.Add(plan.Tick)
		d = m.Tick(r, readingsAt(&plan, at, runbookExample[0]), nil, nil, at)
	}
	if d.Kind != rollout.Proceed {
		t.Fatalf("after a whole clean dwell: %s (%s), want Proceed", d.Kind, d.Reason)
	}
}

// TestManualHoldOutlastsTrendHold: a trend hold never shortens the IC's.
func TestManualHoldOutlastsTrendHold(t *testing.T) {
	plan := config.Default()
	plan.AutoPromote = true
	m := &rollout.Machine{Plan: &plan, Render: textRenderer{}}
	r := stageRelease(m, 0)
	if err := m.Apply(r, rollout.Command{Kind: rollout.CmdHold, User: "alice", Duration: 3 * time.Hour, Reason: "waiting for the DBA"}, t0); err != nil {
		t.Fatal(err)
	}
	manualEnd := t0.Add(3 * time.Hour)
	at := t0
	for k := range 12 { // a climb: a trend hold starts
		at = at.Add(plan.Tick)
		m.Tick(r, readingsAt(&plan, at, with(runbookExample[0], "api_p95", 0.120+0.006*float64(k))), nil, nil, at)
	}
	if !r.HoldUntil.Equal(manualEnd) || !strings.Contains(r.HoldReason, "waiting for the DBA") || !strings.Contains(r.HoldReason, "trend") {
		t.Fatalf("hold until %s (%s), want the IC's %s with both reasons", r.HoldUntil, r.HoldReason, manualEnd)
	}
	for at.Add(plan.Tick).Before(manualEnd) {
		at = at.Add(plan.Tick)
		if d := m.Tick(r, readingsAt(&plan, at, runbookExample[0]), nil, nil, at); d.Kind == rollout.Proceed || r.Stage != 0 {
			t.Fatalf("promoted at %s during the IC's hold", at.Format("15:04"))
		}
	}
}

// TestRollbackNotBlocked: a breach rolls back to weight 0 even when what
// surrounds the rollback fails: with chat down the weight still goes to 0
// first and the release ends rolled back, the messages set aside; when the
// router cannot read its share (a route edited by hand mid-incident), 0 is
// set anyway instead of failing on the reading it would replace.
func TestRollbackNotBlocked(t *testing.T) {
	breachAt := t0.Add(3 * time.Minute)
	for _, tc := range []struct {
		name string
		// arrange makes something fail from the breach on.
		arrange func(rn *rollout.Runner, w *world, clk *clock.Fake)
		check   func(t *testing.T, r *rollout.Release, w *world)
	}{
		{name: "chat down", arrange: func(rn *rollout.Runner, w *world, clk *clock.Fake) {
			rn.Notifier = &failingNotifier{after: breachAt, clk: clk}
		}, check: func(t *testing.T, r *rollout.Release, w *world) {
			if len(r.Undelivered) == 0 {
				t.Error("the failed announcements were dropped instead of set aside")
			}
			if _, ok := w.files["release_oneliner.txt"]; !ok {
				t.Error("evidence was not written while chat was down")
			}
		}},
		{name: "weight unreadable", arrange: func(rn *rollout.Runner, w *world, clk *clock.Fake) {
			w.unreadableAfter, w.clk = breachAt, clk
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := shortPlan()
			st, w := newMemStore(), newWorld()
			clk := clock.NewFake(t0)
			breach := scriptedMetrics{plan: plan, value: func(signal string, baseline bool, at time.Time) (float64, error) {
				if baseline {
					return cspBaseline, nil
				}
				if signal == "api_p95" && at.After(breachAt) {
					return 0.450, nil
				}
				return runbookExample[0][signal], nil
			}}
			rn := newRunner(plan, st, w, clk, breach, scriptedIC{store: st, user: "alice"})
			tc.arrange(rn, w, clk)
			// A rollback stuck retrying would run forever: bound the run
			// (it takes milliseconds) so that it fails instead.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := rn.Start(ctx, "rel", "v1.4.0", "alice", time.Time{}); err != nil {
				t.Fatal(err)
			}
			r, err := rn.Run(ctx, "rel")
			if err != nil {
				t.Fatal(err)
			}
			if r.Phase != rollout.PhaseRolledBack || w.weight != 0 {
				t.Fatalf("phase %s, router weight %d; want rolled back at 0", r.Phase, w.weight)
			}
			if tc.check != nil {
				tc.check(t, r, w)
			}
		})
	}
}

// failingNotifier fails every message from a point in time on.
type failingNotifier struct {
	after time.Time
	clk   rollout.Clock
}

func (f *failingNotifier) Notify(ctx context.Context, key string, ev rollout.Event) error {
	if f.clk.Now().After(f.after) {
		return errors.New("slack: 503 service unavailable")
	}
	return nil
}

// TestFirstNight: the default cadence, a breach at night rolls back, and
// the night does not close on a reading that is not clean.
func TestFirstNight(t *testing.T) {
	if n := len(config.Default().FirstNight.Snapshots()); n != 34 {
		t.Errorf("default first night has %d snapshots, want 34 (8 at 15 min, 8 at 30 min, 18 hourly)", n)
	}
	plan := shortPlan()
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		value func(signal string, at time.Time) (float64, bool)
		phase rollout.Phase
		paged bool
	}{
		{name: "breach at night rolls back", value: func(signal string, at time.Time) (float64, bool) {
			if signal == "error_5xx" && at.After(t0.Add(12*time.Minute)) {
				return 0.05, true
			}
			return runbookExample[0][signal], true
		}, phase: rollout.PhaseRolledBack},
		{name: "no data at the last snapshot delays the close", value: func(signal string, at time.Time) (float64, bool) {
			// The night begins at 10:10 and its last snapshot is due at 10:14.
			if signal == "gc_pause_avg" && !at.Before(t0.Add(13*time.Minute+30*time.Second)) && at.Before(t0.Add(16*time.Minute)) {
				return 0, false
			}
			return runbookExample[0][signal], true
		}, phase: rollout.PhaseComplete, paged: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, w := newMemStore(), newWorld()
			clk := clock.NewFake(t0)
			metrics := scriptedMetrics{plan: plan, value: func(signal string, baseline bool, at time.Time) (float64, error) {
				if baseline {
					return cspBaseline, nil
				}
				v, ok := tc.value(signal, at)
				if !ok {
					return 0, rollout.ErrNoValues
				}
				return v, nil
			}}
			rn := newRunner(plan, st, w, clk, metrics, scriptedIC{store: st, user: "alice"})
			if _, err := rn.Start(ctx, "rel", "v1.4.0", "alice", time.Time{}); err != nil {
				t.Fatal(err)
			}
			r, err := rn.Run(ctx, "rel")
			if err != nil {
				t.Fatal(err)
			}
			if r.Phase != tc.phase {
				t.Fatalf("phase %s, want %s", r.Phase, tc.phase)
			}
			var paged bool
			for _, e := range r.Log {
				paged = paged || strings.Contains(e.Text, "first night cannot close")
			}
			if paged != tc.paged {
				t.Errorf("paged about closing: %v, want %v", paged, tc.paged)
			}
			if tc.phase == rollout.PhaseComplete && r.Ended.Before(t0.Add(16*time.Minute)) {
				t.Errorf("closed at %s, before the data came back", r.Ended.Format("15:04:05"))
			}
		})
	}
}

func TestResumeRefusesChangedPlan(t *testing.T) {
	plan := shortPlan()
	st, w := newMemStore(), newWorld()
	ctx := context.Background()
	rn := newRunner(plan, st, w, clock.NewFake(t0), healthy(plan), nil)
	if _, err := rn.Start(ctx, "rel", "v1.4.0", "alice", time.Time{}); err != nil {
		t.Fatal(err)
	}
	other := *plan
	other.Stages = other.Stages[:3]
	rn2 := newRunner(&other, st, w, clock.NewFake(t0), healthy(&other), nil)
	if _, err := rn2.Run(ctx, "rel"); !errors.Is(err, rollout.ErrPlanChanged) {
		t.Fatalf("resume with 3 stages instead of 5: %v, want ErrPlanChanged", err)
	}
}

func TestStaleCommandRefused(t *testing.T) {
	plan := config.Default()
	m := &rollout.Machine{Plan: &plan, Render: textRenderer{}}
	r := stageRelease(m, 0)
	r.Last = rollout.Decision{Kind: rollout.Proceed}
	err := m.Apply(r, rollout.Command{ID: "x", Kind: rollout.CmdPromote, User: "alice", At: t0}, t0.Add(3*time.Hour))
	var re *rollout.RefusedError
	if !errors.As(err, &re) || !strings.Contains(re.Why, "more than") || r.Stage != 0 {
		t.Fatalf("a promote queued 3 hours ago: %v, stage %d; want refused as stale", err, r.Stage+1)
	}
}

// TestPushedTrigger: a trigger pushed by Alertmanager rolls back at once;
// only the webhook may push one, and only while traffic is on the canary.
func TestPushedTrigger(t *testing.T) {
	plan := config.Default()
	m := &rollout.Machine{Plan: &plan, Render: textRenderer{}}
	r := stageRelease(m, 2)
	if err := m.Apply(r, rollout.Command{Kind: rollout.CmdTrigger, User: "mallory", Reason: "CanaryP95LatencyCritical"}, t0); err == nil {
		t.Fatal("a trigger from a person was applied")
	}
	if err := m.Apply(r, rollout.Command{Kind: rollout.CmdTrigger, User: rollout.TriggerUser, Reason: "CanaryP95LatencyCritical"}, t0); err != nil {
		t.Fatal(err)
	}
	if r.Phase != rollout.PhaseRolledBack || r.Weight != 0 || !strings.Contains(r.Rollback.Reason, "CanaryP95LatencyCritical") {
		t.Fatalf("after a pushed trigger: %s weight %d (%+v)", r.Phase, r.Weight, r.Rollback)
	}
	if r.Pending[0].Kind != rollout.EffectWeight || r.Pending[0].Weight != 0 {
		t.Errorf("the first pending effect is %+v, want weight 0", r.Pending[0])
	}
}

// cancellingGate stands for a step that is running when the process stops.
type cancellingGate struct{ cancel context.CancelFunc }

func (g cancellingGate) Run(ctx context.Context, r *rollout.Release) (rollout.GateResult, error) {
	g.cancel()
	return rollout.GateResult{Status: rollout.GateFailed, Detail: "interrupted"}, nil
}

// TestStopDuringStepIsNotNoGo: a step cut short by a stop runs again on
// resume instead of aborting the release.
func TestStopDuringStepIsNotNoGo(t *testing.T) {
	plan := shortPlan()
	st, w := newMemStore(), newWorld()
	clk := clock.NewFake(t0)
	ctx, cancel := context.WithCancel(context.Background())
	rn := newRunner(plan, st, w, clk, healthy(plan), scriptedIC{store: st, user: "alice"})
	rn.Gates = map[rollout.StepName]rollout.Gate{rollout.StepPreflight: cancellingGate{cancel}}
	if _, err := rn.Start(ctx, "rel", "v1.4.0", "alice", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rn.Run(ctx, "rel"); !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v, want context.Canceled", err)
	}
	r, _ := st.Load(context.Background(), "rel")
	if r.Phase != rollout.PhasePreflight {
		t.Fatalf("after a stop during preflight the release is %s (%s), want still at preflight", r.Phase, r.AbortReason)
	}
	rn2 := newRunner(plan, st, w, clk, healthy(plan), scriptedIC{store: st, user: "alice"})
	if r, err := rn2.Run(context.Background(), "rel"); err != nil || r.Phase != rollout.PhaseComplete {
		t.Fatalf("resumed: %v %v, want complete", r.Phase, err)
	}
}
