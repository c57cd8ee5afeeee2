package checks

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/traffic"
)

// newDemo serves a demo service of the given track in real time.
func newDemo(t *testing.T, track string) *httptest.Server {
	t.Helper()
	s := demo.NewService(track, 7)
	// A risk-blocked order would be a 422 in the burst, by chance.
	s.SetRiskBlockProbability(0)
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	return srv
}

// broken is a service with one defect per field, for the checks to catch.
type broken struct {
	httpStatus int           // answer every HTTP GET with this (0: 200)
	delay      time.Duration // before every answer and WebSocket message
	wsDrop     bool          // accept WebSocket sessions and close at once
	wsSilent   bool          // accept WebSocket sessions and never send
	needHeader string        // answer 404 unless X-Canary is this
}

func (b broken) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.needHeader != "" && r.Header.Get(traffic.CanaryHeader) != b.needHeader {
		http.NotFound(w, r)
		return
	}
	select {
	case <-time.After(b.delay):
	case <-r.Context().Done():
		return
	}
	if r.URL.Path == "/ws" {
		if b.httpStatus != 0 {
			http.Error(w, "down", b.httpStatus)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		switch {
		case b.wsDrop:
			return
		case b.wsSilent:
			<-c.CloseRead(r.Context()).Done()
			return
		}
		_ = c.Write(r.Context(), websocket.MessageText, []byte(`{"type":"price"}`))
		_ = c.Close(websocket.StatusNormalClosure, "")
		return
	}
	if b.httpStatus != 0 {
		w.WriteHeader(b.httpStatus)
		return
	}
	w.Write([]byte("ok\n"))
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// refusedURL is an address nothing listens on.
func refusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// generous keeps latency out of the pass/fail of tests that are about
// something else: a loaded machine must not fail them.
const generous = 30 * time.Second

func TestBlast(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		url       func(t *testing.T) string
		opts      BlastOptions
		pass      bool
		httpErrs  map[string]int
		wsErrs    map[string]int
		wantInLog []string
	}{
		{
			name: "demo canary",
			url:  func(t *testing.T) string { return newDemo(t, demo.TrackCanary).URL },
			opts: BlastOptions{N: 12, Concurrency: 6, MaxP95: generous},
			pass: true, httpErrs: map[string]int{}, wsErrs: map[string]int{},
			wantInLog: []string{"summary http 12/12 ok (100.0%)", "summary ws   12/12 ok (100.0%)", "verdict: PASS"},
		},
		{
			name: "500s",
			url:  func(t *testing.T) string { return serve(t, broken{httpStatus: 500}) },
			opts: BlastOptions{N: 4, MaxP95: generous},
			// The WebSocket handshake is answered 500 too.
			httpErrs: map[string]int{"status 500": 4}, wsErrs: map[string]int{ClassWSHandshake: 4},
			wantInLog: []string{"http success 0/4 (0.0%) below 100.0% (status 500×4)", "FAIL status 500"},
		},
		{
			name:     "dropped WebSocket",
			url:      func(t *testing.T) string { return serve(t, broken{wsDrop: true}) },
			opts:     BlastOptions{N: 4, MaxP95: generous},
			httpErrs: map[string]int{}, wsErrs: map[string]int{ClassWSRead: 4},
			wantInLog: []string{"ws success 0/4", "FAIL ws read"},
		},
		{
			name:     "too slow",
			url:      func(t *testing.T) string { return serve(t, broken{delay: 20 * time.Millisecond}) },
			opts:     BlastOptions{N: 3, MaxP95: time.Millisecond},
			httpErrs: map[string]int{}, wsErrs: map[string]int{},
			wantInLog: []string{"http p95", "above 1.0ms", "ws p95"},
		},
		{
			name:     "timeouts",
			url:      func(t *testing.T) string { return serve(t, broken{delay: time.Hour, wsSilent: true}) },
			opts:     BlastOptions{N: 2, Timeout: 50 * time.Millisecond, MaxP95: generous},
			httpErrs: map[string]int{ClassTimeout: 2}, wsErrs: map[string]int{ClassTimeout: 2},
		},
		{
			name:     "silent WebSocket times out on read",
			url:      func(t *testing.T) string { return serve(t, broken{wsSilent: true}) },
			opts:     BlastOptions{N: 2, Timeout: 100 * time.Millisecond, MaxP95: generous},
			httpErrs: map[string]int{}, wsErrs: map[string]int{ClassTimeout: 2},
		},
		{
			name:     "nothing listening",
			url:      refusedURL,
			opts:     BlastOptions{N: 3, MaxP95: generous},
			httpErrs: map[string]int{ClassRefused: 3}, wsErrs: map[string]int{ClassRefused: 3},
			wantInLog: []string{"connection refused×3"},
		},
		{
			name:     "header missing",
			url:      func(t *testing.T) string { return serve(t, broken{needHeader: "always"}) },
			opts:     BlastOptions{N: 2, MaxP95: generous},
			httpErrs: map[string]int{"status 404": 2}, wsErrs: map[string]int{ClassWSHandshake: 2},
		},
		{
			name: "header sent",
			url:  func(t *testing.T) string { return serve(t, broken{needHeader: "always"}) },
			opts: BlastOptions{N: 2, MaxP95: generous, Header: map[string]string{traffic.CanaryHeader: "always"}},
			pass: true, httpErrs: map[string]int{}, wsErrs: map[string]int{},
			wantInLog: []string{"# headers: X-Canary: always"},
		},
		{
			name: "a lower bound lets failures pass",
			url:  func(t *testing.T) string { return serve(t, broken{wsDrop: true}) },
			opts: BlastOptions{N: 2, MaxP95: generous, MinSuccess: 0.5},
			// HTTP 100 %, WS 0 %: each kind is held to the bound.
			httpErrs: map[string]int{}, wsErrs: map[string]int{ClassWSRead: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := tt.opts
			o.URL = tt.url(t)
			res, err := Blast(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			log := string(res.Log())
			if res.Passed() != tt.pass {
				t.Errorf("Passed() = %v, want %v; failures %q\n%s", res.Passed(), tt.pass, res.Failures(), log)
			}
			if len(res.Probes) != 2*o.N || res.HTTP.Total != o.N || res.WS.Total != o.N {
				t.Errorf("%d probes (%d http, %d ws), want %d of each", len(res.Probes), res.HTTP.Total, res.WS.Total, o.N)
			}
			checkErrs(t, "http", res.HTTP, tt.httpErrs)
			checkErrs(t, "ws", res.WS, tt.wsErrs)
			if n := strings.Count(log, "\n"); n < 2*o.N+3 {
				t.Errorf("log has %d lines, want one per probe and a summary:\n%s", n, log)
			}
			if !tt.pass && !strings.Contains(log, "verdict: FAIL: ") {
				t.Errorf("log lacks the failing verdict:\n%s", log)
			}
			for _, want := range tt.wantInLog {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
		})
	}
}

func checkErrs(t *testing.T, kind string, k KindStats, want map[string]int) {
	t.Helper()
	if len(k.Errors) != len(want) {
		t.Errorf("%s errors %v, want %v", kind, k.Errors, want)
		return
	}
	for class, n := range want {
		if k.Errors[class] != n {
			t.Errorf("%s errors %v, want %v", kind, k.Errors, want)
		}
	}
	if k.OK+sum(k.Errors) != k.Total {
		t.Errorf("%s: %d ok + %v errors != %d probes", kind, k.OK, k.Errors, k.Total)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestBlastThroughRouter reaches the canary through the local router at
// weight 0 with X-Canary: always, as the runbook's blast does before any
// traffic moves: every probe, WebSocket upgrades included, lands on the
// canary.
func TestBlastThroughRouter(t *testing.T) {
	t.Parallel()
	stable, canary := newDemo(t, demo.TrackStable), newDemo(t, demo.TrackCanary)
	su, _ := url.Parse(stable.URL)
	cu, _ := url.Parse(canary.URL)
	router := traffic.NewLocal(su, cu)
	rsrv := httptest.NewServer(router)
	t.Cleanup(rsrv.Close)
	res, err := Blast(context.Background(), BlastOptions{
		URL: rsrv.URL, N: 5, MaxP95: generous, Header: map[string]string{traffic.CanaryHeader: "always"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed() {
		t.Fatalf("through the router: %q\n%s", res.Failures(), res.Log())
	}
	if s, c := router.Served(); s != 0 || c != 10 {
		t.Errorf("router served stable %d, canary %d; want 0 and 10", s, c)
	}
}

func TestBlastBadOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts BlastOptions
		want string
	}{
		{"no URL", BlastOptions{}, "give the service's base URL"},
		{"not http", BlastOptions{URL: "ftp://127.0.0.1"}, `"ftp://127.0.0.1"`},
		{"no host", BlastOptions{URL: "http://"}, "base URL"},
		{"negative N", BlastOptions{URL: "http://127.0.0.1", N: -1}, "N must be at least 1"},
		{"negative concurrency", BlastOptions{URL: "http://127.0.0.1", Concurrency: -2}, "concurrency must be at least 1"},
		{"ratio above 1", BlastOptions{URL: "http://127.0.0.1", MinSuccess: 95}, "between 0 and 1"},
		{"relative path", BlastOptions{URL: "http://127.0.0.1", HTTPPath: "healthz"}, "must start with /"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Blast(context.Background(), tt.opts)
			if !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrBadOptions saying %q", err, tt.want)
			}
		})
	}
}

func TestBlastCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Blast(ctx, BlastOptions{URL: serve(t, broken{}), N: 50, Concurrency: 1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if len(res.Probes) >= 100 {
		t.Errorf("%d probes ran after cancel", len(res.Probes))
	}
	for _, p := range res.Probes {
		if p.Kind == "" {
			t.Errorf("an unsent probe is in the result: %+v", p)
		}
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	ds := func(ms ...int) []time.Duration {
		out := make([]time.Duration, len(ms))
		for i, m := range ms {
			out[i] = time.Duration(m) * time.Millisecond
		}
		return out
	}
	thirty := make([]int, 30)
	for i := range thirty {
		thirty[i] = i + 1
	}
	twenty := thirty[:20]
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 0.95, 0},
		{"one", ds(7), 0.95, 7 * time.Millisecond},
		{"p50 of 30", ds(thirty...), 0.5, 15 * time.Millisecond},
		{"p95 of 30 is the 29th", ds(thirty...), 0.95, 29 * time.Millisecond},
		{"p95 of 20 is the 19th, float error aside", ds(twenty...), 0.95, 19 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("%s: percentile = %s, want %s", tt.name, got, tt.want)
		}
	}
}
