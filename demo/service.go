// Package demo is the laptop stand-in of production that `canarybot demo`
// releases into: a small trading service that imitates the runbook's Node.js
// service ("spark") closely enough for the default signal queries and alert
// rules to read it, and a load generator that drives it through the router.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The two tracks a Service can play. Every metric carries the track as its
// `track` label, which is what the default signal queries select on.
const (
	TrackStable = "stable"
	TrackCanary = "canary"
)

// Fault is a defect the demo can plant in the canary to show a rollback.
type Fault string

const (
	FaultNone    Fault = "none"
	FaultLatency Fault = "latency" // +250 ms on every API request: API P95 breaches
	FaultErrors  Fault = "errors"  // 8 % of API requests answer 503: 5xx rate breaches
	// FaultTrigger leaves the 8 signals clean and pushes outbox_lag_seconds
	// to ~45 s, which fires the OutboxLagCritical rule (auto_rollback="true").
	FaultTrigger Fault = "trigger"
)

// Faults lists the valid faults in the order they are documented.
func Faults() []Fault { return []Fault{FaultNone, FaultLatency, FaultErrors, FaultTrigger} }

// ErrUnknownFault is returned (wrapped) by ParseFault.
var ErrUnknownFault = errors.New("unknown fault")

// ParseFault reads a fault name as given on the command line. The empty
// string means no fault.
func ParseFault(s string) (Fault, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	if name == "" {
		return FaultNone, nil
	}
	valid := make([]string, 0, len(Faults()))
	for _, f := range Faults() {
		if Fault(name) == f {
			return f, nil
		}
		valid = append(valid, string(f))
	}
	return "", fmt.Errorf("%w %q: use one of %s", ErrUnknownFault, s, strings.Join(valid, ", "))
}

// Routes as they appear in the `route` label.
const (
	routeQuote     = "/api/quote"
	routeOrder     = "/api/exec/order"
	routeCSPReport = "/api/csp-report"
	routeTickAlign = "/api/tick-align"
)

// Simulated behaviour of the clean service. The latency is log-normal with
// a median of 133 ms and sigma 0.06, a true p95 of ~147 ms, which
// histogram_quantile reads as ~149 ms, like the runbook's example table
// (142-156 ms); a true p95 just above the 150 ms bucket bound would read
// 160 ms and more, as the interpolation spreads it over the sparse
// 150-175 ms bucket. The histogram observes exactly these simulated values
// (see api), so the reading does not depend on the machine's load.
const (
	latencyMedian  = 133 * time.Millisecond
	latencySigma   = 0.06
	faultLatency   = 250 * time.Millisecond
	faultErrorRate = 0.08
	// riskBlockProb is per order: ~0.01 blocks/min at the demo's order
	// rate, the runbook's example reading. Blocks are rare events read over
	// a short window: at 0.1/min (the old value) two blocks fell into one
	// 4-minute window often enough over a release to read 0.50/min — the
	// bound — and roll a clean demo back by chance.
	riskBlockProb = 0.00003
	// cspPerRequest is the simulated browser CSP report rate: every API
	// request adds it, on both tracks alike (see requestCounts), so the
	// canary/stable per-request ratio the CSP signal compares is exactly
	// equal when the canary is clean; only real reports to
	// /api/csp-report move it.
	cspPerRequest = 0.02
	gcEvery       = 20 // requests per simulated GC pause
	wsInterval    = 100 * time.Millisecond
	gaugeInterval = 100 * time.Millisecond
	// idleGCEvery ticks of the gauge loop observe a minor GC without any
	// request: at stage 1 the canary sees ~1 % of the traffic, and a GC
	// signal that only moved with requests would read NoData there.
	idleGCEvery = 5
	// maxIdempotencyKeys bounds the remembered keys; the oldest go first.
	// At the demo's order rate that is hours of keys.
	maxIdempotencyKeys = 1 << 16
	wsWriteTimeout     = 2 * time.Second
	maxBody            = 1 << 20
	// cspReportRate and cspReportBurst bound the reports one instance
	// takes: a browser stuck in a violation loop, or a flood, must not
	// turn the report endpoint into a denial of service. The runbook's
	// flood (50 reports, 10 at a time) sees 429s.
	cspReportRate  = 20 // per second
	cspReportBurst = 10
)

// Content-Security-Policy the service sends, with its report endpoint.
const cspHeader = "default-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'; report-uri " + routeCSPReport

type instrument struct {
	symbol string
	price  float64
}

// instruments are what the service quotes, with their start prices, in
// symbol order.
func instruments() []instrument {
	return []instrument{{"BTCUSDT", 67000}, {"ETHUSDT", 3500}, {"SOLUSDT", 150}}
}

// Service is one instance (one track) of the demo trading service. It is an
// http.Handler; its metrics are on GET /metrics from its own registry.
type Service struct {
	track string
	mux   *http.ServeMux
	reg   *prometheus.Registry
	fault atomic.Pointer[Fault]
	// defects are the protections stripped from this instance (nil: none).
	defects atomic.Pointer[Defects]

	// timeScale multiplies the simulated sleeps (1 in production, 0 in
	// tests). The histogram observes the unscaled simulated latency, so
	// what the metrics say does not depend on it.
	timeScale float64
	// riskProb holds the float64 bits of the per-order risk-block
	// probability (riskBlockProb unless SetRiskBlockProbability changed it).
	riskProb atomic.Uint64
	// sigma is latencySigma; tests set 0 to make every latency exact.
	sigma float64

	rngMu  sync.Mutex
	rng    *rand.Rand
	prices map[string]float64

	keysMu sync.Mutex
	keys   map[string]struct{}
	order  []string // ring of keys in insertion order, for eviction
	next   int

	requests atomic.Uint64 // instrumented API requests, for GC pacing

	cspLimit *tokenBucket

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	reqDuration   *prometheus.HistogramVec
	counts        *requestCounts
	wsStaleness   prometheus.Histogram
	riskBlocks    prometheus.Counter
	idempRequests prometheus.Counter
	idempConflict prometheus.Counter
	eventLoopLag  prometheus.Gauge
	gcDuration    *prometheus.HistogramVec
	outboxLag     prometheus.Gauge
}

// NewService starts an instance of the given track ("stable" or "canary")
// whose simulated randomness is drawn from seed. Close stops it.
func NewService(track string, seed int64) *Service {
	if track != TrackStable && track != TrackCanary {
		panic(fmt.Sprintf("demo.NewService: track %q: use %q or %q", track, TrackStable, TrackCanary))
	}
	s := &Service{
		track:     track,
		mux:       http.NewServeMux(),
		reg:       prometheus.NewRegistry(),
		timeScale: 1,
		sigma:     latencySigma,
		rng:       rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)),
		prices:    make(map[string]float64),
		keys:      make(map[string]struct{}),
		order:     make([]string, maxIdempotencyKeys),
		done:      make(chan struct{}),
		cspLimit:  newTokenBucket(cspReportRate, cspReportBurst, time.Now),
	}
	s.riskProb.Store(math.Float64bits(riskBlockProb))

	for _, in := range instruments() {
		s.prices[in.symbol] = in.price
	}
	none := FaultNone
	s.fault.Store(&none)
	s.registerMetrics()

	s.mux.HandleFunc("/api/quote", s.api(routeQuote, http.MethodGet, true, s.quote))
	s.mux.HandleFunc("/api/exec/order", s.api(routeOrder, http.MethodPost, true, s.placeOrder))
	s.mux.HandleFunc("/api/csp-report", s.api(routeCSPReport, http.MethodPost, false, s.cspReport))
	s.mux.HandleFunc(routeTickAlign, s.tickAlign)
	s.mux.HandleFunc("/ws", s.ws)
	s.mux.HandleFunc("/healthz", s.healthz)
	s.mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))

	s.updateGauges()
	s.wg.Add(1)
	go s.gaugeLoop()
	return s
}

func (s *Service) registerMetrics() {
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"track": s.track}, s.reg)
	f := promauto.With(reg)
	s.counts = newRequestCounts()
	reg.MustRegister(s.counts)
	s.reqDuration = f.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds",
		Help: "API request duration.",
		// Dense around 100-400 ms so histogram_quantile gives a p95 that
		// tells 150 ms from 200 ms.
		Buckets: []float64{.005, .01, .025, .05, .075, .1, .125, .15, .175, .2, .25, .3, .4, .5, .75, 1, 2.5},
	}, []string{"route"})
	s.wsStaleness = f.NewHistogram(prometheus.HistogramOpts{
		Name:    "ws_message_staleness_seconds",
		Help:    "Age of the price feed data in each WebSocket message when sent.",
		Buckets: []float64{1, 2, 5, 8, 10, 12, 15, 20, 25, 30, 45, 60, 120},
	})
	s.riskBlocks = f.NewCounter(prometheus.CounterOpts{
		Name: "risk_blocks_total",
		Help: "Orders blocked by the pre-trade risk check.",
	})
	s.idempRequests = f.NewCounter(prometheus.CounterOpts{
		Name: "idempotency_requests_total",
		Help: "Orders that carried an idempotency key.",
	})
	s.idempConflict = f.NewCounter(prometheus.CounterOpts{
		Name: "idempotency_conflicts_total",
		Help: "Orders whose idempotency key was already used.",
	})
	s.eventLoopLag = f.NewGauge(prometheus.GaugeOpts{
		Name: "nodejs_eventloop_lag_seconds",
		Help: "Simulated event-loop lag.",
	})
	s.gcDuration = f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "nodejs_gc_duration_seconds",
		Help:    "Simulated garbage-collection pauses.",
		Buckets: []float64{.001, .002, .005, .01, .02, .05, .1},
	}, []string{"kind"})
	s.outboxLag = f.NewGauge(prometheus.GaugeOpts{
		Name: "outbox_lag_seconds",
		Help: "Age of the oldest unpublished outbox event.",
	})

	// Series that exist from the first scrape, so rate() has a start
	// point and denominators are not empty before the first error.
	for _, rc := range []struct{ route, code string }{
		{routeQuote, "200"}, {routeOrder, "201"}, {routeCSPReport, "204"},
	} {
		s.counts.add(rc.code, rc.route, 0, 0)
		s.reqDuration.WithLabelValues(rc.route)
	}
	s.gcDuration.WithLabelValues("minor")
	s.gcDuration.WithLabelValues("major")
}

// ServeHTTP serves the service's endpoints. Every response names its track
// and carries the Content-Security-Policy.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", cspHeader)
	h.Set("X-Canary-Track", s.track)
	s.mux.ServeHTTP(w, r)
}

// SetFault plants f (FaultNone removes it). Safe to call concurrently with
// requests.
// SetRiskBlockProbability sets the chance that an order is risk-blocked.
// The default suits the demo's virtual time; a test in real time, where one
// block in a short window already reads as several per minute, sets 0.
func (s *Service) SetRiskBlockProbability(p float64) {
	s.riskProb.Store(math.Float64bits(p))
}

func (s *Service) SetFault(f Fault) {
	s.fault.Store(&f)
	// The trigger must show at the next scrape, not 100 ms later.
	s.updateGauges()
}

// Close stops the background goroutines and ends open WebSocket sessions.
// It waits for the gauge loop only: sessions end on their own once they see
// the close.
func (s *Service) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.wg.Wait()
}

func (s *Service) currentFault() Fault { return *s.fault.Load() }

func (s *Service) gaugeLoop() {
	defer s.wg.Done()
	t := time.NewTicker(gaugeInterval)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.updateGauges()
			if n%idleGCEvery == 0 {
				s.gcDuration.WithLabelValues("minor").Observe(s.gcPause())
			}
		}
	}
}

// updateGauges sets the sampled gauges: event-loop lag ~10-14 ms and the
// outbox lag ~0.5-2 s, or ~45 s under FaultTrigger.
func (s *Service) updateGauges() {
	// Under the lock from reading the fault to setting the gauge, so the
	// loop cannot overwrite what SetFault just set with a value drawn for
	// the fault before.
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	s.eventLoopLag.Set(0.010 + 0.004*s.rng.Float64())
	outbox := 0.5 + 1.5*s.rng.Float64()
	if s.currentFault() == FaultTrigger {
		outbox = 44 + 2*s.rng.Float64()
	}
	s.outboxLag.Set(outbox)
}

func (s *Service) gcPause() float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return 0.006 + 0.004*s.rng.Float64()
}

// apiResult is what an API endpoint answers: a status and a JSON body (nil
// for none).
type apiResult struct {
	status int
	body   any
}

// api wraps an endpoint with what every API request goes through: the
// method check, the simulated latency, the planted faults (when simulated
// is true) and the request metrics.
//
// The clean service never answers 5xx: at stage 1 the canary sees ~1 % of
// the traffic, and one 5xx among the few requests of a thin window would
// read as a breach of the 1 % threshold that nothing caused.
func (s *Service) api(route, method string, simulated bool, fn func(*http.Request) apiResult) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			res := apiResult{http.StatusMethodNotAllowed, errorBody(fmt.Sprintf("%s %s: use %s", r.Method, route, method))}
			writeJSON(w, res)
			s.observe(route, res.status, 0)
			return
		}
		// Read the body first: the server notices a client leaving
		// during the sleep only once the body is consumed.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxBody))
		fault := s.currentFault()
		var simulatedLatency time.Duration
		failed := false
		if simulated {
			simulatedLatency, failed = s.sample(fault)
			sleep := time.Duration(float64(simulatedLatency) * s.timeScale)
			if sleep > 0 {
				t := time.NewTimer(sleep)
				select {
				case <-t.C:
				case <-r.Context().Done():
					// Nobody is left to answer; an abandoned request is
					// neither a success nor a server error.
					t.Stop()
					return
				case <-s.done:
					t.Stop()
					failed = true
				}
			}
		}

		res := apiResult{http.StatusServiceUnavailable, errorBody("upstream unavailable, retry later")}
		if !failed {
			res = fn(r)
		}
		writeJSON(w, res)

		// The histogram observes the simulated latency (with the fault's
		// +250 ms), not the wall time this request took. The demo plays a
		// fast production service on a laptop or a 2-core CI runner that
		// also runs the router, the load, a TSDB and the engine, maybe
		// under -race: there, scheduling and handler time add tens of ms
		// at random, enough to push a clean canary's p95 over the 200 ms
		// bound and roll back a release for a fault that was never
		// planted. Observing the drawn value keeps the signal a function
		// of the fault alone; the sleep above still makes clients feel it.
		// Requests outside the simulation (wrong method, CSP reports)
		// observe 0: the simulated service answers them at once.
		s.observe(route, res.status, simulatedLatency)
		if simulated && s.requests.Add(1)%gcEvery == 0 {
			kind := "minor"
			if s.chance(0.1) {
				kind = "major"
			}
			s.gcDuration.WithLabelValues(kind).Observe(s.gcPause())
		}
	}
}

// observe records one answered API request.
func (s *Service) observe(route string, status int, d time.Duration) {
	s.reqDuration.WithLabelValues(route).Observe(d.Seconds())
	s.counts.add(strconv.Itoa(status), route, 1, 0)
}

// sample draws one request's latency and whether it fails, under fault.
func (s *Service) sample(fault Fault) (time.Duration, bool) {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	d := time.Duration(float64(latencyMedian) * math.Exp(s.sigma*s.rng.NormFloat64()))
	failed := false
	switch fault {
	case FaultLatency:
		d += faultLatency
	case FaultErrors:
		failed = s.rng.Float64() < faultErrorRate
	}
	return d, failed
}

func (s *Service) chance(p float64) bool {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64() < p
}

// price moves sym's price by a small random step and returns it.
func (s *Service) price(sym string) (float64, bool) {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	p, ok := s.prices[sym]
	if !ok {
		return 0, false
	}
	p *= 1 + 0.0005*s.rng.NormFloat64()
	s.prices[sym] = p
	return p, true
}

func knownSymbols() string {
	var names []string
	for _, in := range instruments() {
		names = append(names, in.symbol)
	}
	return strings.Join(names, ", ")
}

type quote struct {
	Symbol string    `json:"symbol"`
	Price  float64   `json:"price"`
	Bid    float64   `json:"bid"`
	Ask    float64   `json:"ask"`
	Track  string    `json:"track"`
	Time   time.Time `json:"time"`
}

func (s *Service) quote(r *http.Request) apiResult {
	sym := strings.ToUpper(r.URL.Query().Get("symbol"))
	if sym == "" {
		return apiResult{http.StatusBadRequest, errorBody("missing query parameter symbol: use one of " + knownSymbols())}
	}
	p, ok := s.price(sym)
	if !ok {
		return apiResult{http.StatusNotFound, errorBody(fmt.Sprintf("unknown symbol %q: use one of %s", sym, knownSymbols()))}
	}
	spread := p * 0.0001
	return apiResult{http.StatusOK, quote{Symbol: sym, Price: round2(p), Bid: round2(p - spread), Ask: round2(p + spread), Track: s.track, Time: time.Now().UTC()}}
}

// IdempotencyHeader is the header an order must carry.
const IdempotencyHeader = "X-Idempotency-Key"

type orderResult struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
	Track   string `json:"track"`
}

// placeOrder accepts an order once per idempotency key: the first use is
// 201, a repeat is 409 and counts a conflict. A rare order is blocked by
// the risk check (422); its key is spent all the same.
func (s *Service) placeOrder(r *http.Request) apiResult {
	key := strings.TrimSpace(r.Header.Get(IdempotencyHeader))
	if key == "" {
		return apiResult{http.StatusBadRequest, errorBody("missing header " + IdempotencyHeader + ": send a unique key per order")}
	}
	s.idempRequests.Inc()
	if !s.remember(key) && !s.currentDefects().NoIdempotency {
		s.idempConflict.Inc()
		return apiResult{http.StatusConflict, errorBody(fmt.Sprintf("idempotency key %q was already used", key))}
	}
	if s.chance(math.Float64frombits(s.riskProb.Load())) {
		s.riskBlocks.Inc()
		return apiResult{http.StatusUnprocessableEntity, orderResult{OrderID: key, Status: "risk_blocked", Track: s.track}}
	}
	return apiResult{http.StatusCreated, orderResult{OrderID: key, Status: "accepted", Track: s.track}}
}

// remember records key and reports whether it was new.
func (s *Service) remember(key string) bool {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if _, seen := s.keys[key]; seen {
		return false
	}
	if old := s.order[s.next]; old != "" {
		delete(s.keys, old)
	}
	s.order[s.next] = key
	s.next = (s.next + 1) % len(s.order)
	s.keys[key] = struct{}{}
	return true
}

// cspReport takes a browser's violation report; each one counts, on top
// of the simulated rate. Reports over the rate limit are answered 429 and
// not counted as violations: they were never read.
func (s *Service) cspReport(*http.Request) apiResult {
	if !s.currentDefects().NoRateLimit && !s.cspLimit.allow() {
		return apiResult{http.StatusTooManyRequests, errorBody(fmt.Sprintf("too many CSP reports: at most %d per second, bursts of %d", cspReportRate, cspReportBurst))}
	}
	s.counts.add(strconv.Itoa(http.StatusNoContent), routeCSPReport, 0, 1)
	return apiResult{status: http.StatusNoContent}
}

func (s *Service) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "ok %s\n", s.track)
}

type priceMessage struct {
	Type    string    `json:"type"`
	Symbol  string    `json:"symbol"`
	Price   float64   `json:"price"`
	FeedAge float64   `json:"feed_age_s"`
	Track   string    `json:"track"`
	Time    time.Time `json:"time"`
}

// ws pushes a price message every 100 ms until the client goes away. Each
// message carries a simulated feed age of 8-13 s, observed as staleness
// when it is sent.
func (s *Service) ws(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the client.
	}
	defer c.CloseNow()
	if s.currentDefects().DropWebSocket {
		return // CloseNow: the connection ends without a close frame or a message.
	}
	// The client sends nothing; CloseRead answers its close frame and
	// cancels ctx when it leaves.
	ctx := c.CloseRead(context.Background())
	t := time.NewTicker(wsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			c.Close(websocket.StatusGoingAway, "service stopping")
			return
		case <-t.C:
		}
		p, _ := s.price("BTCUSDT")
		s.rngMu.Lock()
		age := 8 + 5*s.rng.Float64()
		s.rngMu.Unlock()
		msg, err := json.Marshal(priceMessage{Type: "price", Symbol: "BTCUSDT", Price: round2(p), FeedAge: age, Track: s.track, Time: time.Now().UTC()})
		if err != nil {
			return
		}
		wctx, cancel := context.WithTimeout(ctx, wsWriteTimeout)
		err = c.Write(wctx, websocket.MessageText, msg)
		cancel()
		if err != nil {
			return
		}
		s.wsStaleness.Observe(age)
	}
}

// tickAlign answers GET /api/tick-align?price=P&tick=T with P aligned to
// the nearest multiple of T, ties away from zero, as {"result":"…"} with
// T's number of decimals. It stands in for the service's money library,
// which the battery's tick vectors test. It is served outside api(): the
// battery's probes are not traffic, and a battery run must leave the
// canary's signals as they were.
func (s *Service) tickAlign(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeJSON(w, apiResult{http.StatusMethodNotAllowed, errorBody(fmt.Sprintf("%s %s: use GET", r.Method, routeTickAlign))})
		return
	}
	q := r.URL.Query()
	price, err := parseDecimal(q.Get("price"))
	if err != nil {
		writeJSON(w, apiResult{http.StatusBadRequest, errorBody("query parameter price: " + err.Error())})
		return
	}
	tick, err := parseDecimal(q.Get("tick"))
	if err == nil && tick.unscaled.Sign() <= 0 {
		err = errors.New("must be more than 0")
	}
	if err != nil {
		writeJSON(w, apiResult{http.StatusBadRequest, errorBody("query parameter tick: " + err.Error())})
		return
	}
	writeJSON(w, apiResult{http.StatusOK, map[string]string{"result": alignToTick(price, tick).String()}})
}

// decimal is unscaled × 10^-scale, exactly: prices never pass through
// float64, whose binary fractions turn 1.005 into 1.00499999….
type decimal struct {
	unscaled *big.Int
	scale    int
}

// maxDecimalDigits bounds each side of the point, so a request cannot ask
// for arbitrarily large arithmetic.
const maxDecimalDigits = 40

// parseDecimal reads a plain decimal such as 12345.6789 or -0.5.
func parseDecimal(s string) (decimal, error) {
	if s == "" {
		return decimal{}, errors.New("missing: give a decimal such as 12345.6789")
	}
	digits := strings.TrimLeft(s, "+-")
	if len(s)-len(digits) > 1 {
		return decimal{}, fmt.Errorf("%q is not a plain decimal such as 12345.6789", s)
	}
	whole, frac, hasPoint := strings.Cut(digits, ".")
	if whole == "" || (hasPoint && frac == "") || len(whole) > maxDecimalDigits || len(frac) > maxDecimalDigits ||
		strings.Trim(whole, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" {
		return decimal{}, fmt.Errorf("%q is not a plain decimal such as 12345.6789 (digits, at most one point, at most %d digits each side)", s, maxDecimalDigits)
	}
	u, _ := new(big.Int).SetString(whole+frac, 10)
	if strings.HasPrefix(s, "-") {
		u.Neg(u)
	}
	return decimal{unscaled: u, scale: len(frac)}, nil
}

// alignToTick rounds price to the nearest multiple of tick (tick > 0),
// halves away from zero, with tick's scale.
func alignToTick(price, tick decimal) decimal {
	// Bring both to the finer scale, so the quotient is of integers.
	s := max(price.scale, tick.scale)
	p := new(big.Int).Mul(price.unscaled, pow10(s-price.scale))
	t := new(big.Int).Mul(tick.unscaled, pow10(s-tick.scale))
	q, r := new(big.Int).QuoRem(new(big.Int).Abs(p), t, new(big.Int))
	if r.Lsh(r, 1).Cmp(t) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if p.Sign() < 0 {
		q.Neg(q)
	}
	// q × tick, in tick's own scale.
	return decimal{unscaled: q.Mul(q, tick.unscaled), scale: tick.scale}
}

func pow10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }

func (d decimal) String() string {
	digits := new(big.Int).Abs(d.unscaled).String()
	if d.scale > 0 {
		if len(digits) <= d.scale {
			digits = strings.Repeat("0", d.scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-d.scale] + "." + digits[len(digits)-d.scale:]
	}
	if d.unscaled.Sign() < 0 {
		return "-" + digits
	}
	return digits
}

// tokenBucket is a rate limit: it holds up to burst tokens, refills at rate
// per second, and each allowed call takes one.
type tokenBucket struct {
	rate, burst float64
	now         func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newTokenBucket(rate, burst float64, now func() time.Time) *tokenBucket {
	return &tokenBucket{rate: rate, burst: burst, now: now, tokens: burst, last: now()}
}

// allow takes a token if there is one.
func (b *tokenBucket) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(b.burst, b.tokens+elapsed.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func errorBody(msg string) map[string]string { return map[string]string{"error": msg} }

func writeJSON(w http.ResponseWriter, res apiResult) {
	if res.body == nil {
		w.WriteHeader(res.status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(res.status)
	_ = json.NewEncoder(w).Encode(res.body)
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// requestCounts is http_requests_total and csp_violations_total, by code and
// route. The CSP signal divides one by the other, and at 1 % (or for the
// stable track at 100 %) a window holds a handful of requests: two separate
// counters, bumped one after the other, are read by a scrape now and then
// between the two bumps, and one request more or less in a window of ten
// swings the ratio past its baseline+10 % bound. Here one lock covers the
// counts and the scrape, and csp_violations_total is computed from the very
// request count it is exposed with, series by series, so rate() extrapolates
// both alike and the ratio is exactly cspPerRequest on a clean service.
type requestCounts struct {
	reqDesc, cspDesc *prometheus.Desc

	mu sync.Mutex
	n  map[requestKey]*requestCount
}

type requestKey struct{ code, route string }

type requestCount struct {
	requests uint64
	reports  float64 // CSP reports received, on top of the simulated rate
}

func newRequestCounts() *requestCounts {
	labels := []string{"code", "route"}
	return &requestCounts{
		reqDesc: prometheus.NewDesc("http_requests_total", "API requests by status code and route.", labels, nil),
		cspDesc: prometheus.NewDesc("csp_violations_total",
			"Content-Security-Policy violation reports (simulated browser rate plus received reports), by the code and route of the request they came with.", labels, nil),
		n: make(map[requestKey]*requestCount),
	}
}

// add counts requests and received reports for a code and route; adding
// zeros makes the series exist.
func (c *requestCounts) add(code, route string, requests uint64, reports float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := requestKey{code, route}
	rc, ok := c.n[k]
	if !ok {
		rc = &requestCount{}
		c.n[k] = rc
	}
	rc.requests += requests
	rc.reports += reports
}

func (c *requestCounts) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.reqDesc
	ch <- c.cspDesc
}

func (c *requestCounts) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, rc := range c.n {
		n := float64(rc.requests)
		ch <- prometheus.MustNewConstMetric(c.reqDesc, prometheus.CounterValue, n, k.code, k.route)
		ch <- prometheus.MustNewConstMetric(c.cspDesc, prometheus.CounterValue, cspPerRequest*n+rc.reports, k.code, k.route)
	}
}
