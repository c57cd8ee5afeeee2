package bot_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/bot/slackfake"
	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/store"
	"github.com/canarybot/canarybot/traffic"
)

const (
	checklistHeader = "v1.4.0 · red-team review"
	goNoGoHeader    = "v1.4.0 · GO / NO-GO"
	reminderPrefix  = ":alarm_clock: GO / NO-GO is due"
)

// topLevel counts the channel's top-level messages whose blocks carry text.
func topLevel(msgs []slackfake.Message, text string) int {
	n := 0
	for _, m := range msgs {
		if m.ThreadTS == "" && strings.Contains(m.Blocks, text) {
			n++
		}
	}
	return n
}

func reminders(msgs []slackfake.Message) []slackfake.Message {
	var out []slackfake.Message
	for _, m := range msgs {
		if m.ThreadTS != "" && strings.HasPrefix(m.Text, reminderPrefix) {
			out = append(out, m)
		}
	}
	return out
}

// warRoom is the people in the channel: they act on what Slack shows them
// and on nothing else. A reviewer records the review once the checklist is
// up; the IC gives the GO once the go/no-go message is up, or, with
// waitReminder, only once the bot reminds them it is due.
type warRoom struct {
	slack        *slackfake.Server
	clock        *clock.Fake
	waitReminder bool
	// reviewAt, when set, is when a reviewer records the review from the
	// CLI without waiting for the checklist.
	reviewAt time.Time
	// limit stops the release should the checklist never come: the people
	// would wait for it forever.
	limit    time.Time
	stop     context.CancelFunc
	timedOut bool
	reviewed bool
	gave     bool
}

func (w *warRoom) Take(context.Context, string) ([]rollout.Command, error) {
	if w.clock.Now().After(w.limit) {
		w.timedOut = true
		w.stop()
		return nil, nil
	}
	msgs := w.slack.Messages()
	var cmds []rollout.Command
	if !w.reviewed && (topLevel(msgs, checklistHeader) > 0 || !w.reviewAt.IsZero() && !w.clock.Now().Before(w.reviewAt)) {
		w.reviewed = true
		cmds = append(cmds, rollout.Command{ID: "review", Kind: rollout.CmdReview, User: "bob", Reason: "15/15 review items ticked"})
	}
	if !w.gave && topLevel(msgs, goNoGoHeader) > 0 && (!w.waitReminder || len(reminders(msgs)) > 0) {
		w.gave = true
		cmds = append(cmds, rollout.Command{ID: "go", Kind: rollout.CmdGo, User: "alice"})
	}
	return cmds, nil
}

// seen is an event the notifier handled, with what the channel showed
// right after.
type seen struct {
	ev                 rollout.Event
	checklists, goNoGo int
}

// watcher hands the engine's events to the Slack notifier and notes the
// channel after each; it stops the release once stage 1 begins.
type watcher struct {
	n     *bot.SlackNotifier
	slack *slackfake.Server
	stop  context.CancelFunc
	seen  []seen
}

func (w *watcher) Notify(ctx context.Context, key string, ev rollout.Event) error {
	if err := w.n.Notify(ctx, key, ev); err != nil {
		return err
	}
	msgs := w.slack.Messages()
	w.seen = append(w.seen, seen{ev: ev, checklists: topLevel(msgs, checklistHeader), goNoGo: topLevel(msgs, goNoGoHeader)})
	if ev.Kind == rollout.EventStage {
		w.stop()
	}
	return nil
}

// noMetrics answers no signal: the release is stopped before any tick.
type noMetrics struct{}

func (noMetrics) Query(context.Context, string, time.Time) (rollout.Sample, error) {
	return rollout.Sample{}, rollout.ErrNoValues
}

// TestChecklistWhenReviewDue runs the real engine (Runner, Machine, bbolt
// state file) on a fake clock, with a T-0 as `--at` sets it or without,
// into a notifier on a fake Slack: the red-team checklist goes up only
// when the engine announces the review due, not when the release reaches
// the review after the blast-radius step; the go/no-go message goes up
// after the green button, and the GO reminder reaches the channel only
// when the message has been waiting.
func TestChecklistWhenReviewDue(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) // T-0 of the scheduled runs
	start := at.Add(-45 * time.Minute)
	tick := config.Default().Tick
	tests := []struct {
		name         string
		t0           time.Time
		waitReminder bool
		// wantChecklist and wantGoNoGo are when each message goes up;
		// wantReminder is whether the GO reminder is posted, and whether
		// it is shown in the channel.
		wantChecklist, wantGoNoGo time.Time
		wantReminder, broadcast   bool
		// reviewAt is when the review is recorded from the CLI; the
		// checklist then goes up closed when the step is done, at T-5.
		reviewAt time.Time
	}{
		{name: "--at: checklist at T-5, go/no-go at T-2", t0: at, wantChecklist: at.Add(-5 * time.Minute), wantGoNoGo: at.Add(-2 * time.Minute)},
		{name: "--at: review recorded from the CLI at T-7, before it is due", t0: at, reviewAt: at.Add(-7 * time.Minute),
			wantChecklist: at.Add(-5 * time.Minute), wantGoNoGo: at.Add(-2 * time.Minute)},
		{name: "--at: the IC waits for the T-0 reminder", t0: at, waitReminder: true,
			wantChecklist: at.Add(-5 * time.Minute), wantGoNoGo: at.Add(-2 * time.Minute), wantReminder: true, broadcast: true},
		// Without a T-0 the review is due at once; the reviewer's command
		// is taken at the runner's next look, a tick later.
		{name: "no T-0: steps back to back", wantChecklist: start, wantGoNoGo: start.Add(tick)},
		{name: "no T-0: the reminder stays in the thread", waitReminder: true, wantChecklist: start, wantGoNoGo: start.Add(tick), wantReminder: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			plan := config.Default()
			clk := clock.NewFake(start)
			st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
			if err != nil {
				t.Fatal(err)
			}
			fake := slackfake.New(t)
			n := bot.NewSlackNotifier(fake.Client(), st, &plan)
			n.Buttons = true
			n.Logger = slog.New(slog.DiscardHandler)
			n.Outbox.Logger, n.Outbox.Clock = n.Logger, clk
			w := &watcher{n: n, slack: fake, stop: cancel}
			room := &warRoom{slack: fake, clock: clk, waitReminder: tt.waitReminder, reviewAt: tt.reviewAt, limit: at.Add(time.Hour), stop: cancel}
			backend, _ := url.Parse("http://127.0.0.1:1")
			rn := &rollout.Runner{
				Machine: &rollout.Machine{Plan: &plan, Render: report.Renderer{}},
				Metrics: noMetrics{}, Traffic: traffic.NewLocal(backend, backend),
				Notifier: w, Store: st, Clock: clk, Inbox: room,
				Log: slog.New(slog.DiscardHandler),
			}
			if _, err := rn.Start(ctx, "rel-1", "v1.4.0", "alice", tt.t0); err != nil {
				t.Fatal(err)
			}
			if _, err := rn.Run(ctx, "rel-1"); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run: %v, want it stopped at stage 1", err)
			}
			if room.timedOut {
				t.Fatalf("the release never reached stage 1 by %s: the war-room never saw what it waits for", room.limit.Format("15:04"))
			}

			first := func(what string, count func(seen) int) seen {
				t.Helper()
				for _, s := range w.seen {
					if count(s) > 0 {
						return s
					}
				}
				t.Fatalf("no %s was ever posted", what)
				return seen{}
			}
			checklist := first("checklist", func(s seen) int { return s.checklists })
			wantKind := rollout.EventDue // the review's due announcement
			if !tt.reviewAt.IsZero() {
				wantKind = rollout.EventPhase // the review step's outcome
			}
			if checklist.ev.Kind != wantKind || checklist.ev.Step != rollout.StepRedTeam {
				t.Errorf("the checklist went up with a %s event (step %q), want %s for the review", checklist.ev.Kind, checklist.ev.Step, wantKind)
			}
			// The runner looks again every tick while it waits for people.
			if got := checklist.ev.At; got.Before(tt.wantChecklist) || !got.Before(tt.wantChecklist.Add(plan.Tick)) {
				t.Errorf("checklist posted at %s, want at %s", got.Format("15:04:05"), tt.wantChecklist.Format("15:04:05"))
			}
			for _, s := range w.seen {
				if s.ev.Kind == rollout.EventPhase && s.ev.Step == rollout.StepBlast && s.checklists != 0 {
					t.Errorf("checklist already up when the blast-radius step ended at %s", s.ev.At.Format("15:04:05"))
				}
			}
			gng := first("go/no-go message", func(s seen) int { return s.goNoGo })
			if gng.ev.Kind != rollout.EventPhase || gng.ev.Step != rollout.StepGreenButton || !gng.ev.At.Equal(tt.wantGoNoGo) {
				t.Errorf("go/no-go posted with %s (step %q) at %s, want with the green button's outcome at %s",
					gng.ev.Kind, gng.ev.Step, gng.ev.At.Format("15:04:05"), tt.wantGoNoGo.Format("15:04:05"))
			}

			msgs := fake.Messages()
			if c, g := topLevel(msgs, checklistHeader), topLevel(msgs, goNoGoHeader); c != 1 || g != 1 {
				t.Errorf("channel has %d checklists and %d go/no-go messages, want one each", c, g)
			}
			rem := reminders(msgs)
			if (len(rem) == 1) != tt.wantReminder || len(rem) > 1 {
				t.Errorf("GO reminders: %d, want reminder=%v", len(rem), tt.wantReminder)
			} else if tt.wantReminder && rem[0].Broadcast != tt.broadcast {
				t.Errorf("GO reminder shown in the channel = %v, want %v", rem[0].Broadcast, tt.broadcast)
			}
			for header, want := range map[string]string{checklistHeader: "Review recorded", goNoGoHeader: "GO ✅"} {
				for _, m := range msgs {
					if m.ThreadTS == "" && strings.Contains(m.Blocks, header) && !strings.Contains(m.Blocks, want) {
						t.Errorf("%s message not closed with %q:\n%s", header, want, m.Blocks)
					}
				}
			}
			for _, m := range msgs {
				if m.ThreadTS == "" && strings.Contains(m.Blocks, checklistHeader) && !strings.Contains(m.Blocks, "by bob") {
					t.Errorf("checklist does not say bob recorded the review:\n%s", m.Blocks)
				}
			}

			r, err := st.Load(context.Background(), "rel-1")
			if err != nil {
				t.Fatal(err)
			}
			rec, ok := r.StepRecord(rollout.StepRedTeam)
			switch {
			case !ok || rec.By != "bob":
				t.Errorf("review record %+v, want bob's", rec)
			case tt.reviewAt.IsZero() && rec.At.Before(checklist.ev.At):
				t.Errorf("review recorded at %s, before the checklist was up at %s", rec.At.Format("15:04:05"), checklist.ev.At.Format("15:04:05"))
			case !tt.reviewAt.IsZero() && (rec.At.Before(tt.reviewAt) || !rec.At.Before(checklist.ev.At)):
				t.Errorf("review recorded at %s, want from the CLI at %s, before the checklist at %s",
					rec.At.Format("15:04:05"), tt.reviewAt.Format("15:04:05"), checklist.ev.At.Format("15:04:05"))
			}
		})
	}
}
