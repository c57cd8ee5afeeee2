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
		if who := rel.IC; who != "" {
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

// nextStep is the timeline step after name, "" after the last or without
// a plan.
func nextStep(plan *rollout.Plan, name rollout.StepName) rollout.StepName {
	if plan == nil {
		return ""
	}
	for i, s := range plan.Timeline {
		if s.Name == name && i+1 < len(plan.Timeline) {
			return plan.Timeline[i+1].Name
		}
	}
	return ""
}

// noteCommand keeps the IC and who gave each accepted command at the
// red-team review and at go/no-go (ReleaseMessages.Acts).
func noteCommand(rel *ReleaseMessages, ev rollout.Event) {
	prevIC := rel.IC
	if ev.IC != "" {
		rel.IC = ev.IC
	}
	if ev.Kind != rollout.EventCommand || ev.User == "" || ev.Detail != "" {
		return // not a command, or a refused one (Detail says why)
	}
	if prevIC != "" && ev.IC != "" && ev.IC != prevIC {
		// "<new IC> is now the Incident Commander": the command kept just
		// before, by the same user at the same step, was the handover.
		if n := len(rel.Acts); n > 0 && rel.Acts[n-1].User == ev.User && rel.Acts[n-1].Phase == ev.Phase {
			rel.Acts = rel.Acts[:n-1]
		}
		return
	}
	if ev.Phase != rollout.PhaseRedTeam && ev.Phase != rollout.PhaseGoNoGo {
		return
	}
	rel.Acts = append(rel.Acts, Act{Phase: ev.Phase, User: ev.User, At: ev.At})
}

// gates keeps the red-team checklist and the go/no-go message: the
// checklist goes up when the engine announces the review due (T-5 with a
// T-0, at once without), or closed when the step is done if the review was
// recorded before it came due; the go/no-go message as the release reaches
// go/no-go after the green button (T-2), so the GO it accepts from then on
// has its buttons; each is closed with its outcome.
func (n *SlackNotifier) gates(rel *ReleaseMessages, key string, ev rollout.Event, add func(OutboxMessage)) {
	at := ev.At.UTC().Format("15:04 MST")
	noteCommand(rel, ev)
	var entering rollout.StepName
	switch {
	case ev.Kind == rollout.EventPhase && ev.Step != "":
		s := StepResult{Name: ev.Step, Status: ev.Status, Detail: ev.Detail, At: ev.At}
		rel.Steps = append(slices.DeleteFunc(rel.Steps, func(x StepResult) bool { return x.Name == s.Name }), s)
		switch {
		case s.Name == rollout.StepRedTeam && (rel.Review == nil || rel.Review.Outcome == ""):
			if rel.Review == nil {
				// Recorded (from the CLI) before the review came due: the
				// checklist goes up already closed, so the room still sees
				// what was reviewed and by whom.
				rel.Review = &GateState{Posted: ev.At}
			}
			rel.Review.Outcome = fmt.Sprintf("✅ Review recorded at %s%s: %s", at, by(rel.actor(rollout.PhaseRedTeam)), cmp(s.Detail, "no note"))
			add(n.reviewMessage(*rel, key+"/review"))
		case s.Name == rollout.StepGoNoGo && rel.GoNoGo != nil && rel.GoNoGo.Outcome == "":
			rel.GoNoGo.Outcome = fmt.Sprintf("GO ✅ at %s%s", at, by(rel.actor(rollout.PhaseGoNoGo)))
			add(n.goNoGoMessage(*rel, key+"/go_nogo"))
		}
		if s.Status != rollout.GateFailed {
			entering = nextStep(n.Plan, s.Name)
		}
	case ev.Kind == rollout.EventPhase && n.Plan != nil && len(n.Plan.Timeline) > 0 && ev.Phase == rollout.Phase(n.Plan.Timeline[0].Name):
		// The release's opening: its first step may be go/no-go.
		entering = n.Plan.Timeline[0].Name
	case ev.Kind == rollout.EventDue && ev.Step == rollout.StepRedTeam:
		if rel.Review == nil {
			rel.Review = &GateState{Posted: ev.At}
			add(n.reviewMessage(*rel, key+"/review"))
		}
	case ev.Kind == rollout.EventDue && ev.Step == rollout.StepGoNoGo:
		entering = rollout.StepGoNoGo
	}
	if entering == rollout.StepGoNoGo && rel.GoNoGo == nil {
		rel.GoNoGo = &GateState{Posted: ev.At}
		add(n.goNoGoMessage(*rel, key+"/go_nogo"))
	}
	if ev.Kind == rollout.EventDue && ev.Step == rollout.StepGoNoGo && rel.GoNoGo.Outcome == "" {
		// The room saw the message when it went up; only a message that has
		// waited (a T-0 set with --at) needs the nudge in the channel.
		text := fmt.Sprintf(":alarm_clock: GO / NO-GO is due: stage 1 waits for the Incident Commander (%s).", escapeMrkdwn(rel.IC))
		add(n.threadPost(key, GoNoGoRef(rel.Release), text, rel.GoNoGo.Posted.Before(ev.At)))
	}
	if ev.Phase.Terminal() {
		n.closeGates(rel, key, ev, add)
	}
}

// closeGates closes the checklist and the go/no-go message still open when
// the release ends before the stages: aborted (a NO-GO) or rolled back.
func (n *SlackNotifier) closeGates(rel *ReleaseMessages, key string, ev rollout.Event, add func(OutboxMessage)) {
	at := ev.At.UTC().Format("15:04 MST")
	if rel.GoNoGo != nil && rel.GoNoGo.Outcome == "" {
		if ev.Phase == rollout.PhaseAborted {
			rel.GoNoGo.Outcome = fmt.Sprintf("NO-GO ⛔ at %s%s", at, by(rel.actor(rollout.PhaseGoNoGo)))
		} else {
			rel.GoNoGo.Outcome = fmt.Sprintf("Closed at %s: the release is %s", at, ev.Phase)
		}
		if ev.Kind == rollout.EventPage || ev.Kind == rollout.EventRollback {
			rel.GoNoGo.Outcome += " — " + ev.Text
		}
		add(n.goNoGoMessage(*rel, key+"/go_nogo"))
	}
	if rel.Review != nil && rel.Review.Outcome == "" {
		rel.Review.Outcome = fmt.Sprintf("Closed unrecorded: the release is %s (%s)", ev.Phase, at)
		add(n.reviewMessage(*rel, key+"/review"))
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
