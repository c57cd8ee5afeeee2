package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/internal/testenv"
)

// TestShutdownDropsLateWorkAfterTimeout: a command whose answer is still
// being worked on when the server is asked to stop is waited for only
// until the shutdown timeout, not the 5-minute work timeout; then it is
// told to stop, and the log names what was dropped.
func TestShutdownDropsLateWorkAfterTimeout(t *testing.T) {
	started := make(chan struct{})
	stopped := make(chan error, 1)
	slow := func(ctx context.Context, r SlashCommandRequest) SlackResponse {
		close(started)
		<-ctx.Done()
		stopped <- ctx.Err()
		return SlackResponse{Text: "too late"}
	}
	logs := &testenv.SyncBuffer{}
	s, _ := newTest(slow, func(o *Options) {
		o.AckTimeout = 10 * time.Millisecond
		o.ShutdownTimeout = 100 * time.Millisecond
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		o.Clock = time.Now
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	req := slackRequest(t, secret, time.Now(), form("UIC", "hold 15m db", "https://hooks.slack.com/x"))
	req.RequestURI = ""
	req.URL.Scheme, req.URL.Host = "http", ln.Addr().String()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, resp.Body); !strings.Contains(got.Text, "Working on `/canary hold") {
		t.Fatalf("ack %q, want the deferred answer", got.Text)
	}
	resp.Body.Close()
	<-started

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve is still waiting for the late answer a minute after shutdown began")
	}
	select {
	case err := <-stopped:
		if err == nil {
			t.Error("the handler's context ended without an error")
		}
	case <-time.After(time.Minute):
		t.Fatal("the late handler was not told to stop")
	}
	out := logs.String()
	for _, want := range []string{"answers still being worked on are dropped", "dropped=2", "/canary hold 15m0s db by UIC"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestShutdownWaitsForLateWorkThatFinishes: within the timeout, nothing is
// dropped.
func TestShutdownWaitsForLateWorkThatFinishes(t *testing.T) {
	release := make(chan struct{})
	handled := make(chan struct{})
	h := func(ctx context.Context, r SlashCommandRequest) SlackResponse {
		<-release
		close(handled)
		return SlackResponse{Text: "done"}
	}
	logs := &testenv.SyncBuffer{}
	s, _ := newTest(h, func(o *Options) {
		o.AckTimeout = 10 * time.Millisecond
		o.ShutdownTimeout = time.Minute
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		o.Clock = time.Now
		o.AllowResponseURL = func(string) bool { return false }
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	req := slackRequest(t, secret, time.Now(), form("UIC", "status", "https://example.com/x"))
	req.RequestURI = ""
	req.URL.Scheme, req.URL.Host = "http", ln.Addr().String()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	close(release)
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	select {
	case <-handled:
	default:
		t.Error("Serve returned before the answer being worked on was done")
	}
	if out := logs.String(); strings.Contains(out, "dropped") {
		t.Errorf("something was dropped:\n%s", out)
	}
}
