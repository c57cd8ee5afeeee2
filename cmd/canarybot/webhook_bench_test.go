package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// switchedAlerts starts firing a trigger when told to.
type switchedAlerts struct{ on atomic.Bool }

func (a *switchedAlerts) Firing(ctx context.Context, at time.Time) ([]rollout.Alert, error) {
	if !a.on.Load() {
		return nil, nil
	}
	return []rollout.Alert{{Name: "CanaryP95LatencyCritical", Labels: map[string]string{"auto_rollback": "true", "service": "spark"}}}, nil
}

// triggerToZero runs a release at stage 1 on a bbolt state file, fires a
// trigger with fire, and returns the wall time until the router is at 0.
func triggerToZero(b *testing.B, plan rollout.Plan, alerts rollout.Alerts, fire func(state string)) time.Duration {
	b.Helper()
	dir := b.TempDir()
	state := filepath.Join(dir, "s.db")
	st, err := store.Open(state)
	if err != nil {
		b.Fatal(err)
	}
	backend := httptest.NewServer(http.NotFoundHandler())
	defer backend.Close()
	u, _ := url.Parse(backend.URL)
	router := traffic.NewLocal(u, u)
	rn := &rollout.Runner{
		Machine: &rollout.Machine{Plan: &plan, Render: report.Renderer{}},
		Metrics: steadyMetrics{}, Alerts: alerts, Traffic: router,
		Store: st, Inbox: st, InboxPoll: 20 * time.Millisecond, Clock: clock.Real{},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := rn.Start(ctx, "v1.4.0", "v1.4.0", "alice", time.Time{}); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { rn.Run(ctx, "v1.4.0"); close(done) }()
	// The engine is driving the release once it has moved stage 1's
	// traffic and recorded a heartbeat.
	for seen, _ := st.LastHeartbeat(ctx, "v1.4.0"); seen.IsZero(); seen, _ = st.LastHeartbeat(ctx, "v1.4.0") {
		time.Sleep(5 * time.Millisecond)
	}
	for w, _ := router.Weight(ctx); w != 1; w, _ = router.Weight(ctx) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	fire(state)
	for w, _ := router.Weight(ctx); w != 0; w, _ = router.Weight(ctx) {
		if ctx.Err() != nil {
			b.Fatal("no rollback")
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	<-done
	return took
}

// BenchmarkTriggerToWeightZero measures a firing auto-rollback alert to the
// router at weight 0, through Alertmanager's webhook (queued on the state
// file, picked up by the engine's inbox poll, 20 ms here) and through the
// engine polling the alerts at its tick (1 s here; 30 s by default, so
// polling takes up to a tick).
func BenchmarkTriggerToWeightZero(b *testing.B) {
	plan := config.Default()
	plan.Timeline = nil
	b.Run("webhook", func(b *testing.B) {
		var total time.Duration
		n := 0
		for b.Loop() {
			total += triggerToZero(b, plan, steadyMetrics{}, func(state string) {
				g := &globals{statePath: state, out: &strings.Builder{}, errOut: &strings.Builder{}}
				srv := server.New(server.Options{OnTriggers: (&slackHandler{g: g}).triggers, Triggers: plan.Triggers, Service: plan.Service})
				rec := httptest.NewRecorder()
				srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/alertmanager/webhook", strings.NewReader(firingPayload)))
				if rec.Code != http.StatusOK {
					b.Fatalf("webhook %d: %s", rec.Code, rec.Body)
				}
			})
			n++
		}
		b.ReportMetric(float64(total.Milliseconds())/float64(n), "ms/rollback")
	})
	b.Run("polling-1s-tick", func(b *testing.B) {
		p := plan
		p.Tick = time.Second
		var total time.Duration
		n := 0
		for b.Loop() {
			a := &switchedAlerts{}
			total += triggerToZero(b, p, a, func(string) { a.on.Store(true) })
			n++
		}
		b.ReportMetric(float64(total.Milliseconds())/float64(n), "ms/rollback")
	})
}
