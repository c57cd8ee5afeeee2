package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/deploy"
	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/server"
	"github.com/canarybot/canarybot/signals"
	"github.com/canarybot/canarybot/store"
	"github.com/canarybot/canarybot/traffic"
)

// The deploy files the production tests load, from this package's directory.
var (
	rulesFile        = filepath.Join("..", "..", "deploy", "prometheus", "canary-rules.yml")
	alertmanagerFile = filepath.Join("..", "..", "deploy", "alertmanager", "alertmanager.yml")
)

// prodLab is production in miniature, on loopback: the demo service's
// stable and canary tracks behind canarybot's weighted router, under load,
// scraped every second by Debian's Prometheus with the runbook's rules.
type prodLab struct {
	stable, canary       *demo.Service
	stableURL, canaryURL *url.URL
	router               *traffic.Local
	prom                 *testenv.Server
}

type labOptions struct {
	fault         demo.Fault
	weight        int      // the router's weight until an engine sets it
	alertmanagers []string // where Prometheus sends its alerts
	rules         string   // rule file; "" is deploy's
	noPrometheus  bool     // the caller starts its own
}

func startProdLab(tb testing.TB, o labOptions) *prodLab {
	tb.Helper()
	l := &prodLab{canary: demo.NewService(demo.TrackCanary, 1), stable: demo.NewService(demo.TrackStable, 2)}
	tb.Cleanup(l.canary.Close)
	tb.Cleanup(l.stable.Close)
	// The demo's rare risk blocks (~0.1/min) would now and then breach the
	// risk signal (< 0.5/min over a 1m window) within a test's minute, and
	// roll back a release the test means to be clean.
	l.canary.SetRiskBlockProbability(0)
	l.stable.SetRiskBlockProbability(0)
	l.canary.SetFault(o.fault)
	cs := httptest.NewServer(l.canary)
	tb.Cleanup(cs.Close)
	ss := httptest.NewServer(l.stable)
	tb.Cleanup(ss.Close)
	l.canaryURL, _ = url.Parse(cs.URL)
	l.stableURL, _ = url.Parse(ss.URL)
	l.router = traffic.NewLocal(l.stableURL, l.canaryURL)
	if err := l.router.SetWeight(context.Background(), o.weight); err != nil {
		tb.Fatal(err)
	}
	rs := httptest.NewServer(l.router)
	tb.Cleanup(rs.Close)

	// WebSocket clients and orders too: without them the staleness and
	// idempotency signals read no data.
	load := demo.NewLoad(demo.LoadConfig{Target: rs.URL, RPS: 40, WSClients: 8, WSSession: 500 * time.Millisecond, OrderShare: 0.5})
	ctx, cancel := context.WithCancel(context.Background())
	loaded := make(chan error, 1)
	go func() { loaded <- load.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-loaded; err != nil {
			tb.Errorf("load generator: %v", err)
		}
	})

	if !o.noPrometheus {
		l.prom = l.startPrometheus(tb, o)
	}
	return l
}

// startPrometheus starts a Prometheus scraping the lab's two tracks every
// second, evaluating the rules every second.
func (l *prodLab) startPrometheus(tb testing.TB, o labOptions) *testenv.Server {
	tb.Helper()
	rules := o.rules
	if rules == "" {
		rules = rulesFile
	}
	return testenv.StartPrometheus(tb, testenv.PrometheusOptions{
		PrometheusConfig: testenv.PrometheusConfig{
			Targets: []testenv.ScrapeTarget{
				{Addr: l.canaryURL.Host, Labels: map[string]string{"track": demo.TrackCanary}},
				{Addr: l.stableURL.Host, Labels: map[string]string{"track": demo.TrackStable}},
			},
			RuleFiles:      []string{rules},
			ScrapeInterval: time.Second,
			EvalInterval:   time.Second,
		},
		Alertmanagers: o.alertmanagers,
	})
}

// embedded is the demo's store scraping the same two tracks, every second
// of wall time, with the same rules.
func (l *prodLab) embedded(tb testing.TB) *signals.Embedded {
	tb.Helper()
	target := func(u *url.URL, track string) signals.Target {
		return signals.Target{URL: u.String() + "/metrics", Labels: map[string]string{"track": track, "job": testenv.PrometheusJob}}
	}
	e, err := signals.NewEmbedded(signals.EmbeddedOptions{
		Clock:       clock.Real{},
		ScrapeEvery: time.Second,
		Targets:     []signals.Target{target(l.stableURL, demo.TrackStable), target(l.canaryURL, demo.TrackCanary)},
		Rules:       deploy.CanaryRules(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- e.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		<-ran
		_ = e.Close()
	})
	return e
}

// productionPlan is the runbook's plan with its queries and thresholds as
// they are, and time compressed: no T-minus timeline, a 1m query window (the
// lab's data is a minute old at most), and the given tick and stages.
func productionPlan(tick time.Duration, stages ...rollout.Stage) rollout.Plan {
	plan := config.Default()
	plan.Timeline = nil
	plan.Window = "1m"
	plan.Tick = tick
	plan.Stages = stages
	return plan
}

// planQueries are a tick's queries in the order the runner sends them.
func planQueries(plan *rollout.Plan) []string {
	var queries []string
	for _, s := range plan.Signals {
		queries = append(queries, plan.ResolveQuery(s.Query))
		if s.Relative {
			queries = append(queries, plan.ResolveQuery(s.BaselineQuery))
		}
	}
	return queries
}

// judgeAll reads every signal at `at` as the runner does and gives each its
// verdict (no history: the trend rule is the engine's, not the store's).
func judgeAll(ctx context.Context, m rollout.BatchMetrics, plan *rollout.Plan, at time.Time) []rollout.Measurement {
	samples, errs := m.QueryAll(ctx, planQueries(plan), at)
	out := make([]rollout.Measurement, 0, len(plan.Signals))
	i := 0
	for _, s := range plan.Signals {
		rd := rollout.Reading{Signal: s.Name, Query: plan.ResolveQuery(s.Query), At: at, Value: samples[i].Value, Err: errs[i]}
		i++
		if s.Relative {
			rd.Baseline, rd.BaselineErr = samples[i].Value, errs[i]
			i++
		}
		out = append(out, rollout.Judge(s, plan.Trend, rd, nil))
	}
	return out
}

func verdictTable(ms []rollout.Measurement) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "  %-22s %-7s %.4g %s\n", m.Signal, m.Verdict, m.Value, m.Reason)
	}
	return b.String()
}

// eventLog is the engine's Notifier: it records every event and wakes
// whoever waits for one.
type eventLog struct {
	mu      sync.Mutex
	events  []rollout.Event
	keys    map[string]bool
	changed chan struct{}
}

func newEventLog() *eventLog {
	return &eventLog{keys: map[string]bool{}, changed: make(chan struct{}, 1)}
}

func (l *eventLog) Notify(ctx context.Context, key string, ev rollout.Event) error {
	l.mu.Lock()
	if !l.keys[key] {
		l.keys[key] = true
		l.events = append(l.events, ev)
	}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return nil
}

func (l *eventLog) snapshot() []rollout.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// waitFor returns the index of the first event from `from` on that
// satisfies cond, failing the test with the events seen when ctx ends
// first.
func (l *eventLog) waitFor(ctx context.Context, tb testing.TB, from int, what string, cond func(rollout.Event) bool) int {
	tb.Helper()
	for {
		evs := l.snapshot()
		for i := from; i < len(evs); i++ {
			if cond(evs[i]) {
				return i
			}
		}
		select {
		case <-l.changed:
		case <-ctx.Done():
			tb.Fatalf("waiting for %s: %v; the engine said:\n%s", what, ctx.Err(), dumpEvents(evs[from:]))
		}
	}
}

func dumpEvents(evs []rollout.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s %-6s %s\n", e.At.Format("15:04:05.000"), e.Kind, strings.TrimSpace(e.Text))
	}
	return b.String()
}

func isRow(e rollout.Event) bool { return e.Kind == rollout.EventRow && e.Row != nil }

func allPass(row *rollout.Row) bool {
	for _, m := range row.Readings {
		if m.Verdict != rollout.Pass {
			return false
		}
	}
	return len(row.Readings) > 0
}

// prodEngine is an engine driving a release the way `canarybot run` does:
// bbolt state, its inbox polled every second, real time.
type prodEngine struct {
	state  string
	store  *store.Bolt
	events *eventLog
	done   chan *rollout.Release
}

type engineParts struct {
	metrics      rollout.Metrics
	alerts       rollout.Alerts // nil: no polling, as with a webhook
	traffic      rollout.Traffic
	queryTimeout time.Duration
	wake         <-chan struct{} // nil: the inbox is polled every second, as by `run`
}

func startProdEngine(ctx context.Context, tb testing.TB, state string, plan rollout.Plan, p engineParts) *prodEngine {
	tb.Helper()
	dir := tb.TempDir()
	st, err := store.Open(state)
	if err != nil {
		tb.Fatal(err)
	}
	ev, err := evidence.Open(filepath.Join(dir, "evidence"), "v1.4.0")
	if err != nil {
		tb.Fatal(err)
	}
	e := &prodEngine{state: state, store: st, events: newEventLog(), done: make(chan *rollout.Release, 1)}
	rn := &rollout.Runner{
		Machine:      &rollout.Machine{Plan: &plan, Render: report.Renderer{}},
		Metrics:      p.metrics,
		Alerts:       p.alerts,
		Traffic:      p.traffic,
		Notifier:     e.events,
		Evidence:     ev,
		Store:        st,
		Clock:        clock.Real{},
		Inbox:        st,
		InboxPoll:    time.Second, // as run.go
		QueryTimeout: p.queryTimeout,
		Wake:         p.wake,
	}
	if _, err := rn.Start(ctx, "v1.4.0", "v1.4.0", "alice", time.Time{}); err != nil {
		tb.Fatal(err)
	}
	go func() {
		r, err := rn.Run(ctx, "v1.4.0")
		if err != nil && ctx.Err() == nil {
			tb.Errorf("engine: %v", err)
		}
		e.done <- r
	}()
	return e
}

// alertmanagerConfig is deploy/alertmanager/alertmanager.yml as shipped,
// with its webhook pointed at the test's server and its token file at the
// test's.
func alertmanagerConfig(tb testing.TB, webhookBase, tokenFile string) []byte {
	tb.Helper()
	b, err := os.ReadFile(alertmanagerFile)
	if err != nil {
		tb.Fatal(err)
	}
	s := string(b)
	for _, r := range [][2]string{
		{"http://canarybot:8080/alertmanager/webhook", webhookBase + "/alertmanager/webhook"},
		{"/etc/alertmanager/canarybot-token", tokenFile},
	} {
		if !strings.Contains(s, r[0]) {
			tb.Fatalf("%s no longer contains %q: update this test to the file's new receiver", alertmanagerFile, r[0])
		}
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return []byte(s)
}

// webhookServer is `canarybot serve`'s HTTP server with the triggers
// handed to the engine on the state file, as serve wires it. It records
// who called the webhook.
type webhookServer struct {
	*httptest.Server
	mu     sync.Mutex
	agents []string
}

// wake, when not nil, is signalled after a trigger is queued, as `serve`
// wakes an engine it hosts in its own process.
func startWebhookServer(tb testing.TB, plan rollout.Plan, state, token string, wake chan<- struct{}) *webhookServer {
	tb.Helper()
	g := &globals{statePath: state, evidenceDir: tb.TempDir(), out: &strings.Builder{}, errOut: &strings.Builder{}}
	queue := (&slackHandler{g: g}).triggers
	srv := server.New(server.Options{
		OnTriggers: func(ctx context.Context, alerts []rollout.Alert) error {
			err := queue(ctx, alerts)
			if err == nil && wake != nil {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
			return err
		},
		Triggers:          plan.Triggers,
		Service:           plan.Service,
		AlertmanagerToken: token,
	})
	ws := &webhookServer{}
	h := srv.Handler()
	ws.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/alertmanager/webhook" {
			ws.mu.Lock()
			ws.agents = append(ws.agents, r.UserAgent())
			ws.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	tb.Cleanup(ws.Close)
	return ws
}

func (ws *webhookServer) callers() []string {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return slices.Clone(ws.agents)
}

// TestProductionPrometheusAlertmanager runs the production path end to end
// on loopback: Debian's Prometheus scrapes the demo service's two tracks
// with deploy/prometheus/canary-rules.yml loaded and sends its alerts to
// Debian's Alertmanager configured by deploy/alertmanager/alertmanager.yml,
// whose webhook is canarybot's server wired to an engine.
//
//   - The default queries give the same verdicts from Prometheus as from the
//     embedded store scraping the same traffic: clean, and with the canary's
//     latency fault.
//   - The canary's outbox-lag fault fires CanaryOutboxLagCritical (its `for`
//     is 30s, which sets this test's pace); Alertmanager calls the webhook
//     and the engine rolls back to weight 0. A second engine with no webhook
//     polls Prometheus's alerts at its tick and rolls back too.
func TestProductionPrometheusAlertmanager(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	plan := productionPlan(time.Second, rollout.Stage{Weight: 50, Dwell: time.Hour})

	// The webhook server needs only the engine's state file, so it starts
	// first and Alertmanager's configuration can name it.
	const token = "am-webhook-token-0123456789"
	tokenFile := filepath.Join(t.TempDir(), "canarybot-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	webhookState := filepath.Join(t.TempDir(), "state.db")
	hook := startWebhookServer(t, plan, webhookState, token, nil)
	am := testenv.Alertmanager(t, alertmanagerConfig(t, hook.URL, tokenFile))
	lab := startProdLab(t, labOptions{fault: demo.FaultTrigger, weight: 50, alertmanagers: []string{am.URL}})
	emb := lab.embedded(t)

	prom, err := signals.NewPrometheus(signals.PrometheusOptions{URL: lab.prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	// As `run` does before anything moves: every query runs on Prometheus.
	if err := prom.Check(ctx, planQueries(&plan)); err != nil {
		t.Fatalf("the default queries do not all run against Prometheus 2.42: %v", err)
	}

	webhookEngine := startProdEngine(ctx, t, webhookState, plan, engineParts{metrics: prom, traffic: lab.router})
	// The polling engine moves a router of its own that no load goes
	// through: only its weight is looked at.
	pollRouter := traffic.NewLocal(lab.stableURL, lab.canaryURL)
	pollingEngine := startProdEngine(ctx, t, filepath.Join(t.TempDir(), "state.db"), plan, engineParts{metrics: prom, alerts: prom, traffic: pollRouter})

	t.Run("same verdicts as the embedded store, clean", func(t *testing.T) {
		sameVerdicts(ctx, t, &plan, prom, emb, func(ms []rollout.Measurement) bool {
			return !slices.ContainsFunc(ms, func(m rollout.Measurement) bool { return m.Verdict != rollout.Pass })
		}, "every signal Pass")
	})

	t.Run("trigger through Alertmanager's webhook sets weight 0", func(t *testing.T) {
		var r *rollout.Release
		select {
		case r = <-webhookEngine.done:
		case <-ctx.Done():
			t.Fatalf("no rollback: %v; the engine said:\n%s\nAlertmanager log:\n%s", ctx.Err(), dumpEvents(webhookEngine.events.snapshot()), am.Log())
		}
		if r == nil || r.Phase != rollout.PhaseRolledBack || r.Rollback == nil {
			t.Fatalf("release ended as %+v, want rolled back; the engine said:\n%s", r, dumpEvents(webhookEngine.events.snapshot()))
		}
		if r.Rollback.By != rollout.TriggerUser+" (webhook)" || !strings.Contains(r.Rollback.Reason, "CanaryOutboxLagCritical") {
			t.Errorf("rolled back by %q for %q, want the webhook's CanaryOutboxLagCritical", r.Rollback.By, r.Rollback.Reason)
		}
		if w, _ := lab.router.Weight(ctx); w != 0 {
			t.Errorf("router weight %d after the trigger, want 0", w)
		}
		callers := hook.callers()
		if len(callers) == 0 || !strings.HasPrefix(callers[0], "Alertmanager/") {
			t.Errorf("webhook callers %q, want Alertmanager", callers)
		}
	})

	t.Run("trigger polled from Prometheus sets weight 0", func(t *testing.T) {
		var r *rollout.Release
		select {
		case r = <-pollingEngine.done:
		case <-ctx.Done():
			t.Fatalf("no rollback: %v; the engine said:\n%s", ctx.Err(), dumpEvents(pollingEngine.events.snapshot()))
		}
		if r == nil || r.Phase != rollout.PhaseRolledBack || r.Rollback == nil {
			t.Fatalf("release ended as %+v, want rolled back", r)
		}
		if r.Rollback.By != "canarybot (auto)" || !strings.Contains(r.Rollback.Reason, "trigger firing: CanaryOutboxLagCritical") {
			t.Errorf("rolled back by %q for %q, want the engine's own poll of CanaryOutboxLagCritical", r.Rollback.By, r.Rollback.Reason)
		}
		if w, _ := pollRouter.Weight(ctx); w != 0 {
			t.Errorf("router weight %d after the trigger, want 0", w)
		}
	})

	t.Run("same verdicts as the embedded store, canary slow", func(t *testing.T) {
		// Both engines have ended; traffic goes back to the canary with a
		// fault the 8 signals see.
		if err := lab.router.SetWeight(ctx, 50); err != nil {
			t.Fatal(err)
		}
		lab.canary.SetFault(demo.FaultLatency)
		sameVerdicts(ctx, t, &plan, prom, emb, func(ms []rollout.Measurement) bool {
			return ms[0].Signal == "api_p95" && ms[0].Verdict == rollout.Breach && ms[0].Value > 0.3
		}, "api_p95 well over its bound")
	})
}

// sameVerdicts waits until both stores read what settled says (the data
// has settled past any bound it crosses), then compares three successive
// readings of every default signal: the verdicts must be the same.
func sameVerdicts(ctx context.Context, t *testing.T, plan *rollout.Plan, a, b rollout.BatchMetrics, settled func([]rollout.Measurement) bool, want string) {
	t.Helper()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var ma, mb []rollout.Measurement
	for {
		at := time.Now()
		ma, mb = judgeAll(ctx, a, plan, at), judgeAll(ctx, b, plan, at)
		if settled(ma) && settled(mb) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("never %s on both: Prometheus read\n%sthe embedded store read\n%s", want, verdictTable(ma), verdictTable(mb))
		case <-tick.C:
		}
	}
	for round := range 3 {
		if round > 0 {
			<-tick.C
		}
		at := time.Now()
		ma, mb = judgeAll(ctx, a, plan, at), judgeAll(ctx, b, plan, at)
		for i := range ma {
			if ma[i].Verdict != mb[i].Verdict {
				t.Errorf("round %d: %s is %s from Prometheus (%.4g) but %s from the embedded store (%.4g)",
					round, ma[i].Signal, ma[i].Verdict, ma[i].Value, mb[i].Verdict, mb[i].Value)
			}
			if math.IsNaN(ma[i].Value) != math.IsNaN(mb[i].Value) {
				t.Errorf("round %d: %s reads %v from Prometheus, %v from the embedded store", round, ma[i].Signal, ma[i].Value, mb[i].Value)
			}
		}
	}
	t.Logf("last round, Prometheus:\n%sembedded:\n%s", verdictTable(ma), verdictTable(mb))
}

// faultProxy stands between the engine and Prometheus, as an ingress does,
// and can make Prometheus slow or failing.
type faultProxy struct {
	*httptest.Server
	mode atomic.Int32
}

const (
	proxyPass int32 = iota
	proxySlow       // answers nothing until the caller gives up
	proxyFail       // 500 with a Prometheus error body
)

func newFaultProxy(tb testing.TB, upstream string) *faultProxy {
	tb.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		tb.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	// A dead Prometheus is the test's doing: no log line per request.
	rp.ErrorLog = log.New(io.Discard, "", 0)
	p := &faultProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p.mode.Load() {
		case proxySlow:
			// The server notices the caller hanging up only once the
			// request's body is read.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(time.Minute):
			}
			return
		case proxyFail:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"status":"error","errorType":"internal","error":"simulated: query engine overloaded"}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	tb.Cleanup(p.Close)
	return p
}

// TestProductionPrometheusOutage: Prometheus goes down (killed), slow, and
// failing (500s) in the middle of stages. Each time the release holds and
// says why, pages the IC, does not promote however long the outage lasts,
// and once Prometheus is back proceeds only after a whole dwell of clean
// readings. The engine runs as `run` wires it (signals and triggers from
// Prometheus), auto-promoting, on real time with a compressed plan:
// Prometheus evaluates at its own clock, so a scaled clock would query a
// future it has no data for.
func TestProductionPrometheusOutage(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const (
		tick  = 250 * time.Millisecond
		dwell = 2 * time.Second
		// outageRows are the ticks the outage lasts once the engine holds:
		// more than a dwell's worth, so a promotion would have had time.
		outageRows = int(2*dwell/tick) + 1
	)
	plan := productionPlan(tick,
		rollout.Stage{Weight: 20, Dwell: dwell}, rollout.Stage{Weight: 40, Dwell: dwell},
		rollout.Stage{Weight: 60, Dwell: dwell}, rollout.Stage{Weight: 80, Dwell: dwell},
		rollout.Stage{Weight: 100, Dwell: dwell})
	plan.AutoPromote = true
	plan.Hold = dwell
	plan.Trend.Lookback, plan.Trend.Horizon = 5*time.Second, dwell

	lab := startProdLab(t, labOptions{weight: 20})
	proxy := newFaultProxy(t, lab.prom.URL)
	// The adapter's own timeout bounds the alerts request, which the
	// runner's query timeout does not; production sets both below the tick.
	prom, err := signals.NewPrometheus(signals.PrometheusOptions{URL: proxy.URL, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := prom.Check(ctx, planQueries(&plan)); err != nil {
		t.Fatal(err)
	}
	e := startProdEngine(ctx, t, filepath.Join(t.TempDir(), "state.db"), plan, engineParts{metrics: prom, alerts: prom, traffic: lab.router, queryTimeout: 300 * time.Millisecond})
	t.Cleanup(func() {
		cancel()
		<-e.done
	})
	events := e.events

	outages := []struct {
		name    string
		start   func()
		end     func()
		because string // what the hold must say
	}{
		{"Prometheus killed", lab.prom.Stop, func() {
			if err := lab.prom.Start(); err != nil {
				t.Fatal(err)
			}
		}, "502"},
		{"Prometheus slow", func() { proxy.mode.Store(proxySlow) }, func() { proxy.mode.Store(proxyPass) }, "no answer"},
		{"Prometheus answering 500", func() { proxy.mode.Store(proxyFail) }, func() { proxy.mode.Store(proxyPass) }, "simulated: query engine overloaded"},
	}
	for i, o := range outages {
		stage := i + 2 // stage 1 must first pass on clean data
		weight := plan.Stages[stage-1].Weight
		healthy := events.waitFor(ctx, t, 0, fmt.Sprintf("a clean tick at stage %d", stage), func(ev rollout.Event) bool {
			return isRow(ev) && ev.Row.Stage == stage && allPass(ev.Row)
		})
		from := len(events.snapshot())
		o.start()
		t.Logf("%s at stage %d (clean tick at event %d)", o.name, stage, healthy)
		hold := events.waitFor(ctx, t, from, "a hold saying the queries fail", func(ev rollout.Event) bool {
			return isRow(ev) && ev.Row.Decision.Kind == rollout.Hold &&
				strings.Contains(ev.Row.Decision.Reason, "failed 3 times in a row") &&
				strings.Contains(ev.Row.Decision.Reason, o.because)
		})
		rows := 0
		events.waitFor(ctx, t, hold+1, fmt.Sprintf("%d ticks into the outage", outageRows), func(ev rollout.Event) bool {
			if isRow(ev) {
				rows++
			}
			return rows >= outageRows
		})
		if w, err := lab.router.Weight(ctx); err != nil || w != weight {
			t.Errorf("%s: router weight %d (%v) during the outage, want stage %d's %d", o.name, w, err, stage, weight)
		}
		o.end()
		fixed := len(events.snapshot())
		next := events.waitFor(ctx, t, fixed, fmt.Sprintf("stage %d once Prometheus is back", stage+1), func(ev rollout.Event) bool {
			return isRow(ev) && ev.Row.Stage == stage+1
		})

		evs := events.snapshot()
		paged := false
		var lastUnclean time.Time
		var proceed *rollout.Row
		for j := from; j < next; j++ {
			ev := evs[j]
			if ev.Kind == rollout.EventPage && strings.Contains(ev.Text, "signal queries keep failing") {
				paged = true
			}
			if !isRow(ev) {
				continue
			}
			if ev.Row.Stage != stage {
				t.Errorf("%s: a row at stage %d before Prometheus was back", o.name, ev.Row.Stage)
			}
			if ev.Row.Decision.Kind == rollout.Proceed {
				if j < fixed {
					t.Errorf("%s: Proceed during the outage: %s", o.name, ev.Row.Decision.Reason)
				}
				if proceed == nil {
					proceed = ev.Row
				}
				continue
			}
			if !allPass(ev.Row) {
				lastUnclean = ev.Row.At
			}
		}
		if !paged {
			t.Errorf("%s: the IC was not paged; events:\n%s", o.name, dumpEvents(evs[from:next]))
		}
		if proceed == nil {
			t.Fatalf("%s: stage %d began without a Proceed; events:\n%s", o.name, stage+1, dumpEvents(evs[from:next]))
		}
		if clean := proceed.At.Sub(lastUnclean); clean < dwell {
			t.Errorf("%s: proceeded %s after the last unclean tick, want a whole dwell (%s)", o.name, clean, dwell)
		}
		t.Logf("%s: held from %s, proceeded %s after Prometheus was back", o.name,
			evs[hold].Row.At.Format("15:04:05.000"), proceed.At.Sub(evs[fixed-1].At).Round(time.Millisecond))
	}
}
