package report

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/canarybot/canarybot/rollout"
)

// nightFlag is how far a first-night reading may move from the stage-100
// baseline toward its bound, as a fraction of the headroom the baseline had,
// before the snapshot flags it. Measuring against the headroom (not the
// value) keeps small values from flagging on noise: 5xx going 0.2% → 0.3%
// is +50% but uses 12% of the way to a 1% bound.
const nightFlag = 0.20

// Baseline is baseline_<version>.prom: the last stage-100 row's readings in
// the Prometheus text exposition format, in base units, one sample per
// signal with a usable reading:
//
//	canary_signal{signal="api_p95",stage="100"} 0.156
//
// Relative signals also get canary_signal_baseline, the stable track's value
// they were judged against. NoData and Error readings have no value and are
// left out with a comment saying so.
func (rd Renderer) Baseline(p *rollout.Plan, r *rollout.Release) []byte {
	p, r = planOf(p), releaseOf(r)
	var b bytes.Buffer
	row, ok := baselineRow(r)
	fmt.Fprintf(&b, "# canarybot baseline of %s\n", promComment(versionLine(p, r)))
	if !ok {
		b.WriteString("# no stage-100 row was recorded; there is nothing to compare the first night with\n")
	} else {
		fmt.Fprintf(&b, "# from the stage %d (%d%%) row at %s\n", row.Stage, row.Weight, row.At.UTC().Format("2006-01-02T15:04:05Z"))
	}
	stage := "100"
	if ok {
		stage = strconv.Itoa(row.Weight)
	}
	cols := columns(p)

	b.WriteString("# HELP canary_signal Canary signal reading of the last stage-100 row, in base units (seconds, ratios, events per minute).\n")
	b.WriteString("# TYPE canary_signal gauge\n")
	var baselines []string
	for _, c := range cols {
		if !ok {
			break
		}
		m, found := row.Reading(c.spec.Name)
		switch {
		case !found:
			fmt.Fprintf(&b, "# skipped %s: no reading in the row\n", promComment(c.spec.Name))
			continue
		case !usable(m):
			fmt.Fprintf(&b, "# skipped %s: %s %s\n", promComment(c.spec.Name), promComment(verdictOrDash(m.Verdict)), promComment(m.Reason))
			continue
		}
		fmt.Fprintf(&b, "canary_signal{signal=%s,stage=%s} %s\n", promLabel(c.spec.Name), promLabel(stage), promValue(m.Value))
		if m.Baseline != nil {
			baselines = append(baselines, fmt.Sprintf("canary_signal_baseline{signal=%s,stage=%s} %s\n",
				promLabel(c.spec.Name), promLabel(stage), promValue(*m.Baseline)))
		}
	}
	if len(baselines) > 0 {
		b.WriteString("# HELP canary_signal_baseline Stable-track value a relative signal was judged against in the same row.\n")
		b.WriteString("# TYPE canary_signal_baseline gauge\n")
		for _, l := range baselines {
			b.WriteString(l)
		}
	}
	return b.Bytes()
}

// baselineRow is the last row recorded at 100% during the stages.
func baselineRow(r *rollout.Release) (rollout.Row, bool) {
	for i := len(r.Rows) - 1; i >= 0; i-- {
		row := r.Rows[i]
		if row.Stage > 0 && row.Phase != rollout.PhaseFirstNight && row.Weight == 100 {
			return row, true
		}
	}
	return rollout.Row{}, false
}

func promLabel(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func promValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// promComment keeps free text on its comment line.
func promComment(s string) string {
	return oneLine(s)
}

// NightSnapshot is one first-night snapshot: its table row and, per signal,
// the move from the stage-100 baseline (the row Baseline renders), flagged
// with ⚠ when it covered more than 20% of the baseline's headroom to the
// bound.
func (rd Renderer) NightSnapshot(p *rollout.Plan, r *rollout.Release, row rollout.Row) []byte {
	p, r = planOf(p), releaseOf(r)
	var b bytes.Buffer
	fmt.Fprintf(&b, "version:  %s\n", versionLine(p, r))
	n := 1
	for _, x := range snapshotRows(r) {
		if x.At.Before(row.At) {
			n++
		}
	}
	fmt.Fprintf(&b, "snapshot: %d of %d\n", n, len(p.FirstNight.Snapshots()))
	into := ""
	if r.Phase == rollout.PhaseFirstNight && !r.PhaseStarted.IsZero() && !row.At.Before(r.PhaseStarted) {
		into = fmt.Sprintf(" (%s into the first night)", fmtDur(row.At.Sub(r.PhaseStarted)))
	}
	fmt.Fprintf(&b, "at:       %s%s\n", rd.stamp(row.At), into)
	base, haveBase := baselineRow(r)
	if haveBase {
		fmt.Fprintf(&b, "baseline: last stage-100 row at %s\n", rd.stamp(base.At))
	} else {
		b.WriteString("baseline: none (no stage-100 row recorded)\n")
	}

	b.WriteString("\n" + rd.TableHeader(p) + "\n" + rd.TableRow(p, row) + "\n")

	fmt.Fprintf(&b, "\nagainst the baseline (⚠ = moved more than %.0f%% of the way from the baseline to its bound):\n", nightFlag*100)
	for _, c := range columns(p) {
		fmt.Fprintf(&b, "  %s\n", nightDiff(c.spec, base, haveBase, row).text())
	}
	b.WriteString("\n")
	rd.alertLines(&b, row.Alerts)
	fmt.Fprintf(&b, "decision: %s\n", decisionText(row.Decision))
	return b.Bytes()
}

// diff is one signal's move between the baseline row and a later row.
type diff struct {
	spec          rollout.SignalSpec
	base, cur     float64
	baseOK, curOK bool
	curM          rollout.Measurement
	curFound      bool
	used          float64 // fraction of the headroom used; NaN without headroom
	flagged       bool
}

func nightDiff(s rollout.SignalSpec, baseRow rollout.Row, haveBase bool, row rollout.Row) diff {
	d := diff{spec: s, used: math.NaN()}
	if haveBase {
		if m, ok := baseRow.Reading(s.Name); ok {
			d.base, d.baseOK = quantity(s, m)
		}
	}
	d.curM, d.curFound = row.Reading(s.Name)
	if d.curFound {
		d.cur, d.curOK = quantity(s, d.curM)
	}
	if !d.baseOK || !d.curOK {
		return d
	}
	moved, headroom := d.cur-d.base, quantityBound(s)-d.base
	if headroom > 0 {
		d.used = moved / headroom
	}
	d.flagged = moved > 0 && (headroom <= 0 || d.used > nightFlag)
	return d
}

func (d diff) text() string {
	s := d.spec
	from, to := "n/a", "n/a"
	if d.baseOK {
		from = fmtQuantity(s, d.base)
	}
	if d.curOK {
		to = fmtQuantity(s, d.cur)
	}
	if s.Relative {
		if d.baseOK {
			from = "baseline" + from
		}
		if d.curOK {
			to = "baseline" + to
		}
	}
	line := fmt.Sprintf("%s: %s → %s", s.Name, from, to)
	switch {
	case !d.curFound:
		return line + " (no reading in this row)"
	case !d.curOK:
		why := verdictOrDash(d.curM.Verdict)
		if d.curM.Reason != "" {
			why += ": " + oneLine(d.curM.Reason)
		}
		return line + " (" + why + ")"
	case !d.baseOK:
		return line + " (no baseline reading)"
	}
	line += " (" + change(s, d.base, d.cur) + ")"
	if d.curM.Verdict != rollout.Pass {
		line += " " + verdictOrDash(d.curM.Verdict)
	}
	if d.flagged {
		if math.IsNaN(d.used) {
			line += fmt.Sprintf(" ⚠ moved toward its bound %s with no headroom left", s.BoundText())
		} else {
			line += fmt.Sprintf(" ⚠ moved %.0f%% of the way to its bound %s", d.used*100, s.BoundText())
		}
	}
	return line
}

// change is how much a quantity moved: relative for a value, in percentage
// points for a distance from the baseline (already a percentage).
func change(s rollout.SignalSpec, from, to float64) string {
	if s.Relative {
		pts := math.Round((to - from) * 100)
		if pts == 0 {
			pts = 0
		}
		return fmt.Sprintf("%+.0f pts", pts)
	}
	switch {
	case from != 0:
		pct := (to - from) / math.Abs(from) * 100
		if math.Abs(pct) < 0.05 {
			pct = 0
		}
		return fmt.Sprintf("%+.1f%%", pct)
	case to == 0:
		return "+0.0%"
	}
	return "from 0"
}
