package preflight

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/signals"
)

// dataWait bounds the wait for the first scrapes to be queryable.
const dataWait = 20 * time.Second

// waitForData polls until every query has a value: the server is started
// cold and the first scrape takes a second or so.
func waitForData(t *testing.T, prom rollout.Metrics, queries ...string) {
	t.Helper()
	deadline := time.Now().Add(dataWait)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		var missing error
		for _, q := range queries {
			if _, err := prom.Query(context.Background(), q, time.Time{}); err != nil {
				missing = err
				break
			}
		}
		if missing == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no data within %s: %v", dataWait, missing)
		}
		<-tick.C
	}
}

// TestWithPrometheus shares one real Prometheus, scraping the demo canary,
// between the promql cases and a run of the runbook's default checks.
func TestWithPrometheus(t *testing.T) {
	t.Parallel()
	svc := demo.NewService(demo.TrackCanary, 1)
	t.Cleanup(svc.Close)
	canary := httptest.NewServer(svc)
	t.Cleanup(canary.Close)
	srv := testenv.Prometheus(t, testenv.PrometheusConfig{
		Targets: []testenv.ScrapeTarget{{Addr: canary.URL, Labels: map[string]string{"track": demo.TrackCanary}}},
	})
	prom, err := signals.NewPrometheus(signals.PrometheusOptions{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	waitForData(t, prom, QueryTargetsUp, QueryEventLoopP95)

	t.Run("promql", func(t *testing.T) {
		t.Parallel()
		f := func(v float64) *float64 { return &v }
		tests := []struct {
			name   string
			query  string
			op     string
			value  float64
			prom   rollout.Metrics
			status Status
			detail string
		}{
			{"targets up", QueryTargetsUp, OpGE, 1, prom, Passed, "is 1 >= 1"},
			{"no alert firing", QueryAutoRollbackFiring, OpEQ, 0, prom, Passed, "is 0 == 0"},
			{"bound missed", QueryTargetsUp, OpGT, 1, prom, Failed, "is 1, want > 1"},
			{"bound missed below", `vector(0.2)`, OpLT, 0.05, prom, Failed, "is 0.2, want < 0.05"},
			{"no data", `up{job="no-such-job"}`, OpGE, 1, prom, Failed, "no data for `up{job=\"no-such-job\"}`"},
			{"bad query", `up{`, OpGE, 1, prom, Failed, "rejected the query"},
			{"no Prometheus", QueryTargetsUp, OpGE, 1, nil, CannotRun, "no Prometheus URL configured"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				ev := &memEvidence{}
				c := Check{Name: "q", Kind: KindPromQL, Query: tt.query, Op: tt.op, Value: f(tt.value), Evidence: "q.txt"}
				assertResult(t, runSingle(t, c, Options{Prometheus: tt.prom, Evidence: ev}), tt.status, tt.detail)
				text, written := ev.get("q.txt")
				// Only an answered query leaves evidence, with the value it saw.
				if answered := tt.status != CannotRun && !strings.Contains(tt.detail, "no data") && !strings.Contains(tt.detail, "rejected"); written != answered ||
					(answered && !strings.Contains(text, "query: "+tt.query+"\nvalue: ")) {
					t.Errorf("evidence written %t: %q", written, text)
				}
			})
		}
	})

	t.Run("runbook defaults", func(t *testing.T) {
		t.Parallel()
		ev := &memEvidence{}
		rep, err := Run(context.Background(), DefaultChecks(), Options{
			Version: "v1.4.0", Canary: canary.URL, Prometheus: prom, Repo: gitRepo(t, "v1.4.0", 0), Evidence: ev, Budget: 30 * time.Second, Getenv: noEnv,
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range rep.Results {
			want := Passed
			if res.Kind == KindPostgres {
				want = CannotRun
			}
			if res.Status != want {
				t.Errorf("%s: %s %q, want %s", res.Name, res.Status, res.Detail, want)
			}
		}
		if rep.Passed() || rep.Summary() != "6/10 passed, 4 cannot run" {
			t.Errorf("passed %t, summary %q\n%s", rep.Passed(), rep.Summary(), rep.Text())
		}
		if got := ev.names(); !slices.Equal(got, []string{"csp_headers_v1.4.0.txt", "release_tag.txt"}) {
			t.Errorf("evidence: %v, want the git and CSP files only (the postgres checks did not run)", got)
		}

		g := &Gate{Options: Options{Canary: canary.URL, Prometheus: prom, Repo: gitRepo(t, "v1.4.0", 0), Evidence: ev, Getenv: noEnv}}
		res, err := g.Run(context.Background(), &rollout.Release{ID: "r1", Version: "v1.4.0"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != rollout.GateFailed || !strings.Contains(res.Detail, "prisma_migrations cannot run: no DSN: $DATABASE_URL is not set") {
			t.Errorf("gate: %+v", res)
		}
	})
}
