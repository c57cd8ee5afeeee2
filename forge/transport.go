package forge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Why a wait happened, as logged and counted.
const (
	WaitPrimary   = "primary_rate_limit"
	WaitSecondary = "secondary_rate_limit"
	WaitServer    = "server_error"
	WaitTimeout   = "timeout"
	WaitPacing    = "pacing"
)

// Metrics counts the Transport's waits. The zero value is ready; share one
// between clients to add them up. Export it with a collector that reads it.
type Metrics struct {
	Primary, Secondary, Server, Timeout, Pacing atomic.Int64
	// Waited is the time spent waiting, in nanoseconds, all reasons together.
	Waited atomic.Int64
	// GaveUp counts requests returned as failed after MaxAttempts or a wait
	// longer than MaxWait.
	GaveUp atomic.Int64
}

func (m *Metrics) add(reason string, d time.Duration) {
	switch reason {
	case WaitPrimary:
		m.Primary.Add(1)
	case WaitSecondary:
		m.Secondary.Add(1)
	case WaitServer:
		m.Server.Add(1)
	case WaitTimeout:
		m.Timeout.Add(1)
	case WaitPacing:
		m.Pacing.Add(1)
	}
	m.Waited.Add(int64(d))
}

// TransportOptions tune the Transport. Start from DefaultTransportOptions:
// zero durations are taken as given (tests use them to run fast).
type TransportOptions struct {
	// MaxAttempts bounds the tries of one request, rate-limit waits included.
	MaxAttempts int
	// Backoff is the first wait after a 5xx or a timeout; it doubles each
	// try up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// SecondaryWait is the wait after a secondary limit without Retry-After;
	// it doubles on each repeat. GitHub's docs ask for at least a minute.
	SecondaryWait time.Duration
	// MaxWait is the longest single wait; a limit that asks for more is
	// returned to the caller as an error instead.
	MaxWait time.Duration
	// WriteInterval is the least time between the starts of two
	// content-creating calls (POST, PATCH, PUT, DELETE), which also go one at
	// a time, as GitHub asks.
	WriteInterval time.Duration

	// SafeToRepeat says whether a request may be sent again after an
	// answer that leaves its outcome unknown (a timeout, a 5xx): GitHub may
	// have applied it. Nil means DefaultSafeToRepeat. A request whose
	// context went through RepeatSafe is always repeated. Rate-limit
	// answers are retried regardless: GitHub applied nothing.
	SafeToRepeat func(*http.Request) bool

	// Sleep waits for d or until ctx is done (tests inject a recorder).
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time
	Log   *slog.Logger
	// Metrics, when set, counts every wait.
	Metrics *Metrics
}

// DefaultTransportOptions follows GitHub's guidance for integrators.
func DefaultTransportOptions() TransportOptions {
	return TransportOptions{
		MaxAttempts:   6,
		Backoff:       time.Second,
		MaxBackoff:    30 * time.Second,
		SecondaryWait: time.Minute,
		MaxWait:       65 * time.Minute, // a primary window is an hour
		WriteInterval: time.Second,
	}
}

// Transport is an http.RoundTripper that waits out GitHub's primary and
// secondary rate limits, retries 5xx and timeouts with backoff, and paces
// content-creating calls.
type Transport struct {
	base http.RoundTripper
	o    TransportOptions

	// writeSlot makes writes serial (GitHub asks for that); a writer waits
	// for it with its context, so a cancelled caller does not queue behind
	// another writer's long rate-limit wait. lastWrite is guarded by it.
	writeSlot chan struct{}
	lastWrite time.Time
}

// NewTransport wraps base.
func NewTransport(base http.RoundTripper, o TransportOptions) (*Transport, error) {
	if base == nil {
		return nil, errors.New("forge: NewTransport needs a base RoundTripper")
	}
	if o.MaxAttempts < 1 {
		return nil, fmt.Errorf("forge: MaxAttempts is %d; it must be at least 1", o.MaxAttempts)
	}
	if o.Backoff < 0 || o.MaxBackoff < 0 || o.SecondaryWait < 0 || o.MaxWait < 0 || o.WriteInterval < 0 {
		return nil, errors.New("forge: transport durations must not be negative")
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = &Metrics{}
	}
	if o.SafeToRepeat == nil {
		o.SafeToRepeat = DefaultSafeToRepeat
	}
	return &Transport{base: base, o: o, writeSlot: make(chan struct{}, 1)}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type repeatSafeKey struct{}

// RepeatSafe marks the requests made with the returned context as safe to
// send again after a timeout or a 5xx, for a caller that knows its POST is
// idempotent (or checks for a duplicate itself).
func RepeatSafe(ctx context.Context) context.Context {
	return context.WithValue(ctx, repeatSafeKey{}, true)
}

// repeatablePOSTs are the POST routes (segments after /repos/{o}/{r}, or
// the whole path for /app) whose repetition does no harm:
//   - statuses/{sha}: a second identical status; GitHub shows the latest
//     per context.
//   - issues/{n}/labels: adding a label that is there changes nothing.
//   - labels: the repeat gets 422 already_exists, which callers take as done.
//   - git/blobs, git/trees: content-addressed, the same SHA again.
//   - git/commits: at worst a second, unreferenced commit object.
//   - app/installations/{id}/access_tokens: a second token, the first
//     expires unused.
//
// Not repeated: rulesets (a duplicate, or 422 for the name; the freeze
// looks it up by name on the next run), releases (a duplicate draft),
// git/refs, release assets (422 for the name).
func repeatablePOST(path string) bool {
	seg := strings.Split(strings.Trim(strings.TrimPrefix(path, "/api/v3"), "/"), "/")
	if len(seg) == 4 && seg[0] == "app" && seg[1] == "installations" && seg[3] == "access_tokens" {
		return true
	}
	if len(seg) < 4 || seg[0] != "repos" {
		return false
	}
	rest := seg[3:]
	switch {
	case len(rest) == 2 && rest[0] == "statuses",
		len(rest) == 3 && rest[0] == "issues" && rest[2] == "labels",
		len(rest) == 1 && rest[0] == "labels",
		len(rest) == 2 && rest[0] == "git" && (rest[1] == "blobs" || rest[1] == "trees" || rest[1] == "commits"):
		return true
	}
	return false
}

// DefaultSafeToRepeat: every method but POST is idempotent on GitHub's API
// as canarybot uses it (GET, PUT, PATCH with the whole value, DELETE, which
// answers 404 the second time); a POST only on the routes listed at
// repeatablePOST.
func DefaultSafeToRepeat(req *http.Request) bool {
	if req.Method != http.MethodPost {
		return true
	}
	return repeatablePOST(req.URL.Path)
}

func isWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	body, err := replayableBody(req)
	if err != nil {
		return nil, err
	}
	if isWrite(req.Method) {
		select {
		case t.writeSlot <- struct{}{}:
			defer func() { <-t.writeSlot }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	secondaryStreak := 0
	for attempt := 1; ; attempt++ {
		if isWrite(req.Method) {
			if d := t.lastWrite.Add(t.o.WriteInterval).Sub(t.o.Now()); d > 0 {
				if err := t.wait(ctx, req, WaitPacing, d, attempt); err != nil {
					return nil, err
				}
			}
			t.lastWrite = t.o.Now()
		}
		r := req.Clone(ctx)
		if body != nil {
			r.Body = body()
		}
		resp, err := t.base.RoundTrip(r)
		reason, d := t.classify(resp, err, attempt, &secondaryStreak)
		if (reason == WaitTimeout || reason == WaitServer) && !t.repeatable(req) {
			// The write may have taken effect: the caller decides.
			t.o.Log.Warn("github: not repeating a write whose outcome is unknown", "method", req.Method, "path", req.URL.Path, "reason", reason)
			reason = ""
		}
		if reason == "" {
			if err == nil {
				t.hidePrimaryExhaustion(resp)
			}
			return resp, err
		}
		if attempt >= t.o.MaxAttempts || d > t.o.MaxWait || ctx.Err() != nil {
			t.o.Metrics.GaveUp.Add(1)
			t.o.Log.Warn("github: giving up", "method", req.Method, "path", req.URL.Path, "reason", reason, "attempts", attempt, "wanted_wait", d)
			return resp, err
		}
		if resp != nil {
			// Drain so that the connection can be reused.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
		}
		if err := t.wait(ctx, req, reason, d, attempt); err != nil {
			return nil, err
		}
	}
}

func (t *Transport) repeatable(req *http.Request) bool {
	if safe, _ := req.Context().Value(repeatSafeKey{}).(bool); safe {
		return true
	}
	return t.o.SafeToRepeat(req)
}

func (t *Transport) wait(ctx context.Context, req *http.Request, reason string, d time.Duration, attempt int) error {
	t.o.Metrics.add(reason, d)
	level := slog.LevelWarn
	if reason == WaitPacing {
		level = slog.LevelDebug
	}
	t.o.Log.Log(ctx, level, "github: waiting", "reason", reason, "wait", d, "method", req.Method, "path", req.URL.Path, "attempt", attempt)
	if err := t.o.Sleep(ctx, d); err != nil {
		return fmt.Errorf("forge: waiting %s (%s) before %s %s: %w", d, reason, req.Method, req.URL.Path, err)
	}
	return nil
}

// classify says whether to retry and after how long; "" means return the
// response (or error) as it is.
func (t *Transport) classify(resp *http.Response, err error, attempt int, secondaryStreak *int) (string, time.Duration) {
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return WaitTimeout, t.backoff(attempt)
		}
		return "", 0
	}
	switch {
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusTooManyRequests:
		if resp.Header.Get("X-RateLimit-Remaining") == "0" {
			reset, perr := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64)
			if perr == nil {
				d := time.Unix(reset, 0).Sub(t.o.Now())
				// A second past the reset: GitHub's clock and ours differ.
				return WaitPrimary, max(d, 0) + time.Second
			}
		}
		if resp.StatusCode == http.StatusForbidden && !mentionsSecondary(resp) {
			// A plain 403: permissions, not a limit.
			return "", 0
		}
		*secondaryStreak++
		if s, perr := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); perr == nil && s >= 0 {
			return WaitSecondary, time.Duration(s) * time.Second
		}
		return WaitSecondary, t.o.SecondaryWait << min(*secondaryStreak-1, 6)
	case resp.StatusCode >= 500 && resp.StatusCode <= 599 && resp.StatusCode != http.StatusNotImplemented:
		if s, perr := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); perr == nil && s >= 0 {
			return WaitServer, time.Duration(s) * time.Second
		}
		return WaitServer, t.backoff(attempt)
	}
	return "", 0
}

func (t *Transport) backoff(attempt int) time.Duration {
	d := t.o.Backoff << min(attempt-1, 20)
	if t.o.MaxBackoff > 0 && d > t.o.MaxBackoff {
		d = t.o.MaxBackoff
	}
	return d
}

// mentionsSecondary reads the body, leaving it readable for the caller.
func mentionsSecondary(resp *http.Response) bool {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return bytes.Contains(bytes.ToLower(data), []byte("secondary rate limit"))
}

// hidePrimaryExhaustion drops the rate headers of a successful response that
// used the last request of the window: go-github would remember them and
// refuse the next call locally with a RateLimitError, where this Transport
// waits for the reset when GitHub answers 403 instead.
func (t *Transport) hidePrimaryExhaustion(resp *http.Response) {
	if resp.StatusCode < 300 && resp.Header.Get("X-RateLimit-Remaining") == "0" {
		t.o.Log.Info("github: primary rate limit used up; the next call will wait for the reset", "reset", resp.Header.Get("X-RateLimit-Reset"))
		resp.Header.Del("X-RateLimit-Remaining")
		resp.Header.Del("X-RateLimit-Reset")
	}
}

// replayableBody returns a func giving a fresh copy of req's body for each
// try, or nil when there is none.
func replayableBody(req *http.Request) (func() io.ReadCloser, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	if req.GetBody != nil {
		return func() io.ReadCloser {
			b, err := req.GetBody()
			if err != nil {
				return io.NopCloser(errReader{err})
			}
			return b
		}, nil
	}
	data, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("forge: reading the request body of %s %s: %w", req.Method, req.URL.Path, err)
	}
	return func() io.ReadCloser { return io.NopCloser(bytes.NewReader(data)) }, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
