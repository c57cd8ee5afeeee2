package forge_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/forge"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestWriterWaitingForSlotHonoursContext: a write queued behind another
// (which may be sleeping out a rate limit) gives up when its context ends.
func TestWriterWaitingForSlotHonoursContext(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		entered <- struct{}{}
		<-release
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("{}")), Header: http.Header{}, Request: r}, nil
	})
	tr, err := forge.NewTransport(base, forge.TransportOptions{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://fake/repos/a/b/statuses/x", strings.NewReader("{}"))
		if resp, err := tr.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered // the first writer holds the slot
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://fake/repos/a/b/statuses/y", strings.NewReader("{}"))
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("second writer: %v, want context.Canceled while the first holds the slot", err)
	}
	close(release)
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestTransportRepeatsOnlySafeWrites: after a timeout or a 5xx the write may
// have been applied; only writes whose repetition is harmless are sent
// again.
func TestTransportRepeatsOnlySafeWrites(t *testing.T) {
	for _, tc := range []struct {
		name, method, path string
		fail               func() (*http.Response, error)
		safeCtx            bool
		wantTries          int
	}{
		{"status after a timeout", "POST", "/api/v3/repos/a/b/statuses/abc", func() (*http.Response, error) { return nil, timeoutErr{} }, false, 2},
		{"label after a 502", "POST", "/repos/a/b/issues/3/labels", func() (*http.Response, error) {
			return &http.Response{StatusCode: 502, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
		}, false, 2},
		{"ruleset create after a timeout", "POST", "/repos/a/b/rulesets", func() (*http.Response, error) { return nil, timeoutErr{} }, false, 1},
		{"release create after a 504", "POST", "/repos/a/b/releases", func() (*http.Response, error) {
			return &http.Response{StatusCode: 504, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
		}, false, 1},
		{"release create marked safe by its caller", "POST", "/repos/a/b/releases", func() (*http.Response, error) { return nil, timeoutErr{} }, true, 2},
		{"ruleset update (PUT) after a timeout", "PUT", "/repos/a/b/rulesets/1", func() (*http.Response, error) { return nil, timeoutErr{} }, false, 2},
		{"ruleset create after a secondary limit", "POST", "/repos/a/b/rulesets", func() (*http.Response, error) {
			return &http.Response{StatusCode: 429, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{"Retry-After": {"1"}}}, nil
		}, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tries := 0
			base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				tries++
				if tries == 1 {
					resp, err := tc.fail()
					if resp != nil {
						resp.Request = r
					}
					return resp, err
				}
				return &http.Response{StatusCode: 201, Body: io.NopCloser(strings.NewReader("{}")), Header: http.Header{}, Request: r}, nil
			})
			var s sleeps
			tr, err := forge.NewTransport(base, fastOptions(&s, &forge.Metrics{}))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tc.safeCtx {
				ctx = forge.RepeatSafe(ctx)
			}
			req, _ := http.NewRequestWithContext(ctx, tc.method, "http://fake"+tc.path, strings.NewReader("{}"))
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			if tries != tc.wantTries {
				t.Errorf("sent %d times, want %d", tries, tc.wantTries)
			}
		})
	}
}
