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
