package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/demo"
)

// serveDemo serves a demo service of track in real time.
func serveDemo(t *testing.T, track string) string {
	t.Helper()
	s := demo.NewService(track, 11)
	s.SetRiskBlockProbability(0)
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	return srv.URL
}

func serveFunc(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func readEvidence(t *testing.T, dir, version, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, version, name))
	if err != nil {
		t.Fatalf("evidence %s: %v", name, err)
	}
	return string(data)
}

func TestBlastCommand(t *testing.T) {
	t.Parallel()
	t.Run("passes against the demo canary", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		// A generous p95 bound: this test is about the command, not the machine's speed.
		out, code := cli(t, "blast", serveDemo(t, demo.TrackCanary), "v1.4.0", "6", "--max-p95", "30s", "--evidence-dir", dir)
		if code != exitComplete {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
		for _, want := range []string{"summary http 6/6 ok", "summary ws   6/6 ok", "verdict: PASS", "written: " + filepath.Join(dir, "v1.4.0", "micro_blast_v1.4.0.log")} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if log := readEvidence(t, dir, "v1.4.0", "micro_blast_v1.4.0.log"); strings.Count(log, "\n") < 12+3 || !strings.Contains(log, "verdict: PASS") {
			t.Errorf("log:\n%s", log)
		}
		if out, code := cli(t, "evidence", "verify", filepath.Join(dir, "v1.4.0")); code != exitComplete {
			t.Errorf("evidence verify exit %d:\n%s", code, out)
		}
	})
	t.Run("fails on 500s, log written", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		url := serveFunc(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
		out, code := cli(t, "blast", url, "v1.4.0", "3", "--evidence-dir", dir)
		if code != exitFailure || !strings.Contains(out, "micro blast radius against "+url+" failed: http success 0/3") || !strings.Contains(out, "status 500×3") {
			t.Fatalf("exit %d, want 1 naming the 500s:\n%s", code, out)
		}
		if log := readEvidence(t, dir, "v1.4.0", "micro_blast_v1.4.0.log"); !strings.Contains(log, "verdict: FAIL") {
			t.Errorf("log:\n%s", log)
		}
	})
	t.Run("sends --header", func(t *testing.T) {
		t.Parallel()
		url := serveFunc(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Canary") != "always" {
				http.NotFound(w, r)
			}
		})
		// The handler has no WebSocket: the HTTP probes pass only if the
		// header reached it, and the sessions fail on their handshake.
		out, code := cli(t, "blast", url, "v1.4.0", "2", "--header", "X-Canary=always", "--evidence-dir", t.TempDir())
		if code != exitFailure || !strings.Contains(out, "summary http 2/2 ok") || !strings.Contains(out, "ws handshake×2") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
}

func TestBlastCommandBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no arguments", nil, "blast takes <url> <version> [N], got 0 arguments"},
		{"too many", []string{"http://127.0.0.1:1", "v1.4.0", "3", "4"}, "got 4 arguments"},
		{"bad URL", []string{"127.0.0.1:4001", "v1.4.0"}, "give the service's base URL"},
		{"N zero", []string{"http://127.0.0.1:1", "v1.4.0", "0"}, "N must be a whole number of probes of each kind, at least 1"},
		{"N not a number", []string{"http://127.0.0.1:1", "v1.4.0", "thirty"}, `got "thirty"`},
		{"ratio", []string{"http://127.0.0.1:1", "v1.4.0", "--min-success", "95"}, "--min-success is a ratio"},
		{"concurrency", []string{"http://127.0.0.1:1", "v1.4.0", "--concurrency", "0"}, "--concurrency (0) at least 1"},
		{"header", []string{"http://127.0.0.1:1", "v1.4.0", "--header", "X-Canary"}, "use name=value"},
		{"version with a path", []string{"http://127.0.0.1:1", "../v1.4.0"}, "use a release tag such as v1.4.0"},
		{"unknown flag", []string{"http://127.0.0.1:1", "v1.4.0", "--max-p99", "1s"}, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			out, code := cli(t, append(append([]string{"blast"}, tt.args...), "--evidence-dir", dir)...)
			if code != exitBadInput || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, want 2 saying %q:\n%s", code, tt.want, out)
			}
		})
	}
}
