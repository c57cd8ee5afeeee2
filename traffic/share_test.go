package traffic

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/signals"
)

func TestCompareShare(t *testing.T) {
	tests := []struct {
		name          string
		weight        int
		canary, total float64
		tolerance     float64
		want          ShareStatus
		observed      float64
	}{
		{"exact", 5, 50, 1000, 0, ShareMatch, 5},
		{"within chance at few requests", 25, 14, 40, 0, ShareMatch, 35},
		{"far off at many requests", 25, 3500, 10000, 0, ShareMismatch, 35},
		{"canary idle at weight 0", 0, 0, 500, 0, ShareMatch, 0},
		{"traffic at weight 0", 0, 100, 500, 0, ShareMismatch, 20},
		{"all at 100", 100, 800, 800, 0, ShareMatch, 100},
		{"stable still served at 100", 100, 700, 800, 0, ShareMismatch, 87.5},
		{"gap under the tolerance", 50, 5300, 10000, 5, ShareMatch, 53},
		{"no requests", 5, 0, 0, 0, ShareNoData, math.NaN()},
		{"NaN total", 5, 0, math.NaN(), 0, ShareNoData, math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := CompareShare(tt.weight, tt.canary, tt.total, tt.tolerance)
			if s.Status != tt.want {
				t.Errorf("status %s, want %s (%s)", s.Status, tt.want, s)
			}
			if math.IsNaN(tt.observed) != math.IsNaN(s.Observed) || (!math.IsNaN(tt.observed) && math.Abs(s.Observed-tt.observed) > 1e-9) {
				t.Errorf("observed %v, want %v", s.Observed, tt.observed)
			}
			if s.Status != ShareNoData && s.Allowed < math.Max(tt.tolerance, defaultShareTolerance) {
				t.Errorf("allowed gap %v is under the tolerance", s.Allowed)
			}
			if !strings.Contains(s.String(), fmt.Sprintf("weight %d%%", tt.weight)) {
				t.Errorf("String() = %q does not name the weight", s.String())
			}
		})
	}
}

func TestShareQueriesParse(t *testing.T) {
	c, tot := ShareQueries(ShareOptions{Namespace: "spark", Stable: "spark.v2", Canary: "spark-canary", Window: "5m"})
	p := parser.NewParser(parser.Options{})
	for _, q := range []string{c, tot} {
		if _, err := p.ParseExpr(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
		if !strings.Contains(q, `ingress=~"spark\\.v2|spark-canary"`) || !strings.Contains(q, "[5m]") {
			t.Errorf("%s: want both Ingresses matched literally over the window", q)
		}
	}
	if !strings.Contains(c, `canary!=""`) || strings.Contains(tot, "canary!=") {
		t.Errorf("canary query %s / total query %s: only the first selects the canary label", c, tot)
	}
}

// nginxCounters serves ingress-nginx's request counter as its /metrics
// does: one series per ingress, service, status... and canary upstream.
type nginxCounters struct {
	mu     sync.Mutex
	series map[string]float64 // labels → count
}

func (n *nginxCounters) add(labels string, by float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.series == nil {
		n.series = map[string]float64{}
	}
	n.series[labels] += by
}

func (n *nginxCounters) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintln(w, "# TYPE nginx_ingress_controller_requests counter")
	for l, v := range n.series {
		fmt.Fprintf(w, "nginx_ingress_controller_requests{%s} %g\n", l, v)
	}
}

func nginxLabels(namespace, ingress, canary, status string) string {
	return fmt.Sprintf(`canary=%q,controller_class="k8s.io/ingress-nginx",controller_namespace="ingress-nginx",controller_pod="ingress-nginx-controller-1",ingress=%q,method="GET",namespace=%q,path="/",service="spark",status=%q`,
		canary, ingress, namespace, status)
}

// TestMeasureShareOnIngressNginxCounters runs the share queries through
// Prometheus's own engine (the embedded store) on counters labelled as
// ingress-nginx labels them: canary requests are counted under the stable
// Ingress with the canary upstream in `canary`.
func TestMeasureShareOnIngressNginxCounters(t *testing.T) {
	const canaryUpstream = "spark-spark-canary-80"
	tests := []struct {
		name string
		// per scrape interval
		stable, canary float64
		otherApp       float64 // another Ingress's canary traffic, never counted
		weight         int
		want           ShareStatus
		observed       float64
	}{
		{"5% at weight 5", 950, 50, 400, 5, ShareMatch, 5},
		{"5% at weight 25", 950, 50, 400, 25, ShareMismatch, 5},
		{"canary never served at weight 0", 1000, 0, 400, 0, ShareMatch, 0},
		{"no traffic", 0, 0, 400, 5, ShareNoData, math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counters := &nginxCounters{}
			srv := httptest.NewServer(counters)
			t.Cleanup(srv.Close)
			clk := clock.NewFake(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC))
			store, err := signals.NewEmbedded(signals.EmbeddedOptions{Clock: clk, Targets: []signals.Target{{URL: srv.URL}}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			for range 10 {
				if tt.stable > 0 {
					counters.add(nginxLabels("spark", "spark", "", "200"), tt.stable)
				}
				if tt.canary > 0 {
					counters.add(nginxLabels("spark", "spark", canaryUpstream, "200"), tt.canary)
				}
				counters.add(nginxLabels("other", "other", "other-other-canary-80", "200"), tt.otherApp)
				if err := store.ScrapeOnce(t.Context()); err != nil {
					t.Fatal(err)
				}
				clk.Advance(15 * time.Second)
			}
			opts := ShareOptions{Namespace: "spark", Stable: "spark", Canary: "spark-canary", Window: "2m"}
			s, err := MeasureShare(t.Context(), store, opts, tt.weight, clk.Now().Add(-15*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if s.Status != tt.want {
				t.Errorf("status %s, want %s: %s", s.Status, tt.want, s)
			}
			if math.IsNaN(tt.observed) != math.IsNaN(s.Observed) || (!math.IsNaN(tt.observed) && math.Abs(s.Observed-tt.observed) > 0.01) {
				t.Errorf("observed %v%%, want %v%%", s.Observed, tt.observed)
			}
			if s.CanaryQuery == "" || s.TotalQuery == "" {
				t.Error("the queries are not kept with the result")
			}
		})
	}
}

// TestObservedShareReadsTheIngressWeight compares with the weight the
// Ingress carries, not one the caller believes in.
func TestObservedShareReadsTheIngressWeight(t *testing.T) {
	k := kube.Get(t)
	name := canaryIngress(t, k.Clientset(t), map[string]string{AnnotationCanary: "true", AnnotationCanaryWeight: "25"})
	router := newRouter(t, k.Config(k.AdminToken), name)
	m := scripted{
		`sum(increase(nginx_ingress_controller_requests{namespace="spark",ingress=~"spark|` + name + `",canary!=""}[2m]))`: 250,
		`sum(increase(nginx_ingress_controller_requests{namespace="spark",ingress=~"spark|` + name + `"}[2m]))`:            1000,
	}
	s, err := router.ObservedShare(t.Context(), m, ShareOptions{Namespace: testenv.KubeNamespace, Stable: "spark", Canary: name}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.Weight != 25 || s.Status != ShareMatch || s.Observed != 25 {
		t.Errorf("got %+v, want weight 25 read from the Ingress, observed 25%%, match", s)
	}
	missing := newRouter(t, k.Config(k.AdminToken), "nope-canary")
	if _, err := missing.ObservedShare(t.Context(), m, ShareOptions{Namespace: "spark"}, time.Now()); err == nil {
		t.Error("a missing Ingress gave a share")
	}
}

// scripted answers known queries and fails the rest.
type scripted map[string]float64

func (s scripted) Query(_ context.Context, q string, _ time.Time) (rollout.Sample, error) {
	v, ok := s[q]
	if !ok {
		return rollout.Sample{}, fmt.Errorf("unexpected query %s", q)
	}
	return rollout.Sample{Value: v}, nil
}
