package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/canarybot/canarybot/bot"
)

// The Slack notifier's buckets, all under one parent so the release
// buckets stay as they are:
//
//	slack/stages    StageRef            → bot.StageMessage
//	slack/releases  release ID          → bot.ReleaseMessages
//	slack/handled   event key           → "" (the event was recorded)
//	slack/queue     big-endian seq      → bot.OutboxEntry (pending)
//	slack/keys      message key         → seq (ever queued: a repeat is ignored)
//	slack/messages  message ref         → bot.MessageRecord (where Slack put it)
//	slack/dead      big-endian seq      → bot.OutboxEntry (given up, with why)
var (
	slackBucket         = []byte("slack")
	slackStagesBucket   = []byte("stages")
	slackReleasesBucket = []byte("releases")
	slackHandledBucket  = []byte("handled")
	slackQueueBucket    = []byte("queue")
	slackKeysBucket     = []byte("keys")
	slackMessagesBucket = []byte("messages")
	slackDeadBucket     = []byte("dead")
)

// The Bolt store is also the Slack notifier's SlackStore (and its outbox's
// store): what the war-room channel was told survives a restart with the
// release it is about, in the same file.
var _ bot.SlackStore = (*Bolt)(nil)

// slackUpdate runs fn with the Slack buckets, creating them on first use:
// state files written before the Slack notifier existed have none.
func (b *Bolt) slackUpdate(ctx context.Context, fn func(s slackTx) error) error {
	return b.update(ctx, func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(slackBucket)
		if err != nil {
			return err
		}
		for _, name := range [][]byte{slackStagesBucket, slackReleasesBucket, slackHandledBucket, slackQueueBucket, slackKeysBucket, slackMessagesBucket, slackDeadBucket} {
			if _, err := root.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return fn(slackTx{root})
	})
}

// slackView runs fn with the Slack buckets; ok is false when there are none
// yet, which reads as empty.
func (b *Bolt) slackView(ctx context.Context, fn func(s slackTx) error) error {
	return b.view(ctx, func(tx *bolt.Tx) error {
		root := tx.Bucket(slackBucket)
		if root == nil {
			return nil
		}
		return fn(slackTx{root})
	})
}

type slackTx struct{ root *bolt.Bucket }

func (s slackTx) b(name []byte) *bolt.Bucket { return s.root.Bucket(name) }

func (s slackTx) get(bucket []byte, key string, v any) (bool, error) {
	bk := s.b(bucket)
	if bk == nil {
		return false, nil
	}
	data := bk.Get([]byte(key))
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("slack %s %q: corrupt record: %w", bucket, key, err)
	}
	return true, nil
}

func (s slackTx) put(bucket []byte, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode slack %s record: %w", bucket, err)
	}
	return s.b(bucket).Put(key, data)
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// StageMessage implements bot.SlackStore.
func (b *Bolt) StageMessage(ctx context.Context, release string, stage int) (bot.StageMessage, bool, error) {
	var m bot.StageMessage
	var found bool
	err := b.slackView(ctx, func(s slackTx) error {
		var err error
		found, err = s.get(slackStagesBucket, bot.StageRef(release, stage), &m)
		return err
	})
	return m, found, err
}

// ReleaseMessages implements bot.SlackStore.
func (b *Bolt) ReleaseMessages(ctx context.Context, release string) (bot.ReleaseMessages, bool, error) {
	var r bot.ReleaseMessages
	var found bool
	err := b.slackView(ctx, func(s slackTx) error {
		var err error
		found, err = s.get(slackReleasesBucket, release, &r)
		return err
	})
	return r, found, err
}

// Handled implements bot.SlackStore.
func (b *Bolt) Handled(ctx context.Context, key string) (bool, error) {
	var found bool
	err := b.slackView(ctx, func(s slackTx) error {
		found = s.b(slackHandledBucket).Get([]byte(key)) != nil
		return nil
	})
	return found, err
}

// Record implements bot.SlackStore: the event's stage and release records,
// its queued messages and its key, in one transaction.
func (b *Bolt) Record(ctx context.Context, key string, now time.Time, c bot.SlackChange) error {
	return b.slackUpdate(ctx, func(s slackTx) error {
		for _, m := range c.Stages {
			if err := s.put(slackStagesBucket, []byte(bot.StageRef(m.Release, m.Stage)), m); err != nil {
				return err
			}
		}
		if c.Release != nil {
			if err := s.put(slackReleasesBucket, []byte(c.Release.Release), c.Release); err != nil {
				return err
			}
		}
		if err := s.enqueue(now, c.Messages); err != nil {
			return err
		}
		return s.b(slackHandledBucket).Put([]byte(key), []byte{})
	})
}

// QueueMessages implements bot.OutboxStore.
func (b *Bolt) QueueMessages(ctx context.Context, now time.Time, msgs ...bot.OutboxMessage) error {
	return b.slackUpdate(ctx, func(s slackTx) error { return s.enqueue(now, msgs) })
}

func (s slackTx) enqueue(now time.Time, msgs []bot.OutboxMessage) error {
	q, keys := s.b(slackQueueBucket), s.b(slackKeysBucket)
	for _, m := range msgs {
		if keys.Get([]byte(m.Key)) != nil {
			continue
		}
		seq, err := q.NextSequence()
		if err != nil {
			return err
		}
		if err := s.put(slackQueueBucket, seqKey(seq), bot.OutboxEntry{OutboxMessage: m, Seq: seq, Queued: now}); err != nil {
			return err
		}
		if err := keys.Put([]byte(m.Key), seqKey(seq)); err != nil {
			return err
		}
	}
	return nil
}

// Pending implements bot.OutboxStore.
func (b *Bolt) Pending(ctx context.Context) ([]bot.OutboxEntry, error) {
	return b.entries(ctx, slackQueueBucket)
}

// Dead implements bot.OutboxStore.
func (b *Bolt) Dead(ctx context.Context) ([]bot.OutboxEntry, error) {
	return b.entries(ctx, slackDeadBucket)
}

func (b *Bolt) entries(ctx context.Context, bucket []byte) ([]bot.OutboxEntry, error) {
	var out []bot.OutboxEntry
	err := b.slackView(ctx, func(s slackTx) error {
		return s.b(bucket).ForEach(func(k, v []byte) error {
			var e bot.OutboxEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("slack outbox entry %x: corrupt record: %w", k, err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// Reschedule implements bot.OutboxStore. An entry no longer queued (another
// process finished it) is left alone.
func (b *Bolt) Reschedule(ctx context.Context, e bot.OutboxEntry) error {
	return b.slackUpdate(ctx, func(s slackTx) error {
		if s.b(slackQueueBucket).Get(seqKey(e.Seq)) == nil {
			return nil
		}
		return s.put(slackQueueBucket, seqKey(e.Seq), e)
	})
}

// Finish implements bot.OutboxStore.
func (b *Bolt) Finish(ctx context.Context, e bot.OutboxEntry, out bot.OutboxOutcome) error {
	return b.slackUpdate(ctx, func(s slackTx) error {
		if err := s.b(slackQueueBucket).Delete(seqKey(e.Seq)); err != nil {
			return err
		}
		if out.Message != nil {
			if err := s.put(slackMessagesBucket, []byte(out.Message.Ref), out.Message); err != nil {
				return err
			}
		}
		if out.Dead != "" {
			e.LastError = out.Dead
			if err := s.put(slackDeadBucket, seqKey(e.Seq), e); err != nil {
				return err
			}
		}
		return nil
	})
}

// Message implements bot.OutboxStore.
func (b *Bolt) Message(ctx context.Context, ref string) (bot.MessageRecord, bool, error) {
	var m bot.MessageRecord
	var found bool
	err := b.slackView(ctx, func(s slackTx) error {
		var err error
		found, err = s.get(slackMessagesBucket, ref, &m)
		return err
	})
	return m, found, err
}

// PutMessage implements bot.OutboxStore.
func (b *Bolt) PutMessage(ctx context.Context, m bot.MessageRecord) error {
	return b.slackUpdate(ctx, func(s slackTx) error {
		return s.put(slackMessagesBucket, []byte(m.Ref), m)
	})
}
