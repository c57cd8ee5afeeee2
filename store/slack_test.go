package store

import (
	"context"
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
