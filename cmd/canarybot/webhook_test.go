package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/server"
	"github.com/canarybot/canarybot/store"
	"github.com/canarybot/canarybot/traffic"
)

// steadyMetrics answers every query with the same small value, which every
// default signal passes; the engine's metrics are not under test here.
type steadyMetrics struct{}

func (steadyMetrics) Query(ctx context.Context, q string, at time.Time) (rollout.Sample, error) {
	return rollout.Sample{Value: 0.001}, nil
}

func (steadyMetrics) Firing(ctx context.Context, at time.Time) ([]rollout.Alert, error) {
	return nil, nil
}

// TestAlertmanagerWebhookRollsBack: Alertmanager pushes a firing trigger to
// `serve`; the engine driving the release (another process in production,
// here a goroutine on the same state file) rolls back, and the router's
// weight is 0.
// engineAtStageOne is an engine driving a release at stage 1 on a bbolt
// state file, in a goroutine: another process in production.
type engineAtStageOne struct {
	state  string
	router *traffic.Local
	done   chan *rollout.Release // the release once Run returns
}

// startEngine starts the plan's release (no timeline: straight to stage 1)
// and returns once the engine is driving it: stage 1's traffic moved and a
// heartbeat recorded.
func startEngine(ctx context.Context, tb testing.TB, plan rollout.Plan, alerts rollout.Alerts) *engineAtStageOne {
	tb.Helper()
	state := filepath.Join(tb.TempDir(), "s.db")
	st, err := store.Open(state)
	if err != nil {
		tb.Fatal(err)
	}
	backend := httptest.NewServer(http.NotFoundHandler())
	tb.Cleanup(backend.Close)
	u, _ := url.Parse(backend.URL)
	e := &engineAtStageOne{state: state, router: traffic.NewLocal(u, u), done: make(chan *rollout.Release, 1)}
	rn := &rollout.Runner{
		Machine: &rollout.Machine{Plan: &plan, Render: report.Renderer{}},
		Metrics: steadyMetrics{}, Alerts: alerts, Traffic: e.router,
		Store: st, Inbox: st, InboxPoll: 20 * time.Millisecond, Clock: clock.Real{},
	}
	if _, err := rn.Start(ctx, "v1.4.0", "v1.4.0", "alice", time.Time{}); err != nil {
		tb.Fatal(err)
	}
	go func() {
		r, err := rn.Run(ctx, "v1.4.0")
		if err != nil {
			tb.Error(err)
		}
		e.done <- r
	}()
	for seen, _ := st.LastHeartbeat(ctx, "v1.4.0"); seen.IsZero(); seen, _ = st.LastHeartbeat(ctx, "v1.4.0") {
		time.Sleep(5 * time.Millisecond)
	}
	for w, _ := e.router.Weight(ctx); w != 1; w, _ = e.router.Weight(ctx) {
		time.Sleep(5 * time.Millisecond)
	}
	return e
}

// TestAlertmanagerWebhookRollsBack: Alertmanager pushes a firing trigger to
// `serve`; the engine driving the release rolls back, and the router's
// weight is 0.
func TestAlertmanagerWebhookRollsBack(t *testing.T) {
	plan := config.Default()
	plan.Timeline = nil
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := startEngine(ctx, t, plan, steadyMetrics{})
	router, done, state, dir := e.router, e.done, e.state, t.TempDir()

	g := &globals{statePath: state, evidenceDir: dir, out: &strings.Builder{}, errOut: &strings.Builder{}}
	h := &slackHandler{g: g}
	srv := server.New(server.Options{OnTriggers: h.triggers, Triggers: plan.Triggers, Service: plan.Service, AlertmanagerToken: "tok"})
	req := httptest.NewRequest(http.MethodPost, "/alertmanager/webhook", strings.NewReader(firingPayload))
	req.Header.Set("Authorization", "Bearer tok")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("webhook answered %d: %s", rec.Code, rec.Body)
	}
	select {
	case r := <-done:
		if r.Phase != rollout.PhaseRolledBack || !strings.Contains(r.Rollback.Reason, "CanaryP95LatencyCritical") || r.Rollback.By != "alertmanager (webhook)" {
			t.Fatalf("release %s, rollback %+v", r.Phase, r.Rollback)
		}
	case <-ctx.Done():
		t.Fatal("the engine did not roll back")
	}
	if w, _ := router.Weight(ctx); w != 0 {
		t.Fatalf("router weight %d after the trigger, want 0", w)
	}
}

const firingPayload = `{"version":"4","status":"firing","alerts":[{"status":"firing",
 "labels":{"alertname":"CanaryP95LatencyCritical","auto_rollback":"true","service":"spark"},
 "annotations":{"summary":"p95 over 400ms"},"startsAt":"2026-11-27T10:00:00Z"}]}`
