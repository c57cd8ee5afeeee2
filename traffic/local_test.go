package traffic

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/canarybot/canarybot/rollout"
)

var _ rollout.Traffic = (*Local)(nil)

const backendHeader = "X-Backend"

// backend answers with its name in a header and, on /ws, in a WebSocket
// message.
func backend(t testing.TB, name string) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			_ = c.Write(context.Background(), websocket.MessageText, []byte(name))
			c.Close(websocket.StatusNormalClosure, "")
			return
		}
		w.Header().Set(backendHeader, name)
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func newTestRouter(t testing.TB) (*Local, *httptest.Server) {
	t.Helper()
	l := NewLocal(backend(t, RoutedStable), backend(t, RoutedCanary))
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	return l, srv
}

// get sends one request through the router and returns the backend that
// answered, after checking the router named the same one.
func get(t *testing.T, client *http.Client, url, canaryHeader string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Error(err)
		return ""
	}
	if canaryHeader != "" {
		req.Header.Set(CanaryHeader, canaryHeader)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Error(err)
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	got := resp.Header.Get(backendHeader)
	if resp.StatusCode != http.StatusOK || string(body) != got {
		t.Errorf("GET = %d %q from backend %q", resp.StatusCode, body, got)
	}
	if routed := resp.Header.Get(RoutedHeader); routed != got {
		t.Errorf("%s = %q but backend %q answered", RoutedHeader, routed, got)
	}
	return got
}

func TestSetWeight(t *testing.T) {
	tests := []struct {
		weight  int
		wantErr bool
	}{
		{0, false}, {1, false}, {37, false}, {100, false}, {-1, true}, {101, true},
	}
	for _, tt := range tests {
		l := NewLocal(&url.URL{Scheme: "http", Host: "127.0.0.1:1"}, &url.URL{Scheme: "http", Host: "127.0.0.1:2"})
		ctx := context.Background()
		if err := l.SetWeight(ctx, 5); err != nil {
			t.Fatal(err)
		}
		err := l.SetWeight(ctx, tt.weight)
		want := tt.weight
		if tt.wantErr {
			if !errors.Is(err, ErrInvalidWeight) || !strings.Contains(err.Error(), "0 to 100") {
				t.Errorf("SetWeight(%d) error = %v, want ErrInvalidWeight saying 0 to 100", tt.weight, err)
			}
			want = 5 // unchanged
		} else if err != nil {
			t.Errorf("SetWeight(%d) = %v", tt.weight, err)
		}
		// Setting the same weight again is a no-op.
		if !tt.wantErr {
			if err := l.SetWeight(ctx, tt.weight); err != nil {
				t.Errorf("second SetWeight(%d) = %v", tt.weight, err)
			}
		}
		if got, err := l.Weight(ctx); got != want || err != nil {
			t.Errorf("after SetWeight(%d): Weight = %d, %v; want %d", tt.weight, got, err, want)
		}
	}
}

func TestRouting(t *testing.T) {
	tests := []struct {
		name           string
		weight         int
		header         string
		n              int
		minCan, maxCan int // how many of n may reach the canary
	}{
		{"weight 0", 0, "", 200, 0, 0},
		{"weight 100", 100, "", 200, 200, 200},
		// Binomial(4000, 0.25): sd ~27, so ±160 (4 points) is ~6 sd.
		{"weight 25", 25, "", 4000, 840, 1160},
		{"header always beats weight 0", 0, "always", 50, 50, 50},
		{"header never beats weight 100", 100, "never", 50, 0, 0},
		{"other header values fall through", 100, "Always", 50, 50, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, srv := newTestRouter(t)
			if err := l.SetWeight(context.Background(), tt.weight); err != nil {
				t.Fatal(err)
			}
			const workers = 8
			var mu sync.Mutex
			got := map[string]int{}
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := w; i < tt.n; i += workers {
						b := get(t, srv.Client(), srv.URL+"/api/quote", tt.header)
						mu.Lock()
						got[b]++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if got[RoutedStable]+got[RoutedCanary] != tt.n {
				t.Fatalf("answers %v, want %d from stable or canary", got, tt.n)
			}
			if c := got[RoutedCanary]; c < tt.minCan || c > tt.maxCan {
				t.Errorf("%d of %d requests reached the canary, want %d-%d", c, tt.n, tt.minCan, tt.maxCan)
			}
			st, can := l.Served()
			if int(st) != got[RoutedStable] || int(can) != got[RoutedCanary] {
				t.Errorf("Served() = %d, %d; backends saw %v", st, can, got)
			}
		})
	}
}

func TestWebSocketThroughRouter(t *testing.T) {
	l, srv := newTestRouter(t)
	ctx := context.Background()
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	for _, tt := range []struct {
		weight int
		want   string
	}{{0, RoutedStable}, {100, RoutedCanary}, {0, RoutedStable}} {
		if err := l.SetWeight(ctx, tt.weight); err != nil {
			t.Fatal(err)
		}
		c, resp, err := websocket.Dial(ctx, wsURL, nil)
		if err != nil {
			t.Fatalf("weight %d: dial: %v", tt.weight, err)
		}
		if got := resp.Header.Get(RoutedHeader); got != tt.want {
			t.Errorf("weight %d: handshake %s = %q, want %q", tt.weight, RoutedHeader, got, tt.want)
		}
		_, msg, err := c.Read(ctx)
		c.CloseNow()
		if err != nil {
			t.Fatalf("weight %d: read: %v", tt.weight, err)
		}
		if string(msg) != tt.want {
			t.Errorf("weight %d: WebSocket reached %q, want %q", tt.weight, msg, tt.want)
		}
	}
	if st, can := l.Served(); st != 2 || can != 1 {
		t.Errorf("Served() = %d, %d; want 2, 1", st, can)
	}
}

// TestConcurrentWeightChanges runs requests while the weight moves; with
// -race it checks the router's state is safely shared, and every answer
// must still come from the backend the router named.
func TestConcurrentWeightChanges(t *testing.T) {
	l, srv := newTestRouter(t)
	ctx := context.Background()
	const workers, perWorker = 8, 50
	done := make(chan struct{})
	var setter sync.WaitGroup
	setter.Go(func() {
		for w := 0; ; w = (w + 7) % 101 {
			select {
			case <-done:
				return
			default:
			}
			if err := l.SetWeight(ctx, w); err != nil {
				t.Error(err)
				return
			}
			if _, err := l.Weight(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range perWorker {
				get(t, srv.Client(), srv.URL+"/", "")
			}
		})
	}
	wg.Wait()
	close(done)
	setter.Wait()
	if st, can := l.Served(); st+can != workers*perWorker {
		t.Errorf("Served() = %d + %d, want %d in all", st, can, workers*perWorker)
	}
}

func TestBackendDown(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL, _ := url.Parse(down.URL)
	down.Close()
	l := NewLocal(backend(t, RoutedStable), downURL)
	if err := l.SetWeight(context.Background(), 100); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	l.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/quote", nil))
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), downURL.Host) {
		t.Errorf("canary down: %d %q, want 502 naming %s", rec.Code, rec.Body, downURL.Host)
	}
	if got := rec.Header().Get(RoutedHeader); got != RoutedCanary {
		t.Errorf("%s = %q, want canary", RoutedHeader, got)
	}
}

func TestNewLocalRequiresURLs(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewLocal(nil, nil) did not panic")
		}
	}()
	NewLocal(nil, nil)
}

func BenchmarkRouter(b *testing.B) {
	trivial := func() *url.URL {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		b.Cleanup(srv.Close)
		u, _ := url.Parse(srv.URL)
		return u
	}
	l := NewLocal(trivial(), trivial())
	if err := l.SetWeight(context.Background(), 25); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			l.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/quote?symbol=BTCUSDT", nil))
			if rec.Code != http.StatusOK {
				b.Errorf("status %d", rec.Code)
				return
			}
		}
	})
}
