package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/canarybot/canarybot/rollout"
	bolt "go.etcd.io/bbolt"
)

func TestSaveLoad(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "v1"); !errors.Is(err, rollout.ErrNotFound) {
		t.Fatalf("load of a missing release: %v, want ErrNotFound", err)
	}
	r := &rollout.Release{ID: "v1", Version: "v1.4.0", Phase: rollout.PhaseStage, Stage: 2, Weight: 25,
		Created: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	if err := s.Save(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.Revision != 1 {
		t.Fatalf("revision %d after first save, want 1", r.Revision)
	}
	// A second store on the same file, as another process would open it.
	other, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := other.Load(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "v1" || got.Weight != 25 || got.Stage != 2 || !got.Created.Equal(r.Created) {
		t.Fatalf("loaded %+v", got)
	}
	// Both hold revision 1: the first save wins, the second conflicts.
	got.Weight = 50
	if err := other.Save(ctx, got); err != nil {
		t.Fatal(err)
	}
	r.Weight = 5
	if err := s.Save(ctx, r); !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("stale save: %v, want ErrConflict", err)
	}
	final, _ := s.Load(ctx, "v1")
	if final.Weight != 50 || final.Revision != 2 {
		t.Fatalf("after conflict: weight %d revision %d, want 50 and 2", final.Weight, final.Revision)
	}
	if err := s.Save(ctx, &rollout.Release{ID: "v2", Revision: 3}); !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("save of an unknown release at revision 3: %v, want ErrConflict", err)
	}
}

func TestInbox(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, "", rollout.Command{ID: "a", Kind: rollout.CmdPromote}); !errors.Is(err, rollout.ErrNotFound) {
		t.Fatalf("enqueue without a release: %v, want ErrNotFound", err)
	}
	r := &rollout.Release{ID: "v1"}
	if err := s.Save(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, "", rollout.Command{Kind: rollout.CmdPromote}); err == nil {
		t.Fatal("a command without an ID was queued")
	}
	for _, id := range []string{"a", "b"} {
		if err := s.Enqueue(ctx, "", rollout.Command{ID: id, Kind: rollout.CmdHold, User: "alice"}); err != nil {
			t.Fatal(err)
		}
	}
	cmds, err := s.Take(ctx, "v1")
	if err != nil || len(cmds) != 2 || cmds[0].ID != "a" || cmds[1].ID != "b" {
		t.Fatalf("take: %v %v, want a, b", cmds, err)
	}
	// Not applied yet (a crash before the release was saved): still queued.
	if again, _ := s.Take(ctx, "v1"); len(again) != 2 {
		t.Fatalf("unapplied commands dropped: %v", again)
	}
	r.Commands = []string{"a"}
	if err := s.Save(ctx, r); err != nil {
		t.Fatal(err)
	}
	left, err := s.Take(ctx, "v1")
	if err != nil || len(left) != 1 || left[0].ID != "b" {
		t.Fatalf("after applying a: %v %v, want only b", left, err)
	}
}

func TestHeartbeat(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if at, err := s.LastHeartbeat(ctx, "v1"); err != nil || !at.IsZero() {
		t.Fatalf("heartbeat before any engine: %v %v, want zero", at, err)
	}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	if err := s.Heartbeat(ctx, "v1", now); err != nil {
		t.Fatal(err)
	}
	if at, err := s.LastHeartbeat(ctx, "v1"); err != nil || !at.Equal(now) {
		t.Fatalf("heartbeat %v %v, want %v", at, err, now)
	}
	if at, _ := s.LastHeartbeat(ctx, "v2"); !at.IsZero() {
		t.Fatalf("another release's heartbeat leaked: %v", at)
	}
}

// TestLockWaitHonoursContext: while another process holds the file, an
// operation gives up by its context's deadline, not the store's own lock
// timeout (set to an hour here, so a store that ignored the context would
// hang the test).
func TestLockWaitHonoursContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.timeout = time.Hour
	held, err := bolt.Open(path, 0o600, nil) // another process's lock
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Load(ctx, "v1"); !errors.Is(err, ErrLocked) {
		t.Fatalf("load while locked: %v, want ErrLocked", err)
	}
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := s.Load(cancelled, "v1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("load with a cancelled context: %v", err)
	}
}
