package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// LoadConfig says how hard the load generator pushes.
type LoadConfig struct {
	// Target is the base URL requests go to, normally the router's.
	Target string
	// RPS is the steady HTTP request rate: ~80 % GET /api/quote, ~20 %
	// POST /api/exec/order with a fresh idempotency key each.
	RPS int
	// WSClients is how many WebSocket clients stay connected; each
	// reconnects every ~2 s so that weight changes move them too.
	WSClients int
	// WSSession is how long a WebSocket client stays before it reconnects;
	// 0 means 2 s. Shorter sessions spread clients over the tracks faster.
	WSSession time.Duration
	// OrderShare is the fraction of requests that are idempotent orders;
	// 0 means 0.2.
	OrderShare float64
	// Concurrency bounds the HTTP requests in flight; a tick that finds
	// the bound reached is dropped and counted. 0 picks RPS/2+8, room for
	// the service's ~150 ms (or a faulty canary's ~400 ms) per request.
	Concurrency int
}

// ErrLoadConfig is returned (wrapped) by Run for an unusable LoadConfig.
var ErrLoadConfig = errors.New("invalid load config")

// LoadStats counts what the load generator saw.
type LoadStats struct {
	Requests     uint64 // HTTP requests answered, whatever the status
	OK           uint64 // 2xx
	ClientErrors uint64 // 4xx
	ServerErrors uint64 // 5xx
	// TransportErrors are requests that got no answer (refused, reset,
	// timed out); requests cut short by the end of Run are not counted.
	TransportErrors uint64
	// Dropped ticks found Concurrency requests already in flight.
	Dropped    uint64
	WSSessions uint64 // WebSocket connections established
	WSMessages uint64 // WebSocket messages received
	WSErrors   uint64 // failed WebSocket dials and broken sessions
}

const (
	orderShare       = 0.2
	requestTimeout   = 10 * time.Second
	wsSession        = 2 * time.Second
	wsReadTimeout    = 5 * time.Second // the service sends every 100 ms
	wsRetryBackoff   = 200 * time.Millisecond
	wsSessionJitter  = 0.25 // ± fraction of wsSession, so clients do not reconnect in step
	defaultConcSlack = 8
)

// MaxRPS is the highest LoadConfig.RPS that Run accepts: far beyond what one
// laptop process serves, it keeps the tick interval a sane duration.
const MaxRPS = 100_000

// Load is a load generator. Run it once.
type Load struct {
	cfg    LoadConfig
	client *http.Client
	keyPfx string
	seq    atomic.Uint64

	requests, ok, clientErrs, serverErrs, transportErrs, dropped atomic.Uint64
	wsSessions, wsMessages, wsErrs                               atomic.Uint64
}

// NewLoad returns a load generator for cfg; Run checks cfg.
func NewLoad(cfg LoadConfig) *Load {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = cfg.RPS/2 + defaultConcSlack
	}
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	conns := cfg.Concurrency + cfg.WSClients
	return &Load{
		cfg: cfg,
		// One client for every request and WebSocket dial, with an idle
		// pool as large as the concurrency so that steady load reuses
		// connections instead of dialling.
		client: &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     90 * time.Second,
		}},
		keyPfx: "load-" + hex.EncodeToString(b[:]) + "-",
	}
}

// Stats returns the counts so far. Safe to call while Run runs.
func (l *Load) Stats() LoadStats {
	return LoadStats{
		Requests:        l.requests.Load(),
		OK:              l.ok.Load(),
		ClientErrors:    l.clientErrs.Load(),
		ServerErrors:    l.serverErrs.Load(),
		TransportErrors: l.transportErrs.Load(),
		Dropped:         l.dropped.Load(),
		WSSessions:      l.wsSessions.Load(),
		WSMessages:      l.wsMessages.Load(),
		WSErrors:        l.wsErrs.Load(),
	}
}

// Run sends load until ctx is done and returns nil then, once every
// request and WebSocket client it started has finished. It fails at once
// for an unusable config.
func (l *Load) Run(ctx context.Context) error {
	base, wsURL, err := l.check()
	if err != nil {
		return err
	}
	defer l.client.CloseIdleConnections()

	var wg sync.WaitGroup
	for range l.cfg.WSClients {
		wg.Go(func() { l.wsClient(ctx, wsURL) })
	}
	if l.cfg.RPS > 0 {
		l.httpLoop(ctx, base, &wg)
	}
	wg.Wait()
	return nil
}

func (l *Load) check() (base, ws string, err error) {
	c := l.cfg
	if c.RPS < 0 || c.WSClients < 0 {
		return "", "", fmt.Errorf("%w: RPS %d and WSClients %d must not be negative", ErrLoadConfig, c.RPS, c.WSClients)
	}
	if c.RPS > MaxRPS {
		return "", "", fmt.Errorf("%w: RPS %d: use at most %d", ErrLoadConfig, c.RPS, MaxRPS)
	}
	if c.RPS == 0 && c.WSClients == 0 {
		return "", "", fmt.Errorf("%w: RPS and WSClients are both 0: set at least one", ErrLoadConfig)
	}
	u, err := url.Parse(c.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", fmt.Errorf("%w: target %q: use a base URL like http://127.0.0.1:8080", ErrLoadConfig, c.Target)
	}
	base = strings.TrimSuffix(u.String(), "/")
	wsu := *u
	wsu.Scheme = "ws"
	if u.Scheme == "https" {
		wsu.Scheme = "wss"
	}
	wsu.Path = strings.TrimSuffix(u.Path, "/") + "/ws"
	return base, wsu.String(), nil
}

// httpLoop starts one request per tick until ctx is done. A tick that
// finds the concurrency bound reached is dropped rather than queued, so a
// slow target never makes goroutines pile up.
func (l *Load) httpLoop(ctx context.Context, base string, wg *sync.WaitGroup) {
	slots := make(chan struct{}, l.cfg.Concurrency)
	t := time.NewTicker(time.Second / time.Duration(l.cfg.RPS))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			l.dropped.Add(1)
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			l.request(ctx, base)
		})
	}
}

func (l *Load) request(parent context.Context, base string) {
	ctx, cancel := context.WithTimeout(parent, requestTimeout)
	defer cancel()
	var req *http.Request
	var err error
	share := l.cfg.OrderShare
	if share <= 0 {
		share = orderShare
	}
	if mrand.Float64() < share {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/exec/order", strings.NewReader(`{"symbol":"BTCUSDT","side":"buy","qty":0.01}`))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(IdempotencyHeader, l.keyPfx+fmt.Sprint(l.seq.Add(1)))
		}
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/quote?symbol=BTCUSDT", nil)
	}
	if err != nil {
		l.transportErrs.Add(1)
		return
	}
	resp, err := l.client.Do(req)
	if err != nil {
		if parent.Err() == nil { // not the end of Run
			l.transportErrs.Add(1)
		}
		return
	}
	// Drain the body so the connection goes back to the pool.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	l.requests.Add(1)
	switch {
	case resp.StatusCode >= 500:
		l.serverErrs.Add(1)
	case resp.StatusCode >= 400:
		l.clientErrs.Add(1)
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		l.ok.Add(1)
	}
}

// wsClient keeps one WebSocket session open at a time, reading its
// messages, and replaces it every ~2 s: the router picks a backend at
// connect time, so only reconnecting lets a weight change move it.
func (l *Load) wsClient(ctx context.Context, wsURL string) {
	for ctx.Err() == nil {
		if err := l.wsSession(ctx, wsURL); err != nil && ctx.Err() == nil {
			l.wsErrs.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(wsRetryBackoff):
			}
		}
	}
}

func (l *Load) wsSession(ctx context.Context, wsURL string) error {
	dctx, cancel := context.WithTimeout(ctx, requestTimeout)
	c, _, err := websocket.Dial(dctx, wsURL, &websocket.DialOptions{HTTPClient: l.client})
	cancel()
	if err != nil {
		return fmt.Errorf("dial %s: %w", wsURL, err)
	}
	defer c.CloseNow()
	l.wsSessions.Add(1)
	session := l.cfg.WSSession
	if session <= 0 {
		session = wsSession
	}
	span := time.Duration(float64(session) * (1 + wsSessionJitter*(2*mrand.Float64()-1)))
	end := time.Now().Add(span)
	for time.Now().Before(end) {
		rctx, cancel := context.WithTimeout(ctx, wsReadTimeout)
		_, _, err := c.Read(rctx)
		cancel()
		if err != nil {
			return fmt.Errorf("read %s: %w", wsURL, err)
		}
		l.wsMessages.Add(1)
	}
	return c.Close(websocket.StatusNormalClosure, "reconnecting")
}
