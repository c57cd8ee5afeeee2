package report

import (
	"fmt"
	"strings"

	"github.com/canarybot/canarybot/rollout"
)

// OneLiner is the release-note one-liner in the runbook's shape:
//
//	v1.4.0 canary: 1%→100% all stages 8/8 signals pass; rollback=0; p95=~140ms, 5xx=0.3%, …; event-loop p95=12ms, GC avg=8ms.
//
// or, after a rollback:
//
//	v1.4.0 canary: rolled back at stage 3 (25%) after 12m: api_p95 breach (312ms > 200ms); rollback=1; …
//
// Each value is the mean of the signal's usable readings (Pass, Rising or
// Breach) over every stage row of the canary, first night excluded; for a
// relative signal it is the mean distance from the baseline. A signal with
// no usable reading shows n/a, never 0. "k/N signals pass" counts the
// signals that were Pass in the last row of every stage.
func (rd Renderer) OneLiner(p *rollout.Plan, r *rollout.Release) string {
	p, r = planOf(p), releaseOf(r)
	var b strings.Builder
	v := r.Version
	if v == "" {
		v = "(no version)"
	}
	fmt.Fprintf(&b, "%s canary: %s; rollback=%d", v, rd.outcome(p, r), boolInt(r.Rollback != nil))
	if n := len(holdEpisodes(canaryRows(r))); n > 0 {
		fmt.Fprintf(&b, ", holds=%d", n)
	}
	if vals := oneLinerValues(p, canaryRows(r)); vals != "" {
		b.WriteString("; " + vals)
	}
	b.WriteString(".")
	return b.String()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// outcome is the one-liner's first clause: how far the canary went.
func (rd Renderer) outcome(p *rollout.Plan, r *rollout.Release) string {
	first, last := "?", "?"
	if n := len(p.Stages); n > 0 {
		first, last = fmt.Sprintf("%d%%", p.Stages[0].Weight), fmt.Sprintf("%d%%", p.Stages[n-1].Weight)
	}
	switch {
	case r.Rollback != nil:
		return rd.rollbackClause(p, r)
	case r.Phase == rollout.PhaseFirstNight || r.Phase == rollout.PhaseComplete:
		return fmt.Sprintf("%s→%s all stages %d/%d signals pass", first, last, passingSignals(p, r), len(p.Signals))
	case r.Phase == rollout.PhaseStage:
		st, _ := planStage(p, r.Stage)
		return fmt.Sprintf("%s→%d%% so far, stage %d of %d in progress", first, st.Weight, r.Stage+1, len(p.Stages))
	case r.Phase == rollout.PhaseAborted:
		return "aborted before stage 1: " + abortReason(r)
	}
	phase := string(r.Phase)
	if phase == "" {
		phase = "not started"
	}
	return "not started yet (phase " + phase + ")"
}

func (rd Renderer) rollbackClause(p *rollout.Plan, r *rollout.Release) string {
	rb := r.Rollback
	s := "rolled back " + rollbackAt(p, r)
	if start, ok := rd.rollbackPhaseStart(p, r); ok {
		s += " after " + fmtDur(rb.At.Sub(start))
	}
	row, haveRow := rollbackRow(r)
	var causes []string
	for _, name := range rb.Signals {
		causes = append(causes, shortCause(p, row, haveRow, name))
	}
	why := strings.Join(causes, ", ")
	if why == "" {
		why = oneLine(rb.Reason)
	}
	if !rollbackAuto(r) && rb.By != "" {
		why += " (by " + rb.By + ")"
	}
	return s + ": " + why
}

// rollbackAuto reports whether the engine rolled back on its own: the row at
// the rollback decided an automatic Rollback.
func rollbackAuto(r *rollout.Release) bool {
	row, ok := rollbackRow(r)
	return ok && row.At.Equal(r.Rollback.At) && row.Decision.Kind == rollout.Rollback && row.Decision.Auto
}

// shortCause is "api_p95 breach (312ms > 200ms)" or "alert X firing".
func shortCause(p *rollout.Plan, row rollout.Row, haveRow bool, name string) string {
	if !haveRow {
		return name
	}
	for _, a := range row.Alerts {
		if a.Name == name {
			return "alert " + name + " firing"
		}
	}
	m, ok := row.Reading(name)
	if !ok {
		return name
	}
	s := name + " " + verdictWord(m.Verdict)
	if spec, ok := specOf(p, name); ok && usable(m) {
		s += " (" + comparison(spec, m) + ")"
	}
	return s
}

// abortReason is why a release stopped before any traffic moved: the failed
// step, else the engine's last decision in the log.
func abortReason(r *rollout.Release) string {
	if failed := stepsWith(r, rollout.GateFailed); len(failed) > 0 {
		f := failed[len(failed)-1]
		s := string(f.Name) + " failed"
		if f.Detail != "" {
			s += " (" + oneLine(f.Detail) + ")"
		}
		return s
	}
	for i := len(r.Log) - 1; i >= 0; i-- {
		if e := r.Log[i]; e.Kind == rollout.LogDecision {
			return oneLine(strings.TrimPrefix(e.Text, "ABORTED: ")) + " (by " + userOf(e) + ")"
		}
	}
	return "no reason recorded"
}

// passingSignals counts the plan's signals that were Pass in the last row of
// every stage.
func passingSignals(p *rollout.Plan, r *rollout.Release) int {
	n := 0
	for _, s := range p.Signals {
		ok := len(p.Stages) > 0
		for i := range p.Stages {
			rows := stageRows(r, i)
			if len(rows) == 0 {
				ok = false
				break
			}
			if m, found := rows[len(rows)-1].Reading(s.Name); !found || m.Verdict != rollout.Pass {
				ok = false
				break
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// oneLinerName is the runbook's name for a column in the one-liner, and the
// group it goes in: the six service signals, then the two runtime ones.
func oneLinerName(col string) (name string, group int) {
	switch col {
	case "p95":
		return "p95=~", 0
	case "5xx":
		return "5xx=", 0
	case "ws_stale":
		return "ws_stale_p95=", 0
	case "risk":
		return "risk_block=", 0
	case "idemp%":
		return "idemp_conflict=", 0
	case "csp":
		return "csp_viol=", 0
	case "eloop":
		return "event-loop p95=", 1
	case "gc":
		return "GC avg=", 1
	}
	return col + "=", 2
}

// oneLinerOrder is the runbook one-liner's order, which differs from the
// table's: risk comes before idemp.
func oneLinerOrder() []string {
	return []string{"p95", "5xx", "ws_stale", "risk", "idemp%", "csp", "eloop", "gc"}
}

func oneLinerValues(p *rollout.Plan, rows []rollout.Row) string {
	cols := columns(p)
	var ordered []column
	used := make([]bool, len(cols))
	for _, t := range oneLinerOrder() {
		for i, c := range cols {
			if !used[i] && c.title == t {
				used[i] = true
				ordered = append(ordered, c)
			}
		}
	}
	for i, c := range cols {
		if !used[i] {
			ordered = append(ordered, c)
		}
	}
	groups := make([][]string, 3)
	for _, c := range ordered {
		name, g := oneLinerName(c.title)
		st := signalStats(c.spec, rows)
		val := "n/a"
		if st.n > 0 {
			val = oneLinerValue(c.spec, st.mean())
		} else {
			name = strings.TrimSuffix(name, "~")
		}
		groups[g] = append(groups[g], name+val)
	}
	var parts []string
	for _, g := range groups {
		if len(g) > 0 {
			parts = append(parts, strings.Join(g, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

func oneLinerValue(s rollout.SignalSpec, v float64) string {
	switch {
	case s.Relative:
		return "baseline" + fmtRel(v)
	case s.Unit == rollout.UnitPerMinute:
		return trimFloat(v) + "/min"
	}
	return s.Format(v)
}

// trimFloat shows up to two decimals without trailing zeros.
func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "" || s == "-" || s == "-0" {
		return "0"
	}
	return s
}
