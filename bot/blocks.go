package bot

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/canarybot/canarybot/rollout"
)

// Slack's limits on what the bot posts.
const (
	// MaxBlocks is Slack's limit on blocks in one message.
	MaxBlocks = 50
	// MaxSectionChars is Slack's limit on a section's text.
	MaxSectionChars = 3000
	// maxHeaderChars is Slack's limit on a header's text.
	maxHeaderChars = 150
	// maxContextChars is Slack's limit on one context element's text.
	maxContextChars = 2000
	// maxFallbackChars keeps the notification text short; Slack truncates
	// at 40,000 and recommends far less.
	maxFallbackChars = 1000
)

// Action IDs of the buttons the war-room messages carry, for the
// interactions endpoint. Stage buttons carry StageActionValue(release,
// stage); the GO / NO-GO buttons and the review button carry
// StageActionValue(release, 0). ParseActionValue reads either back.
const (
	ActionPromote  = "canary_promote"
	ActionHold     = "canary_hold"
	ActionRollback = "canary_rollback"
	// ActionGo and ActionNoGo are the IC's decision at go/no-go
	// (rollout.CmdGo and rollout.CmdAbort).
	ActionGo   = "canary_go"
	ActionNoGo = "canary_nogo"
	// ActionReviewItems is the action ID of the red-team checklist's
	// checkboxes (one element per block, ReviewBlockID(i)); option values
	// are ReviewItem.ID.
	ActionReviewItems = "canary_review_items"
	// ActionReviewDone records the red-team review (rollout.CmdReview) with
	// ReviewNote of the ticked items.
	ActionReviewDone = "canary_review_done"
)

// Block IDs of the stage message's and the go/no-go message's button rows.
const (
	BlockStageActions  = "canary_stage_actions"
	BlockGoNoGoActions = "canary_gonogo_actions"
	BlockReviewActions = "canary_review_actions"
)

// ErrBadActionValue is returned by ParseActionValue for a value no
// canarybot button carries.
var ErrBadActionValue = errors.New("not a canarybot button value")

// StageActionValue is the value of a war-room button: the release and the
// 1-based stage it was pressed on, 0 before the stages. A press on an older
// stage's message names that stage, so the endpoint can refuse it.
func StageActionValue(release string, stage int) string {
	return fmt.Sprintf("%s#%d", release, stage)
}

// ParseActionValue reads a button's value back.
func ParseActionValue(v string) (release string, stage int, err error) {
	i := strings.LastIndexByte(v, '#')
	if i <= 0 {
		return "", 0, fmt.Errorf("%w: %q has no #stage", ErrBadActionValue, v)
	}
	stage, err = strconv.Atoi(v[i+1:])
	if err != nil || stage < 0 {
		return "", 0, fmt.Errorf("%w: %q: stage %q is not a number ≥ 0", ErrBadActionValue, v, v[i+1:])
	}
	return v[:i], stage, nil
}

// verdictMark is a verdict in one character for the table.
func verdictMark(v rollout.Verdict) string {
	switch v {
	case rollout.Pass:
		return "✓"
	case rollout.Rising:
		return "▲"
	case rollout.Breach:
		return "✗"
	case rollout.NoData:
		return "∅"
	case rollout.Error:
		return "!"
	}
	return "?"
}

// Trend arrows.
const (
	ArrowRising  = "↑"
	ArrowFlat    = "→"
	ArrowFalling = "↓"
	ArrowUnknown = "·" // fewer than two readings to draw a line through
)

// tableLegend explains the marks under the table.
const tableLegend = "verdict: ✓ pass  ▲ rising  ✗ breach  ∅ no data  ! query error  |  trend: ↑ rising  → flat  ↓ falling  · too few readings"

// flatBand is the share of a signal's bound within which its trend line,
// run over the trend horizon, counts as flat: a wobble of 1 ms on a 200 ms
// bound is not news.
const flatBand = 0.05

// trendArrow is the direction of a signal over the stage's recent readings:
// the least-squares line through the readings within the plan's trend
// lookback (the engine's own window), projected over its horizon, against
// a flat band of 5% of the bound. A reading the engine judged Rising is
// always ↑, whatever the band says.
func trendArrow(rule rollout.TrendRule, cur RowReading, curAt time.Time, history []timedReading) string {
	if cur.Verdict == rollout.Rising {
		return ArrowRising
	}
	if !judged(cur.Verdict) {
		return ArrowUnknown
	}
	lookback, horizon := rule.Lookback, rule.Horizon
	if lookback <= 0 {
		lookback = 15 * time.Minute
	}
	if horizon <= 0 {
		horizon = 15 * time.Minute
	}
	var xs, ys []float64
	// Newest first: history is in time order, and only the lookback counts.
	for i := len(history) - 1; i >= 0; i-- {
		h := history[i]
		if curAt.Sub(h.At) > lookback {
			break
		}
		if !judged(h.Verdict) || h.At.After(curAt) {
			continue
		}
		xs = append(xs, h.At.Sub(curAt).Seconds())
		ys = append(ys, h.Value)
	}
	xs, ys = append(xs, 0), append(ys, cur.Value)
	if len(xs) < 2 {
		return ArrowUnknown
	}
	n := float64(len(xs))
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx, my = mx/n, my/n
	var sxx, sxy float64
	for i := range xs {
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxy += (xs[i] - mx) * (ys[i] - my)
	}
	if sxx == 0 {
		return ArrowUnknown
	}
	change := sxy / sxx * horizon.Seconds()
	band := flatBand * math.Max(math.Abs(cur.Bound), math.Abs(cur.Value))
	switch {
	case change > band && change > 0:
		return ArrowRising
	case change < -band && change < 0:
		return ArrowFalling
	}
	return ArrowFlat
}

func judged(v rollout.Verdict) bool {
	return v == rollout.Pass || v == rollout.Rising || v == rollout.Breach
}

type timedReading struct {
	RowReading
	At time.Time
}

// stageTable renders a stage's rows as a code block within Slack's section
// limit: a row per tick, each signal's value with its verdict mark and
// trend arrow, and the tick's decision. The oldest rows are dropped first
// with a note: the latest ticks are what the room decides on, and every row
// is in the stage's evidence file.
func stageTable(plan *rollout.Plan, m StageMessage) string {
	var cols []string
	var specs []rollout.SignalSpec
	if plan != nil {
		specs = plan.Signals
	}
	cols = append(cols, "HH:MM")
	for _, s := range specs {
		cols = append(cols, cmp(s.Column, s.Name))
	}
	cols = append(cols, "decision")
	rule := rollout.TrendRule{}
	if plan != nil {
		rule = plan.Trend
	}
	history := map[string][]timedReading{}
	lines := make([][]string, 0, len(m.Rows))
	for _, r := range m.Rows {
		if len(r.Readings) == 0 || len(specs) == 0 {
			lines = append(lines, []string{r.Text})
			continue
		}
		cells := []string{r.At.UTC().Format("15:04")}
		for _, s := range specs {
			rd, ok := r.reading(s.Name)
			if !ok {
				cells = append(cells, "-")
				continue
			}
			value := "n/a"
			if judged(rd.Verdict) {
				value = s.Format(rd.Value)
			}
			arrow := trendArrow(rule, rd, r.At, history[s.Name])
			cells = append(cells, value+verdictMark(rd.Verdict)+arrow)
			history[s.Name] = append(history[s.Name], timedReading{rd, r.At})
		}
		cells = append(cells, string(r.Decision))
		lines = append(lines, cells)
	}
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = utf8.RuneCountInString(c)
	}
	for _, l := range lines {
		if len(l) != len(cols) {
			continue
		}
		for i, c := range l {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	format := func(cells []string) string {
		if len(cells) != len(widths) {
			return strings.Join(cells, " ")
		}
		var b strings.Builder
		for i, c := range cells {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(c)
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)))
			}
		}
		return escapeMrkdwn(b.String())
	}
	header := format(cols)
	if len(specs) == 0 {
		header = "(signal table)"
	}
	if len(lines) == 0 {
		return "```" + header + "\n(no ticks yet)```"
	}
	rows := make([]string, len(lines))
	for i, l := range lines {
		rows[i] = format(l)
	}
	return fitSection(header, rows)
}

// fitSection joins the header and the newest rows that fit Slack's section
// limit into one code block, with a note counting the rows left out.
func fitSection(header string, rows []string) string {
	const fences = len("```") * 2
	size := fences + len(header)
	for _, r := range rows {
		size += 1 + len(r)
	}
	if size <= MaxSectionChars {
		return "```" + header + "\n" + strings.Join(rows, "\n") + "```"
	}
	note := func(n int) string { return fmt.Sprintf("… %d earlier ticks in the stage's evidence file", n) }
	// Reserve room for the longest note there can be.
	budget := MaxSectionChars - fences - len(header) - 1 - len(note(len(rows)))
	first := len(rows)
	for first > 0 && budget >= 1+len(rows[first-1]) {
		first--
		budget -= 1 + len(rows[first])
	}
	if first == len(rows) {
		first-- // not even the newest row fits: show it cut
	}
	parts := append([]string{header, note(first)}, rows[first:]...)
	return truncate("```"+strings.Join(parts, "\n")+"```", MaxSectionChars)
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// stageBlocks lays out a stage message and the plain text Slack shows in
// notifications. It stays within Slack's limits however long the stage:
// at most six blocks, the table cut from the top.
func stageBlocks(plan *rollout.Plan, m StageMessage, buttons bool) ([]slack.Block, string) {
	title := fmt.Sprintf("%s · stage %d/%d · weight %d%%", m.Version, m.Stage, m.Stages, m.Weight)
	if m.Stages == 0 {
		title = fmt.Sprintf("%s · stage %d · weight %d%%", m.Version, m.Stage, m.Weight)
	}
	title = truncate(title, maxHeaderChars)
	decision := m.Decision
	if decision == "" {
		decision = "waiting for the first tick"
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(plainText(title)),
	}
	if m.Intro != "" {
		blocks = append(blocks, slack.NewContextBlock("", mrkdwnText(truncate(escapeMrkdwn(m.Intro), maxContextChars))))
	}
	blocks = append(blocks,
		slack.NewSectionBlock(mrkdwnText(stageTable(plan, m)), nil, nil),
		slack.NewContextBlock("", mrkdwnText(tableLegend)),
		slack.NewSectionBlock(mrkdwnText(truncate("*Decision:* "+escapeMrkdwn(decision), MaxSectionChars)), nil, nil),
	)
	switch {
	case m.Closed != "":
		blocks = append(blocks, slack.NewContextBlock("", mrkdwnText(truncate(escapeMrkdwn(m.Closed), maxContextChars))))
	case buttons:
		blocks = append(blocks, stageButtons(m))
	}
	return blocks, truncate(title+" — "+decision, maxFallbackChars)
}

func stageButtons(m StageMessage) *slack.ActionBlock {
	value := StageActionValue(m.Release, m.Stage)
	return slack.NewActionBlock(BlockStageActions,
		confirmedButton(ActionPromote, value, "Promote", fmt.Sprintf("Promote %s past stage %d? Only the Incident Commander may, and only on Proceed.", m.Version, m.Stage), slack.StylePrimary),
		confirmedButton(ActionHold, value, "Hold", fmt.Sprintf("Hold %s at stage %d for the plan's hold time? Only the Incident Commander may.", m.Version, m.Stage), ""),
		confirmedButton(ActionRollback, value, "Rollback", fmt.Sprintf("Roll %s back from stage %d? Canary weight goes to 0 at once.", m.Version, m.Stage), slack.StyleDanger),
	)
}

// confirmedButton is a button behind Slack's confirmation dialog: one
// mis-click must not move production traffic.
func confirmedButton(id, value, label, confirm string, style slack.Style) *slack.ButtonBlockElement {
	b := slack.NewButtonBlockElement(id, value, plainText(label))
	if style != "" {
		b = b.WithStyle(style)
	}
	return b.WithConfirm(slack.NewConfirmationBlockObject(
		plainText(label+"?"),
		mrkdwnText(escapeMrkdwn(confirm)),
		plainText(label),
		plainText("Cancel"),
	))
}

func plainText(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
}

func mrkdwnText(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

func decisionLine(d rollout.Decision) string {
	if d.Kind == "" {
		return ""
	}
	s := string(d.Kind)
	if d.Auto {
		s += " (auto)"
	}
	if d.Reason != "" {
		s += ": " + d.Reason
	}
	return s
}

// escapeMrkdwn escapes what Slack reads as control sequences, so a reason
// typed by a person cannot ping @channel or forge a link.
func escapeMrkdwn(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
