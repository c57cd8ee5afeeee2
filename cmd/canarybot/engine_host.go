package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canarybot/canarybot/checks"
	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/preflight"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/signals"
	"github.com/canarybot/canarybot/store"
	"github.com/canarybot/canarybot/traffic"
)

// production are the long-lived parts a release engine drives: Prometheus
// (every query of the plan dry-run once) and the router: the canary
// Ingress on Kubernetes, else canarybot's weighted router in front of the
// two backends. `run` opens them for one release; `serve` once, for every
// release it hosts, so traffic keeps flowing between them.
type production struct {
	// kube is the cluster client (nil off Kubernetes), shared with the
	// kubernetes preflight checks.
	kube    *kubeConn
	prom    *signals.Prometheus
	promURL string
	traffic rollout.Traffic
	// observer compares the observed canary share with the weight, for
	// the table; nil when there is nothing to observe it with.
	observer rollout.TrafficObserver
	// where names the router for people: run's banner, the drill's text.
	where string
	// router and routerLn are canarybot's weighted router; nil on an
	// Ingress.
	router   *traffic.Local
	routerLn net.Listener
	stable   *url.URL
	// canary is the canary backend the blast-radius step probes; nil on an
	// Ingress without --canary (the step is then not configured).
	canary    *url.URL
	preflight []preflight.Check
	srv       *http.Server
	// wiring builds the freeze, preflight and green-button gates from
	// canary.yaml and the environment (gates_wiring.go); nil wires only
	// --preflight's checks.
	wiring *gateWiring
}

// openProduction checks the flags, dry-runs the plan's queries and opens
// the router: the Ingress when --ingress names one (kc connects to its
// cluster), else canarybot's own. Bad flags are bad input.
func openProduction(ctx context.Context, plan *rollout.Plan, o runOptions, kc *kubeConn, log *slog.Logger) (*production, error) {
	onIngress := o.kube.ingress != "" || o.kube.httpRoute != ""
	var stableURL, canaryURL *url.URL
	var err error
	if !onIngress || o.stable != "" {
		if stableURL, err = backendURL("stable", o.stable); err != nil {
			return nil, &exitError{code: exitBadInput, err: err}
		}
	}
	if !onIngress || o.canary != "" {
		if canaryURL, err = backendURL("canary", o.canary); err != nil {
			return nil, &exitError{code: exitBadInput, err: err}
		}
	}
	// TLS, basic or bearer auth (inline or from files) come from the
	// environment, never from flags or canary.yaml.
	popts := signals.PrometheusOptionsFromEnv(os.Getenv)
	if o.prometheus != "" {
		popts.URL = o.prometheus
	}
	popts.Logger = log
	promURL := popts.URL
	if promURL == "" {
		return nil, badInput("no Prometheus: set PROMETHEUS_URL or pass --prometheus http://host:9090")
	}
	prom, err := signals.NewPrometheus(popts)
	if err != nil {
		return nil, &exitError{code: exitBadInput, err: err}
	}
	var queries []string
	for _, s := range plan.Signals {
		queries = append(queries, plan.ResolveQuery(s.Query))
		if s.Relative {
			queries = append(queries, plan.ResolveQuery(s.BaselineQuery))
		}
	}
	if err := prom.Check(ctx, queries); err != nil {
		return nil, &exitError{code: exitBadInput, err: fmt.Errorf("the plan's queries do not all run against %s; fix them before the release:\n%w", promURL, err)}
	}
	var list []preflight.Check
	if o.preflight != "" {
		if list, err = preflight.LoadChecks(o.preflight); err != nil {
			return nil, &exitError{code: exitBadInput, err: err}
		}
	}
	pp := &production{prom: prom, promURL: promURL, stable: stableURL, canary: canaryURL, preflight: list, kube: kc}
	if o.kube.httpRoute != "" {
		rt, err := openHTTPRoute(ctx, kc, o.kube, log)
		if err != nil {
			return nil, err
		}
		pp.traffic, pp.where = rt, "HTTPRoute "+rt.String()
		return pp, nil
	}
	if onIngress {
		ing, observer, err := openIngress(ctx, kc, o.kube, plan, prom, log)
		if err != nil {
			return nil, err
		}
		pp.traffic, pp.observer, pp.where = ing, observer, "Ingress "+ing.String()
		return pp, nil
	}
	router := traffic.NewLocal(stableURL, canaryURL)
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return nil, &exitError{code: exitBadInput, err: fmt.Errorf("router --listen %s: %w", o.listen, err)}
	}
	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	pp.traffic, pp.router, pp.routerLn, pp.srv = router, router, ln, srv
	pp.where = fmt.Sprintf("canarybot's router on %s (stable %s, canary %s)", ln.Addr(), stableURL.Host, canaryURL.Host)
	return pp, nil
}

// Close stops the router, if it is canarybot's.
func (pp *production) Close() {
	if pp.srv != nil {
		pp.srv.Close()
	}
}

// canaryURL is the canary backend's URL, "" when not given.
func (pp *production) canaryURL() string {
	if pp.canary == nil {
		return ""
	}
	return pp.canary.String()
}

// engine builds the runner for one release on these parts.
func (pp *production) engine(p *parts, plan *rollout.Plan, ev *evidence.Dir, version string, notifier rollout.Notifier, log *slog.Logger) *hostedEngine {
	gates := map[rollout.StepName]rollout.Gate{}
	if pp.canary != nil {
		// The micro blast radius probes the canary backend directly.
		gates[rollout.StepBlast] = &checks.BlastGate{Options: checks.BlastOptions{URL: pp.canary.String(), N: checks.DefaultBlastN}, Evidence: ev}
	}
	maps.Copy(gates, pp.wiring.onCluster(pp.kube).gates(ev, pp.canaryURL(), pp.prom, pp.preflight))
	rn := &rollout.Runner{
		Machine:   &rollout.Machine{Plan: plan, Render: p.render},
		Metrics:   pp.prom,
		Alerts:    pp.prom,
		Traffic:   pp.traffic,
		Observer:  pp.observer,
		Notifier:  notifier,
		Evidence:  ev,
		Store:     p.store,
		Gates:     gates,
		Clock:     clock.Real{},
		Inbox:     p.store,
		InboxPoll: time.Second,
		Log:       log,
	}
	return &hostedEngine{Runner: rn, Evidence: ev, Expect: func(r *rollout.Release) error { return expectEvidence(ev, plan, r, gates) }}
}

// hostedEngine is a runner for one release and what goes with it.
type hostedEngine struct {
	Runner   *rollout.Runner
	Evidence *evidence.Dir
	// Expect records in the manifest which evidence the release will
	// produce; called before and after the run.
	Expect func(r *rollout.Release) error
}

// Errors of engineHost.Start; the serve handler answers each politely.
var (
	// errEngineBusy: a release is in progress; one at a time.
	errEngineBusy = errors.New("a release is already in progress")
	// errNotHosting: Run is not active (not started yet, or this replica
	// is not the leader).
	errNotHosting = errors.New("this canarybot does not run releases right now")
)

// engineHost runs the release engine inside `canarybot serve`: one release
// at a time, started from Slack, driven in the background until it ends,
// and resumed when serve restarts. It is deliberately small (Run, Start,
// Active, Wake) so that leader election can wrap it: only the leader calls
// Run, and Start refuses while Run is not active.
type engineHost struct {
	store interface {
		Load(ctx context.Context, id string) (*rollout.Release, error)
		LastHeartbeat(ctx context.Context, id string) (time.Time, error)
	}
	// build makes the engine of a release (its ID and version).
	build func(ctx context.Context, id, version string) (*hostedEngine, error)
	log   *slog.Logger
	// takeover is how long a release's previous engine must have been
	// silent before this host resumes it: after a restart that is our own
	// earlier self, but it may be a `canarybot run` still driving it.
	takeover time.Duration
	// recheck is how often Run looks for a release to resume.
	recheck time.Duration
	metrics *engineMetrics

	mu      sync.Mutex
	hosting context.Context // Run's context while it runs
	active  *activeRelease
	wake    chan struct{}
	wg      sync.WaitGroup
}

type activeRelease struct {
	id, version string
	engine      *hostedEngine
}

func newEngineHost(st *parts, build func(ctx context.Context, id, version string) (*hostedEngine, error), log *slog.Logger) *engineHost {
	return &engineHost{store: st.store, build: build, log: log, takeover: engineSilence, recheck: 5 * time.Second,
		metrics: newEngineMetrics(), wake: make(chan struct{}, 1)}
}

// Run hosts releases until ctx ends: it resumes the release in progress in
// the state file (once no other engine drives it) and lets Start begin new
// ones. It returns after the running release's engine has stopped; the
// release stays where it was, for the next Run to resume.
func (h *engineHost) Run(ctx context.Context) error {
	h.mu.Lock()
	if h.hosting != nil {
		h.mu.Unlock()
		return errors.New("engine host is already running")
	}
	h.hosting = ctx
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.hosting = nil
		h.mu.Unlock()
		h.wg.Wait()
	}()
	failures := 0
	for {
		if err := h.resume(ctx); err != nil {
			failures++
			h.log.Error("cannot resume the release in progress", "err", err)
		} else {
			failures = 0
		}
		wait := h.recheck << min(failures, 6)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// resume starts driving the state file's current release if it is in
// progress, nobody here drives it, and its last engine has gone silent.
func (h *engineHost) resume(ctx context.Context) error {
	if _, busy := h.Active(); busy {
		return nil
	}
	r, err := h.store.Load(ctx, "")
	if errors.Is(err, rollout.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if r.Phase.Terminal() {
		return nil
	}
	seen, err := h.store.LastHeartbeat(ctx, r.ID)
	if err != nil {
		return err
	}
	if !seen.IsZero() && time.Since(seen) < h.takeover {
		h.log.Info("release in progress is driven by another engine, or was until lately; waiting before resuming it",
			"release", r.ID, "last_heartbeat", seen, "takeover_after", h.takeover)
		return nil
	}
	h.log.Info("resuming the release in progress", "release", r.ID, "phase", r.Phase, "stage", r.CurrentStage(), "weight", r.Weight)
	_, err = h.launch(ctx, r.ID, r.Version, nil)
	return err
}

// Start begins a release of version with ic as its Incident Commander and
// drives it in the background. Its ID is the version, or version-2, -3, …
// when the state file already holds ended releases of it.
func (h *engineHost) Start(ctx context.Context, version, ic string) (*rollout.Release, error) {
	if cur, err := h.store.Load(ctx, ""); err == nil && !cur.Phase.Terminal() {
		return cur, fmt.Errorf("%w: %s is in phase %s (IC %s)", errEngineBusy, cur.Version, cur.Phase, cur.IC)
	} else if err != nil && !errors.Is(err, rollout.ErrNotFound) {
		return nil, err
	}
	id, err := freeReleaseID(ctx, h.store, version)
	if err != nil {
		return nil, err
	}
	return h.launch(ctx, id, version, func(ctx context.Context, e *hostedEngine) (*rollout.Release, error) {
		return e.Runner.Start(ctx, id, version, ic, time.Time{})
	})
}

// freeReleaseID is the ID of a new release of version: the version, or
// version-2, -3, … when the store holds (or held, and dropped) a release
// under it.
func freeReleaseID(ctx context.Context, st interface {
	Load(ctx context.Context, id string) (*rollout.Release, error)
}, version string) (string, error) {
	id := version
	for n := 2; ; n++ {
		_, err := st.Load(ctx, id)
		if errors.Is(err, rollout.ErrNotFound) {
			return id, nil
		}
		// A dropped release's ID stays taken (store.ErrPruned).
		if err != nil && !errors.Is(err, store.ErrPruned) {
			return "", err
		}
		id = fmt.Sprintf("%s-%d", version, n)
	}
}

// launch builds the engine of a release, creates the release with create
// (nil: it exists), and drives it until it ends or Run's context does.
func (h *engineHost) launch(ctx context.Context, id, version string, create func(context.Context, *hostedEngine) (*rollout.Release, error)) (*rollout.Release, error) {
	// The slot is taken before the engine is built, and released if that
	// fails: creating a release already posts to Slack, which may be slow,
	// and Active must not wait for it.
	h.mu.Lock()
	if h.hosting == nil {
		h.mu.Unlock()
		return nil, errNotHosting
	}
	if h.active != nil {
		v := h.active.version
		h.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", errEngineBusy, v)
	}
	slot := &activeRelease{id: id, version: version}
	h.active = slot
	hosting := h.hosting
	h.wg.Add(1)
	h.mu.Unlock()
	release := func() {
		h.mu.Lock()
		h.active = nil
		h.mu.Unlock()
		h.wg.Done()
	}
	r, e, err := h.prepare(ctx, id, version, create)
	if err != nil {
		release()
		return nil, err
	}
	h.mu.Lock()
	slot.engine = e
	h.mu.Unlock()
	go func() {
		defer release()
		r, err := h.drive(hosting, e, id)
		if err != nil {
			if hosting.Err() == nil {
				h.log.Error("release engine stopped", "release", id, "err", err)
			}
			return
		}
		if err := e.Expect(r); err != nil {
			h.log.Error("recording the expected evidence failed", "release", id, "err", err)
		}
		h.log.Info("release ended", "release", id, "phase", r.Phase)
	}()
	return r, nil
}

// drive runs the release's engine until the release ends or ctx does. A
// save that conflicts means the release was written by someone else since
// it was loaded: with several replicas, a write the previous leader had in
// flight when it lost the Lease. The stored state is then the truth, so
// the engine loads it again and goes on from there.
func (h *engineHost) drive(ctx context.Context, e *hostedEngine, id string) (*rollout.Release, error) {
	backoff := 100 * time.Millisecond
	for {
		r, err := e.Runner.Run(ctx, id)
		if !errors.Is(err, rollout.ErrConflict) || ctx.Err() != nil {
			return r, err
		}
		h.log.Warn("the release changed under this engine; resuming from the stored state", "release", id, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(backoff):
		}
		// Conflicts in a row mean another engine keeps driving it (a
		// `canarybot run` on the same state?): slow down, and say so.
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (h *engineHost) prepare(ctx context.Context, id, version string, create func(context.Context, *hostedEngine) (*rollout.Release, error)) (*rollout.Release, *hostedEngine, error) {
	e, err := h.build(ctx, id, version)
	if err != nil {
		return nil, nil, err
	}
	e.Runner.Wake = h.wake
	e.Runner.Notifier = h.metrics.wrap(e.Runner.Notifier)
	var r *rollout.Release
	if create != nil {
		r, err = create(ctx, e)
	} else {
		r, err = e.Runner.Store.Load(ctx, id)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := e.Expect(r); err != nil {
		return nil, nil, err
	}
	return r, e, nil
}

// Active names the release this host drives right now.
func (h *engineHost) Active() (id string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.active == nil {
		return "", false
	}
	return h.active.id, true
}

// Evidence is the evidence directory of the release this host drives: a
// write from the serve process must go through it, not a second Dir.
func (h *engineHost) Evidence(id string) (*evidence.Dir, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.active == nil || h.active.id != id || h.active.engine == nil {
		return nil, false
	}
	return h.active.engine.Evidence, true
}

// Wake makes the running engine look at its inbox now, rather than at its
// next poll.
func (h *engineHost) Wake() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// engineMetrics are the engine's figures on /metrics, counted from the
// events it announces.
type engineMetrics struct {
	decisions *prometheus.CounterVec
	weight    prometheus.Gauge
	rollbacks prometheus.Counter
	mu        sync.Mutex
	// seen are the keys counted of the release last announced.
	release string
	seen    map[string]bool
}

func newEngineMetrics() *engineMetrics {
	return &engineMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "canarybot_decisions_total",
			Help: "The engine's decisions at each tick, by kind (Proceed, Hold, Rollback, ...).",
		}, []string{"decision"}),
		weight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "canarybot_canary_weight_percent",
			Help: "The canary weight the engine last announced.",
		}),
		rollbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "canarybot_rollbacks_total",
			Help: "Releases rolled back.",
		}),
		seen: map[string]bool{},
	}
}

func (m *engineMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.decisions, m.weight, m.rollbacks}
}

func (m *engineMetrics) wrap(n rollout.Notifier) rollout.Notifier {
	return &meteredNotifier{next: n, m: m}
}

type meteredNotifier struct {
	next rollout.Notifier
	m    *engineMetrics
}

// Notify counts an event once, when it has been announced: the engine
// repeats an event whose announcement failed.
func (n *meteredNotifier) Notify(ctx context.Context, key string, ev rollout.Event) error {
	if n.next != nil {
		if err := n.next.Notify(ctx, key, ev); err != nil {
			return err
		}
	}
	n.m.mu.Lock()
	defer n.m.mu.Unlock()
	if ev.Release != n.m.release {
		n.m.release, n.m.seen = ev.Release, map[string]bool{}
	}
	if n.m.seen[key] {
		return nil
	}
	n.m.seen[key] = true
	n.m.weight.Set(float64(ev.Weight))
	switch ev.Kind {
	case rollout.EventRow:
		if ev.Row != nil && ev.Row.Decision.Kind != "" {
			n.m.decisions.WithLabelValues(string(ev.Row.Decision.Kind)).Inc()
		}
	case rollout.EventRollback:
		n.m.rollbacks.Inc()
	}
	return nil
}
