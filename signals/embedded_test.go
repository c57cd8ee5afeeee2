package signals

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/rules"

	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/deploy"
	"github.com/canarybot/canarybot/rollout"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestQuery(t *testing.T) {
	// Two canary instances, two routes each: 40 requests per route per 15 s
	// interval and per instance, 4 of them 5xx, every one taking 150 ms.
	tr := healthy()
	tr.errors5xx = 4
	tr.latency = 0.15
	a, b := newService(t, "/api/orders", "/api/quotes"), newService(t, "/api/orders", "/api/quotes")
	a.set(tr)
	b.set(tr)
	e, clk := newStore(t, EmbeddedOptions{Targets: []Target{a.target("canary", "a"), b.target("canary", "b")}})
	at := play(t, e, clk, 10, a, b)

	tests := []struct {
		name    string
		query   string
		check   func(float64) bool
		wantIs  error    // errors.Is target, if an error is wanted
		wantErr []string // substrings of the error, if an error is wanted
	}{
		{
			// 2 instances × 2 routes × 40 requests / 15 s.
			name:  "counter rate",
			query: `sum(rate(http_requests_total{track="canary"}[2m]))`,
			check: func(v float64) bool { return math.Abs(v-2*2*40.0/15) < 1e-9 },
		},
		{
			name:  "ratio of rates",
			query: `sum(rate(http_requests_total{track="canary",code=~"5.."}[2m])) / sum(rate(http_requests_total{track="canary"}[2m]))`,
			check: func(v float64) bool { return math.Abs(v-0.1) < 1e-9 },
		},
		{
			// Every request took 150 ms, in the (0.1, 0.25] bucket.
			name:  "histogram quantile within the bucket",
			query: `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{track="canary"}[2m])))`,
			check: func(v float64) bool { return v > 0.1 && v <= 0.25 },
		},
		{
			name:  "scalar",
			query: `scalar(count(up{track="canary"}))`,
			check: func(v float64) bool { return v == 2 },
		},
		{
			// NaN is a value; the engine decides it means no data.
			name:  "NaN is returned as a value",
			query: `sum(rate(risk_blocks_total{track="canary"}[2m])) / sum(rate(risk_blocks_total{track="canary"}[2m]))`,
			check: math.IsNaN,
		},
		{
			name:    "empty result is ErrNoValues",
			query:   `sum(rate(orders_rejected_total{track="canary"}[2m]))`,
			wantIs:  rollout.ErrNoValues,
			wantErr: []string{`sum(rate(orders_rejected_total{track="canary"}[2m]))`},
		},
		{
			name:    "two series must be aggregated",
			query:   `sum by (instance) (rate(http_requests_total{track="canary"}[2m]))`,
			wantErr: []string{"returned 2 series", "aggregate to one series", `instance="a"`},
		},
		{
			name:    "bad PromQL names the query",
			query:   `sum(rate(http_requests_total{track="canary"}[2m]`,
			wantErr: []string{`sum(rate(http_requests_total{track="canary"}[2m]`, "parse error"},
		},
		{
			name:    "range vector is refused",
			query:   `http_requests_total{track="canary",instance="a",route="/api/orders",code="200"}[1m]`,
			wantErr: []string{"range vector"},
		},
		{
			name:    "evaluation error names the query",
			query:   `label_replace(up, "x", "$1", "instance", "(")`,
			wantErr: []string{`label_replace(up`, "regular expression"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := e.Query(context.Background(), tt.query, at)
			if tt.wantErr != nil || tt.wantIs != nil {
				if err == nil {
					t.Fatalf("want an error, got value %v", s.Value)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("error %v is not %v", err, tt.wantIs)
				}
				if tt.wantIs == nil && errors.Is(err, rollout.ErrNoValues) {
					t.Errorf("error %v must not be ErrNoValues", err)
				}
				if !containsAll(err.Error(), tt.wantErr...) {
					t.Errorf("error %q does not mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(s.Value) {
				t.Errorf("value %v is not what was expected", s.Value)
			}
		})
	}
}

func TestQueryWarnings(t *testing.T) {
	// rate() over a metric whose name does not say it is a counter: the
	// engine answers with an annotation, which must reach the caller.
	srv := httptest.NewServer(staticHandler("# TYPE queue_depth gauge\nqueue_depth 3\n"))
	t.Cleanup(srv.Close)
	e, clk := newStore(t, EmbeddedOptions{Targets: []Target{{URL: srv.URL, Labels: map[string]string{"track": "canary"}}}})
	at := play(t, e, clk, 3)
	s, err := e.Query(context.Background(), `sum(rate(queue_depth[1m]))`, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Warnings) != 1 || !containsAll(s.Warnings[0], "might not be a counter", "queue_depth") {
		t.Fatalf("Warnings = %q, want the engine's annotation about queue_depth", s.Warnings)
	}
}

func TestTargetLabelsAndTimestamps(t *testing.T) {
	srv := httptest.NewServer(staticHandler(string(readFixture(t, "relabel.prom"))))
	t.Cleanup(srv.Close)
	e, clk := newStore(t, EmbeddedOptions{Targets: []Target{{URL: srv.URL + "/metrics", Labels: map[string]string{"track": "canary", "job": "spark"}}}})
	at := play(t, e, clk, 2)
	ctx := context.Background()

	tests := []struct {
		query string
		want  float64 // NaN: want ErrNoValues
	}{
		// The target's track wins over the scraped one.
		{`sum(orders_total{track="canary",job="spark"})`, 12},
		{`sum(orders_total{track="wrong"})`, math.NaN()},
		// Without an instance label the target gets host:port, as in Prometheus.
		{`count(orders_total{instance="` + strings.TrimPrefix(srv.URL, "http://") + `"})`, 2},
		// The exposition's own (wall-clock, 2020) timestamp is ignored: the
		// sample is stamped with the scrape's virtual time.
		{`build_info{track="canary"}`, 1},
		{`up{track="canary"}`, 1},
		{`scrape_samples_scraped{track="canary"}`, 3},
	}
	for _, tt := range tests {
		s, err := e.Query(ctx, tt.query, at)
		if math.IsNaN(tt.want) {
			if !errors.Is(err, rollout.ErrNoValues) {
				t.Errorf("%s: want ErrNoValues, got %v, %v", tt.query, s.Value, err)
			}
			continue
		}
		if err != nil || s.Value != tt.want {
			t.Errorf("%s = %v, %v; want %v", tt.query, s.Value, err, tt.want)
		}
	}
}

func TestTargetDown(t *testing.T) {
	good := newService(t)
	var failing atomic.Bool
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		staticHandler("# TYPE flaky_metric gauge\nflaky_metric 1\n").ServeHTTP(w, r)
	}))
	t.Cleanup(flaky.Close)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // connection refused from now on

	e, clk := newStore(t, EmbeddedOptions{Targets: []Target{
		good.target("stable", "good"),
		{URL: flaky.URL, Labels: map[string]string{"track": "canary", "instance": "flaky"}},
		{URL: gone.URL, Labels: map[string]string{"track": "canary", "instance": "gone"}},
	}})
	ctx := context.Background()
	at := play(t, e, clk, 2, good)
	if s, err := e.Query(ctx, `flaky_metric{instance="flaky"}`, at); err != nil || s.Value != 1 {
		t.Fatalf("flaky_metric before the failure = %v, %v; want 1", s.Value, err)
	}

	failing.Store(true)
	at = play(t, e, clk, 1, good)
	for _, tt := range []struct {
		query string
		want  float64
	}{
		{`up{instance="good"}`, 1},
		{`up{instance="flaky"}`, 0},
		{`up{instance="gone"}`, 0},
		{`scrape_samples_scraped{instance="flaky"}`, 0},
	} {
		if s, err := e.Query(ctx, tt.query, at); err != nil || s.Value != tt.want {
			t.Errorf("%s = %v, %v; want %v", tt.query, s.Value, err, tt.want)
		}
	}
	// A failed scrape marks the target's series stale at once, as Prometheus
	// does, instead of letting the last value linger for 5 minutes.
	if s, err := e.Query(ctx, `flaky_metric{instance="flaky"}`, at); !errors.Is(err, rollout.ErrNoValues) {
		t.Errorf("flaky_metric after the failure = %v, %v; want ErrNoValues (stale)", s.Value, err)
	}
	// The healthy target was scraped as usual.
	if s, err := e.Query(ctx, `sum(rate(http_requests_total{instance="good"}[1m]))`, at); err != nil || s.Value <= 0 {
		t.Errorf("good target's request rate = %v, %v; want > 0", s.Value, err)
	}
}

func TestRunSurvivesFailingTargets(t *testing.T) {
	scraped := make(chan struct{}, 100)
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		staticHandler("# TYPE alive gauge\nalive 1\n").ServeHTTP(w, r)
		select {
		case scraped <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(good.Close)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	t.Cleanup(bad.Close)

	clk := &stepClock{now: epoch(), step: scrapeStep}
	e, err := NewEmbedded(EmbeddedOptions{
		Clock:       clk,
		ScrapeEvery: 5 * time.Millisecond,
		Targets: []Target{
			{URL: good.URL, Labels: map[string]string{"track": "stable", "instance": "good"}},
			{URL: bad.URL, Labels: map[string]string{"track": "canary", "instance": "bad"}},
		},
		Rules: deploy.CanaryRules(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	// Queries run while the loop appends and evaluates rules (for -race).
	for i := 0; i < 5; i++ {
		select {
		case <-scraped:
		case <-time.After(20 * time.Second):
			t.Fatal("the good target was not scraped: the loop stopped")
		}
		_, errs := e.QueryAll(ctx, defaultQueries(), clk.Now())
		for _, err := range errs {
			if err != nil && !errors.Is(err, rollout.ErrNoValues) {
				t.Errorf("QueryAll during Run: %v", err)
			}
		}
		if _, err := e.Firing(ctx, clk.Now()); err != nil {
			t.Errorf("Firing during Run: %v", err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v after cancel, want nil", err)
	}
	at := clk.Now()
	if s, err := e.Query(context.Background(), `up{instance="bad"}`, at); err != nil || s.Value != 0 {
		t.Errorf("up of the failing target = %v, %v; want 0", s.Value, err)
	}
	if s, err := e.Query(context.Background(), `up{instance="good"}`, at); err != nil || s.Value != 1 {
		t.Errorf("up of the good target = %v, %v; want 1", s.Value, err)
	}
}

func TestScrapeOnceNeedsTimeToPass(t *testing.T) {
	e, _ := newStore(t, EmbeddedOptions{})
	ctx := context.Background()
	if err := e.ScrapeOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.ScrapeOnce(ctx); !errors.Is(err, ErrClockNotAdvanced) {
		t.Errorf("second scrape at the same instant: %v, want ErrClockNotAdvanced", err)
	}
}

func TestRuleFiresAfterForDuration(t *testing.T) {
	svc := newService(t)
	tr := healthy()
	tr.errors5xx = 2
	svc.set(tr)
	e, clk := newStore(t, EmbeddedOptions{
		Targets: []Target{svc.target("canary", "c1")},
		Rules:   readFixture(t, "rules.yml"),
	})
	ctx := context.Background()

	// The 1m rate needs two samples, so the condition first holds at the
	// second scrape; `for: 1m` then needs a minute of virtual time more.
	activeAt := epoch().Add(scrapeStep)
	firesAt := activeAt.Add(time.Minute)
	var firedAt time.Time
	for i := 0; i < 10; i++ {
		at := play(t, e, clk, 1, svc)
		alerts, err := e.Firing(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		if at.Before(firesAt) {
			if len(alerts) != 0 {
				t.Fatalf("at %s, %s before the for: duration ended, alerts = %+v", at, firesAt.Sub(at), alerts)
			}
			continue
		}
		if len(alerts) != 1 {
			t.Fatalf("at %s, want 1 firing alert, got %+v", at, alerts)
		}
		a := alerts[0]
		if firedAt.IsZero() {
			firedAt = at
		}
		if a.Name != "CanaryErrors" || !a.Since.Equal(activeAt) {
			t.Errorf("alert = %s since %s, want CanaryErrors since %s", a.Name, a.Since, activeAt)
		}
		for k, v := range map[string]string{"alertname": "CanaryErrors", "severity": "critical", "auto_rollback": "true"} {
			if a.Labels[k] != v {
				t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], v, a.Labels)
			}
		}
		if !strings.HasPrefix(a.Summary, "canary answers 0.") || !strings.HasSuffix(a.Summary, " errors/s") {
			t.Errorf("summary = %q, want the expanded template", a.Summary)
		}
	}
	if !firedAt.Equal(firesAt) {
		t.Fatalf("alert first fired at %s, want %s", firedAt, firesAt)
	}
	// Asked about a moment before it fired, the store does not report it.
	if alerts, err := e.Firing(ctx, firesAt.Add(-time.Second)); err != nil || len(alerts) != 0 {
		t.Errorf("Firing before the alert fired = %+v, %v; want none", alerts, err)
	}
	// The recording rule in the same file writes its series.
	if s, err := e.Query(ctx, `canary:http_requests:rate1m`, clk.Now()); err != nil || math.Abs(s.Value-40.0/15) > 1e-9 {
		t.Errorf("recorded series = %v, %v; want %v", s.Value, err, 40.0/15)
	}
}

func TestCanaryRulesFromDeploy(t *testing.T) {
	canary, stable := newService(t), newService(t)
	e, clk := newStore(t, EmbeddedOptions{
		Targets: []Target{canary.target("canary", "c1"), stable.target("stable", "s1")},
		Rules:   deploy.CanaryRules(),
	})
	ctx := context.Background()
	// Ten healthy minutes: none of the 20 triggers may fire.
	at := play(t, e, clk, 40, canary, stable)
	if alerts, err := e.Firing(ctx, at); err != nil || len(alerts) != 0 {
		t.Fatalf("healthy canary: Firing = %+v, %v; want none", alerts, err)
	}
	// The canary turns slow: p95 above 400 ms for 2 minutes rolls it back.
	slow := healthy()
	slow.latency = 0.8
	canary.set(slow)
	at = play(t, e, clk, 12, canary, stable)
	alerts, err := e.Firing(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || alerts[0].Name != "CanaryP95LatencyCritical" {
		t.Fatalf("slow canary: Firing = %+v; want CanaryP95LatencyCritical alone", alerts)
	}
	if got := alerts[0].Labels; got["auto_rollback"] != "true" || got["service"] != "spark" {
		t.Errorf("labels = %v; want auto_rollback=true, service=spark", got)
	}
	if !strings.Contains(alerts[0].Summary, "p95 latency") {
		t.Errorf("summary = %q", alerts[0].Summary)
	}
	// Every rule evaluated without error: a rule that fails at evaluation
	// (say, a many-to-many match) would never fire.
	for _, g := range e.groups {
		for _, r := range g.Rules() {
			if err := r.LastError(); err != nil || r.Health() != rules.HealthGood {
				t.Errorf("rule %s: health %s, error %v", r.Name(), r.Health(), err)
			}
		}
	}
}

func TestQueryAllAgreesWithQuery(t *testing.T) {
	canary, stable := newService(t, "/api/orders", "/api/quotes"), newService(t, "/api/orders", "/api/quotes")
	tr := healthy()
	tr.errors5xx, tr.riskBlocks, tr.idemConflicts, tr.cspViolations = 1, 1, 1, 3
	canary.set(tr)
	e, clk := newStore(t, EmbeddedOptions{Targets: []Target{canary.target("canary", "c1"), stable.target("stable", "s1")}})
	at := play(t, e, clk, 20, canary, stable)
	ctx := context.Background()

	queries := append(defaultQueries(), `sum(rate(http_requests_total{track="canary"}[2m]`, `sum(nothing_here)`)
	samples, errs := e.QueryAll(ctx, queries, at)
	if len(samples) != len(queries) || len(errs) != len(queries) {
		t.Fatalf("QueryAll returned %d samples and %d errors for %d queries", len(samples), len(errs), len(queries))
	}
	for i, q := range queries {
		want, wantErr := e.Query(ctx, q, at)
		if (errs[i] == nil) != (wantErr == nil) || (wantErr != nil && errs[i].Error() != wantErr.Error()) {
			t.Errorf("%s: QueryAll error %v, Query error %v", q, errs[i], wantErr)
			continue
		}
		if errors.Is(wantErr, rollout.ErrNoValues) != errors.Is(errs[i], rollout.ErrNoValues) {
			t.Errorf("%s: ErrNoValues differs: %v vs %v", q, errs[i], wantErr)
		}
		if wantErr == nil && samples[i].Value != want.Value {
			t.Errorf("%s: QueryAll %v, Query %v", q, samples[i].Value, want.Value)
		}
	}
	// Every default signal has data in this fixture, so the comparison above
	// compared numbers, not just two identical errors.
	for i := range defaultQueries() {
		if errs[i] != nil {
			t.Errorf("%s: %v", queries[i], errs[i])
		}
	}
}

// TestQueryAllMatchesOneByOne runs a mixed tick through QueryAll and each
// query through Query: values, warnings and errors must be the same.
func TestQueryAllMatchesOneByOne(t *testing.T) {
	canary, stable := newService(t, "/api/orders", "/api/quotes"), newService(t, "/api/orders", "/api/quotes")
	tr := healthy()
	tr.errors5xx, tr.cspViolations = 2, 3
	canary.set(tr)
	e, clk := newStore(t, EmbeddedOptions{Targets: []Target{canary.target("canary", "c1"), stable.target("stable", "s1")}})
	at := play(t, e, clk, 12, canary, stable)
	ctx := context.Background()

	// kind is what Query answers, so that the fixture is known to exercise
	// each outcome.
	tests := []struct{ query, kind string }{
		{`sum(rate(http_requests_total{track="canary"}[2m]))`, "value"},
		{`sum(rate(orders_rejected_total{track="canary"}[2m]))`, "no values"},
		{`sum by (route) (rate(http_requests_total{track="canary"}[2m]))`, "error"},
		{`sum(rate(http_requests_total{track="canary"}[2m]`, "parse error"},
		{`scalar(count(up))`, "value"},
		{`sum(rate(risk_blocks_total{track="canary"}[2m])) / sum(rate(risk_blocks_total{track="canary"}[2m]))`, "NaN"},
		{`sum(rate(nodejs_eventloop_lag_seconds{track="canary"}[1m]))`, "warning"},
		{`http_requests_total{track="canary",route="/api/orders",code="200"}[1m]`, "error"},
		{`label_replace(up, "x", "$1", "instance", "(")`, "error"},
		{"sum(rate(http_requests_total{track=\"canary\"}[2m])) # a comment", "value"},
		{`sum(rate(http_requests_total{track="canary"}[2m]))`, "value"},
	}
	queries := make([]string, len(tests))
	for i, tt := range tests {
		queries[i] = tt.query
	}
	samples, errs := e.QueryAll(ctx, queries, at)
	if len(samples) != len(queries) || len(errs) != len(queries) {
		t.Fatalf("QueryAll returned %d samples and %d errors for %d queries", len(samples), len(errs), len(queries))
	}
	for i, tt := range tests {
		want, wantErr := e.Query(ctx, tt.query, at)
		var kind string
		switch {
		case errors.Is(wantErr, rollout.ErrNoValues):
			kind = "no values"
		case wantErr != nil && strings.Contains(wantErr.Error(), "parse error"):
			kind = "parse error"
		case wantErr != nil:
			kind = "error"
		case len(want.Warnings) > 0:
			kind = "warning"
		case math.IsNaN(want.Value):
			kind = "NaN"
		default:
			kind = "value"
		}
		if kind != tt.kind {
			t.Errorf("%s: Query answered %s (%v, %v), the fixture wants %s", tt.query, kind, want.Value, wantErr, tt.kind)
		}
		if fmt.Sprint(errs[i]) != fmt.Sprint(wantErr) || errors.Is(errs[i], rollout.ErrNoValues) != errors.Is(wantErr, rollout.ErrNoValues) {
			t.Errorf("%s: QueryAll error %v, Query error %v", tt.query, errs[i], wantErr)
		}
		if !sameValue(samples[i].Value, want.Value) {
			t.Errorf("%s: QueryAll %v, Query %v", tt.query, samples[i].Value, want.Value)
		}
		if !slices.Equal(samples[i].Warnings, want.Warnings) {
			t.Errorf("%s: QueryAll warnings %q, Query warnings %q", tt.query, samples[i].Warnings, want.Warnings)
		}
	}
}

// sameValue is == with NaN equal to NaN: a NaN signal value is an answer.
func sameValue(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

func TestNewEmbeddedRejectsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		opts    EmbeddedOptions
		wantErr []string
	}{
		{"unparsable expression", EmbeddedOptions{Rules: readFixture(t, "bad-expr.yml")}, []string{`"CanaryLatency"`, "could not parse expression"}},
		{"duplicate group", EmbeddedOptions{Rules: readFixture(t, "bad-duplicate-group.yml")}, []string{"twice", "repeated"}},
		{"rule without a name", EmbeddedOptions{Rules: readFixture(t, "bad-no-name.yml")}, []string{"nameless", "'record' or 'alert' must be set"}},
		{"not YAML rules", EmbeddedOptions{Rules: []byte("groups: [")}, []string{"rule file is invalid"}},
		{"relative target URL", EmbeddedOptions{Targets: []Target{{URL: "localhost:9100/metrics"}}}, []string{"localhost:9100/metrics", "absolute http(s) URL"}},
		{"bad label name", EmbeddedOptions{Targets: []Target{{URL: "http://127.0.0.1:1/metrics", Labels: map[string]string{"canary-track": "x"}}}}, []string{`"canary-track"`}},
		{"two identical targets", EmbeddedOptions{Targets: []Target{{URL: "http://127.0.0.1:1/m"}, {URL: "http://127.0.0.1:1/m"}}}, []string{"targets 0 and 1", "instance"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Clock = stepClockAt(epoch())
			e, err := NewEmbedded(tt.opts)
			if err == nil {
				_ = e.Close()
				t.Fatal("want an error")
			}
			if !containsAll(err.Error(), tt.wantErr...) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
	if _, err := NewEmbedded(EmbeddedOptions{}); err == nil || !strings.Contains(err.Error(), "Clock") {
		t.Errorf("no clock: %v, want an error naming Clock", err)
	}
}

func TestClosedStore(t *testing.T) {
	dir := t.TempDir()
	e, err := NewEmbedded(EmbeddedOptions{Clock: stepClockAt(epoch()), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := context.Background()
	if _, err := e.Query(ctx, "up", epoch()); !errors.Is(err, ErrClosed) {
		t.Errorf("Query after Close: %v", err)
	}
	if err := e.ScrapeOnce(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("ScrapeOnce after Close: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("a caller's Dir must survive Close: %v", err)
	}

	tmp, err := NewEmbedded(EmbeddedOptions{Clock: stepClockAt(epoch())})
	if err != nil {
		t.Fatal(err)
	}
	tmpDir := tmp.dir
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmpDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary TSDB dir %s was not removed: %v", tmpDir, err)
	}
}

func stepClockAt(t time.Time) *stepClock { return &stepClock{now: t, step: scrapeStep} }

// TestQueryZeroTimeIsNow: a query without a time is evaluated at the
// store's clock, as a Prometheus server evaluates it at its own now.
func TestQueryZeroTimeIsNow(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	e, err := NewEmbedded(EmbeddedOptions{Clock: clk, ScrapeEvery: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, err := e.Query(context.Background(), "time()", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(clk.Now().Unix()); s.Value != want {
		t.Fatalf("time() with no time = %v, want the clock's %v", s.Value, want)
	}
}
