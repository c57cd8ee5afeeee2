package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/rollout"
)

// slackStores are the bot.SlackStore implementations every Slack contract
// test runs on: a fresh store and a second handle on the same state, as
// another process (or another pod) would open it.
func slackStores() map[string]func(t *testing.T) (bot.SlackStore, bot.SlackStore) {
	return map[string]func(t *testing.T) (bot.SlackStore, bot.SlackStore){
		"bolt": func(t *testing.T) (bot.SlackStore, bot.SlackStore) {
			path := filepath.Join(t.TempDir(), "state.db")
			a, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			return a, b
		},
		"configmap": func(t *testing.T) (bot.SlackStore, bot.SlackStore) {
			a, cs := configMapSlackStore(t)
			b, err := NewConfigMapSlack(cs, a.cm.namespace, a.cm.name)
			if err != nil {
				t.Fatal(err)
			}
			return a, b
		},
		"memory": func(*testing.T) (bot.SlackStore, bot.SlackStore) {
			s := &bot.MemorySlackStore{}
			return s, s
		},
	}
}

// slackBehaviours is what every SlackStore must do, the Bolt store's
// behaviour being the reference.
var slackBehaviours = []struct {
	name string
	run  func(t *testing.T, s, other bot.SlackStore)
}{
	{"an empty store reads as empty", slackEmpty},
	{"record and outbox", slackRecordAndOutbox},
	{"sequence and keys outlive delivery", slackSequenceOutlivesDelivery},
	{"a queued message outlives newer releases", slackQueuedOutlivesNewerReleases},
}

func TestSlackStoreContract(t *testing.T) {
	for name, open := range slackStores() {
		t.Run(name, func(t *testing.T) {
			for _, b := range slackBehaviours {
				t.Run(b.name, func(t *testing.T) {
					s, other := open(t)
					b.run(t, s, other)
				})
			}
		})
	}
}

func slackEmpty(t *testing.T, s, other bot.SlackStore) {
	ctx := t.Context()
	if p, err := s.Pending(ctx); err != nil || len(p) != 0 {
		t.Errorf("Pending = %v, %v; want empty", p, err)
	}
	if h, err := s.Handled(ctx, "rel-1/1"); err != nil || h {
		t.Errorf("Handled = %v, %v; want false", h, err)
	}
	if _, found, err := s.StageMessage(ctx, "rel-1", 1); err != nil || found {
		t.Errorf("StageMessage found %v, %v", found, err)
	}
	if _, found, err := s.ReleaseMessages(ctx, "rel-1"); err != nil || found {
		t.Errorf("ReleaseMessages found %v, %v", found, err)
	}
	if _, found, err := s.Message(ctx, "x"); err != nil || found {
		t.Errorf("Message found %v, %v", found, err)
	}
	if d, err := s.Dead(ctx); err != nil || len(d) != 0 {
		t.Errorf("Dead = %v, %v", d, err)
	}
	// Another process finished an entry this one still held: nothing to do.
	ghost := bot.OutboxEntry{OutboxMessage: bot.OutboxMessage{Key: "k"}, Seq: 9, Attempts: 1}
	if err := s.Reschedule(ctx, ghost); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, ghost, bot.OutboxOutcome{}); err != nil {
		t.Fatal(err)
	}
	if p, err := other.Pending(ctx); err != nil || len(p) != 0 {
		t.Errorf("a reschedule or finish of an entry not queued queued it: %v, %v", p, err)
	}
}

// slackRecordAndOutbox is TestSlackStoreRecordAndOutbox's expectations,
// on every store.
func slackRecordAndOutbox(t *testing.T, s, other bot.SlackStore) {
	ctx := t.Context()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	stage := bot.StageMessage{Release: "rel-1", Version: "v1.4.0", Stage: 2, Stages: 5, Weight: 5,
		Rows: []bot.StageRow{{Key: "rel-1/7", At: now, Decision: rollout.Continue, Readings: []bot.RowReading{{Signal: "api_p95", Value: 0.1, Bound: 0.2, Verdict: rollout.Pass}}}}}
	rel := bot.ReleaseMessages{Release: "rel-1", Version: "v1.4.0", LastStage: 2, Opened: true, GoNoGo: &bot.GateState{Posted: now, Outcome: "GO"}}
	msgs := []bot.OutboxMessage{
		{Key: "rel-1/7", Op: bot.OutboxUpsert, Ref: bot.StageRef("rel-1", 2), Channel: "#spark-warroom", Text: "table", Blocks: []byte(`[{"type":"divider"}]`)},
		{Key: "rel-1/7/alert/X", Op: bot.OutboxPost, ThreadRef: bot.StageRef("rel-1", 2), Channel: "#spark-warroom", Text: "alert", Broadcast: true},
	}
	if err := s.Record(ctx, "rel-1/7", now, bot.SlackChange{Stages: []bot.StageMessage{stage}, Release: &rel, Messages: msgs}); err != nil {
		t.Fatal(err)
	}
	// A message key queued again (a repeated event) is not queued twice.
	if err := s.QueueMessages(ctx, now, msgs[1], bot.OutboxMessage{Key: "third", Op: bot.OutboxPost, Channel: "C1", Text: "3"}); err != nil {
		t.Fatal(err)
	}

	if h, err := other.Handled(ctx, "rel-1/7"); err != nil || !h {
		t.Errorf("Handled = %v, %v", h, err)
	}
	got, found, err := other.StageMessage(ctx, "rel-1", 2)
	if err != nil || !found || fmt.Sprint(got) != fmt.Sprint(stage) {
		t.Errorf("StageMessage = %+v, %v, %v; want %+v", got, found, err, stage)
	}
	gotRel, found, err := other.ReleaseMessages(ctx, "rel-1")
	if err != nil || !found || gotRel.GoNoGo == nil || gotRel.GoNoGo.Outcome != "GO" || !gotRel.Opened || gotRel.LastStage != 2 {
		t.Errorf("ReleaseMessages = %+v, %v, %v", gotRel, found, err)
	}
	pending, err := other.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range pending {
		keys = append(keys, e.Key)
		if !e.Queued.Equal(now) {
			t.Errorf("%s queued at %s, want %s", e.Key, e.Queued, now)
		}
	}
	if fmt.Sprint(keys) != "[rel-1/7 rel-1/7/alert/X third]" {
		t.Fatalf("queue = %v, want the three keys in order, each once", keys)
	}
	if string(pending[0].Blocks) != `[{"type":"divider"}]` || !pending[1].Broadcast || pending[1].ThreadRef != bot.StageRef("rel-1", 2) {
		t.Errorf("entries lost fields: %+v", pending[:2])
	}

	// Retry state survives; a retry of a finished entry changes nothing.
	e := pending[0]
	e.Attempts, e.NotBefore, e.LastError = 2, now.Add(time.Minute), "500"
	if err := other.Reschedule(ctx, e); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Pending(ctx); p[0].Attempts != 2 || !p[0].NotBefore.Equal(now.Add(time.Minute)) || p[0].LastError != "500" {
		t.Errorf("rescheduled entry = %+v", p[0])
	}
	posted := &bot.MessageRecord{Ref: bot.StageRef("rel-1", 2), Channel: "C1", TS: "1700000000.000001"}
	if err := s.Finish(ctx, e, bot.OutboxOutcome{Message: posted}); err != nil {
		t.Fatal(err)
	}
	if err := s.Reschedule(ctx, e); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Pending(ctx); len(p) != 2 || p[0].Key != "rel-1/7/alert/X" {
		t.Errorf("after finish, queue = %+v", p)
	}
	if m, found, _ := other.Message(ctx, posted.Ref); !found || m != *posted {
		t.Errorf("Message = %+v, %v; want %+v", m, found, *posted)
	}
	if err := s.Finish(ctx, pending[2], bot.OutboxOutcome{Dead: "channel_not_found"}); err != nil {
		t.Fatal(err)
	}
	dead, err := other.Dead(ctx)
	if err != nil || len(dead) != 1 || dead[0].Key != "third" || dead[0].LastError != "channel_not_found" {
		t.Errorf("Dead = %+v, %v", dead, err)
	}
	if err := s.PutMessage(ctx, bot.MessageRecord{Ref: "r", Channel: "#spark-warroom", PostStarted: true}); err != nil {
		t.Fatal(err)
	}
	if m, _, _ := other.Message(ctx, "r"); !m.PostStarted {
		t.Errorf("PostStarted lost: %+v", m)
	}
}

// slackSequenceOutlivesDelivery: a drained queue does not restart the
// sequence, and a delivered message's key is still known, so the event a
// new leader is handed again does not post it twice.
func slackSequenceOutlivesDelivery(t *testing.T, s, other bot.SlackStore) {
	ctx := t.Context()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	a := bot.OutboxMessage{Key: "rel-1/1", Op: bot.OutboxPost, Channel: "C1", Text: "a"}
	if err := s.QueueMessages(ctx, now, a); err != nil {
		t.Fatal(err)
	}
	p, err := s.Pending(ctx)
	if err != nil || len(p) != 1 {
		t.Fatalf("Pending = %v, %v", p, err)
	}
	first := p[0]
	if err := s.Finish(ctx, first, bot.OutboxOutcome{Message: &bot.MessageRecord{Ref: a.Key, Channel: "C1", TS: "1.1"}}); err != nil {
		t.Fatal(err)
	}
	if err := other.QueueMessages(ctx, now, a, bot.OutboxMessage{Key: "rel-1/2", Op: bot.OutboxPost, Channel: "C1", Text: "b"}); err != nil {
		t.Fatal(err)
	}
	p, err = s.Pending(ctx)
	if err != nil || len(p) != 1 || p[0].Key != "rel-1/2" {
		t.Fatalf("Pending = %+v, %v; want only rel-1/2 (rel-1/1 was delivered)", p, err)
	}
	if p[0].Seq <= first.Seq {
		t.Errorf("seq %d after %d: the sequence went back once the queue drained", p[0].Seq, first.Seq)
	}
}

// slackQueuedOutlivesNewerReleases: a release's message still queued when
// more releases than a bounded store keeps have followed is still queued,
// once, with what its delivery needs (its thread's parent, its key), and
// the newest release's state is whole. A store that keeps everything
// passes as it is; the ConfigMap store passes by never pruning a release
// with a message queued.
func slackQueuedOutlivesNewerReleases(t *testing.T, s, other bot.SlackStore) {
	ctx := t.Context()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	release := func(rel string, n int) bot.SlackChange {
		return bot.SlackChange{
			Stages:   []bot.StageMessage{{Release: rel, Stage: 1, Stages: 5, Weight: 1, Rows: []bot.StageRow{{Key: fmt.Sprint(rel, "/", n), At: now}}}},
			Release:  &bot.ReleaseMessages{Release: rel, Version: "v1.4.0", Opened: true, LastStage: 1},
			Messages: []bot.OutboxMessage{{Key: fmt.Sprint(rel, "/", n), Op: bot.OutboxUpsert, Ref: bot.StageRef(rel, 1), Channel: "C1", Text: "table"}},
		}
	}
	deliver := func(rel string) {
		t.Helper()
		p, err := s.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p {
			if e.Key == rel+"/1" {
				rec := bot.MessageRecord{Ref: e.MessageRef(), Channel: "C1", TS: fmt.Sprint(e.Seq, ".000001")}
				if err := s.Finish(ctx, e, bot.OutboxOutcome{Message: &rec}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := s.Record(ctx, "old/1", now, release("old", 1)); err != nil {
		t.Fatal(err)
	}
	deliver("old")
	late := bot.OutboxMessage{Key: "old/2", Op: bot.OutboxPost, ThreadRef: bot.StageRef("old", 1), Channel: "C1", Text: "rolled back"}
	if err := s.Record(ctx, "old/2", now, bot.SlackChange{Release: &bot.ReleaseMessages{Release: "old", Opened: true, LastStage: 1}, Messages: []bot.OutboxMessage{late}}); err != nil {
		t.Fatal(err)
	}
	newest := ""
	for i := range slackKeptReleases + 2 {
		newest = fmt.Sprint("new-", i)
		if err := s.Record(ctx, newest+"/1", now, release(newest, 1)); err != nil {
			t.Fatal(err)
		}
		deliver(newest)
	}
	// Queued again by a repeated event: still once.
	if err := other.QueueMessages(ctx, now, late); err != nil {
		t.Fatal(err)
	}
	p, err := other.Pending(ctx)
	if err != nil || len(p) != 1 || p[0].Key != late.Key {
		t.Fatalf("Pending = %+v, %v; want only %s, once", p, err, late.Key)
	}
	if m, found, err := other.Message(ctx, late.ThreadRef); err != nil || !found || m.TS == "" {
		t.Errorf("the queued reply's thread parent %s: %+v, found %v, %v; the reply would lose its thread", late.ThreadRef, m, found, err)
	}
	if h, err := other.Handled(ctx, "old/2"); err != nil || !h {
		t.Errorf("Handled(old/2) = %v, %v", h, err)
	}
	if m, found, err := other.StageMessage(ctx, newest, 1); err != nil || !found || len(m.Rows) != 1 {
		t.Errorf("the newest release's table: %+v, found %v, %v", m, found, err)
	}
	if h, err := other.Handled(ctx, newest+"/1"); err != nil || !h {
		t.Errorf("Handled(%s/1) = %v, %v", newest, h, err)
	}
}
