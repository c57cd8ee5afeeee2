// Package store keeps releases in an embedded bbolt file: the default state
// store outside a cluster.
package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/canarybot/canarybot/rollout"
)

var (
	releasesBucket = []byte("releases")
	inboxBucket    = []byte("inbox")
	metaBucket     = []byte("meta")
	currentKey     = []byte("current")
)

// ErrLocked is returned when another process holds the state file longer
// than the lock timeout.
var ErrLocked = errors.New("state file is locked by another process")

// Bolt is a bbolt-backed rollout.Store and rollout.Inbox. It opens the file
// for each operation, so that the CLI in one process can queue commands for
// the engine running in another.
type Bolt struct {
	path    string
	timeout time.Duration
	mu      sync.Mutex // flock is per open file: serialise opens in this process
}

// Open returns a store on the file at path, creating it if needed.
func Open(path string) (*Bolt, error) {
	b := &Bolt{path: path, timeout: 5 * time.Second}
	err := b.update(context.Background(), func(tx *bolt.Tx) error {
		for _, name := range [][]byte{releasesBucket, inboxBucket, metaBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// open takes the file's lock, waiting at most the store's timeout or what
// is left of ctx: a Slack ack must not wait behind another process's lock.
func (b *Bolt) open(ctx context.Context, readOnly bool) (*bolt.DB, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout := b.timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	db, err := bolt.Open(b.path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: readOnly})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", b.path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", b.path, err)
	}
	return db, nil
}

func (b *Bolt) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	db, err := b.open(ctx, false)
	if err != nil {
		return err
	}
	if err := db.Update(fn); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

func (b *Bolt) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	db, err := b.open(ctx, false)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(fn)
}

// Load returns the release with the given id; "" means the current one.
func (b *Bolt) Load(ctx context.Context, id string) (*rollout.Release, error) {
	var r rollout.Release
	err := b.view(ctx, func(tx *bolt.Tx) error {
		if id == "" {
			id = string(tx.Bucket(metaBucket).Get(currentKey))
		}
		data := tx.Bucket(releasesBucket).Get([]byte(id))
		if data == nil {
			return rollout.ErrNotFound
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("release %s: corrupt record: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Save stores the release if nobody saved it since it was loaded, and makes
// it the current release.
func (b *Bolt) Save(ctx context.Context, r *rollout.Release) error {
	return b.update(ctx, func(tx *bolt.Tx) error {
		bk := tx.Bucket(releasesBucket)
		if old := bk.Get([]byte(r.ID)); old != nil {
			var stored struct {
				Revision int64 `json:"revision"`
			}
			if err := json.Unmarshal(old, &stored); err != nil {
				return fmt.Errorf("release %s: corrupt record: %w", r.ID, err)
			}
			if stored.Revision != r.Revision {
				return fmt.Errorf("release %s at revision %d, stored %d: %w", r.ID, r.Revision, stored.Revision, rollout.ErrConflict)
			}
		} else if r.Revision != 0 {
			return fmt.Errorf("release %s at revision %d is not stored: %w", r.ID, r.Revision, rollout.ErrConflict)
		}
		r.Revision++
		data, err := json.Marshal(r)
		if err != nil {
			r.Revision--
			return fmt.Errorf("encode release %s: %w", r.ID, err)
		}
		if err := bk.Put([]byte(r.ID), data); err != nil {
			r.Revision--
			return err
		}
		return tx.Bucket(metaBucket).Put(currentKey, []byte(r.ID))
	})
}

// Enqueue queues a command for the engine running the release; "" means the
// current release.
func (b *Bolt) Enqueue(ctx context.Context, id string, c rollout.Command) error {
	if c.ID == "" {
		return errors.New("a queued command needs an ID, so that it is applied once")
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return b.update(ctx, func(tx *bolt.Tx) error {
		if id == "" {
			id = string(tx.Bucket(metaBucket).Get(currentKey))
		}
		if tx.Bucket(releasesBucket).Get([]byte(id)) == nil {
			return rollout.ErrNotFound
		}
		q, err := tx.Bucket(inboxBucket).CreateBucketIfNotExists([]byte(id))
		if err != nil {
			return err
		}
		seq, err := q.NextSequence()
		if err != nil {
			return err
		}
		return q.Put(binary.BigEndian.AppendUint64(nil, seq), data)
	})
}

// Take returns the queued commands of a release, oldest first. A command
// leaves the queue only once the stored release records it as applied, so a
// crash between Take and Save loses nothing.
func (b *Bolt) Take(ctx context.Context, id string) ([]rollout.Command, error) {
	var out []rollout.Command
	err := b.update(ctx, func(tx *bolt.Tx) error {
		q := tx.Bucket(inboxBucket).Bucket([]byte(id))
		if q == nil {
			return nil
		}
		applied := map[string]bool{}
		if data := tx.Bucket(releasesBucket).Get([]byte(id)); data != nil {
			var r struct {
				Commands []string `json:"commands"`
			}
			if err := json.Unmarshal(data, &r); err != nil {
				return fmt.Errorf("release %s: corrupt record: %w", id, err)
			}
			for _, c := range r.Commands {
				applied[c] = true
			}
		}
		var done [][]byte
		err := q.ForEach(func(k, v []byte) error {
			var c rollout.Command
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("queued command %x: %w", k, err)
			}
			if applied[c.ID] {
				done = append(done, k)
				return nil
			}
			out = append(out, c)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range done {
			if err := q.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

func heartbeatKey(id string) []byte { return []byte("heartbeat/" + id) }

// Heartbeat records that an engine is driving the release, and when.
func (b *Bolt) Heartbeat(ctx context.Context, id string, at time.Time) error {
	data, err := at.UTC().MarshalText()
	if err != nil {
		return err
	}
	return b.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(metaBucket).Put(heartbeatKey(id), data)
	})
}

// LastHeartbeat is when an engine last said it was driving the release;
// zero if none ever did.
func (b *Bolt) LastHeartbeat(ctx context.Context, id string) (time.Time, error) {
	var at time.Time
	err := b.view(ctx, func(tx *bolt.Tx) error {
		if data := tx.Bucket(metaBucket).Get(heartbeatKey(id)); data != nil {
			return at.UnmarshalText(data)
		}
		return nil
	})
	return at, err
}
