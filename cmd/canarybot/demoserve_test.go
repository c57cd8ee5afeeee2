package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/checks"
	"github.com/canarybot/canarybot/internal/testenv"
)

// TestDemoServe runs `demo serve` in-process, probes what it prints, and
// stops it as Ctrl-C would.
func TestDemoServe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		args      []string
		blastPass bool
	}{
		{"whole", nil, true},
		{"dropped WebSocket", []string{"--defects", "websocket"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out testenv.SyncBuffer
			g := &globals{out: &out, errOut: &out, logLevel: "error"}
			done := make(chan int, 1)
			go func() {
				done <- runWith(ctx, g, newDemoServeCmd, append([]string{"--rps", "5", "--ws-clients", "1"}, tt.args...)...)
			}()

			urls := waitForURLs(t, &out, done)
			for _, role := range []string{"stable", "canary", "router"} {
				resp, err := http.Get(urls[role] + "/healthz")
				if err != nil {
					t.Fatalf("%s: %v", role, err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s /healthz: %s", role, resp.Status)
				}
			}
			res, err := checks.Blast(ctx, checks.BlastOptions{URL: urls["canary"], N: 3, MaxP95: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if res.Passed() != tt.blastPass {
				t.Errorf("blast against the served canary passed %t, want %t:\n%s", res.Passed(), tt.blastPass, res.Log())
			}

			cancel()
			select {
			case code := <-done:
				if code != exitComplete || !strings.Contains(out.String(), "demo serve: stopped") {
					t.Errorf("exit %d after the interrupt, want 0:\n%s", code, out.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("demo serve did not stop:\n%s", out.String())
			}
		})
	}
	t.Run("bad input", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{{"--defects", "latency"}, {"--weight", "101"}, {"--rps", "0"}, {"extra"}} {
			if out, code := runCmd(t, context.Background(), newDemoServeCmd, "", args...); code != exitBadInput {
				t.Errorf("%q: exit %d, want 2:\n%s", args, code, out)
			}
		}
	})
}

var servedURL = regexp.MustCompile(`(?m)^  (stable|canary|router) +(http://127\.0\.0\.1:\d+) `)

// waitForURLs reads the stack's URLs from the command's output once it has
// printed them.
func waitForURLs(t *testing.T, out *testenv.SyncBuffer, done <-chan int) map[string]string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		urls := map[string]string{}
		for _, m := range servedURL.FindAllStringSubmatch(out.String(), -1) {
			urls[m[1]] = m[2]
		}
		if len(urls) == 3 {
			return urls
		}
		select {
		case code := <-done:
			t.Fatalf("demo serve ended with exit %d before serving:\n%s", code, out.String())
		case <-deadline:
			t.Fatalf("no URLs printed within 30s:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
