package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/rollout"
)

func TestSlackStoreOnAnOlderStateFile(t *testing.T) {
	// A state file from before the Slack notifier: no slack buckets.
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, &rollout.Release{ID: "rel-1", Version: "v1.4.0"}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Pending(ctx); err != nil || len(p) != 0 {
		t.Errorf("Pending = %v, %v; want empty", p, err)
	}
	if h, err := s.Handled(ctx, "rel-1/1"); err != nil || h {
		t.Errorf("Handled = %v, %v; want false", h, err)
	}
	if _, found, err := s.StageMessage(ctx, "rel-1", 1); err != nil || found {
		t.Errorf("StageMessage found %v, %v", found, err)
	}
	if _, found, err := s.Message(ctx, "x"); err != nil || found {
		t.Errorf("Message found %v, %v", found, err)
	}
	if d, err := s.Dead(ctx); err != nil || len(d) != 0 {
		t.Errorf("Dead = %v, %v", d, err)
	}
	if err := s.QueueMessages(ctx, time.Now(), bot.OutboxMessage{Key: "k", Op: bot.OutboxPost, Channel: "C1", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Load(ctx, "rel-1"); err != nil || r.Version != "v1.4.0" {
		t.Errorf("the release is disturbed: %+v, %v", r, err)
	}
}

func TestSlackStoreRecordAndOutbox(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
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

	// Everything is there for another process.
	other, err := Open(path)
	if err != nil {
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

func TestSlackStoreCorruptRecord(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.QueueMessages(ctx, time.Now(), bot.OutboxMessage{Key: "k", Op: bot.OutboxPost, Channel: "C1"}); err != nil {
		t.Fatal(err)
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(slackBucket).Bucket(slackQueueBucket).Put(seqKey(1), []byte("{not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pending(ctx); err == nil {
		t.Error("a corrupt queue entry was read without an error")
	}
}
