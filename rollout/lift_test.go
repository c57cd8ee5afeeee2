package rollout_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/rollout"
)

// countingGate records how often it ran.
type countingGate struct {
	runs int
	err  error
}

func (g *countingGate) Run(ctx context.Context, r *rollout.Release) (rollout.GateResult, error) {
	g.runs++
	if g.err != nil {
		return rollout.GateResult{}, g.err
	}
	return rollout.GateResult{Status: rollout.GatePassed, Detail: "lifted"}, nil
}

// TestLiftFreeze: the freeze is lifted once when the first night ends
// cleanly, not again on a resume, never after a rollback, and a failed lift
// is logged for the IC instead of failing the finished release.
func TestLiftFreeze(t *testing.T) {
	breachAt3 := func(plan *rollout.Plan) rollout.Metrics {
		return scriptedMetrics{plan: plan, value: func(signal string, baseline bool, at time.Time) (float64, error) {
			if baseline {
				return cspBaseline, nil
			}
			if signal == "api_p95" && at.After(t0.Add(3*time.Minute)) {
				return 0.450, nil
			}
			return runbookExample[0][signal], nil
		}}
	}
	tests := []struct {
		name      string
		metrics   func(*rollout.Plan) rollout.Metrics
		gateErr   error
		wantPhase rollout.Phase
		wantRuns  int
		wantLog   string
	}{
		{"clean release lifts", func(p *rollout.Plan) rollout.Metrics { return healthy(p) }, nil, rollout.PhaseComplete, 1, "change freeze lifted"},
		{"rollback keeps the freeze", breachAt3, nil, rollout.PhaseRolledBack, 0, ""},
		{"failed lift is logged", func(p *rollout.Plan) rollout.Metrics { return healthy(p) }, errors.New("github: 502"), rollout.PhaseComplete, 1, "change freeze NOT lifted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := shortPlan()
			st, w := newMemStore(), newWorld()
			clk := clock.NewFake(t0)
			rn := newRunner(plan, st, w, clk, tt.metrics(plan), scriptedIC{store: st, user: "alice"})
			lift := &countingGate{err: tt.gateErr}
			rn.Gates = map[rollout.StepName]rollout.Gate{rollout.StepLiftFreeze: lift}
			ctx := context.Background()
			if _, err := rn.Start(ctx, "rel", "v1.4.0", "alice", time.Time{}); err != nil {
				t.Fatal(err)
			}
			r, err := rn.Run(ctx, "rel")
			if err != nil {
				t.Fatal(err)
			}
			if r.Phase != tt.wantPhase {
				t.Fatalf("phase %s, want %s", r.Phase, tt.wantPhase)
			}
			// A second process resuming the finished release lifts nothing.
			if _, err := rn.Run(ctx, "rel"); err != nil {
				t.Fatal(err)
			}
			if lift.runs != tt.wantRuns {
				t.Errorf("lift ran %d times, want %d", lift.runs, tt.wantRuns)
			}
			rec, ok := r.StepRecord(rollout.StepLiftFreeze)
			if ok != (tt.wantRuns > 0) {
				t.Errorf("lift step recorded = %v (%+v), want %v", ok, rec, tt.wantRuns > 0)
			}
			if tt.wantLog != "" && !strings.Contains(string(w.files["warroom_log.txt"]), tt.wantLog) {
				t.Errorf("war-room log lacks %q:\n%s", tt.wantLog, w.files["warroom_log.txt"])
			}
		})
	}
}

// TestNote: a front end's note lands in the war-room log under its kind and
// changes nothing else; a repeat of the same ID is recorded once.
func TestNote(t *testing.T) {
	plan := shortPlan()
	m := &rollout.Machine{Plan: plan, Render: textRenderer{}}
	r := m.New("rel", "v1.4.0", "alice", time.Time{}, t0)
	phase, ic := r.Phase, r.IC
	note := rollout.Command{ID: "n1", Kind: rollout.CmdNote, User: "bob", Target: string(rollout.LogRefused), Reason: "promote refused in Slack: only the IC"}
	for range 2 {
		if err := m.Apply(r, note, t0); err != nil {
			t.Fatalf("Apply(note): %v", err)
		}
	}
	var got []rollout.LogEntry
	for _, e := range r.Log {
		if e.User == "bob" {
			got = append(got, e)
		}
	}
	if len(got) != 1 || got[0].Kind != rollout.LogRefused || got[0].Text != note.Reason {
		t.Fatalf("log entries by bob: %+v, want one refused line with the note's text", got)
	}
	if r.Phase != phase || r.IC != ic {
		t.Errorf("a note changed the release: phase %s→%s, IC %s→%s", phase, r.Phase, ic, r.IC)
	}
}

// hangingMetrics answers like m, but the first query at or after hangAt
// takes gap of the clock's time: a Prometheus that hung for a while.
type hangingMetrics struct {
	m      rollout.Metrics
	clk    *clock.Fake
	hangAt time.Time
	gap    time.Duration
	hung   bool
}

func (h *hangingMetrics) Query(ctx context.Context, q string, at time.Time) (rollout.Sample, error) {
	if !h.hung && !at.Before(h.hangAt) {
		h.hung = true
		h.clk.Advance(h.gap)
	}
	return h.m.Query(ctx, q, at)
}

// TestDwellRestartsAfterGap: a stage whose readings stopped for longer than
// two ticks does not count the silence as clean dwell; it proceeds only a
// whole dwell after readings resume.
func TestDwellRestartsAfterGap(t *testing.T) {
	plan := shortPlan()
	st, w := newMemStore(), newWorld()
	clk := clock.NewFake(t0)
	ctx := context.Background()
	rn := newRunner(plan, st, w, clk, healthy(plan), scriptedIC{store: st, user: "alice"})
	if _, err := rn.Start(ctx, "rel", "v1.4.0", "alice", time.Time{}); err != nil {
		t.Fatal(err)
	}
	// Stage 1 starts at once (no T-0); hang 90 s into it for 5 minutes.
	gap := 5 * time.Minute
	h := &hangingMetrics{m: healthy(plan), clk: clk, hangAt: t0.Add(90 * time.Second), gap: gap}
	rn.Metrics = h
	r, err := rn.Run(ctx, "rel")
	if err != nil {
		t.Fatal(err)
	}
	if !h.hung || len(r.StageStarts) < 2 {
		t.Fatalf("hung=%v, stage starts %v: the scenario did not play", h.hung, r.StageStarts)
	}
	resumed := h.hangAt.Add(gap)
	if got, earliest := r.StageStarts[1], resumed.Add(plan.Stages[0].Dwell); got.Before(earliest) {
		t.Errorf("stage 2 started at %s, %s after readings resumed; want a whole dwell (%s) of readings first",
			got.Format("15:04:05"), got.Sub(resumed), plan.Stages[0].Dwell)
	}
}

// recordingGate records each release it was run for.
type recordingGate struct {
	fail    bool
	phases  []rollout.Phase
	goByIC  []string
	reasons []string
}

func (g *recordingGate) Run(ctx context.Context, r *rollout.Release) (rollout.GateResult, error) {
	g.phases = append(g.phases, r.Phase)
	if rec, ok := r.StepRecord(rollout.StepGoNoGo); ok {
		g.goByIC = append(g.goByIC, rec.By)
	}
	g.reasons = append(g.reasons, r.AbortReason)
	if g.fail {
		return rollout.GateResult{Status: rollout.GateFailed, Detail: "disk full"}, nil
	}
	return rollout.GateResult{Status: rollout.GatePassed, Detail: "recorded"}, nil
}

// TestGoNoGoRecorded: a go/no-go gate records the IC's GO before stage 1,
// records a NO-GO once when the release is aborted before its GO, and a GO
// that cannot be recorded moves no traffic.
func TestGoNoGoRecorded(t *testing.T) {
	tests := []struct {
		name      string
		fail      bool
		abort     bool // a failing preflight aborts before the GO
		wantPhase rollout.Phase
		wantRuns  int
		wantGoBy  string
	}{
		{"GO recorded, release proceeds", false, false, rollout.PhaseComplete, 1, "alice"},
		{"GO not recorded, no traffic", true, false, rollout.PhaseAborted, 1, "alice"},
		{"NO-GO recorded once", false, true, rollout.PhaseAborted, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := shortPlan()
			st, w := newMemStore(), newWorld()
			clk := clock.NewFake(t0)
			rn := newRunner(plan, st, w, clk, healthy(plan), scriptedIC{store: st, user: "alice"})
			gate := &recordingGate{fail: tt.fail}
			rn.Gates = map[rollout.StepName]rollout.Gate{rollout.StepGoNoGo: gate}
			if tt.abort {
				rn.Gates[rollout.StepPreflight] = &countingGate{err: errors.New("db unreachable")}
			}
			ctx := context.Background()
			if _, err := rn.Start(ctx, "rel", "v1.4.0", "alice", time.Time{}); err != nil {
				t.Fatal(err)
			}
			r, err := rn.Run(ctx, "rel")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rn.Run(ctx, "rel"); err != nil { // a resume records nothing twice
				t.Fatal(err)
			}
			if r.Phase != tt.wantPhase {
				t.Fatalf("phase %s, want %s (abort: %s)", r.Phase, tt.wantPhase, r.AbortReason)
			}
			if len(gate.phases) != tt.wantRuns {
				t.Fatalf("go/no-go gate ran %d times (%v), want %d", len(gate.phases), gate.phases, tt.wantRuns)
			}
			if tt.wantGoBy != "" && (len(gate.goByIC) != 1 || gate.goByIC[0] != tt.wantGoBy) {
				t.Errorf("gate saw the GO by %v, want %s", gate.goByIC, tt.wantGoBy)
			}
			if tt.abort && !strings.Contains(gate.reasons[0], "preflight") {
				t.Errorf("the NO-GO gate saw abort reason %q, want the preflight failure", gate.reasons[0])
			}
			if tt.wantPhase == rollout.PhaseAborted && len(w.changes) > 0 {
				t.Errorf("traffic moved %v on an aborted release", w.changes)
			}
			rec, ok := r.StepRecord(rollout.StepGoNoGo)
			if tt.abort && (!ok || rec.Status != rollout.GateFailed) {
				t.Errorf("go/no-go step after a NO-GO: %+v, want recorded as failed", rec)
			}
		})
	}
}

// beatingStore records heartbeats beside a memStore.
type beatingStore struct {
	*memStore
	beats []time.Time
}

func (s *beatingStore) Heartbeat(ctx context.Context, id string, at time.Time) error {
	s.beats = append(s.beats, at)
	return nil
}

// TestStartHeartbeats: a started release shows a live engine at once, so a
// command sent right after the start is not refused for want of one.
func TestStartHeartbeats(t *testing.T) {
	plan := shortPlan()
	st := &beatingStore{memStore: newMemStore()}
	w := newWorld()
	clk := clock.NewFake(t0)
	rn := newRunner(plan, st, w, clk, healthy(plan), nil)
	if _, err := rn.Start(context.Background(), "rel", "v1.4.0", "alice", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if len(st.beats) != 1 || !st.beats[0].Equal(t0) {
		t.Errorf("heartbeats after Start: %v, want one at %s", st.beats, t0)
	}
}
