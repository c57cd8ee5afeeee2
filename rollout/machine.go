package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Machine holds the release rules. Its methods change a Release in memory
// and queue the side effects that follow in Release.Pending; the Runner
// persists the release before it carries any of them out. Machine reads no
// clock and touches nothing outside the Release.
type Machine struct {
	Plan   *Plan
	Render Renderer
}

// WaitKind says what a release waits for next.
type WaitKind string

const (
	WaitStep    WaitKind = "step"    // run a timeline step at At
	WaitTick    WaitKind = "tick"    // read the signals at At
	WaitCommand WaitKind = "command" // a person must act (review, GO)
	WaitNone    WaitKind = "none"    // terminal
)

// Wait is what a release waits for and from when.
type Wait struct {
	Kind WaitKind
	Step StepName
	At   time.Time
	Why  string
}

// New creates a release. t0 is the scheduled start of stage 1; zero runs the
// timeline's steps back to back.
func (m *Machine) New(id, version, ic string, t0, now time.Time) *Release {
	r := &Release{
		ID: id, Version: version, IC: ic, T0: t0,
		Created: now, PhaseStarted: now, PlanHash: m.Plan.Hash(),
	}
	if len(m.Plan.Timeline) == 0 {
		m.startStage(r, 0, now)
	} else {
		r.Phase = Phase(m.Plan.Timeline[0].Name)
	}
	when := "now, steps back to back"
	if !t0.IsZero() {
		when = "T-0 at " + t0.UTC().Format(time.RFC3339)
	}
	m.log(r, now, ic, LogSystem, fmt.Sprintf("release %s started by %s (IC); %s", version, ic, when))
	m.notify(r, now, EventPhase, fmt.Sprintf("Release %s scheduled: %s. IC: %s", version, when, ic), nil)
	return r
}

// stepTime is when a timeline step is due.
func (m *Machine) stepTime(r *Release, s Step) time.Time {
	if r.T0.IsZero() {
		return r.PhaseStarted
	}
	return r.T0.Add(s.Offset)
}

func (m *Machine) step(name StepName) (Step, int) {
	for i, s := range m.Plan.Timeline {
		if s.Name == name {
			return s, i
		}
	}
	return Step{}, -1
}

// Next says what the release waits for.
func (m *Machine) Next(r *Release) Wait {
	switch {
	case r.Phase.Terminal():
		return Wait{Kind: WaitNone}
	case r.Phase == PhaseStage || r.Phase == PhaseFirstNight:
		last := r.PhaseStarted
		if r.LastTick.After(last) {
			last = r.LastTick
		}
		return Wait{Kind: WaitTick, At: last.Add(m.Plan.Tick)}
	}
	s, _ := m.step(StepName(r.Phase))
	at := m.stepTime(r, s)
	switch s.Name {
	case StepRedTeam:
		if _, ok := r.StepRecord(StepRedTeam); !ok {
			return Wait{Kind: WaitCommand, Step: s.Name, At: at, Why: "the red-team review (canarybot review)"}
		}
	case StepGoNoGo:
		if _, ok := r.StepRecord(StepGoNoGo); !ok {
			return Wait{Kind: WaitCommand, Step: s.Name, At: at, Why: "the IC's GO (canarybot go)"}
		}
	}
	return Wait{Kind: WaitStep, Step: s.Name, At: at}
}

// StepDone records a timeline step's outcome and moves on. A failed step is
// a NO-GO: the release is aborted before any traffic moves.
func (m *Machine) StepDone(r *Release, name StepName, res GateResult, now time.Time) {
	if r.Phase != Phase(name) {
		return // a repeat after a restart: already recorded
	}
	rec, ran := r.StepRecord(name)
	if ran && name == StepGoNoGo && res.Status == GateFailed {
		// The GO was given but could not be recorded: no traffic moves on a
		// decision the evidence does not hold.
		m.abort(r, now, "canarybot", "NO-GO: the IC's GO could not be recorded: "+res.Detail)
		return
	}
	if !ran || (name != StepRedTeam && name != StepGoNoGo) {
		rec = StepRecord{Name: name, Status: res.Status, Detail: res.Detail, By: "canarybot", At: now}
		r.Steps = append(r.Steps, rec)
	}
	text := fmt.Sprintf("step %s: %s", name, rec.Status)
	if rec.Detail != "" {
		text += " (" + rec.Detail + ")"
	}
	m.log(r, now, rec.By, LogSystem, text)
	m.notifyEvent(r, now, Event{Kind: EventPhase, Text: text, Step: name, Status: rec.Status, Detail: rec.Detail, User: rec.By})
	if rec.Status == GateFailed {
		m.abort(r, now, "canarybot", fmt.Sprintf("NO-GO: %s failed: %s", name, rec.Detail))
		return
	}
	_, i := m.step(name)
	if i+1 < len(m.Plan.Timeline) {
		r.Phase = Phase(m.Plan.Timeline[i+1].Name)
		r.PhaseStarted = now
		return
	}
	m.startStage(r, 0, now)
}

func (m *Machine) startStage(r *Release, i int, now time.Time) {
	st := m.Plan.Stages[i]
	r.Phase, r.Stage, r.PhaseStarted = PhaseStage, i, now
	r.StageStarts = append(r.StageStarts[:min(i, len(r.StageStarts))], now)
	r.clearHolds()
	r.Holds, r.Paged, r.CleanSince = 0, false, now
	r.ErrorStreak = nil
	r.Last = Decision{}
	r.Weight = st.Weight
	m.emit(r, Effect{Kind: EffectWeight, Weight: st.Weight})
	text := fmt.Sprintf("Stage %d/%d: canary weight %d%% for %s", i+1, len(m.Plan.Stages), st.Weight, st.Dwell)
	m.log(r, now, "canarybot", LogDecision, text)
	m.notify(r, now, EventStage, text, nil)
}

// Tick judges a round of readings and decides. It is a no-op outside the
// stages and the first night.
func (m *Machine) Tick(r *Release, readings []Reading, firing []Alert, alertsErr error, now time.Time) Decision {
	if r.Phase != PhaseStage && r.Phase != PhaseFirstNight {
		return Decision{}
	}
	if !r.LastTick.IsZero() && now.Sub(r.LastTick) > 2*m.Plan.Tick {
		// Nothing was read for a while (the engine was down, or a tick hung):
		// a dwell must be clean readings, not an absence of readings.
		r.CleanSince = now
	}
	r.LastTick = now
	ms := m.judge(r, readings)
	if !allPass(ms) {
		// The dwell restarts after any reading that is not Pass: a stage
		// proceeds only on a whole dwell of clean readings.
		r.CleanSince = now
	}
	d := m.decide(r, ms, firing, alertsErr, now)
	row := Row{At: now, Phase: r.Phase, Stage: r.CurrentStage(), Weight: r.Weight, Readings: ms, Alerts: m.triggers(firing), Decision: d}
	if r.Phase == PhaseFirstNight {
		m.nightTick(r, row, now)
		return d
	}
	r.Rows = append(r.Rows, row)
	m.notify(r, now, EventRow, m.Render.TableRow(m.Plan, row), &row)
	prev := r.Last
	r.Last = d
	switch d.Kind {
	case Rollback:
		if d.Auto {
			m.rollback(r, now, "canarybot (auto)", d.Reason, d.Signals)
			return d
		}
		if prev.Kind != Rollback {
			m.page(r, now, "breach, on_breach=ask: "+d.Reason+" — roll back with `canarybot rollback` or hold")
		}
	case Hold:
		if prev.Kind != Hold || prev.Reason != d.Reason {
			m.log(r, now, "canarybot", LogDecision, "HOLD: "+d.Reason)
			m.notify(r, now, EventHold, "HOLD: "+d.Reason, nil)
		}
		if r.paging(m.Plan.MaxQueryErrors) && !r.Paged {
			r.Paged = true
			m.page(r, now, "signal queries keep failing: "+d.Reason)
		}
	}
	if !r.paging(m.Plan.MaxQueryErrors) {
		r.Paged = false // a later outage pages again
	}
	switch d.Kind {
	case Proceed:
		last := r.Stage == len(m.Plan.Stages)-1
		if m.Plan.AutoPromote || last {
			by := "canarybot (auto_promote)"
			if last {
				by = "canarybot (stage 100% dwell complete)"
			}
			m.promote(r, now, by)
		} else if prev.Kind != Proceed {
			m.log(r, now, "canarybot", LogDecision, "PROCEED recommended: waiting for the IC to promote")
			m.notify(r, now, EventPage, fmt.Sprintf("Proceed ✅ stage %d passed its dwell with every signal Pass. %s, promote when ready.", r.Stage+1, r.IC), nil)
		}
	}
	return d
}

func allPass(ms []Measurement) bool {
	for _, x := range ms {
		if x.Verdict != Pass {
			return false
		}
	}
	return true
}

func (r *Release) paging(maxErrors int) bool {
	for _, n := range r.ErrorStreak {
		if n >= maxErrors {
			return true
		}
	}
	return false
}

// judge reads each signal against its history in the current phase.
func (m *Machine) judge(r *Release, readings []Reading) []Measurement {
	ms := make([]Measurement, 0, len(m.Plan.Signals))
	if r.ErrorStreak == nil {
		r.ErrorStreak = map[string]int{}
	}
	for _, spec := range m.Plan.Signals {
		rd := Reading{Signal: spec.Name, Err: fmt.Errorf("no reading taken")}
		for _, x := range readings {
			if x.Signal == spec.Name {
				rd = x
				break
			}
		}
		var hist []Measurement
		for _, row := range r.Rows {
			if row.Phase == r.Phase && row.Stage == r.CurrentStage() && !row.At.Before(r.PhaseStarted) {
				if h, ok := row.Reading(spec.Name); ok {
					hist = append(hist, h)
				}
			}
		}
		recorded := false
		if spec.Relative {
			if _, _, ok := unusable(rd.BaselineErr, rd.Baseline); !ok {
				// At 100% the stable track serves nothing: compare with the
				// last baseline this release saw instead.
				if b, ok := r.lastBaseline(spec.Name); ok {
					rd.Baseline, rd.BaselineErr, recorded = b, nil, true
				}
			}
		}
		meas := Judge(spec, m.Plan.Trend, rd, hist)
		meas.BaselineRecorded = recorded
		if meas.Verdict == Error {
			r.ErrorStreak[spec.Name]++
		} else {
			delete(r.ErrorStreak, spec.Name)
		}
		ms = append(ms, meas)
	}
	return ms
}

// lastBaseline is the most recent live baseline recorded for a signal.
func (r *Release) lastBaseline(signal string) (float64, bool) {
	for i := len(r.Rows) - 1; i >= 0; i-- {
		if x, ok := r.Rows[i].Reading(signal); ok && x.Baseline != nil && !x.BaselineRecorded {
			return *x.Baseline, true
		}
	}
	return 0, false
}

func (m *Machine) triggers(firing []Alert) []Alert {
	var out []Alert
	for _, a := range firing {
		if m.Plan.Triggers.Matches(a) {
			out = append(out, a)
		}
	}
	return out
}

// decide applies DESIGN.md's rules, most severe first: a firing trigger or a
// breach rolls back; repeated query errors, missing data and rising trends
// hold; Proceed needs the dwell over, no hold in force and every signal Pass.
func (m *Machine) decide(r *Release, ms []Measurement, firing []Alert, alertsErr error, now time.Time) Decision {
	if trig := m.triggers(firing); len(trig) > 0 {
		var names []string
		for _, a := range trig {
			names = append(names, a.Name)
		}
		return Decision{Kind: Rollback, Auto: true, Signals: names,
			Reason: "trigger firing: " + strings.Join(names, ", ")}
	}
	by := map[Verdict][]Measurement{}
	for _, x := range ms {
		by[x.Verdict] = append(by[x.Verdict], x)
	}
	if b := by[Breach]; len(b) > 0 {
		return Decision{Kind: Rollback, Auto: m.Plan.OnBreach != BreachAsk, Signals: names(b), Reason: "breach: " + reasons(b)}
	}
	if alertsErr != nil {
		if r.ErrorStreak == nil {
			r.ErrorStreak = map[string]int{}
		}
		r.ErrorStreak["alerts"]++
	} else {
		delete(r.ErrorStreak, "alerts")
	}
	var failing []string
	for name, n := range r.ErrorStreak {
		if n >= m.Plan.MaxQueryErrors {
			failing = append(failing, name)
		}
	}
	slices.Sort(failing)
	if len(failing) > 0 {
		return Decision{Kind: Hold, Signals: failing, Reason: fmt.Sprintf("%s failed %d times in a row: %s",
			strings.Join(failing, ", "), m.Plan.MaxQueryErrors, errorText(by[Error], alertsErr))}
	}
	if nd := by[NoData]; len(nd) > 0 {
		return Decision{Kind: Hold, Signals: names(nd), Reason: "no data: " + reasons(nd)}
	}
	if rising := by[Rising]; len(rising) > 0 && r.Phase == PhaseStage {
		if !now.Before(r.TrendHoldUntil) {
			r.TrendHoldUntil = now.Add(m.Plan.Hold)
			r.TrendReason = fmt.Sprintf("trend: %s; re-evaluate at %s", reasons(rising), r.TrendHoldUntil.UTC().Format("15:04"))
			r.Holds++
			r.setHold()
		}
		return Decision{Kind: Hold, Signals: names(rising), Reason: r.HoldReason}
	}
	if e := by[Error]; len(e) > 0 || alertsErr != nil {
		return Decision{Kind: Continue, Signals: names(e), Reason: "retrying: " + errorText(e, alertsErr)}
	}
	if now.Before(r.HoldUntil) {
		return Decision{Kind: Hold, Reason: r.HoldReason}
	}
	if r.Phase == PhaseFirstNight {
		return Decision{Kind: Continue, Reason: "first night: all signals pass"}
	}
	dwell := m.Plan.Stages[r.Stage].Dwell
	if left := r.CleanSince.Add(dwell).Sub(now); left > 0 {
		why := fmt.Sprintf("all signals pass; %s of dwell left", left.Round(time.Second))
		if r.CleanSince.After(r.PhaseStarted) {
			why += fmt.Sprintf(" (counted from %s, the last tick that was not all Pass)", r.CleanSince.UTC().Format("15:04:05"))
		}
		return Decision{Kind: Continue, Reason: why}
	}
	return Decision{Kind: Proceed, Reason: fmt.Sprintf("%s of all-Pass readings, %d/%d signals pass", dwell, len(by[Pass]), len(ms))}
}

func (r *Release) clearHolds() {
	r.ManualHoldUntil, r.ManualReason, r.TrendHoldUntil, r.TrendReason = time.Time{}, "", time.Time{}, ""
	r.setHold()
}

// setHold derives the hold in force from the IC's hold and the trend hold.
func (r *Release) setHold() {
	r.HoldUntil, r.HoldReason = time.Time{}, ""
	var why []string
	for _, h := range []struct {
		until  time.Time
		reason string
	}{{r.ManualHoldUntil, r.ManualReason}, {r.TrendHoldUntil, r.TrendReason}} {
		if h.until.IsZero() {
			continue
		}
		if h.until.After(r.HoldUntil) {
			r.HoldUntil = h.until
		}
		why = append(why, h.reason)
	}
	r.HoldReason = strings.Join(why, "; ")
}

func names(ms []Measurement) []string {
	out := make([]string, len(ms))
	for i, x := range ms {
		out[i] = x.Signal
	}
	return out
}

func reasons(ms []Measurement) string {
	out := make([]string, len(ms))
	for i, x := range ms {
		out[i] = x.Reason
		if !strings.HasPrefix(x.Reason, x.Signal) {
			out[i] = x.Signal + ": " + x.Reason
		}
	}
	return strings.Join(out, "; ")
}

func errorText(ms []Measurement, alertsErr error) string {
	s := reasons(ms)
	if alertsErr != nil {
		if s != "" {
			s += "; "
		}
		s += "alerts: " + alertsErr.Error()
	}
	return s
}

// nightTick keeps the first-night watch: rollbacks at once, snapshots at the
// plan's cadence, complete after the last one.
func (m *Machine) nightTick(r *Release, row Row, now time.Time) {
	d := row.Decision
	if d.Kind == Rollback && d.Auto {
		r.Rows = append(r.Rows, row)
		m.notify(r, now, EventRow, m.Render.TableRow(m.Plan, row), &row)
		m.rollback(r, now, "canarybot (auto)", d.Reason, d.Signals)
		return
	}
	if d.Kind != r.Last.Kind && d.Kind != Continue {
		m.log(r, now, "canarybot", LogDecision, fmt.Sprintf("first night: %s: %s", d.Kind, d.Reason))
		m.notify(r, now, EventPage, fmt.Sprintf("First night: %s — %s", d.Kind, d.Reason), nil)
	}
	r.Last = d
	snaps := m.Plan.FirstNight.Snapshots()
	if r.Snapshots >= len(snaps) || now.Before(r.PhaseStarted.Add(snaps[r.Snapshots])) {
		return
	}
	if r.Snapshots == len(snaps)-1 && !allPass(row.Readings) {
		// The night ends on a clean reading, not on whatever the last one
		// says: keep watching and tell the IC why.
		if !r.Paged {
			r.Paged = true
			m.page(r, now, "first night cannot close: "+d.Reason)
		}
		return
	}
	r.Paged = false
	r.Rows = append(r.Rows, row)
	r.Snapshots++
	m.notify(r, now, EventSnapshot, m.Render.TableRow(m.Plan, row), &row)
	name := fmt.Sprintf("first_night_%02d_%s.txt", r.Snapshots, fmtOffset(now.Sub(r.PhaseStarted)))
	m.evidence(r, name, m.Render.NightSnapshot(m.Plan, r, row))
	if r.Snapshots == len(snaps) {
		m.complete(r, now)
	}
}

func fmtOffset(d time.Duration) string {
	d = d.Round(time.Minute)
	return fmt.Sprintf("T+%02dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func (m *Machine) promote(r *Release, now time.Time, by string) {
	m.stageEvidence(r)
	m.log(r, now, by, LogDecision, fmt.Sprintf("promote: stage %d (%d%%) complete", r.Stage+1, r.Weight))
	if r.Stage+1 < len(m.Plan.Stages) {
		m.startStage(r, r.Stage+1, now)
		return
	}
	m.evidence(r, fmt.Sprintf("baseline_%s.prom", r.Version), m.Render.Baseline(m.Plan, r))
	r.Phase, r.PhaseStarted, r.Last = PhaseFirstNight, now, Decision{}
	r.clearHolds()
	r.CleanSince = now
	text := fmt.Sprintf("Canary at 100%%. First night begins: %d snapshots over %s, each against the stage-100 baseline.",
		len(m.Plan.FirstNight.Snapshots()), m.Plan.FirstNight.Duration())
	m.log(r, now, "canarybot", LogSystem, text)
	m.notify(r, now, EventPhase, text, nil)
	if len(m.Plan.FirstNight.Snapshots()) == 0 {
		m.complete(r, now)
	}
}

func (m *Machine) stageEvidence(r *Release) {
	w := m.Plan.Stages[r.Stage].Weight
	m.evidence(r, fmt.Sprintf("rollout_stage_%d.txt", w), m.Render.StageReport(m.Plan, r, r.Stage))
	m.evidence(r, fmt.Sprintf("summary_stage_%d.txt", w), m.Render.StageSummary(m.Plan, r, r.Stage))
}

func (m *Machine) rollback(r *Release, now time.Time, by, reason string, signals []string) {
	r.Rollback = &RollbackRecord{At: now, Reason: reason, Stage: r.CurrentStage(), Phase: r.Phase, Weight: r.Weight, Signals: signals, By: by}
	if r.Phase == PhaseStage {
		m.stageEvidence(r)
	}
	r.Weight = 0
	m.emitFirst(r, Effect{Kind: EffectWeight, Weight: 0})
	r.Phase, r.Ended = PhaseRolledBack, now
	text := fmt.Sprintf("ROLLBACK by %s: %s. Canary weight → 0.", by, reason)
	m.log(r, now, by, LogDecision, text)
	m.evidence(r, "rollback_"+now.UTC().Format("20060102T150405Z")+".txt", m.Render.RollbackReport(m.Plan, r))
	m.notify(r, now, EventRollback, text, nil)
	m.finish(r, now)
}

func (m *Machine) complete(r *Release, now time.Time) {
	r.Phase, r.Ended = PhaseComplete, now
	m.log(r, now, "canarybot", LogSystem, "release complete: first night over")
	m.finish(r, now)
}

func (m *Machine) abort(r *Release, now time.Time, by, reason string) {
	r.Phase, r.Ended, r.AbortReason = PhaseAborted, now, reason
	if r.Weight != 0 {
		r.Weight = 0
		m.emitFirst(r, Effect{Kind: EffectWeight, Weight: 0})
	}
	m.log(r, now, by, LogDecision, "ABORTED: "+reason)
	m.notify(r, now, EventPage, "Release aborted: "+reason, nil)
	m.finish(r, now)
}

// finish writes the closing evidence: the one-liner and the mini RCA.
func (m *Machine) finish(r *Release, now time.Time) {
	line := m.Render.OneLiner(m.Plan, r)
	m.evidence(r, "release_oneliner.txt", []byte(line+"\n"))
	m.evidence(r, fmt.Sprintf("mini_rca_%s.md", r.Version), m.Render.RCA(m.Plan, r))
	m.notify(r, now, EventDone, line, nil)
}

func (m *Machine) page(r *Release, now time.Time, text string) {
	m.log(r, now, "canarybot", LogDecision, "PAGE IC: "+text)
	m.notify(r, now, EventPage, fmt.Sprintf("%s: %s", r.IC, text), nil)
}

// emitFirst queues an effect ahead of everything pending: moving traffic
// back to stable must not wait behind a message or a file.
func (m *Machine) emitFirst(r *Release, e Effect) {
	m.emit(r, e)
	n := len(r.Pending)
	r.Pending = append(r.Pending[n-1:], r.Pending[:n-1]...)
}

// emit queues a side effect with the release's next idempotency key.
func (m *Machine) emit(r *Release, e Effect) {
	r.Seq++
	e.Key = fmt.Sprintf("%s/%d", r.ID, r.Seq)
	r.Pending = append(r.Pending, e)
}

func (m *Machine) notify(r *Release, now time.Time, kind EventKind, text string, row *Row) {
	m.notifyEvent(r, now, Event{Kind: kind, Text: text, Row: row})
}

// notifyEvent announces ev with the release's facts filled in.
func (m *Machine) notifyEvent(r *Release, now time.Time, ev Event) {
	ev.Release, ev.Version, ev.At = r.ID, r.Version, now
	ev.Phase, ev.Stage, ev.Weight, ev.IC = r.Phase, r.CurrentStage(), r.Weight, r.IC
	m.emit(r, Effect{Kind: EffectNotify, Event: &ev})
}

// Due announces, once, that a person's step has come: the red-team review
// at T-5, the IC's GO at T-0. The announcement is what tells a war-room to
// act; the step itself waits for the command.
func (m *Machine) Due(r *Release, name StepName, why string, now time.Time) bool {
	if slices.Contains(r.Due, name) {
		return false
	}
	r.Due = append(r.Due, name)
	text := fmt.Sprintf("due: %s — waiting for %s", name, why)
	m.log(r, now, "canarybot", LogSystem, text)
	m.notifyEvent(r, now, Event{Kind: EventDue, Text: text, Step: name})
	return true
}

// evidence queues a file write. A write of the same file still pending is
// dropped: only the latest content matters, and warroom_log.txt is rewritten
// on every log line.
func (m *Machine) evidence(r *Release, name string, data []byte) {
	r.Pending = slices.DeleteFunc(r.Pending, func(e Effect) bool {
		return e.Kind == EffectEvidence && e.File == name
	})
	m.emit(r, Effect{Kind: EffectEvidence, File: name, Data: data})
}

// log appends to the war-room minutes and rewrites warroom_log.txt.
func (m *Machine) log(r *Release, now time.Time, user string, kind LogKind, text string) {
	r.Log = append(r.Log, LogEntry{At: now, User: user, Kind: kind, Text: text})
	m.evidence(r, "warroom_log.txt", m.Render.WarRoomLog(r))
}
