package report

import (
	"fmt"
	"strings"

	"github.com/canarybot/canarybot/rollout"
)

// Widths of the table's fixed columns: "HH:MM" and "5 (100%)".
const (
	timeWidth  = 5
	stageWidth = 8
	sep        = " | "
)

// TableHeader is the runbook's war-room header with the risk column added:
//
//	HH:MM | Stage    | p95    | 5xx    | ws_stale | idemp% | csp    | eloop  | gc     | risk    | decision
func (rd Renderer) TableHeader(p *rollout.Plan) string {
	cells := []string{pad("HH:MM", timeWidth), pad("Stage", stageWidth)}
	for _, c := range columns(p) {
		cells = append(cells, pad(c.title, c.width))
	}
	cells = append(cells, "decision")
	return strings.Join(cells, sep)
}

// TableRow is one line of the war-room table. Values carry their verdict
// after them: ↑ Rising, ✗ Breach; NoData shows as n/a?, a failed query as
// err!, and a signal the row has no reading of as n/a.
func (rd Renderer) TableRow(p *rollout.Plan, row rollout.Row) string {
	cells := []string{pad(rd.hhmm(row.At), timeWidth), pad(stageCell(row), stageWidth)}
	for _, c := range columns(p) {
		m, ok := row.Reading(c.spec.Name)
		cells = append(cells, pad(cell(c.spec, m, ok), c.width))
	}
	cells = append(cells, decisionCell(planOf(p), row)+trafficNote(row.Traffic))
	return strings.Join(cells, sep)
}

// trafficNote follows the decision when the observed traffic split needs a
// look: the controller routes another share than the weight, or the share
// could not be observed. A match, a weight too new to compare, or nothing
// counted says nothing, so the table stays the runbook's.
func trafficNote(o *rollout.TrafficObservation) string {
	if o == nil {
		return ""
	}
	switch o.Status {
	case rollout.TrafficMismatch:
		return fmt.Sprintf(" ⚠ traffic: observed %.1f%% vs weight %d%% (mismatch)", o.Observed, o.Weight)
	case rollout.TrafficError:
		// A '|' would read as a column of the table (a PromQL regexp in an
		// error has one).
		why := []rune(strings.ReplaceAll(strings.Join(strings.Fields(o.Text), " "), "|", "¦"))
		if len(why) > maxNoteRunes {
			why = append(why[:maxNoteRunes-1], '…')
		}
		return " ⚠ traffic share unknown: " + string(why)
	}
	return ""
}

func stageCell(row rollout.Row) string {
	switch {
	case row.Phase == rollout.PhaseFirstNight:
		return "night"
	case row.Stage > 0:
		return stageLabel(row.Stage, row.Weight)
	case row.Phase != "":
		return string(row.Phase)
	}
	return "-"
}

func decisionCell(p *rollout.Plan, row rollout.Row) string {
	d := row.Decision
	switch d.Kind {
	case rollout.Proceed:
		who := "IC"
		if d.Auto {
			who = "auto"
		}
		word := "Proceed"
		if row.Stage > 0 && row.Stage == len(p.Stages) {
			word = "Complete"
		}
		return fmt.Sprintf("%s: %s ✅", who, word)
	case rollout.Hold:
		return "Hold ⏸" + parens(decisionWhy(row))
	case rollout.Rollback:
		if !d.Auto {
			// on_breach: ask — the IC decides; the cell must not read as done.
			return "ROLLBACK ⛔" + parens(decisionWhy(row)) + " — IC to decide"
		}
		return "ROLLBACK ⛔" + parens(decisionWhy(row))
	case rollout.Continue:
		return "watching"
	case "":
		return "-"
	}
	return string(d.Kind) + parens(decisionWhy(row))
}

func parens(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// decisionWhy names what a decision rests on in a few words: each signal
// with its verdict ("api_p95 rising"), each alert, or else the reason.
func decisionWhy(row rollout.Row) string {
	d := row.Decision
	if len(d.Signals) == 0 {
		return oneLine(d.Reason)
	}
	parts := make([]string, 0, len(d.Signals))
	for _, name := range d.Signals {
		parts = append(parts, signalWhy(row, name))
	}
	return strings.Join(parts, ", ")
}

func signalWhy(row rollout.Row, name string) string {
	if m, ok := row.Reading(name); ok {
		if m.Verdict == rollout.Pass {
			return name
		}
		return name + " " + verdictWord(m.Verdict)
	}
	for _, a := range row.Alerts {
		if a.Name == name {
			return "alert " + name
		}
	}
	return name
}

// maxNoteRunes keeps an error's note to about a line of the table; the
// whole error stays in the release's row.
const maxNoteRunes = 100
