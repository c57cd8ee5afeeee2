// Package report renders a release's recorded facts as the texts the runbook
// (runbook-v1.4.0.md) shows people: the war-room table, the per-stage evidence
// files, the rollback evidence, the stage-100 baseline, first-night snapshots,
// the release-note one-liner, the mini RCA and the war-room minutes.
//
// Rendering is pure: no I/O, no clock reads. Every number and time comes from
// the Plan, the Release or the Row given, and the same input always renders
// to the same bytes.
package report

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

// Renderer implements rollout.Renderer. The zero value renders times in UTC.
type Renderer struct {
	// Location is the zone of the clock times shown to people (the table's
	// HH:MM and the reports' timestamps); nil is UTC. The war-room log is
	// always UTC so it can be merged with other logs.
	Location *time.Location
}

var _ rollout.Renderer = Renderer{}

func (rd Renderer) loc() *time.Location {
	if rd.Location == nil {
		return time.UTC
	}
	return rd.Location
}

// hhmm is the table's time of day.
func (rd Renderer) hhmm(t time.Time) string {
	if t.IsZero() {
		return "--:--"
	}
	return t.In(rd.loc()).Format("15:04")
}

// stamp is a full timestamp for the evidence files, which outlive the day.
func (rd Renderer) stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(rd.loc()).Format("2006-01-02 15:04:05 MST")
}

// minute is a timestamp to the minute, for the RCA's timeline.
func (rd Renderer) minute(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(rd.loc()).Format("2006-01-02 15:04 MST")
}

// planOf stands in an empty plan for a nil one so that a caller's mistake renders as
// "nothing known" instead of a panic inside evidence writing.
func planOf(p *rollout.Plan) *rollout.Plan {
	if p == nil {
		return &rollout.Plan{}
	}
	return p
}

func releaseOf(r *rollout.Release) *rollout.Release {
	if r == nil {
		return &rollout.Release{}
	}
	return r
}

// runbookColumns is the runbook's column order, with risk (the eighth signal,
// missing from the runbook's own table) after gc.
func runbookColumns() []string {
	return []string{"p95", "5xx", "ws_stale", "idemp%", "csp", "eloop", "gc", "risk"}
}

// column is one signal column of the war-room table.
type column struct {
	spec  rollout.SignalSpec
	title string
	width int
}

func columnTitle(s rollout.SignalSpec) string {
	if s.Column != "" {
		return s.Column
	}
	return s.Name
}

// columns lays the plan's signals out in the runbook's order, then any
// signals the runbook does not know in plan order. A runbook column whose
// signal the plan lacks is left out.
func columns(p *rollout.Plan) []column {
	p = planOf(p)
	used := make([]bool, len(p.Signals))
	var cols []column
	add := func(i int) {
		used[i] = true
		s := p.Signals[i]
		t := columnTitle(s)
		cols = append(cols, column{spec: s, title: t, width: max(len([]rune(t)), valueWidth(s))})
	}
	for _, name := range runbookColumns() {
		for i, s := range p.Signals {
			if !used[i] && columnTitle(s) == name {
				add(i)
				break
			}
		}
	}
	for i := range p.Signals {
		if !used[i] {
			add(i)
		}
	}
	return cols
}

// valueWidth fits a typical value of the unit plus its verdict mark, so rows
// rendered one at a time still line up under the header.
func valueWidth(s rollout.SignalSpec) int {
	switch {
	case s.Relative:
		return len("+100%") + 1
	case s.Unit == rollout.UnitSeconds:
		return len("999ms") + 1
	case s.Unit == rollout.UnitRatio:
		return len("10.0%") + 1
	case s.Unit == rollout.UnitSecondsCoarse:
		return len("999s") + 1
	case s.Unit == rollout.UnitPerMinute:
		return len("0.00/m") + 1
	default:
		return 6
	}
}

// usable reports whether a measurement carries a real value. NoData and
// Error readings are stored with Value 0, which must never be shown or
// averaged as if it had been measured.
func usable(m rollout.Measurement) bool {
	switch m.Verdict {
	case rollout.Pass, rollout.Rising, rollout.Breach:
		return true
	}
	return false
}

// relDelta is how far a value is from its baseline, as a fraction of it.
func relDelta(v, base float64) (float64, bool) {
	switch {
	case base > 0:
		return v/base - 1, true
	case base == 0 && v == 0:
		return 0, true
	}
	return 0, false
}

// fmtRel shows a relative distance as the runbook does: "+4%", "-2%".
func fmtRel(d float64) string {
	r := math.Round(d * 100)
	if r == 0 {
		r = 0 // no "-0%"
	}
	return fmt.Sprintf("%+.0f%%", r)
}

// show is a usable measurement's value as people read it: relative to the
// baseline when it was judged against one, else in the signal's unit.
func show(s rollout.SignalSpec, m rollout.Measurement) string {
	if m.Baseline != nil {
		if d, ok := relDelta(m.Value, *m.Baseline); ok {
			return fmtRel(d)
		}
	}
	return s.Format(m.Value)
}

// cell is a table cell: the value with its verdict mark.
func cell(s rollout.SignalSpec, m rollout.Measurement, ok bool) string {
	if !ok {
		return "n/a"
	}
	switch m.Verdict {
	case rollout.NoData:
		return "n/a?"
	case rollout.Error:
		return "err!"
	case rollout.Pass:
		return show(s, m)
	case rollout.Rising:
		return show(s, m) + "↑"
	case rollout.Breach:
		return show(s, m) + "✗"
	}
	// A verdict this package does not know is not a pass.
	return show(s, m) + "?"
}

// quantity is the number a signal is summarised by: its value, or for a
// signal with a relative bound its distance from the baseline. ok is false
// when the measurement has no such number.
func quantity(s rollout.SignalSpec, m rollout.Measurement) (float64, bool) {
	if !usable(m) {
		return 0, false
	}
	if s.Relative {
		if m.Baseline == nil {
			return 0, false
		}
		return relDelta(m.Value, *m.Baseline)
	}
	return m.Value, true
}

// fmtQuantity shows a quantity from quantity().
func fmtQuantity(s rollout.SignalSpec, v float64) string {
	if s.Relative {
		return fmtRel(v)
	}
	return s.Format(v)
}

// quantityBound is the bound in the units of quantity().
func quantityBound(s rollout.SignalSpec) float64 {
	return s.Threshold
}

// stats accumulates min/mean/max.
type stats struct {
	n             int
	min, max, sum float64
}

func (st *stats) add(v float64) {
	if st.n == 0 || v < st.min {
		st.min = v
	}
	if st.n == 0 || v > st.max {
		st.max = v
	}
	st.n++
	st.sum += v
}

func (st stats) mean() float64 {
	if st.n == 0 {
		return math.NaN()
	}
	return st.sum / float64(st.n)
}

// signalStats summarises a signal's usable readings over rows.
func signalStats(s rollout.SignalSpec, rows []rollout.Row) stats {
	var st stats
	for _, row := range rows {
		m, ok := row.Reading(s.Name)
		if !ok {
			continue
		}
		if v, ok := quantity(s, m); ok {
			st.add(v)
		}
	}
	return st
}

// verdictOrder lists verdicts for counts, best first.
func verdictOrder() []rollout.Verdict {
	return []rollout.Verdict{rollout.Pass, rollout.Rising, rollout.Breach, rollout.NoData, rollout.Error}
}

func verdictWord(v rollout.Verdict) string {
	switch v {
	case rollout.Rising:
		return "rising"
	case rollout.Breach:
		return "breach"
	case rollout.NoData:
		return "no data"
	case rollout.Error:
		return "query error"
	case rollout.Pass:
		return "pass"
	}
	return strings.ToLower(string(v))
}

// oneLine keeps a free-text field (an error message, a person's reason) from
// breaking a line-oriented file.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r\n", " ")
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "\r", " ")
}

// pad left-aligns s in width display columns, counting runes.
func pad(s string, width int) string {
	n := len([]rune(s))
	if n >= width {
		return s
	}
	return s + strings.Repeat(" ", width-n)
}

// fmtDur shows a duration compactly: "12m", "1h30m", "45s".
func fmtDur(d time.Duration) string {
	if d < 0 {
		return "-" + fmtDur(-d)
	}
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	d = d.Round(time.Minute)
	h, m := int(d.Hours()), int(d.Minutes())%60
	switch {
	case h == 0:
		return fmt.Sprintf("%dm", m)
	case m == 0:
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dh%dm", h, m)
}

// stageLabel is "3 (25%)" for a 1-based stage.
func stageLabel(n, weight int) string {
	return fmt.Sprintf("%d (%d%%)", n, weight)
}

// planStage returns the plan's 0-based stage, if it has it.
func planStage(p *rollout.Plan, i int) (rollout.Stage, bool) {
	if i < 0 || i >= len(p.Stages) {
		return rollout.Stage{}, false
	}
	return p.Stages[i], true
}

// stageRows are the rows recorded during the 0-based stage i.
func stageRows(r *rollout.Release, i int) []rollout.Row {
	var out []rollout.Row
	for _, row := range r.Rows {
		if row.Stage == i+1 && row.Phase != rollout.PhaseFirstNight {
			out = append(out, row)
		}
	}
	return out
}

// canaryRows are all rows recorded during the stages (not the first night).
func canaryRows(r *rollout.Release) []rollout.Row {
	var out []rollout.Row
	for _, row := range r.Rows {
		if row.Stage > 0 && row.Phase != rollout.PhaseFirstNight {
			out = append(out, row)
		}
	}
	return out
}

func nightRows(r *rollout.Release) []rollout.Row {
	var out []rollout.Row
	for _, row := range r.Rows {
		if row.Phase == rollout.PhaseFirstNight {
			out = append(out, row)
		}
	}
	return out
}

// snapshotRows are the first night's snapshots: its rows except the one an
// automatic rollback records between snapshots.
func snapshotRows(r *rollout.Release) []rollout.Row {
	var out []rollout.Row
	for _, row := range nightRows(r) {
		if row.Decision.Kind == rollout.Rollback && row.Decision.Auto {
			continue
		}
		out = append(out, row)
	}
	return out
}

// position is the 0-based stage the release has reached: len(stages) once
// past the last one, -1 before the first.
func position(p *rollout.Plan, r *rollout.Release) int {
	switch r.Phase {
	case rollout.PhaseStage:
		return r.Stage
	case rollout.PhaseFirstNight, rollout.PhaseComplete:
		return len(p.Stages)
	case rollout.PhaseRolledBack:
		if rb := r.Rollback; rb != nil {
			if rb.Stage > 0 {
				return rb.Stage - 1
			}
			if nightRollback(r) {
				return len(p.Stages)
			}
		}
	}
	return -1
}

// nightRollback tells a first-night rollback from one before stage 1: both
// record stage 0, but only the first night has traffic on the canary.
func nightRollback(r *rollout.Release) bool {
	rb := r.Rollback
	if rb == nil || rb.Stage != 0 {
		return false
	}
	if rb.Weight > 0 {
		return true
	}
	for _, row := range r.Rows {
		if row.Phase == rollout.PhaseFirstNight && !row.At.After(rb.At) {
			return true
		}
	}
	return false
}

// rollbackWhere says where the release was when it rolled back.
func rollbackWhere(p *rollout.Plan, r *rollout.Release) string {
	rb := r.Rollback
	switch {
	case rb.Stage > 0:
		return "stage " + stageLabel(rb.Stage, rb.Weight)
	case nightRollback(r):
		return fmt.Sprintf("first night (%d%%)", rb.Weight)
	}
	return "before stage 1"
}

// rollbackAt is rollbackWhere with its preposition: "at stage 3 (25%)",
// "during the first night (100%)", "before stage 1".
func rollbackAt(p *rollout.Plan, r *rollout.Release) string {
	w := rollbackWhere(p, r)
	switch {
	case r.Rollback.Stage > 0:
		return "at " + w
	case nightRollback(r):
		return "during the " + w
	}
	return w
}

// rollbackRow is the row the rollback was decided on, or the last row before
// it when a person rolled back between ticks.
func rollbackRow(r *rollout.Release) (rollout.Row, bool) {
	rb := r.Rollback
	if rb == nil {
		return rollout.Row{}, false
	}
	for i := len(r.Rows) - 1; i >= 0; i-- {
		if !r.Rows[i].At.After(rb.At) {
			return r.Rows[i], true
		}
	}
	return rollout.Row{}, false
}

// stageStart is when the 0-based stage began: known exactly only for the
// stage the release is in (or rolled back in), else approximated by its
// first row. approx says which.
func stageStart(r *rollout.Release, i int, rows []rollout.Row) (t time.Time, approx bool) {
	current := r.Phase == rollout.PhaseStage && r.Stage == i
	rolledHere := r.Phase == rollout.PhaseRolledBack && r.Rollback != nil && r.Rollback.Stage == i+1 && r.Stage == i
	if (current || rolledHere) && !r.PhaseStarted.IsZero() {
		return r.PhaseStarted, false
	}
	if len(rows) > 0 {
		return rows[0].At, true
	}
	return time.Time{}, true
}

// holdEpisode is a run of Hold rows with the same reason, as the engine logs
// them.
type holdEpisode struct {
	start  rollout.Row
	end    time.Time        // the first row after the hold; zero if none yet
	became rollout.Decision // that row's decision
}

func holdEpisodes(rows []rollout.Row) []holdEpisode {
	var out []holdEpisode
	var open *holdEpisode
	for i, row := range rows {
		d := row.Decision
		if open != nil && (d.Kind != rollout.Hold || d.Reason != open.start.Decision.Reason) {
			open.end, open.became = row.At, d
			out = append(out, *open)
			open = nil
		}
		if d.Kind == rollout.Hold && open == nil {
			open = &holdEpisode{start: rows[i]}
		}
	}
	if open != nil {
		out = append(out, *open)
	}
	return out
}

// stepsWith are the timeline steps recorded with a status, in order.
func stepsWith(r *rollout.Release, status rollout.GateStatus) []rollout.StepRecord {
	var out []rollout.StepRecord
	for _, s := range r.Steps {
		if s.Status == status {
			out = append(out, s)
		}
	}
	return out
}
