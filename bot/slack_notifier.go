package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/canarybot/canarybot/rollout"
)

// DefaultWarRoomChannel is where the runbook's war-room lives.
const DefaultWarRoomChannel = "#spark-warroom"

// Slack's limits on the blocks the stage message uses.
const (
	maxHeaderChars  = 150
	maxSectionChars = 3000
)

// Action IDs of the stage message's buttons, for the interactions endpoint.
// A button's value is StageActionValue(release, stage): a press on an older
// stage's message names that stage, so the endpoint can refuse it.
const (
	ActionPromote  = "canary_promote"
	ActionHold     = "canary_hold"
	ActionRollback = "canary_rollback"
)

// StageActionValue is the value of a stage message's buttons.
func StageActionValue(release string, stage int) string {
	return fmt.Sprintf("%s#%d", release, stage)
}

// SlackAPI is the part of *slack.Client the notifier uses.
type SlackAPI interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
}

// ErrSlackStoreMissing is returned by Notify when the notifier has no Store:
// without one it cannot find the stage message to update nor recognise a
// repeated key.
var ErrSlackStoreMissing = errors.New("slack notifier has no Store: set SlackNotifier.Store (MemorySlackStore will do for a single process)")

// SlackNotifier announces a release in the Slack war-room channel. Each
// stage gets one message, edited in place as its rows arrive; holds, pages,
// commands and rollbacks go in that message's thread, and rollbacks and the
// release's end are also shown in the channel.
//
// A Slack call rejected for rate limiting is retried after Slack's
// Retry-After; a 5xx or a timeout is retried with backoff. When retries run
// out Notify returns the error and the engine sets the message aside.
type SlackNotifier struct {
	API    SlackAPI
	Store  SlackStore
	Plan   *rollout.Plan
	Render rollout.Renderer
	// Channel is the war-room channel, by name or ID; DefaultWarRoomChannel
	// when empty.
	Channel string
	// Attempts bounds the calls per Slack request (default 3). The engine
	// retries a failed message itself, and waits for Notify meanwhile, so
	// this stays small.
	Attempts int
	// Backoff is the first wait after a 5xx or a timeout (default 1s); it
	// doubles each retry.
	Backoff time.Duration
	// MaxRetryAfter is the longest rate-limit wait Notify sits out (default
	// 30s); a longer one is returned so the engine is not blocked on Slack.
	MaxRetryAfter time.Duration
	// CallTimeout bounds each Slack call (default 10s): slack-go's default
	// HTTP client has none.
	CallTimeout time.Duration
	// Buttons adds Promote / Hold / Rollback, each behind a confirmation
	// dialog, to the stage message. Leave it off until the interactions
	// endpoint is wired, or the buttons do nothing.
	Buttons bool
	// Sleep waits between retries; tests inject one that does not.
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger

	// mu serialises Notify: a row reads, extends and rewrites its stage's
	// stored message.
	mu sync.Mutex
}

// Notify announces one event; a key seen before is not announced again.
func (n *SlackNotifier) Notify(ctx context.Context, key string, ev rollout.Event) error {
	if n.Store == nil {
		return ErrSlackStoreMissing
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	sent, err := n.Store.Sent(ctx, key)
	if err != nil {
		return fmt.Errorf("slack notifier: check key %s: %w", key, err)
	}
	if sent {
		return nil
	}
	release := releaseOf(key, ev)
	switch {
	case ev.Kind == rollout.EventStage && ev.Stage > 0:
		err = n.stage(ctx, release, ev)
	case ev.Kind == rollout.EventRow && ev.Stage > 0:
		err = n.row(ctx, release, key, ev)
	default:
		err = n.announce(ctx, release, ev)
	}
	if err != nil {
		return err
	}
	if err := n.Store.MarkSent(ctx, key); err != nil {
		return fmt.Errorf("slack notifier: record key %s as sent: %w", key, err)
	}
	return nil
}

// releaseOf names the release an event belongs to. The engine's keys are
// "<release id>/<seq>"; the release id, unlike the version, differs between
// two attempts at the same version.
func releaseOf(key string, ev rollout.Event) string {
	if i := strings.LastIndexByte(key, '/'); i > 0 {
		return key[:i]
	}
	return ev.Version
}

// stage posts the stage's message unless it was posted before a restart.
func (n *SlackNotifier) stage(ctx context.Context, release string, ev rollout.Event) error {
	m, found, err := n.Store.StageMessage(ctx, release, ev.Stage)
	if err != nil {
		return fmt.Errorf("slack notifier: load stage %d message: %w", ev.Stage, err)
	}
	if found && m.TS != "" {
		return nil
	}
	if !found {
		m = n.newStageMessage(release, ev)
	}
	m.Intro = ev.Text
	return n.publish(ctx, m)
}

// row adds a row to its stage's table and edits the message in place.
func (n *SlackNotifier) row(ctx context.Context, release, key string, ev rollout.Event) error {
	m, found, err := n.Store.StageMessage(ctx, release, ev.Stage)
	if err != nil {
		return fmt.Errorf("slack notifier: load stage %d message: %w", ev.Stage, err)
	}
	if !found {
		// The stage's own announcement was set aside by the engine (Slack
		// was down): the row starts the message, and the late
		// announcement finds it posted.
		m = n.newStageMessage(release, ev)
	}
	if !slices.ContainsFunc(m.Rows, func(r StageRow) bool { return r.Key == key }) {
		m.Rows = append(m.Rows, StageRow{Key: key, At: ev.At, Text: n.rowText(ev)})
		// Set-aside rows arrive late; the table stays in time order.
		slices.SortStableFunc(m.Rows, func(a, b StageRow) int { return a.At.Compare(b.At) })
	}
	if ev.Row != nil && ev.At.Equal(m.Rows[len(m.Rows)-1].At) {
		m.Decision = decisionLine(ev.Row.Decision)
	}
	return n.publish(ctx, m)
}

func (n *SlackNotifier) newStageMessage(release string, ev rollout.Event) StageMessage {
	m := StageMessage{Release: release, Version: ev.Version, Stage: ev.Stage, Weight: ev.Weight}
	if n.Plan != nil {
		m.Stages = len(n.Plan.Stages)
	}
	return m
}

func (n *SlackNotifier) rowText(ev rollout.Event) string {
	if ev.Row != nil && n.Render != nil && n.Plan != nil {
		return n.Render.TableRow(n.Plan, *ev.Row)
	}
	return ev.Text
}

// publish posts the stage message, or edits it once Slack has given it a
// ts, and stores it.
func (n *SlackNotifier) publish(ctx context.Context, m StageMessage) error {
	blocks, fallback := n.stageBlocks(m)
	opts := []slack.MsgOption{slack.MsgOptionText(fallback, false), slack.MsgOptionBlocks(blocks...)}
	if m.TS == "" {
		err := n.call(ctx, "chat.postMessage", func(ctx context.Context) error {
			ch, ts, err := n.API.PostMessageContext(ctx, n.channel(), opts...)
			m.Channel, m.TS = ch, ts
			return err
		})
		if err != nil {
			return fmt.Errorf("post stage %d message to %s: %w", m.Stage, n.channel(), err)
		}
	} else {
		err := n.call(ctx, "chat.update", func(ctx context.Context) error {
			_, _, _, err := n.API.UpdateMessageContext(ctx, m.Channel, m.TS, opts...)
			return err
		})
		if err != nil {
			return fmt.Errorf("update stage %d message %s in %s: %w", m.Stage, m.TS, m.Channel, err)
		}
	}
	if err := n.Store.PutStageMessage(ctx, m); err != nil {
		return fmt.Errorf("slack notifier: store stage %d message: %w", m.Stage, err)
	}
	return nil
}

// announce posts everything that is not a stage's table: in the thread of
// the event's stage (or of the release's last stage once it has left them),
// or in the channel before the first stage.
func (n *SlackNotifier) announce(ctx context.Context, release string, ev rollout.Event) error {
	parent, found, err := n.threadParent(ctx, release, ev.Stage)
	if err != nil {
		return err
	}
	text := announcementText(ev)
	channel := n.channel()
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if found {
		channel = parent.Channel
		opts = append(opts, slack.MsgOptionTS(parent.TS))
		if ev.Kind == rollout.EventRollback || ev.Kind == rollout.EventDone {
			opts = append(opts, slack.MsgOptionBroadcast())
		}
	}
	err = n.call(ctx, "chat.postMessage", func(ctx context.Context) error {
		_, _, err := n.API.PostMessageContext(ctx, channel, opts...)
		return err
	})
	if err != nil {
		return fmt.Errorf("post %s announcement to %s: %w", ev.Kind, channel, err)
	}
	return nil
}

func (n *SlackNotifier) threadParent(ctx context.Context, release string, stage int) (StageMessage, bool, error) {
	if stage > 0 {
		m, found, err := n.Store.StageMessage(ctx, release, stage)
		if err != nil {
			return StageMessage{}, false, fmt.Errorf("slack notifier: load stage %d message: %w", stage, err)
		}
		if found && m.TS != "" {
			return m, true, nil
		}
	}
	m, found, err := n.Store.LastStageMessage(ctx, release)
	if err != nil {
		return StageMessage{}, false, fmt.Errorf("slack notifier: load last stage message: %w", err)
	}
	return m, found && m.TS != "", nil
}

// call runs one Slack request with the retry policy.
func (n *SlackNotifier) call(ctx context.Context, method string, do func(ctx context.Context) error) error {
	attempts := n.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	backoff := n.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	for attempt := 1; ; attempt++ {
		err := n.attempt(ctx, do)
		if err == nil {
			return nil
		}
		wait, retry := n.retryAfter(ctx, err, backoff)
		if !retry || attempt >= attempts {
			return err
		}
		n.logger().Warn("slack call failed; retrying", "method", method, "attempt", attempt, "err", err, "retry_in", wait)
		if serr := n.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (gave up waiting to retry: %w)", err, serr)
		}
		if wait == backoff {
			backoff *= 2
		}
	}
}

func (n *SlackNotifier) attempt(ctx context.Context, do func(ctx context.Context) error) error {
	timeout := n.CallTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return do(cctx)
}

// retryAfter says whether a failed call may be repeated and after how long.
// Slack's own refusals (channel_not_found, invalid_blocks, ...) will not
// change on a retry.
func (n *SlackNotifier) retryAfter(ctx context.Context, err error, backoff time.Duration) (time.Duration, bool) {
	if ctx.Err() != nil {
		return 0, false
	}
	if rl, ok := errors.AsType[*slack.RateLimitedError](err); ok {
		limit := n.MaxRetryAfter
		if limit <= 0 {
			limit = 30 * time.Second
		}
		if rl.RetryAfter > limit {
			return 0, false
		}
		return max(rl.RetryAfter, 0), true
	}
	if sc, ok := errors.AsType[slack.StatusCodeError](err); ok {
		return backoff, sc.Code >= 500
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return backoff, true // the call's own timeout: ctx itself is live
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return backoff, true
	}
	return 0, false
}

func (n *SlackNotifier) sleep(ctx context.Context, d time.Duration) error {
	if n.Sleep != nil {
		return n.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (n *SlackNotifier) channel() string {
	if n.Channel != "" {
		return n.Channel
	}
	return DefaultWarRoomChannel
}

func (n *SlackNotifier) logger() *slog.Logger {
	if n.Logger != nil {
		return n.Logger
	}
	return slog.Default()
}

// stageBlocks lays out a stage message: a header, the table in a code block
// and the decision line. It also returns the plain text Slack shows in
// notifications.
func (n *SlackNotifier) stageBlocks(m StageMessage) ([]slack.Block, string) {
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
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, title, false, false)),
	}
	if m.Intro != "" {
		blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, escapeMrkdwn(m.Intro), false, false)))
	}
	blocks = append(blocks,
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, n.table(m), false, false), nil, nil),
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*Decision:* "+escapeMrkdwn(decision), false, false), nil, nil),
	)
	if n.Buttons {
		blocks = append(blocks, stageButtons(m))
	}
	return blocks, title + " — " + decision
}

func stageButtons(m StageMessage) *slack.ActionBlock {
	value := StageActionValue(m.Release, m.Stage)
	button := func(id, label, confirm string, style slack.Style) *slack.ButtonBlockElement {
		b := slack.NewButtonBlockElement(id, value, slack.NewTextBlockObject(slack.PlainTextType, label, false, false))
		if style != "" {
			b = b.WithStyle(style)
		}
		return b.WithConfirm(slack.NewConfirmationBlockObject(
			slack.NewTextBlockObject(slack.PlainTextType, label+"?", false, false),
			slack.NewTextBlockObject(slack.MarkdownType, escapeMrkdwn(fmt.Sprintf(confirm, m.Version, m.Stage)), false, false),
			slack.NewTextBlockObject(slack.PlainTextType, label, false, false),
			slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false),
		))
	}
	return slack.NewActionBlock("canary_stage_actions",
		button(ActionPromote, "Promote", "Promote %s past stage %d? Only the Incident Commander may.", slack.StylePrimary),
		button(ActionHold, "Hold", "Hold %s at stage %d? Only the Incident Commander may.", ""),
		button(ActionRollback, "Rollback", "Roll %s back from stage %d? Canary weight goes to 0.", slack.StyleDanger),
	)
}

// table renders the stage's rows as a code block within Slack's section
// limit, dropping the oldest rows first: the latest ticks are what the room
// decides on, and every row is in the stage's evidence file.
func (n *SlackNotifier) table(m StageMessage) string {
	header := ""
	if n.Render != nil && n.Plan != nil {
		header = n.Render.TableHeader(n.Plan)
	}
	if len(m.Rows) == 0 {
		return "```" + escapeMrkdwn(header) + "\n(no ticks yet)```"
	}
	rows := make([]string, len(m.Rows))
	for i, r := range m.Rows {
		rows[i] = escapeMrkdwn(r.Text)
	}
	for dropped := 0; ; dropped++ {
		lines := []string{}
		if header != "" {
			lines = append(lines, escapeMrkdwn(header))
		}
		if dropped > 0 {
			lines = append(lines, fmt.Sprintf("… %d earlier rows in the stage's evidence", dropped))
		}
		lines = append(lines, rows[dropped:]...)
		text := "```" + strings.Join(lines, "\n") + "```"
		if len(text) <= maxSectionChars || dropped == len(rows)-1 {
			return truncate(text, maxSectionChars)
		}
	}
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

func announcementText(ev rollout.Event) string {
	icon := map[rollout.EventKind]string{
		rollout.EventHold:     ":double_vertical_bar:",
		rollout.EventRollback: ":rotating_light:",
		rollout.EventPage:     ":pager:",
		rollout.EventCommand:  ":speech_balloon:",
		rollout.EventDone:     ":checkered_flag:",
	}[ev.Kind]
	text := escapeMrkdwn(ev.Text)
	if ev.Kind == rollout.EventRow || ev.Kind == rollout.EventSnapshot {
		text = "```" + text + "```"
	}
	if icon != "" {
		text = icon + " " + text
	}
	return text
}

// escapeMrkdwn escapes what Slack reads as control sequences, so a reason
// typed by a person cannot ping @channel or forge a link.
func escapeMrkdwn(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	for len(string(r)) > n-len("…") {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}
