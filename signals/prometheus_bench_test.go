package signals

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/internal/testenv"
	canarytraffic "github.com/canarybot/canarybot/traffic"
)

// benchPrometheus is a real Prometheus scraping the demo service's two
// tracks under steady load through the weighted router, with data for
// every default signal.
func benchPrometheus(b *testing.B) (*testenv.Server, []string) {
	b.Helper()
	canary, stable := demo.NewService(demo.TrackCanary, 1), demo.NewService(demo.TrackStable, 2)
	b.Cleanup(canary.Close)
	b.Cleanup(stable.Close)
	cs, ss := httptest.NewServer(canary), httptest.NewServer(stable)
	b.Cleanup(cs.Close)
	b.Cleanup(ss.Close)
	cu, _ := url.Parse(cs.URL)
	su, _ := url.Parse(ss.URL)
	router := canarytraffic.NewLocal(su, cu)
	if err := router.SetWeight(context.Background(), 50); err != nil {
		b.Fatal(err)
	}
	rs := httptest.NewServer(router)
	b.Cleanup(rs.Close)
	ctx, cancel := context.WithCancel(context.Background())
	load := demo.NewLoad(demo.LoadConfig{Target: rs.URL, RPS: 40, WSClients: 8, WSSession: 500 * time.Millisecond, OrderShare: 0.5})
	done := make(chan error, 1)
	go func() { done <- load.Run(ctx) }()
	b.Cleanup(cancel)
	srv := testenv.StartPrometheus(b, testenv.PrometheusOptions{PrometheusConfig: testenv.PrometheusConfig{
		Targets: []testenv.ScrapeTarget{
			{Addr: cs.URL, Labels: map[string]string{"track": demo.TrackCanary}},
			{Addr: ss.URL, Labels: map[string]string{"track": demo.TrackStable}},
		},
	}})
	p, err := NewPrometheus(PrometheusOptions{URL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	// The 8 default signals and the CSP baseline: a tick's 9 queries.
	var queries []string
	for _, s := range config.DefaultSignals() {
		queries = append(queries, strings.ReplaceAll(s.Query, "{{window}}", promWindow))
		if s.BaselineQuery != "" {
			queries = append(queries, strings.ReplaceAll(s.BaselineQuery, "{{window}}", promWindow))
		}
	}
	deadline := time.Now().Add(promDataWait)
	for {
		_, errs := p.QueryAll(context.Background(), queries, time.Time{})
		failed := 0
		for _, err := range errs {
			if err != nil {
				failed++
			}
		}
		if failed == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("no data for %d queries after %s: %v", failed, promDataWait, errs)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The load has left a window of data; stopped, it no longer competes
	// for the two cores with the queries being measured.
	cancel()
	<-done
	return srv, queries
}

// rttProxy forwards to upstream after a fixed delay per request: a
// Prometheus across a network rather than on loopback.
func rttProxy(b *testing.B, upstream string, rtt time.Duration) string {
	b.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		b.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	// Keep a connection per query in flight, as a real proxy's pool does.
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 32}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(rtt)
		rp.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

// BenchmarkPrometheusTick measures, against Debian's Prometheus 2.42 on
// loopback, one signal query (the p95, the costliest) and a whole tick (the
// 8 signals and the CSP baseline) sent concurrently, as the engine does,
// and one by one for comparison; on loopback, and behind a 10 ms round
// trip as across a network. Each iteration runs all three, so the
// ratios compare like with like on a machine others share.
func BenchmarkPrometheusTick(b *testing.B) {
	srv, queries := benchPrometheus(b)
	for _, bc := range []struct {
		name string
		rtt  time.Duration
	}{{"loopback", 0}, {"rtt-10ms", 10 * time.Millisecond}} {
		b.Run(bc.name, func(b *testing.B) {
			base := srv.URL
			if bc.rtt > 0 {
				base = rttProxy(b, srv.URL, bc.rtt)
			}
			p, err := NewPrometheus(PrometheusOptions{URL: base})
			if err != nil {
				b.Fatal(err)
			}
			benchTick(b, p, queries)
		})
	}
}

func benchTick(b *testing.B, p *Prometheus, queries []string) {
	ctx := context.Background()
	var one, tick, seq time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := p.Query(ctx, queries[0], time.Time{}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, errs := p.QueryAll(ctx, queries, time.Time{}); errs[0] != nil {
			b.Fatal(errs[0])
		}
		t2 := time.Now()
		for _, q := range queries {
			if _, err := p.Query(ctx, q, time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
		t3 := time.Now()
		one, tick, seq = one+t1.Sub(t0), tick+t2.Sub(t1), seq+t3.Sub(t2)
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(one), "ms/query")
	b.ReportMetric(ms(tick), "ms/tick")
	b.ReportMetric(ms(seq), "ms/sequential-tick")
	b.ReportMetric(float64(tick)/float64(one), "tick/query")
	b.ReportMetric(float64(seq)/float64(one), "sequential/query")
}
