package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/store"
	"github.com/canarybot/canarybot/traffic"
)

// outsideWriter is a state store on which, once, another writer saves the
// release just before the engine does: a write the previous leader still
// had in flight when it lost the Lease.
type outsideWriter struct {
	store.State
	armed    atomic.Bool
	conflict atomic.Bool
}

func (s *outsideWriter) Save(ctx context.Context, r *rollout.Release) error {
	if r.Phase == rollout.PhaseStage && len(r.Rows) > 0 && s.armed.CompareAndSwap(true, false) {
		other, err := s.State.Load(ctx, r.ID)
		if err != nil {
			return err
		}
		other.Log = append(other.Log, rollout.LogEntry{At: time.Now(), User: "old-leader", Kind: rollout.LogSystem, Text: "in-flight write of the previous leader"})
		if err := s.State.Save(ctx, other); err != nil {
			return err
		}
	}
	err := s.State.Save(ctx, r)
	if errors.Is(err, rollout.ErrConflict) {
		s.conflict.Store(true)
	}
	return err
}

// TestEngineHostDrivesOnAfterConflict: an engine whose save conflicts with
// another writer's loads the stored release again and drives it to the
// end, keeping what the other writer stored.
func TestEngineHostDrivesOnAfterConflict(t *testing.T) {
	plan := fastPlan()
	plan.Timeline = nil
	plan.AutoPromote = true
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	ow := &outsideWriter{State: st}
	ow.armed.Store(true)
	backend := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(backend.Close)
	u, _ := url.Parse(backend.URL)
	router := traffic.NewLocal(u, u)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rn := &rollout.Runner{
		Machine: &rollout.Machine{Plan: &plan, Render: (&parts{}).render},
		Metrics: steadyMetrics{}, Alerts: steadyMetrics{}, Traffic: router,
		Store: ow, Inbox: ow, Clock: clock.Real{}, Log: log,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := rn.Start(ctx, "v1.4.0", "v1.4.0", "alice", time.Time{}); err != nil {
		t.Fatal(err)
	}
	h := &engineHost{log: log}
	r, err := h.drive(ctx, &hostedEngine{Runner: rn}, "v1.4.0")
	if err != nil {
		t.Fatalf("drive: %v", err)
	}
	if !ow.conflict.Load() {
		t.Fatal("no save conflicted: the scenario did not play")
	}
	if r.Phase != rollout.PhaseComplete {
		t.Fatalf("release %s after a conflict, want complete", r.Phase)
	}
	if !slices.ContainsFunc(r.Log, func(e rollout.LogEntry) bool { return e.User == "old-leader" }) {
		t.Error("the other writer's entry was overwritten: the engine saved over state it had not read")
	}
	if w, _ := router.Weight(ctx); w != 100 {
		t.Errorf("router at %d%%, want 100", w)
	}
}

// releaseIDs is a store's answers to Load, by ID; an ID not listed is not
// found.
type releaseIDs map[string]error

func (s releaseIDs) Load(_ context.Context, id string) (*rollout.Release, error) {
	err, ok := s[id]
	if !ok {
		return nil, rollout.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &rollout.Release{ID: id, Phase: rollout.PhaseComplete}, nil
}

// TestFreeReleaseID: a new release of a version takes the first ID no
// release holds or held: a release dropped from the state ConfigMap keeps
// its ID, or the new one would reopen its evidence and be taken for it.
func TestFreeReleaseID(t *testing.T) {
	broken := errors.New("get ConfigMap spark/canarybot-state: connection refused")
	for _, tt := range []struct {
		name    string
		store   releaseIDs
		want    string
		wantErr error
	}{
		{name: "first release of the version", store: releaseIDs{}, want: "v1.4.0"},
		{name: "an ended release holds it", store: releaseIDs{"v1.4.0": nil}, want: "v1.4.0-2"},
		{name: "a dropped release holds it", store: releaseIDs{"v1.4.0": store.ErrPruned}, want: "v1.4.0-2"},
		{name: "both held", store: releaseIDs{"v1.4.0": store.ErrPruned, "v1.4.0-2": nil}, want: "v1.4.0-3"},
		{name: "the store fails", store: releaseIDs{"v1.4.0": broken}, wantErr: broken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := freeReleaseID(t.Context(), tt.store, "v1.4.0")
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("freeReleaseID = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
