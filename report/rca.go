package report

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

// RCA is mini_rca_<version>.md: the runbook's template with a Facts section
// in front. Facts come only from the release record. The judgement sections
// (What Went Well, What Could Be Improved, Remaining Risks) keep the
// runbook's placeholders as unchecked items for people to fill, followed by
// the facts that may belong there, each copied verbatim from the Facts
// section; nothing in them is the renderer's own opinion.
func (rd Renderer) RCA(p *rollout.Plan, r *rollout.Release) []byte {
	p, r = planOf(p), releaseOf(r)
	f := rd.rcaFacts(p, r)
	var b bytes.Buffer
	v := r.Version
	if v == "" {
		v = "(no version)"
	}
	fmt.Fprintf(&b, "# Mini RCA - %s\n\n", v)
	b.WriteString("## Facts\n\n")
	b.WriteString("_Recorded by canarybot from the release record. The sections after this one are for people to fill in; the facts listed under them are repeated from here._\n\n")
	for _, l := range f.summary {
		b.WriteString(l + "\n")
	}
	section := func(title string, lines []string, none string) {
		fmt.Fprintf(&b, "\n### %s\n\n", title)
		if len(lines) == 0 {
			b.WriteString("- " + none + "\n")
		}
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
	section("Timeline", f.timeline, "nothing recorded")
	section("Stages", f.stages, "no stage reached")
	section("Holds", f.holds, "none")
	section("Rollback", f.rollback, "none")
	section("Steps skipped", f.skipped, "none")
	if len(f.failed) > 0 {
		section("Steps failed", f.failed, "none")
	}
	if len(f.refused) > 0 {
		section("Refused commands", f.refused, "none")
	}
	section("Signals", f.signals, "no signals in the plan")
	if len(f.night) > 0 {
		section("First night", f.night, "none")
	}

	judgement := func(title string, placeholders []string, facts []string) {
		fmt.Fprintf(&b, "\n## %s\n\n", title)
		for _, ph := range placeholders {
			b.WriteString(ph + "\n")
		}
		if len(facts) > 0 {
			b.WriteString("\n" + factsLabel + "\n")
			for _, l := range facts {
				b.WriteString(l + "\n")
			}
		}
	}
	items := []string{"- [ ] [item]", "- [ ] [item]", "- [ ] [item]"}
	judgement("What Went Well", items, f.wentWell)
	judgement("What Could Be Improved", items, f.improve)
	judgement("Remaining Risks (3)", []string{
		"- [ ] 1. [Risk - Owner - Due Date]",
		"- [ ] 2. [Risk - Owner - Due Date]",
		"- [ ] 3. [Risk - Owner - Due Date]",
	}, f.risks)
	return b.Bytes()
}

// factsLabel introduces the facts under a judgement section.
const factsLabel = "Facts that may belong here:"

// rcaFacts are the RCA's fact lines ("- …"). wentWell, improve and risks
// only ever hold lines that also appear in a fact section.
type rcaFacts struct {
	summary, timeline, stages, holds, rollback []string
	skipped, failed, refused, signals, night   []string
	wentWell, improve, risks                   []string
}

func (rd Renderer) rcaFacts(p *rollout.Plan, r *rollout.Release) rcaFacts {
	var f rcaFacts
	f.summary = []string{
		"- Release: " + versionLine(p, r),
		"- Outcome: " + rd.rcaOutcome(p, r),
		fmt.Sprintf("- Created: %s; ended: %s", rd.minute(r.Created), rd.minute(r.Ended)),
		"- One-liner: " + rd.OneLiner(p, r),
	}
	f.timeline = rd.timeline(p, r)

	for i, st := range p.Stages {
		rows := stageRows(r, i)
		if len(rows) == 0 && position(p, r) < i {
			continue
		}
		span := "no readings"
		if len(rows) > 0 {
			span = fmt.Sprintf("%s to %s, %s", rd.minute(rows[0].At), rd.minute(rows[len(rows)-1].At), plural(len(rows), "row"))
		}
		eps := holdEpisodes(rows)
		how := rd.stageOutcome(p, r, i, rows)
		line := fmt.Sprintf("- stage %s: %s, %s; %s", stageLabel(i+1, st.Weight), span, plural(len(eps), "hold"), how)
		f.stages = append(f.stages, line)
		promoted := strings.HasPrefix(how, "promoted") || strings.HasPrefix(how, "completed")
		if len(eps) == 0 && promoted {
			f.wentWell = append(f.wentWell, line)
		}
	}

	for _, e := range holdEpisodes(canaryRows(r)) {
		f.holds = append(f.holds, "- "+rd.holdText(e))
	}
	f.improve = append(f.improve, f.holds...)

	if rb := r.Rollback; rb != nil {
		how := "manual"
		if rollbackAuto(r) {
			how = "automatic"
		}
		f.rollback = append(f.rollback, fmt.Sprintf("- %s rolled back %s, weight %d%%, by %s, %s: %s",
			rd.minute(rb.At), rollbackAt(p, r), rb.Weight, byName(rb.By), how, oneLine(rb.Reason)))
		row, haveRow := rollbackRow(r)
		for _, name := range rb.Signals {
			f.rollback = append(f.rollback, "- caused by "+rd.causeText(p, row, haveRow, name))
		}
		f.improve = append(f.improve, f.rollback...)
	}

	for _, s := range stepsWith(r, rollout.GateSkipped) {
		f.skipped = append(f.skipped, rd.stepLine(s))
	}
	for _, s := range stepsWith(r, rollout.GateFailed) {
		f.failed = append(f.failed, rd.stepLine(s))
	}
	f.improve = append(f.improve, f.failed...)
	f.improve = append(f.improve, f.skipped...)
	f.risks = append(f.risks, f.skipped...)

	for _, e := range r.Log {
		if e.Kind == rollout.LogRefused {
			f.refused = append(f.refused, fmt.Sprintf("- %s %s: %s", rd.minute(e.At), userOf(e), oneLine(e.Text)))
		}
	}
	f.improve = append(f.improve, f.refused...)

	rows := canaryRows(r)
	for _, c := range columns(p) {
		line, counts := signalFact(c.spec, rows)
		f.signals = append(f.signals, line)
		if counts[rollout.NoData]+counts[rollout.Error] > 0 {
			f.improve = append(f.improve, line)
		}
		if counts[rollout.Rising]+counts[rollout.Breach] > 0 {
			f.risks = append(f.risks, line)
		}
	}

	if nights := snapshotRows(r); len(nights) > 0 {
		last := nights[len(nights)-1]
		f.night = append(f.night, fmt.Sprintf("- %d of %d snapshots, %s to %s",
			len(nights), len(p.FirstNight.Snapshots()), rd.minute(nights[0].At), rd.minute(last.At)))
		base, haveBase := baselineRow(r)
		for _, c := range columns(p) {
			d := nightDiff(c.spec, base, haveBase, last)
			if d.flagged {
				line := fmt.Sprintf("- last snapshot (%s) against the stage-100 baseline: %s", rd.minute(last.At), d.text())
				f.night = append(f.night, line)
				f.risks = append(f.risks, line)
			}
		}
	}
	return f
}

func (rd Renderer) rcaOutcome(p *rollout.Plan, r *rollout.Release) string {
	switch {
	case r.Rollback != nil:
		return fmt.Sprintf("rolled back %s on %s", rollbackAt(p, r), rd.minute(r.Rollback.At))
	case r.Phase == rollout.PhaseComplete:
		return "complete (every stage and the first night)"
	case r.Phase == rollout.PhaseFirstNight:
		return "first night in progress"
	case r.Phase == rollout.PhaseStage:
		return fmt.Sprintf("stage %d of %d in progress", r.Stage+1, len(p.Stages))
	case r.Phase == rollout.PhaseAborted:
		return "aborted before stage 1: " + abortReason(r)
	case r.Phase == "":
		return "not started"
	}
	return "before stage 1 (phase " + string(r.Phase) + ")"
}

func (rd Renderer) stepLine(s rollout.StepRecord) string {
	line := fmt.Sprintf("- %s: %s at %s by %s", s.Name, s.Status, rd.minute(s.At), byName(s.By))
	if s.Detail != "" {
		line += " — " + oneLine(s.Detail)
	}
	return line
}

// signalFact is a signal's line for the whole canary and its verdict counts.
func signalFact(s rollout.SignalSpec, rows []rollout.Row) (string, map[rollout.Verdict]int) {
	counts := map[rollout.Verdict]int{}
	missing := 0
	for _, row := range rows {
		if m, ok := row.Reading(s.Name); ok {
			counts[m.Verdict]++
		} else {
			missing++
		}
	}
	st := signalStats(s, rows)
	line := fmt.Sprintf("- %s (%s): ", s.Name, s.BoundText())
	if st.n == 0 {
		line += "no usable reading"
	} else {
		line += fmt.Sprintf("%s, min %s, mean %s, max %s",
			plural(st.n, "usable reading"), fmtQuantity(s, st.min), fmtQuantity(s, st.mean()), fmtQuantity(s, st.max))
	}
	var parts []string
	for _, v := range verdictOrder() {
		if counts[v] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", v, counts[v]))
		}
	}
	// Verdicts this package does not know, in a stable order.
	var other []string
	for v := range counts {
		if !isKnown(v) {
			other = append(other, fmt.Sprintf("%q %d", string(v), counts[v]))
		}
	}
	slices.Sort(other)
	parts = append(parts, other...)
	if missing > 0 {
		parts = append(parts, fmt.Sprintf("missing %d", missing))
	}
	if len(parts) > 0 {
		line += "; " + strings.Join(parts, ", ")
	}
	return line, counts
}

// event is a timeline line with its time, for sorting.
type event struct {
	at   time.Time
	text string
}

// timeline merges the steps, the people's commands, each change of the
// table's decision, the rollback and the end into time order.
func (rd Renderer) timeline(p *rollout.Plan, r *rollout.Release) []string {
	var evs []event
	add := func(at time.Time, format string, args ...any) {
		evs = append(evs, event{at: at, text: fmt.Sprintf(format, args...)})
	}
	for _, s := range r.Steps {
		text := fmt.Sprintf("step %s: %s (by %s)", s.Name, s.Status, byName(s.By))
		if s.Detail != "" {
			text += " — " + oneLine(s.Detail)
		}
		add(s.At, "%s", text)
	}
	for _, e := range r.Log {
		if e.Kind == rollout.LogCommand {
			add(e.At, "%s: %s", userOf(e), oneLine(e.Text))
		}
	}
	var prev *rollout.Row
	for i, row := range r.Rows {
		if row.Phase == rollout.PhaseFirstNight {
			continue
		}
		changed := prev == nil || prev.Stage != row.Stage || prev.Decision.Kind != row.Decision.Kind ||
			(row.Decision.Kind == rollout.Hold && prev.Decision.Reason != row.Decision.Reason)
		if changed {
			add(row.At, "stage %s: %s", stageLabel(row.Stage, row.Weight), decisionText(row.Decision))
		}
		prev = &r.Rows[i]
	}
	if nights := snapshotRows(r); len(nights) > 0 {
		add(nights[0].At, "first night: first snapshot")
		for _, row := range nights {
			if row.Decision.Kind != rollout.Continue && row.Decision.Kind != "" {
				add(row.At, "first night: %s", decisionText(row.Decision))
			}
		}
		if len(nights) > 1 {
			last := nights[len(nights)-1]
			add(last.At, "first night: snapshot %d of %d", len(nights), len(p.FirstNight.Snapshots()))
		}
	}
	if rb := r.Rollback; rb != nil {
		add(rb.At, "ROLLBACK %s by %s: %s", rollbackAt(p, r), byName(rb.By), oneLine(rb.Reason))
	}
	if !r.Ended.IsZero() {
		add(r.Ended, "ended: %s", r.Phase)
	}
	slices.SortStableFunc(evs, func(a, b event) int { return a.at.Compare(b.at) })
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = "- " + rd.minute(e.at) + " " + e.text
	}
	return out
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
