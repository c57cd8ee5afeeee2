package signals

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/rollout"
)

// promWindow replaces {{window}}: one minute holds ~60 scrapes at the test
// server's 1s interval.
const promWindow = "1m"

// promDataWait bounds the wait for scraped data, promAlertWait the wait
// for the trigger alert, whose `for: 30s` runs in real time.
const (
	promDataWait  = 20 * time.Second
	promAlertWait = 50 * time.Second
)

// promLab is a real Prometheus scraping the demo service's two tracks,
// with the runbook's rules loaded and the canary's outbox fault planted.
type promLab struct {
	server *testenv.PrometheusServer
	prom   *Prometheus
	// started is when the server was ready: an alert cannot be active
	// before it.
	started time.Time
}

func startPromLab(t *testing.T) *promLab {
	t.Helper()
	canary := demo.NewService(demo.TrackCanary, 1)
	stable := demo.NewService(demo.TrackStable, 2)
	t.Cleanup(canary.Close)
	t.Cleanup(stable.Close)
	// Before the first scrape: CanaryOutboxLagCritical's 30s of `for`
	// start counting at the first evaluation that sees the lag.
	canary.SetFault(demo.FaultTrigger)
	cs := httptest.NewServer(canary)
	t.Cleanup(cs.Close)
	ss := httptest.NewServer(stable)
	t.Cleanup(ss.Close)

	srv := testenv.Prometheus(t, testenv.PrometheusConfig{
		Targets: []testenv.ScrapeTarget{
			{Addr: cs.URL, Labels: map[string]string{"track": demo.TrackCanary}},
			{Addr: ss.URL, Labels: map[string]string{"track": demo.TrackStable}},
		},
		RuleFiles:      []string{filepath.Join("..", "deploy", "prometheus", "canary-rules.yml")},
		ScrapeInterval: time.Second,
		EvalInterval:   time.Second,
	})
	lab := &promLab{server: srv, started: time.Now()}
	lab.prom = newTestPrometheus(t, PrometheusOptions{URL: srv.URL})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, base := range []string{cs.URL, ss.URL} {
		wg.Go(func() { driveQuotes(ctx, t, base, 300) })
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	lab.waitForData(t)
	t.Logf("data after %s", time.Since(lab.started))
	return lab
}

// driveQuotes sends n quote requests from a few workers. Each takes the
// service's simulated ~135 ms, so the load spans several scrapes.
func driveQuotes(ctx context.Context, t *testing.T, base string, n int) {
	const workers = 4
	client := &http.Client{Timeout: 5 * time.Second}
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for sent.Add(1) <= int64(n) {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/quote?symbol=BTCUSDT", nil)
				if err != nil {
					t.Errorf("load: %v", err)
					return
				}
				resp, err := client.Do(req)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					t.Errorf("load: GET %s: %v", req.URL, err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("load: GET %s: status %d, want 200", req.URL, resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
}

// waitForData polls until both tracks have been scraped with requests
// counted at two scrapes at least, so that rate() has a slope.
func (l *promLab) waitForData(t *testing.T) {
	t.Helper()
	queries := []string{
		`scalar(count(up{job="spark"} == 1))`,
		`sum(rate(http_requests_total{track="canary"}[` + promWindow + `]))`,
		`sum(rate(http_requests_total{track="stable"}[` + promWindow + `]))`,
	}
	deadline := time.Now().Add(promDataWait)
	for {
		samples, errs := l.prom.QueryAll(context.Background(), queries, time.Time{})
		ready := errs[0] == nil && samples[0].Value == 2
		for i := 1; i < len(queries); i++ {
			ready = ready && errs[i] == nil && samples[i].Value > 0
		}
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scraped data after %s: samples %v, errors %v\nPrometheus log:\n%s", promDataWait, samples, errs, l.server.Log())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func newTestPrometheus(t *testing.T, opts PrometheusOptions) *Prometheus {
	t.Helper()
	p, err := NewPrometheus(opts)
	if err != nil {
		t.Fatalf("NewPrometheus(%v): %v", opts, err)
	}
	return p
}

func promDefaultQuery(s rollout.SignalSpec) string {
	return strings.ReplaceAll(s.Query, "{{window}}", promWindow)
}

// TestPrometheusRealServer runs the adapter against Debian's Prometheus
// 2.42 scraping the demo service. The subtests share one server and run in
// parallel; the alert subtest sets the pace (~32 s, the rule's 30 s `for`).
func TestPrometheusRealServer(t *testing.T) {
	t.Parallel()
	lab := startPromLab(t)
	p := lab.prom
	ctx := context.Background()

	t.Run("default signals", func(t *testing.T) {
		t.Parallel()
		// What the clean demo service reads, per signal. No WebSocket
		// client and no order is sent, so two signals divide zero by zero.
		want := map[string]func(float64) bool{
			// ~150 ms, within the (0.125, 0.175] buckets around it.
			"api_p95":   func(v float64) bool { return v > 0.1 && v < 0.2 },
			"error_5xx": func(v float64) bool { return v == 0 },
			// Histogram series exist, but nothing was observed.
			"ws_staleness": math.IsNaN,
			"risk_blocks":  func(v float64) bool { return v == 0 },
			// 0 conflicts / 0 keyed requests.
			"idempotency_conflicts": math.IsNaN,
			// The service adds 0.02 simulated reports per request; a
			// scrape between a request's two increments skews it a little.
			"csp_violations": func(v float64) bool { return math.Abs(v-0.02) < 0.0004 },
			"eventloop_p95":  func(v float64) bool { return v >= 0.010 && v <= 0.014 },
			"gc_pause_avg":   func(v float64) bool { return v >= 0.006 && v <= 0.010 },
		}
		signals := config.DefaultSignals()
		if len(signals) != len(want) {
			t.Fatalf("config.DefaultSignals() has %d signals, this test knows %d: add the new ones", len(signals), len(want))
		}
		for _, s := range signals {
			t.Run(s.Name, func(t *testing.T) {
				t.Parallel()
				check, ok := want[s.Name]
				if !ok {
					t.Fatalf("unknown default signal %q: add it to this test", s.Name)
				}
				q := promDefaultQuery(s)
				got, err := p.Query(ctx, q, time.Now())
				if err != nil {
					t.Fatalf("Query(%s) = %v, want a value", q, err)
				}
				if !check(got.Value) {
					t.Errorf("Query(%s) = %v, outside what the demo service produces", q, got.Value)
				}
				if s.BaselineQuery == "" {
					return
				}
				bq := strings.ReplaceAll(s.BaselineQuery, "{{window}}", promWindow)
				base, err := p.Query(ctx, bq, time.Now())
				if err != nil || !check(base.Value) {
					t.Errorf("baseline Query(%s) = %v, %v; want a value like the canary's", bq, base.Value, err)
				}
			})
		}
	})

	t.Run("result shapes", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name    string
			query   string
			check   func(float64) bool
			wantIs  error
			wantErr []string
			notIs   error
		}{
			{name: "scalar", query: `scalar(count(up{job="spark"}))`, check: func(v float64) bool { return v == 2 }},
			{name: "one series", query: `count(up{job="spark"})`, check: func(v float64) bool { return v == 2 }},
			{name: "NaN is a value", query: `vector(0) / 0`, check: math.IsNaN},
			{
				name:    "missing metric is ErrNoValues",
				query:   `sum(rate(orders_rejected_total{track="canary"}[1m]))`,
				wantIs:  rollout.ErrNoValues,
				wantErr: []string{`sum(rate(orders_rejected_total{track="canary"}[1m]))`},
			},
			{
				name:    "two series must aggregate",
				query:   `up{job="spark"}`,
				wantErr: []string{"`up{job=\"spark\"}`", "2 series", "aggregate", `track="canary"`, `track="stable"`},
				notIs:   rollout.ErrNoValues,
			},
			{
				name:    "range vector",
				query:   `up{job="spark"}[1m]`,
				wantErr: []string{"range vector", "rate"},
			},
			{
				name:    "string",
				query:   `"hello"`,
				wantErr: []string{"string", "instant vector or a scalar"},
				notIs:   ErrUnavailable,
			},
			{
				name:    "syntax error names the query",
				query:   `sum(rate(http_requests_total[1m]`,
				wantIs:  ErrBadQuery,
				wantErr: []string{"`sum(rate(http_requests_total[1m]`", lab.server.URL, "fix the query"},
				notIs:   ErrUnavailable,
			},
			{
				name:    "execution error",
				query:   `up{job="spark"} + on() up{job="spark"}`,
				wantIs:  ErrBadQuery,
				wantErr: []string{"many-to-many"},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				got, err := p.Query(ctx, tt.query, time.Now())
				if tt.check != nil {
					if err != nil {
						t.Fatalf("Query(%s) = %v, want a value", tt.query, err)
					}
					if !tt.check(got.Value) {
						t.Errorf("Query(%s) = %v", tt.query, got.Value)
					}
					return
				}
				if err == nil {
					t.Fatalf("Query(%s) = %v, want an error", tt.query, got.Value)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("Query(%s) = %v, want it to wrap %v", tt.query, err, tt.wantIs)
				}
				if tt.notIs != nil && errors.Is(err, tt.notIs) {
					t.Errorf("Query(%s) = %v, must not wrap %v", tt.query, err, tt.notIs)
				}
				for _, sub := range tt.wantErr {
					if !strings.Contains(err.Error(), sub) {
						t.Errorf("Query(%s) error %q does not mention %q", tt.query, err, sub)
					}
				}
			})
		}
	})

	t.Run("QueryAll keeps order", func(t *testing.T) {
		t.Parallel()
		queries := []string{
			`vector(3)`,
			`sum(no_such_metric)`,
			`sum(`,
			`up{job="spark"}`,
			`scalar(count(up{job="spark"}))`,
		}
		samples, errs := p.QueryAll(ctx, queries, time.Now())
		if len(samples) != len(queries) || len(errs) != len(queries) {
			t.Fatalf("QueryAll returned %d samples and %d errors for %d queries", len(samples), len(errs), len(queries))
		}
		if errs[0] != nil || samples[0].Value != 3 {
			t.Errorf("[0] vector(3) = %v, %v; want 3", samples[0].Value, errs[0])
		}
		if !errors.Is(errs[1], rollout.ErrNoValues) {
			t.Errorf("[1] missing metric: error %v, want ErrNoValues", errs[1])
		}
		if !errors.Is(errs[2], ErrBadQuery) {
			t.Errorf("[2] syntax error: error %v, want ErrBadQuery", errs[2])
		}
		if errs[3] == nil || !strings.Contains(errs[3].Error(), "2 series") {
			t.Errorf("[3] two series: error %v, want one saying 2 series", errs[3])
		}
		if errs[4] != nil || samples[4].Value != 2 {
			t.Errorf("[4] scalar = %v, %v; want 2", samples[4].Value, errs[4])
		}
	})

	t.Run("Check", func(t *testing.T) {
		t.Parallel()
		var good []string
		for _, s := range config.DefaultSignals() {
			good = append(good, promDefaultQuery(s))
		}
		// No data yet is fine at start-up: the canary may not be deployed.
		if err := p.Check(ctx, append(good, `sum(rate(not_deployed_yet_total[1m]))`)); err != nil {
			t.Errorf("Check(defaults + a metric with no data) = %v, want nil", err)
		}
		bad := `sum(rate(http_requests_total{track="canary"}[1m])`
		twoSeries := `up{job="spark"}`
		err := p.Check(ctx, append(append([]string{}, good...), bad, twoSeries))
		if err == nil {
			t.Fatal("Check with a syntax error and an unaggregated query = nil, want an error")
		}
		msg := err.Error()
		for _, sub := range []string{"2 of 10 queries failed", "`" + bad + "`", "`" + twoSeries + "`", lab.server.URL} {
			if !strings.Contains(msg, sub) {
				t.Errorf("Check error does not mention %q:\n%s", sub, msg)
			}
		}
		if !errors.Is(err, ErrBadQuery) {
			t.Errorf("Check error does not wrap ErrBadQuery: %v", err)
		}
		for _, q := range good {
			if strings.Contains(msg, q) {
				t.Errorf("Check error names the good query %s:\n%s", q, msg)
			}
		}
	})

	t.Run("Firing", func(t *testing.T) {
		t.Parallel()
		const name = "CanaryOutboxLagCritical"
		raw := v1.NewAPI(mustClient(t, lab.server.URL))
		sawPending := false
		deadline := time.Now().Add(promAlertWait)
		var got rollout.Alert
		for {
			firing, err := p.Firing(ctx, time.Now())
			if err != nil {
				t.Fatalf("Firing: %v", err)
			}
			i := indexAlert(firing, name)
			if i >= 0 {
				got = firing[i]
				break
			}
			// The rule holds for 30s first. An alert that the server
			// reports as pending after Firing returned was pending (or
			// inactive) when Firing asked, so Firing was right to leave it
			// out.
			all, err := raw.Alerts(ctx)
			if err != nil {
				t.Fatalf("raw alerts API: %v", err)
			}
			for _, a := range all.Alerts {
				if string(a.Labels["alertname"]) == name && a.State == v1.AlertStatePending {
					sawPending = true
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not firing after %s; the server reports %+v\nPrometheus log:\n%s", name, promAlertWait, all.Alerts, lab.server.Log())
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("firing after %s, active since %s after start", time.Since(lab.started), got.Since.Sub(lab.started))
		if !sawPending {
			t.Errorf("never saw %s pending while Firing left it out: the test did not exercise the state filter", name)
		}
		wantLabels := map[string]string{"alertname": name, "auto_rollback": "true", "severity": "critical", "service": "spark"}
		for k, v := range wantLabels {
			if got.Labels[k] != v {
				t.Errorf("alert label %s = %q, want %q (labels %v)", k, got.Labels[k], v, got.Labels)
			}
		}
		if !strings.Contains(got.Summary, "Canary outbox lag is") {
			t.Errorf("alert summary = %q, want the rule's summary annotation", got.Summary)
		}
		if got.Since.Before(lab.started.Add(-time.Minute)) || got.Since.After(time.Now()) {
			t.Errorf("alert Since = %v, want between the server's start (%v) and now", got.Since, lab.started)
		}
	})
}

func indexAlert(alerts []rollout.Alert, name string) int {
	for i, a := range alerts {
		if a.Name == name {
			return i
		}
	}
	return -1
}

func mustClient(t *testing.T, url string) api.Client {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewPrometheusRejectsBadOptions(t *testing.T) {
	t.Parallel()
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const password = "hunter2-secret"
	emptyFile := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    PrometheusOptions
		wantErr []string
	}{
		{"empty URL", PrometheusOptions{}, []string{"empty", "PROMETHEUS_URL", "http://127.0.0.1:9090"}},
		{"blank URL", PrometheusOptions{URL: "  "}, []string{"empty"}},
		{"no scheme", PrometheusOptions{URL: "localhost:9090"}, []string{"http://", "localhost"}},
		{"bare host:port", PrometheusOptions{URL: "127.0.0.1:9090"}, []string{"not a valid URL", "127.0.0.1:9090", "scheme"}},
		{"other scheme", PrometheusOptions{URL: "ftp://prom:9090"}, []string{"http://", "https://"}},
		{"no host", PrometheusOptions{URL: "http://"}, []string{"no host"}},
		{"malformed", PrometheusOptions{URL: "http://prom:port"}, []string{"not a valid URL", "port"}},
		{"credentials in URL", PrometheusOptions{URL: "http://admin:" + password + "@prom:9090"}, []string{"credentials", "basic-auth"}},
		{"malformed with credentials", PrometheusOptions{URL: "http://admin:" + password + "@prom:port"}, []string{"not a valid URL"}},
		{"API path", PrometheusOptions{URL: "http://prom:9090/api/v1/"}, []string{"/api/v1", "base URL"}},
		{"query string", PrometheusOptions{URL: "http://prom:9090/?x=1"}, []string{"query or fragment"}},
		{"fragment", PrometheusOptions{URL: "http://prom:9090/#top"}, []string{"query or fragment"}},
		{"negative timeout", PrometheusOptions{URL: "http://prom:9090", Timeout: -time.Second}, []string{"negative"}},
		{"token and basic auth", PrometheusOptions{URL: "http://prom:9090", BearerToken: password, BasicUser: "u", BasicPassword: password}, []string{"only the one"}},
		{"password without user", PrometheusOptions{URL: "http://prom:9090", BasicPassword: password}, []string{"without a user"}},
		{"TLS on plain http", PrometheusOptions{URL: "http://prom:9090", InsecureSkipVerify: true}, []string{"plain http", "https://"}},
		{"missing CA file", PrometheusOptions{URL: "https://prom:9090", TLSCAFile: filepath.Join(t.TempDir(), "nope.pem")}, []string{"CA file", "nope.pem"}},
		{"CA file without PEM", PrometheusOptions{URL: "https://prom:9090", TLSCAFile: notPEM}, []string{"no PEM certificate", notPEM}},
		{"token and token file", PrometheusOptions{URL: "http://prom:9090", BearerToken: password, BearerTokenFile: notPEM}, []string{"only one", EnvPrometheusBearerTokenFile}},
		{"token file and basic auth", PrometheusOptions{URL: "http://prom:9090", BearerTokenFile: notPEM, BasicUser: "u", BasicPassword: password}, []string{"only the one"}},
		{"password and password file", PrometheusOptions{URL: "http://prom:9090", BasicUser: "u", BasicPassword: password, BasicPasswordFile: notPEM}, []string{"only one", EnvPrometheusBasicPasswordFile}},
		{"password file without user", PrometheusOptions{URL: "http://prom:9090", BasicPasswordFile: notPEM}, []string{"without a user", EnvPrometheusBasicUser}},
		{"missing token file", PrometheusOptions{URL: "http://prom:9090", BearerTokenFile: filepath.Join(t.TempDir(), "token")}, []string{EnvPrometheusBearerTokenFile, "token", "no such file"}},
		{"empty token file", PrometheusOptions{URL: "http://prom:9090", BearerTokenFile: emptyFile}, []string{EnvPrometheusBearerTokenFile, "empty", emptyFile}},
		{"missing password file", PrometheusOptions{URL: "http://prom:9090", BasicUser: "u", BasicPasswordFile: filepath.Join(t.TempDir(), "pw")}, []string{EnvPrometheusBasicPasswordFile}},
		{"cert without key", PrometheusOptions{URL: "https://prom:9090", TLSCertFile: notPEM}, []string{EnvPrometheusCertFile, EnvPrometheusKeyFile, "both"}},
		{"cert not PEM", PrometheusOptions{URL: "https://prom:9090", TLSCertFile: notPEM, TLSKeyFile: notPEM}, []string{"client certificate", notPEM, "PEM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := NewPrometheus(tt.opts)
			if err == nil {
				t.Fatalf("NewPrometheus(%v) = %v, want an error", tt.opts, p)
			}
			for _, sub := range tt.wantErr {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("error %q does not mention %q", err, sub)
				}
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestNewPrometheusAcceptsBaseURLs(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"http://127.0.0.1:9090", "http://127.0.0.1:9090/", " https://prom.example.com/prometheus/ "} {
		p, err := NewPrometheus(PrometheusOptions{URL: raw})
		if err != nil {
			t.Errorf("NewPrometheus(%q): %v", raw, err)
			continue
		}
		if strings.HasSuffix(p.url, "/") || strings.Contains(p.url, " ") {
			t.Errorf("NewPrometheus(%q) keeps the base URL as %q, want it trimmed", raw, p.url)
		}
	}
}

// closedPortURL is a loopback URL nothing listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	return url
}

func TestPrometheusDown(t *testing.T) {
	t.Parallel()
	url := closedPortURL(t)
	p := newTestPrometheus(t, PrometheusOptions{URL: url, Timeout: 2 * time.Second})
	ctx := context.Background()
	const q = `sum(rate(http_requests_total[1m]))`

	_, qerr := p.Query(ctx, q, time.Now())
	_, ferr := p.Firing(ctx, time.Now())
	cerr := p.Check(ctx, []string{q})
	for _, c := range []struct {
		what string
		err  error
		want []string
	}{
		{"Query", qerr, []string{url, "`" + q + "`", "connection refused", "is PROMETHEUS_URL right and Prometheus up?"}},
		{"Firing", ferr, []string{url, "alerts", "is PROMETHEUS_URL right and Prometheus up?"}},
		{"Check", cerr, []string{url, "`" + q + "`", "1 of 1"}},
	} {
		if c.err == nil {
			t.Errorf("%s against a closed port = nil error", c.what)
			continue
		}
		if !errors.Is(c.err, ErrUnavailable) {
			t.Errorf("%s error %v does not wrap ErrUnavailable", c.what, c.err)
		}
		for _, sub := range c.want {
			if !strings.Contains(c.err.Error(), sub) {
				t.Errorf("%s error %q does not mention %q", c.what, c.err, sub)
			}
		}
	}
}

// TestPrometheusTimeout queries a server that accepts connections and never
// answers: the query must end with the adapter's timeout.
func TestPrometheusTimeout(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	conns := make(chan net.Conn, 16)
	held.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c // read nothing, answer nothing
		}
	})
	t.Cleanup(func() {
		l.Close()
		held.Wait()
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	url := "http://" + l.Addr().String()
	p := newTestPrometheus(t, PrometheusOptions{URL: url, Timeout: 200 * time.Millisecond})

	done := make(chan error, 1)
	go func() {
		_, err := p.Query(context.Background(), "up", time.Now())
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		// Not a timing assertion: a Query that never returns would
		// otherwise hang the package until go test's own timeout.
		t.Fatal("Query against a silent server never returned")
	}
	if err == nil {
		t.Fatal("Query against a silent server = nil error")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("error %v, want it to wrap context.DeadlineExceeded and ErrUnavailable", err)
	}
	for _, sub := range []string{url, "`up`", "200ms", "PROMETHEUS_URL"} {
		if !strings.Contains(err.Error(), sub) {
			t.Errorf("error %q does not mention %q", err, sub)
		}
	}
}

func TestPrometheusCallerCancelled(t *testing.T) {
	t.Parallel()
	p := newTestPrometheus(t, PrometheusOptions{URL: closedPortURL(t)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Query(ctx, "up", time.Now())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Query with a cancelled context = %v, want context.Canceled", err)
	}
	if errors.Is(err, ErrUnavailable) {
		t.Errorf("Query with a cancelled context = %v: the caller gave up, the server is not known to be down", err)
	}
}

// recorder is an httptest server that records the Authorization header it
// gets and answers 500 with a Prometheus-style error echoing it, as a
// careless proxy might.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	auth []string
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		got := req.Header.Get("Authorization")
		r.mu.Lock()
		r.auth = append(r.auth, got)
		r.mu.Unlock()
		body, _ := json.Marshal(map[string]string{
			"status": "error", "errorType": "internal",
			"error": "rejected request with Authorization " + got,
		})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(body)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) headers() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auth...)
}

func TestPrometheusCredentials(t *testing.T) {
	t.Parallel()
	const (
		token    = "tok-s3cret-0123456789"
		user     = "canarybot"
		password = "pa55-w0rd-secret"
	)
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	tests := []struct {
		name       string
		opts       PrometheusOptions
		wantHeader string
		secrets    []string
	}{
		{"bearer", PrometheusOptions{BearerToken: token}, "Bearer " + token, []string{token}},
		{"basic", PrometheusOptions{BasicUser: user, BasicPassword: password}, "Basic " + basic, []string{password, basic}},
		{"bearer file", PrometheusOptions{BearerTokenFile: secretFile(t, token+"\n")}, "Bearer " + token, []string{token}},
		{"basic password file", PrometheusOptions{BasicUser: user, BasicPasswordFile: secretFile(t, password)}, "Basic " + basic, []string{password, basic}},
		{"none", PrometheusOptions{}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t)
			var logs bytes.Buffer
			opts := tt.opts
			opts.URL = rec.srv.URL
			opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			p := newTestPrometheus(t, opts)

			_, qerr := p.Query(context.Background(), "up", time.Now())
			_, ferr := p.Firing(context.Background(), time.Now())
			headers := rec.headers()
			if len(headers) != 2 {
				t.Fatalf("server saw %d requests, want 2 (a query and an alerts request)", len(headers))
			}
			for i, h := range headers {
				if h != tt.wantHeader {
					t.Errorf("request %d: Authorization %q, want %q", i, h, tt.wantHeader)
				}
			}
			for _, err := range []error{qerr, ferr} {
				if err == nil {
					t.Fatal("a 500 answer gave no error")
				}
				if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "rejected request") {
					t.Errorf("error %q: want ErrUnavailable quoting the server's message", err)
				}
			}
			shown := []string{
				qerr.Error(), ferr.Error(), logs.String(),
				fmt.Sprint(opts), fmt.Sprintf("%+v", opts), fmt.Sprintf("%#v", opts),
				fmt.Sprintf("%+v", *p), fmt.Sprintf("%#v", *p),
			}
			for _, s := range tt.secrets {
				for _, text := range shown {
					if strings.Contains(text, s) {
						t.Errorf("a secret shows in %q", text)
					}
				}
			}
			if len(tt.secrets) > 0 && !strings.Contains(qerr.Error(), "[REDACTED]") {
				t.Errorf("error %q: the echoed credentials should read [REDACTED]", qerr)
			}
		})
	}
}

// TestPrometheusDoesNotFollowRedirects: a redirect to another host is not
// followed, so the token never goes there, and the error says what to fix.
func TestPrometheusDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	elsewhere := newRecorder(t)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	p := newTestPrometheus(t, PrometheusOptions{URL: redirector.URL, BearerToken: "tok-s3cret-0123456789"})
	_, err := p.Query(context.Background(), "up", time.Now())
	if n := len(elsewhere.headers()); n != 0 {
		t.Errorf("the other host got %d requests, want none", n)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Query through a redirect = %v, want ErrUnavailable", err)
	}
	for _, sub := range []string{"redirect", "HTTP 307", "PROMETHEUS_URL"} {
		if !strings.Contains(err.Error(), sub) {
			t.Errorf("error %q does not mention %q", err, sub)
		}
	}
}

func TestSingleValue(t *testing.T) {
	t.Parallel()
	series := func(v float64, ls ...string) *model.Sample {
		m := model.Metric{}
		for i := 0; i+1 < len(ls); i += 2 {
			m[model.LabelName(ls[i])] = model.LabelValue(ls[i+1])
		}
		return &model.Sample{Metric: m, Value: model.SampleValue(v)}
	}
	const q = "q"
	tests := []struct {
		name    string
		res     model.Value
		want    float64
		wantIs  error
		wantErr []string
	}{
		{name: "scalar", res: &model.Scalar{Value: 1.5}, want: 1.5},
		{name: "one series", res: model.Vector{series(0.25, "track", "canary")}, want: 0.25},
		{name: "NaN", res: model.Vector{series(math.NaN())}, want: math.NaN()},
		{name: "+Inf", res: model.Vector{series(math.Inf(1))}, want: math.Inf(1)},
		{name: "empty", res: model.Vector{}, wantIs: rollout.ErrNoValues, wantErr: []string{"`q`"}},
		{
			name:    "several series",
			res:     model.Vector{series(1, "i", "a"), series(2, "i", "b"), series(3, "i", "c"), series(4, "i", "d")},
			wantErr: []string{"`q`", "4 series", `i="a"`, "…", "sum or max"},
		},
		{
			name:    "native histogram",
			res:     model.Vector{{Metric: model.Metric{}, Histogram: &model.SampleHistogram{Count: 1}}},
			wantErr: []string{"native histogram", "histogram_quantile"},
		},
		{name: "matrix", res: model.Matrix{}, wantErr: []string{"range vector"}},
		{name: "string", res: &model.String{Value: "x"}, wantErr: []string{"string"}},
		{name: "nothing", res: nil, wantErr: []string{"without a result"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := singleValue(q, tt.res)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("singleValue = %v", err)
				}
				if got != tt.want && !(math.IsNaN(got) && math.IsNaN(tt.want)) {
					t.Errorf("singleValue = %v, want %v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("singleValue = %v, want an error", got)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
			for _, sub := range tt.wantErr {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("error %q does not mention %q", err, sub)
				}
			}
		})
	}
}

func TestCollectWarnings(t *testing.T) {
	t.Parallel()
	if got := collectWarnings(nil, nil); len(got) != 0 {
		t.Errorf("collectWarnings(nil, nil) = %q, want none", got)
	}
	got := collectWarnings(v1.Warnings{"w"}, v1.Infos{"i"})
	if strings.Join(got, "|") != "w|i" {
		t.Errorf("collectWarnings = %q, want warnings then infos", got)
	}
	many := make(v1.Warnings, maxQueryWarnings+5)
	if got := collectWarnings(many, v1.Infos(many)); len(got) != 2*maxQueryWarnings {
		t.Errorf("collectWarnings kept %d, want %d of each kind", len(got), maxQueryWarnings)
	}
}

// TestDescribeAPIError covers the answers a real server gives rarely or only
// behind a proxy.
func TestDescribeAPIError(t *testing.T) {
	t.Parallel()
	p := newTestPrometheus(t, PrometheusOptions{URL: "http://prom:9090", Timeout: 3 * time.Second})
	tests := []struct {
		name    string
		err     *v1.Error
		wantIs  error
		want    []string
		notWant []string
	}{
		{"bad data", &v1.Error{Type: v1.ErrBadData, Msg: "parse error"}, ErrBadQuery, []string{"parse error", "fix the query"}, nil},
		{"execution", &v1.Error{Type: v1.ErrExec, Msg: "many-to-many"}, ErrBadQuery, []string{"many-to-many"}, nil},
		{"server timeout", &v1.Error{Type: v1.ErrTimeout, Msg: "query timed out"}, ErrUnavailable, []string{"gave up", "3s"}, nil},
		{
			"5xx with a Prometheus body",
			&v1.Error{Type: v1.ErrServer, Msg: "server error: 503", Detail: `{"status":"error","error":"TSDB not ready"}`},
			ErrUnavailable, []string{"503", "TSDB not ready", "PROMETHEUS_URL"}, nil,
		},
		{
			"5xx from a proxy",
			&v1.Error{Type: v1.ErrServer, Msg: "server error: 502", Detail: `<html>Bad Gateway</html>`},
			ErrUnavailable, []string{"502", "PROMETHEUS_URL"}, []string{"<html>"},
		},
		{"unauthorized", &v1.Error{Type: v1.ErrClient, Msg: "client error: 401"}, ErrUnavailable, []string{"401", "credentials"}, nil},
		{"forbidden", &v1.Error{Type: v1.ErrClient, Msg: "client error: 403"}, ErrUnavailable, []string{"403", "credentials"}, nil},
		{"not found", &v1.Error{Type: v1.ErrClient, Msg: "client error: 404"}, ErrUnavailable, []string{"404", "base URL"}, nil},
		{"not Prometheus", &v1.Error{Type: v1.ErrBadResponse, Msg: "invalid character '<'"}, ErrUnavailable, []string{"not a Prometheus API response"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := p.describe(context.Background(), "query `up`", tt.err)
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
			for _, sub := range append([]string{"`up`", "http://prom:9090"}, tt.want...) {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("error %q does not mention %q", err, sub)
				}
			}
			for _, sub := range tt.notWant {
				if strings.Contains(err.Error(), sub) {
					t.Errorf("error %q quotes %q", err, sub)
				}
			}
		})
	}
}
