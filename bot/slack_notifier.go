package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/slack-go/slack"

	"github.com/canarybot/canarybot/rollout"
)

// DefaultWarRoomChannel is where the runbook's war-room lives.
const DefaultWarRoomChannel = "#spark-warroom"

// ErrSlackStoreMissing is returned by Notify when the notifier has no Store
// or no Outbox: without them nothing it sends would survive a restart.
var ErrSlackStoreMissing = errors.New("slack notifier has no Store or Outbox: build it with NewSlackNotifier (a MemorySlackStore will do for a single process)")

// SlackNotifier announces a release in the Slack war-room channel; it is a
// rollout.Notifier.
//
// Each stage gets one message, the signal table, edited in place as ticks
// arrive. Holds, pages, commands, trigger alerts and rollbacks go in that
// message's thread; holds, trigger alerts, rollbacks and the closing
// one-liner are also shown in the channel. Before the stages, the
// timeline's announcements go in the thread of the release's opening
// message; the red-team checklist is posted to the channel when the engine
// announces the review due (rollout.EventDue: T-5 with a T-0, at once
// without), and the go/no-go message when the release reaches go/no-go
// after the green button, with a reminder in its thread if the GO is still
// missing when it comes due at T-0.
//
// Notify only records: what an event changes and the Slack calls it needs
// are stored in one transaction, then the Outbox delivers them. A Slack
// outage therefore never holds up the engine, and nothing is lost.
type SlackNotifier struct {
	Store  SlackStore
	Outbox *Outbox
	Plan   *rollout.Plan
	// Channel is the war-room channel, by ID or #name;
	// DefaultWarRoomChannel when empty. An ID saves a lookup after a crash.
	Channel string
	// Buttons adds the interactive parts: Promote / Hold / Rollback on the
	// stage messages, the review checkboxes and GO / NO-GO. Leave it off
	// until the interactions endpoint is wired, or they do nothing.
	Buttons bool
	// Review is the red-team checklist; DefaultRedTeamReview when empty.
	Review []ReviewItem
	Logger *slog.Logger

	// mu serialises Notify: an event reads, extends and rewrites its
	// stage's stored message.
	mu sync.Mutex
}

// NewSlackNotifier returns a notifier whose outbox delivers through api
// and keeps its queue in store.
func NewSlackNotifier(api OutboxAPI, store SlackStore, plan *rollout.Plan) *SlackNotifier {
	return &SlackNotifier{Store: store, Plan: plan, Outbox: &Outbox{API: api, Store: store}}
}

// Notify records one event and hands its messages to the outbox; a key
// seen before changes nothing. It returns an error only when the event
// could not be recorded: a Slack failure is the outbox's to retry.
func (n *SlackNotifier) Notify(ctx context.Context, key string, ev rollout.Event) error {
	if n.Store == nil || n.Outbox == nil {
		return ErrSlackStoreMissing
	}
	if err := n.record(ctx, key, ev); err != nil {
		return err
	}
	if n.Outbox.Running() {
		n.Outbox.Wake()
		return nil
	}
	// Without a delivery loop, deliver now what is due; what cannot go
	// yet waits in the outbox for the next event or for Run.
	if err := n.Outbox.Flush(ctx); err != nil {
		if _, ok := errors.AsType[*DeferredError](err); !ok {
			return fmt.Errorf("slack notifier: %w", err)
		}
		n.logger().Debug("slack delivery deferred", "err", err)
	}
	return nil
}

func (n *SlackNotifier) record(ctx context.Context, key string, ev rollout.Event) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	handled, err := n.Store.Handled(ctx, key)
	if err != nil {
		return fmt.Errorf("slack notifier: check key %s: %w", key, err)
	}
	if handled {
		return nil
	}
	release := releaseOf(key, ev)
	rel, found, err := n.Store.ReleaseMessages(ctx, release)
	if err != nil {
		return fmt.Errorf("slack notifier: load release %s: %w", release, err)
	}
	if !found {
		rel = ReleaseMessages{Release: release, Version: ev.Version}
		if ev.Stage > 0 && n.Outbox.LookupUnknown {
			// A release first seen past its timeline began under another
			// replica: its opening message is that replica's, not this
			// event's to set.
			rel.Opened, rel.LastStage = true, ev.Stage
		}
	}
	c := SlackChange{Release: &rel}
	add := func(m OutboxMessage) { c.Messages = append(c.Messages, m) }
	switch {
	case ev.Kind == rollout.EventStage && ev.Stage > 0:
		err = n.stage(ctx, &c, &rel, key, ev, add)
	case ev.Kind == rollout.EventRow && ev.Stage > 0:
		err = n.row(ctx, &c, &rel, key, ev, add)
	case ev.Kind == rollout.EventDue && (ev.Step == rollout.StepRedTeam || ev.Step == rollout.StepGoNoGo):
		// Announced by the checklist and the go/no-go message (gates).
	default:
		err = n.announce(ctx, &c, &rel, key, ev, add)
	}
	if err != nil {
		return err
	}
	n.gates(&rel, key, ev, add)
	if err := n.Store.Record(ctx, key, n.Outbox.clock().Now(), c); err != nil {
		return fmt.Errorf("slack notifier: record %s: %w", key, err)
	}
	return nil
}

// releaseOf names the release an event belongs to. The engine's keys are
// "<release id>/<seq>"; the release id, unlike the version, differs between
// two attempts at the same version.
func releaseOf(key string, ev rollout.Event) string {
	if ev.Release != "" {
		return ev.Release
	}
	if i := strings.LastIndexByte(key, '/'); i > 0 {
		return key[:i]
	}
	return ev.Version
}

func (n *SlackNotifier) loadStage(ctx context.Context, rel *ReleaseMessages, ev rollout.Event, stage int) (StageMessage, bool, error) {
	m, found, err := n.Store.StageMessage(ctx, rel.Release, stage)
	if err != nil {
		return StageMessage{}, false, fmt.Errorf("slack notifier: load stage %d message: %w", stage, err)
	}
	if !found {
		m = StageMessage{Release: rel.Release, Version: ev.Version, Stage: stage, Weight: ev.Weight}
		if n.Plan != nil {
			m.Stages = len(n.Plan.Stages)
		}
	}
	return m, found, nil
}

// stage starts (or, after a late row, completes) the stage's message and
// closes the previous stage's.
func (n *SlackNotifier) stage(ctx context.Context, c *SlackChange, rel *ReleaseMessages, key string, ev rollout.Event, add func(OutboxMessage)) error {
	m, _, err := n.loadStage(ctx, rel, ev, ev.Stage)
	if err != nil {
		return err
	}
	m.Intro = ev.Text
	c.Stages = append(c.Stages, m)
	add(n.stageMessage(m, key))
	rel.LastStage = max(rel.LastStage, ev.Stage)
	if ev.Stage > 1 {
		prev, found, err := n.Store.StageMessage(ctx, rel.Release, ev.Stage-1)
		if err != nil {
			return fmt.Errorf("slack notifier: load stage %d message: %w", ev.Stage-1, err)
		}
		if found && prev.Closed == "" {
			prev.Closed = fmt.Sprintf("Promoted to stage %d (%d%%) at %s.", ev.Stage, ev.Weight, ev.At.UTC().Format("15:04 MST"))
			c.Stages = append(c.Stages, prev)
			add(n.stageMessage(prev, key+"/close"))
		}
	}
	return nil
}

// row adds a tick to its stage's table, and announces trigger alerts the
// stage has not seen yet.
func (n *SlackNotifier) row(ctx context.Context, c *SlackChange, rel *ReleaseMessages, key string, ev rollout.Event, add func(OutboxMessage)) error {
	m, _, err := n.loadStage(ctx, rel, ev, ev.Stage)
	if err != nil {
		return err
	}
	rel.LastStage = max(rel.LastStage, ev.Stage)
	if !slices.ContainsFunc(m.Rows, func(r StageRow) bool { return r.Key == key }) {
		row := StageRow{Key: key, At: ev.At, Text: ev.Text}
		if ev.Row != nil {
			row.Decision = ev.Row.Decision.Kind
			for _, x := range ev.Row.Readings {
				row.Readings = append(row.Readings, RowReading{Signal: x.Signal, Value: x.Value, Bound: x.Bound, Verdict: x.Verdict})
			}
		}
		m.Rows = append(m.Rows, row)
		// Set-aside rows arrive late; the table stays in time order.
		slices.SortStableFunc(m.Rows, func(a, b StageRow) int { return a.At.Compare(b.At) })
	}
	if ev.Row != nil && ev.At.Equal(m.Rows[len(m.Rows)-1].At) {
		m.Decision = decisionLine(ev.Row.Decision)
	}
	c.Stages = append(c.Stages, m)
	add(n.stageMessage(m, key))
	if ev.Row != nil {
		for _, a := range ev.Row.Alerts {
			if slices.Contains(m.Alerts, a.Name) {
				continue
			}
			m.Alerts = append(m.Alerts, a.Name)
			text := fmt.Sprintf(":rotating_light: Trigger firing: *%s*", escapeMrkdwn(a.Name))
			if a.Summary != "" {
				text += " — " + escapeMrkdwn(a.Summary)
			}
			if !a.Since.IsZero() {
				text += fmt.Sprintf(" (since %s)", a.Since.UTC().Format("15:04:05 MST"))
			}
			add(n.threadPost(key+"/alert/"+a.Name, StageRef(rel.Release, m.Stage), text, true))
		}
		c.Stages[len(c.Stages)-1] = m
	}
	return nil
}

// announce posts everything that is not a stage's table: in the thread of
// the event's stage (or of the release's last stage once it has left
// them), else in the thread of the release's opening message.
func (n *SlackNotifier) announce(ctx context.Context, c *SlackChange, rel *ReleaseMessages, key string, ev rollout.Event, add func(OutboxMessage)) error {
	text := announcementText(ev)
	broadcast := ev.Kind == rollout.EventHold || ev.Kind == rollout.EventRollback || ev.Kind == rollout.EventDone ||
		(ev.Kind == rollout.EventPage && ev.Phase == rollout.PhaseAborted)
	stage := 0
	if ev.Stage > 0 {
		if _, found, err := n.Store.StageMessage(ctx, rel.Release, ev.Stage); err != nil {
			return fmt.Errorf("slack notifier: load stage %d message: %w", ev.Stage, err)
		} else if found {
			stage = ev.Stage
		}
	}
	if stage == 0 {
		stage = rel.LastStage
	}
	if stage == 0 {
		if !rel.Opened {
			// The release's first words open its thread in the channel.
			rel.Opened = true
			add(n.upsert(key, ReleaseRef(rel.Release), nil, text))
			return nil
		}
		add(n.threadPost(key, ReleaseRef(rel.Release), text, broadcast))
		return nil
	}
	add(n.threadPost(key, StageRef(rel.Release, stage), text, broadcast))
	if ev.Kind == rollout.EventRollback || ev.Kind == rollout.EventDone {
		m, found, err := n.Store.StageMessage(ctx, rel.Release, stage)
		if err != nil {
			return fmt.Errorf("slack notifier: load stage %d message: %w", stage, err)
		}
		if found && m.Closed == "" {
			m.Closed = fmt.Sprintf("Closed at %s: %s", ev.At.UTC().Format("15:04 MST"), ev.Text)
			if ev.Kind == rollout.EventRollback {
				m.Decision = "Rollback: " + ev.Text
			}
			c.Stages = append(c.Stages, m)
			add(n.stageMessage(m, key+"/close"))
		}
	}
	return nil
}

func (n *SlackNotifier) stageMessage(m StageMessage, key string) OutboxMessage {
	blocks, text := stageBlocks(n.Plan, m, n.Buttons)
	return n.upsert(key, StageRef(m.Release, m.Stage), blocks, text)
}

func (n *SlackNotifier) upsert(key, ref string, blocks []slack.Block, text string) OutboxMessage {
	return OutboxMessage{Key: key, Op: OutboxUpsert, Channel: n.channel(), Ref: ref, Text: text, Blocks: n.encode(blocks)}
}

func (n *SlackNotifier) threadPost(key, parent, text string, broadcast bool) OutboxMessage {
	return OutboxMessage{Key: key, Op: OutboxPost, Channel: n.channel(), ThreadRef: parent, Broadcast: broadcast, Text: text}
}

func (n *SlackNotifier) encode(blocks []slack.Block) json.RawMessage {
	if len(blocks) == 0 {
		return nil
	}
	data, err := json.Marshal(slack.Blocks{BlockSet: blocks})
	if err != nil {
		// Blocks built here are plain values; should one fail, the text
		// still goes out.
		n.logger().Error("slack notifier: blocks do not encode; sending text only", "err", err)
		return nil
	}
	return data
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

func announcementText(ev rollout.Event) string {
	icon := map[rollout.EventKind]string{
		rollout.EventHold:     ":double_vertical_bar:",
		rollout.EventRollback: ":rotating_light:",
		rollout.EventPage:     ":pager:",
		rollout.EventCommand:  ":speech_balloon:",
		rollout.EventDone:     ":checkered_flag:",
		rollout.EventDue:      ":alarm_clock:",
	}[ev.Kind]
	text := escapeMrkdwn(ev.Text)
	if ev.Kind == rollout.EventRow || ev.Kind == rollout.EventSnapshot {
		text = "```" + text + "```"
	}
	if icon != "" {
		text = icon + " " + text
	}
	return truncate(text, MaxSectionChars)
}
