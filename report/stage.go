package report

import (
	"bytes"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

// StageReport is rollout_stage_<weight>.txt for the 0-based stage: when it
// ran, every table row, and for the last row each signal's value, bound,
// verdict, reason and resolved query, so the decision can be audited from
// the file alone.
func (rd Renderer) StageReport(p *rollout.Plan, r *rollout.Release, stage int) []byte {
	p, r = planOf(p), releaseOf(r)
	rows := stageRows(r, stage)
	var b bytes.Buffer
	rd.stageHeader(&b, p, r, stage, rows)
	fmt.Fprintf(&b, "rows:     %d\n\n", len(rows))

	b.WriteString(rd.TableHeader(p) + "\n")
	for _, row := range rows {
		b.WriteString(rd.TableRow(p, row) + "\n")
	}
	if len(rows) == 0 {
		b.WriteString("(no readings recorded in this stage)\n")
		fmt.Fprintf(&b, "\noutcome:  %s\n", rd.stageOutcome(p, r, stage, rows))
		return b.Bytes()
	}

	last := rows[len(rows)-1]
	fmt.Fprintf(&b, "\nlast reading at %s:\n\n", rd.stamp(last.At))
	rd.readingDetails(&b, p, last)
	rd.alertLines(&b, last.Alerts)
	fmt.Fprintf(&b, "\ndecision: %s\n", decisionText(last.Decision))
	fmt.Fprintf(&b, "outcome:  %s\n", rd.stageOutcome(p, r, stage, rows))
	return b.Bytes()
}

// StageSummary is summary_stage_<weight>.txt: per signal min/mean/max over
// the stage's usable readings (NoData and Error readings have no value and
// are only counted), the count of each verdict, the holds, and how the stage
// ended. A relative signal is summarised by its distance from the baseline.
func (rd Renderer) StageSummary(p *rollout.Plan, r *rollout.Release, stage int) []byte {
	p, r = planOf(p), releaseOf(r)
	rows := stageRows(r, stage)
	var b bytes.Buffer
	rd.stageHeader(&b, p, r, stage, rows)
	fmt.Fprintf(&b, "rows:     %d\n\n", len(rows))

	head := []string{"signal", "bound", "min", "mean", "max", "valid", "missing"}
	for _, v := range verdictOrder() {
		head = append(head, string(v))
	}
	lines := [][]string{head}
	for _, c := range columns(p) {
		st := signalStats(c.spec, rows)
		counts := map[rollout.Verdict]int{}
		missing, other := 0, 0
		for _, row := range rows {
			m, ok := row.Reading(c.spec.Name)
			switch {
			case !ok:
				missing++
			case isKnown(m.Verdict):
				counts[m.Verdict]++
			default:
				other++
			}
		}
		lo, mean, hi := "n/a", "n/a", "n/a"
		if st.n > 0 {
			lo, mean, hi = fmtQuantity(c.spec, st.min), fmtQuantity(c.spec, st.mean()), fmtQuantity(c.spec, st.max)
		}
		cells := []string{c.spec.Name, c.spec.BoundText(), lo, mean, hi, fmt.Sprint(st.n), fmt.Sprint(missing)}
		for _, v := range verdictOrder() {
			cells = append(cells, fmt.Sprint(counts[v]))
		}
		if other > 0 {
			cells = append(cells, fmt.Sprintf("(%d with an unknown verdict)", other))
		}
		lines = append(lines, cells)
	}
	writeTable(&b, "", lines)

	eps := holdEpisodes(rows)
	fmt.Fprintf(&b, "\nholds:    %d\n", len(eps))
	for _, e := range eps {
		fmt.Fprintf(&b, "  - %s\n", rd.holdText(e))
	}
	if len(rows) > 0 {
		last := rows[len(rows)-1]
		kind := kindOrNone(last.Decision.Kind)
		if last.Decision.Auto {
			kind += " (auto)"
		}
		fmt.Fprintf(&b, "decision: %s at %s\n", kind, rd.stamp(last.At))
		if last.Decision.Reason != "" {
			fmt.Fprintf(&b, "          %s\n", oneLine(last.Decision.Reason))
		}
	} else {
		b.WriteString("decision: none (no readings recorded in this stage)\n")
	}
	fmt.Fprintf(&b, "outcome:  %s\n", rd.stageOutcome(p, r, stage, rows))
	return b.Bytes()
}

// writeTable aligns cells in columns two spaces apart, with no trailing
// blanks when a row's last cells are empty.
func writeTable(b *bytes.Buffer, indent string, rows [][]string) {
	var tmp bytes.Buffer
	tw := tabwriter.NewWriter(&tmp, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, indent+strings.Join(r, "\t"))
	}
	_ = tw.Flush() // a bytes.Buffer does not fail
	for _, l := range strings.Split(strings.TrimSuffix(tmp.String(), "\n"), "\n") {
		b.WriteString(strings.TrimRight(l, " ") + "\n")
	}
}

func isKnown(v rollout.Verdict) bool {
	for _, k := range verdictOrder() {
		if v == k {
			return true
		}
	}
	return false
}

// stageHeader writes the lines both stage files start with.
func (rd Renderer) stageHeader(b *bytes.Buffer, p *rollout.Plan, r *rollout.Release, stage int, rows []rollout.Row) {
	fmt.Fprintf(b, "version:  %s\n", versionLine(p, r))
	st, ok := planStage(p, stage)
	if !ok {
		fmt.Fprintf(b, "stage:    %d is not in the plan (%d stages)\n", stage+1, len(p.Stages))
		return
	}
	fmt.Fprintf(b, "stage:    %d of %d, weight %d%%\n", stage+1, len(p.Stages), st.Weight)
	start, approx := stageStart(r, stage, rows)
	note := ""
	if approx && !start.IsZero() {
		note = " (first reading)"
	}
	fmt.Fprintf(b, "started:  %s%s\n", rd.stamp(start), note)
	end, how := rd.stageEnd(r, stage, rows)
	fmt.Fprintf(b, "ended:    %s%s\n", rd.stamp(end), how)
	switch {
	case start.IsZero() || end.IsZero():
		fmt.Fprintf(b, "dwell:    %s planned\n", fmtDur(st.Dwell))
	case approx:
		// Without the stage's start only the readings' span is known.
		fmt.Fprintf(b, "dwell:    %s planned; readings span %s\n", fmtDur(st.Dwell), fmtDur(end.Sub(start)))
	default:
		fmt.Fprintf(b, "dwell:    %s planned, %s observed\n", fmtDur(st.Dwell), fmtDur(end.Sub(start)))
	}
}

func versionLine(p *rollout.Plan, r *rollout.Release) string {
	s := r.Version
	if s == "" {
		s = "(no version)"
	}
	var extra []string
	if p.Service != "" {
		extra = append(extra, "service "+p.Service)
	}
	if r.ID != "" {
		extra = append(extra, "release "+r.ID)
	}
	if r.IC != "" {
		extra = append(extra, "IC "+r.IC)
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return s
}

// stageEnd is when the stage ended and how that time is known. A stage
// still being judged has not ended unless its last row decided.
func (rd Renderer) stageEnd(r *rollout.Release, stage int, rows []rollout.Row) (time.Time, string) {
	if rb := r.Rollback; rb != nil && rb.Stage == stage+1 {
		return rb.At, " (rollback)"
	}
	if len(rows) == 0 {
		return time.Time{}, ""
	}
	last := rows[len(rows)-1]
	if r.Phase == rollout.PhaseStage && r.Stage == stage && last.Decision.Kind != rollout.Proceed {
		return time.Time{}, " (in progress)"
	}
	return last.At, " (last reading)"
}

// stageOutcome says how the 0-based stage ended, from the release's state.
func (rd Renderer) stageOutcome(p *rollout.Plan, r *rollout.Release, stage int, rows []rollout.Row) string {
	if rb := r.Rollback; rb != nil && rb.Stage == stage+1 {
		return fmt.Sprintf("rolled back at %s by %s: %s", rd.stamp(rb.At), byName(rb.By), oneLine(rb.Reason))
	}
	pos := position(p, r)
	next := func() string {
		if st, ok := planStage(p, stage+1); ok {
			return "stage " + stageLabel(stage+2, st.Weight)
		}
		return "first night"
	}
	switch {
	case pos > stage:
		if stage == len(p.Stages)-1 {
			return "completed; first night followed"
		}
		return "promoted to " + next()
	case pos == stage && r.Phase == rollout.PhaseStage:
		if len(rows) == 0 {
			return "in progress: no readings yet"
		}
		last := rows[len(rows)-1]
		if last.Decision.Kind == rollout.Proceed {
			return fmt.Sprintf("Proceed at %s; next: %s", rd.stamp(last.At), next())
		}
		return fmt.Sprintf("in progress; last decision %s", decisionText(last.Decision))
	case r.Phase == rollout.PhaseAborted:
		return "release aborted before this stage"
	case r.Phase == rollout.PhaseRolledBack:
		return "not reached: the release rolled back " + rollbackAt(p, r)
	}
	return "not reached"
}

// readingDetails writes each signal of a row with everything its verdict
// rests on.
func (rd Renderer) readingDetails(b *bytes.Buffer, p *rollout.Plan, row rollout.Row) {
	for _, c := range columns(p) {
		s := c.spec
		fmt.Fprintf(b, "%s (%s)", s.Name, c.title)
		if s.Title != "" {
			fmt.Fprintf(b, " — %s", s.Title)
		}
		b.WriteString("\n")
		m, ok := row.Reading(s.Name)
		if !ok {
			b.WriteString("  value:    n/a (no reading in this row)\n")
			fmt.Fprintf(b, "  bound:    %s\n", s.BoundText())
			fmt.Fprintf(b, "  query:    %s\n\n", oneLine(p.ResolveQuery(s.Query)))
			continue
		}
		if usable(m) {
			fmt.Fprintf(b, "  value:    %s (raw %s)\n", show(s, m), raw(m.Value))
		} else {
			b.WriteString("  value:    n/a\n")
		}
		fmt.Fprintf(b, "  bound:    %s\n", boundDetail(s, m))
		fmt.Fprintf(b, "  verdict:  %s\n", verdictOrDash(m.Verdict))
		if m.Reason != "" {
			fmt.Fprintf(b, "  reason:   %s\n", oneLine(m.Reason))
		}
		if m.Projected != nil {
			fmt.Fprintf(b, "  trend:    %s, projected %s in %s\n",
				fmtSlope(s, m.Slope), s.Format(*m.Projected), fmtDur(p.Trend.Horizon))
		}
		for _, w := range m.Warnings {
			fmt.Fprintf(b, "  warning:  %s\n", oneLine(w))
		}
		if len(m.Raw) > 0 {
			fmt.Fprintf(b, "  result:   %s\n", oneLine(string(m.Raw)))
		}
		q := m.Query
		if q == "" {
			q = p.ResolveQuery(s.Query) + " (from the plan)"
		}
		fmt.Fprintf(b, "  query:    %s\n\n", oneLine(q))
	}
}

func verdictOrDash(v rollout.Verdict) string {
	if v == "" {
		return "-"
	}
	return string(v)
}

// boundDetail shows the bound a reading was judged against; for a relative
// signal the baseline it was computed from.
func boundDetail(s rollout.SignalSpec, m rollout.Measurement) string {
	if s.Relative {
		if m.Baseline == nil {
			return s.BoundText() + " (no baseline)"
		}
		return fmt.Sprintf("%s (baseline raw %s, bound raw %s)", s.BoundText(), raw(*m.Baseline), raw(m.Bound))
	}
	return s.BoundText()
}

// raw shows a base-unit number with enough digits to audit it.
func raw(v float64) string {
	return fmt.Sprintf("%.6g", v)
}

// fmtSlope shows a trend's slope (base units per minute) in the signal's
// display unit, with more precision than a value because slopes are small.
func fmtSlope(s rollout.SignalSpec, perMin float64) string {
	switch s.Unit {
	case rollout.UnitSeconds:
		return fmt.Sprintf("slope %+.2fms/min", perMin*1000)
	case rollout.UnitRatio:
		return fmt.Sprintf("slope %+.3f%%/min", perMin*100)
	case rollout.UnitSecondsCoarse:
		return fmt.Sprintf("slope %+.2fs/min", perMin)
	case rollout.UnitPerMinute:
		return fmt.Sprintf("slope %+.3f/m per min", perMin)
	}
	return fmt.Sprintf("slope %+.3g/min", perMin)
}

func (rd Renderer) alertLines(b *bytes.Buffer, alerts []rollout.Alert) {
	if len(alerts) == 0 {
		b.WriteString("alerts firing: none\n")
		return
	}
	b.WriteString("alerts firing:\n")
	for _, a := range alerts {
		fmt.Fprintf(b, "  - %s\n", rd.alertText(a))
	}
}

// alertText is an alert with its labels in sorted order.
func (rd Renderer) alertText(a rollout.Alert) string {
	s := a.Name + labelText(a.Labels)
	if !a.Since.IsZero() {
		s += " since " + rd.stamp(a.Since)
	}
	if a.Summary != "" {
		s += ": " + oneLine(a.Summary)
	}
	return s
}

// decisionText is a decision in words, for the files (the table cell is
// shorter).
func decisionText(d rollout.Decision) string {
	if d.Kind == "" {
		return "none"
	}
	s := string(d.Kind)
	if d.Auto {
		s += " (auto)"
	}
	if d.Reason != "" {
		s += " — " + oneLine(d.Reason)
	}
	return s
}

// holdText is a hold episode in one line.
func (rd Renderer) holdText(e holdEpisode) string {
	where := "first night"
	if e.start.Stage > 0 {
		where = "stage " + stageLabel(e.start.Stage, e.start.Weight)
	}
	s := fmt.Sprintf("%s %s: hold — %s", rd.stamp(e.start.At), where, holdWhy(e.start))
	if e.end.IsZero() {
		return s + " (still holding at the last reading)"
	}
	return s + fmt.Sprintf(" (until %s, then %s)", rd.stamp(e.end), kindOrNone(e.became.Kind))
}

// holdWhy is a hold's signals with verdicts and its full reason.
func holdWhy(row rollout.Row) string {
	d := row.Decision
	why := oneLine(d.Reason)
	if len(d.Signals) > 0 {
		s := decisionWhy(row)
		if why == "" {
			return s
		}
		return s + ": " + why
	}
	if why == "" {
		return "no reason recorded"
	}
	return why
}

func kindOrNone(k rollout.DecisionKind) string {
	if k == "" {
		return "none"
	}
	return string(k)
}

// byName is who acted, as recorded.
func byName(by string) string {
	if by == "" {
		return "(not recorded)"
	}
	return by
}
