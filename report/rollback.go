package report

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

// RollbackReport is rollback_<timestamp>.txt, the evidence the runbook's
// rollback.ps1 leaves: what rolled back, when, where, why, who, the readings
// it was decided on, and the steps of the rollback.
func (rd Renderer) RollbackReport(p *rollout.Plan, r *rollout.Release) []byte {
	p, r = planOf(p), releaseOf(r)
	var b bytes.Buffer
	fmt.Fprintf(&b, "version:  %s\n", versionLine(p, r))
	rb := r.Rollback
	if rb == nil {
		fmt.Fprintf(&b, "rollback: none recorded (phase %s)\n", r.Phase)
		return b.Bytes()
	}
	row, haveRow := rollbackRow(r)
	auto := rollbackAuto(r)

	fmt.Fprintf(&b, "at:       %s\n", rd.stamp(rb.At))
	where := rollbackWhere(p, r)
	if rb.Stage > 0 {
		where += fmt.Sprintf(" of %d", len(p.Stages))
	}
	fmt.Fprintf(&b, "where:    %s\n", where)
	fmt.Fprintf(&b, "weight:   %d%% at rollback\n", rb.Weight)
	mode := "manual"
	if auto {
		mode = "automatic"
	}
	fmt.Fprintf(&b, "by:       %s — %s rollback\n", byName(rb.By), mode)
	fmt.Fprintf(&b, "reason:   %s\n", oneLine(rb.Reason))
	if start, ok := rd.rollbackPhaseStart(p, r); ok {
		fmt.Fprintf(&b, "after:    %s (since %s)\n", fmtDur(rb.At.Sub(start)), rd.stamp(start))
	}

	b.WriteString("\ncaused by:\n")
	if len(rb.Signals) == 0 {
		b.WriteString("  - no signal or alert named (see reason)\n")
	}
	for _, name := range rb.Signals {
		fmt.Fprintf(&b, "  - %s\n", rd.causeText(p, row, haveRow, name))
	}

	if haveRow {
		which := "the last row before the rollback"
		if row.At.Equal(rb.At) {
			which = "the row the rollback was decided on"
		}
		fmt.Fprintf(&b, "\nreadings at %s (%s):\n", rd.stamp(row.At), which)
		lines := [][]string{{"signal", "value", "bound", "verdict", "reason"}}
		for _, c := range columns(p) {
			m, ok := row.Reading(c.spec.Name)
			if !ok {
				lines = append(lines, []string{c.spec.Name, "n/a", c.spec.BoundText(), "-", "no reading in this row"})
				continue
			}
			lines = append(lines, []string{c.spec.Name, cell(c.spec, m, true),
				boundCell(c.spec, m), verdictOrDash(m.Verdict), oneLine(m.Reason)})
		}
		writeTable(&b, "  ", lines)
		rd.alertLines(&b, row.Alerts)
	} else {
		b.WriteString("\nreadings: none recorded before the rollback\n")
	}

	b.WriteString("\nsteps:\n")
	steps := []string{fmt.Sprintf("canary weight %d%% → 0%% (all traffic to stable); recorded weight now %d%%", rb.Weight, r.Weight)}
	if rb.Stage > 0 {
		if st, ok := planStage(p, rb.Stage-1); ok {
			steps = append(steps, fmt.Sprintf("stage evidence: rollout_stage_%d.txt, summary_stage_%d.txt", st.Weight, st.Weight))
		}
	}
	steps = append(steps,
		"rollback announced in the war-room",
		fmt.Sprintf("release marked %s; one-liner and mini RCA written", rollout.PhaseRolledBack))
	for i, s := range steps {
		fmt.Fprintf(&b, "  %d. %s\n", i+1, s)
	}

	var log []rollout.LogEntry
	for _, e := range r.Log {
		if !e.At.Before(rb.At) {
			log = append(log, e)
		}
	}
	if len(log) > 0 {
		b.WriteString("\nwar-room log from the rollback on:\n")
		b.Write(logLines(log, "  "))
	}
	return b.Bytes()
}

// rollbackPhaseStart is when the stage (or first night) that rolled back
// began. The engine leaves PhaseStarted alone when it rolls back, so it still
// holds that start; without it the stage's first row stands in.
func (rd Renderer) rollbackPhaseStart(p *rollout.Plan, r *rollout.Release) (t time.Time, ok bool) {
	rb := r.Rollback
	if rb.Stage > 0 {
		t, _ = stageStart(r, rb.Stage-1, stageRows(r, rb.Stage-1))
	} else if nightRollback(r) {
		if r.Phase == rollout.PhaseRolledBack && !r.PhaseStarted.IsZero() {
			t = r.PhaseStarted
		} else if rows := nightRows(r); len(rows) > 0 {
			t = rows[0].At
		}
	}
	if t.IsZero() || t.After(rb.At) {
		return time.Time{}, false
	}
	return t, true
}

// causeText explains one signal or alert a rollback names.
func (rd Renderer) causeText(p *rollout.Plan, row rollout.Row, haveRow bool, name string) string {
	if haveRow {
		for _, a := range row.Alerts {
			if a.Name == name {
				return "alert " + rd.alertText(a)
			}
		}
		if m, ok := row.Reading(name); ok {
			s := name + ": " + verdictOrDash(m.Verdict)
			if spec, ok := specOf(p, name); ok && usable(m) {
				s = name + ": " + comparison(spec, m) + " (" + verdictOrDash(m.Verdict) + ")"
			}
			if m.Reason != "" {
				s += " — " + oneLine(m.Reason)
			}
			return s
		}
	}
	return name + " (no reading or alert of that name in the row)"
}

func specOf(p *rollout.Plan, name string) (rollout.SignalSpec, bool) {
	for _, s := range p.Signals {
		if s.Name == name {
			return s, true
		}
	}
	return rollout.SignalSpec{}, false
}

// comparison is a reading against its bound: "312ms > 200ms".
func comparison(s rollout.SignalSpec, m rollout.Measurement) string {
	op := "≤"
	if s.Op == rollout.OpLT {
		op = "<"
	}
	if m.Verdict == rollout.Breach {
		op = ">"
		if s.Op == rollout.OpLT {
			op = "≥"
		}
	}
	if s.Relative && m.Baseline != nil {
		return fmt.Sprintf("baseline%s %s baseline%s", show(s, m), op, fmtRel(s.Threshold))
	}
	return fmt.Sprintf("%s %s %s", s.Format(m.Value), op, s.Format(m.Bound))
}

// boundCell is the bound a reading was judged against, resolved for a
// relative signal.
func boundCell(s rollout.SignalSpec, m rollout.Measurement) string {
	if s.Relative && m.Baseline != nil {
		return s.BoundText() + " (baseline " + raw(*m.Baseline) + ")"
	}
	return s.BoundText()
}

// labelText shows labels in Prometheus style with sorted keys.
func labelText(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(labels[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
