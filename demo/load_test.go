package demo

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond until it holds; the deadline only guards against a
// hang, it is not a measurement.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runLoad starts l.Run and returns a stop function that cancels it and
// returns Run's result.
func runLoad(t *testing.T, l *Load) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- l.Run(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return after its context was cancelled")
			return nil
		}
	}
}

func TestLoadAgainstService(t *testing.T) {
	s := NewService(TrackStable, 7)
	s.timeScale = 0
	s.SetRiskBlockProbability(0)
	defer s.Close()
	var quotes, orders atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/quote":
			quotes.Add(1)
		case "/api/exec/order":
			orders.Add(1)
		}
		s.ServeHTTP(w, r)
	}))
	defer srv.Close()

	const wsClients = 2
	l := NewLoad(LoadConfig{Target: srv.URL, RPS: 200, WSClients: wsClients, Concurrency: 16})
	stop := runLoad(t, l)
	// More sessions than clients means the clients reconnected.
	waitFor(t, "requests, WS messages and a reconnect", func() bool {
		st := l.Stats()
		return st.Requests >= 100 && st.WSMessages >= 10 && st.WSSessions > wsClients
	})
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}

	st := l.Stats()
	if st.ClientErrors+st.ServerErrors+st.TransportErrors+st.WSErrors != 0 || st.OK != st.Requests {
		t.Errorf("errors against a clean service: %+v", st)
	}
	// The mix is ~80/20 and every order has a fresh key.
	q, o := quotes.Load(), orders.Load()
	if o == 0 || q < 2*o {
		t.Errorf("%d quotes and %d orders, want ~80/20", q, o)
	}
	m := scrape(t, srv)
	if c, _ := sum(m, "idempotency_conflicts_total", nil); c != 0 {
		t.Errorf("idempotency_conflicts_total = %v, want 0 with fresh keys", c)
	}
	if r, _ := sum(m, "idempotency_requests_total", nil); r != float64(o) {
		t.Errorf("idempotency_requests_total = %v, orders sent %d", r, o)
	}
}

// TestLoadDropsWhenSlow holds every request at the target: the generator
// must keep at most Concurrency in flight and count the ticks it drops.
func TestLoadDropsWhenSlow(t *testing.T) {
	const limit = 3
	var mu sync.Mutex
	inFlight, maxInFlight := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		mu.Unlock()
		// The server notices the client leaving only once the body
		// is read.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	defer srv.Close()

	l := NewLoad(LoadConfig{Target: srv.URL, RPS: 500, Concurrency: limit})
	stop := runLoad(t, l)
	waitFor(t, "dropped ticks", func() bool { return l.Stats().Dropped >= 20 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if maxInFlight > limit {
		t.Errorf("%d requests in flight at once, want at most %d", maxInFlight, limit)
	}
	if st := l.Stats(); st.TransportErrors != 0 || st.Requests != 0 {
		t.Errorf("requests cut short by the end of Run were counted: %+v", st)
	}
}

func TestLoadTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	target := srv.URL
	srv.Close() // nothing listens there now

	l := NewLoad(LoadConfig{Target: target, RPS: 100, WSClients: 1, Concurrency: 4})
	stop := runLoad(t, l)
	waitFor(t, "failed requests and dials", func() bool {
		st := l.Stats()
		return st.TransportErrors > 0 && st.WSErrors > 0
	})
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
	if st := l.Stats(); st.Requests != 0 || st.WSSessions != 0 {
		t.Errorf("answers from a closed target: %+v", st)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  LoadConfig
	}{
		{"no target", LoadConfig{RPS: 10}},
		{"target without scheme", LoadConfig{Target: "127.0.0.1:8080", RPS: 10}},
		{"target not http", LoadConfig{Target: "ftp://127.0.0.1", RPS: 10}},
		{"negative rps", LoadConfig{Target: "http://127.0.0.1:1", RPS: -1}},
		{"negative ws clients", LoadConfig{Target: "http://127.0.0.1:1", WSClients: -1, RPS: 1}},
		{"rps beyond the pacer", LoadConfig{Target: "http://127.0.0.1:1", RPS: 1_000_000}},
		{"nothing to do", LoadConfig{Target: "http://127.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := NewLoad(tt.cfg).Run(ctx); !errors.Is(err, ErrLoadConfig) {
				t.Errorf("Run(%+v) = %v, want ErrLoadConfig", tt.cfg, err)
			}
		})
	}
}
