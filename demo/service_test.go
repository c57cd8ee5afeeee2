package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/canarybot/canarybot/config"
)

// newTestService serves a Service whose simulated sleeps are skipped, so a
// test sends hundreds of requests in milliseconds; the metrics still
// observe the simulated latency.
func newTestService(t *testing.T, track string) (*Service, *httptest.Server) {
	t.Helper()
	s := NewService(track, 42)
	s.timeScale = 0
	s.SetRiskBlockProbability(0)
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	return s, srv
}

func do(t *testing.T, method, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// sample is one line of the text exposition.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrape reads srv's /metrics in the text format.
func scrape(t *testing.T, srv *httptest.Server) []sample {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	var out []sample
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		smp := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			smp.name = line[:i]
			for _, m := range labelRE.FindAllStringSubmatch(line[i+1:j], -1) {
				smp.labels[m[1]] = m[2]
			}
			rest = strings.TrimSpace(line[j+1:])
		} else {
			smp.name, rest, _ = strings.Cut(line, " ")
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			t.Fatalf("exposition line %q: %v", line, err)
		}
		smp.value = v
		out = append(out, smp)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sum adds the values of the samples named name whose labels include want.
func sum(samples []sample, name string, want map[string]string) (float64, bool) {
	total, found := 0.0, false
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		total += s.value
		found = true
	}
	return total, found
}

func TestParseFault(t *testing.T) {
	tests := []struct {
		in      string
		want    Fault
		wantErr bool
	}{
		{"none", FaultNone, false},
		{"", FaultNone, false},
		{"latency", FaultLatency, false},
		{" Errors ", FaultErrors, false},
		{"trigger", FaultTrigger, false},
		{"slow", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFault(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrUnknownFault) {
					t.Fatalf("ParseFault(%q) error = %v, want ErrUnknownFault", tt.in, err)
				}
				for _, f := range Faults() {
					if !strings.Contains(err.Error(), string(f)) {
						t.Errorf("error %q does not list the valid fault %q", err, f)
					}
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseFault(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNewServiceRejectsUnknownTrack(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "canery") {
			t.Fatalf("NewService(\"canery\") recovered %v, want a panic naming the track", r)
		}
	}()
	NewService("canery", 1)
}

func TestServiceEndpoints(t *testing.T) {
	_, srv := newTestService(t, TrackCanary)
	tests := []struct {
		name     string
		method   string
		path     string
		header   map[string]string
		want     int
		wantBody string
	}{
		{"quote", http.MethodGet, "/api/quote?symbol=BTCUSDT", nil, http.StatusOK, `"symbol":"BTCUSDT"`},
		{"quote lower case", http.MethodGet, "/api/quote?symbol=ethusdt", nil, http.StatusOK, `"symbol":"ETHUSDT"`},
		{"quote without symbol", http.MethodGet, "/api/quote", nil, http.StatusBadRequest, "BTCUSDT, ETHUSDT, SOLUSDT"},
		{"quote unknown symbol", http.MethodGet, "/api/quote?symbol=DOGE", nil, http.StatusNotFound, `unknown symbol`},
		{"quote wrong method", http.MethodPost, "/api/quote?symbol=BTCUSDT", nil, http.StatusMethodNotAllowed, "use GET"},
		{"order", http.MethodPost, "/api/exec/order", map[string]string{IdempotencyHeader: "k-1"}, http.StatusCreated, `"status":"accepted"`},
		{"order without key", http.MethodPost, "/api/exec/order", nil, http.StatusBadRequest, IdempotencyHeader},
		{"order wrong method", http.MethodGet, "/api/exec/order", nil, http.StatusMethodNotAllowed, "use POST"},
		{"csp report", http.MethodPost, "/api/csp-report", nil, http.StatusNoContent, ""},
		{"healthz", http.MethodGet, "/healthz", nil, http.StatusOK, "ok canary"},
		{"metrics", http.MethodGet, "/metrics", nil, http.StatusOK, "http_requests_total"},
		{"ws without upgrade", http.MethodGet, "/ws", nil, http.StatusUpgradeRequired, ""},
		{"unknown path", http.MethodGet, "/nope", nil, http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.method, srv.URL+tt.path, tt.header)
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s = %d %q, want %d", tt.method, tt.path, resp.StatusCode, body, tt.want)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("body %q does not contain %q", body, tt.wantBody)
			}
			if got := resp.Header.Get("X-Canary-Track"); got != TrackCanary {
				t.Errorf("X-Canary-Track = %q, want %q", got, TrackCanary)
			}
			if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'self'") {
				t.Errorf("Content-Security-Policy = %q", got)
			}
		})
	}
}

func TestIdempotency(t *testing.T) {
	_, srv := newTestService(t, TrackStable)
	steps := []struct {
		key  string
		want int
	}{
		{"order-a", http.StatusCreated},
		{"order-a", http.StatusConflict},
		{"order-b", http.StatusCreated},
		{"order-a", http.StatusConflict},
	}
	for i, st := range steps {
		resp, body := do(t, http.MethodPost, srv.URL+"/api/exec/order", map[string]string{IdempotencyHeader: st.key})
		if resp.StatusCode != st.want {
			t.Fatalf("step %d: key %q = %d %q, want %d", i, st.key, resp.StatusCode, body, st.want)
		}
	}
	m := scrape(t, srv)
	for name, want := range map[string]float64{"idempotency_requests_total": 4, "idempotency_conflicts_total": 2} {
		if got, _ := sum(m, name, map[string]string{"track": TrackStable}); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestIdempotencyKeysAreBounded(t *testing.T) {
	s := NewService(TrackStable, 1)
	defer s.Close()
	s.order = make([]string, 2)
	for _, k := range []string{"a", "b", "c"} {
		if !s.remember(k) {
			t.Fatalf("remember(%q) = false for a new key", k)
		}
	}
	if s.remember("c") {
		t.Error(`remember("c") = true for a key still remembered`)
	}
	if !s.remember("a") {
		t.Error(`remember("a") = false, want the oldest key forgotten`)
	}
	if len(s.keys) != 2 {
		t.Errorf("%d keys remembered, want the bound 2", len(s.keys))
	}
}

func TestRiskBlock(t *testing.T) {
	s, srv := newTestService(t, TrackCanary)
	s.SetRiskBlockProbability(1)
	resp, body := do(t, http.MethodPost, srv.URL+"/api/exec/order", map[string]string{IdempotencyHeader: "risky"})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "risk_blocked") {
		t.Fatalf("order = %d %q, want 422 risk_blocked", resp.StatusCode, body)
	}
	if got, _ := sum(scrape(t, srv), "risk_blocks_total", nil); got != 1 {
		t.Errorf("risk_blocks_total = %v, want 1", got)
	}
}

// TestMetricsCoverDefaultSignals checks that every series the default
// signal queries select is exposed, from the first scrape, by the track
// the selector asks for.
func TestMetricsCoverDefaultSignals(t *testing.T) {
	services := map[string][]sample{}
	for _, track := range []string{TrackStable, TrackCanary} {
		_, srv := newTestService(t, track)
		services[track] = scrape(t, srv)
	}
	p := parser.NewParser(parser.Options{})
	checked := 0
	for _, sig := range config.DefaultSignals() {
		for _, q := range []string{sig.Query, sig.BaselineQuery} {
			if q == "" {
				continue
			}
			expr, err := p.ParseExpr(strings.ReplaceAll(q, "{{window}}", "1m"))
			if err != nil {
				t.Fatalf("signal %s: %v", sig.Name, err)
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				track := ""
				for _, m := range vs.LabelMatchers {
					if m.Name == "track" && m.Type == labels.MatchEqual {
						track = m.Value
					}
				}
				samples, ok := services[track]
				if !ok {
					t.Errorf("signal %s: selector %s does not select track stable or canary", sig.Name, vs)
					return nil
				}
				if _, found := sum(samples, vs.Name, map[string]string{"track": track}); !found {
					t.Errorf("signal %s: the %s service exposes no %s{track=%q}", sig.Name, track, vs.Name, track)
				}
				checked++
				return nil
			})
		}
	}
	if checked < len(config.DefaultSignals()) {
		t.Fatalf("checked %d selectors, want at least one per signal", checked)
	}
	// The OutboxLagCritical alert rule reads this one.
	if _, found := sum(services[TrackCanary], "outbox_lag_seconds", map[string]string{"track": TrackCanary}); !found {
		t.Error(`no outbox_lag_seconds{track="canary"}`)
	}
}

// sendQuotes sends n quote requests and returns how many answered 503.
func sendQuotes(t *testing.T, srv *httptest.Server, n int) int {
	t.Helper()
	failed := 0
	for range n {
		resp, body := do(t, http.MethodGet, srv.URL+"/api/quote?symbol=BTCUSDT", nil)
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			failed++
		default:
			t.Fatalf("quote = %d %q", resp.StatusCode, body)
		}
	}
	return failed
}

func TestFaults(t *testing.T) {
	const n = 200
	tests := []struct {
		fault      Fault
		slow       bool // every request slower than 250 ms
		errors     bool // some 503s
		outboxHigh bool // outbox lag above the 30 s alert bound
	}{
		{FaultNone, false, false, false},
		{FaultLatency, true, false, false},
		{FaultErrors, false, true, false},
		{FaultTrigger, false, false, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.fault), func(t *testing.T) {
			s, srv := newTestService(t, TrackCanary)
			s.SetFault(tt.fault)
			failed := sendQuotes(t, srv, n)
			m := scrape(t, srv)
			quote := map[string]string{"route": routeQuote}

			count, _ := sum(m, "http_request_duration_seconds_count", quote)
			under250, _ := sum(m, "http_request_duration_seconds_bucket", map[string]string{"route": routeQuote, "le": "0.25"})
			if count != n {
				t.Fatalf("duration count = %v, want %d", count, n)
			}
			if tt.slow && under250 != 0 {
				t.Errorf("%v of %d requests under 250 ms with the latency fault", under250, n)
			}
			if !tt.slow {
				if under250 != n {
					t.Errorf("%v of %d requests under 250 ms, want all", under250, n)
				}
				// The clean p95 sits between the 125 and 175 ms bounds.
				under125, _ := sum(m, "http_request_duration_seconds_bucket", map[string]string{"route": routeQuote, "le": "0.125"})
				under175, _ := sum(m, "http_request_duration_seconds_bucket", map[string]string{"route": routeQuote, "le": "0.175"})
				if under125 > 0.95*n || under175 < 0.95*n {
					t.Errorf("p95 outside 125-175 ms: %v under 125 ms, %v under 175 ms of %d", under125, under175, n)
				}
			}

			got503, _ := sum(m, "http_requests_total", map[string]string{"code": "503"})
			if int(got503) != failed {
				t.Errorf("http_requests_total{code=503} = %v, client saw %d", got503, failed)
			}
			if tt.errors != (failed > 0) || failed > n/2 {
				t.Errorf("%d of %d requests answered 503 with fault %q", failed, n, tt.fault)
			}

			outbox, _ := sum(m, "outbox_lag_seconds", nil)
			if tt.outboxHigh != (outbox > 30) {
				t.Errorf("outbox_lag_seconds = %v with fault %q", outbox, tt.fault)
			}
		})
	}
}

// TestHistogramObservesSimulatedLatency checks that the duration histogram
// records the latency the service simulates, not the wall time a request
// took: with sigma 0 every simulated request lasts exactly the median (plus
// the latency fault), so any handler or scheduling time would show in the
// sum. That is what keeps a clean canary's p95 clean on a busy machine.
func TestHistogramObservesSimulatedLatency(t *testing.T) {
	const n = 50
	tests := []struct {
		name   string
		fault  Fault
		method string
		route  string
		path   string
		want   time.Duration // observed per request
	}{
		{"clean quote", FaultNone, http.MethodGet, routeQuote, "/api/quote?symbol=BTCUSDT", latencyMedian},
		{"clean order", FaultNone, http.MethodPost, routeOrder, "/api/exec/order", latencyMedian},
		{"latency fault", FaultLatency, http.MethodGet, routeQuote, "/api/quote?symbol=BTCUSDT", latencyMedian + faultLatency},
		{"errors fault, 503s included", FaultErrors, http.MethodGet, routeQuote, "/api/quote?symbol=BTCUSDT", latencyMedian},
		{"wrong method is not simulated", FaultLatency, http.MethodPost, routeQuote, "/api/quote?symbol=BTCUSDT", 0},
		{"csp report is not simulated", FaultLatency, http.MethodPost, routeCSPReport, "/api/csp-report", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, srv := newTestService(t, TrackCanary)
			s.sigma = 0
			s.SetFault(tt.fault)
			for i := range n {
				resp, body := do(t, tt.method, srv.URL+tt.path, map[string]string{IdempotencyHeader: fmt.Sprint("key-", i)})
				if resp.StatusCode >= 500 && tt.fault != FaultErrors {
					t.Fatalf("%s %s = %d %q", tt.method, tt.path, resp.StatusCode, body)
				}
			}
			m := scrape(t, srv)
			route := map[string]string{"route": tt.route}
			count, _ := sum(m, "http_request_duration_seconds_count", route)
			total, _ := sum(m, "http_request_duration_seconds_sum", route)
			if count != n {
				t.Fatalf("duration count = %v, want %d", count, n)
			}
			if want := n * tt.want.Seconds(); math.Abs(total-want) > 1e-9 {
				t.Errorf("duration sum = %.9f s, want exactly %d × %s = %.9f s", total, n, tt.want, want)
			}
		})
	}
}

// TestCSPScrapedWithItsRequests scrapes while requests are answered: each
// scrape must show every csp_violations_total series at exactly 0.02 times
// its http_requests_total twin. A scrape that saw a request without its
// CSP share would, in the handful of requests a 1 % canary's window holds,
// move the CSP signal past its baseline+10 % bound.
func TestCSPScrapedWithItsRequests(t *testing.T) {
	s, srv := newTestService(t, TrackCanary)
	const workers, each = 4, 100
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				// Orders without a key are 400s: two codes per route.
				h := map[string]string{}
				if i%2 == 0 {
					h[IdempotencyHeader] = fmt.Sprint("key-", w, "-", i)
				}
				resp, err := postOrder(srv.URL, h)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	// The workers report to t, so a failed scrape waits for them too.
	defer func() { <-done }()
	scrapes := 0
	for finished := false; !finished; scrapes++ {
		select {
		case <-done:
			finished = true // one last scrape of the final counts
		default:
		}
		if err := checkCSPTwins(s); err != nil {
			t.Errorf("scrape %d: %v", scrapes, err)
			return
		}
	}
	if n, _ := sum(scrape(t, srv), "http_requests_total", map[string]string{"route": routeOrder}); n != workers*each {
		t.Errorf("%v orders counted after %d scrapes, want %d", n, scrapes, workers*each)
	}
}

// checkCSPTwins gathers s's metrics once and checks that every
// csp_violations_total series is 0.02 times its http_requests_total twin.
func checkCSPTwins(s *Service) error {
	mfs, err := s.reg.Gather()
	if err != nil {
		return err
	}
	values := map[string]map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "code" || lp.GetName() == "route" {
					key += lp.GetName() + "=" + lp.GetValue() + " "
				}
			}
			if values[mf.GetName()] == nil {
				values[mf.GetName()] = map[string]float64{}
			}
			values[mf.GetName()][key] = m.GetCounter().GetValue()
		}
	}
	reqs, csp := values["http_requests_total"], values["csp_violations_total"]
	if len(reqs) == 0 || len(csp) != len(reqs) {
		return fmt.Errorf("%d http_requests_total series, %d csp_violations_total series; want the same, at least one", len(reqs), len(csp))
	}
	for k, n := range reqs {
		if got := csp[k]; math.Abs(got-0.02*n) > 1e-9 {
			return fmt.Errorf("csp_violations_total{%s} = %v with %v requests, want exactly 0.02 per request", k, got, n)
		}
	}
	return nil
}

func postOrder(url string, header map[string]string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/api/exec/order", nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return http.DefaultClient.Do(req)
}

func TestClearingFaultRestoresOutbox(t *testing.T) {
	s, srv := newTestService(t, TrackCanary)
	s.SetFault(FaultTrigger)
	s.SetFault(FaultNone)
	if v, _ := sum(scrape(t, srv), "outbox_lag_seconds", nil); v < 0.5 || v > 2 {
		t.Errorf("outbox_lag_seconds = %v after clearing the trigger, want 0.5-2", v)
	}
}

// TestSimulatedProcessMetrics checks the values behind the CSP, event-loop
// and GC signals after some traffic.
func TestSimulatedProcessMetrics(t *testing.T) {
	const n = 100
	_, srv := newTestService(t, TrackStable)
	sendQuotes(t, srv, n)
	do(t, http.MethodPost, srv.URL+"/api/exec/order", nil) // a 400 is an API request too
	m := scrape(t, srv)

	reqs, _ := sum(m, "http_requests_total", nil)
	csp, _ := sum(m, "csp_violations_total", nil)
	if reqs != n+1 || math.Abs(csp-0.02*reqs) > 1e-9 {
		t.Errorf("csp_violations_total = %v for %v requests, want exactly 0.02 per request", csp, reqs)
	}
	// Series by series too, so that rate() over a few requests gives the
	// CSP signal exactly 0.02 whatever codes the window holds.
	for _, smp := range m {
		if smp.name != "http_requests_total" {
			continue
		}
		labels := map[string]string{"code": smp.labels["code"], "route": smp.labels["route"]}
		got, found := sum(m, "csp_violations_total", labels)
		if !found || math.Abs(got-0.02*smp.value) > 1e-9 {
			t.Errorf("csp_violations_total%v = %v (found %v), want 0.02 × http_requests_total = %v", labels, got, found, 0.02*smp.value)
		}
	}

	if lag, _ := sum(m, "nodejs_eventloop_lag_seconds", nil); lag < 0.010 || lag > 0.014 {
		t.Errorf("nodejs_eventloop_lag_seconds = %v, want 0.010-0.014", lag)
	}

	gcCount, _ := sum(m, "nodejs_gc_duration_seconds_count", nil)
	gcSum, _ := sum(m, "nodejs_gc_duration_seconds_sum", nil)
	if gcCount < n/gcEvery {
		t.Fatalf("%v GC pauses after %d requests, want at least %d", gcCount, n, n/gcEvery)
	}
	if avg := gcSum / gcCount; avg < 0.006 || avg > 0.010 {
		t.Errorf("GC pause average %v s, want 6-10 ms", avg)
	}
}

func TestWebSocket(t *testing.T) {
	s, srv := newTestService(t, TrackCanary)
	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for i := range 3 {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		var msg priceMessage
		if err := json.Unmarshal(data, &msg); err != nil {
			t.Fatalf("message %d %q: %v", i, data, err)
		}
		if msg.Type != "price" || msg.Symbol != "BTCUSDT" || msg.Track != TrackCanary || msg.Price <= 0 {
			t.Errorf("message %d = %+v", i, msg)
		}
		if msg.FeedAge < 8 || msg.FeedAge > 13 {
			t.Errorf("message %d feed age %v s, want 8-13", i, msg.FeedAge)
		}
	}
	// Each message is observed after it is written and before the next
	// one is, so three messages read means at least two observed.
	if n, _ := sum(scrape(t, srv), "ws_message_staleness_seconds_count", nil); n < 2 {
		t.Errorf("ws_message_staleness_seconds_count = %v after 3 messages", n)
	}

	s.Close()
	for {
		if _, _, err = c.Read(ctx); err != nil {
			break
		}
	}
	if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
		t.Errorf("session ended with %v (status %v), want going away on Close", err, got)
	}
}

func TestServiceCloseIsIdempotent(t *testing.T) {
	s := NewService(TrackStable, 3)
	s.Close()
	s.Close()
}

func TestTickAlign(t *testing.T) {
	_, srv := newTestService(t, TrackCanary)
	tests := []struct {
		name, price, tick string
		want              string
	}{
		{"runbook BTCUSDT", "12345.6789", "0.01", "12345.68"},
		{"runbook BTCTRY", "12345.6789", "0.1", "12345.7"},
		// float64 holds 1.005 as 1.00499999…, which rounds down.
		{"half up where float64 rounds down", "1.005", "0.01", "1.01"},
		{"half away from zero below zero", "-1.005", "0.01", "-1.01"},
		{"below half", "12345.6749", "0.01", "12345.67"},
		{"tick of 0.5", "1.26", "0.5", "1.5"},
		{"tick of 0.5 down", "1.24", "0.5", "1.0"},
		{"integer tick", "12.5", "5", "15"},
		{"coarser price than tick", "7", "0.25", "7.00"},
		{"small price", "0.004", "0.01", "0.00"},
		{"tiny negative is zero", "-0.004", "0.01", "0.00"},
		{"plus sign", "+2.345", "0.01", "2.35"},
		{"beyond float64 precision", "123456789012345678901234567.891", "0.01", "123456789012345678901234567.89"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, http.MethodGet, srv.URL+"/api/tick-align?price="+url.QueryEscape(tt.price)+"&tick="+url.QueryEscape(tt.tick), nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("= %d %q, want 200", resp.StatusCode, body)
			}
			var got struct{ Result string }
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if got.Result != tt.want {
				t.Errorf("align %s to %s = %q, want %q", tt.price, tt.tick, got.Result, tt.want)
			}
		})
	}
}

func TestTickAlignRejects(t *testing.T) {
	_, srv := newTestService(t, TrackCanary)
	tests := []struct {
		name, method, query string
		want                int
		wantBody            string
	}{
		{"no price", http.MethodGet, "tick=0.01", http.StatusBadRequest, "price: missing"},
		{"no tick", http.MethodGet, "price=1", http.StatusBadRequest, "tick: missing"},
		{"zero tick", http.MethodGet, "price=1&tick=0.00", http.StatusBadRequest, "more than 0"},
		{"negative tick", http.MethodGet, "price=1&tick=-0.01", http.StatusBadRequest, "more than 0"},
		{"exponent", http.MethodGet, "price=1e5&tick=0.01", http.StatusBadRequest, "not a plain decimal"},
		{"fraction", http.MethodGet, "price=1/3&tick=0.01", http.StatusBadRequest, "not a plain decimal"},
		{"trailing point", http.MethodGet, "price=1.&tick=0.01", http.StatusBadRequest, "not a plain decimal"},
		{"two signs", http.MethodGet, "price=--1&tick=0.01", http.StatusBadRequest, "not a plain decimal"},
		{"too long", http.MethodGet, "price=" + strings.Repeat("9", 41) + "&tick=1", http.StatusBadRequest, "at most 40 digits"},
		{"wrong method", http.MethodPost, "price=1&tick=1", http.StatusMethodNotAllowed, "use GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.method, srv.URL+"/api/tick-align?"+tt.query, nil)
			if resp.StatusCode != tt.want || !strings.Contains(body, tt.wantBody) {
				t.Errorf("= %d %q, want %d with %q", resp.StatusCode, body, tt.want, tt.wantBody)
			}
		})
	}
}

// TestTickAlignIsNotTraffic checks that the battery's probes leave the
// request metrics, and so the canary's signals, as they were.
func TestTickAlignIsNotTraffic(t *testing.T) {
	_, srv := newTestService(t, TrackCanary)
	before, _ := sum(scrape(t, srv), "http_requests_total", nil)
	do(t, http.MethodGet, srv.URL+"/api/tick-align?price=1&tick=1", nil)
	if after, _ := sum(scrape(t, srv), "http_requests_total", nil); after != before {
		t.Errorf("http_requests_total %v → %v after a tick-align probe", before, after)
	}
}

// fakeNow is a clock a test moves by hand.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeNow) add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

func TestTokenBucket(t *testing.T) {
	clk := &fakeNow{t: time.Unix(1000, 0)}
	b := newTokenBucket(20, 10, clk.now)
	steps := []struct {
		advance time.Duration
		calls   int
		allowed int
	}{
		{0, 15, 10},                                // the burst, then nothing
		{49 * time.Millisecond, 1, 0},              // 0.98 of a token
		{time.Millisecond, 1, 1},                   // 1 token after 50 ms at 20/s
		{10 * time.Second, 30, 10},                 // refilled to the burst, not beyond
		{-time.Second, 1, 0},                       // a clock stepping back adds nothing
		{time.Second + 100*time.Millisecond, 3, 2}, // and is not owed back
	}
	for i, st := range steps {
		clk.add(st.advance)
		got := 0
		for range st.calls {
			if b.allow() {
				got++
			}
		}
		if got != st.allowed {
			t.Errorf("step %d: %d of %d allowed, want %d", i, got, st.calls, st.allowed)
		}
	}
}

// TestCSPReportRateLimit floods the report endpoint the way the runbook's
// battery does, with the clock stopped: the burst is taken, the rest are
// 429 and counted as requests but not as violations.
func TestCSPReportRateLimit(t *testing.T) {
	s, srv := newTestService(t, TrackCanary)
	clk := &fakeNow{t: time.Unix(1000, 0)}
	s.cspLimit = newTokenBucket(cspReportRate, cspReportBurst, clk.now)
	const n = 50
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 10)
	for range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			resp, err := http.Post(srv.URL+"/api/csp-report", "application/csp-report", strings.NewReader(`{"csp-report":{"blocked-uri":"test"}}`))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusNoContent] != cspReportBurst || codes[http.StatusTooManyRequests] != n-cspReportBurst {
		t.Fatalf("answers %v, want %d×204 and %d×429", codes, cspReportBurst, n-cspReportBurst)
	}
	m := scrape(t, srv)
	route := map[string]string{"route": routeCSPReport}
	if got, _ := sum(m, "http_requests_total", map[string]string{"route": routeCSPReport, "code": "429"}); got != n-cspReportBurst {
		t.Errorf("http_requests_total{code=429} = %v, want %d", got, n-cspReportBurst)
	}
	if got, _ := sum(m, "csp_violations_total", route); math.Abs(got-(cspPerRequest*n+cspReportBurst)) > 1e-9 {
		t.Errorf("csp_violations_total = %v, want %v: the simulated share of every request plus the %d reports read", got, cspPerRequest*n+cspReportBurst, cspReportBurst)
	}
	clk.add(time.Second)
	resp, body := do(t, http.MethodPost, srv.URL+"/api/csp-report", nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("after a second: %d %q, want 204", resp.StatusCode, body)
	}
}
