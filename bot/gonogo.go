package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/slack-go/slack"

	"github.com/canarybot/canarybot/rollout"
)

// ReviewItem is one check of the T-5 red-team review.
type ReviewItem struct {
	// ID is the checkbox's value; stable, so a ticked item is recognised.
	ID string `yaml:"id" json:"id"`
	// Text is what the reviewer checks (at most 75 characters: Slack's
	// limit on an option's text).
	Text string `yaml:"text" json:"text"`
	// Guards is what the check protects against (at most 75 characters).
	Guards string `yaml:"guards" json:"guards"`
}

// Slack's limits on a checkbox option and on one checkboxes element.
const (
	maxOptionChars     = 75
	maxCheckboxOptions = 10
)

// DefaultRedTeamReview is the runbook's T-5 red-team review: 15 checks a
// person makes because no gate can, each with what it guards against.
func DefaultRedTeamReview() []ReviewItem {
	return []ReviewItem{
		{"RT01", "Diff since the last release read end to end", "an unreviewed change riding along with the release"},
		{"RT02", "Schema migrations are backward compatible", "stable pods breaking on the new schema mid-canary"},
		{"RT03", "Feature flags for new paths default to off", "new code paths switching on for all traffic at once"},
		{"RT04", "Rollback path tested: drill log is clean", "a rollback that fails when it is finally needed"},
		{"RT05", "Idempotency keys unchanged for retried requests", "double orders or charges when clients retry"},
		{"RT06", "Decimal/tick rounding unchanged or covered by tests", "prices drifting by a tick between old and new code"},
		{"RT07", "WebSocket protocol compatible with current clients", "stale or dropped feeds for clients on the old protocol"},
		{"RT08", "Outbox and queue consumers tolerate both versions", "messages lost or replayed while two versions run"},
		{"RT09", "CSP and security headers unchanged or reviewed", "an XSS hole or a flood of blocked legitimate assets"},
		{"RT10", "No new secrets in code, config or logs", "credentials leaking through the repo, image or logs"},
		{"RT11", "New dependencies' licenses and CVEs checked", "a GPL or known-vulnerable package shipped unnoticed"},
		{"RT12", "Dashboards and the 8 signal queries read the canary", "a canary judged on the stable track's numbers"},
		{"RT13", "Alert rules with auto_rollback labels are loaded", "a trigger that never fires during the canary"},
		{"RT14", "On-call and the IC are named and reachable", "a page at night that nobody answers"},
		{"RT15", "Capacity headroom for 100% on the new version", "saturation only at the last stage or the first night"},
	}
}

// ReviewBlockID is the block ID of the i-th (0-based) group of checklist
// checkboxes: Slack allows at most 10 options per element.
func ReviewBlockID(i int) string { return fmt.Sprintf("canary_review_%d", i) }

// ReviewTicked returns the IDs of the checklist items ticked in a block
// action's state (InteractionCallback.BlockActionState), in checklist order
// of the groups.
func ReviewTicked(state *slack.BlockActionStates) []string {
	if state == nil {
		return nil
	}
	var blockIDs []string
	for id := range state.Values {
		blockIDs = append(blockIDs, id)
	}
	slices.Sort(blockIDs)
	var out []string
	for _, id := range blockIDs {
		if a, ok := state.Values[id][ActionReviewItems]; ok {
			for _, o := range a.SelectedOptions {
				out = append(out, o.Value)
			}
		}
	}
	return out
}

// ReviewNote is the red-team review's record for the war-room log and the
// engine's review step: how many items were ticked and which were not.
func ReviewNote(items []ReviewItem, ticked []string) string {
	var missing []string
	for _, it := range items {
		if !slices.Contains(ticked, it.ID) {
			missing = append(missing, it.ID+" "+it.Text)
		}
	}
	note := fmt.Sprintf("%d/%d review items ticked", len(items)-len(missing), len(items))
	if len(missing) > 0 {
		note += "; not ticked: " + strings.Join(missing, "; ")
	}
	return note
}

// ReviewRef and GoNoGoRef are the outbox refs of a release's red-team
// checklist and go/no-go messages; ReleaseRef is its opening message,
// whose thread holds the timeline's announcements.
func ReviewRef(release string) string  { return release + "/review" }
func GoNoGoRef(release string) string  { return release + "/go_nogo" }
func ReleaseRef(release string) string { return release + "/opening" }

// reviewBlocks lays out the red-team checklist: the items as checkboxes
// (ten to a group) and a button to record the review, or, once recorded,
// the outcome in their place.
func reviewBlocks(version, release string, items []ReviewItem, st GateState, interactive bool) ([]slack.Block, string) {
	title := truncate(fmt.Sprintf("%s · red-team review (T-5)", version), maxHeaderChars)
	blocks := []slack.Block{slack.NewHeaderBlock(plainText(title))}
	if st.Outcome != "" {
		var lines []string
		for _, it := range items {
			mark := "☐"
			if who, ok := st.Ticked[it.ID]; ok {
				mark = "☑ " + escapeMrkdwn(who) + ":"
			}
			lines = append(lines, fmt.Sprintf("%s *%s* %s", mark, it.ID, escapeMrkdwn(it.Text)))
		}
		blocks = append(blocks,
			slack.NewSectionBlock(mrkdwnText(truncate(escapeMrkdwn(st.Outcome), MaxSectionChars)), nil, nil),
			slack.NewContextBlock("", mrkdwnText(truncate(strings.Join(lines, "\n"), maxContextChars))),
		)
		return blocks, truncate(title+" — "+st.Outcome, maxFallbackChars)
	}
	if !interactive {
		var lines []string
		for _, it := range items {
			lines = append(lines, fmt.Sprintf("☐ *%s* %s — _%s_", it.ID, escapeMrkdwn(it.Text), escapeMrkdwn(it.Guards)))
		}
		blocks = append(blocks,
			slack.NewSectionBlock(mrkdwnText(truncate(strings.Join(lines, "\n"), MaxSectionChars)), nil, nil),
			slack.NewContextBlock("", mrkdwnText("Record the review with `canarybot review [note]` when every item is checked.")),
		)
		return blocks, title
	}
	blocks = append(blocks, slack.NewSectionBlock(mrkdwnText(
		"Reviewers: tick each item once you have checked it, then press *Record review*. Unticked items are recorded as such."), nil, nil))
	for i := 0; i < len(items); i += maxCheckboxOptions {
		var opts, ticked []*slack.OptionBlockObject
		for _, it := range items[i:min(i+maxCheckboxOptions, len(items))] {
			o := slack.NewOptionBlockObject(it.ID,
				mrkdwnText(truncate(fmt.Sprintf("*%s* %s", it.ID, escapeMrkdwn(it.Text)), maxOptionChars)),
				plainText(truncate(it.Guards, maxOptionChars)))
			opts = append(opts, o)
			if _, ok := st.Ticked[it.ID]; ok {
				ticked = append(ticked, o)
			}
		}
		cb := slack.NewCheckboxGroupsBlockElement(ActionReviewItems, opts...)
		cb.InitialOptions = ticked
		blocks = append(blocks, slack.NewActionBlock(ReviewBlockID(i/maxCheckboxOptions), cb))
	}
	if len(st.Ticked) > 0 {
		var who []string
		for _, u := range st.Ticked {
			if !slices.Contains(who, u) {
				who = append(who, u)
			}
		}
		slices.Sort(who)
		blocks = append(blocks, slack.NewContextBlock("", mrkdwnText(truncate(
			fmt.Sprintf("%d/%d ticked, by %s", len(st.Ticked), len(items), escapeMrkdwn(strings.Join(who, ", "))), maxContextChars))))
	}
	blocks = append(blocks, slack.NewActionBlock(BlockReviewActions,
		confirmedButton(ActionReviewDone, StageActionValue(release, 0), "Record review",
			fmt.Sprintf("Record the red-team review of %s? The ticked and unticked items go in the war-room log.", version), slack.StylePrimary)))
	return blocks, title + " — tick the items, then record the review"
}

// goNoGoBlocks lays out the go/no-go message: every timeline step's
// outcome, the green button's first, and the IC's GO / NO-GO buttons, or
// the decision once given.
func goNoGoBlocks(rel ReleaseMessages, st GateState, interactive bool) ([]slack.Block, string) {
	title := truncate(fmt.Sprintf("%s · GO / NO-GO (T-0)", rel.Version), maxHeaderChars)
	blocks := []slack.Block{slack.NewHeaderBlock(plainText(title))}
	green := "*Green button (T-2):* not run"
	var lines []string
	for _, s := range rel.Steps {
		line := fmt.Sprintf("%s *%s*: %s", statusMark(s.Status), s.Name, s.Status)
		if s.Detail != "" {
			line += " — " + escapeMrkdwn(s.Detail)
		}
		lines = append(lines, line)
		if s.Name == rollout.StepGreenButton {
			green = fmt.Sprintf("*Green button (T-2):* %s %s", statusMark(s.Status), s.Status)
			if s.Detail != "" {
				green += " — " + escapeMrkdwn(s.Detail)
			}
			if s.Status == rollout.GateSkipped {
				green += "\n_Skipped is not passed: the SBOM and provenance were not checked by canarybot._"
			}
		}
	}
	blocks = append(blocks, slack.NewSectionBlock(mrkdwnText(truncate(green, MaxSectionChars)), nil, nil))
	if len(lines) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwnText(truncate("*Timeline so far*\n"+strings.Join(lines, "\n"), MaxSectionChars)), nil, nil))
	}
	fallback := title + " — waiting for the IC"
	switch {
	case st.Outcome != "":
		blocks = append(blocks, slack.NewSectionBlock(mrkdwnText(truncate("*Decision:* "+escapeMrkdwn(st.Outcome), MaxSectionChars)), nil, nil))
		fallback = title + " — " + st.Outcome
	case interactive:
		ic := "the Incident Commander"
		if who := rel.Actors[actorIC]; who != "" {
			ic += " (" + escapeMrkdwn(who) + ")"
		}
		blocks = append(blocks,
			slack.NewContextBlock("", mrkdwnText("Stage 1 starts only after a GO. Only "+ic+" may decide.")),
			slack.NewActionBlock(BlockGoNoGoActions,
				confirmedButton(ActionGo, StageActionValue(rel.Release, 0), "GO",
					fmt.Sprintf("GO for %s? Stage 1 starts and canary traffic begins. Recorded with your name and the time.", rel.Version), slack.StylePrimary),
				confirmedButton(ActionNoGo, StageActionValue(rel.Release, 0), "NO-GO",
					fmt.Sprintf("NO-GO for %s? The release is aborted before any traffic moves.", rel.Version), slack.StyleDanger),
			))
	default:
		blocks = append(blocks, slack.NewContextBlock("", mrkdwnText("Stage 1 starts only after the IC's GO: `canarybot go` (or `canarybot abort <reason>` for NO-GO).")))
	}
	return blocks, truncate(fallback, maxFallbackChars)
}

func statusMark(s rollout.GateStatus) string {
	switch s {
	case rollout.GatePassed:
		return "✅"
	case rollout.GateFailed:
		return "❌"
	case rollout.GateSkipped:
		return "⏭️"
	}
	return "•"
}

// Keys of ReleaseMessages.Actors.
const (
	actorIC = "ic"
)

// stepEvent reads a timeline step's outcome from the engine's announcement
// "step <name>: <status>[ (<detail>)]" (rollout.Machine.StepDone). The
// event carries no structured step yet; see the report on rollout.Event.
func stepEvent(ev rollout.Event) (StepResult, bool) {
	if ev.Kind != rollout.EventPhase {
		return StepResult{}, false
	}
	rest, ok := strings.CutPrefix(ev.Text, "step ")
	if !ok {
		return StepResult{}, false
	}
	name, rest, ok := strings.Cut(rest, ": ")
	if !ok || string(ev.Phase) != name {
		return StepResult{}, false
	}
	status, detail, _ := strings.Cut(rest, " (")
	switch rollout.GateStatus(status) {
	case rollout.GatePassed, rollout.GateFailed, rollout.GateSkipped:
	default:
		return StepResult{}, false
	}
	return StepResult{Name: rollout.StepName(name), Status: rollout.GateStatus(status), Detail: strings.TrimSuffix(detail, ")"), At: ev.At}, true
}

// commandEvent reads who gave an accepted command from the engine's
// announcement "<user>: `<command>`" (rollout.Machine.Apply).
func commandEvent(ev rollout.Event) (user string, kind rollout.CommandKind, ok bool) {
	if ev.Kind != rollout.EventCommand {
		return "", "", false
	}
	user, rest, ok := strings.Cut(ev.Text, ": `")
	if !ok || !strings.HasSuffix(rest, "`") || strings.Contains(user, " ") {
		return "", "", false
	}
	verb, _, _ := strings.Cut(strings.TrimSuffix(rest, "`"), " ")
	return user, rollout.CommandKind(verb), true
}

// nextStep is the timeline step after name, "" after the last.
func nextStep(plan *rollout.Plan, name rollout.StepName) rollout.StepName {
	for i, s := range plan.Timeline {
		if s.Name == name && i+1 < len(plan.Timeline) {
			return plan.Timeline[i+1].Name
		}
	}
	return ""
}

// gates updates the review and go/no-go messages for an event: the
// checklist goes up as the release reaches the red-team review, the
// go/no-go message as it reaches go/no-go (after the green button, T-2),
// and each is closed with its outcome.
func (n *SlackNotifier) gates(rel *ReleaseMessages, key string, ev rollout.Event, add func(OutboxMessage)) {
	if n.Plan == nil {
		return
	}
	at := ev.At.UTC().Format("15:04 MST")
	if user, kind, ok := commandEvent(ev); ok {
		if rel.Actors == nil {
			rel.Actors = map[string]string{}
		}
		rel.Actors[string(kind)] = user
	}
	if ev.Kind == rollout.EventCommand && strings.HasSuffix(ev.Text, " is now the Incident Commander") {
		if rel.Actors == nil {
			rel.Actors = map[string]string{}
		}
		rel.Actors[actorIC] = strings.TrimSuffix(ev.Text, " is now the Incident Commander")
	}
	var entering rollout.StepName
	if s, ok := stepEvent(ev); ok {
		rel.Steps = append(slices.DeleteFunc(rel.Steps, func(x StepResult) bool { return x.Name == s.Name }), s)
		switch {
		case s.Name == rollout.StepRedTeam && rel.Review != nil && rel.Review.Outcome == "":
			rel.Review.Outcome = fmt.Sprintf("✅ Review recorded at %s%s: %s", at, by(rel.Actors[string(rollout.CmdReview)]), cmp(s.Detail, "no note"))
			add(n.reviewMessage(*rel, key+"/review"))
		case s.Name == rollout.StepGoNoGo && rel.GoNoGo != nil && rel.GoNoGo.Outcome == "":
			rel.GoNoGo.Outcome = fmt.Sprintf("GO ✅ at %s%s", at, by(rel.Actors[string(rollout.CmdGo)]))
			add(n.goNoGoMessage(*rel, key+"/go_nogo"))
		}
		if s.Status != rollout.GateFailed {
			entering = nextStep(n.Plan, s.Name)
		}
	} else if ev.Kind == rollout.EventPhase && len(n.Plan.Timeline) > 0 && ev.Phase == rollout.Phase(n.Plan.Timeline[0].Name) {
		// The release's opening: its first step may be a gate.
		entering = n.Plan.Timeline[0].Name
		// "Release <version> scheduled: <when>. IC: <user>"
		if i := strings.LastIndex(ev.Text, ". IC: "); i >= 0 {
			if rel.Actors == nil {
				rel.Actors = map[string]string{}
			}
			rel.Actors[actorIC] = ev.Text[i+len(". IC: "):]
		}
	}
	switch entering {
	case rollout.StepRedTeam:
		if rel.Review == nil {
			rel.Review = &GateState{Posted: ev.At}
			add(n.reviewMessage(*rel, key+"/review"))
		}
	case rollout.StepGoNoGo:
		if rel.GoNoGo == nil {
			rel.GoNoGo = &GateState{Posted: ev.At}
			add(n.goNoGoMessage(*rel, key+"/go_nogo"))
		}
	}
	if ev.Phase == rollout.PhaseAborted && (ev.Kind == rollout.EventPage || ev.Kind == rollout.EventDone) {
		reason := strings.TrimPrefix(ev.Text, "Release aborted: ")
		if rel.GoNoGo != nil && rel.GoNoGo.Outcome == "" {
			rel.GoNoGo.Outcome = fmt.Sprintf("NO-GO ⛔ at %s%s: %s", at, by(rel.Actors[string(rollout.CmdAbort)]), reason)
			add(n.goNoGoMessage(*rel, key+"/go_nogo"))
		}
		if rel.Review != nil && rel.Review.Outcome == "" {
			rel.Review.Outcome = "Closed unrecorded: the release was aborted at " + at
			add(n.reviewMessage(*rel, key+"/review"))
		}
	}
}

// ErrNoReview is returned by RecordReviewTicks when the release has no open
// red-team checklist.
var ErrNoReview = errors.New("no open red-team review for this release")

// RecordReviewTicks records the checklist as a reviewer's press left it
// (ticked: ReviewTicked of the interaction's state) and updates the message
// so every reviewer sees the same ticks. It returns the review's note for
// rollout.CmdReview. The interactions endpoint calls it for each
// ActionReviewItems press.
func (n *SlackNotifier) RecordReviewTicks(ctx context.Context, release, user string, ticked []string) (string, error) {
	if n.Store == nil || n.Outbox == nil {
		return "", ErrSlackStoreMissing
	}
	items := n.reviewItems()
	note, err := n.recordTicks(ctx, release, user, ticked, items)
	if err != nil {
		return "", err
	}
	if err := n.Outbox.Flush(ctx); err != nil {
		if _, ok := errors.AsType[*DeferredError](err); !ok {
			return note, fmt.Errorf("slack notifier: %w", err)
		}
	}
	return note, nil
}

func (n *SlackNotifier) recordTicks(ctx context.Context, release, user string, ticked []string, items []ReviewItem) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	rel, found, err := n.Store.ReleaseMessages(ctx, release)
	if err != nil {
		return "", fmt.Errorf("slack notifier: load release %s: %w", release, err)
	}
	if !found || rel.Review == nil || rel.Review.Outcome != "" {
		return "", fmt.Errorf("%w: %s", ErrNoReview, release)
	}
	now := make(map[string]string, len(ticked))
	for _, it := range items {
		if !slices.Contains(ticked, it.ID) {
			continue
		}
		if who, ok := rel.Review.Ticked[it.ID]; ok {
			now[it.ID] = who // whoever ticked it first keeps the credit
		} else {
			now[it.ID] = user
		}
	}
	rel.Review.Ticked = now
	rel.Review.Revision++
	key := fmt.Sprintf("%s/review/ticks/%d", release, rel.Review.Revision)
	c := SlackChange{Release: &rel, Messages: []OutboxMessage{n.reviewMessage(rel, key)}}
	if err := n.Store.Record(ctx, key, n.Outbox.clock().Now(), c); err != nil {
		return "", fmt.Errorf("slack notifier: record review ticks: %w", err)
	}
	var ids []string
	for id := range now {
		ids = append(ids, id)
	}
	return ReviewNote(items, ids), nil
}

func by(user string) string {
	if user == "" {
		return ""
	}
	return " by " + user
}

func (n *SlackNotifier) reviewItems() []ReviewItem {
	if len(n.Review) > 0 {
		return n.Review
	}
	return DefaultRedTeamReview()
}

func (n *SlackNotifier) reviewMessage(rel ReleaseMessages, key string) OutboxMessage {
	blocks, text := reviewBlocks(rel.Version, rel.Release, n.reviewItems(), *rel.Review, n.Buttons)
	return n.upsert(key, ReviewRef(rel.Release), blocks, text)
}

func (n *SlackNotifier) goNoGoMessage(rel ReleaseMessages, key string) OutboxMessage {
	blocks, text := goNoGoBlocks(rel, *rel.GoNoGo, n.Buttons)
	return n.upsert(key, GoNoGoRef(rel.Release), blocks, text)
}
