package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/signals"
)

// timedTraffic records when the weight was last set to 0.
type timedTraffic struct {
	rollout.Traffic
	zeroAt atomic.Pointer[time.Time]
}

func (t *timedTraffic) SetWeight(ctx context.Context, w int) error {
	err := t.Traffic.SetWeight(ctx, w)
	if err == nil && w == 0 {
		now := time.Now()
		t.zeroAt.Store(&now)
	}
	return err
}

// instantRules is deploy's rule file with CanaryOutboxLagCritical's 30s
// `for` taken out: the benchmark measures from the moment the alert fires,
// and without the wait each run takes seconds, not half a minute.
func instantRules(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		tb.Fatal(err)
	}
	if strings.Count(string(b), "for: 30s") != 1 {
		tb.Fatalf("%s no longer has exactly one `for: 30s` (CanaryOutboxLagCritical's): update this benchmark", rulesFile)
	}
	name := filepath.Join(tb.TempDir(), "rules.yml")
	if err := os.WriteFile(name, []byte(strings.Replace(string(b), "for: 30s", "for: 0s", 1)), 0o600); err != nil {
		tb.Fatal(err)
	}
	return name
}

// BenchmarkProductionTriggerToWeightZero measures a firing auto-rollback
// alert to the router at weight 0 with the real servers: Debian's
// Prometheus evaluating the runbook's rules against the demo service, and
//
//   - webhook: Prometheus → Alertmanager (deploy's routing, group_wait 0s)
//     → `serve`'s webhook → the state file's queue → the engine, which looks
//     at its queue every second as `run` does;
//   - webhook-in-process: the same, with the engine in serve's process,
//     woken as soon as the trigger is queued;
//   - polling: the engine asking Prometheus for firing alerts at each tick,
//     1 s here (the default tick is 30 s: up to 30 s there).
//
// Each run starts fresh servers, so Alertmanager has no group left over from
// the run before. ms/rollback is from the alert's activeAt (the evaluation
// that fired it; its `for` is taken out) to the weight-0 change;
// ms/fault-to-zero also counts the scrape and evaluation that notice the
// canary's fault.
func BenchmarkProductionTriggerToWeightZero(b *testing.B) {
	lab := startProdLab(b, labOptions{fault: demo.FaultNone, weight: 50, noPrometheus: true})
	rules := instantRules(b)
	const token = "am-webhook-token-0123456789"
	tokenFile := filepath.Join(b.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		b.Fatal(err)
	}
	for _, path := range []string{"webhook", "webhook-in-process", "polling-1s-tick"} {
		b.Run(path, func(b *testing.B) {
			var fromFiring, fromFault time.Duration
			for b.Loop() {
				f, z := triggerRun(b, lab, path, rules, tokenFile, token)
				fromFiring += f
				fromFault += z
			}
			b.ReportMetric(float64(fromFiring.Milliseconds())/float64(b.N), "ms/rollback")
			b.ReportMetric(float64(fromFault.Milliseconds())/float64(b.N), "ms/fault-to-zero")
		})
	}
}

// triggerRun runs one release at stage 1 until the canary's outbox fault
// rolls it back, and returns the time from the alert firing and from the
// fault to weight 0.
func triggerRun(b *testing.B, lab *prodLab, path, rules, tokenFile, token string) (fromFiring, fromFault time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lab.canary.SetFault(demo.FaultNone)
	plan := productionPlan(time.Second, rollout.Stage{Weight: 50, Dwell: time.Hour})
	state := filepath.Join(b.TempDir(), "state.db")
	opts := labOptions{rules: rules}
	webhook := path != "polling-1s-tick"
	var wake chan struct{}
	if path == "webhook-in-process" {
		wake = make(chan struct{}, 1)
	}
	if webhook {
		hook := startWebhookServer(b, plan, state, token, wake)
		am := testenv.Alertmanager(b, alertmanagerConfig(b, hook.URL, tokenFile))
		defer am.Stop()
		opts.alertmanagers = []string{am.URL}
	}
	srv := lab.startPrometheus(b, opts)
	defer srv.Stop()
	prom, err := signals.NewPrometheus(signals.PrometheusOptions{URL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	parts := engineParts{metrics: prom, traffic: &timedTraffic{Traffic: lab.router}, wake: wake}
	if !webhook {
		parts.alerts = prom
	}
	e := startProdEngine(ctx, b, state, plan, parts)
	e.events.waitFor(ctx, b, 0, "stage 1", func(ev rollout.Event) bool { return ev.Kind == rollout.EventStage })

	// A fresh Prometheus scrapes its first samples a few seconds after it
	// is ready; the fault must fall on a server that is already watching.
	for {
		if _, err := prom.Query(ctx, `max(outbox_lag_seconds{track="canary"})`, time.Time{}); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			b.Fatal("Prometheus never scraped the canary")
		case <-time.After(50 * time.Millisecond):
		}
	}
	faultAt := time.Now()
	lab.canary.SetFault(demo.FaultTrigger)
	var r *rollout.Release
	select {
	case r = <-e.done:
	case <-ctx.Done():
		b.Fatalf("no rollback; the engine said:\n%s", dumpEvents(e.events.snapshot()))
	}
	if r.Phase != rollout.PhaseRolledBack || !strings.Contains(r.Rollback.Reason, "CanaryOutboxLagCritical") {
		b.Fatalf("release %s, rollback %+v: want the trigger's rollback", r.Phase, r.Rollback)
	}
	zero := parts.traffic.(*timedTraffic).zeroAt.Load()
	if zero == nil {
		b.Fatal("rolled back without setting weight 0")
	}
	alerts, err := v1.NewAPI(mustAPIClient(b, srv.URL)).Alerts(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range alerts.Alerts {
		if a.Labels["alertname"] == "CanaryOutboxLagCritical" && a.State == v1.AlertStateFiring {
			return zero.Sub(a.ActiveAt), zero.Sub(faultAt)
		}
	}
	b.Fatalf("CanaryOutboxLagCritical is not firing on Prometheus: %+v", alerts.Alerts)
	return 0, 0
}

func mustAPIClient(tb testing.TB, url string) api.Client {
	tb.Helper()
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
