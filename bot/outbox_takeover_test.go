package bot_test

import (
	"context"
	"encoding/json"
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
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/store"
)

// refStore notes the refs a replica's outbox delivered and threaded under:
// the messages it had to find out about.
type refStore struct {
	bot.SlackStore
	mu   sync.Mutex
	refs map[string]bool
}

func (s *refStore) Finish(ctx context.Context, e bot.OutboxEntry, out bot.OutboxOutcome) error {
	s.mu.Lock()
	if s.refs == nil {
		s.refs = map[string]bool{}
	}
	s.refs[e.MessageRef()] = true
	if e.ThreadRef != "" {
		s.refs[e.ThreadRef] = true
	}
	s.mu.Unlock()
	return s.SlackStore.Finish(ctx, e, out)
}

func (s *refStore) seen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.refs)
}

func outboxRef(t *testing.T, m slackfake.Message) string {
	t.Helper()
	var md struct {
		EventType    string               `json:"event_type"`
		EventPayload struct{ Ref string } `json:"event_payload"`
	}
	if err := json.Unmarshal([]byte(m.Metadata), &md); err != nil || md.EventType != bot.OutboxMetadataType {
		t.Fatalf("message %q without outbox metadata: %s", m.Text, m.Metadata)
	}
	return md.EventPayload.Ref
}

// Two replicas, each with its own state file, drive one release in turn:
// the leader dies, the other takes over and is handed the event the leader
// was delivering again (the engine had not recorded it done), then the rest.
func TestOutboxLeaderTakeover(t *testing.T) {
	plan := config.Default()
	events := release(t, &plan, 6)
	at := func(kind rollout.EventKind, stage int) int {
		for i, e := range events {
			if e.Event.Kind == kind && e.Event.Stage == stage {
				return i
			}
		}
		t.Fatalf("the release has no %s event in stage %d", kind, stage)
		return 0
	}
	tests := []struct {
		name string
		// last is the last event the old leader handled; the new one
		// starts with it again.
		last          int
		lookupUnknown bool
		// wantStage is how many stage 1 messages the channel ends with.
		wantStage int
		// wantDup: some message appears twice.
		wantDup bool
	}{
		{name: "takeover after the stage message", last: at(rollout.EventStage, 1), lookupUnknown: true, wantStage: 1},
		{name: "takeover after a thread reply", last: at(rollout.EventCommand, 1), lookupUnknown: true, wantStage: 1},
		{name: "without the lookup: the old behaviour", last: at(rollout.EventCommand, 1), wantStage: 2, wantDup: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			fake := slackfake.New(t)
			fc := clock.NewFake(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
			replica := func(name string) (*bot.SlackNotifier, *refStore) {
				st, err := store.Open(filepath.Join(t.TempDir(), name+".db"))
				if err != nil {
					t.Fatal(err)
				}
				rs := &refStore{SlackStore: st}
				n := bot.NewSlackNotifier(fake.Client(), rs, &plan)
				n.Buttons = true
				n.Logger = slog.New(slog.DiscardHandler)
				n.Outbox.Logger, n.Outbox.Clock = n.Logger, fc
				n.Outbox.LookupUnknown = tt.lookupUnknown
				return n, rs
			}
			drive := func(n *bot.SlackNotifier, evs []rollout.Effect) {
				t.Helper()
				for _, e := range evs {
					if err := n.Notify(ctx, e.Key, *e.Event); err != nil {
						t.Fatalf("Notify(%s): %v", e.Key, err)
					}
				}
				if err := n.Outbox.Drain(ctx); err != nil {
					t.Fatal(err)
				}
			}

			old, _ := replica("old")
			drive(old, events[:tt.last+1])
			before := stageMessageOf(t, fake.Messages())
			if len(before) != 1 {
				t.Fatalf("the old leader left %d stage 1 messages, want 1", len(before))
			}
			callsBefore := len(fake.Calls())

			leader, seen := replica("new")
			drive(leader, events[tt.last:])
			after := fake.Calls()[callsBefore:]

			stage := stageMessageOf(t, fake.Messages())
			if len(stage) != tt.wantStage {
				t.Errorf("stage 1 messages after the takeover: %d, want %d", len(stage), tt.wantStage)
			}
			refs := map[string]int{}
			for _, m := range fake.Messages() {
				refs[outboxRef(t, m)]++
			}
			dup := false
			for ref, n := range refs {
				if n > 1 {
					dup = true
					if !tt.wantDup {
						t.Errorf("%s posted %d times", ref, n)
					}
				}
			}
			if tt.wantDup && !dup {
				t.Errorf("without the lookup no message was posted twice; the test no longer shows the old behaviour")
			}
			if tt.wantStage != 1 {
				return
			}

			parent := before[0].TS
			var lastUpdate slackfake.Call
			replies := 0
			for _, c := range after {
				switch {
				case c.Fault != "":
				case c.Method == "chat.update":
					lastUpdate = c
					if c.TS != parent {
						t.Errorf("the new leader edited %s, not the stage message %s, to %q", c.TS, parent, c.Text)
					}
				case c.Method == "chat.postMessage" && c.ThreadTS == "":
					t.Errorf("the new leader posted a top-level message %q; it should have edited the old leader's", c.Text)
				case c.Method == "chat.postMessage":
					replies++
					if c.ThreadTS != parent {
						t.Errorf("the new leader replied under %s, want the stage message %s: %q", c.ThreadTS, parent, c.Text)
					}
				}
			}
			if replies == 0 {
				t.Errorf("the new leader posted no thread reply; the hold should have gone in the stage's thread")
			}
			if lastUpdate.TS != parent || lastUpdate.Channel != slackfake.ChannelID {
				t.Errorf("the new leader edited %s/%s, want the old leader's stage message %s/%s", lastUpdate.Channel, lastUpdate.TS, slackfake.ChannelID, parent)
			}
			if stage[0].Blocks != lastUpdate.Blocks || stage[0].Edits <= before[0].Edits {
				t.Errorf("the stage message was not edited in place by the new leader (edits %d → %d)", before[0].Edits, stage[0].Edits)
			}
			last := events[len(events)-1].Event
			if !strings.Contains(stage[0].Blocks, last.At.UTC().Format("15:04")) {
				t.Errorf("the stage message does not show the new leader's last tick (%s)", last.At.UTC().Format("15:04"))
			}

			// One look per message the new leader had no record of, none
			// per edit.
			lookups := 0
			for _, c := range after {
				if c.Method == "conversations.history" || c.Method == "conversations.replies" {
					lookups++
					if !c.IncludeAllMetadata {
						t.Errorf("%s without include_all_metadata: Slack would hide the outbox refs", c.Method)
					}
				}
			}
			if want := seen.seen(); lookups != want {
				t.Errorf("the new leader read the channel %d times, want once per message it had no record of (%d)", lookups, want)
			}

			// Once a message is known, the next event costs no lookup.
			calls := len(fake.Calls())
			more := *last
			more.At = more.At.Add(time.Minute)
			if err := leader.Notify(ctx, events[len(events)-1].Key+"-next", more); err != nil {
				t.Fatal(err)
			}
			if err := leader.Outbox.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			for _, c := range fake.Calls()[calls:] {
				if c.Method != "chat.update" || c.TS != parent {
					t.Errorf("a row after the takeover made %s (ts %s), want only chat.update of %s", c.Method, c.TS, parent)
				}
			}
		})
	}
}
