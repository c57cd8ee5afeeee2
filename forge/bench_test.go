package forge_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/forge/forgetest"
)

// blockClock notes when the freeze's blocking was complete: the ruleset's
// create, or the last failing status.
type blockClock struct {
	base http.RoundTripper
	mu   sync.Mutex
	last time.Time
}

func (c *blockClock) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err == nil && r.Method == http.MethodPost && (strings.HasSuffix(r.URL.Path, "/rulesets") || strings.Contains(r.URL.Path, "/statuses/")) {
		c.mu.Lock()
		c.last = time.Now()
		c.mu.Unlock()
	}
	return resp, err
}

// BenchmarkFreeze1000PRs freezes and lifts 1,000 open PRs against the fake
// answering each request after 50 ms, in both modes, with the Transport's
// write pacing off (GitHub's one write a second adds writes × 1 s; the
// writes metric gives it). Run it alone: about five minutes.
//
//	go test -run '^$' -bench Freeze1000PRs -benchtime 1x ./forge/
func BenchmarkFreeze1000PRs(b *testing.B) {
	const n = 1000
	for _, mode := range []string{forge.ModeRulesets, forge.ModeStatuses} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				fake := forgetest.New(b, "acme", "exchange", n)
				if mode == forge.ModeStatuses {
					fake.DenyAdmin(http.StatusForbidden) // auto falls back, as with a plain token
				}
				fake.SetLatency(50 * time.Millisecond)
				o := forge.DefaultTransportOptions()
				o.WriteInterval = 0
				clock := &blockClock{base: http.DefaultTransport}
				c, err := forge.NewClient(forge.Config{APIURL: fake.Server.URL, Owner: "acme", Repo: "exchange", Token: "ghp_bench"}, clock, o)
				if err != nil {
					b.Fatal(err)
				}
				f := &forge.Freeze{Client: c, Owner: "acme", Repo: "exchange", Mode: forge.ModeAuto,
					Progress: forge.FileProgress{Path: filepath.Join(b.TempDir(), "f.json")}}
				ctx := context.Background()

				t0 := time.Now()
				sum, err := f.Start(ctx, "v1.4.0")
				if err != nil {
					b.Fatal(err)
				}
				startD := time.Since(t0)
				blockD := clock.last.Sub(t0)
				startCalls := fake.TotalCalls()
				startWrites := writes(fake.Calls())
				if sum.Mode != mode || sum.PRs != n || sum.LabelsAdded != n {
					b.Fatalf("start: %+v", sum)
				}

				t1 := time.Now()
				if sum, err = f.Lift(ctx); err != nil || sum.LabelsRemoved != n {
					b.Fatalf("lift: %+v, %v", sum, err)
				}
				liftD := time.Since(t1)
				liftCalls := fake.TotalCalls() - startCalls
				liftWrites := writes(fake.Calls()) - startWrites

				b.ReportMetric(float64(startCalls), "start-calls")
				b.ReportMetric(float64(liftCalls), "lift-calls")
				b.ReportMetric(float64(startCalls+liftCalls)/n, "calls/PR")
				b.ReportMetric(float64(startWrites+liftWrites), "writes")
				b.ReportMetric(blockD.Seconds(), "s-to-block")
				b.ReportMetric(startD.Seconds(), "s-start")
				b.ReportMetric(liftD.Seconds(), "s-lift")
			}
		})
	}
}

func writes(calls map[string]int) int {
	w := 0
	for route, v := range calls {
		if !strings.HasPrefix(route, "GET ") {
			w += v
		}
	}
	return w
}
