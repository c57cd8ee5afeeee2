package bot_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/bot/slackfake"
	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/store"
)

var errCrash = errors.New("process killed")

// crashStore dies (returns errCrash, and refuses everything after) at the
// moment the test chooses, as a process killed there would.
type crashStore struct {
	bot.SlackStore
	mu sync.Mutex
	// afterPost: Slack accepted the post, the record of it is never made.
	afterPost func(e bot.OutboxEntry) bool
	// beforePost: the post was marked started, the call is never made.
	beforePost func(m bot.MessageRecord) bool
	crashed    bool
}

func (s *crashStore) dead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crashed
}

func (s *crashStore) crash() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashed = true
	return errCrash
}

func (s *crashStore) Finish(ctx context.Context, e bot.OutboxEntry, out bot.OutboxOutcome) error {
	if s.dead() {
		return errCrash
	}
	if out.Message != nil && out.Message.TS != "" && s.afterPost != nil && s.afterPost(e) {
		return s.crash()
	}
	return s.SlackStore.Finish(ctx, e, out)
}

func (s *crashStore) PutMessage(ctx context.Context, m bot.MessageRecord) error {
	if s.dead() {
		return errCrash
	}
	if err := s.SlackStore.PutMessage(ctx, m); err != nil {
		return err
	}
	if m.PostStarted && s.beforePost != nil && s.beforePost(m) {
		return s.crash()
	}
	return nil
}

func (s *crashStore) Record(ctx context.Context, key string, now time.Time, c bot.SlackChange) error {
	if s.dead() {
		return errCrash
	}
	return s.SlackStore.Record(ctx, key, now, c)
}

// release plays a release on the real engine up to stage 1 and returns its
// notifications in order.
func release(t *testing.T, plan *rollout.Plan, ticks int) []rollout.Effect {
	t.Helper()
	m := &rollout.Machine{Plan: plan, Render: report.Renderer{}}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	r := m.New("rel-1", "v1.4.0", "alice", time.Time{}, now)
	var out []rollout.Effect
	take := func() {
		for _, e := range r.Pending {
			if e.Kind == rollout.EffectNotify {
				out = append(out, e)
			}
		}
		r.Pending = nil
	}
	take()
	for _, s := range plan.Timeline {
		now = now.Add(time.Minute)
		switch s.Name {
		case rollout.StepRedTeam:
			if err := m.Apply(r, rollout.Command{Kind: rollout.CmdReview, User: "bob", At: now}, now); err != nil {
				t.Fatal(err)
			}
		case rollout.StepGoNoGo:
			if err := m.Apply(r, rollout.Command{Kind: rollout.CmdGo, User: "alice", At: now}, now); err != nil {
				t.Fatal(err)
			}
		}
		m.StepDone(r, s.Name, rollout.GateResult{Status: rollout.GateSkipped, Detail: "not configured"}, now)
		// A person's step is announced due as the Runner does: without a
		// T-0, as soon as the release reaches it.
		if w := m.Next(r); w.Kind == rollout.WaitCommand && !now.Before(w.At) {
			m.Due(r, w.Step, w.Why, now)
		}
		take()
	}
	for i := range ticks {
		now = now.Add(plan.Tick)
		var rds []rollout.Reading
		for _, s := range plan.Signals {
			rds = append(rds, rollout.Reading{Signal: s.Name, At: now, Value: s.Threshold / 3, Baseline: 1})
		}
		m.Tick(r, rds, nil, nil, now)
		if i == 1 {
			if err := m.Apply(r, rollout.Command{Kind: rollout.CmdHold, User: "alice", Reason: "dashboards", At: now}, now); err != nil {
				t.Fatal(err)
			}
		}
		take()
	}
	return out
}

func stageMessageOf(t *testing.T, msgs []slackfake.Message) []slackfake.Message {
	t.Helper()
	var out []slackfake.Message
	for _, m := range msgs {
		if m.ThreadTS == "" && strings.Contains(m.Blocks, "v1.4.0 · stage 1/5") {
			out = append(out, m)
		}
	}
	return out
}

func TestOutboxSurvivesRestart(t *testing.T) {
	stageRef := bot.StageRef("rel-1", 1)
	tests := []struct {
		name       string
		channel    string
		afterPost  func(e bot.OutboxEntry) bool
		beforePost func(m bot.MessageRecord) bool
		// wantLookup is the conversations.* read the restart makes.
		wantLookup string
		// wantList: the channel's ID is not known yet and is looked up.
		wantList bool
	}{
		{name: "clean restart mid-stage"},
		{
			name:       "crash after Slack posted the stage message",
			afterPost:  func(e bot.OutboxEntry) bool { return e.Ref == stageRef },
			wantLookup: "conversations.history",
		},
		{
			name:       "crash after Slack posted the stage message, channel by ID",
			channel:    slackfake.ChannelID,
			afterPost:  func(e bot.OutboxEntry) bool { return e.Ref == stageRef },
			wantLookup: "conversations.history",
		},
		{
			name:       "crash after Slack posted a thread reply",
			afterPost:  func(e bot.OutboxEntry) bool { return e.ThreadRef == stageRef },
			wantLookup: "conversations.replies",
		},
		{
			name:       "crash after Slack posted the first message of the release",
			afterPost:  func(e bot.OutboxEntry) bool { return e.Ref == bot.ReleaseRef("rel-1") },
			wantLookup: "conversations.history",
		},
		{
			name:       "crash before the first message reached Slack: channel ID not known yet",
			beforePost: func(m bot.MessageRecord) bool { return m.Ref == bot.ReleaseRef("rel-1") },
			wantLookup: "conversations.history",
			wantList:   true,
		},
		{
			name:       "crash before the stage message reached Slack",
			beforePost: func(m bot.MessageRecord) bool { return m.Ref == stageRef },
			wantLookup: "conversations.history",
		},
	}
	plan := config.Default()
	events := release(t, &plan, 6)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			fake := slackfake.New(t)
			path := filepath.Join(t.TempDir(), "state.db")
			fc := clock.NewFake(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
			newNotifier := func(st bot.SlackStore) *bot.SlackNotifier {
				n := bot.NewSlackNotifier(fake.Client(), st, &plan)
				n.Channel = tt.channel
				n.Buttons = true
				n.Logger = slog.New(slog.DiscardHandler)
				n.Outbox.Logger, n.Outbox.Clock = n.Logger, fc
				return n
			}
			st1, err := store.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			cs := &crashStore{SlackStore: st1, afterPost: tt.afterPost, beforePost: tt.beforePost}
			first := newNotifier(cs)
			half := len(events) - 3
			for _, e := range events[:half] {
				if err := first.Notify(ctx, e.Key, *e.Event); err != nil {
					if !errors.Is(err, errCrash) {
						t.Fatalf("Notify(%s): %v", e.Key, err)
					}
					break // the process is gone
				}
			}
			if (tt.afterPost != nil || tt.beforePost != nil) != cs.dead() {
				t.Fatalf("crash point never reached (crashed = %v)", cs.dead())
			}
			callsBefore := len(fake.Calls())

			// A new process on the same state file: the engine hands over
			// every event again (its own record may be older), then more.
			st2, err := store.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			second := newNotifier(st2)
			for _, e := range events {
				if err := second.Notify(ctx, e.Key, *e.Event); err != nil {
					t.Fatalf("after restart, Notify(%s): %v", e.Key, err)
				}
			}
			if err := second.Outbox.Drain(ctx); err != nil {
				t.Fatal(err)
			}

			refs := map[string]int{}
			for _, m := range fake.Messages() {
				var md struct {
					EventType    string               `json:"event_type"`
					EventPayload struct{ Ref string } `json:"event_payload"`
				}
				if err := json.Unmarshal([]byte(m.Metadata), &md); err != nil || md.EventType != bot.OutboxMetadataType {
					t.Fatalf("message %q without outbox metadata: %s", m.Text, m.Metadata)
				}
				refs[md.EventPayload.Ref]++
			}
			for ref, n := range refs {
				if n != 1 {
					t.Errorf("%s posted %d times", ref, n)
				}
			}
			stage := stageMessageOf(t, fake.Messages())
			if len(stage) != 1 {
				t.Fatalf("stage 1 messages: %d, want 1", len(stage))
			}
			var lastUpdate slackfake.Call
			for _, c := range fake.Calls()[callsBefore:] {
				if c.Method == "chat.update" && c.Fault == "" {
					lastUpdate = c
				}
				if c.Method == "chat.postMessage" && strings.Contains(c.Blocks, "v1.4.0 · stage 1/5") && c.Fault == "" && stage[0].TS != c.Answered {
					t.Errorf("restarted notifier posted the stage message again")
				}
			}
			if lastUpdate.TS != stage[0].TS || lastUpdate.Channel != slackfake.ChannelID {
				t.Errorf("after the restart the table was edited at %s/%s, want %s/%s", lastUpdate.Channel, lastUpdate.TS, slackfake.ChannelID, stage[0].TS)
			}
			ticks := 0
			for _, e := range events {
				if e.Event.Kind == rollout.EventRow {
					ticks++
				}
			}
			if got := strings.Count(stage[0].Blocks, "Continue") + strings.Count(stage[0].Blocks, "Hold"); got < ticks {
				t.Errorf("stage table shows %d decisions, want all %d ticks", got, ticks)
			}
			var lookups []string
			for _, c := range fake.Calls() {
				if strings.HasPrefix(c.Method, "conversations.") && c.Method != "conversations.list" {
					lookups = append(lookups, c.Method)
					if !c.IncludeAllMetadata {
						t.Errorf("%s without include_all_metadata: Slack would hide the outbox refs", c.Method)
					}
				}
			}
			if got := len(fake.CallsTo("conversations.list")); (got == 1) != tt.wantList || got > 1 {
				t.Errorf("conversations.list called %d times, want it %v", got, tt.wantList)
			}
			if tt.wantLookup == "" && len(lookups) > 0 {
				t.Errorf("clean restart read %v; nothing was in doubt", lookups)
			}
			if tt.wantLookup != "" && (len(lookups) != 1 || lookups[0] != tt.wantLookup) {
				t.Errorf("lookups = %v, want one %s", lookups, tt.wantLookup)
			}
			if pending, _ := st2.Pending(ctx); len(pending) != 0 {
				t.Errorf("%d messages left in the outbox", len(pending))
			}
		})
	}
}
