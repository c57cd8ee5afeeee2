package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/server"
)

// switchedAlerts starts firing a trigger when told to.
type switchedAlerts struct{ on atomic.Bool }

func (a *switchedAlerts) Firing(ctx context.Context, at time.Time) ([]rollout.Alert, error) {
	if !a.on.Load() {
		return nil, nil
	}
	return []rollout.Alert{{Name: "CanaryP95LatencyCritical", Labels: map[string]string{"auto_rollback": "true", "service": "spark"}}}, nil
}

// triggerToZero runs a release at stage 1, fires a trigger with fire, and
// returns the wall time until the router is at 0.
func triggerToZero(b *testing.B, plan rollout.Plan, alerts rollout.Alerts, fire func(state string)) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := startEngine(ctx, b, plan, alerts)
	start := time.Now()
	fire(e.state)
	for w, _ := e.router.Weight(ctx); w != 0; w, _ = e.router.Weight(ctx) {
		if ctx.Err() != nil {
			b.Fatal("no rollback")
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	<-e.done
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
