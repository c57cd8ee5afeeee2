package signals

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/config"
)

// scrapeStep is the virtual scrape interval of the fixtures.
const scrapeStep = 15 * time.Second

// epoch is the fixtures' virtual start: any fixed time will do.
func epoch() time.Time { return time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC) }

// traffic is what a fake service sees during one scrape interval. Every
// request takes latency and every WebSocket message is staleness old, so
// the expected quantiles are known.
type traffic struct {
	requests, errors5xx int // per route
	latency             float64
	wsMessages          int
	staleness           float64
	riskBlocks          int
	idemRequests        int
	idemConflicts       int
	cspViolations       int
	eventLoopLag        float64
	gcs                 int
	gcPause             float64
}

// healthy is a service within every runbook threshold.
func healthy() traffic {
	return traffic{
		requests: 40, errors5xx: 0, latency: 0.12,
		wsMessages: 20, staleness: 4,
		idemRequests: 20, cspViolations: 1,
		eventLoopLag: 0.012, gcs: 5, gcPause: 0.008,
	}
}

// service is a fake instance of the runbook's Node.js service: the metric
// names and buckets that prom-client exposes, served by client_golang.
type service struct {
	srv    *httptest.Server
	routes []string

	mu      sync.Mutex // guards traffic
	traffic traffic

	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	staleness prometheus.Histogram
	risk      prometheus.Counter
	idemReqs  prometheus.Counter
	idemConfl prometheus.Counter
	csp       prometheus.Counter
	lag       prometheus.Gauge
	gc        *prometheus.HistogramVec
}

func newService(t testing.TB, routes ...string) *service {
	t.Helper()
	if len(routes) == 0 {
		routes = []string{"/api/orders"}
	}
	reg := prometheus.NewRegistry()
	s := &service{
		routes:  routes,
		traffic: healthy(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "Requests.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "Latency.", Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		staleness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ws_message_staleness_seconds", Help: "WS staleness.",
			Buckets: []float64{1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120},
		}),
		risk:      prometheus.NewCounter(prometheus.CounterOpts{Name: "risk_blocks_total", Help: "Risk blocks."}),
		idemReqs:  prometheus.NewCounter(prometheus.CounterOpts{Name: "idempotency_requests_total", Help: "Keyed requests."}),
		idemConfl: prometheus.NewCounter(prometheus.CounterOpts{Name: "idempotency_conflicts_total", Help: "Conflicts."}),
		csp:       prometheus.NewCounter(prometheus.CounterOpts{Name: "csp_violations_total", Help: "CSP reports."}),
		lag:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodejs_eventloop_lag_seconds", Help: "Lag."}),
		gc: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nodejs_gc_duration_seconds", Help: "GC.", Buckets: []float64{0.001, 0.01, 0.1, 1, 2, 5},
		}, []string{"kind"}),
	}
	reg.MustRegister(s.requests, s.duration, s.staleness, s.risk, s.idemReqs, s.idemConfl, s.csp, s.lag, s.gc)
	// Counters start at zero, as prom-client's do after a restart.
	for _, r := range routes {
		s.requests.WithLabelValues(r, "200")
		s.requests.WithLabelValues(r, "500")
	}
	s.srv = httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *service) set(tr traffic) {
	s.mu.Lock()
	s.traffic = tr
	s.mu.Unlock()
}

// step plays one scrape interval of the current traffic.
func (s *service) step() {
	s.mu.Lock()
	tr := s.traffic
	s.mu.Unlock()
	for _, r := range s.routes {
		s.requests.WithLabelValues(r, "200").Add(float64(tr.requests - tr.errors5xx))
		s.requests.WithLabelValues(r, "500").Add(float64(tr.errors5xx))
		h := s.duration.WithLabelValues(r)
		for range tr.requests {
			h.Observe(tr.latency)
		}
	}
	for range tr.wsMessages {
		s.staleness.Observe(tr.staleness)
	}
	s.risk.Add(float64(tr.riskBlocks))
	s.idemReqs.Add(float64(tr.idemRequests))
	s.idemConfl.Add(float64(tr.idemConflicts))
	s.csp.Add(float64(tr.cspViolations))
	s.lag.Set(tr.eventLoopLag)
	for range tr.gcs {
		s.gc.WithLabelValues("minor").Observe(tr.gcPause)
	}
}

func (s *service) target(track, instance string) Target {
	return Target{URL: s.srv.URL + "/metrics", Labels: map[string]string{
		"track": track, "service": "spark", "job": "spark", "instance": instance,
	}}
}

// newStore opens an Embedded store on a fake clock at epoch and closes it
// when the test ends.
func newStore(t testing.TB, opts EmbeddedOptions) (*Embedded, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(epoch())
	opts.Clock = clk
	e, err := NewEmbedded(opts)
	if err != nil {
		t.Fatalf("NewEmbedded: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e, clk
}

// play runs n scrape intervals: each service serves one interval of
// traffic, the store scrapes, and the clock moves on. It returns the time of
// the last scrape.
func play(t testing.TB, e *Embedded, clk *clock.Fake, n int, svcs ...*service) time.Time {
	t.Helper()
	var last time.Time
	for range n {
		for _, s := range svcs {
			s.step()
		}
		last = clk.Now()
		if err := e.ScrapeOnce(context.Background()); err != nil {
			t.Fatalf("ScrapeOnce at %s: %v", last, err)
		}
		clk.Advance(scrapeStep)
	}
	return last
}

// defaultQueries are the 8 default signals' queries and the CSP baseline,
// resolved for the default plan's window.
func defaultQueries() []string {
	plan := config.Default()
	var qs []string
	for _, s := range plan.Signals {
		qs = append(qs, plan.ResolveQuery(s.Query))
		if s.BaselineQuery != "" {
			qs = append(qs, plan.ResolveQuery(s.BaselineQuery))
		}
	}
	return qs
}

// stepClock is a virtual clock that moves on by step every time it is read,
// so that each scrape of a running loop is at a new instant.
type stepClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

// staticHandler serves a fixed exposition text.
func staticHandler(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(body))
	})
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
